//! Copying bytes inside the storage service (or through Kura where it cannot), and the blobs
//! of copies on object stores.

use super::blobs::{new_blob_key, object_key};
use super::versions::KeepAt;
use super::{Caller, VPath, Vfs, VfsError};
use crate::store::{Committed, EntryRow, Mark};

impl Vfs {
    /// Copies one stored object, inside the service when it can copy.
    pub(super) async fn copy_key(&self, f: &str, t: &str) -> Result<(), VfsError> {
        let (f, t) = (f.to_string(), t.to_string());
        if self.op.info().capability().copy {
            self.op.copy(&f, &t).await?;
            return Ok(());
        }
        let reader = self.op.reader(&f).await?;
        let mut stream = reader.into_bytes_stream(..).await?;
        let mut writer = self.op.writer(&t).await?;
        use futures_util::TryStreamExt;
        let res: Result<(), opendal::Error> =
            async {
                while let Some(chunk) = stream.try_next().await.map_err(|e| {
                    opendal::Error::new(opendal::ErrorKind::Unexpected, e.to_string())
                })? {
                    writer.write(chunk).await?;
                }
                Ok(())
            }
            .await;
        match res {
            Ok(()) => {
                writer.close().await?;
                Ok(())
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e.into())
            }
        }
    }

    /// Object stores: a new blob for the file `head`, or for every file of `rows` (a folder),
    /// copied from the source's bytes; returns (source path, new blob). A failure deletes
    /// what it made.
    pub(super) async fn copy_blobs(
        &self,
        head: &EntryRow,
        rows: &[EntryRow],
    ) -> Result<Vec<(String, String)>, VfsError> {
        let files = std::iter::once(head).chain(rows).filter(|r| !r.is_dir);
        let mut made = Vec::new();
        for r in files {
            let key = new_blob_key();
            let from = object_key(&VPath::parse(&r.path)?, r.blob.as_deref());
            if let Err(e) = self.copy_key(&from, &key).await {
                self.delete_blobs(&made).await;
                return Err(e);
            }
            made.push((r.path.clone(), key));
        }
        Ok(made)
    }

    /// Deletes the blobs a copy made that did not commit.
    async fn delete_blobs(&self, made: &[(String, String)]) {
        let keys: Vec<String> = made.iter().map(|(_, k)| k.clone()).collect();
        self.delete_blobs_named(&keys).await
    }

    /// Deletes blobs a change made that did not commit (nothing names them).
    pub(super) async fn delete_blobs_named(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self.op.delete(k).await {
                tracing::warn!(blob = %k, error = %e, "could not delete the blob of a failed change");
            }
        }
    }

    /// Object stores: commits a copy whose blobs are written (`change`, the rows); the storage
    /// step only copies aside a replaced file written at its path before blobs, to be kept.
    /// After the commit what stood at `to` goes: bytes at its path, blobs no row names.
    pub(super) async fn commit_copied_blobs<C, Fut>(
        &self,
        c: &Caller,
        to: &VPath,
        (keep, made, is_dir): (KeepAt, &[(String, String)], bool),
        change: C,
    ) -> Result<(), VfsError>
    where
        C: FnOnce(
                Option<Mark>,
                futures_util::future::BoxFuture<'static, Result<(), VfsError>>,
            ) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = Result<(), Committed<VfsError>>> + Send,
    {
        let (v, target) = (self.clone(), to.storage_key(false));
        let finish = Box::pin(async move { v.keep_object(&target, &keep).await });
        let guard = self.guard(c, vec![(to.clone(), false)]);
        let res = self.commit_with(guard, Vec::new(), finish, change).await;
        if res.is_err() {
            self.delete_blobs(made).await;
            return res;
        }
        self.delete_at_path(to, is_dir).await;
        self.sweep_gone_blobs().await;
        Ok(())
    }

    /// Object stores: deletes what is stored at the path `p` (and below it, for a folder):
    /// bytes written there before blobs, folder markers, once no row names them: every file
    /// written since has a blob, outside every bucket.
    pub(super) async fn delete_at_path(&self, p: &VPath, is_dir: bool) {
        let r = match is_dir {
            true => {
                self.op
                    .delete_with(&p.storage_key(true))
                    .recursive(true)
                    .await
            }
            false => self.op.delete(&p.storage_key(false)).await,
        };
        match r {
            Err(e) if e.kind() != opendal::ErrorKind::NotFound => {
                tracing::warn!(path = %p, error = %e, "its old bytes stay in storage")
            }
            _ => {}
        }
    }
}
