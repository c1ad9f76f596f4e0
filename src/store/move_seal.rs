//! The rows a move into an encrypted bucket takes along (a file, or a folder's files, and the
//! kept versions that follow them), found by the tree they are in rather than by bucket: the
//! core seals the plain ones in place before the move (docs/encryption.md), and the move's
//! transaction checks none is left plain (`tree::all_sealed_tx`).

use super::{below, KeptToConvert, MetaError, Store, ToConvert};

impl Store {
    /// Up to `limit` current files at or below `root` after `after` (path order) stored plain.
    pub async fn tree_to_seal(
        &self,
        root: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ToConvert>, MetaError> {
        let (lo, hi) = below(root);
        Ok(sqlx::query_as(
            "SELECT path, size, etag, mtime_ms, sealed FROM entries
             WHERE (path = $1 OR (path >= $2 AND path < $3)) AND path > $4
               AND is_dir = 0 AND sealed IS NULL
             ORDER BY path LIMIT $5",
        )
        .bind(root)
        .bind(&lo)
        .bind(&hi)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The newest id of the kept versions (not trashed files) of the files at or below `root`:
    /// a sealing takes those up to it, not the ones writers keep adding meanwhile.
    pub async fn tree_kept_newest(&self, root: &str) -> Result<Option<String>, MetaError> {
        let (lo, hi) = below(root);
        Ok(sqlx::query_scalar(
            "SELECT max(id) FROM versions
             WHERE (path = $1 OR (path >= $2 AND path < $3)) AND batch IS NULL AND marker = 0",
        )
        .bind(root)
        .bind(&lo)
        .bind(&hi)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Up to `limit` kept versions (not trashed files: those stay where the delete happened)
    /// of the files at or below `root`, with ids after `after` up to `upto`, holding plain bytes.
    pub async fn tree_kept_to_seal(
        &self,
        root: &str,
        (after, upto): (&str, &str),
        limit: i64,
    ) -> Result<Vec<KeptToConvert>, MetaError> {
        let (lo, hi) = below(root);
        Ok(sqlx::query_as(
            "SELECT id, key, size, sealed FROM versions
             WHERE (path = $1 OR (path >= $2 AND path < $3)) AND id > $4 AND id <= $5
               AND batch IS NULL AND marker = 0 AND key IS NOT NULL AND sealed IS NULL
             ORDER BY id LIMIT $6",
        )
        .bind(root)
        .bind(&lo)
        .bind(&hi)
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The current files (path, form, size) and kept versions at or below `root` whose
    /// recorded form ends with `suffix` (a conversion's mark).
    pub async fn tree_sealed_ending(
        &self,
        root: &str,
        suffix: &str,
    ) -> Result<(Vec<(String, String, i64)>, Vec<KeptToConvert>), MetaError> {
        let (lo, hi) = below(root);
        let files = sqlx::query_as(
            "SELECT path, sealed, size FROM entries
             WHERE (path = $1 OR (path >= $2 AND path < $3)) AND is_dir = 0
               AND substr(sealed, length(sealed) - length($4) + 1) = $4",
        )
        .bind(root)
        .bind(&lo)
        .bind(&hi)
        .bind(suffix)
        .fetch_all(&self.pool)
        .await?;
        let kept = sqlx::query_as(
            "SELECT id, key, size, sealed FROM versions
             WHERE (path = $1 OR (path >= $2 AND path < $3)) AND batch IS NULL AND marker = 0
               AND key IS NOT NULL AND substr(sealed, length(sealed) - length($4) + 1) = $4",
        )
        .bind(root)
        .bind(&lo)
        .bind(&hi)
        .bind(suffix)
        .fetch_all(&self.pool)
        .await?;
        Ok((files, kept))
    }
}
