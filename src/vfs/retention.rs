//! S3 object lock in the core (docs/versions.md, "Object lock"): a bucket's lock
//! configuration, the retention and legal hold of each version, and the one check every
//! permanent delete of a version passes. Overwrites and deletes by any protocol never destroy
//! a version in a lock-enabled bucket (versioning stays enabled there), and the policy's purges
//! skip locked versions in SQL (`store/retention.rs`).

use super::versioning::ObjectVersion;
use super::{Caller, VPath, Vfs, VfsError};
use crate::store::{now_ms, Retention, S3Versioning, LOCK_SETTING};

/// A retention that S3 clients set or read: mode and end.
pub const GOVERNANCE: &str = "GOVERNANCE";
/// Nobody, administrators included, shortens or removes it before it ends.
pub const COMPLIANCE: &str = "COMPLIANCE";

/// A bucket's object lock configuration: the default retention of new versions, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LockConfig {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: Option<String>,
    /// Days from each write.
    pub days: Option<i64>,
}

fn check_mode(mode: &str) -> Result<(), VfsError> {
    match mode {
        GOVERNANCE | COMPLIANCE => Ok(()),
        _ => Err(VfsError::InvalidArgument(
            "the retention mode is GOVERNANCE or COMPLIANCE",
        )),
    }
}

/// Why a version may not go: a legal hold, or a retention not over.
fn refuse(l: &Retention, now: i64) -> Result<(), VfsError> {
    if l.legal_hold {
        return Err(VfsError::Forbidden("the version is under a legal hold"));
    }
    match (l.mode.as_deref(), l.until_ms) {
        (Some(COMPLIANCE), Some(t)) if t > now => Err(VfsError::Forbidden(
            "the version is locked in compliance mode until its retention ends",
        )),
        (Some(_), Some(t)) if t > now => Err(VfsError::Forbidden(
            "the version is locked in governance mode (x-amz-bypass-governance-retention lifts it for the bucket's owner)",
        )),
        _ => Ok(()),
    }
}

impl Vfs {
    /// The lock configuration of `bucket`; `None` when object lock is not enabled on it.
    async fn lock_config_of(&self, bucket: &VPath) -> Result<Option<LockConfig>, VfsError> {
        Ok(self
            .store
            .bucket_setting(bucket.as_str(), LOCK_SETTING)
            .await?
            .map(|v| serde_json::from_str(&v).unwrap_or_default()))
    }

    /// Whether the bucket holding `path` has object lock enabled.
    pub(super) async fn lock_enabled(&self, path: &VPath) -> Result<bool, VfsError> {
        match Self::bucket_of(path) {
            Some(b) => Ok(self.lock_config_of(&b).await?.is_some()),
            None => Ok(false),
        }
    }

    /// Whether `bucket` has object lock, for anyone who may enter it (a writer's lock headers
    /// are checked against it before the body streams).
    pub async fn object_lock_enabled(&self, c: &Caller, bucket: &VPath) -> Result<bool, VfsError> {
        self.stat(c, bucket).await?;
        Ok(self.lock_config_of(bucket).await?.is_some())
    }

    /// Turns object lock on for `bucket` (its owner or an administrator): versioning is
    /// enabled with it and may not be suspended afterwards; there is no turning it off.
    pub async fn enable_object_lock(&self, c: &Caller, bucket: &VPath) -> Result<(), VfsError> {
        self.owned_bucket(c, bucket, "only the bucket's owner enables object lock")
            .await?;
        if self.lock_config_of(bucket).await?.is_some() {
            return Ok(());
        }
        self.store
            .set_s3_versioning(bucket.as_str(), S3Versioning::Enabled)
            .await?;
        self.store
            .set_bucket_setting(bucket.as_str(), LOCK_SETTING, Some("{}"))
            .await?;
        Ok(())
    }

    /// GetObjectLockConfiguration: `None` when object lock is not enabled.
    pub async fn lock_config(
        &self,
        c: &Caller,
        bucket: &VPath,
    ) -> Result<Option<LockConfig>, VfsError> {
        self.owned_bucket(c, bucket, "only the bucket's owner reads its object lock")
            .await?;
        self.lock_config_of(bucket).await
    }

    /// PutObjectLockConfiguration: enables object lock on a bucket whose versioning is
    /// enabled (or never set), with a default retention for new versions (or none).
    pub async fn set_lock_config(
        &self,
        c: &Caller,
        bucket: &VPath,
        cfg: &LockConfig,
    ) -> Result<(), VfsError> {
        self.owned_bucket(c, bucket, "only the bucket's owner changes its object lock")
            .await?;
        match (&cfg.mode, cfg.days) {
            (Some(m), Some(d)) if d > 0 => check_mode(m)?,
            (None, None) => {}
            _ => {
                return Err(VfsError::InvalidArgument(
                    "a default retention needs a mode and a positive period",
                ))
            }
        }
        if self.store.s3_versioning(bucket.as_str()).await? == Some(S3Versioning::Suspended) {
            return Err(VfsError::Conflict(
                "object lock needs versioning enabled on the bucket",
            ));
        }
        self.enable_object_lock(c, bucket).await?;
        let v = serde_json::to_string(cfg).map_err(|_| VfsError::InvalidArgument("bad rule"))?;
        self.store
            .set_bucket_setting(bucket.as_str(), LOCK_SETTING, Some(&v))
            .await?;
        Ok(())
    }

    /// The version of `path` named `version` (the current one when `None`) whose lock is
    /// read or set; it must have a version id of its own and be no delete marker.
    async fn lockable(
        &self,
        c: &Caller,
        path: &VPath,
        version: Option<&str>,
    ) -> Result<ObjectVersion, VfsError> {
        if !self.lock_enabled(path).await? {
            return Err(VfsError::InvalidArgument(
                "the bucket is missing an object lock configuration",
            ));
        }
        let v = match version {
            Some(id) => self.object_version(c, path, id).await?,
            None => self
                .latest_version(c, path)
                .await?
                .ok_or(VfsError::NotFound)?,
        };
        if v.marker {
            return Err(VfsError::WrongKind("a delete marker has no lock"));
        }
        if v.id.is_none() {
            return Err(VfsError::InvalidArgument(
                "the null version (written before versioning) cannot be locked",
            ));
        }
        Ok(v)
    }

    /// The retention and legal hold of a version, for those who may read it.
    pub async fn retention(
        &self,
        c: &Caller,
        path: &VPath,
        version: Option<&str>,
    ) -> Result<Retention, VfsError> {
        let v = self.lockable(c, path, version).await?;
        Ok(self.store.lock_of(&v.s3_id()).await?)
    }

    /// Sets the retention of a version (`None`: removes it), for those who may delete it. A
    /// compliance retention is only ever extended; a governance one is shortened, removed or
    /// relaxed only with `bypass`, by the bucket's owner or an administrator.
    pub async fn set_retention(
        &self,
        c: &Caller,
        path: &VPath,
        version: Option<&str>,
        new: Option<(&str, i64)>,
        bypass: bool,
    ) -> Result<(), VfsError> {
        let v = self.lockable(c, path, version).await?;
        self.may_change_lock(c, path).await?;
        let id = v.s3_id();
        let mut l = self.store.lock_of(&id).await?;
        let now = now_ms();
        if let Some((mode, until)) = new {
            check_mode(mode)?;
            if until <= now {
                return Err(VfsError::InvalidArgument(
                    "the retain-until date must be in the future",
                ));
            }
        }
        let active = l.until_ms.is_some_and(|t| t > now);
        let keeps = match (new, l.mode.as_deref()) {
            (_, _) if !active => true,
            (Some((m, t)), Some(COMPLIANCE)) => m == COMPLIANCE && Some(t) >= l.until_ms,
            (Some((_, t)), _) => Some(t) >= l.until_ms,
            (None, _) => false,
        };
        if !keeps {
            if l.mode.as_deref() == Some(COMPLIANCE) {
                return Err(VfsError::Forbidden(
                    "a compliance retention is never shortened or removed",
                ));
            }
            self.may_bypass(c, path, bypass).await?;
        }
        l.mode = new.map(|(m, _)| m.to_string());
        l.until_ms = new.map(|(_, t)| t);
        Ok(self.store.set_lock(path.as_str(), &id, &l).await?)
    }

    /// Puts a legal hold on a version or lifts it, for those who may delete it.
    pub async fn set_legal_hold(
        &self,
        c: &Caller,
        path: &VPath,
        version: Option<&str>,
        on: bool,
    ) -> Result<(), VfsError> {
        let v = self.lockable(c, path, version).await?;
        self.may_change_lock(c, path).await?;
        let id = v.s3_id();
        let mut l = self.store.lock_of(&id).await?;
        l.legal_hold = on;
        Ok(self.store.set_lock(path.as_str(), &id, &l).await?)
    }

    /// A lock is changed by those who may delete the file's versions.
    async fn may_change_lock(&self, c: &Caller, path: &VPath) -> Result<(), VfsError> {
        let all = self.all_versions(path).await?;
        self.may_delete_versions(c, path, &all).await
    }

    /// Governance retention is bypassed only when asked, by the bucket's owner or an
    /// administrator.
    async fn may_bypass(&self, c: &Caller, path: &VPath, bypass: bool) -> Result<(), VfsError> {
        let bucket = Self::bucket_of(path).ok_or(VfsError::NotFound)?;
        if !bypass {
            return Err(VfsError::Forbidden(
                "the version is locked in governance mode (x-amz-bypass-governance-retention lifts it for the bucket's owner)",
            ));
        }
        self.owned_bucket(
            c,
            &bucket,
            "only the bucket's owner bypasses governance retention",
        )
        .await
    }

    /// Fails when a tree change would take locked versions out of their bucket's protection:
    /// deleting (`to` = `None`) or renaming a bucket with object lock, or moving out of it
    /// (into a bucket whose policy could destroy them). Inside it, versioning keeps all.
    pub(super) async fn keep_locks_in(
        &self,
        from: &VPath,
        to: Option<&VPath>,
        if_empty: bool,
    ) -> Result<(), VfsError> {
        let Some(bucket) = Self::bucket_of(from) else {
            return Ok(());
        };
        if !self.lock_enabled(from).await? {
            return Ok(());
        }
        let out = match to {
            None => bucket == *from && !if_empty,
            Some(t) => bucket == *from || Self::bucket_of(t).as_ref() != Some(&bucket),
        };
        if out {
            return Err(VfsError::Forbidden(
                "a bucket with object lock keeps its versions: it is deleted only when empty, never renamed, and nothing moves out of it",
            ));
        }
        Ok(())
    }

    /// Fails unless version `v` of `path` may be destroyed now: no legal hold, no retention
    /// in force (a governance one bypassed by the bucket's owner with `bypass`).
    pub(super) async fn may_destroy(
        &self,
        c: &Caller,
        path: &VPath,
        v: &ObjectVersion,
        bypass: bool,
    ) -> Result<(), VfsError> {
        let Some(id) = v.id.as_deref().filter(|_| !v.marker) else {
            return Ok(());
        };
        let l = self.store.lock_of(id).await?;
        let now = now_ms();
        match refuse(&l, now) {
            Ok(()) => Ok(()),
            Err(e) if !bypass || l.legal_hold || l.mode.as_deref() == Some(COMPLIANCE) => Err(e),
            Err(_) => self.may_bypass(c, path, bypass).await,
        }
    }
}
