//! Metadata snapshots for `kura backup`: a transactionally consistent copy of the live
//! database, and the edits that make the copy agree with the bytes the backup captured.

use std::path::Path;

use super::{MetaError, Store};

/// A stored object the backup copies: its name (a file's path or a kept version's key),
/// size and ETag as the metadata records them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotObject {
    /// The file's namespace path, or the versions-store key of kept bytes.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// Hex MD5 (or a multipart ETag) as recorded.
    pub etag: String,
    /// The wrapped data key when the bytes are sealed (encrypted bucket): `size` and `etag`
    /// are then the plaintext's, not the stored bytes'.
    pub sealed: Option<String>,
}

/// What became of a path after a snapshot, by the audit trail's moves and deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Whereabouts {
    /// Moved (itself or a folder above it): its path now.
    Moved(String),
    /// Deleted, or replaced by a move onto it.
    Gone,
    /// No recorded change reaches it (yet: the change's transaction may still be open).
    Unknown,
}

/// `path` with its prefix `from` (itself or a folder above it) replaced by `to`.
fn rebase(path: &str, from: &str, to: &str) -> Option<String> {
    if path == from {
        return Some(to.to_string());
    }
    path.strip_prefix(from)
        .filter(|rest| rest.starts_with('/'))
        .map(|rest| format!("{to}{rest}"))
}

impl Store {
    /// Where the entry at `path` went through the moves and deletes recorded after the
    /// audit row `after` (a backup follows a file renamed between its metadata copy and the
    /// read of its bytes, instead of dropping it as deleted).
    pub async fn whereabouts(&self, after: i64, path: &str) -> Result<Whereabouts, MetaError> {
        let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT action, path, path2 FROM audit
             WHERE id > $1 AND outcome = 'ok' AND action IN ('move', 'delete') ORDER BY id",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        let mut now = path.to_string();
        for (action, from, to) in rows {
            let Some(from) = from else { continue };
            if action == "delete" {
                if rebase(&now, &from, "").is_some() {
                    return Ok(Whereabouts::Gone);
                }
                continue;
            }
            let Some(to) = to else { continue };
            if let Some(moved) = rebase(&now, &from, &to) {
                now = moved;
            } else if rebase(&now, &to, "").is_some() {
                return Ok(Whereabouts::Gone);
            }
        }
        Ok(if now == path {
            Whereabouts::Unknown
        } else {
            Whereabouts::Moved(now)
        })
    }

    /// Writes a consistent copy of the whole database to `target` (SQLite `VACUUM INTO`,
    /// one read transaction: writers go on meanwhile).
    pub async fn snapshot_into(&self, target: &Path) -> Result<(), MetaError> {
        self.sqlite_only("a backup's copy of the database (VACUUM INTO)")?;
        sqlx::query("VACUUM INTO $1")
            .bind(target.to_string_lossy().into_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every current file, in path order.
    pub async fn snapshot_files(&self) -> Result<Vec<SnapshotObject>, MetaError> {
        let rows: Vec<(String, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT path, size, etag, sealed FROM entries WHERE is_dir = 0 ORDER BY path",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(snapshot_object).collect())
    }

    /// Every kept version's and trashed file's bytes, by key.
    pub async fn snapshot_kept(&self) -> Result<Vec<SnapshotObject>, MetaError> {
        let rows: Vec<(String, i64, String, Option<String>)> = sqlx::query_as(
            "SELECT key, size, etag, sealed FROM versions WHERE key IS NOT NULL ORDER BY key",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(snapshot_object).collect())
    }

    /// On a snapshot copy: forgets what a restored server must not inherit (WebDAV locks,
    /// unfinished multipart uploads, whose parts are not backed up) and, without `kept`,
    /// every noncurrent version and trashed file.
    pub async fn settle_snapshot(&self, kept: bool) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        for sql in [
            "DELETE FROM locks",
            "DELETE FROM multipart_parts",
            "DELETE FROM multipart_uploads",
        ] {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        if !kept {
            sqlx::query("DELETE FROM versions")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// On a snapshot copy: the file at `path` was captured with other bytes than the snapshot
    /// recorded (written meanwhile), or not at all (`None`: deleted meanwhile).
    pub async fn amend_snapshot_file(
        &self,
        path: &str,
        captured: Option<(i64, &str, Option<&str>)>,
    ) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        match captured {
            Some((size, etag, sealed)) => {
                sqlx::query("UPDATE entries SET size = $2, etag = $3, sealed = $4 WHERE path = $1")
                    .bind(path)
                    .bind(size)
                    .bind(etag)
                    .bind(sealed)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                for sql in [
                    "DELETE FROM entries WHERE path = $1",
                    "DELETE FROM dead_props WHERE path = $1",
                ] {
                    sqlx::query(sql).bind(path).execute(&mut *tx).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The form (wrapped key, `None`: plain) the live database records for the kept bytes at
    /// `key`; `None` when no version holds them any more.
    pub async fn kept_form(&self, key: &str) -> Result<Option<Option<String>>, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM versions WHERE key = $1 LIMIT 1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// On a snapshot copy: the kept bytes at `key` were captured in another form than the
    /// snapshot recorded (a conversion switched them meanwhile).
    pub async fn amend_snapshot_kept(
        &self,
        key: &str,
        sealed: Option<&str>,
    ) -> Result<(), MetaError> {
        sqlx::query("UPDATE versions SET sealed = $2 WHERE key = $1")
            .bind(key)
            .bind(sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// On a snapshot copy: kept bytes purged before the backup could copy them.
    pub async fn forget_snapshot_kept(&self, key: &str) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM versions WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes the database, folding its write-ahead log into the file (a snapshot copy is
    /// hashed as one file afterwards).
    pub async fn close(self) {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await;
        self.writer.close().await;
        self.pool.close().await;
    }
}

fn snapshot_object(
    (name, size, etag, sealed): (String, i64, String, Option<String>),
) -> SnapshotObject {
    SnapshotObject {
        name,
        size,
        etag,
        sealed,
    }
}

#[cfg(test)]
mod tests {
    use super::rebase;

    #[test]
    fn rebase_follows_the_path_and_folders_above_it_only() {
        assert_eq!(rebase("/b/a", "/b/a", "/b/z").as_deref(), Some("/b/z"));
        assert_eq!(rebase("/b/a/f", "/b/a", "/b/z").as_deref(), Some("/b/z/f"));
        assert_eq!(rebase("/b/ab/f", "/b/a", "/b/z"), None);
        assert_eq!(rebase("/b/a", "/b/a/f", "/b/z"), None);
    }
}
