//! Atomic, streaming uploads: bytes go to a temporary object and become visible only on commit.

use bytes::Bytes;
use md5::{Digest, Md5};

use super::{Caller, Entry, VPath, Vfs, VfsError};
use crate::store::{now_ms, EntryRow};

/// How an upload may treat an existing file.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    /// Fail with `Exists` when the file is already there (If-None-Match: *).
    pub create_new: bool,
    /// Fail with `NotFound` when the file is not there (If-Match: *).
    pub must_exist: bool,
    /// Announced length; the commit fails unless exactly this many bytes arrived.
    pub expected_size: Option<u64>,
    /// MIME type; derived from the name when absent.
    pub content_type: Option<String>,
}

/// A write in progress. Dropping it without `commit` discards everything written.
pub struct Upload {
    vfs: Vfs,
    path: VPath,
    owner: String,
    opts: UploadOptions,
    writer: Option<opendal::Writer>,
    md5: Md5,
    written: u64,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish()
    }
}

impl Upload {
    pub(super) async fn start(
        vfs: Vfs,
        caller: &Caller,
        path: VPath,
        opts: UploadOptions,
    ) -> Result<Self, VfsError> {
        let writer = vfs.op.writer(&path.storage_key(false)).await?;
        Ok(Upload {
            vfs,
            path,
            owner: caller.user.clone(),
            opts,
            writer: Some(writer),
            md5: Md5::new(),
            written: 0,
        })
    }

    /// Appends a chunk; the chunk is handed to storage, not kept.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), VfsError> {
        let Some(w) = self.writer.as_mut() else {
            return Err(VfsError::Conflict("upload already finished"));
        };
        self.written += chunk.len() as u64;
        if let Some(expected) = self.opts.expected_size {
            if self.written > expected {
                let got = self.written;
                self.abort().await;
                return Err(VfsError::Incomplete { expected, got });
            }
        }
        self.md5.update(&chunk);
        if let Err(e) = w.write(chunk).await {
            self.abort().await;
            return Err(e.into());
        }
        Ok(())
    }

    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the file visible (rename into place) and records its metadata row.
    pub async fn commit(&mut self) -> Result<Entry, VfsError> {
        if let Some(expected) = self.opts.expected_size {
            if self.written != expected {
                self.abort().await;
                return Err(VfsError::Incomplete {
                    expected,
                    got: self.written,
                });
            }
        }
        let Some(mut w) = self.writer.take() else {
            return Err(VfsError::Conflict("upload already finished"));
        };
        w.close().await?;
        let etag = hex::encode(std::mem::take(&mut self.md5).finalize());
        let content_type = self.opts.content_type.clone().unwrap_or_else(|| {
            mime_guess::from_path(self.path.name())
                .first_or_octet_stream()
                .to_string()
        });
        let row = EntryRow {
            path: self.path.as_str().into(),
            parent: self.path.parent().as_str().into(),
            is_dir: false,
            size: self.written as i64,
            mtime_ms: now_ms(),
            etag,
            content_type: Some(content_type),
            owner: Some(self.owner.clone()),
        };
        self.vfs.store.put_file(&row).await?;
        Entry::from_row(row)
    }

    /// Discards the temporary object.
    pub async fn abort(&mut self) {
        if let Some(mut w) = self.writer.take() {
            if let Err(e) = w.abort().await {
                tracing::warn!(path = %self.path, error = %e, "could not discard an aborted upload");
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(mut w) = self.writer.take() {
            let path = self.path.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = w.abort().await {
                        tracing::warn!(%path, error = %e, "could not discard a dropped upload");
                    }
                });
            }
        }
    }
}
