//! Every namespace operation (stat, list, read, mkdir, delete, rename, copy, properties,
//! ownership and modes): each checks its permissions here, once, for every protocol.

use std::collections::{BTreeMap, HashMap};

use super::journal::Step;
use super::perm::{R, W, X};
use super::upload::Upload;
use super::{
    headers_json, Caller, CopyKeys, CustomerKey, Download, Entry, UploadOptions, VPath, Vfs,
    VfsError, CHUNK,
};
use crate::store::{
    now_ms, AttrChange, DeadProp, DeleteRules, EntryRow, MoveRules, SOURCE_CHANGED,
};

/// A delete refused unless only implicit folders are below (buckets, folder markers).
const IF_EMPTY: DeleteRules<'static> = DeleteRules {
    origin: None,
    if_empty: true,
    if_match: None,
    if_mtime: None,
};

/// Largest dead property (namespace, name and XML value), in bytes.
pub const DEAD_PROP_MAX: usize = 16 * 1024;

/// Largest total of an entry's dead properties, in bytes.
pub const DEAD_PROPS_MAX: usize = 64 * 1024;

/// Why a read is refused before any byte is promised: the file on disk is not the size its
/// row records (changed behind Kura's back, or being replaced at this instant).
const SIZE_DIFFERS: &str = "the stored file's size differs from its record";

/// Why the bytes an open found are not (or no longer) the ones a file's row describes.
pub(super) enum Stale {
    /// None on disk: a move took them away after the row was read (or they are lost).
    Gone(std::io::Error),
    /// Not of a length the row allows: a commit replaced them after the row was read (or
    /// they changed behind Kura's back).
    SizeDiffers,
}

impl Stale {
    /// The error (logged) of the file `path` recorded with `size` plaintext bytes.
    fn error(self, path: &VPath, size: u64) -> VfsError {
        match self {
            Stale::Gone(e) => super::storage::io_err(e),
            Stale::SizeDiffers => {
                tracing::error!(path = %path, recorded = size, "{SIZE_DIFFERS}");
                VfsError::from(opendal::Error::new(
                    opendal::ErrorKind::Unexpected,
                    SIZE_DIFFERS,
                ))
            }
        }
    }
}

/// An open: the bytes a row describes, or why they are not there.
pub(super) type Opened = Result<Download, Stale>;

/// A copy's source that vanished from storage while it was read: the copy is made again.
fn changed_if_gone(e: VfsError) -> VfsError {
    match e {
        VfsError::Storage(s) if s.kind() == opendal::ErrorKind::NotFound => {
            VfsError::Conflict(SOURCE_CHANGED)
        }
        e => e,
    }
}

/// Copies a file, or a folder with the `rows` below it (paths below `from`), on the local disk
/// from `source` to `staged`, fsynced.
async fn copy_local(
    (source, from, dir_mode): (std::path::PathBuf, String, u32),
    staged: std::path::PathBuf,
    is_dir: bool,
    rows: Vec<EntryRow>,
) -> Result<(), VfsError> {
    tokio::task::spawn_blocking(move || {
        if !is_dir {
            std::fs::copy(&source, &staged)?;
            return std::fs::File::open(&staged)?.sync_all();
        }
        super::storage::make_dir(&staged, dir_mode)?;
        let cut = from.len() + 1;
        // rows come in path order: a folder before what is inside it
        for r in &rows {
            let rel = r.path.get(cut..).unwrap_or_default();
            let (s, t) = (source.join(rel), staged.join(rel));
            if r.is_dir {
                super::storage::make_dir(&t, dir_mode)?;
            } else {
                std::fs::copy(&s, &t)?;
                std::fs::File::open(&t)?.sync_all()?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| super::storage::io_err(std::io::Error::other(e)))?
    .map_err(|e| match e.kind() {
        // a file of the snapshot was moved or deleted meanwhile: the copy is made again
        std::io::ErrorKind::NotFound => VfsError::Conflict(SOURCE_CHANGED),
        _ => super::storage::io_err(e),
    })
}

impl Vfs {
    /// Metadata of a path; the root always exists.
    pub async fn stat(&self, c: &Caller, path: &VPath) -> Result<Entry, VfsError> {
        if c.is_anonymous() {
            return self.stat_anonymous(c, path).await;
        }
        self.resolve(c, path).await?.ok_or(VfsError::NotFound)
    }

    /// The entries of a folder, from one SQL query and no storage calls. The root lists only
    /// the buckets the caller may enter.
    pub async fn list(&self, c: &Caller, path: &VPath) -> Result<Vec<Entry>, VfsError> {
        let dir = self.stat(c, path).await?;
        if !dir.is_dir {
            return Err(VfsError::WrongKind("not a folder"));
        }
        dir.require(c, R, "the folder may not be listed")?;
        let with_props = self.store.children_with_props(path.as_str()).await?;
        let children = self
            .store
            .children(path.as_str())
            .await?
            .into_iter()
            .map(|r| {
                let has = with_props.contains(&r.path);
                Entry::from_row(r).map(|e| Entry {
                    has_props: Some(has),
                    ..e
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if path.is_root() {
            let visible = |e: &Entry| e.allows(c, if e.is_dir { X } else { R });
            return Ok(children.into_iter().filter(visible).collect());
        }
        Ok(self.visible(children))
    }

    /// One chunk of a folder's listing: at most `limit` children after the path `after` (""
    /// from the start), in path order, as `list` gives them; an empty chunk ends the listing.
    /// A listing read chunk by chunk keeps memory in proportion to `limit`.
    pub async fn list_chunk(
        &self,
        c: &Caller,
        path: &VPath,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Entry>, VfsError> {
        let dir = self.stat(c, path).await?;
        if !dir.is_dir {
            return Err(VfsError::WrongKind("not a folder"));
        }
        dir.require(c, R, "the folder may not be listed")?;
        let mut after = after.to_string();
        loop {
            let rows = self
                .store
                .children_page(path.as_str(), &after, limit as i64)
                .await?;
            let full = rows.len() == limit;
            if let Some((last, _)) = rows.last() {
                after = last.path.clone();
            }
            let batch = rows
                .into_iter()
                .map(|(r, has)| {
                    Entry::from_row(r).map(|e| Entry {
                        has_props: Some(has),
                        ..e
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let shown: Vec<Entry> = if path.is_root() {
                let visible = |e: &Entry| e.allows(c, if e.is_dir { X } else { R });
                batch.into_iter().filter(visible).collect()
            } else {
                self.visible(batch)
            };
            // a chunk whose entries were all hidden does not end the listing
            if !shown.is_empty() || !full {
                return Ok(shown);
            }
        }
    }

    /// One page of the folder `dir`: at most `limit` children whose name starts with
    /// `prefix`, in S3 key order (a folder's name sorts with a `/` after it), after the name
    /// `after` in that order. Memory stays in proportion to `limit`, whatever the folder holds.
    pub async fn list_page(
        &self,
        c: &Caller,
        dir: &VPath,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Entry>, VfsError> {
        let d = self.stat(c, dir).await?;
        if !d.is_dir {
            return Err(VfsError::WrongKind("not a folder"));
        }
        d.require(c, R, "the folder may not be listed")?;
        let base = if dir.is_root() {
            String::from("/")
        } else {
            format!("{dir}/")
        };
        let lo = format!("{base}{prefix}");
        let hi = format!("{lo}{}", char::MAX);
        let mut cursor = format!("{base}{after}");
        // hidden names are skipped without shortening the page: fetch until it is full
        let mut out = Vec::new();
        while out.len() < limit {
            let want = limit - out.len();
            let rows = self
                .store
                .children_in_range(dir.as_str(), &lo, &hi, &cursor, want as i64)
                .await?;
            let done = rows.len() < want;
            if let Some(last) = rows.last() {
                cursor = if last.is_dir {
                    format!("{}/", last.path)
                } else {
                    last.path.clone()
                };
            }
            let batch = rows
                .into_iter()
                .map(Entry::from_row)
                .collect::<Result<Vec<_>, _>>()?;
            if dir.is_root() {
                let visible = |e: &Entry| e.allows(c, if e.is_dir { X } else { R });
                out.extend(batch.into_iter().filter(visible));
            } else {
                out.extend(self.visible(batch));
            }
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// Fails with `Forbidden` when `path` is a folder `c` may not list.
    pub async fn may_list(&self, c: &Caller, path: &VPath) -> Result<(), VfsError> {
        let e = self.stat(c, path).await?;
        if e.is_dir {
            e.require(c, R, "the folder may not be listed")?;
        }
        Ok(())
    }

    /// Opens a file for positional reads. A file whose bytes are being replaced between its
    /// rename and its commit is looked up again (a few times) rather than refused.
    pub async fn open_read(&self, c: &Caller, path: &VPath) -> Result<(Entry, Download), VfsError> {
        self.open_read_keyed(c, path, None).await
    }

    /// `open_read` with the S3 client's key (SSE-C): an SSE-C file needs it, any other file
    /// none (`Vfs::check_customer_key`).
    pub async fn open_read_keyed(
        &self,
        c: &Caller,
        path: &VPath,
        key: Option<&CustomerKey>,
    ) -> Result<(Entry, Download), VfsError> {
        let mut tries = 0;
        loop {
            tries += 1;
            // no commit (a write's, or a conversion's switch) renames new bytes in between the
            // row read and the open; a move may take the file away, then the row is gone too
            let held = self.path_locks.read(path.as_str()).await;
            let entry = self.stat(c, path).await?;
            let opened = self.try_open_entry(c, &entry, key).await;
            drop(held);
            match opened? {
                Ok(d) => return Ok((entry, d)),
                Err(_) if tries < 3 => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(stale) => return Err(stale.error(&entry.path, entry.size)),
            }
        }
    }

    /// Opens a file the caller just stat'ed (saves looking it up again), with the S3 client's
    /// key of an SSE-C file.
    pub async fn open_entry(
        &self,
        c: &Caller,
        entry: &Entry,
        key: Option<&CustomerKey>,
    ) -> Result<Download, VfsError> {
        self.try_open_entry(c, entry, key)
            .await?
            .map_err(|stale| stale.error(&entry.path, entry.size))
    }

    /// `open_entry`, or `Stale` when the bytes found are not (or no longer) the ones `entry`
    /// describes.
    async fn try_open_entry(
        &self,
        c: &Caller,
        entry: &Entry,
        key: Option<&CustomerKey>,
    ) -> Result<Opened, VfsError> {
        if entry.is_dir {
            return Err(VfsError::WrongKind("is a folder"));
        }
        self.require_readable_keyed(c, entry, key).await?;
        let at = (&entry.path, entry.blob.as_deref());
        self.try_open_stored(at, entry.size, entry.sealed.as_deref(), key)
            .await
    }

    /// Opens the bytes of the file `entry` (plaintext, sealed or not), with no permission
    /// check: the callers checked, or act for the node (replication, which holds no client's
    /// key: an SSE-C file does not open).
    pub(super) async fn open_unchecked(
        &self,
        entry: &Entry,
        key: Option<&CustomerKey>,
    ) -> Result<Download, VfsError> {
        let at = (&entry.path, entry.blob.as_deref());
        self.open_stored_keyed(at, entry.size, entry.sealed.as_deref(), key)
            .await
    }

    /// Opens the stored bytes of the file `path` (with its blob) of `size` plaintext bytes
    /// recorded with `sealed` (`customer`: the client's key of an SSE-C file).
    async fn open_stored_keyed(
        &self,
        (path, blob): (&VPath, Option<&str>),
        size: u64,
        sealed: Option<&str>,
        customer: Option<&CustomerKey>,
    ) -> Result<Download, VfsError> {
        self.try_open_stored((path, blob), size, sealed, customer)
            .await?
            .map_err(|stale| stale.error(path, size))
    }

    /// Opens the stored bytes of the file `path` recorded with `size`, `sealed` and `blob`
    /// (object stores: where the bytes are; `None`: at the path); `Stale` when none are there
    /// or not of a length the row allows.
    pub(super) async fn try_open_stored(
        &self,
        (path, blob): (&VPath, Option<&str>),
        size: u64,
        sealed: Option<&str>,
        customer: Option<&CustomerKey>,
    ) -> Result<Opened, VfsError> {
        let key = super::blobs::object_key(path, blob);
        let mut sealed = sealed;
        let source = match &self.local {
            Some(l) => {
                let lens = super::sealing::stored_lens(size, sealed);
                match super::disk::DiskFile::open_sized(l.root.join(key), lens, l.open_inline).await
                {
                    Ok(Some((f, len))) => {
                        sealed = super::sealing::found_form(size, sealed, len);
                        super::Source::Disk(f)
                    }
                    Ok(None) => return Ok(Err(Stale::SizeDiffers)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(Err(Stale::Gone(e)))
                    }
                    Err(e) => return Err(super::storage::io_err(e)),
                }
            }
            // as on disk: the object is asked for before any header goes out, so a store that
            // is down, or an object that is gone or of another length, is an error status
            // rather than a 200 whose body never comes (one HEAD per GET)
            None => match self.op.stat(&key).await {
                Ok(m) => {
                    let len = m.content_length();
                    if !super::sealing::stored_lens(size, sealed).contains(&len) {
                        return Ok(Err(Stale::SizeDiffers));
                    }
                    sealed = super::sealing::found_form(size, sealed, len);
                    super::Source::Store(self.op.reader_with(&key).chunk(CHUNK).await?)
                }
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                    return Ok(Err(Stale::Gone(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        e.to_string(),
                    ))))
                }
                Err(e) => return Err(e.into()),
            },
        };
        self.download(source, size, (sealed, customer)).map(Ok)
    }

    /// Fails unless `c` may read `path`: r on a file, r and x on a folder (listing it and
    /// entering it). Share links are made only for what their owner can read.
    pub async fn may_read(&self, c: &Caller, path: &VPath) -> Result<Entry, VfsError> {
        let e = self.stat(c, path).await?;
        if e.is_dir {
            e.require(c, R | X, "the folder may not be read")?;
        } else {
            e.require(c, R, "the file may not be read")?;
        }
        Ok(e)
    }

    /// Fails unless `c` may add new files to the folder `dir` (drop boxes).
    pub async fn may_add_to(&self, c: &Caller, dir: &VPath) -> Result<Entry, VfsError> {
        let e = self.stat(c, dir).await?;
        if !e.is_dir {
            return Err(VfsError::WrongKind("not a folder"));
        }
        Self::require_name_change(c, &e, None)?;
        Ok(e)
    }

    /// Checks that `c` may write `path` with `opts`; returns the existing file, if any, and
    /// the parent folder when it exists already.
    pub(super) async fn check_write(
        &self,
        c: &Caller,
        path: &VPath,
        opts: &UploadOptions,
    ) -> Result<(Option<Entry>, Option<Entry>), VfsError> {
        if path.is_root() {
            return Err(VfsError::WrongKind("is a folder"));
        }
        Self::require_in_bucket(c, path)?;
        self.check_new_name(path)?;
        super::upload::check_content_type(opts.content_type.as_deref())?;
        // the file and the folders above it in one query; the deepest existing folder above
        // the file decides who may create names
        let (dir_entry, existing) = match self.resolve_in(c, path).await {
            Ok(found) => found,
            Err(VfsError::Conflict(_)) => {
                return Err(VfsError::Conflict("a file is in the way of a folder"))
            }
            Err(VfsError::NotFound) if opts.create_parents => {
                (self.deepest_folder(c, path.parent()).await?, None)
            }
            Err(VfsError::NotFound) => {
                return Err(VfsError::Conflict("parent folder does not exist"))
            }
            Err(e) => return Err(e),
        };
        if dir_entry.path == path.parent() {
            dir_entry.require(c, X, "the folder may not be entered")?;
        }
        match &existing {
            Some(e) if e.is_dir => return Err(VfsError::WrongKind("is a folder")),
            Some(_) if opts.create_new => return Err(VfsError::Exists),
            Some(e) if opts.if_match.as_ref().is_some_and(|m| *m != e.etag) => {
                // the ETag is as private as the bytes
                e.require(c, W, "the file may not be overwritten")?;
                e.require(c, R, "the file may not be read")?;
                return Err(VfsError::PreconditionFailed("the ETag does not match"));
            }
            None if opts.if_match.is_some() => return Err(VfsError::NotFound),
            Some(e) => e.require(c, W, "the file may not be overwritten")?,
            None if opts.must_exist => return Err(VfsError::NotFound),
            None => Self::require_name_change(c, &dir_entry, None)?,
        }
        let parent = (dir_entry.path == path.parent()).then_some(dir_entry);
        Ok((existing, parent))
    }

    /// The deepest existing folder at or above `dir` (the parents an upload would create);
    /// `NotFound` when that would be a bucket, which is never made implicitly.
    async fn deepest_folder(&self, c: &Caller, mut dir: VPath) -> Result<Entry, VfsError> {
        loop {
            match self.resolve(c, &dir).await {
                Ok(Some(e)) if e.is_dir => return Ok(e),
                Ok(Some(_)) | Err(VfsError::Conflict(_)) => {
                    return Err(VfsError::Conflict("a file is in the way of a folder"))
                }
                Ok(None) | Err(VfsError::NotFound) if !dir.parent().is_root() => dir = dir.parent(),
                Ok(None) | Err(VfsError::NotFound) => return Err(VfsError::NotFound),
                Err(e) => return Err(e),
            }
        }
    }

    /// The row of a new folder: the umask's mode, an ETag from the time.
    pub(super) fn folder_row(
        &self,
        path: &VPath,
        owner: Option<String>,
        grp: Option<String>,
        now: i64,
    ) -> EntryRow {
        EntryRow {
            path: path.as_str().into(),
            parent: path.parent().as_str().into(),
            is_dir: true,
            size: 0,
            mtime_ms: now,
            etag: format!("d{now:x}"),
            content_type: None,
            owner,
            headers: None,
            grp,
            mode: i64::from(0o777 & !self.umask),
            origin: None,
            sealed: None,
            blob: None,
        }
    }

    /// The deepest existing folder above `dir` and the folders missing down to `dir` (outermost
    /// first) as rows of implicit folders for a write to make in its commit; the caller must
    /// be allowed to create names in that deepest folder.
    pub(super) async fn implicit_parents(
        &self,
        c: &Caller,
        dir: &VPath,
    ) -> Result<(Entry, Vec<EntryRow>), VfsError> {
        let found = self.deepest_folder(c, dir.clone()).await?;
        if found.path == *dir {
            return Ok((found, Vec::new()));
        }
        Self::require_name_change(c, &found, None)?;
        let grp = Self::group_for_new(c, &found);
        let now = now_ms();
        let mut missing = Vec::new();
        let mut p = dir.clone();
        while p != found.path {
            missing.push(self.folder_row(&p, Some(c.user.clone()), grp.clone(), now));
            p = p.parent();
        }
        missing.reverse();
        Ok((found, missing))
    }

    /// Starts an atomic upload: nothing is visible until `Upload::commit`.
    pub async fn upload(
        &self,
        c: &Caller,
        path: &VPath,
        opts: UploadOptions,
    ) -> Result<Upload, VfsError> {
        let (existing, parent) = self.check_write(c, path, &opts).await?;
        // refused before the body streams; the commit checks again inside its transaction
        self.check_unlocked(c, vec![(path.clone(), false)]).await?;
        let freed = self.freed_by_overwrite(path, existing.as_ref()).await?;
        let mut up = Upload::start(self.clone(), c, path.clone(), opts, freed).await?;
        up.parent = parent;
        Ok(up)
    }

    /// The folder holding `path`: `known` when the caller has it already, else looked up.
    pub(super) async fn parent_of(
        &self,
        path: &VPath,
        known: Option<Entry>,
    ) -> Result<Entry, VfsError> {
        match known {
            Some(p) => Ok(p),
            None => self.lookup(&path.parent()).await?.ok_or(VfsError::NotFound),
        }
    }

    /// Creates one folder; its parent must exist.
    pub async fn mkdir(&self, c: &Caller, path: &VPath) -> Result<(), VfsError> {
        if path.is_root() {
            return Err(VfsError::Exists);
        }
        self.check_new_name(path)?;
        let parent = match self.resolve(c, &path.parent()).await {
            Ok(Some(p)) if p.is_dir => p,
            Ok(_) | Err(VfsError::NotFound) | Err(VfsError::Conflict(_)) => {
                return Err(VfsError::Conflict("parent folder does not exist"))
            }
            Err(e) => return Err(e),
        };
        // the right first: one who may not change the folder learns nothing of its names
        Self::require_name_change(c, &parent, None)?;
        if self.lookup(path).await?.is_some() {
            return Err(VfsError::Exists);
        }
        self.make_folder(c, path, Self::group_for_new(c, &parent), Vec::new())
            .await?;
        self.default_encryption(path).await
    }

    /// Records the folder `path` (group `grp`) and the missing implicit folders `parents`
    /// above it, rows and folders on disk in one commit.
    async fn make_folder(
        &self,
        c: &Caller,
        path: &VPath,
        grp: Option<String>,
        parents: Vec<EntryRow>,
    ) -> Result<(), VfsError> {
        let now = now_ms();
        let row = self.folder_row(path, Some(c.user.clone()), grp, now);
        let mut folders: Vec<VPath> = Vec::new();
        for p in &parents {
            folders.push(VPath::parse(&p.path)?);
        }
        folders.push(path.clone());
        // the rows and the folders on disk commit together, in a parent that still exists
        let steps = folders
            .iter()
            .filter_map(|f| self.local_path(f))
            .map(|p| Step::Mkdir { path: p })
            .collect();
        let op = self.op.clone();
        let keys: Vec<String> = folders.iter().map(|f| f.storage_key(true)).collect();
        let other = Box::pin(async move {
            for k in &keys {
                op.create_dir(k).await?;
            }
            Ok(())
        });
        let store = self.store.clone();
        let guard = self.guard(c, vec![(path.clone(), false)]);
        self.commit_with(guard, steps, other, move |mark, finish| async move {
            store
                .mkdir_with(&row, &parents, mark.as_ref(), finish)
                .await
        })
        .await
    }

    /// A folder made on purpose through S3 (a `dir/` marker): the missing folders above it
    /// are implicit, as S3 prefixes are; an implicit folder already there becomes explicit,
    /// so it stays when its last entry goes. A file in the way is refused. `exists` is the
    /// write's condition: `Some(true)`, the marker must be there (If-Match; `NotFound`
    /// otherwise), `Some(false)`, it must not (If-None-Match: *; `Exists` otherwise, also
    /// for the loser of two such writes). An implicit folder is no marker: S3 has no key there.
    pub async fn mkdir_marker(
        &self,
        c: &Caller,
        path: &VPath,
        exists: Option<bool>,
    ) -> Result<(), VfsError> {
        Self::require_in_bucket(c, path)?;
        self.check_new_name(path)?;
        match self.resolve(c, path).await {
            Ok(Some(e)) if e.is_dir => {
                if !self.store.is_implicit(path.as_str()).await? {
                    return match exists {
                        Some(false) => Err(VfsError::Exists),
                        _ => Ok(()),
                    };
                }
                if exists == Some(true) {
                    return Err(VfsError::NotFound);
                }
                let parent = self
                    .lookup(&path.parent())
                    .await?
                    .ok_or(VfsError::NotFound)?;
                Self::require_name_change(c, &parent, None)?;
                return match self.store.make_explicit(path.as_str()).await? {
                    false if exists == Some(false) => Err(VfsError::Exists),
                    _ => Ok(()),
                };
            }
            Ok(Some(_)) | Err(VfsError::Conflict(_)) => {
                return Err(VfsError::Conflict("a file is in the way of a folder"))
            }
            Ok(None) | Err(VfsError::NotFound) if exists == Some(true) => {
                return Err(VfsError::NotFound)
            }
            Ok(None) | Err(VfsError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let (dir, parents) = self.implicit_parents(c, &path.parent()).await?;
        if parents.is_empty() {
            dir.require(c, X, "the folder may not be entered")?;
            Self::require_name_change(c, &dir, None)?;
        }
        let grp = match parents.last() {
            Some(p) => p.grp.clone(),
            None => Self::group_for_new(c, &dir),
        };
        match self.make_folder(c, path, grp, parents).await {
            Err(VfsError::Exists) if exists == Some(false) => Err(VfsError::Exists),
            Ok(()) | Err(VfsError::Exists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Files below `dir` whose relative name starts with `prefix` and sorts after `after`, in
    /// name order, at most `limit` (S3's recursive listing); one SQL query. Needs r on `dir`.
    pub async fn files_below(
        &self,
        c: &Caller,
        dir: &VPath,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Entry>, VfsError> {
        let d = self.stat(c, dir).await?;
        d.require(c, R | X, "the folder may not be listed")?;
        let mut reachable: HashMap<String, bool> = HashMap::new();
        let base = if dir.is_root() {
            String::from("/")
        } else {
            format!("{dir}/")
        };
        let lo = format!("{base}{prefix}");
        let hi = format!("{lo}{}", char::MAX);
        let mut after = if after.is_empty() {
            String::new()
        } else {
            format!("{base}{after}")
        };
        // hidden names are skipped without shortening the page: fetch until it is full
        let mut out = Vec::new();
        while out.len() < limit {
            let want = limit - out.len();
            let rows = self
                .store
                .files_in_range(&lo, &hi, &after, want as i64)
                .await?;
            let done = rows.len() < want;
            if let Some(last) = rows.last() {
                after = last.path.clone();
            }
            let batch = rows
                .into_iter()
                .map(Entry::from_row)
                .collect::<Result<Vec<_>, _>>()?;
            let batch = self.reachable(c, dir, batch, &mut reachable).await?;
            out.extend(self.visible(batch));
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// The files of `batch` whose every folder between `dir` and them grants `c` r and x (list
    /// and enter): a recursive listing shows no name, size or ETag the caller could not reach
    /// folder by folder. `known` caches each folder's answer across the pages of one listing.
    async fn reachable(
        &self,
        c: &Caller,
        dir: &VPath,
        batch: Vec<Entry>,
        known: &mut HashMap<String, bool>,
    ) -> Result<Vec<Entry>, VfsError> {
        if c.is_admin {
            return Ok(batch);
        }
        let folders_of = |e: &Entry| {
            let mut v = Vec::new();
            let mut p = e.path.parent();
            while p != *dir && !p.is_root() {
                let up = p.parent();
                v.push(p);
                p = up;
            }
            v
        };
        let mut missing: Vec<String> = batch
            .iter()
            .flat_map(folders_of)
            .map(|p| p.to_string())
            .filter(|p| !known.contains_key(p))
            .collect();
        missing.sort();
        missing.dedup();
        for chunk in missing.chunks(500) {
            let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
            for row in self.store.entries_in(&keys).await? {
                let e = Entry::from_row(row)?;
                known.insert(e.path.to_string(), e.is_dir && e.allows(c, R | X));
            }
        }
        Ok(batch
            .into_iter()
            .filter(|e| {
                folders_of(e)
                    .iter()
                    .all(|f| known.get(f.as_str()).copied().unwrap_or(false))
            })
            .collect())
    }

    /// Fails unless `c` may read the file `e`: its ETag and metadata (S3 HEAD) are as private
    /// as its bytes.
    pub async fn require_readable(&self, c: &Caller, e: &Entry) -> Result<(), VfsError> {
        if e.is_dir {
            return Ok(());
        }
        if c.is_anonymous() {
            return self.anonymous_may_read(e).await;
        }
        e.require(c, R, "the file may not be read")
    }

    /// `require_readable`, and `key` is what the file needs (S3 GET and HEAD of an SSE-C
    /// object need its key, as AWS's do; `Vfs::check_customer_key`).
    pub async fn require_readable_keyed(
        &self,
        c: &Caller,
        e: &Entry,
        key: Option<&CustomerKey>,
    ) -> Result<(), VfsError> {
        self.require_readable(c, e).await?;
        Self::check_customer_key(e, key)
    }

    /// Replaces the type and headers of a file, keeping its bytes (S3 metadata REPLACE in place).
    pub async fn set_headers(
        &self,
        c: &Caller,
        path: &VPath,
        content_type: Option<&str>,
        headers: &BTreeMap<String, String>,
    ) -> Result<(), VfsError> {
        let e = self.stat(c, path).await?;
        if e.is_dir {
            return Err(VfsError::WrongKind("is a folder"));
        }
        e.require(c, W, "the file may not be changed")?;
        super::upload::check_content_type(content_type)?;
        self.check_unlocked(c, vec![(path.clone(), false)]).await?;
        let ct = content_type.unwrap_or(&e.content_type);
        self.store
            .set_headers(
                path.as_str(),
                Some(ct),
                headers_json(headers).as_deref(),
                now_ms(),
            )
            .await?;
        Ok(())
    }

    /// Deletes a file, or a folder with everything below it (metadata first, in one transaction).
    pub async fn delete(&self, c: &Caller, path: &VPath) -> Result<(), VfsError> {
        self.delete_from(c, path, None, None).await
    }

    /// `delete` of a file only while it still has the ETag `etag` (If-Match), checked inside
    /// the delete's transaction: a write that lands between a client's check and its delete
    /// is never deleted (`Changed`). The ETag is as private as the bytes: comparing it needs
    /// the right to read the file. No file there: `NotFound`; a folder: `PreconditionFailed`.
    pub async fn delete_if_match(
        &self,
        c: &Caller,
        path: &VPath,
        etag: &str,
    ) -> Result<(), VfsError> {
        self.delete_object_if(c, path, Some(etag)).await.map(drop)
    }

    /// Deletes a bucket only if nothing but implicit folders is in it, checked inside the
    /// delete's transaction, so a key written meanwhile is never deleted with it
    /// (`NotEmpty` instead).
    pub async fn delete_bucket(&self, c: &Caller, path: &VPath) -> Result<(), VfsError> {
        self.delete_checked(c, path, IF_EMPTY, true).await.map(drop)
    }

    /// Removes an S3 folder marker (`dir/`): an empty folder goes (with the implicit folders
    /// above it that it leaves empty); one still holding entries becomes implicit, so it goes
    /// with its last entry, as a prefix does in S3.
    pub async fn delete_marker(&self, c: &Caller, path: &VPath) -> Result<(), VfsError> {
        match self.delete_checked(c, path, IF_EMPTY, true).await {
            Err(VfsError::NotEmpty) => {
                // the same right as deleting it: a name change in its folder
                let entry = self.stat(c, path).await?;
                let parent = self
                    .lookup(&path.parent())
                    .await?
                    .ok_or(VfsError::NotFound)?;
                Self::require_name_change(c, &parent, Some(&entry))?;
                self.store.set_implicit(path.as_str(), true).await?;
                Ok(())
            }
            r => r.map(drop),
        }
    }

    /// `delete` on behalf of a replication peer (`origin`), journaled as that peer's change:
    /// only while the file still holds the version (ETag and modification time) the peer
    /// deleted (`Changed` otherwise, checked inside the delete's transaction).
    pub(super) async fn delete_from(
        &self,
        c: &Caller,
        path: &VPath,
        origin: Option<&str>,
        version: Option<(&str, i64)>,
    ) -> Result<(), VfsError> {
        let rules = DeleteRules {
            origin,
            if_match: version.map(|v| v.0),
            if_mtime: version.map(|v| v.1),
            ..Default::default()
        };
        self.delete_checked(c, path, rules, true).await.map(drop)
    }

    /// `delete_from`, refused unless empty but for implicit folders with `if_empty`. The
    /// implicit folders the delete empties go in the same transaction. With `keep`, what is
    /// deleted goes into the trash when the bucket keeps one: returns the delete's id then.
    pub(super) async fn delete_checked(
        &self,
        c: &Caller,
        path: &VPath,
        rules: DeleteRules<'_>,
        keep: bool,
    ) -> Result<Option<String>, VfsError> {
        if path.is_root() {
            return Err(VfsError::WrongKind("the root cannot be deleted"));
        }
        let entry = self.stat(c, path).await?;
        let parent = self
            .lookup(&path.parent())
            .await?
            .ok_or(VfsError::NotFound)?;
        Self::require_name_change(c, &parent, Some(&entry))?;
        self.keep_locks_in(path, None, rules.if_empty).await?;
        // rows and bytes go in one transaction: on disk the tree is moved into tmp/ before the
        // COMMIT (removed after it); another service deletes after the COMMIT, so a failure
        // there leaves unreferenced bytes, never rows without bytes
        // kept in the trash (one rename of the whole tree) when the bucket keeps one
        let keep = match keep {
            true => self.keep_deleted(path).await?,
            false => None,
        };
        let batch = keep.as_ref().map(|k| k.0.clone());
        let made = batch.clone();
        let steps = self
            .local_path(path)
            .map(|p| {
                vec![Step::Remove {
                    path: p,
                    keep: keep.clone().and_then(|k| k.1),
                }]
            })
            .unwrap_or_default();
        // another service: files written at their path before blobs are copied into the
        // trash inside the transaction (a blob is taken over by its trash row)
        let other = self.trash_objects(&entry, &keep).await?;
        let store = self.store.clone();
        let p = path.to_string();
        let (origin, if_match, if_mtime) = (
            rules.origin.map(str::to_string),
            rules.if_match.map(str::to_string),
            rules.if_mtime,
        );
        let if_empty = rules.if_empty;
        let res = self
            .commit_with(
                self.guard(c, vec![(path.clone(), true)]),
                steps,
                other,
                move |mark, finish| async move {
                    store
                        .delete_tree_with(
                            &p,
                            DeleteRules {
                                origin: origin.as_deref(),
                                if_empty,
                                if_match: if_match.as_deref(),
                                if_mtime,
                            },
                            mark.as_ref(),
                            batch.as_deref(),
                            finish,
                        )
                        .await
                        .map(|(_, pruned)| pruned)
                },
            )
            .await;
        let pruned = match res {
            Ok(p) => p,
            Err(e) => {
                self.untrash_objects(&keep).await;
                return Err(e);
            }
        };
        if self.uses_blobs() {
            // bytes written at their paths before blobs, and the blobs no row names now (a
            // trashed file's blob is its trash row's)
            self.delete_at_path(path, entry.is_dir).await;
            self.sweep_gone_blobs().await;
        }
        self.remove_pruned(pruned).await;
        Ok(made)
    }

    /// Fails as a copy (`copy`) or move of `from` to `to` would on the checks it makes that do
    /// not depend on what stands at `to`: the rights to read the source tree (a copy, or a
    /// move into another bucket) and to take it out of its folder (a move), and the quota of
    /// the target's group, counting what the delete of `to` would give back. WebDAV asks it
    /// before deleting a folder at `to` to make room (`Overwrite: T`), so a refused copy or
    /// move deletes nothing.
    pub async fn check_replace(
        &self,
        c: &Caller,
        from: &VPath,
        to: &VPath,
        copy: bool,
    ) -> Result<(), VfsError> {
        let src = self.stat(c, from).await?;
        let moved_out = Self::bucket_of(from) != Self::bucket_of(to);
        if !copy {
            let from_dir = self
                .lookup(&from.parent())
                .await?
                .ok_or(VfsError::NotFound)?;
            Self::require_name_change(c, &from_dir, Some(&src))?;
        }
        if copy || moved_out {
            self.require_read_tree(c, &src).await?;
            let rows = match src.is_dir {
                true => self.store.subtree(from.as_str()).await?,
                false => Vec::new(),
            };
            let files = rows.iter().filter(|r| !r.is_dir);
            let mut bytes: i64 = files.clone().map(|r| r.size).sum();
            let mut count = files.count() as i64;
            if !src.is_dir {
                (bytes, count) = (src.size as i64, 1);
            }
            // what the delete of `to` gives back, when its bucket keeps no trash
            if self.keep_deleted(to).await?.is_none() {
                if let Some(old) = self.lookup(to).await? {
                    let gone = match old.is_dir {
                        true => self.store.subtree(to.as_str()).await?,
                        false => Vec::new(),
                    };
                    let gone = gone.iter().filter(|r| !r.is_dir);
                    bytes -= gone.clone().map(|r| r.size).sum::<i64>();
                    count -= gone.count() as i64;
                }
            }
            self.store
                .check_charge(to.as_str(), bytes.max(0), count.max(0))
                .await?;
        }
        Ok(())
    }

    /// Files live inside a bucket: at the root no group pays for them, so a user could store
    /// bytes beyond every quota there. Administrators may still keep files at the root.
    fn require_in_bucket(c: &Caller, path: &VPath) -> Result<(), VfsError> {
        if path.parent().is_root() && !c.is_admin {
            return Err(VfsError::Forbidden(
                "files live inside a bucket, not at the root",
            ));
        }
        Ok(())
    }

    /// Fails unless `c` may read everything at and below `src` (a copy, or a move that hands
    /// the entries to another bucket's group): r on files, r and x on folders.
    async fn require_read_tree(&self, c: &Caller, src: &Entry) -> Result<(), VfsError> {
        src.require(
            c,
            if src.is_dir { R | X } else { R },
            "the source may not be read",
        )?;
        if src.is_dir && !c.is_admin {
            for row in self.store.subtree(src.path.as_str()).await? {
                let e = Entry::from_row(row)?;
                e.require(
                    c,
                    if e.is_dir { R | X } else { R },
                    "something below the source may not be read",
                )?;
            }
        }
        Ok(())
    }

    /// Shared preconditions of MOVE and COPY; returns the destination folder (with
    /// `create_parents`, the deepest existing one and the implicit folders to make below it).
    async fn check_transfer(
        &self,
        c: &Caller,
        src: &Entry,
        to: &VPath,
        create_parents: bool,
    ) -> Result<(Entry, Vec<EntryRow>), VfsError> {
        let from = &src.path;
        if to.is_root() || to.starts_with(from) || from == to {
            return Err(VfsError::Conflict("destination is the source or inside it"));
        }
        if !src.is_dir {
            Self::require_in_bucket(c, to)?;
        }
        self.check_new_name(to)?;
        let (dir, parents) = match self.resolve(c, &to.parent()).await {
            Ok(Some(d)) if d.is_dir => (d, Vec::new()),
            Ok(None) | Err(VfsError::NotFound) if create_parents => {
                self.implicit_parents(c, &to.parent()).await?
            }
            Ok(_) | Err(VfsError::NotFound) | Err(VfsError::Conflict(_)) => {
                return Err(VfsError::Conflict("parent folder does not exist"))
            }
            Err(e) => return Err(e),
        };
        let existing = self.lookup(to).await?;
        if let Some(dst) = &existing {
            if dst.is_dir || src.is_dir {
                return Err(VfsError::Exists);
            }
        }
        Self::require_name_change(c, &dir, existing.as_ref())?;
        Ok((dir, parents))
    }

    /// Moves a file or folder; an existing destination file is replaced, a folder is not.
    pub async fn rename(&self, c: &Caller, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        self.rename_checked(c, from, to, MoveRules::default()).await
    }

    /// `rename` with the preconditions `rules` checked inside the move's transaction: the
    /// source still the version the caller judged (`Changed` otherwise), nothing at the
    /// destination (`Exists` otherwise).
    pub(super) async fn rename_checked(
        &self,
        c: &Caller,
        from: &VPath,
        to: &VPath,
        rules: MoveRules<'_>,
    ) -> Result<(), VfsError> {
        // into an encrypted bucket: sealed first, where they are; a file written plain
        // meanwhile makes the move's transaction refuse, and the move seals again
        let mut tries = 0;
        loop {
            tries += 1;
            match self.rename_once(c, from, to, rules).await {
                Err(VfsError::Conflict(crate::store::NOT_SEALED)) if tries < 3 => continue,
                r => return r,
            }
        }
    }

    /// One attempt of `rename_checked`.
    async fn rename_once(
        &self,
        c: &Caller,
        from: &VPath,
        to: &VPath,
        rules: MoveRules<'_>,
    ) -> Result<(), VfsError> {
        let src = self.stat(c, from).await?;
        let from_dir = self
            .lookup(&from.parent())
            .await?
            .ok_or(VfsError::NotFound)?;
        Self::require_name_change(c, &from_dir, Some(&src))?;
        self.keep_locks_in(from, Some(to), false).await?;
        let (to_dir, _) = self.check_transfer(c, &src, to, false).await?;
        // into another bucket: the moved entries join the destination's group
        let renamed_bucket = from.parent().is_root() && to.parent().is_root();
        let regroup = (Self::bucket_of(from) != Self::bucket_of(to) && !renamed_bucket)
            .then(|| Self::group_for_new(c, &to_dir));
        // the moved entries join the destination's group, which may grant the mover what the
        // source's did not: moving them out needs the rights a copy needs
        if regroup.is_some() {
            self.require_read_tree(c, &src).await?;
        }
        // nothing lands plain in an encrypted bucket (docs/encryption.md)
        let sealed_only = self.move_must_seal(from, to).await?;
        if sealed_only.is_some() {
            self.seal_before_move(from).await?;
        }
        // the storage move runs inside the metadata transaction, after the quota charge and
        // the checks repeated there: refused or failed, neither side changes
        // a file replaced at the destination stays as a noncurrent version
        let keep = if src.is_dir {
            None
        } else {
            self.keep_replaced(to).await?
        };
        let archive = crate::store::Archive {
            key: keep.as_ref().map(|k| k.0.clone()),
            ..Default::default()
        };
        let steps = match (self.local_path(from), self.local_path(to)) {
            (Some(f), Some(t)) => vec![Step::Put {
                from: f,
                to: t,
                keep: keep.clone().and_then(|k| k.1),
            }],
            _ => Vec::new(),
        };
        // an object store: rows only. Files still written at their path (before blobs) get a
        // blob first; a replaced file of that kind is copied aside when kept, and goes after
        let mut old_at_path = false;
        let other: futures_util::future::BoxFuture<'static, Result<(), VfsError>> =
            if self.local.is_some() {
                Box::pin(async { Ok(()) })
            } else {
                let rows = match src.is_dir {
                    true => self.store.subtree(from.as_str()).await?,
                    false => self.store.entry(from.as_str()).await?.into_iter().collect(),
                };
                self.adopt_path_objects(&rows).await?;
                old_at_path = self
                    .store
                    .entry(to.as_str())
                    .await?
                    .is_some_and(|r| !r.is_dir && r.blob.is_none());
                // a replaced blob is taken over by its version: nothing to copy
                let keep = keep.filter(|_| old_at_path);
                let (v, t) = (self.clone(), to.storage_key(false));
                Box::pin(async move { v.keep_object(&t, &keep).await })
            };
        let store = self.store.clone();
        let (f, t, tp) = (from.to_string(), to.to_string(), to.parent().to_string());
        let (if_match, create_new) = (rules.if_match.map(str::to_string), rules.create_new);
        // both ends: the source and all below it, and the destination
        let guard = self.guard(c, vec![(from.clone(), true), (to.clone(), false)]);
        let pruned = self
            .commit_with(guard, steps, other, move |mark, finish| async move {
                let regroup = regroup.as_ref().map(|g| g.as_deref());
                let rules = MoveRules {
                    if_match: if_match.as_deref(),
                    create_new,
                    sealed_only,
                };
                let ends = (mark.as_ref(), &archive);
                store
                    .move_tree_with(&f, &t, &tp, regroup, ends, rules, finish)
                    .await
            })
            .await?;
        if old_at_path {
            self.delete_at_path(to, false).await;
        }
        self.sweep_gone_blobs().await;
        self.remove_pruned(pruned).await;
        Ok(())
    }

    /// Copies a file, or a folder with everything below it; all metadata rows are written
    /// in one transaction after the bytes (copied inside the storage service when it can).
    pub async fn copy(&self, c: &Caller, from: &VPath, to: &VPath) -> Result<(), VfsError> {
        self.copy_with(c, from, to, None).await
    }

    /// `copy` that makes the missing folders above `to` implicit, in the copy's own commit
    /// (S3 CopyObject): a refused copy leaves no folder behind. `keys` are the S3 client's
    /// (SSE-C) for the source and for the copy: an SSE-C source needs its key (and any other
    /// source none), and a copy with either is read and written again, sealed under the
    /// copy's key, or as the target bucket says when it has none.
    pub async fn copy_object(
        &self,
        c: &Caller,
        from: &VPath,
        to: &VPath,
        keys: CopyKeys<'_>,
    ) -> Result<(), VfsError> {
        self.copy_with(c, from, to, Some(keys)).await
    }

    /// A copy: S3's (`keys`, with parents made implicit) or WebDAV's (`None`: an SSE-C file
    /// is copied as it is stored, sealed, and opens with the same client's key).
    async fn copy_with(
        &self,
        c: &Caller,
        from: &VPath,
        to: &VPath,
        keys: Option<CopyKeys<'_>>,
    ) -> Result<(), VfsError> {
        let create_parents = keys.is_some();
        let src = self.stat(c, from).await?;
        self.require_read_tree(c, &src).await?;
        if let Some((from_key, into_key)) = keys {
            Self::check_customer_key(&src, from_key)?;
            if src.needs_customer_key() || into_key.is_some() {
                if src.is_dir {
                    return Err(VfsError::WrongKind("a folder holds no bytes to encrypt"));
                }
                // read and written again as an upload, which makes the checks of any write;
                // onto itself too (S3 changes an object's key so)
                return self
                    .copy_through(c, &src, to, create_parents, (from_key, into_key))
                    .await;
            }
        }
        let (to_dir, parents) = self.check_transfer(c, &src, to, create_parents).await?;
        // a folder holding plain files, into an encrypted bucket: file by file, sealed
        if self.copy_tree_must_seal(&src, to).await? {
            return self.copy_tree_through(c, &src, to).await;
        }
        // into a bucket that stores files in the other form: through plaintext, sealed or
        // not by the target bucket's setting
        if self.copy_changes_form(&src, to).await? {
            return self
                .copy_through(c, &src, to, create_parents, (None, None))
                .await;
        }
        let grp = match parents.last() {
            Some(p) => p.grp.clone(),
            None => Self::group_for_new(c, &to_dir),
        };
        // the bytes are copied from a snapshot of the source's rows; the transaction checks
        // the source still is that snapshot, else the copy is made again
        let mut tries = 0;
        loop {
            tries += 1;
            match self.copy_once(c, &src, to, (grp.clone(), &parents)).await {
                Err(VfsError::Conflict(SOURCE_CHANGED)) if tries < 3 => continue,
                r => return r,
            }
        }
    }

    /// One attempt of `copy`: bytes first (outside the visible tree on `fs`), then the rows
    /// and the rename into place in one transaction.
    async fn copy_once(
        &self,
        c: &Caller,
        src: &Entry,
        to: &VPath,
        (grp, parents): (Option<String>, &[EntryRow]),
    ) -> Result<(), VfsError> {
        let from = &src.path;
        let parents = parents.to_vec();
        // the snapshot is taken again at each attempt, before any byte is read: the stat the
        // caller made may be older than a change that made the last attempt fail
        let head = self
            .store
            .entry(from.as_str())
            .await?
            .filter(|r| r.is_dir == src.is_dir)
            .ok_or(VfsError::Conflict(SOURCE_CHANGED))?;
        let rows = if src.is_dir {
            self.store.subtree(from.as_str()).await?
        } else {
            Vec::new()
        };
        // an object store: every file copied gets a blob of its own, copied before the
        // transaction (nothing names it until the commit)
        let blobs = match self.uses_blobs() {
            true => self
                .copy_blobs(&head, &rows)
                .await
                .map_err(changed_if_gone)?,
            false => Vec::new(),
        };
        let mut copied = vec![(head.path, head.etag, head.mtime_ms)];
        copied.extend(
            rows.iter()
                .map(|r| (r.path.clone(), r.etag.clone(), r.mtime_ms)),
        );
        let store = self.store.clone();
        let (f, t, tp, owner) = (
            from.to_string(),
            to.to_string(),
            to.parent().to_string(),
            c.user.clone(),
        );
        let now = now_ms();
        // a file replaced at the destination stays as a noncurrent version
        let keep = if src.is_dir {
            None
        } else {
            self.keep_replaced(to).await?
        };
        let archive = crate::store::Archive {
            key: keep.as_ref().map(|k| k.0.clone()),
            ..Default::default()
        };
        let made = blobs.clone();
        let change = move |mark: Option<crate::store::Mark>, finish| async move {
            store
                .copy_tree(
                    (&f, &t, &tp),
                    (&owner, grp.as_deref()),
                    now,
                    (&copied, &parents, mark.as_ref(), &archive, &made),
                    finish,
                )
                .await
        };
        if let Some(l) = &self.local {
            // staged in tmp/ (same filesystem), renamed into place by the commit
            let staged = l
                .tmp
                .join(format!("{}.copy", uuid::Uuid::new_v4().simple()));
            let target = l.root.join(to.storage_key(false));
            let source = l.root.join(from.storage_key(false));
            let res = match copy_local(
                (source, from.to_string(), l.dir_mode),
                staged.clone(),
                src.is_dir,
                rows,
            )
            .await
            {
                Ok(()) => {
                    let steps = vec![Step::Put {
                        from: staged.clone(),
                        to: target,
                        keep: keep.and_then(|k| k.1),
                    }];
                    let guard = self.guard(c, vec![(to.clone(), false)]);
                    self.commit_with(guard, steps, Box::pin(async { Ok(()) }), change)
                        .await
                }
                Err(e) => Err(e),
            };
            if res.is_err() {
                tokio::task::spawn_blocking(move || super::journal::remove_any(&staged));
            }
            return res;
        }
        // an object store: the blobs are written; the rows commit
        self.commit_copied_blobs(c, to, (keep, &blobs, src.is_dir), change)
            .await
    }

    /// Dead properties of an entry.
    pub async fn props(&self, c: &Caller, path: &VPath) -> Result<Vec<DeadProp>, VfsError> {
        self.stat(c, path).await?;
        Ok(self.store.props(path.as_str()).await?)
    }

    /// Dead properties of every child of a folder the caller may list, in one query (a
    /// PROPFIND allprop of a folder reads them once, not once per entry).
    pub async fn children_props(
        &self,
        c: &Caller,
        dir: &VPath,
    ) -> Result<std::collections::HashMap<String, Vec<DeadProp>>, VfsError> {
        self.may_list(c, dir).await?;
        Ok(self.store.children_props(dir.as_str()).await?)
    }

    /// Sets and removes dead properties atomically.
    pub async fn patch_props(
        &self,
        c: &Caller,
        path: &VPath,
        patch: &[(bool, DeadProp)],
    ) -> Result<(), VfsError> {
        let e = self.stat(c, path).await?;
        e.require(c, W, "the entry may not be changed")?;
        self.check_unlocked(c, vec![(path.clone(), false)]).await?;
        self.check_props_size(path, patch).await?;
        Ok(self.store.patch_props(path.as_str(), patch).await?)
    }

    /// Refuses (`TooLarge`, nothing stored) a dead property over `DEAD_PROP_MAX` bytes, or a
    /// patch that would leave the entry with more than `DEAD_PROPS_MAX` bytes of them.
    async fn check_props_size(
        &self,
        path: &VPath,
        patch: &[(bool, DeadProp)],
    ) -> Result<(), VfsError> {
        let size =
            |p: &DeadProp| p.namespace.len() + p.name.len() + p.xml.as_ref().map_or(0, String::len);
        if patch.iter().any(|(set, p)| *set && size(p) > DEAD_PROP_MAX) {
            return Err(VfsError::TooLarge("a dead property is over 16 KiB"));
        }
        let mut props: BTreeMap<(String, String), usize> = self
            .store
            .props(path.as_str())
            .await?
            .iter()
            .map(|p| ((p.namespace.clone(), p.name.clone()), size(p)))
            .collect();
        for (set, p) in patch {
            let key = (p.namespace.clone(), p.name.clone());
            if *set {
                props.insert(key, size(p));
            } else {
                props.remove(&key);
            }
        }
        if props.values().sum::<usize>() > DEAD_PROPS_MAX {
            return Err(VfsError::TooLarge(
                "the dead properties of one entry would be over 64 KiB",
            ));
        }
        Ok(())
    }

    /// Changes the mode bits: the owner or an administrator.
    pub async fn chmod(&self, c: &Caller, path: &VPath, mode: u32) -> Result<(), VfsError> {
        self.set_acl(c, path, mode, None).await
    }

    /// Changes the owner (administrators only) and/or the group (the owner, to a group it is
    /// a member of, or an administrator).
    pub async fn chown(
        &self,
        c: &Caller,
        path: &VPath,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(), VfsError> {
        let e = self.stat(c, path).await?;
        if path.is_root() {
            return Err(VfsError::Forbidden("the root has no owner"));
        }
        if owner.is_some() && !c.is_admin {
            return Err(VfsError::Forbidden(
                "only an administrator changes the owner",
            ));
        }
        if let Some(g) = group {
            let owns = e.owned_by(c);
            if !(c.is_admin || (owns && c.groups.iter().any(|m| m == g))) {
                return Err(VfsError::Forbidden("only the owner (a member of the new group) or an administrator changes the group"));
            }
            if self.store.group(g).await?.is_none() {
                return Err(VfsError::NotFound);
            }
        }
        if let Some(u) = owner {
            if self.store.user(u).await?.is_none() {
                return Err(VfsError::NotFound);
            }
        }
        self.check_unlocked(c, vec![(path.clone(), false)]).await?;
        Ok(self
            .store
            .set_ownership(path.as_str(), owner, group, AttrChange::Here)
            .await?)
    }

    /// RFC 4331 figures for `path`: (used, total) of its bucket group's quota, or of the disk
    /// when the bucket has no limit; never 0 available while there is room.
    pub async fn quota_at(&self, c: &Caller, path: &VPath) -> Result<(u64, Option<u64>), VfsError> {
        if let Some((Some(quota), used)) = self.store.quota_of(path.as_str()).await? {
            let used = used.max(0) as u64;
            let quota = quota.max(0) as u64;
            let disk = self.available_bytes().map(|f| used + f);
            return Ok((used, Some(disk.map_or(quota, |d| d.min(quota)))));
        }
        let used = self.used_bytes(c).await?;
        Ok((used, self.available_bytes().map(|f| used + f)))
    }

    /// The quota meter of the bucket holding `path`, for a caller who may see it: the paying
    /// group, its used bytes and its quota (`None`: no quota); `None` when no group pays.
    pub async fn meter(
        &self,
        c: &Caller,
        path: &VPath,
    ) -> Result<Option<(String, u64, Option<u64>)>, VfsError> {
        self.stat(c, path).await?;
        Ok(self
            .store
            .meter_of(path.as_str())
            .await?
            .map(|(g, quota, used)| (g, used.max(0) as u64, quota.map(|q| q.max(0) as u64))))
    }

    /// Bytes used by all files, for RFC 4331 quota properties.
    pub async fn used_bytes(&self, _c: &Caller) -> Result<u64, VfsError> {
        Ok(self.store.used_bytes().await?.max(0) as u64)
    }
}
