//! The core: every rule about the namespace lives here, once, for every protocol.
//!
//! Adapters (WebDAV, S3) translate their requests into these calls and
//! `VfsError` into their own error replies; they hold no policy of their own.

mod blobs;
pub mod chunks;
mod convert;
mod disk;
mod fsck;
mod group;
mod journal;
pub mod lifecycle;
pub mod locks;
pub(crate) mod multipart;
mod names;
mod namespace;
pub mod path;
mod pathlock;
mod perm;
pub mod public;
pub mod replica;
pub mod resumable;
mod retention;
mod sealing;
pub mod search;
mod settings;
mod storage;
mod stored;
mod stored_walk;
pub mod tags;
mod transfer;
mod upload;
mod versioning;
mod versions;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opendal::Operator;

use crate::config::MacosMetadata;
pub use crate::seal::{CustomerKey, KeyHeaderError};
/// A WebDAV dead property, as the core stores and returns it.
pub use crate::store::DeadProp;
pub use crate::store::Retention;
/// Why a delete only-if-empty refuses (DeleteBucket: `BucketNotEmpty`).
use crate::store::{EntryRow, MetaError, Store};
pub use fsck::FsckReport;
pub use multipart::{CompletedPart, Preconditions};
pub use path::VPath;
pub use retention::{LockConfig, COMPLIANCE, GOVERNANCE};
pub use sealing::{needs_customer_key, stored_form, CopyKeys, KeyNeed};
pub use storage::{build_operator, build_staging, sweep_temp, LocalFs};
pub use stored::{Stored, StoredStream};
pub use upload::{Upload, UploadOptions};
pub use versioning::{parse_version_id, ObjectVersion, S3Versioning};

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
    /// A folder (or bucket) still holds entries where it must be empty.
    #[error("the folder is not empty")]
    NotEmpty,
    /// A folder was given where a file is needed, or the reverse.
    #[error("wrong kind of entry: {0}")]
    WrongKind(&'static str),
    /// The path breaks the naming rules.
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// The body ended before its announced length (or ran past it).
    #[error("upload incomplete: expected {expected} bytes, got {got}")]
    Incomplete { expected: u64, got: u64 },
    /// A lock held by someone else bears on the resource.
    #[error("locked: {0}")]
    Locked(String),
    /// A dead property or a lock's owner is over its size cap; nothing was stored.
    #[error("too large: {0}")]
    TooLarge(&'static str),
    /// The caller holds as many live locks as it may.
    #[error("too many locks: at most {0} live locks per user")]
    TooManyLocks(usize),
    /// The caller has as many unfinished uploads (S3 multipart and tus) as it may.
    #[error("too many open uploads: at most {0} unfinished multipart and resumable uploads per user; complete or abort one")]
    TooManyUploads(usize),
    /// The caller lacks the permission for this operation.
    #[error("permission denied: {0}")]
    Forbidden(&'static str),
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
    Storage(opendal::Error),
    /// The group paying for the change is over its quota; nothing was changed.
    #[error("quota of group {0} exceeded")]
    QuotaExceeded(String),
    /// A write's precondition (If-Match) does not hold when it is checked.
    #[error("precondition failed: {0}")]
    PreconditionFailed(&'static str),
    /// A write's precondition held when checked but a concurrent write broke it before the
    /// commit (S3: 409 ConditionalRequestConflict).
    #[error("changed meanwhile: {0}")]
    Changed(&'static str),
    /// An SSE-C file (its data key wrapped by a key only its S3 client holds) asked for
    /// without that key or with another, or a client key given for a file that has none.
    #[error("{0}")]
    CustomerKey(KeyNeed),
    /// The metadata database failed.
    #[error(transparent)]
    Meta(MetaError),
}

impl From<opendal::Error> for VfsError {
    /// Every storage error the core meets passes here once: the place it is counted.
    fn from(e: opendal::Error) -> Self {
        crate::metrics::get().storage_error(e.kind().into_static());
        VfsError::Storage(e)
    }
}

impl VfsError {
    /// Whether the metadata database or the storage service was unreachable for now (OpenDAL
    /// marks such errors temporary): protocols answer 503 (retry later).
    pub fn is_unavailable(&self) -> bool {
        match self {
            VfsError::Meta(m) => m.is_unavailable(),
            VfsError::Storage(e) => e.is_temporary(),
            _ => false,
        }
    }
}

impl From<MetaError> for VfsError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::QuotaExceeded(g) => VfsError::QuotaExceeded(g),
            MetaError::Duplicate => VfsError::Exists,
            MetaError::Gone => VfsError::NotFound,
            MetaError::Conflict(why) if why == crate::store::ETAG_CHANGED => VfsError::Changed(why),
            MetaError::Conflict(crate::store::NOT_EMPTY) => VfsError::NotEmpty,
            MetaError::Conflict(why) => VfsError::Conflict(why),
            e => VfsError::Meta(e),
        }
    }
}

impl From<crate::store::Committed<VfsError>> for VfsError {
    fn from(e: crate::store::Committed<VfsError>) -> Self {
        match e {
            crate::store::Committed::Meta(m) => m.into(),
            crate::store::Committed::Finish(v) => v,
        }
    }
}

/// Who is asking: every core call carries it so rules can be checked in one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Authenticated user name.
    pub user: String,
    /// Administrators bypass permission checks.
    pub is_admin: bool,
    /// Groups the user belongs to, read from the database on every request.
    pub groups: Vec<String>,
    /// Group that owns the buckets this user creates.
    pub primary_group: Option<String>,
    /// May create buckets (top-level folders).
    pub can_create_buckets: bool,
    /// Lock tokens the request submitted (WebDAV `If:`); every core write checks them, so a
    /// caller without the token of a lock bearing on its target is refused (S3 carries none).
    pub lock_tokens: Vec<String>,
}

impl Caller {
    /// The identity of a stored user, with the memberships read with its row.
    pub fn from_user(user: crate::store::UserRow) -> Caller {
        Caller {
            user: user.name,
            is_admin: user.is_admin,
            groups: user.groups,
            primary_group: user.primary_group,
            can_create_buckets: user.can_create_buckets,
            lock_tokens: Vec::new(),
        }
    }

    /// This caller with the lock tokens its request submitted.
    pub fn with_lock_tokens(mut self, tokens: Vec<String>) -> Caller {
        self.lock_tokens = tokens;
        self
    }

    /// The caller of a request without identity (an unsigned S3 GET or HEAD): no user (the
    /// empty name, which no user can have), no group. It may read public files and nothing
    /// else (vfs/public.rs).
    pub fn anonymous() -> Caller {
        Caller {
            user: String::new(),
            is_admin: false,
            groups: Vec::new(),
            primary_group: None,
            can_create_buckets: false,
            lock_tokens: Vec::new(),
        }
    }

    /// True for `Caller::anonymous()`.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_empty()
    }

    /// An administrator identity for admin commands run on the server itself.
    pub fn admin(name: &str) -> Caller {
        Caller {
            user: name.to_string(),
            is_admin: true,
            groups: Vec::new(),
            primary_group: None,
            can_create_buckets: true,
            lock_tokens: Vec::new(),
        }
    }
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
    /// Owning group.
    pub group: Option<String>,
    /// POSIX permission bits.
    pub mode: u32,
    /// Stored object headers (S3 user metadata, Content-Disposition, checksums, ...).
    pub headers: BTreeMap<String, String>,
    /// Whether dead properties exist, when known (listings find out in one query, so a
    /// PROPFIND need not look each entry up).
    pub has_props: Option<bool>,
    /// The wrapped data key when the stored bytes are sealed (encrypted bucket); `size` is
    /// still the plaintext size.
    pub sealed: Option<String>,
    /// The object key of the bytes on a service other than `fs` (`None`: at the path).
    pub(crate) blob: Option<String>,
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
            group: row.grp,
            mode: (row.mode & 0o777) as u32,
            path: VPath::parse(&row.path)?,
            is_dir: row.is_dir,
            size: row.size.max(0) as u64,
            mtime: UNIX_EPOCH + Duration::from_millis(row.mtime_ms.max(0) as u64),
            etag: row.etag,
            // a type stored before types were checked, unfit for a header, is not sent
            content_type: row
                .content_type
                .filter(|t| upload::valid_content_type(t))
                .unwrap_or_else(|| "application/octet-stream".into()),
            owner: row.owner,
            has_props: None,
            sealed: row.sealed,
            blob: row.blob,
        })
    }
}

/// An open file being read; reads are positional so ranges cost nothing extra.
pub struct Download {
    source: Source,
    size: u64,
    /// Opens the segments of sealed bytes (`size` is the plaintext size).
    cipher: Option<std::sync::Arc<crate::seal::Cipher>>,
}

/// Where a download reads from.
enum Source {
    /// An OpenDAL reader (memory, S3, ...).
    Store(opendal::Reader),
    /// A file on the local disk (`fs`).
    Disk(disk::DiskFile),
}

impl Download {
    /// Reads up to `len` bytes at `offset`; empty at end of file.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, VfsError> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + len as u64).min(self.size);
        match &self.cipher {
            None => self.source.read(offset..end).await,
            Some(c) => sealing::read_sealed(&self.source, c, offset..end, self.size).await,
        }
    }

    /// The bytes of `range` as a stream of bounded chunks (for protocol bodies).
    pub async fn into_stream(
        self,
        range: std::ops::Range<u64>,
    ) -> Result<
        impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static,
        VfsError,
    > {
        use futures_util::future::Either;
        if let Some(c) = self.cipher {
            return Ok(Either::Right(
                sealing::stream_sealed(self.source, c, range, self.size).await?,
            ));
        }
        Ok(Either::Left(match self.source {
            Source::Store(r) => Either::Left(r.into_bytes_stream(range).await?),
            Source::Disk(f) => Either::Right(f.stream(range)),
        }))
    }
}

/// Lock timeout cap unless configured.
pub const DEFAULT_LOCK_TIMEOUT_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

/// Read size of an OpenDAL store's reader (the local disk is read by `wire::PIECE` a stream).
pub(super) const CHUNK: usize = 1024 * 1024;

/// The namespace: SQL metadata plus an OpenDAL operator holding the bytes.
#[derive(Clone)]
pub struct Vfs {
    op: Operator,
    staging: Operator,
    store: Store,
    local: Option<LocalFs>,
    started: SystemTime,
    umask: u32,
    macos: MacosMetadata,
    lock_timeout_max: std::time::Duration,
    /// Live locks one user may hold at once.
    lock_max_per_user: usize,
    /// How long a blob no row names stays in the store (`blobs::BLOB_GRACE_MS`).
    blob_grace_ms: i64,
    /// Unfinished uploads (S3 multipart and tus) one user may have open.
    uploads_max_per_user: usize,
    /// The storage journal of the `fs` backend (every tree change on disk goes through it).
    journal: Option<journal::Journal>,
    /// Uploads to the `fs` backend committing together (`group`), through the journal.
    group: Option<group::Group>,
    /// The master keys of encrypted buckets (docs/encryption.md).
    keys: Option<crate::seal::KeyRing>,
    /// Readers of a file against commits replacing it (`pathlock`).
    path_locks: pathlock::PathLocks,
    /// How long a deletion is remembered for replication peers (`replica`).
    tombstone_keep: std::time::Duration,
}

impl Vfs {
    /// Wraps the storage operator, the staging operator (multipart parts, outside the visible
    /// tree) and a store; `local` are the folders of an `fs` operator, which allow
    /// uploads in few blocking calls, moving a folder with one rename and reporting free space.
    pub fn new(op: Operator, staging: Operator, store: Store, local: Option<LocalFs>) -> Self {
        let journal = local
            .as_ref()
            .map(|l| journal::Journal::new(l.tmp.clone(), true, l.dir_mode));
        let inline = local.as_ref().is_some_and(|l| l.open_inline);
        let group = journal
            .clone()
            .map(|j| group::Group::new(j, store.clone(), inline));
        Vfs {
            journal,
            group,
            op,
            staging,
            store,
            local,
            started: SystemTime::now(),
            umask: 0o002,
            macos: MacosMetadata::Keep,
            lock_timeout_max: DEFAULT_LOCK_TIMEOUT_MAX,
            lock_max_per_user: locks::DEFAULT_LOCKS_PER_USER,
            blob_grace_ms: blobs::BLOB_GRACE_MS,
            uploads_max_per_user: multipart::DEFAULT_UPLOADS_PER_USER,
            keys: None,
            path_locks: pathlock::PathLocks::default(),
            tombstone_keep: std::time::Duration::from_secs(30 * 86_400),
        }
    }

    /// Sets how long deletions are remembered for replication peers (`tombstone_days`).
    pub fn with_tombstone_keep(mut self, keep: std::time::Duration) -> Self {
        self.tombstone_keep = keep;
        self
    }

    /// Sets the master keys that seal and open the files of encrypted buckets.
    pub fn with_keys(mut self, keys: crate::seal::KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Sets the umask new entries get their mode from (files 0666, folders 0777, minus the mask).
    pub fn with_umask(mut self, umask: u32) -> Self {
        self.umask = umask & 0o777;
        self
    }

    /// Sets what happens to macOS metadata files (`._*`, `.DS_Store`).
    pub fn with_macos_metadata(mut self, policy: MacosMetadata) -> Self {
        self.macos = policy;
        self
    }

    /// Caps lock timeouts (an `Infinite` request gets the cap), so a vanished client's lock
    /// cannot block writers forever.
    pub fn with_lock_timeout_max(mut self, max: std::time::Duration) -> Self {
        self.lock_timeout_max = max;
        self
    }

    /// Caps the live locks one user holds, so nobody can fill the lock table.
    pub fn with_lock_max_per_user(mut self, max: usize) -> Self {
        self.lock_max_per_user = max;
        self
    }

    /// Sets how many unfinished uploads (S3 multipart and tus together) one user may have.
    pub fn with_uploads_max_per_user(mut self, max: usize) -> Self {
        self.uploads_max_per_user = max;
        self
    }

    /// Sets the modes of what is created on disk (`fs`): files 0666 and folders 0777 minus
    /// `umask`.
    pub fn with_disk_umask(mut self, umask: u32) -> Self {
        if let Some(l) = self.local.as_mut() {
            l.file_mode = 0o666 & !umask;
            l.dir_mode = 0o777 & !umask;
        }
        let durable = self.journal.as_ref().is_none_or(|j| j.durable());
        self.with_durable_commits(durable)
    }

    /// Whether a journaled commit is fsynced before it acts (survives a power cut, not only a
    /// kill); on by default.
    pub fn with_durable_commits(mut self, durable: bool) -> Self {
        if let Some(l) = self.local.as_mut() {
            l.durable = durable;
        }
        self.journal = self
            .local
            .as_ref()
            .map(|l| journal::Journal::new(l.tmp.clone(), durable, l.dir_mode));
        let inline = self.local.as_ref().is_some_and(|l| l.open_inline);
        self.group = self
            .journal
            .clone()
            .map(|j| group::Group::new(j, self.store.clone(), inline));
        self
    }

    /// Resolves the commits a killed or crashed previous run left in flight (start-up, before
    /// `tmp/` is swept): finished when they had committed, undone otherwise.
    pub async fn recover(&self) -> Result<(usize, usize), VfsError> {
        match &self.local {
            Some(l) => journal::Journal::recover(&l.tmp, &self.store).await,
            None => Ok((0, 0)),
        }
    }

    /// Where a path's bytes are on the local disk (`fs` backend).
    fn local_path(&self, path: &VPath) -> Option<std::path::PathBuf> {
        self.local
            .as_ref()
            .map(|l| l.root.join(path.storage_key(false)))
    }

    /// Runs a metadata change whose storage step is `steps` (journaled, on `fs`) or `other`
    /// (any other service), to its end even if the request awaiting it is dropped; `guard`
    /// (the locks bearing on what changes) is checked inside the transaction.
    async fn commit_with<T, C, Fut>(
        &self,
        guard: locks::Guard,
        steps: Vec<journal::Step>,
        other: futures_util::future::BoxFuture<'static, Result<(), VfsError>>,
        change: C,
    ) -> Result<T, VfsError>
    where
        T: Send + 'static,
        C: FnOnce(
                Option<crate::store::Mark>,
                futures_util::future::BoxFuture<'static, Result<(), VfsError>>,
            ) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = Result<T, crate::store::Committed<VfsError>>> + Send,
    {
        let journal = self.journal.clone();
        // the locks are checked inside the transaction, before its storage step: a LOCK
        // needs the same write transaction, so none can slip in between check and commit
        upload::to_the_end(async move {
            let Some(j) = journal else {
                let checked = Box::pin(async move {
                    guard.check().await?;
                    other.await
                });
                return change(None, checked).await.map_err(VfsError::from);
            };
            let pending = j.begin(steps).await;
            let p = pending.clone();
            let checked = Box::pin(async move {
                guard.check().await?;
                p.run().await
            });
            let res = change(Some(pending.mark()), checked).await;
            match &res {
                Ok(_) => pending.committed().await,
                Err(_) => pending.failed().await,
            }
            res.map_err(VfsError::from)
        })
        .await
    }

    /// Removes from storage the folders a commit pruned (`paths`, deepest first), after it:
    /// under the journal's gate each is removed only if it is still unrecorded and empty, so
    /// a folder made again meanwhile stays. A failure leaves an empty folder, which fsck
    /// ignores.
    async fn remove_pruned(&self, paths: Vec<String>) {
        if paths.is_empty() {
            return;
        }
        let _gate = match &self.journal {
            Some(j) => Some(j.hold().await),
            None => None,
        };
        for p in paths {
            if !matches!(self.store.entry(&p).await, Ok(None)) {
                continue;
            }
            let Ok(path) = VPath::parse(&p) else { continue };
            match self.local_path(&path) {
                // remove_dir refuses a folder that is not empty
                Some(dir) => {
                    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir(dir)).await;
                }
                None => {
                    let _ = self.op.delete(&path.storage_key(true)).await;
                }
            }
        }
    }

    /// Free bytes on the disk holding the files, when that is knowable.
    pub fn available_bytes(&self) -> Option<u64> {
        self.local
            .as_ref()
            .and_then(|l| fs4::available_space(&l.root).ok())
    }

    pub(super) async fn lookup(&self, path: &VPath) -> Result<Option<Entry>, VfsError> {
        if path.is_root() {
            return Ok(Some(Entry {
                path: VPath::root(),
                is_dir: true,
                size: 0,
                mtime: self.started,
                etag: "root".into(),
                content_type: "httpd/unix-directory".into(),
                owner: None,
                group: None,
                mode: 0o755,
                headers: BTreeMap::new(),
                has_props: None,
                sealed: None,
                blob: None,
            }));
        }
        match self.store.entry(path.as_str()).await? {
            Some(row) => Ok(Some(Entry::from_row(row)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
