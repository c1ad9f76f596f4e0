//! Object and bucket tagging (Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, the
//! `x-amz-tagging` header of writes): translation only. The tags, their limits and who may
//! change them are the core's (`vfs::tags`); a bucket's tags are its folder's.

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::errors::{bucket_error, object_error};
use super::names;
use super::service::KuraS3;
use crate::vfs::tags::{self, Tags};
use crate::vfs::{Caller, VfsError};

/// A tag set as pairs, within the core's limits (`InvalidTag` otherwise).
fn checked(set: TagSet) -> S3Result<Tags> {
    let pairs: Tags = set
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect();
    tags::check_tags(&pairs).map_err(invalid_tag)?;
    Ok(pairs)
}

/// The core's refusal of a tag set as S3's `InvalidTag`.
fn invalid_tag(e: VfsError) -> s3s::S3Error {
    match e {
        VfsError::InvalidArgument(m) => s3_error!(InvalidTag, "{m}"),
        e => object_error(e),
    }
}

/// Tags of an `x-amz-tagging` header (URL query form), checked (`InvalidTag`).
pub(super) fn from_header(h: Option<&str>) -> S3Result<Tags> {
    h.map_or(Ok(Vec::new()), |q| {
        tags::parse_query(q).map_err(invalid_tag)
    })
}

/// Adds the tags of an `x-amz-tagging` header to the headers a write stores.
pub(super) fn store_header(h: Option<&str>, stored: &mut BTreeMap<String, String>) -> S3Result<()> {
    let pairs = from_header(h)?;
    tags::put_tags(stored, &pairs);
    Ok(())
}

/// `x-amz-tagging-count` of an object with `headers`, when it has tags.
pub(super) fn count(headers: &BTreeMap<String, String>) -> Option<i32> {
    let n = tags::tags_of(headers).len();
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

fn tag_set(pairs: Tags) -> TagSet {
    pairs
        .into_iter()
        .map(|(k, v)| Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

impl KuraS3 {
    /// Replaces the object's tags with `pairs` (none: removes them), keeping its bytes.
    async fn store_tags(&self, who: &Caller, bucket: &str, key: &str, pairs: Tags) -> S3Result<()> {
        self.object_entry(who, bucket, key).await?;
        let op = names::object(bucket, key)?;
        self.vfs
            .set_tags(who, &op.path, &pairs)
            .await
            .map_err(object_error)?;
        Ok(())
    }

    pub(super) async fn put_tagging(
        &self,
        who: Caller,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let pairs = checked(input.tagging.tag_set)?;
        self.store_tags(&who, &input.bucket, &input.key, pairs)
            .await?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    pub(super) async fn get_tagging(
        &self,
        who: Caller,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let e = self
            .object_entry(&who, &req.input.bucket, &req.input.key)
            .await?;
        self.vfs
            .require_readable(&who, &e)
            .await
            .map_err(object_error)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(tags::tags_of(&e.headers)),
            version_id: None,
        }))
    }

    pub(super) async fn delete_tagging(
        &self,
        who: Caller,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        self.store_tags(&who, &input.bucket, &input.key, Vec::new())
            .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }

    pub(super) async fn put_bucket_tagging(
        &self,
        who: Caller,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let input = req.input;
        let path = self.require_bucket(&who, &input.bucket).await?;
        let pairs = checked(input.tagging.tag_set)?;
        self.vfs
            .set_tags(&who, &path, &pairs)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    pub(super) async fn get_bucket_tagging(
        &self,
        who: Caller,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let path = self.require_bucket(&who, &req.input.bucket).await?;
        let e = self.vfs.stat(&who, &path).await.map_err(bucket_error)?;
        let pairs = tags::tags_of(&e.headers);
        if pairs.is_empty() {
            return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
        }
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tag_set(pairs),
        }))
    }

    pub(super) async fn delete_bucket_tagging(
        &self,
        who: Caller,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let path = self.require_bucket(&who, &req.input.bucket).await?;
        self.vfs
            .set_tags(&who, &path, &[])
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
    }
}
