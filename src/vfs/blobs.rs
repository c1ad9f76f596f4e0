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
    /// The same core deleting let-go blobs after `ms` instead of `BLOB_GRACE_MS` (tests).
    #[cfg(test)]
    pub(super) fn with_blob_grace_ms(mut self, ms: i64) -> Self {
        self.blob_grace_ms = ms;
        self
    }

    /// Whether files get blob keys here (every service but `fs`).
    pub(super) fn uses_blobs(&self) -> bool {
        self.local.is_none()
    }

    /// Deletes from the store the blobs committed changes let go of (queued by their
    /// transactions) at least `BLOB_GRACE_MS` ago: a GET that opened the file before its
    /// delete or overwrite reads on meanwhile (on `fs` an open file outlives its unlink; an
    /// object does not). Runs after commits and from the version purge job; a failure leaves
    /// them queued for the next sweep.
    pub async fn sweep_gone_blobs(&self) {
        if !self.uses_blobs() {
            return;
        }
        let before = now_ms() - self.blob_grace_ms;
        loop {
            let keys = match self.store.gone_blobs(before, 256).await {
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
    use crate::store::Store;
    use crate::vfs::versions::version_object;
    use crate::vfs::{Caller, UploadOptions};
    use bytes::Bytes;
    use opendal::Operator;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    /// A core on the `memory` service (an object store: blobs), its operator, and a bucket
    /// `/b` of group `fam`.
    async fn setup() -> (Vfs, Operator, Caller) {
        let op = Operator::new(opendal::services::Memory::default()).unwrap();
        let staging = Operator::new(opendal::services::Memory::default()).unwrap();
        let v = Vfs::new(op.clone(), staging, Store::in_memory().await.unwrap(), None);
        let root = Caller::admin("root");
        v.store.create_group("fam").await.unwrap();
        v.mkdir(&root, &p("/b")).await.unwrap();
        v.chown(&root, &p("/b"), None, Some("fam")).await.unwrap();
        (v, op, root)
    }

    async fn put(v: &Vfs, c: &Caller, path: &str, body: &[u8]) {
        crate::vfs::tests::put_as(v, c, path, body).await;
    }

    async fn read(v: &Vfs, c: &Caller, path: &str) -> Vec<u8> {
        let (e, dl) = v.open_read(c, &p(path)).await.unwrap();
        dl.read_at(0, e.size as usize + 1).await.unwrap().to_vec()
    }

    /// Every object of the store (keys), files only.
    async fn objects(op: &Operator) -> Vec<String> {
        let mut keys: Vec<String> = op
            .list_with("")
            .recursive(true)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| !e.metadata().is_dir())
            .map(|e| e.path().to_string())
            .collect();
        keys.sort();
        keys
    }

    async fn used(v: &Vfs) -> i64 {
        v.store.group("fam").await.unwrap().unwrap().used_bytes
    }

    #[test]
    fn blob_keys_tell_their_age() {
        let k = blob_key_at(1_700_000_000_000);
        assert!(k.starts_with(BLOBS_PREFIX));
        assert_eq!(blob_made_ms(&k), Some(1_700_000_000_000));
        assert_eq!(blob_made_ms("bucket/a"), None);
        assert_ne!(new_blob_key(), new_blob_key());
    }

    #[tokio::test]
    async fn a_folder_of_a_thousand_files_moves_without_a_byte_operation() {
        let (v, op, root) = setup().await;
        v.mkdir(&root, &p("/b/d")).await.unwrap();
        for i in 0..1000 {
            put(
                &v,
                &root,
                &format!("/b/d/f{i:04}"),
                format!("file {i}").as_bytes(),
            )
            .await;
        }
        let before = objects(&op).await;
        assert_eq!(before.len(), 1000);
        assert!(before.iter().all(|k| k.starts_with(BLOBS_PREFIX)));
        v.rename(&root, &p("/b/d"), &p("/b/e")).await.unwrap();
        // the same objects, none written, moved or deleted: the rows moved
        assert_eq!(objects(&op).await, before);
        assert_eq!(read(&v, &root, "/b/e/f0500").await, b"file 500");
        assert!(v.stat(&root, &p("/b/d")).await.is_err());
        // a file too
        v.rename(&root, &p("/b/e/f0001"), &p("/b/g")).await.unwrap();
        assert_eq!(objects(&op).await, before);
        assert_eq!(read(&v, &root, "/b/g").await, b"file 1");
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    #[tokio::test]
    async fn a_failed_upload_leaves_no_file_no_usage_and_no_blob() {
        let (v, op, root) = setup().await;
        // short of its announced size
        let opts = UploadOptions {
            expected_size: Some(10),
            ..Default::default()
        };
        let mut up = v.upload(&root, &p("/b/f"), opts).await.unwrap();
        up.write(Bytes::from_static(b"12345")).await.unwrap();
        assert!(up.commit().await.is_err());
        drop(up);
        // refused at its commit, after its blob was complete (If-Match: the file changed)
        put(&v, &root, "/b/g", b"first").await;
        let etag = v.stat(&root, &p("/b/g")).await.unwrap().etag;
        let opts = UploadOptions {
            if_match: Some(etag),
            ..Default::default()
        };
        let mut up = v.upload(&root, &p("/b/g"), opts).await.unwrap();
        up.write(Bytes::from_static(b"late")).await.unwrap();
        put(&v, &root, "/b/g", b"second").await;
        assert!(matches!(up.commit().await, Err(VfsError::Changed(_))));
        drop(up);
        tokio::task::yield_now().await;
        assert!(v.stat(&root, &p("/b/f")).await.is_err());
        assert_eq!(read(&v, &root, "/b/g").await, b"second");
        assert_eq!(used(&v).await, 6, "the current /b/g only");
        // the blob of /b/g and the one its version took: nothing of the failed uploads
        let left = objects(&op).await;
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    #[tokio::test]
    async fn an_overwrite_keeps_the_old_blob_as_the_version_and_a_delete_frees_it() {
        let (v, op, root) = setup().await;
        put(&v, &root, "/b/f", b"one").await;
        let first = v.store.entry("/b/f").await.unwrap().unwrap().blob.unwrap();
        put(&v, &root, "/b/f", b"two").await;
        let kept = v.versions(&root, &p("/b/f")).await.unwrap();
        assert_eq!(kept.len(), 1);
        // the version took the blob over: no byte was copied
        assert_eq!(kept[0].key.as_deref(), Some(first.as_str()));
        assert_eq!(
            op.read(&version_object(&first)).await.unwrap().to_vec(),
            b"one"
        );
        assert_eq!(read(&v, &root, "/b/f").await, b"two");
        assert_eq!(objects(&op).await.len(), 2);
        // in a bucket keeping nothing, the replaced blob goes after the commit
        v.store
            .set_policy(
                "/b",
                &crate::store::Policy {
                    keep_versions: Some(0),
                    trash_secs: 0,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // a blob let go of stays for the grace: a GET opened before reads on (an object,
        // unlike a file on disk, does not outlive its delete)
        let now = v.clone().with_blob_grace_ms(0);
        v.purge_expired().await.unwrap();
        now.sweep_gone_blobs().await;
        assert_eq!(objects(&op).await.len(), 1);
        put(&v, &root, "/b/f", b"three").await;
        assert_eq!(
            objects(&op).await.len(),
            2,
            "the replaced blob went at once"
        );
        now.sweep_gone_blobs().await;
        assert_eq!(objects(&op).await.len(), 1);
        let (_, open) = v.open_read(&root, &p("/b/f")).await.unwrap();
        v.delete(&root, &p("/b/f")).await.unwrap();
        v.sweep_gone_blobs().await;
        assert_eq!(open.read_at(0, 5).await.unwrap().to_vec(), b"three");
        now.sweep_gone_blobs().await;
        assert_eq!(objects(&op).await, Vec::<String>::new());
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    #[tokio::test]
    async fn the_trash_takes_blobs_over_and_a_restore_leaves_none_behind() {
        let (v, op, root) = setup().await;
        v.mkdir(&root, &p("/b/d")).await.unwrap();
        put(&v, &root, "/b/d/x", b"x").await;
        put(&v, &root, "/b/d/y", b"yy").await;
        let before = objects(&op).await;
        v.delete(&root, &p("/b/d")).await.unwrap();
        // the trash rows name the same blobs: nothing copied, nothing deleted
        assert_eq!(objects(&op).await, before);
        v.restore(&root, &p("/b/d"), None, None).await.unwrap();
        assert_eq!(read(&v, &root, "/b/d/y").await, b"yy");
        // restored as new blobs; the trashed ones stay as the files' noncurrent versions
        assert_eq!(objects(&op).await.len(), 4);
        let kept = v.versions(&root, &p("/b/d/y")).await.unwrap();
        assert!(before.contains(kept[0].key.as_ref().unwrap()));
        // purged, their blobs go with their rows
        v.store
            .set_policy(
                "/b",
                &crate::store::Policy {
                    keep_versions: Some(0),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        v.purge_expired().await.unwrap();
        let after = objects(&op).await;
        assert_eq!(after.len(), 2, "{after:?}");
        assert!(after.iter().all(|k| !before.contains(k)));
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    #[tokio::test]
    async fn a_copy_gets_blobs_of_its_own() {
        let (v, op, root) = setup().await;
        v.mkdir(&root, &p("/b/d")).await.unwrap();
        put(&v, &root, "/b/d/x", b"x").await;
        v.copy(&root, &p("/b/d"), &p("/b/e")).await.unwrap();
        v.copy(&root, &p("/b/d/x"), &p("/b/y")).await.unwrap();
        assert_eq!(objects(&op).await.len(), 3);
        v.delete(&root, &p("/b/d")).await.unwrap();
        assert_eq!(read(&v, &root, "/b/e/x").await, b"x");
        assert_eq!(read(&v, &root, "/b/y").await, b"x");
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    #[tokio::test]
    async fn fsck_removes_an_old_orphan_blob_and_keeps_a_fresh_one() {
        let (v, op, root) = setup().await;
        put(&v, &root, "/b/f", b"kept").await;
        let old = blob_key_at(now_ms() - BLOB_GRACE_MS - 60_000);
        let fresh = new_blob_key();
        op.write(&old, "left by a killed gateway").await.unwrap();
        op.write(&fresh, "an upload in flight").await.unwrap();
        let r = v.fsck(false).await.unwrap();
        assert_eq!(r.orphan_blobs, vec![old.clone()]);
        assert!(op.exists(&old).await.unwrap());
        let r = v.fsck(true).await.unwrap();
        assert_eq!(r.orphan_blobs, vec![old.clone()]);
        assert!(!op.exists(&old).await.unwrap());
        assert!(op.exists(&fresh).await.unwrap());
        assert!(v.fsck(false).await.unwrap().is_clean());
        // a row whose blob is gone is reported (and dropped by a repair)
        let blob = v.store.entry("/b/f").await.unwrap().unwrap().blob.unwrap();
        op.delete(&blob).await.unwrap();
        assert_eq!(
            v.fsck(false).await.unwrap().missing,
            vec!["/b/f".to_string()]
        );
        v.fsck(true).await.unwrap();
        assert!(v.stat(&root, &p("/b/f")).await.is_err());
    }

    #[tokio::test]
    async fn a_file_written_at_its_path_before_blobs_reads_moves_and_goes() {
        let (v, op, root) = setup().await;
        // as an installation from before migration 0042 has it: bytes at the path, no blob
        op.write("b/old", "legacy bytes").await.unwrap();
        v.fsck(true).await.unwrap();
        let row = v.store.entry("/b/old").await.unwrap().unwrap();
        assert_eq!(row.blob, None);
        assert_eq!(read(&v, &root, "/b/old").await, b"legacy bytes");
        assert!(v.fsck(false).await.unwrap().is_clean());
        // a move gives it a blob (its one copy) and the path object goes
        v.rename(&root, &p("/b/old"), &p("/b/new")).await.unwrap();
        assert_eq!(read(&v, &root, "/b/new").await, b"legacy bytes");
        let keys = objects(&op).await;
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with(BLOBS_PREFIX));
        // overwritten in place, its version keeps the bytes (copied aside) and the path
        // object goes
        op.write("b/other", "legacy two").await.unwrap();
        v.fsck(true).await.unwrap();
        put(&v, &root, "/b/other", b"new").await;
        let kept = v.versions(&root, &p("/b/other")).await.unwrap();
        let key = kept[0].key.clone().unwrap();
        assert_eq!(
            op.read(&version_object(&key)).await.unwrap().to_vec(),
            b"legacy two"
        );
        assert!(!op.exists("b/other").await.unwrap());
        assert!(v.fsck(false).await.unwrap().is_clean());
    }
}
