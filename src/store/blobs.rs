//! Blob keys of files on object stores (migration 0042): the key prefix, the queue of blobs
//! no row names any more (filled by triggers, drained after COMMIT), and adopting a file
//! written at its path before blobs.

use super::{MetaError, Store};

/// Where file contents live on a service other than `fs`: outside every bucket (names
/// starting with `.kura-` are refused in the namespace). Migration 0042's triggers know it.
pub const BLOBS_PREFIX: &str = ".kura-blobs/";

/// Whether `key` names a blob (not a versions-store key or a path).
pub fn is_blob_key(key: &str) -> bool {
    key.starts_with(BLOBS_PREFIX)
}

impl Store {
    /// Up to `limit` blobs a committed change let go of before `before_ms`, to delete from
    /// the store.
    pub async fn gone_blobs(&self, before_ms: i64, limit: i64) -> Result<Vec<String>, MetaError> {
        Ok(sqlx::query_scalar(
            "SELECT key FROM gone_blobs WHERE gone_ms <= $1 ORDER BY key LIMIT $2",
        )
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets blobs deleted from the store (or found referenced again).
    pub async fn forget_gone_blobs(&self, keys: &[String]) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        for k in keys {
            sqlx::query("DELETE FROM gone_blobs WHERE key = $1")
                .bind(k)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether a current file or a kept version names `key` (a queued blob taken back).
    pub async fn blob_referenced(&self, key: &str) -> Result<bool, MetaError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM entries WHERE blob = $1)
                  + (SELECT COUNT(*) FROM versions WHERE key = $1)",
        )
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Every blob a current file or a kept version names (fsck).
    pub async fn referenced_blobs(&self) -> Result<std::collections::BTreeSet<String>, MetaError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT blob FROM entries WHERE blob IS NOT NULL
             UNION SELECT key FROM versions WHERE key LIKE '.kura-blobs/%'",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Gives the file at `path`, still the one written at its path (no blob) with `etag` and
    /// `mtime_ms`, the blob `key` holding a copy of its bytes; false when it changed meanwhile.
    pub async fn adopt_blob(
        &self,
        path: &str,
        etag: &str,
        mtime_ms: i64,
        key: &str,
    ) -> Result<bool, MetaError> {
        let n = sqlx::query(
            "UPDATE entries SET blob = $1 WHERE path = $2 AND is_dir = 0 AND blob IS NULL
               AND etag = $3 AND mtime_ms = $4",
        )
        .bind(key)
        .bind(path)
        .bind(etag)
        .bind(mtime_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}
