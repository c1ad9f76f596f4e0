//! File contents on object stores (docs/scale-out.md, "Blobs on an object store"): on every
//! service but `fs` a file's bytes live under an immutable blob key chosen before the upload,
//! and its row names it; a move rewrites rows only. `fs` keeps its plain tree.

use super::{VPath, Vfs, VfsError};
use crate::store::{now_ms, EntryRow, BLOBS_PREFIX};

/// How long an unreferenced blob is left alone (an upload in flight on some gateway has
/// written it and not committed yet) before fsck removes it.
pub const BLOB_GRACE_MS: i64 = 60 * 60 * 1000;

/// A new blob key: `.kura-blobs/<2 hex>/<13 hex ms><16 hex random>`, made before the bytes
/// stream; its time tells fsck its age, the random part spreads the keys over prefixes.
pub(super) fn new_blob_key() -> String {
    blob_key_at(now_ms())
}

/// A blob key made at `ms` (tests make old ones).
pub(super) fn blob_key_at(ms: i64) -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{BLOBS_PREFIX}{}/{:013x}{}",
        &rand[..2],
        ms.max(0),
        &rand[2..18]
    )
}

/// When the blob `key` was made (ms since the epoch); `None` for a name Kura never makes.
pub(super) fn blob_made_ms(key: &str) -> Option<i64> {
    let id = key.strip_prefix(BLOBS_PREFIX)?.split_once('/')?.1;
    i64::from_str_radix(id.get(..13)?, 16).ok()
}

/// The object holding a file's bytes: its blob, or its path (`fs`, and files written on an
/// object store before blobs).
pub(super) fn object_key(path: &VPath, blob: Option<&str>) -> String {
    blob.map_or_else(|| path.storage_key(false), str::to_string)
}

impl Vfs {
    /// Whether files get blob keys here (every service but `fs`).
    pub(super) fn uses_blobs(&self) -> bool {
        self.local.is_none()
    }

    /// Deletes from the store the blobs committed changes let go of (queued by their
    /// transactions); a failure leaves them queued for the next sweep.
    pub(super) async fn sweep_gone_blobs(&self) {
        if !self.uses_blobs() {
            return;
        }
        loop {
            let keys = match self.store.gone_blobs(256).await {
                Ok(k) if !k.is_empty() => k,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the blobs to delete");
                    return;
                }
            };
            let mut done = Vec::new();
            for k in &keys {
                // a key named again (a restore from the trash) stays
                match self.store.blob_referenced(k).await {
                    Ok(true) => {
                        done.push(k.clone());
                        continue;
                    }
                    Ok(false) => {}
                    Err(_) => continue,
                }
                match self.op.delete(k).await {
                    Ok(()) => done.push(k.clone()),
                    Err(e) => tracing::warn!(blob = %k, error = %e, "could not delete a blob"),
                }
            }
            let stuck = done.len() < keys.len();
            if let Err(e) = self.store.forget_gone_blobs(&done).await {
                tracing::warn!(error = %e, "could not forget deleted blobs");
                return;
            }
            if stuck {
                return;
            }
        }
    }

    /// Gives the files of `rows` still written at their path (before blobs) a blob of their
    /// own, so that a move rewrites rows only: the bytes are copied once, then the object at
    /// the path goes. A file changed meanwhile keeps what it has (the copy goes).
    pub(super) async fn adopt_path_objects(&self, rows: &[EntryRow]) -> Result<(), VfsError> {
        if !self.uses_blobs() {
            return Ok(());
        }
        for r in rows.iter().filter(|r| !r.is_dir && r.blob.is_none()) {
            let path = VPath::parse(&r.path)?;
            let from = path.storage_key(false);
            let key = new_blob_key();
            self.copy_key(&from, &key).await?;
            let adopted = self
                .store
                .adopt_blob(&r.path, &r.etag, r.mtime_ms, &key)
                .await;
            let gone = if matches!(adopted, Ok(true)) {
                from
            } else {
                key
            };
            if let Err(e) = self.op.delete(&gone).await {
                tracing::warn!(object = %gone, error = %e, "could not delete a copied object");
            }
            adopted?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys_tell_their_age() {
        let k = blob_key_at(1_700_000_000_000);
        assert!(k.starts_with(BLOBS_PREFIX));
        assert_eq!(blob_made_ms(&k), Some(1_700_000_000_000));
        assert_eq!(blob_made_ms("bucket/a"), None);
        assert_ne!(new_blob_key(), new_blob_key());
    }
}
