//! Versions and trash in the core (docs/versions.md): which writes keep what they replace,
//! browsing what was kept, restoring it as a new current version, and purging by policy.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::journal::Step;
use super::perm::{R, X};
use super::{Caller, Download, Entry, UploadOptions, VPath, Vfs, VfsError};
use crate::store::{
    now_ms, parse_above, Archive, AttrChange, EntryRow, Policy, Purged, TrashRow, VersionRow,
};

/// Where a write or delete keeps what it replaces: the key in the versions store and, on
/// `fs`, that file's path on disk (other services keep it at `VERSIONS_PREFIX` + key).
pub(super) type KeepAt = Option<(String, Option<PathBuf>)>;

/// Where other services than `fs` keep versions: a hidden prefix of the same service, outside
/// every bucket (names starting with it are refused in the namespace).
pub(super) const VERSIONS_PREFIX: &str = ".kura-versions/";

/// The object holding kept bytes on a service other than `fs`: a blob the version took over
/// from the file it was (its key is the blob's), else its object in the versions store.
pub(super) fn version_object(key: &str) -> String {
    if crate::store::is_blob_key(key) {
        return key.to_string();
    }
    format!("{VERSIONS_PREFIX}{key}")
}

/// What a restore brought back.
#[derive(Debug, Default)]
pub struct Restored {
    /// Files made current again.
    pub files: usize,
    /// Folders made again.
    pub folders: usize,
}

/// How `restore_file` brings kept bytes back.
#[derive(Debug, Default)]
pub(super) struct Bring {
    /// A restore from the trash: (path, delete id) leaving it.
    pub untrash: Option<(String, String)>,
    /// S3: the row becomes the current version again as it was (its id, time, owner, mode),
    /// instead of a new version with its bytes; its kept bytes go after the commit.
    pub promote: bool,
    /// S3: a kept delete marker dropped for good in the same commit.
    pub drop: Option<String>,
    /// S3: the file it replaces is destroyed, not kept (a permanent delete of that version).
    pub destroy: bool,
    /// The folders of its delete standing again were checked (`refuse_decoys`) with the
    /// whole delete.
    pub folders_checked: bool,
}

/// A new delete id, also the id of the deleted path's own marker: sorts by time like the
/// version ids SQL makes.
fn new_batch_id() -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{:013x}{}", now_ms(), &rand[..16])
}

fn ms_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// The entry a kept row describes, for the permission rules and the response headers.
pub(super) fn row_entry(r: &VersionRow) -> Result<Entry, VfsError> {
    let mut e = Entry::from_row(EntryRow {
        path: r.path.clone(),
        parent: String::new(),
        is_dir: false,
        size: r.size,
        mtime_ms: if r.marker { r.archived_ms } else { r.mtime_ms },
        etag: r.etag.clone(),
        content_type: r.content_type.clone(),
        owner: r.owner.clone(),
        headers: r.headers.clone(),
        grp: r.grp.clone(),
        mode: r.mode,
        origin: None,
        sealed: r.sealed.clone(),
        blob: None,
    })?;
    e.mtime = ms_time(if r.marker { r.archived_ms } else { r.mtime_ms });
    Ok(e)
}

/// Whether the folders a kept row recorded above it when it was made let `c` through:
/// listing the one that held it, entering the others. They are the folders of that time,
/// not those at the path now: a folder renamed away, or deleted with its trash emptied,
/// leaves no other trace, and a new one of the same name may let others in. A row of a
/// folder delete recorded the folders above the deleted path (those inside it are the
/// delete's own markers, `gone_folders_allow`). A row kept before they were recorded is
/// judged by the folders there now; one whose record does not read is refused.
fn above_allowed(c: &Caller, r: &VersionRow) -> bool {
    if c.is_admin {
        return true;
    }
    let Some(text) = &r.above else {
        return true;
    };
    let Some(chain) = parse_above(text) else {
        return false;
    };
    let Ok(mut folder) = row_entry(r) else {
        return false;
    };
    folder.is_dir = true;
    // the last folder recorded held the row itself unless the row lies deeper in a deleted
    // folder (its path never changes then: the trash stays where the delete happened)
    let depth = r.path.matches('/').count();
    let holds = r.batch.is_none() || chain.len() + 1 == depth;
    let last = chain.len().saturating_sub(1);
    chain.into_iter().enumerate().all(|(i, bits)| {
        let Some((owner, group, mode)) = bits else {
            return true;
        };
        (folder.owner, folder.group, folder.mode) = (owner, group, (mode & 0o777) as u32);
        folder.allows(c, if holds && i == last { R | X } else { X })
    })
}

impl Vfs {
    /// The policy of the bucket holding `path`; `None` for the root and files at the root
    /// (no bucket pays for them).
    async fn policy_at(&self, path: &VPath) -> Result<Option<Policy>, VfsError> {
        match Self::bucket_of(path) {
            Some(b) if b != *path => Ok(Some(self.store.policy(b.as_str()).await?)),
            _ => Ok(None),
        }
    }

    /// Where an overwrite of `path` keeps the replaced bytes, when its bucket keeps versions.
    pub(super) async fn keep_replaced(&self, path: &VPath) -> Result<KeepAt, VfsError> {
        if !self.keeps_replaced(path).await? {
            return Ok(None);
        }
        let key = uuid::Uuid::new_v4().simple().to_string();
        let disk = self.local.as_ref().map(|l| l.versions.join(&key));
        Ok(Some((key, disk)))
    }

    /// Whether an overwrite of `path` keeps the replaced bytes as a noncurrent version.
    async fn keeps_replaced(&self, path: &VPath) -> Result<bool, VfsError> {
        Ok(match self.policy_at(path).await? {
            // an S3 versioning-enabled bucket keeps every version (its policy purges later)
            Some(p) => p.keeps_versions() || self.s3_enabled(path).await?,
            None => false,
        })
    }

    /// The bytes an overwrite of `path` gives back to its group when it commits: the
    /// replaced file's size when the bucket keeps no versions, else 0 (the replaced bytes
    /// stay, as a noncurrent version, and still count). Every quota check made before a
    /// commit (uploads, resumable uploads at creation and at each part) counts the replaced
    /// file through this, as the commit does.
    pub(super) async fn freed_by_overwrite(
        &self,
        path: &VPath,
        replaced: Option<&Entry>,
    ) -> Result<u64, VfsError> {
        let Some(old) = replaced.filter(|e| !e.is_dir) else {
            return Ok(0);
        };
        Ok(match self.keeps_replaced(path).await? {
            true => 0,
            false => old.size,
        })
    }

    /// On a service other than `fs`: copies the object at `from` (if there is one) to where
    /// `keep` keeps it, inside the commit's transaction (on `fs` the journal links it).
    pub(super) async fn keep_object(&self, from: &str, keep: &KeepAt) -> Result<(), VfsError> {
        let Some((key, None)) = keep else {
            return Ok(());
        };
        match self.op.stat(from).await {
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        self.copy_key(from, &version_object(key)).await
    }

    /// On a service other than `fs`: the copy of a deleted file, or of every file of a deleted
    /// folder, into the trash, to run inside the delete's transaction; only files written at
    /// their path before blobs (a blob is taken over by its trash row).
    pub(super) async fn trash_objects(
        &self,
        entry: &Entry,
        keep: &KeepAt,
    ) -> Result<futures_util::future::BoxFuture<'static, Result<(), VfsError>>, VfsError> {
        let Some((batch, None)) = keep.clone() else {
            return Ok(Box::pin(async { Ok(()) }));
        };
        let files: Vec<(String, String)> = if entry.is_dir {
            let base = entry.path.as_str().len();
            self.store
                .subtree(entry.path.as_str())
                .await?
                .into_iter()
                .filter(|r| !r.is_dir && r.blob.is_none())
                .map(|r| {
                    let rel = r.path.get(base..).unwrap_or_default().to_string();
                    (r.path.trim_start_matches('/').to_string(), rel)
                })
                .collect()
        } else if entry.blob.is_none() {
            vec![(entry.path.storage_key(false), String::new())]
        } else {
            Vec::new()
        };
        let v = self.clone();
        Ok(Box::pin(async move {
            for (from, rel) in files {
                v.keep_object(&from, &Some((format!("{batch}{rel}"), None)))
                    .await?;
            }
            Ok(())
        }))
    }

    /// Removes what `trash_objects` copied for a delete that did not commit.
    pub(super) async fn untrash_objects(&self, keep: &KeepAt) {
        if let (Some((batch, None)), None) = (keep, &self.local) {
            let obj = version_object(batch);
            let _ = self.op.delete(&obj).await;
            let _ = self
                .op
                .delete_with(&format!("{obj}/"))
                .recursive(true)
                .await;
        }
    }

    /// Where a delete of `path` puts what it deletes (one key for a whole folder), when its
    /// bucket keeps a trash.
    pub(super) async fn keep_deleted(&self, path: &VPath) -> Result<KeepAt, VfsError> {
        match self.policy_at(path).await? {
            Some(p) if p.keeps_trash() || self.s3_enabled(path).await? => {
                let batch = new_batch_id();
                let disk = self.local.as_ref().map(|l| l.versions.join(&batch));
                Ok(Some((batch, disk)))
            }
            _ => Ok(None),
        }
    }

    /// Fails unless `c` may see the versions of `path`: an administrator, a reader of the
    /// file as it is now, or, for a deleted path, one who may list the deepest folder above it
    /// that is still there and pass the deleted ones between under the bits they had (each
    /// kept row is then read under the bits it had).
    async fn may_see_versions(&self, c: &Caller, path: &VPath) -> Result<(), VfsError> {
        if c.is_admin {
            return Ok(());
        }
        if c.is_anonymous() {
            return Err(VfsError::Forbidden("versions are not public"));
        }
        match self.stat(c, path).await {
            Ok(e) => {
                e.require(c, R, "the file may not be read")?;
                // kept rows may be of a file deleted from an earlier, private folder here
                return match self.gone_folders_allow(c, path, &[]).await? {
                    true => Ok(()),
                    false => Err(VfsError::Forbidden(
                        "a deleted folder above it was not listable",
                    )),
                };
            }
            Err(VfsError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let mut dir = path.parent();
        let mut gone = Vec::new();
        loop {
            match self.stat(c, &dir).await {
                Ok(d) if d.is_dir => {
                    d.require(c, R | X, "the folder may not be listed")?;
                    break;
                }
                Ok(_) => return Err(VfsError::NotFound),
                Err(VfsError::NotFound) if !dir.is_root() => {
                    gone.push(dir.clone());
                    dir = dir.parent();
                }
                Err(e) => return Err(e),
            }
        }
        match self.gone_folders_allow(c, path, &gone).await? {
            true => Ok(()),
            false => Err(VfsError::Forbidden(
                "a deleted folder above it was not listable",
            )),
        }
    }

    /// Whether the folders above the deleted `path` let `c` through under the bits they had
    /// when deleted: listing the one holding it, entering the others. Every kept marker of a
    /// deleted folder at those paths counts, even where a folder of the same name stands
    /// again (one whoever may write its parent could make, to read what was deleted from a
    /// private one). A folder gone (`gone`) with no kept marker left no bits to check (an
    /// implicit S3 folder pruned when emptied, or a folder renamed or moved away, whose bits
    /// may have kept everyone else out): only one who wrote a version of `path` passes it.
    pub(super) async fn gone_folders_allow(
        &self,
        c: &Caller,
        path: &VPath,
        gone: &[VPath],
    ) -> Result<bool, VfsError> {
        let mut unchecked = false;
        let (mut dir, mut want) = (path.parent(), R | X);
        while !dir.is_root() {
            let rows = self.store.versions_of(dir.as_str()).await?;
            let mut markers = rows.iter().filter(|r| r.is_dir).peekable();
            if markers.peek().is_none() && gone.contains(&dir) {
                unchecked = true;
            }
            for r in markers {
                let mut e = row_entry(r)?;
                e.is_dir = true;
                if !e.allows(c, want) {
                    return Ok(false);
                }
            }
            (dir, want) = (dir.parent(), X);
        }
        if !unchecked {
            return Ok(true);
        }
        let rows = self.store.versions_of(path.as_str()).await?;
        Ok(rows
            .iter()
            .any(|r| !r.marker && r.owner.as_deref() == Some(c.user.as_str())))
    }

    /// Fails unless `c` may read everything a delete kept, under the bits it had when deleted:
    /// the deleted folder and every folder in it (r and x), every file (r). A restore brings
    /// back all of it or nothing, as a copy of the live folder would (`require_read_tree`):
    /// whoever may list the folder above a deleted one may not take a private folder's
    /// content out of the trash, nor that of a private folder inside a readable one.
    fn require_read_batch(c: &Caller, rows: &[VersionRow]) -> Result<(), VfsError> {
        if c.is_admin {
            return Ok(());
        }
        let readable = |r: &VersionRow| match r.is_dir {
            true => {
                row_entry(r).is_ok_and(|mut e| {
                    e.is_dir = true;
                    e.allows(c, R | X)
                }) && above_allowed(c, r)
            }
            false => Self::may_read_row(c, r),
        };
        match rows.iter().all(readable) {
            true => Ok(()),
            false => Err(VfsError::Forbidden(
                "something in the deleted folder may not be read",
            )),
        }
    }

    /// Whether `c` may read a kept row under the bits it had when it was current, and those
    /// of the folders above it then (`above_allowed`).
    pub(super) fn may_read_row(c: &Caller, r: &VersionRow) -> bool {
        c.is_admin || (row_entry(r).is_ok_and(|e| e.allows(c, R)) && above_allowed(c, r))
    }

    /// The noncurrent versions and delete markers of `path` that `c` may read, newest first.
    pub async fn versions(&self, c: &Caller, path: &VPath) -> Result<Vec<VersionRow>, VfsError> {
        self.may_see_versions(c, path).await?;
        let rows = self.store.versions_of(path.as_str()).await?;
        Ok(rows
            .into_iter()
            .filter(|r| Self::may_read_row(c, r))
            .collect())
    }

    /// Opens the bytes of one kept version of `path` (an id `versions` listed), under the same
    /// rule as listing it: `NotFound` for an id of another path or one `c` may not read.
    pub async fn open_kept(
        &self,
        c: &Caller,
        path: &VPath,
        id: &str,
    ) -> Result<(Entry, Download), VfsError> {
        self.may_see_versions(c, path).await?;
        let row = self
            .store
            .version(id)
            .await?
            .filter(|r| r.path == path.as_str() && Self::may_read_row(c, r))
            .ok_or(VfsError::NotFound)?;
        if row.marker {
            return Err(VfsError::WrongKind("a delete marker holds no bytes"));
        }
        let entry = row_entry(&row)?;
        let download = self.open_kept_row(&row, &entry, None).await?;
        Ok((entry, download))
    }

    /// The deletes in the trash (of one bucket, or all) that `c` may see: all for an
    /// administrator; for others, those below a folder they may still list whose deleted
    /// path they could read.
    pub async fn trash(
        &self,
        c: &Caller,
        bucket: Option<&VPath>,
    ) -> Result<Vec<TrashRow>, VfsError> {
        let all = self.store.trash(bucket.map(VPath::as_str)).await?;
        if c.is_admin {
            return Ok(all);
        }
        let mut out = Vec::new();
        for t in all {
            let Ok(path) = VPath::parse(&t.path) else {
                continue;
            };
            if self.may_see_versions(c, &path).await.is_err() {
                continue;
            }
            match self.store.version(&t.batch).await? {
                Some(root) if Self::may_read_row(c, &root) => out.push(t),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Restores `path`: the version `version` (default: the newest kept bytes), or a whole
    /// deleted folder (its delete id, or by default when `path` was a folder deleted last), at
    /// `to` (default: where it was). Restored bytes become the new current version; a file they
    /// replace becomes a noncurrent one, and a bucket that keeps no versions refuses instead.
    pub async fn restore(
        &self,
        c: &Caller,
        path: &VPath,
        version: Option<&str>,
        to: Option<&VPath>,
    ) -> Result<Restored, VfsError> {
        // who may see a version may ask to restore it; writing it back needs the right to
        // write where it goes (checked by the restore itself)
        self.may_see_versions(c, path).await?;
        let row = match version {
            Some(id) => self
                .store
                .version(id)
                .await?
                .filter(|r| r.path == path.as_str() && Self::may_read_row(c, r))
                .ok_or(VfsError::NotFound)?,
            None => {
                let rows = self.store.versions_of(path.as_str()).await?;
                match rows.first() {
                    Some(r)
                        if r.marker
                            && r.is_dir
                            && r.batch.as_deref() == Some(&r.id)
                            && Self::may_read_row(c, r) =>
                    {
                        r.clone()
                    }
                    _ => rows
                        .into_iter()
                        .find(|r| !r.marker && Self::may_read_row(c, r))
                        .ok_or(VfsError::NotFound)?,
                }
            }
        };
        let target = to.cloned().unwrap_or_else(|| path.clone());
        if row.marker {
            if row.batch.as_deref() != Some(row.id.as_str()) {
                return Err(VfsError::WrongKind("a delete marker holds no bytes"));
            }
            return self.restore_batch(c, &row, &target).await;
        }
        let untrash = row.batch.clone().map(|b| (row.path.clone(), b));
        let bring = Bring {
            untrash,
            ..Bring::default()
        };
        self.restore_file(c, &row, &target, bring).await?;
        Ok(Restored {
            files: 1,
            folders: 0,
        })
    }

    /// Restores a whole delete (`root` is its deleted path's marker) below `target`.
    async fn restore_batch(
        &self,
        c: &Caller,
        root: &VersionRow,
        target: &VPath,
    ) -> Result<Restored, VfsError> {
        let batch = root.id.clone();
        let rows = self.store.batch(&batch).await?;
        Self::require_read_batch(c, &rows)?;
        if target.as_str() == root.path {
            self.refuse_decoys_above(root).await?;
        }
        if let Some(done) = self.undelete(c, root, target, &rows).await? {
            return Ok(done);
        }
        let cut = root.path.len();
        // all or nothing: a folder standing where a recorded one was, that lets in more than
        // it did, refuses the restore before any file goes into it
        if target.as_str() == root.path {
            self.refuse_decoys(rows.iter().filter(|r| r.marker && r.is_dir))
                .await?;
        }
        // and so does the quota: file by file, each restored file is charged whole to the
        // target's group (its kept bytes stay charged, as a noncurrent version, and so does a
        // file it replaces), so the sum must fit before the first one is restored
        let bytes = rows.iter().filter(|r| !r.marker).map(|r| r.size).sum();
        let files = rows.iter().filter(|r| !r.marker).count() as i64;
        self.store
            .check_charge(target.as_str(), bytes, files)
            .await?;
        let mut done = Restored::default();
        for r in &rows {
            let rel = r.path.get(cut..).unwrap_or_default();
            let t = VPath::parse(&format!("{target}{rel}"))?;
            if r.marker {
                if r.is_dir {
                    let made = self.lookup(&t).await?.is_none();
                    self.ensure_folder(c, &t).await?;
                    // a folder made for the restore gets the bits `kept_bits` gives it
                    if made {
                        let bits = (r.owner.clone(), r.grp.clone(), r.mode);
                        let in_place = t.as_str() == r.path;
                        let (owner, grp, mode) = self.kept_bits(c, bits, None, in_place).await?;
                        self.store
                            .set_mode(t.as_str(), mode, AttrChange::Here)
                            .await?;
                        if c.is_admin || grp.is_some() {
                            self.store
                                .set_ownership(
                                    t.as_str(),
                                    owner.as_deref(),
                                    grp.as_deref(),
                                    AttrChange::Here,
                                )
                                .await?;
                        }
                    }
                    done.folders += 1;
                }
                continue;
            }
            let bring = Bring {
                untrash: Some((r.path.clone(), batch.clone())),
                folders_checked: true,
                ..Bring::default()
            };
            self.restore_file(c, r, &t, bring).await?;
            done.files += 1;
        }
        self.store.untrash_batch(&batch).await?;
        Ok(done)
    }

    /// A whole delete restored where nothing is now, on `fs`, where every entry may come back
    /// as it was (`kept_bits`): where it was, or elsewhere in its bucket by someone who could
    /// set every recorded owner and group herself (an administrator, or the owner of every
    /// entry, a member of each group). One transaction and one rename of its kept tree back
    /// into place. `None` when that does not apply (the caller restores file by file).
    async fn undelete(
        &self,
        c: &Caller,
        root: &VersionRow,
        target: &VPath,
        rows: &[VersionRow],
    ) -> Result<Option<Restored>, VfsError> {
        let Some(l) = self.local.clone() else {
            return Ok(None);
        };
        let whole = rows.iter().filter(|r| !r.marker).count()
            == rows.iter().filter(|r| r.marker && !r.is_dir).count();
        let where_it_was = target.as_str() == root.path;
        let same_bucket =
            Self::bucket_of(target).map(|b| b.to_string()) == Some(root.bucket.clone());
        let all_settable = c.is_admin
            || rows.iter().all(|r| {
                r.owner.as_deref() == Some(c.user.as_str())
                    && r.grp.as_ref().is_none_or(|g| c.groups.contains(g))
            });
        if !whole
            || !(where_it_was || same_bucket && all_settable)
            || target.parent().is_root()
            || self.lookup(target).await?.is_some()
        {
            return Ok(None);
        }
        self.check_new_name(target)?;
        let parent = match self.lookup(&target.parent()).await? {
            Some(p) if p.is_dir => p,
            _ => return Ok(None),
        };
        Self::require_name_change(c, &parent, None)?;
        self.check_unlocked(c, vec![(target.clone(), true)]).await?;
        let steps = vec![Step::Put {
            from: l.versions.join(&root.id),
            to: l.root.join(target.storage_key(false)),
            keep: None,
        }];
        let store = self.store.clone();
        let (batch, to, to_parent) = (
            root.id.clone(),
            target.to_string(),
            target.parent().to_string(),
        );
        let guard = self.guard(c, vec![(target.clone(), true)]);
        let res = self
            .commit_with(
                guard,
                steps,
                Box::pin(async { Ok(()) }),
                move |mark, finish| async move {
                    store
                        .undelete(&batch, (&to, &to_parent), mark.as_ref(), finish)
                        .await
                },
            )
            .await;
        match res {
            Ok(()) => Ok(Some(Restored {
                files: rows.iter().filter(|r| !r.marker).count(),
                folders: rows.iter().filter(|r| r.marker && r.is_dir).count(),
            })),
            // changed since the look above: file by file
            Err(VfsError::Conflict(_)) | Err(VfsError::Exists) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes the bytes of `row` the current version at `target` (a hard link on `fs`: no byte
    /// copied), with the checks of any upload there.
    pub(super) async fn restore_file(
        &self,
        c: &Caller,
        row: &VersionRow,
        target: &VPath,
        bring: Bring,
    ) -> Result<Entry, VfsError> {
        let Some(key) = row.key.clone() else {
            return Err(VfsError::WrongKind("no bytes kept for this version"));
        };
        let opts = UploadOptions {
            create_parents: true,
            ..UploadOptions::default()
        };
        let (existing, parent) = self.check_write(c, target, &opts).await?;
        // one file of a deleted folder, where it was, meets the rule of its whole delete
        if let (Some(batch), false) = (&row.batch, bring.folders_checked) {
            if target.as_str() == row.path {
                let markers = self.store.batch(batch).await?;
                let above = |m: &&VersionRow| {
                    m.marker
                        && m.is_dir
                        && row
                            .path
                            .strip_prefix(m.path.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                };
                self.refuse_decoys(markers.iter().filter(above)).await?;
            }
        }
        if target.as_str() == row.path && !bring.folders_checked {
            self.refuse_decoys_above(row).await?;
        }
        let keep = match &existing {
            Some(_) if bring.destroy => None,
            Some(_) => match self.keep_replaced(target).await? {
                Some(k) => Some(k),
                None => return Err(VfsError::Exists),
            },
            None => None,
        };
        self.check_unlocked(c, vec![(target.clone(), false)])
            .await?;
        // missing folders above the target are made in the commit, as for an S3 key
        let (dir, mut parents) = match parent {
            Some(p) => (p, Vec::new()),
            None => self.implicit_parents(c, &target.parent()).await?,
        };
        // restored where it was (nothing there now), a file is given back as it was: its owner,
        // group and mode, and so are the folders of its delete made again for it
        // (`kept_bits`); elsewhere it is a new file of the restorer's with its mode, as a copy
        // would be. A promoted S3 version is current again as it was.
        let in_place = !bring.promote && existing.is_none() && target.as_str() == row.path;
        if in_place {
            self.keep_folder_bits(c, row, &mut parents).await?;
        }
        let (grp, mode) = match (&existing, parents.last()) {
            _ if bring.promote => (row.grp.clone(), row.mode),
            (Some(e), _) => (e.group.clone(), i64::from(e.mode)),
            // a new file elsewhere keeps its mode: a private file stays private
            (None, Some(p)) => (p.grp.clone(), row.mode & 0o7777),
            (None, None) => (Self::group_for_new(c, &dir), row.mode & 0o7777),
        };
        let (owner, grp, mode) = if in_place {
            self.kept_bits(c, (row.owner.clone(), row.grp.clone(), row.mode), grp, true)
                .await?
        } else {
            let owner = match (bring.promote, &existing) {
                (true, _) => row.owner.clone(),
                (false, Some(e)) => e.owner.clone().or_else(|| Some(c.user.clone())),
                (false, None) => Some(c.user.clone()),
            };
            (owner, grp, mode)
        };
        // on `fs` the kept bytes are linked beside the target first: their length tells the
        // form they hold (a conversion may have switched it since the row was read)
        let staged = self.local.as_ref().map(|l| {
            l.tmp
                .join(format!("{}.restore", uuid::Uuid::new_v4().simple()))
        });
        let sealed = match (&self.local, &staged) {
            (Some(l), Some(staged)) => self.link_kept(l, row, &key, staged).await?,
            _ => row.sealed.clone(),
        };
        // an object store: the kept bytes are copied to a new blob (the version stays, or
        // goes after the commit when promoted), named by the restored row
        let blob = match self.uses_blobs() {
            true => {
                let b = super::blobs::new_blob_key();
                self.copy_key(&version_object(&key), &b).await?;
                Some(b)
            }
            false => None,
        };
        // promoted (S3), the version is current again as it was; restored, it is a new one
        let now = if bring.promote {
            row.mtime_ms
        } else {
            now_ms()
        };
        let entry = EntryRow {
            path: target.to_string(),
            parent: target.parent().to_string(),
            is_dir: false,
            size: row.size,
            mtime_ms: now,
            etag: row.etag.clone(),
            content_type: row.content_type.clone(),
            owner,
            headers: row.headers.clone(),
            grp,
            mode,
            origin: None,
            sealed,
            blob: blob.clone(),
        };
        let archive = Archive {
            key: keep.as_ref().map(|k| k.0.clone()),
            untrash: bring.untrash,
            drop: bring.drop,
            promote: bring.promote.then(|| row.id.clone()),
        };
        // a promoted version's kept bytes are the current file's now: its key goes after
        let promoted: Vec<String> = bring.promote.then(|| key.clone()).into_iter().collect();
        let store = self.store.clone();
        let committed = entry.clone();
        let rows = parents.clone();
        let change = move |mark: Option<crate::store::Mark>, finish| async move {
            store
                .commit_file(
                    &committed,
                    crate::store::WriteRules {
                        parents: &rows,
                        ..Default::default()
                    },
                    mark.as_ref(),
                    &archive,
                    finish,
                )
                .await
        };
        let guard = self.guard(c, vec![(target.clone(), false)]);
        let Some(l) = self.local.clone() else {
            // an object store: the blob is written; the storage step only copies aside a
            // replaced file written at its path before blobs, to be kept
            let at_path = self
                .store
                .entry(target.as_str())
                .await?
                .is_some_and(|r| !r.is_dir && r.blob.is_none());
            let keep = keep.filter(|_| at_path);
            let (v, t) = (self.clone(), target.storage_key(false));
            let finish = Box::pin(async move { v.keep_object(&t, &keep).await });
            let res = self.commit_with(guard, Vec::new(), finish, change).await;
            if let Err(e) = res {
                self.delete_blobs_named(blob.as_slice()).await;
                return Err(e);
            }
            if at_path {
                self.delete_at_path(target, false).await;
            }
            self.remove_kept(&promoted).await;
            self.sweep_gone_blobs().await;
            return Entry::from_row(entry);
        };
        let staged = staged.unwrap_or_default();
        let steps = vec![Step::Put {
            from: staged.clone(),
            to: l.root.join(target.storage_key(false)),
            keep: keep.and_then(|k| k.1),
        }];
        let res = self
            .commit_with(guard, steps, Box::pin(async { Ok(()) }), change)
            .await;
        // left behind when refused, or when the target already was these very bytes
        tokio::task::spawn_blocking(move || super::journal::remove_any(&staged));
        res?;
        self.remove_kept(&promoted).await;
        Entry::from_row(entry)
    }

    /// Hard-links the kept bytes of `row` (at `key`) at `staged` and returns the form they
    /// hold: when their length fits no form the row was read with, a conversion switched them
    /// meanwhile, and the row, read again, says which.
    async fn link_kept(
        &self,
        l: &super::storage::LocalFs,
        row: &VersionRow,
        key: &str,
        staged: &std::path::Path,
    ) -> Result<Option<String>, VfsError> {
        let mut sealed = row.sealed.clone();
        for _ in 0..3 {
            let (src, dst) = (l.versions.join(key), staged.to_path_buf());
            let len = tokio::task::spawn_blocking(move || {
                std::fs::hard_link(&src, &dst)?;
                let len = std::fs::metadata(&dst).map(|m| m.len());
                if len.is_err() {
                    let _ = std::fs::remove_file(&dst);
                }
                len
            })
            .await
            .map_err(|e| super::storage::io_err(std::io::Error::other(e)))?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => VfsError::NotFound,
                _ => super::storage::io_err(e),
            })?;
            if let Some(form) =
                super::sealing::settled_form(row.size as u64, sealed.as_deref(), len)
            {
                return Ok(form.map(str::to_string));
            }
            let _ = std::fs::remove_file(staged);
            match self.store.version(&row.id).await? {
                Some(r) if r.key == row.key => sealed = r.sealed,
                _ => return Err(VfsError::NotFound),
            }
        }
        Err(VfsError::Conflict(
            "the kept bytes changed form while being restored: try again",
        ))
    }

    /// Whether the folder `now` at a deleted folder's path lets in someone the deleted one
    /// (`was`) kept out: another owner or group, or group or other bits it did not grant. A
    /// decoy folder made at a private folder's path would otherwise receive its files on an
    /// in-place restore and expose them (red team). A folder others could read and enter
    /// kept no one out.
    fn opens_more(
        now: &super::Entry,
        (owner, grp, mode): (&Option<String>, &Option<String>, i64),
    ) -> bool {
        if mode & 0o005 == 0o005 {
            return false;
        }
        now.owner != *owner || now.group != *grp || i64::from(now.mode) & !mode & 0o077 != 0
    }

    /// Refuses (409) bringing a delete back where it was, whole or one file of it, into a
    /// folder that now stands at the path of one of its deleted `folders` (their markers) and
    /// lets in more than that one did (`opens_more`).
    async fn refuse_decoys<'a>(
        &self,
        folders: impl Iterator<Item = &'a VersionRow>,
    ) -> Result<(), VfsError> {
        for m in folders {
            let path = VPath::parse(&m.path)?;
            if let Some(e) = self.lookup(&path).await? {
                if e.is_dir && Self::opens_more(&e, (&m.owner, &m.grp, m.mode)) {
                    return Err(VfsError::Conflict(
                        "another folder now stands where the deleted one was and lets in more than it did: restore it elsewhere",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Refuses (409) bringing `row` back where it was into a folder above it that now lets in
    /// more than the folder that stood there when the row was kept (its `above` record): a
    /// file deleted on its own, then its private folder in another delete, and a decoy
    /// folder made at that path (outside red team: its restore went into the decoy).
    async fn refuse_decoys_above(&self, row: &VersionRow) -> Result<(), VfsError> {
        let Some(chain) = row.above.as_deref().and_then(crate::store::parse_above) else {
            return Ok(());
        };
        let names: Vec<&str> = row.path.split('/').filter(|n| !n.is_empty()).collect();
        // the bucket (first) is no decoy: only administrators make buckets
        for (i, bits) in chain.iter().enumerate().skip(1) {
            let (Some((owner, grp, mode)), Some(upto)) = (bits, names.get(..=i)) else {
                continue;
            };
            let path = VPath::parse(&format!("/{}", upto.join("/")))?;
            if let Some(e) = self.lookup(&path).await? {
                if e.is_dir && Self::opens_more(&e, (owner, grp, *mode)) {
                    return Err(VfsError::Conflict(
                        "another folder now stands where the deleted one was and lets in more than it did: restore it elsewhere",
                    ));
                }
            }
        }
        Ok(())
    }

    /// What a restored entry gets of the owner, group and mode recorded for it. Where it was
    /// (`in_place`), what was is put back: the recorded owner and group while they exist, so
    /// that no restorer takes another's file by restoring it. Elsewhere it is the restorer's
    /// new entry, as her copy would be, with what she could set by `chown`: the owner and
    /// group stay for an administrator, the group for a restorer who is a member of it, else
    /// she owns it in `default_grp`. The mode always stays (a private folder stays private).
    async fn kept_bits(
        &self,
        c: &Caller,
        (owner, grp, mode): (Option<String>, Option<String>, i64),
        default_grp: Option<String>,
        in_place: bool,
    ) -> Result<(Option<String>, Option<String>, i64), VfsError> {
        let keep = in_place || c.is_admin;
        let owner = match owner {
            Some(o) if o == c.user => Some(o),
            Some(o) if keep && self.store.user(&o).await?.is_some() => Some(o),
            _ => Some(c.user.clone()),
        };
        let owns = owner.as_deref() == Some(c.user.as_str());
        let grp = match grp {
            Some(g) if keep && self.store.group(&g).await?.is_some() => Some(g),
            Some(g) if owns && c.groups.contains(&g) => Some(g),
            _ => default_grp,
        };
        Ok((owner, grp, mode & 0o7777))
    }

    /// Gives the folders `parents` made again for a file of a delete restored where it was
    /// the bits the delete recorded for them (its folder markers), as `kept_bits` allows.
    async fn keep_folder_bits(
        &self,
        c: &Caller,
        row: &VersionRow,
        parents: &mut [EntryRow],
    ) -> Result<(), VfsError> {
        let Some(batch) = &row.batch else {
            return Ok(());
        };
        if parents.is_empty() {
            return Ok(());
        }
        let markers = self.store.batch(batch).await?;
        for p in parents.iter_mut() {
            let Some(m) = markers
                .iter()
                .find(|m| m.marker && m.is_dir && m.path == p.path)
            else {
                continue;
            };
            let (owner, grp, mode) = self
                .kept_bits(
                    c,
                    (m.owner.clone(), m.grp.clone(), m.mode),
                    p.grp.clone(),
                    true,
                )
                .await?;
            (p.owner, p.grp, p.mode) = (owner, grp, mode);
        }
        Ok(())
    }

    /// Makes the folder `path` and any missing folder above it (a restored delete's folders).
    async fn ensure_folder(&self, c: &Caller, path: &VPath) -> Result<(), VfsError> {
        let mut chain = vec![path.clone()];
        while let Some(p) = chain.last().map(VPath::parent) {
            if p.is_root() {
                break;
            }
            chain.push(p);
        }
        for p in chain.iter().rev() {
            match self.lookup(p).await? {
                Some(e) if e.is_dir => {}
                Some(_) => return Err(VfsError::Conflict("a file is in the way of a folder")),
                None => match self.mkdir(c, p).await {
                    Ok(()) | Err(VfsError::Exists) => {}
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }

    /// Drops what the buckets' policies no longer keep (the background purge and
    /// `kura versions prune`).
    pub async fn purge_expired(&self) -> Result<Purged, VfsError> {
        let p = self.store.purge_expired(now_ms()).await?;
        self.remove_kept(&p.keys).await;
        Ok(p)
    }

    /// Empties the trash (of one bucket, or all) now; administrators only.
    pub async fn empty_trash(
        &self,
        c: &Caller,
        bucket: Option<&VPath>,
    ) -> Result<Purged, VfsError> {
        if !c.is_admin {
            return Err(VfsError::Forbidden(
                "the trash is emptied by administrators",
            ));
        }
        let p = self.store.empty_trash(bucket.map(VPath::as_str)).await?;
        self.remove_kept(&p.keys).await;
        Ok(p)
    }

    /// Before a write of `size` bytes at `path`: when its bucket says so and the quota would
    /// be exceeded, the group's oldest versions and trash are purged to make room.
    pub(super) async fn make_room(&self, path: &VPath, size: u64) -> Result<(), VfsError> {
        let Some(p) = self.policy_at(path).await? else {
            return Ok(());
        };
        if !p.purge_first {
            return Ok(());
        }
        if let Some((group, left)) = self.store.bytes_left(path.as_str()).await? {
            let need = size as i64 - left;
            if need > 0 {
                let purged = self.store.purge_oldest(&group, need).await?;
                self.remove_kept(&purged.keys).await;
            }
        }
        Ok(())
    }

    /// Removes purged bytes from the versions store, and the folders a folder delete left
    /// empty; a failure is logged (fsck reports the leftover).
    pub(super) async fn remove_kept(&self, keys: &[String]) {
        let Some(l) = &self.local else {
            for k in keys {
                if let Err(e) = self.op.delete(&version_object(k)).await {
                    tracing::warn!(key = %k, error = %e, "could not remove purged bytes");
                }
            }
            return;
        };
        let (root, keys) = (l.versions.clone(), keys.to_vec());
        let _ = tokio::task::spawn_blocking(move || {
            for k in keys {
                let p = root.join(&k);
                super::journal::remove_any(&p);
                let mut d = p.parent().map(PathBuf::from);
                while let Some(dir) = d.filter(|d| d.starts_with(&root) && *d != root) {
                    if std::fs::remove_dir(&dir).is_err() {
                        break;
                    }
                    d = dir.parent().map(PathBuf::from);
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::tests::fs_vfs;
    use super::*;
    use crate::store::Store;

    fn user(name: &str, groups: &[&str]) -> Caller {
        Caller {
            user: name.into(),
            is_admin: false,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            primary_group: groups.first().map(|g| g.to_string()),
            can_create_buckets: false,
            lock_tokens: Vec::new(),
        }
    }

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    async fn put(v: &Vfs, c: &Caller, path: &str, body: &[u8]) -> Result<Entry, VfsError> {
        let mut up = v.upload(c, &p(path), UploadOptions::default()).await?;
        up.write(Bytes::copy_from_slice(body)).await?;
        up.commit().await
    }

    async fn read(v: &Vfs, path: &str) -> Vec<u8> {
        let (e, dl) = v.open_read(&Caller::admin("root"), &p(path)).await.unwrap();
        dl.read_at(0, e.size as usize + 1).await.unwrap().to_vec()
    }

    /// A bucket /b of group fam (mode 750: members read, only the owner writes) holding /b/f
    /// (mode 640) that was overwritten once.
    async fn setup() -> (tempfile::TempDir, Vfs) {
        let (dir, v) = fs_vfs().await;
        let root = Caller::admin("root");
        v.store.create_group("fam").await.unwrap();
        v.mkdir(&root, &p("/b")).await.unwrap();
        v.chown(&root, &p("/b"), None, Some("fam")).await.unwrap();
        v.chmod(&root, &p("/b"), 0o750).await.unwrap();
        put(&v, &root, "/b/f", b"first").await.unwrap();
        v.chmod(&root, &p("/b/f"), 0o640).await.unwrap();
        put(&v, &root, "/b/f", b"second").await.unwrap();
        (dir, v)
    }

    #[tokio::test]
    async fn only_readers_see_versions_and_only_writers_restore() {
        let (_dir, v) = setup().await;
        let (eve, ann) = (user("eve", &[]), user("ann", &["fam"]));
        // eve may not read the file: its versions are as private as its bytes
        assert!(v.versions(&eve, &p("/b/f")).await.is_err());
        assert!(v.restore(&eve, &p("/b/f"), None, None).await.is_err());
        // ann reads it, but may neither overwrite it nor add a name to the bucket
        assert_eq!(v.versions(&ann, &p("/b/f")).await.unwrap().len(), 1);
        assert!(matches!(
            v.restore(&ann, &p("/b/f"), None, None).await,
            Err(VfsError::Forbidden(_))
        ));
        assert!(matches!(
            v.restore(&ann, &p("/b/f"), None, Some(&p("/b/copy"))).await,
            Err(VfsError::Forbidden(_))
        ));
        assert_eq!(read(&v, "/b/f").await, b"second");
        assert!(v.stat(&Caller::admin("root"), &p("/b/copy")).await.is_err());
        // once the file is group-writable she restores it; the replaced bytes are kept
        v.chmod(&Caller::admin("root"), &p("/b/f"), 0o660)
            .await
            .unwrap();
        v.restore(&ann, &p("/b/f"), None, None).await.unwrap();
        assert_eq!(read(&v, "/b/f").await, b"first");
        assert_eq!(v.versions(&ann, &p("/b/f")).await.unwrap().len(), 2);
        // a deleted file: ann, who could read it and may list its folder, sees it in the
        // trash but may not bring it back where she may not add a name; eve sees nothing
        v.delete(&Caller::admin("root"), &p("/b/f")).await.unwrap();
        assert!(matches!(
            v.restore(&ann, &p("/b/f"), None, None).await,
            Err(VfsError::Forbidden(_))
        ));
        assert_eq!(v.trash(&ann, None).await.unwrap().len(), 1);
        assert!(v.trash(&eve, None).await.unwrap().is_empty());
        assert!(v
            .versions(&eve, &p("/b/f"))
            .await
            .map_or(true, |l| l.is_empty()));
        assert!(v.empty_trash(&ann, None).await.is_err());
        v.restore(&Caller::admin("root"), &p("/b/f"), None, None)
            .await
            .unwrap();
        assert_eq!(read(&v, "/b/f").await, b"first");
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    /// Attack: ann's private folder (770, group duo; bob is not in it) loses its name, renamed
    /// away or deleted with its trash emptied, and bob makes a folder of the same name. The
    /// kept rows below that path are judged by the folders as they were, not by bob's.
    #[tokio::test]
    async fn a_new_folder_of_the_same_name_opens_nothing_kept_below_the_old_one() {
        let (_dir, v) = fs_vfs().await;
        let root = Caller::admin("root");
        for g in ["fam", "duo"] {
            v.store.create_group(g).await.unwrap();
        }
        v.mkdir(&root, &p("/b")).await.unwrap();
        v.chown(&root, &p("/b"), None, Some("fam")).await.unwrap();
        v.chmod(&root, &p("/b"), 0o775).await.unwrap();
        let (ann, bob) = (user("ann", &["fam", "duo"]), user("bob", &["fam"]));
        let private = |dir: &'static str| {
            let (v, root, ann) = (v.clone(), root.clone(), ann.clone());
            async move {
                v.mkdir(&ann, &p(dir)).await.unwrap();
                v.chown(&root, &p(dir), None, Some("duo")).await.unwrap();
                v.chmod(&ann, &p(dir), 0o770).await.unwrap();
                put(&v, &ann, &format!("{dir}/f"), b"one").await.unwrap();
                put(&v, &ann, &format!("{dir}/f"), b"two").await.unwrap();
            }
        };
        // renamed away after a delete: the trash stays at the old path
        private("/b/priv").await;
        assert!(v.versions(&bob, &p("/b/priv/f")).await.is_err());
        v.delete(&ann, &p("/b/priv/f")).await.unwrap();
        v.rename(&ann, &p("/b/priv"), &p("/b/old")).await.unwrap();
        v.mkdir(&bob, &p("/b/priv")).await.unwrap();
        assert_eq!(v.trash(&ann, None).await.unwrap().len(), 1);
        assert!(v.trash(&bob, None).await.unwrap().is_empty());
        let mine = v.versions(&ann, &p("/b/priv/f")).await.unwrap();
        let id = mine.iter().find(|r| !r.marker).unwrap().id.clone();
        assert!(v
            .versions(&bob, &p("/b/priv/f"))
            .await
            .map_or(true, |l| l.is_empty()));
        assert!(v.open_kept(&bob, &p("/b/priv/f"), &id).await.is_err());
        for version in [None, Some(id.as_str())] {
            let to = p("/b/priv/mine");
            assert!(v
                .restore(&bob, &p("/b/priv/f"), version, Some(&to))
                .await
                .is_err());
        }
        assert!(v.stat(&root, &p("/b/priv/mine")).await.is_err());
        // the older version went with the folder, as private as before
        assert_eq!(v.versions(&ann, &p("/b/old/f")).await.unwrap().len(), 1);
        assert!(v.versions(&bob, &p("/b/old/f")).await.is_err());
        v.restore(&ann, &p("/b/priv/f"), None, Some(&p("/b/old/f")))
            .await
            .unwrap();
        assert_eq!(read(&v, "/b/old/f").await, b"two");

        // deleted whole, its trash emptied: the folder's marker is gone, its file's older
        // version stays (the versions policy keeps it)
        private("/b/sec").await;
        v.delete(&ann, &p("/b/sec")).await.unwrap();
        v.empty_trash(&root, None).await.unwrap();
        v.mkdir(&bob, &p("/b/sec")).await.unwrap();
        assert_eq!(v.versions(&ann, &p("/b/sec/f")).await.unwrap().len(), 1);
        assert_eq!(v.versions(&root, &p("/b/sec/f")).await.unwrap().len(), 1);
        assert!(v
            .versions(&bob, &p("/b/sec/f"))
            .await
            .map_or(true, |l| l.is_empty()));
        assert!(v.restore(&bob, &p("/b/sec/f"), None, None).await.is_err());
        assert!(v.stat(&root, &p("/b/sec/f")).await.is_err());
    }

    #[tokio::test]
    async fn a_policy_that_keeps_nothing_destroys_and_restore_never_overwrites_then() {
        let (dir, v) = setup().await;
        let root = Caller::admin("root");
        let off = Policy {
            trash_secs: 0,
            keep_versions: Some(0),
            keep_secs: None,
            purge_first: false,
        };
        v.store.set_policy("/b", &off).await.unwrap();
        put(&v, &root, "/b/f", b"third").await.unwrap();
        assert_eq!(v.versions(&root, &p("/b/f")).await.unwrap().len(), 1);
        // the kept version would replace the current file, which would be lost: refused
        assert!(matches!(
            v.restore(&root, &p("/b/f"), None, None).await,
            Err(VfsError::Exists)
        ));
        assert_eq!(read(&v, "/b/f").await, b"third");
        v.delete(&root, &p("/b/f")).await.unwrap();
        assert!(v.trash(&root, None).await.unwrap().is_empty());
        // an unreferenced file in versions/ is drift fsck reports and repairs
        std::fs::write(dir.path().join("versions/stray"), b"x").unwrap();
        let r = v.fsck(false).await.unwrap();
        assert_eq!(r.unreferenced_versions, vec!["stray".to_string()]);
        v.fsck(true).await.unwrap();
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    #[tokio::test]
    async fn other_services_keep_versions_under_a_hidden_prefix() {
        let op = opendal::Operator::new(opendal::services::Memory::default()).unwrap();
        let staging = opendal::Operator::new(opendal::services::Memory::default()).unwrap();
        let v = Vfs::new(op.clone(), staging, Store::in_memory().await.unwrap(), None);
        let root = Caller::admin("root");
        v.mkdir(&root, &p("/b")).await.unwrap();
        v.mkdir(&root, &p("/b/d")).await.unwrap();
        put(&v, &root, "/b/f", b"one").await.unwrap();
        put(&v, &root, "/b/f", b"two").await.unwrap();
        put(&v, &root, "/b/d/x", b"x").await.unwrap();
        put(&v, &root, "/b/d/y", b"yy").await.unwrap();
        let kept = v.versions(&root, &p("/b/f")).await.unwrap();
        assert_eq!(kept.len(), 1);
        let key = kept[0].key.clone().unwrap();
        assert_eq!(
            op.read(&version_object(&key)).await.unwrap().to_vec(),
            b"one"
        );
        // the namespace refuses Kura's own prefix as a bucket
        assert!(matches!(
            v.mkdir(&root, &p("/.kura-versions")).await,
            Err(VfsError::Forbidden(_))
        ));
        // a folder delete copies its files into the trash, restored whole
        v.delete(&root, &p("/b/d")).await.unwrap();
        assert_eq!(v.trash(&root, None).await.unwrap()[0].files, 2);
        assert!(v.fsck(false).await.unwrap().is_clean());
        v.restore(&root, &p("/b/d"), None, None).await.unwrap();
        assert_eq!(read(&v, "/b/d/y").await, b"yy");
        v.restore(&root, &p("/b/f"), None, None).await.unwrap();
        assert_eq!(read(&v, "/b/f").await, b"one");
        assert!(v.fsck(false).await.unwrap().is_clean());
        // emptied and pruned to nothing: the hidden objects go too
        v.empty_trash(&root, None).await.unwrap();
        v.store
            .set_policy(
                "/b",
                &Policy {
                    keep_versions: Some(0),
                    ..Policy::default()
                },
            )
            .await
            .unwrap();
        v.purge_expired().await.unwrap();
        assert!(v.versions(&root, &p("/b/f")).await.unwrap().is_empty());
        let left = op.list_with(VERSIONS_PREFIX).recursive(true).await.unwrap();
        assert!(left.iter().all(|e| e.metadata().is_dir()), "{left:?}");
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    /// Attack (red team, after F3): bob's open folder made at the path of ann's deleted
    /// private one receives none of its files one at a time, neither by a restore where it
    /// was (by ann or an administrator) nor by S3's removal of the file's delete marker.
    #[tokio::test]
    async fn one_file_of_a_private_folder_is_not_restored_into_a_decoy_folder() {
        let (_dir, v) = fs_vfs().await;
        let root = Caller::admin("root");
        v.store.create_group("fam").await.unwrap();
        v.mkdir(&root, &p("/b")).await.unwrap();
        v.chown(&root, &p("/b"), None, Some("fam")).await.unwrap();
        v.chmod(&root, &p("/b"), 0o770).await.unwrap();
        v.set_versioning(&root, &p("/b"), crate::store::S3Versioning::Enabled)
            .await
            .unwrap();
        let (ann, bob) = (user("ann", &["fam"]), user("bob", &["fam"]));
        v.mkdir(&ann, &p("/b/pf")).await.unwrap();
        v.chmod(&ann, &p("/b/pf"), 0o700).await.unwrap();
        put(&v, &ann, "/b/pf/f", b"private").await.unwrap();
        v.delete(&ann, &p("/b/pf")).await.unwrap();
        v.mkdir(&bob, &p("/b/pf")).await.unwrap();
        v.chmod(&bob, &p("/b/pf"), 0o777).await.unwrap();
        for c in [&ann, &root] {
            let r = v.restore(c, &p("/b/pf/f"), None, None).await;
            assert!(matches!(r, Err(VfsError::Conflict(_))), "{r:?}");
        }
        let marker = v
            .object_versions(&root, &p("/b"), "pf/f", ("", None), 10)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.marker && o.latest)
            .unwrap();
        let r = v
            .delete_object_version(&ann, &p("/b/pf/f"), &marker.s3_id(), false)
            .await;
        assert!(matches!(r, Err(VfsError::Conflict(_))), "{r:?}");
        assert!(v.stat(&root, &p("/b/pf/f")).await.is_err());
        // elsewhere it comes back
        v.restore(&ann, &p("/b/pf/f"), None, Some(&p("/b/back")))
            .await
            .unwrap();
        assert_eq!(read(&v, "/b/back").await, b"private");
    }

    #[tokio::test]
    async fn a_deleted_folder_comes_back_in_one_step_or_file_by_file_after_a_partial_restore() {
        let (dir, v) = setup().await;
        let root = Caller::admin("root");
        v.mkdir(&root, &p("/b/d")).await.unwrap();
        v.mkdir(&root, &p("/b/d/e")).await.unwrap();
        put(&v, &root, "/b/d/x", b"x").await.unwrap();
        put(&v, &root, "/b/d/e/y", b"yy").await.unwrap();
        let before = v.stat(&root, &p("/b/d/e/y")).await.unwrap();
        // whole, where nothing is now: the same entries, the tree renamed back
        v.delete(&root, &p("/b/d")).await.unwrap();
        let id = v.trash(&root, None).await.unwrap()[0].batch.clone();
        assert!(dir.path().join("versions").join(&id).is_dir());
        let done = v.restore(&root, &p("/b/d"), None, None).await.unwrap();
        assert_eq!((done.files, done.folders), (2, 2));
        let after = v.stat(&root, &p("/b/d/e/y")).await.unwrap();
        assert_eq!((after.etag, after.mtime), (before.etag, before.mtime));
        assert!(v.trash(&root, None).await.unwrap().is_empty());
        assert!(v.store.versions_of("/b/d/e/y").await.unwrap().is_empty());
        assert!(!dir.path().join("versions").join(&id).exists());
        assert!(v.fsck(false).await.unwrap().is_clean());
        // one file taken out first: the rest comes back file by file
        v.delete(&root, &p("/b/d")).await.unwrap();
        let t = v.trash(&root, None).await.unwrap();
        v.restore(&root, &p("/b/d/x"), None, None).await.unwrap();
        assert_eq!(v.trash(&root, None).await.unwrap()[0].files, 1);
        let done = v
            .restore(&root, &p("/b/d"), Some(&t[0].batch), None)
            .await
            .unwrap();
        assert_eq!(done.files, 1);
        assert_eq!(read(&v, "/b/d/e/y").await, b"yy");
        assert_eq!(read(&v, "/b/d/x").await, b"x");
        assert!(v.trash(&root, None).await.unwrap().is_empty());
        assert!(v.fsck(false).await.unwrap().is_clean());
    }

    #[tokio::test]
    async fn a_restore_is_journaled_for_replication_like_any_write() {
        let (_dir, v) = setup().await;
        let root = Caller::admin("root");
        v.store
            .insert_peer(&crate::store::PeerRow {
                name: "peer".into(),
                endpoint: "https://peer".into(),
                access_key: "k".into(),
                secret_enc: "s".into(),
                ca_fingerprint: None,
                node_id: None,
                created_ms: 0,
                pull: false,
            })
            .await
            .unwrap();
        v.store.upsert_rule("b", "peer", "", false).await.unwrap();
        v.mkdir(&root, &p("/b/d")).await.unwrap();
        put(&v, &root, "/b/d/x", b"x").await.unwrap();
        v.delete(&root, &p("/b/d")).await.unwrap();
        let seen = v.store.journal_after("b", 0, 100).await.unwrap();
        let last = seen.last().unwrap().seq;
        v.restore(&root, &p("/b/f"), None, None).await.unwrap();
        v.restore(&root, &p("/b/d"), None, None).await.unwrap();
        let paths: Vec<String> = v
            .store
            .journal_after("b", last, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert!(paths.contains(&"/b/f".to_string()), "{paths:?}");
        assert!(paths.contains(&"/b/d/x".to_string()), "{paths:?}");
    }

    #[tokio::test]
    async fn copy_and_move_over_a_file_keep_it_as_a_version() {
        let (_dir, v) = setup().await;
        let root = Caller::admin("root");
        put(&v, &root, "/b/g", b"gee").await.unwrap();
        put(&v, &root, "/b/h", b"aitch").await.unwrap();
        v.copy(&root, &p("/b/g"), &p("/b/f")).await.unwrap();
        v.rename(&root, &p("/b/h"), &p("/b/f")).await.unwrap();
        assert_eq!(read(&v, "/b/f").await, b"aitch");
        let sizes: Vec<i64> = v
            .versions(&root, &p("/b/f"))
            .await
            .unwrap()
            .iter()
            .map(|r| r.size)
            .collect();
        // newest first: the copy MOVE replaced, the "second" COPY replaced, the first PUT's
        assert_eq!(sizes, [3, 6, 5]);
        v.restore(&root, &p("/b/f"), None, None).await.unwrap();
        assert_eq!(read(&v, "/b/f").await, b"gee");
        // renamed, a file keeps its history
        v.mkdir(&root, &p("/b/sub")).await.unwrap();
        v.rename(&root, &p("/b/f"), &p("/b/sub/renamed"))
            .await
            .unwrap();
        assert!(v.versions(&root, &p("/b/f")).await.unwrap().is_empty());
        assert_eq!(
            v.versions(&root, &p("/b/sub/renamed")).await.unwrap().len(),
            4
        );
        v.restore(&root, &p("/b/sub/renamed"), None, None)
            .await
            .unwrap();
        assert_eq!(read(&v, "/b/sub/renamed").await, b"aitch");
        assert!(v.fsck(false).await.unwrap().is_clean());
    }
}
