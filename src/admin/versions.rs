//! Versions, trash and the per-bucket policy that keeps them, for the CLI and the REST API
//! alike; the rules are the core's (src/vfs/versions.rs).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Admin, AdminError};
use crate::store::{Policy, Purged, TrashRow, VersionRow};
use crate::vfs::VPath;

/// A noncurrent version or a delete marker.
#[derive(Serialize, ToSchema)]
pub struct VersionView {
    /// Version id (`kura restore --version`).
    pub id: String,
    pub path: String,
    /// A delete marker (no bytes).
    pub delete_marker: bool,
    /// The file had no version id of its own (S3's null version).
    pub null_version: bool,
    pub size: i64,
    pub etag: String,
    /// When these bytes were written, ms since the epoch.
    pub modified_ms: i64,
    /// When they stopped being current (replaced or deleted), ms since the epoch.
    pub noncurrent_ms: i64,
    /// The delete it belongs to while it is in the trash.
    pub trash: Option<String>,
}

fn version_view(r: VersionRow) -> VersionView {
    VersionView {
        id: r.id,
        path: r.path,
        delete_marker: r.marker,
        null_version: r.null_version,
        size: r.size,
        etag: r.etag,
        modified_ms: r.mtime_ms,
        noncurrent_ms: r.archived_ms,
        trash: r.batch,
    }
}

/// One delete in the trash.
#[derive(Serialize, ToSchema)]
pub struct TrashView {
    /// The delete's id (restores it whole: `kura restore PATH --version ID`).
    pub id: String,
    /// The path deleted.
    pub path: String,
    pub folder: bool,
    /// When, ms since the epoch.
    pub deleted_ms: i64,
    /// Files still restorable, and their bytes.
    pub files: i64,
    pub bytes: i64,
}

fn trash_view(t: TrashRow) -> TrashView {
    TrashView {
        id: t.batch,
        path: t.path,
        folder: t.is_dir,
        deleted_ms: t.deleted_ms,
        files: t.files,
        bytes: t.bytes,
    }
}

/// A restore to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The path the version was current at.
    pub path: String,
    /// A version id, or a delete id for a whole folder (default: the newest kept bytes, or
    /// the whole folder when the path was a folder deleted last).
    pub version: Option<String>,
    /// Where to restore (default: where it was).
    pub to: Option<String>,
}

/// What a restore brought back.
#[derive(Serialize, ToSchema)]
pub struct RestoredView {
    pub files: usize,
    pub folders: usize,
}

/// What a purge removed.
#[derive(Serialize, ToSchema)]
pub struct PurgedView {
    /// Versions and markers removed.
    pub removed: u64,
    /// Bytes freed.
    pub bytes: i64,
}

fn purged_view(p: Purged) -> PurgedView {
    PurgedView {
        removed: p.rows,
        bytes: p.bytes,
    }
}

/// A bucket's policy for versions and trash (durations in seconds).
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyView {
    /// Seconds a deleted file stays in the trash; 0: deletes destroy at once.
    pub trash_secs: i64,
    /// Noncurrent versions kept per file (`null`: no count limit; 0: overwrites destroy).
    pub keep_versions: Option<i64>,
    /// Seconds a noncurrent version is kept (`null`: no age limit; 0: overwrites destroy).
    pub keep_secs: Option<i64>,
    /// A write that would exceed the quota first purges the oldest versions and trash.
    pub purge_first: bool,
}

impl From<Policy> for PolicyView {
    fn from(p: Policy) -> Self {
        PolicyView {
            trash_secs: p.trash_secs,
            keep_versions: p.keep_versions,
            keep_secs: p.keep_secs,
            purge_first: p.purge_first,
        }
    }
}

/// A path in the namespace from an operator's argument.
fn vpath(p: &str) -> Result<VPath, AdminError> {
    VPath::parse(p).map_err(AdminError::from)
}

impl Admin {
    /// The bucket `/name` checked to exist.
    async fn bucket_path(&self, name: &str) -> Result<String, AdminError> {
        let path = format!("/{}", name.trim_matches('/'));
        match self.store.entry(&path).await? {
            Some(e) if e.is_dir && e.parent == "/" => Ok(path),
            _ => Err(AdminError::NotFound(format!("bucket {name}"))),
        }
    }

    /// The noncurrent versions and delete markers of a path, newest first.
    pub async fn versions(&self, path: &str) -> Result<Vec<VersionView>, AdminError> {
        let rows = self
            .vfs
            .versions(&Self::admin_caller(), &vpath(path)?)
            .await?;
        Ok(rows.into_iter().map(version_view).collect())
    }

    /// The deletes in the trash (of one bucket, or all), newest first.
    pub async fn trash(&self, bucket: Option<&str>) -> Result<Vec<TrashView>, AdminError> {
        let b = match bucket {
            Some(b) => Some(vpath(&self.bucket_path(b).await?)?),
            None => None,
        };
        let rows = self.vfs.trash(&Self::admin_caller(), b.as_ref()).await?;
        Ok(rows.into_iter().map(trash_view).collect())
    }

    /// Restores a version, a trashed file or a whole deleted folder as the current version.
    pub async fn restore(&self, r: RestoreRequest) -> Result<RestoredView, AdminError> {
        let to = r.to.as_deref().map(vpath).transpose()?;
        let done = self
            .vfs
            .restore(
                &Self::admin_caller(),
                &vpath(&r.path)?,
                r.version.as_deref(),
                to.as_ref(),
            )
            .await
            .map_err(|e| match (e, &r.version) {
                (crate::vfs::VfsError::NotFound, Some(v)) => {
                    AdminError::NotFound(format!("version {v} of {}", r.path))
                }
                (e, _) => e.into(),
            })?;
        tracing::info!(path = %r.path, version = ?r.version, to = ?r.to, files = done.files, "restored by an administrator");
        Ok(RestoredView {
            files: done.files,
            folders: done.folders,
        })
    }

    /// Empties the trash (of one bucket, or all) now.
    pub async fn empty_trash(&self, bucket: Option<&str>) -> Result<PurgedView, AdminError> {
        let b = match bucket {
            Some(b) => Some(vpath(&self.bucket_path(b).await?)?),
            None => None,
        };
        let p = self
            .vfs
            .empty_trash(&Self::admin_caller(), b.as_ref())
            .await?;
        Ok(purged_view(p))
    }

    /// Applies every bucket's policy now (what the background purge does hourly).
    pub async fn prune(&self) -> Result<PurgedView, AdminError> {
        Ok(purged_view(self.vfs.purge_expired().await?))
    }

    /// Runs every bucket's lifecycle rules now, or as if `days_ahead` days had passed (what
    /// the background worker does with 0).
    pub async fn run_lifecycle(
        &self,
        days_ahead: u32,
    ) -> Result<crate::vfs::lifecycle::LifecycleRun, AdminError> {
        Ok(self.vfs.run_lifecycle(days_ahead).await?)
    }

    /// A bucket's policy.
    pub async fn policy(&self, bucket: &str) -> Result<PolicyView, AdminError> {
        let b = self.bucket_path(bucket).await?;
        Ok(self.store.policy(&b).await?.into())
    }

    /// Sets a bucket's policy; negative figures are refused.
    pub async fn set_policy(&self, bucket: &str, p: PolicyView) -> Result<PolicyView, AdminError> {
        let b = self.bucket_path(bucket).await?;
        if p.trash_secs < 0
            || p.keep_versions.is_some_and(|n| n < 0)
            || p.keep_secs.is_some_and(|n| n < 0)
        {
            return Err(AdminError::Invalid(
                "retentions and counts are 0 or more".into(),
            ));
        }
        let policy = Policy {
            trash_secs: p.trash_secs,
            keep_versions: p.keep_versions,
            keep_secs: p.keep_secs,
            purge_first: p.purge_first,
        };
        self.store.set_policy(&b, &policy).await?;
        Ok(policy.into())
    }
}
