//! Implicit folders: the parents an S3 key brought into being, made inside the write's
//! transaction and removed inside the transaction that takes their last entry away, so an
//! emptied prefix vanishes as it does in S3. Folders made on purpose are never removed here.

use sqlx::{Sqlite, Transaction};

use super::entries::{entry_cols, EntryRow};
use super::usage::bucket_of;
use super::{below, MetaError, Store};

/// Why a conditional delete refuses: something other than empty implicit folders is below.
pub const NOT_EMPTY: &str = "the folder is not empty";

/// Records the missing folders `parents` (outermost first) as implicit, inside a write's
/// transaction: one already there as a folder is fine, a file in the way refuses, and the
/// outermost must hang from a folder that still exists.
pub(super) async fn insert_parents_tx(
    tx: &mut Transaction<'_, Sqlite>,
    parents: &[EntryRow],
) -> Result<(), MetaError> {
    for p in parents {
        let kind: Option<i64> = sqlx::query_scalar("SELECT is_dir FROM entries WHERE path = $1")
            .bind(&p.path)
            .fetch_optional(&mut **tx)
            .await?;
        match kind {
            Some(1) => continue,
            Some(_) => return Err(MetaError::Conflict("a file is in the way of a folder")),
            None => {}
        }
        if bucket_of(&p.path) == Some(p.path.as_str()) {
            // a bucket is never made implicitly
            return Err(MetaError::Gone);
        }
        let up: Option<i64> = sqlx::query_scalar("SELECT is_dir FROM entries WHERE path = $1")
            .bind(&p.parent)
            .fetch_optional(&mut **tx)
            .await?;
        if up != Some(1) {
            return Err(MetaError::Conflict("parent folder does not exist"));
        }
        sqlx::query(concat!(
            "INSERT INTO entries (",
            entry_cols!(),
            ", implicit) VALUES ($1, $2, 1, 0, $3, $4, NULL, $5, NULL, $6, $7, NULL, 1)"
        ))
        .bind(&p.path)
        .bind(&p.parent)
        .bind(p.mtime_ms)
        .bind(&p.etag)
        .bind(&p.owner)
        .bind(&p.grp)
        .bind(p.mode)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Removes `dir` and the folders above it while each is implicit and empty, stopping at the
/// bucket (never removed here), inside the transaction that emptied it; returns the removed
/// paths, deepest first, for storage to follow.
pub(super) async fn prune_tx(
    tx: &mut Transaction<'_, Sqlite>,
    dir: &str,
) -> Result<Vec<String>, MetaError> {
    let mut pruned = Vec::new();
    let mut dir = dir.to_string();
    while dir != "/" && bucket_of(&dir) != Some(dir.as_str()) {
        let gone = sqlx::query(
            "DELETE FROM entries WHERE path = $1 AND is_dir = 1 AND implicit = 1
               AND NOT EXISTS (SELECT 1 FROM entries WHERE parent = $1)",
        )
        .bind(&dir)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if gone == 0 {
            break;
        }
        sqlx::query("DELETE FROM dead_props WHERE path = $1")
            .bind(&dir)
            .execute(&mut **tx)
            .await?;
        super::locks::delete_locks_below_tx(&mut **tx, &dir).await?;
        let up = super::tree::parent_of(&dir).to_string();
        pruned.push(std::mem::replace(&mut dir, up));
    }
    Ok(pruned)
}

/// Fails with `Conflict(NOT_EMPTY)` unless everything below `path` is an implicit folder
/// (which S3 does not show, so a bucket holding only those is empty).
pub(super) async fn require_empty_tx(
    tx: &mut Transaction<'_, Sqlite>,
    path: &str,
) -> Result<(), MetaError> {
    let (lo, hi) = below(path);
    let other: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM entries WHERE path >= $1 AND path < $2
           AND NOT (is_dir = 1 AND implicit = 1) LIMIT 1",
    )
    .bind(&lo)
    .bind(&hi)
    .fetch_optional(&mut **tx)
    .await?;
    match other {
        Some(_) => Err(MetaError::Conflict(NOT_EMPTY)),
        None => Ok(()),
    }
}

impl Store {
    /// Makes a folder explicit (or implicit again): an S3 `dir/` marker written onto a
    /// prefix, or deleted while the prefix still holds keys. Returns whether a folder was there.
    pub async fn set_implicit(&self, path: &str, implicit: bool) -> Result<bool, MetaError> {
        let n = sqlx::query("UPDATE entries SET implicit = $1 WHERE path = $2 AND is_dir = 1")
            .bind(i64::from(implicit))
            .bind(path)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Whether `path` is a folder made only as the parent of a key.
    pub async fn is_implicit(&self, path: &str) -> Result<bool, MetaError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT implicit FROM entries WHERE path = $1")
            .bind(path)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v == Some(1))
    }
}
