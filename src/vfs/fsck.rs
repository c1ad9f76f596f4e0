//! Consistency check: storage against metadata (files changed behind Kura's back, leftovers of
//! a crash) and usage counters against metadata; `repair` makes metadata follow storage.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use md5::{Digest, Md5};

use super::blobs::{blob_made_ms, BLOB_GRACE_MS};
use super::storage::io_err;
use super::stored_walk::{Odd, StoredItem, StoredWalk};
use super::{VPath, Vfs, VfsError};
use crate::store::{now_ms, CheckedRow, Drift, EntryRow, MetaError, BLOBS_PREFIX};

/// What `fsck` found.
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Stored objects without a metadata row (repair: recorded).
    pub unrecorded: Vec<String>,
    /// Metadata rows whose object (or blob, on an object store) is gone (repair: removed).
    pub missing: Vec<String>,
    /// Files whose stored size differs from their row (repair: size and ETag recomputed).
    pub changed: Vec<String>,
    /// Copies left by an interrupted COPY (repair: deleted).
    pub leftovers: Vec<String>,
    /// Files in the versions store no version refers to (repair: removed).
    pub unreferenced_versions: Vec<String>,
    /// Versions whose bytes are gone from the versions store (repair: forgotten).
    pub missing_versions: Vec<String>,
    /// Kept bytes (`fs`) whose length fits no form their version records (plain, or sealed
    /// for its plaintext size): reported, not repaired.
    pub changed_versions: Vec<String>,
    /// Entries whose type changed on disk, with what is there now (`true`: a folder where a
    /// file was recorded; `false`: the reverse). Repair: the stale rows go, what is on disk
    /// is recorded.
    pub swapped: Vec<(String, bool)>,
    /// Empty folders without a row, left by a pruned implicit folder whose removal failed
    /// (repair: removed).
    pub empty_dirs: Vec<String>,
    /// Stored names Kura refuses, with why (not UTF-8, not NFC, a control character...):
    /// never recorded (nor what is below them), left as they are; a row of the same path goes.
    pub refused: Vec<(String, String)>,
    /// Symbolic links: never followed nor recorded, left as they are; a row of the same path
    /// goes. One in the versions store (`versions/KEY`) is never read: its version counts as
    /// gone.
    pub symlinks: Vec<String>,
    /// Pipes, sockets and devices: never recorded, left as they are.
    pub special: Vec<String>,
    /// Findings repair cannot fix or failed to, with why (the rest of the repair is done).
    pub unrepaired: BTreeMap<String, String>,
    /// Blobs (object stores) no file or version names, made longer ago than
    /// `BLOB_GRACE_MS` (repair: removed); younger ones may be uploads in flight.
    pub orphan_blobs: Vec<String>,
    /// Groups whose usage counters were wrong (repair: recounted).
    pub usage: Vec<Drift>,
    /// Entries the search index has wrong (repair: the index is rebuilt from the entries).
    pub search_index: i64,
}

impl FsckReport {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.unrecorded.is_empty()
            && self.missing.is_empty()
            && self.changed.is_empty()
            && self.leftovers.is_empty()
            && self.unreferenced_versions.is_empty()
            && self.missing_versions.is_empty()
            && self.changed_versions.is_empty()
            && self.orphan_blobs.is_empty()
            && self.swapped.is_empty()
            && self.empty_dirs.is_empty()
            && self.refused.is_empty()
            && self.symlinks.is_empty()
            && self.special.is_empty()
            && self.usage.is_empty()
            && self.search_index == 0
    }

    /// True when a repair leaves nothing behind: no finding it cannot fix or failed to.
    pub fn is_repaired(&self) -> bool {
        self.refused.is_empty()
            && self.symlinks.is_empty()
            && self.special.is_empty()
            && self.changed_versions.is_empty()
            && self.unrepaired.is_empty()
    }
}

/// What a repair does once the comparison is over (the rows are streamed while it runs).
#[derive(Default)]
struct Repairs {
    /// Rows whose entry changed type on disk, to drop (with what is below them) before what
    /// is on disk is recorded.
    drop: Vec<String>,
    /// Stored entries without a row, to record: (path, is_dir, size).
    record: Vec<(String, bool, u64)>,
    /// Plain files whose row has another size, to record again: (path, size).
    rerecord: Vec<(String, u64)>,
}

impl Vfs {
    /// Compares storage with metadata and usage with metadata; with `repair`, fixes both.
    /// Both sides are read in path order and merged an entry at a time: memory grows with
    /// what is found, not with the tree.
    pub async fn fsck(&self, repair: bool) -> Result<FsckReport, VfsError> {
        let mut report = FsckReport::default();
        let mut kept_objects = BTreeSet::new();
        // blobs found in the store (object stores), and the blob rows met on the way
        let mut blobs = BTreeSet::new();
        let mut blob_rows: Vec<(String, String)> = Vec::new();
        let mut stored = match &self.local {
            Some(l) => StoredWalk::local(
                l.root.clone(),
                super::versions::VERSIONS_PREFIX.trim_end_matches('/'),
            ),
            None => StoredWalk::listed(self.listed_objects(&mut kept_objects, &mut blobs).await?),
        };
        // on an object store folders are rows only, and a file with a blob is checked
        // against the blobs; the walk compares files stored at their path (before blobs)
        let on_store = self.local.is_none();
        let mut fixes = Repairs::default();
        // a refused folder, whose contents are not looked at one by one
        let mut refused_dir: Option<String> = None;
        {
            let mut rows = std::pin::pin!(self.store.entries_to_check().try_filter(|r| {
                let walked = !on_store || (!r.is_dir && r.blob.is_none());
                if let (false, Some(b)) = (walked, &r.blob) {
                    blob_rows.push((r.path.clone(), b.clone()));
                }
                std::future::ready(walked)
            }));
            let mut s = stored.next().await.map_err(io_err)?;
            let mut r = rows.try_next().await?;
            loop {
                let order = match (&s, &r) {
                    (None, None) => break,
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(a), Some(b)) => a.path.cmp(&b.path),
                };
                if order != Ordering::Greater {
                    let row = if order == Ordering::Equal {
                        r.take()
                    } else {
                        None
                    };
                    if let Some(item) = s.take() {
                        compare(item, row, &mut refused_dir, &mut report, &mut fixes);
                    }
                    s = stored.next().await.map_err(io_err)?;
                }
                if order != Ordering::Less {
                    if let Some(row) = r.take() {
                        report.missing.push(row.path);
                    }
                    r = rows.try_next().await?;
                }
            }
        }
        report.missing.extend(
            blob_rows
                .into_iter()
                .filter(|(_, b)| !blobs.contains(b))
                .map(|(p, _)| p),
        );
        if repair {
            self.repair(&mut report, fixes).await;
        }
        self.check_versions(&mut report, repair, (kept_objects, &blobs))
            .await?;
        self.check_blobs(&mut report, repair, blobs).await?;
        report.usage = self.store.check_usage(repair).await?;
        report.search_index = self.store.search_index_drift().await?;
        if repair && report.search_index > 0 {
            self.store.rebuild_search_index().await?;
        }
        Ok(report)
    }

    /// What a remote service stores, through OpenDAL's recursive lister (kept versions go to
    /// `kept`).
    async fn listed_objects(
        &self,
        kept: &mut BTreeSet<String>,
        blobs: &mut BTreeSet<String>,
    ) -> Result<Vec<StoredItem>, VfsError> {
        let mut items = Vec::new();
        let mut lister = self.op.lister_with("").recursive(true).await?;
        while let Some(entry) = lister.try_next().await? {
            let key = entry.path().trim_end_matches('/');
            if key.is_empty() {
                continue;
            }
            // kept versions on a service other than `fs` (checked against their rows later)
            if let Some(k) = entry.path().strip_prefix(super::versions::VERSIONS_PREFIX) {
                if !entry.metadata().is_dir() && !k.is_empty() {
                    kept.insert(k.to_string());
                }
                continue;
            }
            if key == super::versions::VERSIONS_PREFIX.trim_end_matches('/') {
                continue;
            }
            // multipart parts staged in the same store: uploads in progress, not files (the
            // upload expiry job removes abandoned ones)
            let staging = super::storage::STAGING_PREFIX;
            if entry.path().starts_with(staging) || key == staging.trim_end_matches('/') {
                continue;
            }
            // blobs (checked against the rows naming them later); folder markers (folders
            // are rows only)
            if entry.path().starts_with(BLOBS_PREFIX) || key == BLOBS_PREFIX.trim_end_matches('/') {
                if !entry.metadata().is_dir() {
                    blobs.insert(entry.path().to_string());
                }
                continue;
            }
            let is_dir = entry.metadata().is_dir();
            if is_dir {
                continue;
            }
            let size = if is_dir {
                0
            } else {
                self.op.stat(key).await?.content_length()
            };
            items.push(StoredItem {
                path: format!("/{key}"),
                is_dir,
                size,
                empty: false,
                odd: None,
            });
        }
        Ok(items)
    }

    /// Makes metadata follow storage for what the comparison found, an entry at a time: one
    /// that fails is noted in `unrepaired` and the rest is still done.
    async fn repair(&self, report: &mut FsckReport, fixes: Repairs) {
        let mut failed = BTreeMap::new();
        let note = |failed: &mut BTreeMap<String, String>, path: &str, e: VfsError| {
            tracing::warn!(path, error = %e, "fsck: not repaired");
            failed.insert(path.to_string(), e.to_string());
        };
        for path in &report.leftovers {
            if let Err(e) = self.op.delete(path.trim_start_matches('/')).await {
                note(&mut failed, path, e.into());
            }
        }
        // an empty folder left on disk by a pruned implicit folder whose removal failed (or
        // was interrupted) is not worth recording
        for path in &report.empty_dirs {
            let dir = format!("{}/", path.trim_start_matches('/'));
            if let Err(e) = self.op.delete(&dir).await {
                note(&mut failed, path, e.into());
            }
        }
        // a type swap: the stale rows go first, then what is on disk is recorded in its place
        for path in &fixes.drop {
            if let Err(e) = self.drop_rows(path).await {
                note(&mut failed, path, e);
            }
        }
        // in path order: a folder is recorded before what it holds takes its owner
        for (path, is_dir, size) in &fixes.record {
            if failed.contains_key(path) {
                continue;
            }
            if let Err(e) = self.record(path, *is_dir, *size).await {
                note(&mut failed, path, e);
            }
        }
        for (path, size) in &fixes.rerecord {
            if let Err(e) = self.record(path, false, *size).await {
                note(&mut failed, path, e);
            }
        }
        for path in report.missing.iter().rev() {
            if let Err(e) = self.drop_rows(path).await {
                note(&mut failed, path, e);
            }
        }
        report.unrepaired.append(&mut failed);
    }

    /// The row of the folder holding `p` (`None` at the top). Folders above it without a row
    /// (an implicit folder pruned when a swapped entry's rows went) are recorded first: they
    /// are on disk, since `p` is.
    async fn recorded_parent(&self, p: &VPath) -> Result<Option<EntryRow>, VfsError> {
        let mut missing = Vec::new();
        let mut dir = p.parent();
        let found = loop {
            if dir.is_root() {
                break None;
            }
            if let Some(e) = self.store.entry(dir.as_str()).await? {
                break Some(e);
            }
            let up = dir.parent();
            missing.push(dir);
            dir = up;
        };
        if found.is_none() || missing.is_empty() {
            return Ok(found);
        }
        let (owner, grp) = found.map_or((None, None), |e| (e.owner, e.grp));
        let mut last = None;
        for d in missing.iter().rev() {
            let row = self.folder_row(d, owner.clone(), grp.clone(), now_ms());
            match self.store.insert_dir(&row).await {
                Ok(()) | Err(MetaError::Duplicate) => {}
                Err(e) => return Err(e.into()),
            }
            last = Some(row);
        }
        Ok(last)
    }

    /// Removes the row at `path` and those below it; done when they are gone already.
    async fn drop_rows(&self, path: &str) -> Result<(), VfsError> {
        match self.store.delete_tree(path, None).await {
            Ok(_) | Err(MetaError::Gone) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The versions store (`fs`) against the version rows: every kept file referenced, every
    /// referenced key there.
    async fn check_versions(
        &self,
        report: &mut FsckReport,
        repair: bool,
        (kept_objects, blobs): (BTreeSet<String>, &BTreeSet<String>),
    ) -> Result<(), VfsError> {
        let rows = self.store.version_keys().await?;
        // name -> stored length (on `fs`; other services' are not compared); a version that
        // took over a file's blob is there when its blob is
        let lens: BTreeMap<String, Option<u64>> = match &self.local {
            None => kept_objects
                .into_iter()
                .chain(
                    rows.iter()
                        .map(|(k, _, _)| k.clone())
                        .filter(|k| blobs.contains(k)),
                )
                .map(|k| (k, None))
                .collect(),
            Some(l) => {
                let (files, links) = Self::kept_files(l.versions.clone()).await?;
                // a link in place of kept bytes is never read: its version counts as gone
                report
                    .symlinks
                    .extend(links.into_iter().map(|k| format!("versions/{k}")));
                files
            }
        };
        let on_disk: std::collections::BTreeSet<String> = lens.keys().cloned().collect();
        let keys: std::collections::BTreeSet<String> =
            rows.iter().map(|(k, _, _)| k.clone()).collect();
        report.unreferenced_versions = on_disk.difference(&keys).cloned().collect();
        report.missing_versions = keys.difference(&on_disk).cloned().collect();
        // a kept file's length follows from its size and form, as a current file's does
        report.changed_versions = rows
            .iter()
            .filter(|(k, size, sealed)| {
                lens.get(k).copied().flatten().is_some_and(|len| {
                    !super::sealing::stored_lens(*size as u64, sealed.as_deref()).contains(&len)
                })
            })
            .map(|(k, _, _)| k.clone())
            .collect();
        report.changed_versions.dedup();
        if repair {
            self.remove_kept(&report.unreferenced_versions).await;
            self.store
                .drop_version_keys(&report.missing_versions)
                .await?;
        }
        Ok(())
    }

    /// Object stores: the blobs no file or version names (listed before the references are
    /// read, so one committed meanwhile counts as named), older than the grace period; repair
    /// removes them, and the blobs committed changes queued for deletion.
    async fn check_blobs(
        &self,
        report: &mut FsckReport,
        repair: bool,
        blobs: BTreeSet<String>,
    ) -> Result<(), VfsError> {
        if blobs.is_empty() {
            return Ok(());
        }
        let named = self.store.referenced_blobs().await?;
        let old = now_ms() - BLOB_GRACE_MS;
        report.orphan_blobs = blobs
            .into_iter()
            .filter(|b| !named.contains(b) && blob_made_ms(b).is_none_or(|ms| ms < old))
            .collect();
        if repair {
            for b in &report.orphan_blobs {
                if let Err(e) = self.op.delete(b).await {
                    tracing::warn!(blob = %b, error = %e, "fsck: not repaired");
                    report.unrepaired.insert(b.clone(), e.to_string());
                }
            }
            self.sweep_gone_blobs().await;
        }
        Ok(())
    }

    /// The files below `versions/` on `fs`, relative to it, with their lengths, and the
    /// links there (never followed).
    async fn kept_files(
        root: std::path::PathBuf,
    ) -> Result<(BTreeMap<String, Option<u64>>, Vec<String>), VfsError> {
        tokio::task::spawn_blocking(move || {
            let mut files = BTreeMap::new();
            let mut links = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(d) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    let p = e.path();
                    match e.file_type() {
                        Ok(t) if t.is_dir() => stack.push(p),
                        Ok(t) => {
                            if let Ok(rel) = p.strip_prefix(&root) {
                                let rel = rel.to_string_lossy().to_string();
                                if t.is_symlink() {
                                    links.push(rel);
                                } else {
                                    let len = e.metadata().ok().map(|m| m.len());
                                    files.insert(rel, len);
                                }
                            }
                        }
                        Err(_) => {}
                    }
                }
            }
            (files, links)
        })
        .await
        .map_err(|e| super::storage::io_err(std::io::Error::other(e)))
    }

    /// Records a stored object as it is: the MD5 is read from the bytes, owner and group come
    /// from the folder it is in.
    async fn record(&self, path: &str, is_dir: bool, size: u64) -> Result<(), VfsError> {
        let p = VPath::parse(path)?;
        let parent = self.recorded_parent(&p).await?;
        let (owner, grp) = parent.map_or((None, None), |e| (e.owner, e.grp));
        let now = now_ms();
        if is_dir {
            let row = self.folder_row(&p, owner, grp, now);
            return match self.store.insert_dir(&row).await {
                Ok(()) | Err(MetaError::Duplicate) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        let mut md5 = Md5::new();
        let reader = self.op.reader(&p.storage_key(false)).await?;
        let mut stream = reader.into_bytes_stream(0..size).await?;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| opendal::Error::new(opendal::ErrorKind::Unexpected, e.to_string()))?
        {
            md5.update(&chunk);
        }
        let row = EntryRow {
            path: p.to_string(),
            parent: p.parent().to_string(),
            is_dir: false,
            size: size as i64,
            mtime_ms: now,
            etag: hex::encode(md5.finalize()),
            content_type: Some(
                mime_guess::from_path(p.name())
                    .first_or_octet_stream()
                    .to_string(),
            ),
            owner,
            headers: None,
            grp,
            mode: i64::from(0o666 & !self.umask),
            origin: None,
            sealed: None,
            blob: None,
        };
        // recorded even over quota: the bytes are already there; usage is recounted after
        match self
            .store
            .commit_file(
                &row,
                crate::store::WriteRules::default(),
                None,
                &Default::default(),
                async { Ok::<(), VfsError>(()) },
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(crate::store::Committed::Meta(MetaError::QuotaExceeded(_))) => {
                self.store.record_file_unchecked(&row).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// One stored entry against its row (`None`: no row has its path). `refused_dir` is the last
/// refused folder: what is below it was reported with it.
fn compare(
    item: StoredItem,
    row: Option<CheckedRow>,
    refused_dir: &mut Option<String>,
    report: &mut FsckReport,
    fixes: &mut Repairs,
) {
    if refused_dir.as_deref().is_some_and(|d| {
        item.path.starts_with(d) && item.path.as_bytes().get(d.len()) == Some(&b'/')
    }) {
        if let Some(r) = row {
            report.missing.push(r.path);
        }
        return;
    }
    // what Kura never records: a row of its path stands for something no longer there
    let list = match item.odd {
        Some(Odd::Symlink) => Some(&mut report.symlinks),
        Some(Odd::Special) => Some(&mut report.special),
        Some(Odd::NotUtf8) => {
            report.refused.push((item.path.clone(), "not UTF-8".into()));
            None
        }
        // a row's path is canonical: only a name without one is checked
        None => match row.is_none().then(|| refusal(&item.path)).flatten() {
            Some(why) => {
                if item.is_dir {
                    *refused_dir = Some(item.path.clone());
                }
                report.refused.push((item.path.clone(), why));
                None
            }
            None if row.as_ref().is_none_or(|r| r.is_dir == item.is_dir) => {
                return compare_recordable(item, row, report, fixes);
            }
            None => return swapped(item, fixes, report),
        },
    };
    if let Some(list) = list {
        list.push(item.path);
    }
    if let Some(r) = row {
        report.missing.push(r.path);
    }
}

/// An entry whose type changed on disk: its rows go, it is recorded as it is now.
fn swapped(item: StoredItem, fixes: &mut Repairs, report: &mut FsckReport) {
    fixes.drop.push(item.path.clone());
    fixes
        .record
        .push((item.path.clone(), item.is_dir, item.size));
    report.swapped.push((item.path, item.is_dir));
}

/// A stored entry Kura can record against its row of the same type, if any.
fn compare_recordable(
    item: StoredItem,
    row: Option<CheckedRow>,
    report: &mut FsckReport,
    fixes: &mut Repairs,
) {
    if !item.is_dir && is_copy_leftover(&item.path) {
        report.leftovers.push(item.path);
        return;
    }
    match row {
        None if item.is_dir && item.empty => report.empty_dirs.push(item.path),
        None => {
            fixes
                .record
                .push((item.path.clone(), item.is_dir, item.size));
            report.unrecorded.push(item.path);
        }
        // a sealed file's stored length follows from its plaintext size
        Some(r)
            if !r.is_dir
                && !item.is_dir
                && !super::sealing::stored_lens(r.size as u64, r.sealed.as_deref())
                    .contains(&item.size) =>
        {
            // a damaged sealed file cannot be re-read: it is reported, not re-recorded
            if r.sealed.is_none() {
                fixes.rerecord.push((item.path.clone(), item.size));
            } else {
                report.unrepaired.insert(
                    item.path.clone(),
                    "sealed: its bytes cannot be read again".into(),
                );
            }
            report.changed.push(item.path);
        }
        Some(_) => {}
    }
}

/// Why Kura refuses the stored name `path` (`None`: it is a canonical path Kura records): a
/// name no client could make, or one in another Unicode form than NFC, which every protocol
/// would name by its NFC form and never find on disk.
fn refusal(path: &str) -> Option<String> {
    match VPath::parse(path) {
        Err(VfsError::InvalidPath(why)) => Some(why),
        Err(e) => Some(e.to_string()),
        Ok(p) if p.as_str() != path => Some("not in Unicode NFC form".into()),
        Ok(_) => None,
    }
}

/// Whether `path` names a staging file of an interrupted copy: `NAME.kura-copy-` and a simple
/// UUID, as Kura names them. A user's own `x.kura-copy-notes.txt`, or a file in a folder of
/// such a name, is not one (repair deleted them).
fn is_copy_leftover(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once(".kura-copy-").is_some_and(|(stem, id)| {
        !stem.is_empty() && id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    /// Red team: repair deleted users' files whose path merely contained `.kura-copy-`.
    #[test]
    fn only_kuras_own_staging_names_are_copy_leftovers() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        assert!(super::is_copy_leftover(&format!("/b/f.txt.kura-copy-{id}")));
        for user in [
            "/b/x.kura-copy-notes.txt".to_string(),
            format!("/b/dir.kura-copy-{id}/f"),
            format!("/b/.kura-copy-{id}"),
            format!("/b/f.kura-copy-{}", &id[..31]),
            "/b/f.kura-copy-".to_string(),
        ] {
            assert!(!super::is_copy_leftover(&user), "{user}");
        }
    }

    /// Red team F4: names a protocol could never ask for by the same bytes are refused.
    #[test]
    fn names_kura_would_not_make_are_refused() {
        assert_eq!(super::refusal("/b/Caf\u{e9}"), None);
        let nfd = super::refusal("/b/Cafe\u{301}").unwrap();
        assert!(nfd.contains("NFC"), "{nfd}");
        for odd in ["/b/new\nline", "/b/back\\slash", "/b/.."] {
            assert!(super::refusal(odd).is_some(), "{odd}");
        }
    }
}
