//! Bucket endpoints: a bucket is a top-level folder of the namespace.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::dto::{acl_view, owner_full_control, ts};
use super::errors::bucket_error;
use super::names;
use super::service::KuraS3;
use crate::vfs::{Caller, VPath, VfsError};

impl KuraS3 {
    pub(super) async fn list_buckets_impl(
        &self,
        who: Caller,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let who = &who;
        let buckets = self
            .vfs
            .list(who, &VPath::root())
            .await
            .map_err(bucket_error)?
            .into_iter()
            .filter(|e| e.is_dir && s3s::path::check_bucket_name(e.path.name()))
            .map(|e| Bucket {
                creation_date: Some(ts(e.http_mtime())),
                name: Some(e.path.name().to_string()),
                bucket_region: None,
            })
            .collect();
        let (owner, _) = owner_full_control(who);
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner),
            ..Default::default()
        }))
    }

    pub(super) async fn create_bucket_impl(
        &self,
        who: Caller,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let who = &who;
        if !s3s::path::check_bucket_name(&req.input.bucket) {
            return Err(s3_error!(InvalidBucketName));
        }
        let path = names::bucket(&req.input.bucket)?;
        match self.vfs.mkdir(who, &path).await {
            Ok(()) => {}
            // the name is taken: by the caller, or by someone else (whom S3 does not name)
            Err(VfsError::Exists) => {
                let mine = self
                    .vfs
                    .stat(who, &path)
                    .await
                    .is_ok_and(|e| e.owner.as_deref() == Some(who.user.as_str()));
                return Err(if mine {
                    s3_error!(BucketAlreadyOwnedByYou)
                } else {
                    s3_error!(BucketAlreadyExists)
                });
            }
            Err(e) => return Err(bucket_error(e)),
        }
        if req.input.object_lock_enabled_for_bucket == Some(true) {
            self.vfs
                .enable_object_lock(who, &path)
                .await
                .map_err(bucket_error)?;
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", req.input.bucket)),
        }))
    }

    pub(super) async fn delete_bucket_impl(
        &self,
        who: Caller,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let who = &who;
        let path = self.require_bucket(who, &req.input.bucket).await?;
        // emptiness is checked by the core inside the delete's transaction
        self.vfs
            .delete_bucket(who, &path)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(super) async fn head_bucket_impl(
        &self,
        who: Caller,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let who = &who;
        self.require_bucket(who, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    pub(super) async fn bucket_location(
        &self,
        who: Caller,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let who = &who;
        self.require_bucket(who, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    pub(super) async fn bucket_acl(
        &self,
        who: Caller,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let who = &who;
        let path = self.require_bucket(who, &req.input.bucket).await?;
        let e = self.vfs.stat(who, &path).await.map_err(bucket_error)?;
        let public = self
            .vfs
            .is_public_read(who, &path)
            .await
            .map_err(bucket_error)?;
        let (owner, grants) = acl_view(&e, public);
        Ok(S3Response::new(GetBucketAclOutput {
            owner: Some(owner),
            grants: Some(grants),
        }))
    }
}
