//! Object tags (Put/Get/DeleteObjectTagging): kept with the object's stored headers under
//! `x-amz-tagging`, as a JSON list of pairs, so that copies and replication carry them.

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::errors::object_error;
use super::names;
use super::service::KuraS3;
use crate::vfs::Caller;

/// The stored-header name of an object's tags.
pub const STORED: &str = crate::vfs::lifecycle::TAGS_HEADER;
/// S3's limits: tags per object, and the lengths of a key and a value.
const MAX_TAGS: usize = 10;
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 256;

/// The tags stored with an object.
fn stored(headers: &BTreeMap<String, String>) -> Vec<(String, String)> {
    headers
        .get(STORED)
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

/// A tag set within S3's limits (`InvalidTag` otherwise), as pairs.
fn checked(set: TagSet) -> S3Result<Vec<(String, String)>> {
    if set.len() > MAX_TAGS {
        return Err(s3_error!(InvalidTag, "at most {MAX_TAGS} tags per object"));
    }
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(set.len());
    for t in set {
        let key = t.key.unwrap_or_default();
        let value = t.value.unwrap_or_default();
        if key.is_empty() || key.chars().count() > MAX_KEY || value.chars().count() > MAX_VALUE {
            return Err(s3_error!(
                InvalidTag,
                "a tag key is 1 to {MAX_KEY} characters, a value at most {MAX_VALUE}"
            ));
        }
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(s3_error!(InvalidTag, "tag keys must be unique"));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

impl KuraS3 {
    /// Replaces the object's tags with `pairs` (none: removes them), keeping its bytes.
    async fn store_tags(
        &self,
        who: &Caller,
        bucket: &str,
        key: &str,
        pairs: Vec<(String, String)>,
    ) -> S3Result<()> {
        let e = self.object_entry(who, bucket, key).await?;
        let mut headers = e.headers.clone();
        if pairs.is_empty() {
            headers.remove(STORED);
        } else {
            let json = serde_json::to_string(&pairs)
                .map_err(|_| s3_error!(InternalError, "tags could not be encoded"))?;
            headers.insert(STORED.to_string(), json);
        }
        let op = names::object(bucket, key)?;
        self.vfs
            .set_headers(who, &op.path, None, &headers)
            .await
            .map_err(object_error)
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
        let tag_set = stored(&e.headers)
            .into_iter()
            .map(|(k, v)| Tag {
                key: Some(k),
                value: Some(v),
            })
            .collect();
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set,
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
}
