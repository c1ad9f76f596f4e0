//! Bucket endpoints: a bucket is a top-level folder of the namespace.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::errors::bucket_error;
use super::names;
use super::object::ts;
use super::service::KuraS3;
use crate::vfs::{Caller, Entry, VPath};

/// The canned ACL view: the caller owns everything it can reach, with FULL_CONTROL.
pub(super) fn owner_full_control(who: &Caller) -> (Owner, Vec<Grant>) {
    let owner = Owner {
        display_name: Some(who.user.clone()),
        id: Some(who.user.clone()),
    };
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: Some(who.user.clone()),
            id: Some(who.user.clone()),
            type_: Type::from_static(Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    (owner, vec![grant])
}

/// The ACL view of an entry's owner, group and mode: owner, group members (as a canonical
/// user `group:NAME`) and the other users (AuthenticatedUsers: anonymous requests are
/// refused, so AllUsers would wrongly make everything look public) get READ/WRITE as their
/// mode bits say; FULL_CONTROL where both are set. Read-only: Put*Acl answers NotImplemented.
pub(super) fn acl_view(e: &Entry) -> (Owner, Vec<Grant>) {
    let owner_name = e.owner.clone().unwrap_or_else(|| "admin".into());
    let owner = Owner {
        display_name: Some(owner_name.clone()),
        id: Some(owner_name.clone()),
    };
    let perms = |bits: u32| -> Vec<&'static str> {
        match (bits & 4 != 0, bits & 2 != 0) {
            (true, true) => vec![Permission::FULL_CONTROL],
            (true, false) => vec![Permission::READ],
            (false, true) => vec![Permission::WRITE],
            (false, false) => vec![],
        }
    };
    let mut grants = Vec::new();
    let user = |id: String| Grantee {
        display_name: Some(id.clone()),
        id: Some(id),
        type_: Type::from_static(Type::CANONICAL_USER),
        email_address: None,
        uri: None,
    };
    for p in perms(e.mode >> 6) {
        grants.push(Grant {
            grantee: Some(user(owner_name.clone())),
            permission: Some(Permission::from_static(p)),
        });
    }
    if let Some(g) = &e.group {
        for p in perms(e.mode >> 3) {
            grants.push(Grant {
                grantee: Some(user(format!("group:{g}"))),
                permission: Some(Permission::from_static(p)),
            });
        }
    }
    for p in perms(e.mode) {
        grants.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                email_address: None,
                uri: Some("http://acs.amazonaws.com/groups/global/AuthenticatedUsers".into()),
            }),
            permission: Some(Permission::from_static(p)),
        });
    }
    (owner, grants)
}

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
        self.vfs.mkdir(who, &path).await.map_err(bucket_error)?;
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
        if !self
            .vfs
            .list(who, &path)
            .await
            .map_err(bucket_error)?
            .is_empty()
        {
            return Err(s3_error!(BucketNotEmpty));
        }
        self.vfs.delete(who, &path).await.map_err(bucket_error)?;
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

    pub(super) async fn bucket_versioning(
        &self,
        who: Caller,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let who = &who;
        self.require_bucket(who, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    pub(super) async fn bucket_acl(
        &self,
        who: Caller,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let who = &who;
        let path = self.require_bucket(who, &req.input.bucket).await?;
        let e = self.vfs.stat(who, &path).await.map_err(bucket_error)?;
        let (owner, grants) = acl_view(&e);
        Ok(S3Response::new(GetBucketAclOutput {
            owner: Some(owner),
            grants: Some(grants),
        }))
    }
}
