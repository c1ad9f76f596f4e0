//! The S3 versioning API's rules in the core (docs/versions.md, "S3 versioning"): a bucket's
//! state, the versions of a key S3 clients see and who may read or delete them, reads of a
//! kept version, and the permanent delete of one version (the next one current again).

use super::perm::{R, X};
use super::versions::{row_entry, version_object, Bring};
use super::{Caller, Download, Entry, VPath, Vfs, VfsError, CHUNK};
use crate::store::VersionRow;

pub use crate::store::S3Versioning;

/// One version of a key as S3 shows it: the current file or a kept version or delete marker.
#[derive(Clone, Debug)]
pub struct ObjectVersion {
    /// The file as it was (a marker: its owner and the time of the delete).
    pub entry: Entry,
    /// S3's versionId; `None`: the null version.
    pub id: Option<String>,
    /// A delete marker.
    pub marker: bool,
    /// The newest version of its key.
    pub latest: bool,
    /// The kept row (`None`: the current file, read at its plain path).
    row: Option<VersionRow>,
}

impl ObjectVersion {
    /// A kept version or marker (not the current file).
    pub fn is_kept(&self) -> bool {
        self.row.is_some()
    }

    /// The versionId as S3 writes it.
    pub fn s3_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| "null".into())
    }
}

/// A version id as clients send it: `null`, or one Kura made (29 lowercase hex digits).
/// Anything else is refused before any lookup (S3's InvalidArgument).
pub fn parse_version_id(s: &str) -> Result<Option<&str>, VfsError> {
    if s == "null" {
        return Ok(None);
    }
    if s.len() == 29
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(Some(s));
    }
    Err(VfsError::InvalidArgument("Invalid version id specified"))
}

impl Vfs {
    /// The S3 versioning state of the bucket holding `path` (no check: it decides protocol
    /// details such as reporting version ids).
    pub(super) async fn s3_state(&self, path: &VPath) -> Result<Option<S3Versioning>, VfsError> {
        match Self::bucket_of(path) {
            Some(b) => Ok(self.store.s3_versioning(b.as_str()).await?),
            None => Ok(None),
        }
    }

    /// Whether the bucket holding `path` has S3 versioning enabled: it then keeps every
    /// replaced or deleted version whatever its policy says (which purges them later).
    pub(super) async fn s3_enabled(&self, path: &VPath) -> Result<bool, VfsError> {
        Ok(self.s3_state(path).await? == Some(S3Versioning::Enabled))
    }

    /// GetBucketVersioning: the bucket's owner or an administrator.
    pub async fn versioning(
        &self,
        c: &Caller,
        bucket: &VPath,
    ) -> Result<Option<S3Versioning>, VfsError> {
        self.owned_bucket(c, bucket, "only the bucket's owner reads its versioning")
            .await?;
        Ok(self.store.s3_versioning(bucket.as_str()).await?)
    }

    /// PutBucketVersioning: the bucket's owner or an administrator.
    pub async fn set_versioning(
        &self,
        c: &Caller,
        bucket: &VPath,
        v: S3Versioning,
    ) -> Result<(), VfsError> {
        self.owned_bucket(c, bucket, "only the bucket's owner changes its versioning")
            .await?;
        if v == S3Versioning::Suspended && self.lock_enabled(bucket).await? {
            return Err(VfsError::Conflict(
                "versioning cannot be suspended on a bucket with object lock",
            ));
        }
        Ok(self.store.set_s3_versioning(bucket.as_str(), v).await?)
    }

    /// The versionId S3 reports for the current file at `path` (one `c` may see), `None`
    /// when its bucket is not versioned.
    pub async fn reported_version(
        &self,
        c: &Caller,
        path: &VPath,
    ) -> Result<Option<String>, VfsError> {
        if self.s3_state(path).await?.is_none() {
            return Ok(None);
        }
        self.stat(c, path).await?;
        let id = self.store.current_version_id(path.as_str()).await?;
        Ok(Some(id.flatten().unwrap_or_else(|| "null".into())))
    }

    /// Every version of `path` S3 shows, newest first, without permission checks.
    pub(super) async fn all_versions(&self, path: &VPath) -> Result<Vec<ObjectVersion>, VfsError> {
        let state = self.s3_state(path).await?;
        let mut out = Vec::new();
        if let Some(e) = self.lookup(path).await?.filter(|e| !e.is_dir) {
            // before versioning, every current file is the null version
            let id = match state {
                Some(_) => self
                    .store
                    .current_version_id(path.as_str())
                    .await?
                    .flatten(),
                None => None,
            };
            out.push(ObjectVersion {
                entry: e,
                id,
                marker: false,
                latest: false,
                row: None,
            });
        }
        if state.is_some() {
            for r in self.store.s3_versions_of(path.as_str()).await? {
                out.push(ObjectVersion {
                    entry: row_entry(&r)?,
                    id: (!r.null_version).then(|| r.id.clone()),
                    marker: r.marker,
                    latest: false,
                    row: Some(r),
                });
            }
        }
        if let Some(first) = out.first_mut() {
            first.latest = true;
        }
        Ok(out)
    }

    /// Whether `c` may read the versions of `path` (`now`: its current file): those of a file
    /// she may read; those of a deleted one as its rows' own bits say, when she may list the
    /// deepest folder above it that is still there.
    async fn may_read_versions(
        &self,
        c: &Caller,
        path: &VPath,
        now: Option<&ObjectVersion>,
    ) -> Result<bool, VfsError> {
        if c.is_admin {
            return Ok(true);
        }
        // public-read opens current objects, never their history
        if c.is_anonymous() {
            return Ok(false);
        }
        if let Some(v) = now.filter(|v| v.row.is_none()) {
            let ok = match self.stat(c, path).await {
                Ok(e) => e.allows(c, R) && v.entry.allows(c, R),
                Err(VfsError::Forbidden(_)) | Err(VfsError::NotFound) => false,
                Err(e) => return Err(e),
            };
            // kept rows may be of a file deleted from an earlier, private folder here
            return Ok(ok && self.gone_folders_allow(c, path, &[]).await?);
        }
        let mut dir = path.parent();
        let mut gone = Vec::new();
        loop {
            match self.stat(c, &dir).await {
                Ok(d) if d.is_dir && d.allows(c, R | X) => break,
                Ok(_) => return Ok(false),
                Err(VfsError::NotFound) if !dir.is_root() => {
                    gone.push(dir.clone());
                    dir = dir.parent();
                }
                Err(VfsError::Forbidden(_)) | Err(VfsError::NotFound) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.gone_folders_allow(c, path, &gone).await
    }

    /// The versions of `path` that `c` may see (none, or all: one rule per key).
    async fn visible_versions(
        &self,
        c: &Caller,
        path: &VPath,
    ) -> Result<Vec<ObjectVersion>, VfsError> {
        let all = self.all_versions(path).await?;
        if all.is_empty() || !self.may_read_versions(c, path, all.first()).await? {
            return Ok(Vec::new());
        }
        // a deleted file's rows are read under the bits they had
        Ok(all
            .into_iter()
            .filter(|v| v.row.as_ref().is_none_or(|r| Self::may_read_row(c, r)))
            .collect())
    }

    /// The newest version of `path` S3 shows to `c` (a delete marker when the key was deleted
    /// in a versioned bucket), if any.
    pub async fn latest_version(
        &self,
        c: &Caller,
        path: &VPath,
    ) -> Result<Option<ObjectVersion>, VfsError> {
        if self.s3_state(path).await?.is_none() {
            return Ok(None);
        }
        Ok(self.visible_versions(c, path).await?.into_iter().next())
    }

    /// ListObjectVersions: up to `limit` versions of the keys below `bucket` starting with
    /// `prefix`, in key order and newest first, after the key `after` (its versions after
    /// `after_version` when that is given), only those `c` may read.
    pub async fn object_versions(
        &self,
        c: &Caller,
        bucket: &VPath,
        prefix: &str,
        (after, after_version): (&str, Option<&str>),
        limit: usize,
    ) -> Result<Vec<ObjectVersion>, VfsError> {
        let b = self.stat(c, bucket).await?;
        b.require(c, R | X, "the bucket may not be listed")?;
        let lo = format!("{bucket}/{prefix}");
        let hi = format!("{lo}{}", char::MAX);
        let mut out = Vec::new();
        let mut cursor = if after.is_empty() {
            String::new()
        } else {
            format!("{bucket}/{after}")
        };
        if let (Some(vid), false) = (after_version, after.is_empty()) {
            let marker = VPath::parse(&cursor)?;
            let all = self.visible_versions(c, &marker).await?;
            let at = all.iter().position(|v| v.s3_id() == vid);
            if let Some(i) = at {
                out.extend(all.into_iter().skip(i + 1).take(limit));
            }
        }
        while out.len() < limit {
            let paths = self
                .store
                .s3_paths((&lo, &hi), &cursor, (limit - out.len()).max(16) as i64)
                .await?;
            let Some(last) = paths.last() else { break };
            cursor = last.clone();
            for p in paths {
                let Ok(path) = VPath::parse(&p) else { continue };
                out.extend(self.visible_versions(c, &path).await?);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// One version of `path` by S3 versionId (`NotFound`: no such version, or one `c` may not
    /// see, as S3 answers NoSuchVersion either way only to readers).
    pub async fn object_version(
        &self,
        c: &Caller,
        path: &VPath,
        version: &str,
    ) -> Result<ObjectVersion, VfsError> {
        let id = parse_version_id(version)?;
        let all = self.all_versions(path).await?;
        if !self.may_read_versions(c, path, all.first()).await? {
            // the caller may not see this key's versions: as for any unreadable object
            return Err(VfsError::Forbidden("the object's versions may not be read"));
        }
        let v = all
            .into_iter()
            .find(|v| v.id.as_deref() == id)
            .ok_or(VfsError::NotFound)?;
        if v.row.as_ref().is_some_and(|r| !Self::may_read_row(c, r)) {
            return Err(VfsError::Forbidden("the version may not be read"));
        }
        Ok(v)
    }

    /// Opens the bytes of a version found by `object_version`, with the S3 client's key of
    /// a version stored with one (SSE-C).
    pub async fn open_version(
        &self,
        c: &Caller,
        v: &ObjectVersion,
        key: Option<&super::CustomerKey>,
    ) -> Result<Download, VfsError> {
        let Some(row) = &v.row else {
            return self.open_entry(c, &v.entry, key).await;
        };
        Self::check_customer_key(&v.entry, key)?;
        self.open_kept_row(row, &v.entry, key).await
    }

    /// Opens the kept bytes of a version row, `entry` its view (no check: callers have checked
    /// who reads it), with the client's key `customer` of an SSE-C version.
    pub(super) async fn open_kept_row(
        &self,
        row: &VersionRow,
        entry: &Entry,
        customer: Option<&super::CustomerKey>,
    ) -> Result<Download, VfsError> {
        let Some(key) = row.key.as_deref().filter(|_| !row.marker) else {
            return Err(VfsError::WrongKind("a delete marker holds no bytes"));
        };
        let mut sealed = entry.sealed.clone();
        let mut tries = 0;
        loop {
            match self
                .open_kept_bytes(key, entry.size, sealed.as_deref(), customer)
                .await
            {
                // a conversion (`kura encryption enable`) switched the bytes' form after the
                // row was read: the row says now which forms they may have
                Err(VfsError::NotFound) if tries < 3 && self.local.is_some() => {
                    tries += 1;
                    match self.store.version(&row.id).await? {
                        Some(r) if r.key == row.key && r.sealed != sealed => sealed = r.sealed,
                        _ => return Err(VfsError::NotFound),
                    }
                }
                r => return r,
            }
        }
    }

    /// Opens the kept bytes at `key` in the versions store, of `size` plaintext bytes recorded
    /// with `sealed`; `NotFound` when they are gone or their length fits no form recorded.
    pub(super) async fn open_kept_bytes(
        &self,
        key: &str,
        size: u64,
        sealed: Option<&str>,
        customer: Option<&super::CustomerKey>,
    ) -> Result<Download, VfsError> {
        let mut sealed = sealed;
        let source = match &self.local {
            Some(l) => {
                let file = l.versions.join(key);
                let lens = super::sealing::stored_lens(size, sealed);
                match super::disk::DiskFile::open_sized(file, lens, l.open_inline).await {
                    Ok(Some((f, len))) => {
                        sealed = super::sealing::found_form(size, sealed, len);
                        super::Source::Disk(f)
                    }
                    Ok(None) => return Err(VfsError::NotFound),
                    Err(e) => return Err(super::storage::io_err(e)),
                }
            }
            None => super::Source::Store(
                self.op
                    .reader_with(&version_object(key))
                    .chunk(CHUNK)
                    .await?,
            ),
        };
        self.download(source, size, (sealed, customer))
    }

    /// DeleteObject without a version: deletes as any delete does, and returns the delete
    /// marker S3 shows for it (none in a bucket never versioned).
    pub async fn delete_object(
        &self,
        c: &Caller,
        path: &VPath,
    ) -> Result<Option<ObjectVersion>, VfsError> {
        self.delete_object_if(c, path, None).await
    }

    /// `delete_object` of a file only while it still has the ETag `if_match` (S3's and
    /// WebDAV's If-Match), checked again inside the delete's transaction, so a write landing
    /// between the check and the delete stays (`Changed`). Comparing the ETag needs the right
    /// to read the file; no file there: `NotFound`; a folder: `PreconditionFailed`.
    pub async fn delete_object_if(
        &self,
        c: &Caller,
        path: &VPath,
        if_match: Option<&str>,
    ) -> Result<Option<ObjectVersion>, VfsError> {
        if let Some(want) = if_match {
            let e = self.stat(c, path).await?;
            if e.is_dir {
                return Err(VfsError::PreconditionFailed(
                    "a folder has no ETag to match",
                ));
            }
            // the ETag is as private as the bytes
            e.require(c, R, "the file may not be read")?;
            if e.etag != want {
                return Err(VfsError::PreconditionFailed("the ETag does not match"));
            }
        }
        let rules = crate::store::DeleteRules {
            if_match,
            ..Default::default()
        };
        let batch = self.delete_checked(c, path, rules, true).await?;
        if self.s3_state(path).await?.is_none() {
            return Ok(None);
        }
        let Some(batch) = batch else { return Ok(None) };
        let Some(r) = self.store.version(&batch).await? else {
            return Ok(None);
        };
        if !r.marker || r.is_dir {
            return Ok(None);
        }
        Ok(Some(ObjectVersion {
            entry: row_entry(&r)?,
            id: (!r.null_version).then(|| r.id.clone()),
            marker: true,
            latest: true,
            row: Some(r),
        }))
    }

    /// DeleteObject with a versionId: that version goes for good (unless object lock keeps it;
    /// `bypass`: x-amz-bypass-governance-retention). Deleting the newest one
    /// makes the next one current again as it was (a delete marker next: the key stays
    /// deleted). Needs the right to delete the file (a name change in its folder, or in the
    /// deepest folder still above a deleted one).
    pub async fn delete_object_version(
        &self,
        c: &Caller,
        path: &VPath,
        version: &str,
        bypass: bool,
    ) -> Result<ObjectVersion, VfsError> {
        let id = parse_version_id(version)?;
        let all = self.all_versions(path).await?;
        let at = all
            .iter()
            .position(|v| v.id.as_deref() == id)
            .ok_or(VfsError::NotFound)?;
        self.may_delete_versions(c, path, &all).await?;
        let target = all[at].clone();
        // object lock: a retained or held version is never destroyed
        self.may_destroy(c, path, &target, bypass).await?;
        let next = all.get(at + 1).and_then(|v| v.row.clone());
        match (&target.row, next) {
            // the current file: the next kept bytes take its place, or it goes for good
            (None, Some(n)) if !n.marker => {
                let bring = Bring {
                    promote: true,
                    destroy: true,
                    ..Bring::default()
                };
                self.restore_file(c, &n, path, bring).await?;
            }
            (None, _) => {
                self.delete_checked(c, path, Default::default(), false)
                    .await?;
            }
            // the newest delete marker: the version below it is current again
            (Some(m), Some(n)) if at == 0 && m.marker && !n.marker => {
                let bring = Bring {
                    promote: true,
                    drop: Some(m.id.clone()),
                    ..Bring::default()
                };
                self.restore_file(c, &n, path, bring).await?;
            }
            (Some(r), _) => {
                let purged = self.store.drop_version(&r.id).await?;
                self.remove_kept(&purged.keys).await;
            }
        }
        Ok(target)
    }

    /// Fails unless `c` may delete versions of `path`: a name change in its folder (the
    /// deepest one still there, for a deleted file).
    pub(super) async fn may_delete_versions(
        &self,
        c: &Caller,
        path: &VPath,
        all: &[ObjectVersion],
    ) -> Result<(), VfsError> {
        let current = all.first().filter(|v| v.row.is_none()).map(|v| &v.entry);
        let mut dir = path.parent();
        loop {
            match self.stat(c, &dir).await {
                Ok(d) if d.is_dir => {
                    let target = if dir == path.parent() { current } else { None };
                    return Self::require_name_change(c, &d, target);
                }
                Ok(_) => return Err(VfsError::Conflict("a file is in the way of a folder")),
                Err(VfsError::NotFound) if !dir.is_root() => dir = dir.parent(),
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::store::Store;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    async fn put(v: &Vfs, c: &Caller, path: &str, body: &[u8]) {
        crate::vfs::tests::put_as(v, c, path, body).await;
    }

    async fn read(v: &Vfs, c: &Caller, ov: &ObjectVersion) -> Vec<u8> {
        let dl = v.open_version(c, ov, None).await.unwrap();
        dl.read_at(0, ov.entry.size as usize + 1)
            .await
            .unwrap()
            .to_vec()
    }

    fn ids(list: &[ObjectVersion]) -> Vec<(String, bool)> {
        list.iter().map(|v| (v.s3_id(), v.marker)).collect()
    }

    /// On a service other than `fs` (kept bytes under the hidden prefix): ids, markers, a
    /// permanent delete of the current version bringing the previous one back as it was, the
    /// marker's removal undeleting, and Suspended writes replacing the null version.
    #[tokio::test]
    async fn s3_versions_on_another_service() {
        let op = opendal::Operator::new(opendal::services::Memory::default()).unwrap();
        let staging = opendal::Operator::new(opendal::services::Memory::default()).unwrap();
        let v = Vfs::new(op, staging, Store::in_memory().await.unwrap(), None);
        let root = Caller::admin("root");
        let (b, f) = (p("/b"), p("/b/f"));
        v.mkdir(&root, &b).await.unwrap();
        put(&v, &root, "/b/f", b"null one").await;
        v.set_versioning(&root, &b, S3Versioning::Enabled)
            .await
            .unwrap();
        put(&v, &root, "/b/f", b"two").await;
        put(&v, &root, "/b/f", b"three").await;
        let all = v
            .object_versions(&root, &b, "", ("", None), 10)
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].s3_id(), "null");
        let (v2, v3) = (all[1].s3_id(), all[0].s3_id());
        assert_eq!(read(&v, &root, &all[2]).await, b"null one");
        // the current version goes for good: v2 is current again, with its id
        v.delete_object_version(&root, &f, &v3, false)
            .await
            .unwrap();
        assert_eq!(
            v.reported_version(&root, &f).await.unwrap(),
            Some(v2.clone())
        );
        let now = v.object_version(&root, &f, &v2).await.unwrap();
        assert!(!now.is_kept());
        assert_eq!(read(&v, &root, &now).await, b"two");
        // a delete leaves a marker; removing it undeletes
        let m = v.delete_object(&root, &f).await.unwrap().unwrap();
        assert!(m.marker && m.latest);
        assert!(v.stat(&root, &f).await.is_err());
        let listed = v
            .object_versions(&root, &b, "", ("", None), 10)
            .await
            .unwrap();
        assert_eq!(
            ids(&listed),
            [
                (m.s3_id(), true),
                (v2.clone(), false),
                ("null".into(), false)
            ]
        );
        v.delete_object_version(&root, &f, &m.s3_id(), false)
            .await
            .unwrap();
        assert_eq!(
            v.reported_version(&root, &f).await.unwrap(),
            Some(v2.clone())
        );
        // Suspended: one null version, the versioned history below it
        v.set_versioning(&root, &b, S3Versioning::Suspended)
            .await
            .unwrap();
        put(&v, &root, "/b/f", b"s1").await;
        put(&v, &root, "/b/f", b"s2").await;
        let listed = v
            .object_versions(&root, &b, "", ("", None), 10)
            .await
            .unwrap();
        assert_eq!(
            ids(&listed),
            [("null".into(), false), (v2, false)],
            "the older null versions are Kura's alone"
        );
        // Kura still keeps them (its policy): restorable by administrators
        assert_eq!(v.versions(&root, &f).await.unwrap().len(), 3);
        assert!(matches!(
            v.object_version(&root, &f, "nope").await,
            Err(VfsError::InvalidArgument(_))
        ));
        assert!(v.fsck(false).await.unwrap().is_clean());
    }
}
