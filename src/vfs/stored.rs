//! Raw access to stored bytes for backup and restore (docs/operations.md): a current file's
//! object (its blob on an object store) or a kept version's, read and written as streams, with
//! no namespace rule applied; only administrators' tools run with the data dir in hand call it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use super::storage::io_err;
use super::versions::version_object;
use super::{VPath, Vfs, VfsError};

/// Which stored object: the bytes of a current file, or kept bytes (a noncurrent version or
/// a trashed file) under their key in the versions store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The current file at this namespace path (`/bucket/a/b`).
    Current(String),
    /// Kept bytes under this versions-store key.
    Kept(String),
}

/// A stored object's bytes, in chunks.
pub type StoredStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Refuses names that would leave the storage tree (a tampered backup's object list): a
/// path must be canonical, a key plain relative segments.
fn checked(what: &Stored) -> Result<(), VfsError> {
    let ok = match what {
        Stored::Current(path) => {
            VPath::parse(path).is_ok_and(|p| p.as_str() == path && !p.is_root())
        }
        Stored::Kept(key) => {
            !key.is_empty()
                && key
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..")
        }
    };
    if ok {
        Ok(())
    } else {
        Err(VfsError::InvalidPath(format!(
            "not a stored object name: {what:?}"
        )))
    }
}

impl Vfs {
    /// The stored bytes of `what`, streamed; `NotFound` when there are none.
    pub async fn read_stored(&self, what: &Stored) -> Result<StoredStream, VfsError> {
        checked(what)?;
        if let Some(path) = self.disk_path(what) {
            let f = match tokio::fs::File::open(path).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(VfsError::NotFound)
                }
                r => r.map_err(io_err)?,
            };
            return Ok(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).boxed());
        }
        let key = self.object_of(what).await?;
        match self.op.stat(&key).await {
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Err(VfsError::NotFound),
            r => r?,
        };
        let reader = self.op.reader_with(&key).chunk(256 * 1024).await?;
        Ok(reader
            .into_bytes_stream(..)
            .await?
            .map_err(std::io::Error::other)
            .boxed())
    }

    /// Writes `what` from `body` (restore into an empty data dir), replacing what is there.
    pub async fn write_stored(
        &self,
        what: &Stored,
        mut body: StoredStream,
    ) -> Result<(), VfsError> {
        checked(what)?;
        if let (Some(path), Some(l)) = (self.disk_path(what), &self.local) {
            if let Some(dir) = path.parent() {
                self.make_disk_dirs(dir)?;
            }
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(l.file_mode)
                .open(&path)
                .await
                .map_err(io_err)?;
            while let Some(chunk) = body.try_next().await.map_err(io_err)? {
                f.write_all(&chunk).await.map_err(io_err)?;
            }
            f.sync_all().await.map_err(io_err)?;
            return Ok(());
        }
        let mut w = self.op.writer(&self.object_of(what).await?).await?;
        while let Some(chunk) = body.try_next().await.map_err(io_err)? {
            w.write(chunk).await?;
        }
        w.close().await?;
        Ok(())
    }

    /// Makes the stored folder of the namespace folder `path` (restore: empty folders too).
    pub async fn make_stored_folder(&self, path: &str) -> Result<(), VfsError> {
        checked(&Stored::Current(path.to_string()))?;
        let rel = path.trim_start_matches('/');
        match &self.local {
            Some(l) => self.make_disk_dirs(&l.root.join(rel)),
            None => Ok(self.op.create_dir(&format!("{rel}/")).await?),
        }
    }

    /// Whether the storage holds nothing yet (a restore writes only into empty storage).
    pub async fn storage_is_empty(&self) -> Result<bool, VfsError> {
        let mut lister = self.op.lister("").await?;
        while let Some(e) = lister.try_next().await? {
            if !e.path().trim_matches('/').is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Removes everything from the storage: only for a restore that found it empty and failed
    /// part way, so that the storage is empty again for the next attempt.
    pub async fn clear_storage(&self) -> Result<(), VfsError> {
        let mut lister = self.op.lister("").await?;
        let mut top = Vec::new();
        while let Some(e) = lister.try_next().await? {
            if !e.path().trim_matches('/').is_empty() {
                top.push(e.path().to_string());
            }
        }
        for p in top {
            self.op.delete_with(&p).recursive(true).await?;
        }
        Ok(())
    }

    /// Makes `dir` and its missing parents with the mode Kura gives its folders.
    fn make_disk_dirs(&self, dir: &Path) -> Result<(), VfsError> {
        use std::os::unix::fs::DirBuilderExt;
        let mode = self.local.as_ref().map_or(0o700, |l| l.dir_mode);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(io_err)
    }

    /// On `fs`, the file on disk holding `what`.
    fn disk_path(&self, what: &Stored) -> Option<PathBuf> {
        let l = self.local.as_ref()?;
        Some(match what {
            Stored::Current(path) => l.root.join(path.trim_start_matches('/')),
            Stored::Kept(key) => l.versions.join(key),
        })
    }

    /// The operator key of `what` on services other than `fs`: a current file's blob (its
    /// path when its row names none), kept bytes' object.
    async fn object_of(&self, what: &Stored) -> Result<String, VfsError> {
        Ok(match what {
            Stored::Current(path) => {
                let blob = self.store.entry(path).await?.and_then(|r| r.blob);
                super::blobs::object_key(&VPath::parse(path)?, blob.as_deref())
            }
            Stored::Kept(key) => version_object(key),
        })
    }
}
