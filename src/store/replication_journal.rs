//! The replication journal: one row per changed or removed file path of a replicated bucket,
//! written in the transaction of the change, read by the shipper.

use super::DbTx;

use super::usage::bucket_of;
use super::{below, MetaError};

/// Journals every file at or below `path` if its bucket is replicated, in the change's
/// transaction (`origin`: the node the change came from, None for this one).
pub(super) async fn journal_tree_tx(
    tx: &mut DbTx,
    path: &str,
    origin: Option<&str>,
) -> Result<(), MetaError> {
    let Some(bucket) = bucket_of(path) else {
        return Ok(());
    };
    let (lo, hi) = below(path);
    sqlx::query(
        "INSERT INTO journal (bucket, path, origin, created_ms)
         SELECT $1, path, $2, $3 FROM entries
         WHERE (path = $4 OR (path >= $5 AND path < $6)) AND is_dir = 0
           AND EXISTS (SELECT 1 FROM replications WHERE bucket = $1)",
    )
    .bind(&bucket[1..])
    .bind(origin)
    .bind(super::now_ms())
    .bind(path)
    .bind(&lo)
    .bind(&hi)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The bucket name a file path is journaled under (files at the root have none).
pub(super) fn journal_bucket(path: &str) -> Option<&str> {
    bucket_of(path).filter(|b| *b != path).map(|b| &b[1..])
}

/// Journals one file path (changed or gone) if its bucket is replicated.
pub(super) async fn journal_path_tx(
    tx: &mut DbTx,
    path: &str,
    origin: Option<&str>,
) -> Result<(), MetaError> {
    let Some(bucket) = journal_bucket(path) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO journal (bucket, path, origin, created_ms) SELECT $1, $2, $3, $4
         WHERE EXISTS (SELECT 1 FROM replications WHERE bucket = $1)",
    )
    .bind(bucket)
    .bind(path)
    .bind(origin)
    .bind(super::now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
