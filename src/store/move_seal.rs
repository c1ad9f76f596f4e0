//! The rows a move into an encrypted bucket takes along (a file, or a folder's files, and the
//! kept versions that follow them), found by the tree they are in rather than by bucket: the
//! core seals the plain ones in place before the move (docs/encryption.md), and the move's
//! transaction checks none is left plain.

use sqlx::{Sqlite, Transaction};

use super::{below, KeptToConvert, MetaError, Store, ToConvert};

/// Why a move into an encrypted bucket refuses: a file it takes along (or one of their kept
/// versions) was written plain, or is switching form, since the move sealed them.
pub const NOT_SEALED: &str = "a file moved into an encrypted bucket was written plain meanwhile";

/// The rows at or below `root`: `path = $1 OR (path >= $2 AND path < $3)`.
fn tree(root: &str) -> (String, String) {
    below(root)
}

impl Store {
    /// Up to `limit` current files at or below `root` after `after` (path order) stored plain.
    pub async fn tree_to_seal(
        &self,
        root: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ToConvert>, MetaError> {
        let (lo, hi) = tree(root);
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

    /// Up to `limit` kept versions (not trashed files: those stay where the delete happened)
    /// of the files at or below `root`, after the id `after`, holding plain bytes.
    pub async fn tree_kept_to_seal(
        &self,
        root: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<KeptToConvert>, MetaError> {
        let (lo, hi) = tree(root);
        Ok(sqlx::query_as(
            "SELECT id, key, size, sealed FROM versions
             WHERE (path = $1 OR (path >= $2 AND path < $3)) AND id > $4
               AND batch IS NULL AND marker = 0 AND key IS NOT NULL AND sealed IS NULL
             ORDER BY id LIMIT $5",
        )
        .bind(root)
        .bind(&lo)
        .bind(&hi)
        .bind(after)
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
        let (lo, hi) = tree(root);
        let files = sqlx::query_as(
            "SELECT path, sealed, size FROM entries
             WHERE (path = $1 OR (path >= $2 AND path < $3)) AND is_dir = 0
               AND substr(sealed, -length($4)) = $4",
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
               AND key IS NOT NULL AND substr(sealed, -length($4)) = $4",
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

/// Fails with `Conflict(NOT_SEALED)` when a current file at or below `root`, or a kept version
/// that follows them, is recorded plain or with the conversion mark `mark` (either form).
pub(super) async fn all_sealed_tx(
    tx: &mut Transaction<'_, Sqlite>,
    root: &str,
    mark: &str,
) -> Result<(), MetaError> {
    let (lo, hi) = tree(root);
    let plain: bool = sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM entries
                WHERE (path = $1 OR (path >= $2 AND path < $3)) AND is_dir = 0
                  AND (sealed IS NULL OR substr(sealed, -length($4)) = $4))
             OR EXISTS(SELECT 1 FROM versions
                WHERE (path = $1 OR (path >= $2 AND path < $3)) AND batch IS NULL
                  AND marker = 0 AND key IS NOT NULL
                  AND (sealed IS NULL OR substr(sealed, -length($4)) = $4))",
    )
    .bind(root)
    .bind(&lo)
    .bind(&hi)
    .bind(mark)
    .fetch_one(&mut **tx)
    .await?;
    if plain {
        return Err(MetaError::Conflict(NOT_SEALED));
    }
    Ok(())
}
