//! The core: every rule about the namespace lives here, once, for every protocol.
//!
//! Adapters (WebDAV, S3) translate their requests into these calls and
//! `VfsError` into their own error replies; they hold no policy of their own.

pub(crate) mod multipart;
pub mod path;
mod storage;
mod upload;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opendal::Operator;

use crate::store::{DeadProp, EntryRow, MetaError, Store};
pub use multipart::CompletedPart;
pub use path::VPath;
pub use storage::{build_operator, build_staging, sweep_temp, StorageConfig};
pub use upload::{Upload, UploadOptions};

use std::collections::BTreeMap;

/// Errors of the core, mapped to protocol replies by each adapter's one error module.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    /// No such file or folder.
    #[error("not found")]
    NotFound,
    /// The target exists and may not be replaced.
    #[error("already exists")]
    Exists,
    /// The parent folder is missing or is a file.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A folder was given where a file is needed, or the reverse.
    #[error("wrong kind of entry: {0}")]
    WrongKind(&'static str),
    /// The path breaks the naming rules.
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// The body ended before its announced length (or ran past it).
    #[error("upload incomplete: expected {expected} bytes, got {got}")]
    Incomplete { expected: u64, got: u64 },
    /// The content does not match the digest the client sent.
    #[error("bad digest: {0}")]
    BadDigest(String),
    /// The multipart upload id is unknown (or for another object).
    #[error("no such multipart upload")]
    NoSuchUpload,
    /// A part named on completion is missing or does not match.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// Parts on completion are not in ascending order.
    #[error("parts must be listed in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB.
    #[error("a part other than the last is smaller than 5 MiB")]
    EntityTooSmall,
    /// An argument is out of its range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The storage backend failed.
    #[error("storage error: {0}")]
    Storage(#[from] opendal::Error),
    /// The metadata database failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Who is asking: every core call carries it so rules can be checked in one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Authenticated user name.
    pub user: String,
    /// Administrators bypass permission checks.
    pub is_admin: bool,
}

/// What a protocol needs to know about a file or folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Canonical path.
    pub path: VPath,
    /// Folder or file.
    pub is_dir: bool,
    /// Content length in bytes.
    pub size: u64,
    /// Last modification time.
    pub mtime: SystemTime,
    /// Hex MD5 of the content (files); a version tag (folders).
    pub etag: String,
    /// MIME type.
    pub content_type: String,
    /// Creating user.
    pub owner: Option<String>,
    /// Stored object headers (S3 user metadata, Content-Disposition, checksums, ...).
    pub headers: BTreeMap<String, String>,
}

/// Serialises stored headers; `None` when there are none.
pub(crate) fn headers_json(h: &BTreeMap<String, String>) -> Option<String> {
    if h.is_empty() {
        None
    } else {
        serde_json::to_string(h).ok()
    }
}

fn headers_from(json: Option<&str>) -> BTreeMap<String, String> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

impl Entry {
    /// Modification time in whole seconds, the precision of HTTP dates, so that
    /// `If-Modified-Since: <Last-Modified>` matches on every protocol.
    pub fn http_mtime(&self) -> SystemTime {
        let secs = self
            .mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn from_row(row: EntryRow) -> Result<Self, VfsError> {
        let headers = headers_from(row.headers.as_deref());
        Ok(Entry {
            headers,
            path: VPath::parse(&row.path)?,
            is_dir: row.is_dir,
            size: row.size.max(0) as u64,
            mtime: UNIX_EPOCH + Duration::from_millis(row.mtime_ms.max(0) as u64),
            etag: row.etag,
            content_type: row
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            owner: row.owner,
        })
    }
}

/// An open file being read; reads are positional so ranges cost nothing extra.
pub struct Download {
    reader: opendal::Reader,
    size: u64,
}

impl Download {
    /// Reads up to `len` bytes at `offset`; empty at end of file.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, VfsError> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + len as u64).min(self.size);
        Ok(self.reader.read(offset..end).await?.to_bytes())
    }

    /// The bytes of `range` as a stream of bounded chunks (for protocol bodies).
    pub async fn into_stream(
        self,
        range: std::ops::Range<u64>,
    ) -> Result<
        impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static,
        VfsError,
    > {
        Ok(self.reader.into_bytes_stream(range).await?)
    }
}

/// Read size of streamed bodies: large enough for throughput, small enough to bound memory.
const CHUNK: usize = 256 * 1024;

/// The namespace: SQL metadata plus an OpenDAL operator holding the bytes.
#[derive(Clone)]
pub struct Vfs {
    op: Operator,
    staging: Operator,
    store: Store,
    local_root: Option<PathBuf>,
    started: SystemTime,
}

impl Vfs {
    /// Wraps the storage operator, the staging operator (multipart parts, outside the visible
    /// tree) and a store; `local_root` is the folder of an `fs` operator, which
    /// allows moving a folder with one rename and reporting free disk space.
    pub fn new(op: Operator, staging: Operator, store: Store, local_root: Option<PathBuf>) -> Self {
        Vfs {
            op,
            staging,
            store,
            local_root,
            started: SystemTime::now(),
        }
    }

    /// Free bytes on the disk holding the files, when that is knowable.
    pub fn available_bytes(&self) -> Option<u64> {
        self.local_root
            .as_ref()
            .and_then(|r| fs4::available_space(r).ok())
    }

    /// Metadata of a path; the root always exists.
    pub async fn stat(&self, _caller: &Caller, path: &VPath) -> Result<Entry, VfsError> {
        self.lookup(path).await?.ok_or(VfsError::NotFound)
    }

    async fn lookup(&self, path: &VPath) -> Result<Option<Entry>, VfsError> {
        if path.is_root() {
            return Ok(Some(Entry {
                path: VPath::root(),
                is_dir: true,
                size: 0,
                mtime: self.started,
                etag: "root".into(),
                content_type: "httpd/unix-directory".into(),
                owner: None,
                headers: BTreeMap::new(),
            }));
        }
        match self.store.entry(path.as_str()).await? {
            Some(row) => Ok(Some(Entry::from_row(row)?)),
            None => Ok(None),
        }
    }

    /// The entries of a folder, from one SQL query and no storage calls.
    pub async fn list(&self, caller: &Caller, path: &VPath) -> Result<Vec<Entry>, VfsError> {
        let dir = self.stat(caller, path).await?;
        if !dir.is_dir {
            return Err(VfsError::WrongKind("not a folder"));
        }
        self.store
            .children(path.as_str())
            .await?
            .into_iter()
            .map(Entry::from_row)
            .collect()
    }

    /// Opens a file for positional reads.
    pub async fn open_read(
        &self,
        caller: &Caller,
        path: &VPath,
    ) -> Result<(Entry, Download), VfsError> {
        let entry = self.stat(caller, path).await?;
        if entry.is_dir {
            return Err(VfsError::WrongKind("is a folder"));
        }
        let reader = self
            .op
            .reader_with(&path.storage_key(false))
            .chunk(CHUNK)
            .await?;
        let size = entry.size;
        Ok((entry, Download { reader, size }))
    }

    /// Starts an atomic upload: nothing is visible until `Upload::commit`.
    pub async fn upload(
        &self,
        caller: &Caller,
        path: &VPath,
        opts: UploadOptions,
    ) -> Result<Upload, VfsError> {
        if opts.create_parents {
            // created on commit, so a failed upload leaves no folders behind
            self.check_parents_creatable(&path.parent()).await?;
        } else {
            self.require_parent_dir(path).await?;
        }
        match self.lookup(path).await? {
            Some(e) if e.is_dir => return Err(VfsError::WrongKind("is a folder")),
            Some(_) if opts.create_new => return Err(VfsError::Exists),
            None if opts.must_exist => return Err(VfsError::NotFound),
            _ => {}
        }
        Upload::start(self.clone(), caller, path.clone(), opts).await
    }

    /// Creates one folder; its parent must exist.
    pub async fn mkdir(&self, caller: &Caller, path: &VPath) -> Result<(), VfsError> {
        if path.is_root() {
            return Err(VfsError::Exists);
        }
        self.require_parent_dir(path).await?;
        if self.lookup(path).await?.is_some() {
            return Err(VfsError::Exists);
        }
        self.op.create_dir(&path.storage_key(true)).await?;
        let now = crate::store::now_ms();
        let row = EntryRow {
            path: path.as_str().into(),
            parent: path.parent().as_str().into(),
            is_dir: true,
            size: 0,
            mtime_ms: now,
            etag: format!("d{now:x}"),
            content_type: None,
            owner: Some(caller.user.clone()),
            headers: None,
        };
        self.store.insert_dir(&row).await.map_err(|e| match e {
            MetaError::Duplicate => VfsError::Exists,
            e => e.into(),
        })
    }

    /// Creates a folder and any missing ancestors; existing folders are fine, a file in the way is not.
    pub async fn mkdir_all(&self, caller: &Caller, path: &VPath) -> Result<(), VfsError> {
        let mut chain = vec![path.clone()];
        while let Some(p) = chain.last().map(VPath::parent) {
            if p.is_root() {
                break;
            }
            chain.push(p);
        }
        for p in chain.iter().rev().filter(|p| !p.is_root()) {
            match self.lookup(p).await? {
                Some(e) if e.is_dir => continue,
                Some(_) => return Err(VfsError::Conflict("a file is in the way of a folder")),
                None => match self.mkdir(caller, p).await {
                    Ok(()) | Err(VfsError::Exists) => {}
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }

    /// Fails with `Conflict` when a file stands where a folder of `path` (or `path`) would be.
    async fn check_parents_creatable(&self, path: &VPath) -> Result<(), VfsError> {
        let mut p = path.clone();
        while !p.is_root() {
            match self.lookup(&p).await? {
                Some(e) if e.is_dir => return Ok(()),
                Some(_) => return Err(VfsError::Conflict("a file is in the way of a folder")),
                None => p = p.parent(),
            }
        }
        Ok(())
    }

    /// Files below `dir` whose relative name starts with `prefix` and sorts after `after`, in
    /// name order, at most `limit` (S3's recursive listing); one SQL query.
    pub async fn files_below(
        &self,
        caller: &Caller,
        dir: &VPath,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Entry>, VfsError> {
        self.stat(caller, dir).await?;
        let base = if dir.is_root() {
            String::from("/")
        } else {
            format!("{dir}/")
        };
        let lo = format!("{base}{prefix}");
        let hi = format!("{lo}{}", char::MAX);
        let after = if after.is_empty() {
            String::new()
        } else {
            format!("{base}{after}")
        };
        self.store
            .files_in_range(&lo, &hi, &after, limit as i64)
            .await?
            .into_iter()
            .map(Entry::from_row)
            .collect()
    }

    /// Replaces the type and headers of a file, keeping its bytes (S3 metadata REPLACE in place).
    pub async fn set_headers(
        &self,
        caller: &Caller,
        path: &VPath,
        content_type: Option<&str>,
        headers: &BTreeMap<String, String>,
    ) -> Result<(), VfsError> {
        let e = self.stat(caller, path).await?;
        if e.is_dir {
            return Err(VfsError::WrongKind("is a folder"));
        }
        let ct = content_type.unwrap_or(&e.content_type);
        self.store
            .set_headers(
                path.as_str(),
                Some(ct),
                headers_json(headers).as_deref(),
                crate::store::now_ms(),
            )
            .await?;
        Ok(())
    }

    /// Deletes a file, or a folder with everything below it (metadata first, in one transaction).
    pub async fn delete(&self, caller: &Caller, path: &VPath) -> Result<(), VfsError> {
        if path.is_root() {
            return Err(VfsError::WrongKind("the root cannot be deleted"));
        }
        let entry = self.stat(caller, path).await?;
        self.store.delete_tree(path.as_str()).await?;
        if entry.is_dir {
            self.op
                .delete_with(&path.storage_key(true))
                .recursive(true)
                .await?;
        } else {
            self.op.delete(&path.storage_key(false)).await?;
        }
        Ok(())
    }

    /// Moves a file or folder; an existing destination file is replaced, a folder is not.
    pub async fn rename(&self, caller: &Caller, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        let src = self.stat(caller, from).await?;
        self.check_transfer(&src, from, to).await?;
        if src.is_dir {
            if self.local_root.is_some() {
                self.op
                    .rename(&from.storage_key(false), &to.storage_key(false))
                    .await?;
            } else {
                self.copy_tree_bytes(from, to).await?;
                self.op
                    .delete_with(&from.storage_key(true))
                    .recursive(true)
                    .await?;
            }
        } else {
            self.move_file_bytes(from, to).await?;
        }
        self.store
            .move_tree(from.as_str(), to.as_str(), to.parent().as_str())
            .await?;
        Ok(())
    }

    /// Copies a file, or a folder with everything below it; all metadata rows are written
    /// in one transaction after the bytes (copied inside the storage service when it can).
    pub async fn copy(&self, caller: &Caller, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        let src = self.stat(caller, from).await?;
        self.check_transfer(&src, from, to).await?;
        if src.is_dir {
            self.copy_tree_bytes(from, to).await?;
        } else {
            self.copy_file_bytes(from, to).await?;
        }
        self.store
            .copy_tree(
                from.as_str(),
                to.as_str(),
                to.parent().as_str(),
                &caller.user,
                crate::store::now_ms(),
            )
            .await?;
        Ok(())
    }

    /// Dead properties of an entry.
    pub async fn props(&self, caller: &Caller, path: &VPath) -> Result<Vec<DeadProp>, VfsError> {
        self.stat(caller, path).await?;
        Ok(self.store.props(path.as_str()).await?)
    }

    /// Sets and removes dead properties atomically.
    pub async fn patch_props(
        &self,
        caller: &Caller,
        path: &VPath,
        patch: &[(bool, DeadProp)],
    ) -> Result<(), VfsError> {
        self.stat(caller, path).await?;
        Ok(self.store.patch_props(path.as_str(), patch).await?)
    }

    /// Bytes used by all files, for RFC 4331 quota properties.
    pub async fn used_bytes(&self, _caller: &Caller) -> Result<u64, VfsError> {
        Ok(self.store.used_bytes().await?.max(0) as u64)
    }

    async fn require_parent_dir(&self, path: &VPath) -> Result<(), VfsError> {
        match self.lookup(&path.parent()).await? {
            Some(p) if p.is_dir => Ok(()),
            Some(_) => Err(VfsError::Conflict("parent is a file")),
            None => Err(VfsError::Conflict("parent folder does not exist")),
        }
    }

    /// Shared preconditions of MOVE and COPY.
    async fn check_transfer(&self, src: &Entry, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        if to.is_root() || to.starts_with(from) || from == to {
            return Err(VfsError::Conflict("destination is the source or inside it"));
        }
        self.require_parent_dir(to).await?;
        if let Some(dst) = self.lookup(to).await? {
            if dst.is_dir || src.is_dir {
                return Err(VfsError::Exists);
            }
        }
        Ok(())
    }

    async fn move_file_bytes(&self, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        let cap = self.op.info().capability();
        let (f, t) = (from.storage_key(false), to.storage_key(false));
        if cap.rename {
            self.op.rename(&f, &t).await?;
        } else {
            self.copy_file_bytes(from, to).await?;
            self.op.delete(&f).await?;
        }
        Ok(())
    }

    async fn copy_file_bytes(&self, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        let (f, t) = (from.storage_key(false), to.storage_key(false));
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

    /// Copies a folder tree in storage, file by file.
    async fn copy_tree_bytes(&self, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        self.op.create_dir(&to.storage_key(true)).await?;
        for row in self.store.subtree(from.as_str()).await? {
            let path = VPath::parse(&row.path)?;
            let target = path.rebase(from, to);
            if row.is_dir {
                self.op.create_dir(&target.storage_key(true)).await?;
            } else {
                self.copy_file_bytes(&path, &target).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
