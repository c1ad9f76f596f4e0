//! Atomic, streaming uploads: bytes go to a temporary object and become visible only on commit.

use std::collections::BTreeMap;

use bytes::Bytes;
use md5::{Digest, Md5};

use super::disk::DiskTemp;
use super::journal::Step;
use super::storage::io_err;
use super::{Caller, Entry, VPath, Vfs, VfsError};
use crate::store::{now_ms, Committed, EntryRow, MetaError, WriteRules, NO_PARENT};

/// How an upload may treat an existing file, and what it stores with the bytes.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    /// Fail with `Exists` when the file is already there (If-None-Match: *).
    pub create_new: bool,
    /// Fail with `NotFound` when the file is not there (If-Match: *).
    pub must_exist: bool,
    /// Fail unless the file there has this ETag (If-Match: "etag"): `NotFound` without a
    /// file, `PreconditionFailed` at the checks, `Changed` when it changed before the commit.
    pub if_match: Option<String>,
    /// Create missing parent folders (S3 keys imply their prefixes).
    pub create_parents: bool,
    /// Announced length; the commit fails unless exactly this many bytes arrived.
    pub expected_size: Option<u64>,
    /// MIME type; derived from the name when absent.
    pub content_type: Option<String>,
    /// Object headers kept with the file (S3 user metadata, Content-Disposition, ...).
    pub headers: BTreeMap<String, String>,
    /// ETag to record instead of the content MD5 (multipart objects).
    pub etag: Option<String>,
    /// Hex MD5 the content must have (Content-MD5); checked before anything becomes visible.
    pub content_md5: Option<String>,
    /// Keep the replaced file's tags and description, read inside the commit (a WebDAV PUT
    /// writes new content into the same resource; an S3 PutObject replaces the object).
    pub keep_annotations: bool,
    /// The S3 client's key (SSE-C): the file is sealed under a data key wrapped by it, whatever
    /// the bucket's setting, and opens only with it.
    pub customer_key: Option<crate::seal::CustomerKey>,
    /// The multipart (or resumable) upload this write completes: ended in the same commit,
    /// which fails with `NoSuchUpload` when another completion or an abort ended it first.
    pub completes_upload: Option<String>,
}

/// Longest MIME type a file may carry.
const MAX_CONTENT_TYPE: usize = 1024;

/// Whether `ct` may be a file's MIME type: every protocol sends it back as a header value
/// (WebDAV and S3 `Content-Type`, `getcontenttype`), so it is visible ASCII and spaces only.
/// A tus client sends it base64-encoded, where CR LF and any other byte fit.
pub fn valid_content_type(ct: &str) -> bool {
    ct.len() <= MAX_CONTENT_TYPE
        && ct
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}

/// Refuses a MIME type that is no header value (`valid_content_type`).
pub(super) fn check_content_type(ct: Option<&str>) -> Result<(), VfsError> {
    match ct {
        Some(t) if !valid_content_type(t) => Err(VfsError::InvalidArgument(
            "the content type is not a header value (visible ASCII, at most 1024 bytes)",
        )),
        _ => Ok(()),
    }
}

/// Where an upload's bytes go until the commit.
pub(super) enum Temp {
    /// An OpenDAL writer (memory, S3, ...), whose temporary object OpenDAL keeps.
    Store(opendal::Writer),
    /// A temporary file on the local disk (`fs`).
    Disk(DiskTemp),
}

impl Temp {
    /// Makes the object visible; a failed close discards it.
    async fn close(self, label: &str) -> Result<(), VfsError> {
        match self {
            Temp::Disk(mut d) => d.close().await.map_err(io_err),
            Temp::Store(mut w) => {
                if let Err(e) = w.close().await {
                    if let Err(a) = w.abort().await {
                        tracing::warn!(target = %label, error = %a, "could not discard a failed upload");
                    }
                    return Err(e.into());
                }
                Ok(())
            }
        }
    }

    async fn abort(self, label: &str) {
        if let Temp::Store(mut w) = self {
            if let Err(e) = w.abort().await {
                tracing::warn!(target = %label, error = %e, "could not discard an aborted upload");
            }
        }
    }
}

impl Vfs {
    /// Where an upload of `key` goes: the visible tree, or (`staged`) the multipart staging.
    pub(super) async fn temp(&self, key: &str, staged: bool) -> Result<Temp, VfsError> {
        if let Some(l) = &self.local {
            let root = if staged { &l.staging } else { &l.root };
            return Ok(Temp::Disk(DiskTemp::new(
                l.tmp.clone(),
                root.join(key),
                l.file_mode,
                l.durable,
            )));
        }
        let op = if staged { &self.staging } else { &self.op };
        Ok(Temp::Store(op.writer(key).await?))
    }
}

/// Bytes streaming into a temporary object, with their MD5 and count; discarded unless closed.
pub(super) struct Sink {
    writer: Option<Temp>,
    md5: Md5,
    written: u64,
    expected: Option<u64>,
    pub(super) expected_md5: Option<String>,
    /// Bytes the quota allows; a body growing past it is cut off at once.
    limit: Option<u64>,
    /// The group whose quota sets `limit`.
    limit_group: String,
    label: String,
    /// The first write, which creates the temporary object, is done.
    created: bool,
    /// Seals the bytes on their way to storage (an encrypted bucket's file).
    sealer: Option<crate::seal::Sealer>,
    /// The wrapped data key of the sealed bytes, recorded with the file.
    pub(super) wrapped: Option<String>,
}

impl Sink {
    pub(super) fn new(writer: Temp, expected: Option<u64>, label: String) -> Self {
        Sink {
            writer: Some(writer),
            md5: Md5::new(),
            written: 0,
            expected,
            expected_md5: None,
            limit: None,
            limit_group: String::new(),
            label,
            created: false,
            sealer: None,
            wrapped: None,
        }
    }

    /// Seals what is written with `key` (recorded as `wrapped`).
    pub(super) fn seal_with(&mut self, key: &crate::seal::DataKey, wrapped: String) {
        self.sealer = Some(crate::seal::Sealer::new(key));
        self.wrapped = Some(wrapped);
    }

    /// Cuts the body off past `bytes` (what `group`'s quota leaves).
    pub(super) fn limit_to(&mut self, group: String, bytes: u64) {
        self.limit = Some(bytes);
        self.limit_group = group;
    }

    pub(super) async fn write(&mut self, chunk: Bytes) -> Result<(), VfsError> {
        if self.writer.is_none() {
            return Err(VfsError::Conflict("upload already finished"));
        }
        self.written += chunk.len() as u64;
        if let Some(expected) = self.expected {
            if self.written > expected {
                let got = self.written;
                self.abort().await;
                return Err(VfsError::Incomplete { expected, got });
            }
        }
        if self.limit.is_some_and(|l| self.written > l) {
            self.abort().await;
            return Err(VfsError::QuotaExceeded(self.limit_group.clone()));
        }
        self.md5.update(&chunk);
        let chunk = match self.sealer.as_mut() {
            Some(s) => Bytes::from(s.push(&chunk)),
            None => chunk,
        };
        self.put(chunk).await
    }

    /// Hands stored bytes to the temporary object.
    async fn put(&mut self, chunk: Bytes) -> Result<(), VfsError> {
        let Some(w) = self.writer.as_mut() else {
            return Err(VfsError::Conflict("upload already finished"));
        };
        let written = match w {
            Temp::Disk(d) => d.write(chunk).await.map_err(io_err),
            Temp::Store(w) if self.created || chunk.is_empty() => {
                w.write(chunk).await.map_err(VfsError::from)
            }
            Temp::Store(_) => self.create(chunk).await.map_err(VfsError::from),
        };
        if let Err(e) = written {
            self.abort().await;
            return Err(e);
        }
        Ok(())
    }

    /// The first write creates the temporary object (on `fs`, the file in `tmp/`). Cancelled
    /// while that is under way, the file would exist with no writer left to remove it, so it
    /// runs in a task of its own, which discards the object if the upload is gone by then.
    async fn create(&mut self, chunk: Bytes) -> opendal::Result<()> {
        let Some(Temp::Store(w)) = self.writer.take() else {
            return Ok(());
        };
        let mut held = Held(Some(w), self.label.clone());
        let done = tokio::spawn(async move {
            let r = match held.0.as_mut() {
                Some(w) => w.write(chunk).await,
                None => Ok(()),
            };
            (held, r)
        });
        match done.await {
            Ok((mut held, r)) => {
                self.writer = held.0.take().map(Temp::Store);
                self.created = r.is_ok();
                r
            }
            Err(e) => Err(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                format!("the first write of an upload failed: {e}"),
            )),
        }
    }

    /// Checks the announced size and digest once all bytes are in; nothing is visible yet.
    /// Returns the hex MD5 and the size.
    pub(super) async fn seal(&mut self) -> Result<(String, u64), VfsError> {
        if self.writer.is_none() {
            return Err(VfsError::Conflict("upload already finished"));
        }
        if let Some(expected) = self.expected {
            if self.written != expected {
                self.abort().await;
                return Err(VfsError::Incomplete {
                    expected,
                    got: self.written,
                });
            }
        }
        let md5 = hex::encode(std::mem::take(&mut self.md5).finalize());
        if let Some(want) = self.expected_md5.take() {
            if !want.eq_ignore_ascii_case(&md5) {
                self.abort().await;
                return Err(VfsError::BadDigest(format!(
                    "Content-MD5 {want} but the body has {md5}"
                )));
            }
        }
        if let Some(s) = self.sealer.take() {
            self.put(Bytes::from(s.finish())).await?;
        }
        if let Some(Temp::Disk(d)) = self.writer.as_mut() {
            if let Err(e) = d.sync().await {
                self.abort().await;
                return Err(io_err(e));
            }
        }
        Ok((md5, self.written))
    }

    /// Makes the sealed object visible (the rename of the temporary file); a failed close
    /// discards it.
    pub(super) async fn close(&mut self) -> Result<(), VfsError> {
        let Some(t) = self.writer.take() else {
            return Err(VfsError::Conflict("upload already finished"));
        };
        t.close(&self.label).await
    }

    /// The sealed temporary file on the local disk, for a journaled commit.
    pub(super) fn disk_path(&self) -> Option<std::path::PathBuf> {
        match &self.writer {
            Some(Temp::Disk(d)) => d.sealed_path(),
            _ => None,
        }
    }

    /// Forgets the temporary file a journaled commit renamed into place.
    pub(super) fn disarm(&mut self) {
        if let Some(Temp::Disk(mut d)) = self.writer.take() {
            d.disarm();
        }
    }

    /// Moves the upload out (to a task of its own), leaving a finished sink behind.
    pub(super) fn take(&mut self) -> Sink {
        Sink {
            writer: self.writer.take(),
            md5: std::mem::take(&mut self.md5),
            written: self.written,
            expected: self.expected,
            expected_md5: self.expected_md5.take(),
            limit: self.limit,
            limit_group: self.limit_group.clone(),
            label: self.label.clone(),
            created: self.created,
            sealer: self.sealer.take(),
            wrapped: self.wrapped.take(),
        }
    }

    pub(super) async fn abort(&mut self) {
        if let Some(t) = self.writer.take() {
            t.abort(&self.label).await
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // a temporary file on disk removes itself
        if let Some(Temp::Store(w)) = self.writer.take() {
            discard_later(w, std::mem::take(&mut self.label));
        }
    }
}

/// A writer in a task of its own; discarded if nobody takes it back.
struct Held(Option<opendal::Writer>, String);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            discard_later(w, std::mem::take(&mut self.1));
        }
    }
}

/// Removes the temporary object of a dropped upload (drop cannot wait for it).
fn discard_later(mut w: opendal::Writer, label: String) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            if let Err(e) = w.abort().await {
                tracing::warn!(target = %label, error = %e, "could not discard a dropped upload");
            }
        });
    }
}

/// Runs a commit to its end even when the request awaiting it is dropped (a client that
/// disconnects mid-commit): cancelled half way, it would leave a renamed file without its
/// metadata row, or a temporary file that nobody removes.
pub(super) async fn to_the_end<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, VfsError>> + Send + 'static,
) -> Result<T, VfsError> {
    match tokio::spawn(crate::wire::audit::carry(work)).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(VfsError::Storage(opendal::Error::new(
            opendal::ErrorKind::Unexpected,
            "the server is shutting down",
        ))),
    }
}

/// Owner, group and mode a new file gets when they are not the uploader's defaults.
#[derive(Clone, Debug, Default)]
pub(super) struct Keep {
    /// Owning user (default: the uploader).
    pub owner: Option<String>,
    /// Owning group (default: the parent folder's rule).
    pub group: Option<String>,
    /// Permission bits (default: 0666 less the umask).
    pub mode: Option<u32>,
}

impl Keep {
    /// Whether applying these to `row` would change its owner, group or mode.
    pub fn differs_from(&self, row: &crate::store::EntryRow) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|o| row.owner.as_ref() != Some(o))
            || self
                .group
                .as_ref()
                .is_some_and(|g| row.grp.as_ref() != Some(g))
            || self.mode.is_some_and(|m| i64::from(m) != row.mode)
    }
}

/// A write in progress. Dropping it without `commit` discards everything written.
pub struct Upload {
    pub(super) vfs: Vfs,
    pub(super) path: VPath,
    pub(super) caller: Caller,
    opts: UploadOptions,
    sink: Sink,
    /// Owner, group and mode the committed file gets instead of the defaults (a version
    /// shipped by a replication peer keeps its own).
    pub(super) keep: Keep,
    /// The parent folder as the checks found it (saves a lookup at commit).
    pub(super) parent: Option<Entry>,
    /// A commit refused by its preconditions (`create_new`, `if_match`: `Changed`) keeps the
    /// staged bytes, for a caller that decides again and commits them another way (a
    /// replication shipment meeting a local write).
    pub(super) keep_refused: bool,
    /// The blob the bytes go to (object stores), named by the row the commit writes.
    blob: Option<String>,
}

impl Drop for Upload {
    /// A completed blob no commit came to name (a refused commit kept for another attempt
    /// that never came) is deleted; an open writer is the sink's to discard.
    fn drop(&mut self) {
        if self.sink.writer.is_some() {
            return;
        }
        if let (Some(b), Ok(rt)) = (self.blob.take(), tokio::runtime::Handle::try_current()) {
            let op = self.vfs.op.clone();
            rt.spawn(async move {
                if let Err(e) = op.delete(&b).await {
                    tracing::warn!(blob = %b, error = %e, "could not delete an uncommitted blob");
                }
            });
        }
    }
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("path", &self.path)
            .field("written", &self.sink.written)
            .finish()
    }
}

impl Upload {
    pub(super) async fn start(
        vfs: Vfs,
        caller: &Caller,
        path: VPath,
        opts: UploadOptions,
        freed: u64,
    ) -> Result<Self, VfsError> {
        if let Some(n) = opts.expected_size {
            vfs.make_room(&path, n.saturating_sub(freed)).await?;
        }
        // an object store: the bytes go to a new blob nothing names until the commit
        let blob = vfs.uses_blobs().then(super::blobs::new_blob_key);
        let key = blob.clone().unwrap_or_else(|| path.storage_key(false));
        let writer = vfs.temp(&key, false).await?;
        let mut sink = Sink::new(writer, opts.expected_size, path.to_string());
        sink.expected_md5 = opts.content_md5.clone();
        if let Some((key, wrapped)) = vfs.sealing_for(&path, opts.customer_key.as_ref()).await? {
            sink.seal_with(&key, wrapped);
        }
        // what the quota leaves, plus what replacing the file gives back (`freed` bytes:
        // `Vfs::freed_by_overwrite`, the commit's rule)
        if let Some((group, left)) = vfs.store.bytes_left(path.as_str()).await? {
            let limit = (left + freed as i64).max(0) as u64;
            if opts.expected_size.is_some_and(|n| n > limit) {
                return Err(VfsError::QuotaExceeded(group));
            }
            sink.limit_to(group, limit);
        }
        Ok(Upload {
            vfs,
            path,
            caller: caller.clone(),
            opts,
            sink,
            keep: Keep::default(),
            parent: None,
            keep_refused: false,
            blob,
        })
    }

    /// Appends a chunk; the chunk is handed to storage, not kept.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), VfsError> {
        self.sink.write(chunk).await
    }

    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.sink.written
    }

    /// Replaces the headers to store (known only after the body, e.g. trailer checksums).
    pub fn set_headers(&mut self, headers: BTreeMap<String, String>) {
        self.opts.headers = headers;
    }

    /// Makes the file visible (rename into place) and records its metadata row.
    pub async fn commit(&mut self) -> Result<Entry, VfsError> {
        let mut owned = self.detach();
        to_the_end(async move {
            let (md5, size) = owned.seal().await?;
            owned.record(md5, size, now_ms(), None, None).await
        })
        .await
    }

    /// Moves the upload out of `self` (left empty), to finish it in a task of its own.
    pub(super) fn detach(&mut self) -> Upload {
        Upload {
            vfs: self.vfs.clone(),
            path: self.path.clone(),
            caller: self.caller.clone(),
            opts: std::mem::take(&mut self.opts),
            sink: self.sink.take(),
            keep: std::mem::take(&mut self.keep),
            parent: self.parent.take(),
            keep_refused: self.keep_refused,
            blob: self.blob.take(),
        }
    }

    /// The headers to store.
    pub(super) fn headers(&self) -> &BTreeMap<String, String> {
        &self.opts.headers
    }

    /// What the commit requires of the path, checked inside its transaction: nothing there
    /// (`create_new`), or the file still at the ETag `if_match`; `Changed` otherwise.
    pub(super) fn require(&mut self, create_new: bool, if_match: Option<String>) {
        self.opts.create_new = create_new;
        self.opts.if_match = if_match;
        self.opts.must_exist = false;
    }

    /// Commits the staged bytes at `path` instead, written by `caller` with `keep`, after the
    /// same checks as an upload starting there. Staged bytes in a local temporary file or in a
    /// blob can go elsewhere (`Changed` otherwise: the bytes are bound to their key).
    pub(super) async fn retarget(
        &mut self,
        caller: &Caller,
        path: &VPath,
        keep: Keep,
    ) -> Result<(), VfsError> {
        if *path != self.path && self.sink.disk_path().is_none() && self.blob.is_none() {
            return Err(VfsError::Changed(
                "the staged bytes cannot move to another name on this storage",
            ));
        }
        let mut opts = self.opts.clone();
        opts.create_new = false;
        opts.if_match = None;
        opts.must_exist = false;
        let (_, parent) = self.vfs.check_write(caller, path, &opts).await?;
        self.vfs
            .check_unlocked(caller, vec![(path.clone(), false)])
            .await?;
        self.path = path.clone();
        self.parent = parent;
        self.caller = caller.clone();
        self.keep = keep;
        Ok(())
    }

    /// Ends the body: its MD5 (checked against Content-MD5) and size.
    pub(super) async fn seal(&mut self) -> Result<(String, u64), VfsError> {
        self.sink.seal().await
    }

    /// Commits the sealed bytes at `self.path` with the given time, origin and ETag. Missing
    /// folders above an S3 key are made implicit in the commit's transaction; one pruned since
    /// the checks found it (its last other entry went meanwhile) is made again, since S3 keys
    /// have no folder to lose.
    pub(super) async fn record(
        &mut self,
        md5: String,
        size: u64,
        mtime_ms: i64,
        origin: Option<String>,
        etag: Option<String>,
    ) -> Result<Entry, VfsError> {
        let mut parent = self.parent.take().filter(|p| p.path == self.path.parent());
        // a blob is complete before the transaction (S3: the multipart upload completes);
        // nothing names it yet, so a commit that fails leaves nothing visible
        if self.blob.is_some() && self.sink.writer.is_some() {
            self.sink.close().await?;
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let parents = match parent.take() {
                Some(p) => Ok((p, Vec::new())),
                None if self.opts.create_parents => {
                    self.vfs
                        .implicit_parents(&self.caller, &self.path.parent())
                        .await
                }
                None => self
                    .vfs
                    .parent_of(&self.path, None)
                    .await
                    .map(|p| (p, Vec::new())),
            };
            let (dir, parents) = match parents {
                Ok(found) => found,
                Err(e) => {
                    self.discard().await;
                    return Err(e);
                }
            };
            let row = self.row(&dir, &parents, &md5, size, mtime_ms, &origin, &etag);
            match self.commit_row(&row, &parents).await {
                Err(Committed::Meta(MetaError::Conflict(NO_PARENT)))
                    if self.opts.create_parents && tries < 3 => {}
                Ok(()) => {
                    // the row names the blob now
                    self.blob = None;
                    return Entry::from_row(row);
                }
                Err(e) => {
                    let e = match e {
                        // create_new: another upload committed the name first
                        Committed::Meta(MetaError::Duplicate) => {
                            VfsError::Changed("another write created the file meanwhile")
                        }
                        e => e.into(),
                    };
                    if !(self.keep_refused && matches!(e, VfsError::Changed(_))) {
                        self.discard().await;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The row of the file, in `dir` below the implicit folders `parents` to make.
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        dir: &Entry,
        parents: &[EntryRow],
        md5: &str,
        size: u64,
        mtime_ms: i64,
        origin: &Option<String>,
        etag: &Option<String>,
    ) -> EntryRow {
        let grp = match parents.last() {
            Some(p) => p.grp.clone(),
            None => Vfs::group_for_new(&self.caller, dir),
        };
        let grp = self.keep.group.clone().or(grp);
        let mode = self
            .keep
            .mode
            .map_or(i64::from(0o666 & !self.vfs.umask), i64::from);
        let content_type = self.opts.content_type.clone().unwrap_or_else(|| {
            mime_guess::from_path(self.path.name())
                .first_or_octet_stream()
                .to_string()
        });
        EntryRow {
            path: self.path.as_str().into(),
            parent: self.path.parent().as_str().into(),
            is_dir: false,
            size: size as i64,
            mtime_ms,
            etag: etag
                .clone()
                .or_else(|| self.opts.etag.clone())
                .unwrap_or_else(|| md5.to_string()),
            content_type: Some(content_type),
            owner: Some(
                self.keep
                    .owner
                    .clone()
                    .unwrap_or_else(|| self.caller.user.clone()),
            ),
            headers: super::headers_json(&self.opts.headers),
            grp,
            mode,
            origin: origin.clone(),
            sealed: self.sink.wrapped.clone(),
            blob: self.blob.clone(),
        }
    }

    /// One commit of `row`: the row, the quota charge and the rename into place commit
    /// together; on disk the rename is journaled, so a kill at any instant is undone or
    /// finished at start. A refused commit leaves the staged bytes for another attempt.
    async fn commit_row(
        &mut self,
        row: &EntryRow,
        parents: &[EntryRow],
    ) -> Result<(), Committed<VfsError>> {
        let store = self.vfs.store.clone();
        // a file replaced stays as a noncurrent version (a hard link of it, journaled)
        let keep = self
            .vfs
            .keep_replaced(&self.path)
            .await
            .map_err(Committed::Finish)?;
        let archive = crate::store::Archive {
            key: keep.as_ref().map(|k| k.0.clone()),
            ..Default::default()
        };
        // the locks on the path are checked inside the commit's transaction
        let guard = self
            .vfs
            .guard(&self.caller, vec![(self.path.clone(), false)]);
        let rules = WriteRules {
            create_new: self.opts.create_new,
            if_match: self.opts.if_match.as_deref(),
            parents,
            keep_annotations: self.opts.keep_annotations,
            completes_upload: self.opts.completes_upload.as_deref(),
        };
        // readers of the path wait: they see the old row with the old bytes, or the new with
        // the new (taken before a group commit's turn, which never waits for a path)
        if let (Some(group), Some(tmp)) = (self.vfs.group.clone(), self.sink.disk_path()) {
            // the local disk: the rename is journaled, with the uploads committing meanwhile
            let step = Step::Put {
                from: tmp,
                to: self.vfs.local_path(&self.path).unwrap_or_default(),
                keep: keep.and_then(|k| k.1),
            };
            let held = self.vfs.path_locks.write(self.path.as_str()).await;
            let res =
                commit_together(&group, row, rules, &archive, guard, step, &mut self.sink).await;
            drop(held);
            return res;
        }
        let sink = &mut self.sink;
        let op = self.vfs.op.clone();
        let (vfs, target) = (self.vfs.clone(), self.path.storage_key(false));
        let blob = self.blob.is_some();
        // the replaced file, when its bytes are at its path (written before blobs): they go
        // after the commit (copied aside first when kept)
        let at_path = match blob {
            true => self
                .vfs
                .store
                .entry(self.path.as_str())
                .await
                .map_err(|e| Committed::Finish(e.into()))?
                .is_some_and(|r| !r.is_dir && r.blob.is_none()),
            false => false,
        };
        let finish = async {
            guard.check().await?;
            // an object store: the blob is written; a replaced file written at its path
            // before blobs is copied aside to be kept (a replaced blob is taken over)
            match blob {
                true if at_path => vfs.keep_object(&target, &keep).await,
                true => Ok(()),
                false => {
                    for d in parents {
                        op.create_dir(&format!("{}/", d.path.trim_start_matches('/')))
                            .await?;
                    }
                    // another service: the replaced object is copied aside before it goes
                    vfs.keep_object(&target, &keep).await?;
                    sink.close().await
                }
            }
        };
        let held = self.vfs.path_locks.write(self.path.as_str()).await;
        let res = store.commit_file(row, rules, None, &archive, finish).await;
        drop(held);
        if res.is_ok() && blob {
            if at_path {
                if let Err(e) = self.vfs.op.delete(&target).await {
                    tracing::warn!(path = %self.path, error = %e, "replaced, but its old bytes stay in storage");
                }
            }
            // the replaced file's blob, unless a version took it
            self.vfs.sweep_gone_blobs().await;
        }
        res
    }

    /// Discards the temporary object, or the finished blob nothing names.
    pub async fn abort(&mut self) {
        self.discard().await
    }

    /// Discards what the upload wrote: the writer still open, or the blob it completed.
    async fn discard(&mut self) {
        if self.sink.writer.is_some() {
            return self.sink.abort().await;
        }
        if let Some(b) = self.blob.take() {
            if let Err(e) = self.vfs.op.delete(&b).await {
                tracing::warn!(blob = %b, error = %e, "could not delete the blob of a failed upload");
            }
        }
    }
}

/// An upload's commit on the local disk: its row (`rules` checked), its lock check (`guard`)
/// and its rename (`step`) commit with the uploads committing at the same time (`group`).
async fn commit_together(
    group: &super::group::Group,
    row: &EntryRow,
    rules: WriteRules<'_>,
    archive: &crate::store::Archive,
    guard: super::locks::Guard,
    step: Step,
    sink: &mut Sink,
) -> Result<(), Committed<VfsError>> {
    let mut seat = group.join().await.map_err(Committed::Finish)?;
    let res = match crate::store::commit_file_tx(seat.tx(), row, rules, None, archive).await {
        Ok(()) => guard.check().await.map_err(Committed::Finish),
        Err(e) => Err(Committed::Meta(e)),
    };
    // a rename that cannot happen (the name too long on disk) fails this upload, not the
    // batch; checked in the turn, after the statements' checks, when no tree change is
    // half-way on disk (they commit between batches, through the same gate)
    let res = match res {
        Ok(()) => group.check(std::slice::from_ref(&step)).await,
        Err(e) => Err(e),
    };
    if res.is_ok() {
        // the new file is the batch's from here (renamed by its commit, removed if it fails)
        sink.disarm();
    }
    let kept = seat.finish(res, vec![step]).await?;
    kept.outcome().await
}
