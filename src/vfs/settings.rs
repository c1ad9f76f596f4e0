//! Per-bucket protocol settings (S3 CORS rules...): the core keeps them with the bucket and
//! decides who may read and change them (the bucket's owner or an administrator).

use super::{Caller, VPath, Vfs, VfsError};

impl Vfs {
    /// The bucket's setting `name`, for its owner or an administrator.
    pub async fn bucket_setting(
        &self,
        c: &Caller,
        bucket: &VPath,
        name: &str,
    ) -> Result<Option<String>, VfsError> {
        self.owned_bucket(
            c,
            bucket,
            "only the bucket's owner or an administrator reads its settings",
        )
        .await?;
        Ok(self.store.bucket_setting(bucket.as_str(), name).await?)
    }

    /// Sets (`Some`) or clears (`None`) the bucket's setting `name`: its owner or an administrator.
    pub async fn set_bucket_setting(
        &self,
        c: &Caller,
        bucket: &VPath,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), VfsError> {
        self.owned_bucket(
            c,
            bucket,
            "only the bucket's owner or an administrator changes its settings",
        )
        .await?;
        Ok(self
            .store
            .set_bucket_setting(bucket.as_str(), name, value)
            .await?)
    }

    /// A setting that answers requests nobody signed (an S3 CORS preflight is sent without
    /// credentials by design): read for the protocol, never shown to the requester as such.
    pub async fn public_bucket_setting(
        &self,
        bucket: &VPath,
        name: &str,
    ) -> Result<Option<String>, VfsError> {
        if !is_bucket(bucket) {
            return Ok(None);
        }
        Ok(self.store.bucket_setting(bucket.as_str(), name).await?)
    }

    /// Fails unless `bucket` is a bucket `c` owns (or `c` is an administrator).
    pub(super) async fn owned_bucket(
        &self,
        c: &Caller,
        bucket: &VPath,
        what: &'static str,
    ) -> Result<(), VfsError> {
        if !is_bucket(bucket) {
            return Err(VfsError::InvalidArgument("settings belong to buckets"));
        }
        let e = self.stat(c, bucket).await?;
        if !e.is_dir {
            return Err(VfsError::NotFound);
        }
        e.require_owner(c, what)
    }
}

fn is_bucket(p: &VPath) -> bool {
    !p.is_root() && p.parent().is_root()
}
