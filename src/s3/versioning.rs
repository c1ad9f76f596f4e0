//! S3 versioning: Put/GetBucketVersioning, ListObjectVersions, and the versionId of object
//! reads, deletes and copies. The rules (who sees which version, what a delete does) are the
//! core's (`vfs/versioning.rs`); this module translates.

use futures_util::TryStreamExt;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::dto::ts;
use super::errors::{bucket_error, object_error};
use super::list::{encode, prefixes, wants_url};
use super::names;
use super::service::KuraS3;
use crate::vfs::ObjectVersion as Version;
use crate::vfs::{
    parse_version_id, Caller, CopyKeys, Entry, S3Versioning, UploadOptions, VPath, VfsError,
};

/// An object read by GET, HEAD or a copy: the current file or a version of it, and the
/// versionId to report (`None` in a bucket never versioned).
pub(super) struct Found {
    pub entry: Entry,
    pub version: Option<Version>,
    pub version_id: Option<String>,
}

/// A core error where a versionId was given: a missing one is NoSuchVersion.
fn version_error(e: VfsError) -> S3Error {
    match e {
        VfsError::NotFound => S3Error::new(S3ErrorCode::NoSuchVersion),
        e => object_error(e),
    }
}

/// The headers S3 sends with an answer about a delete marker.
fn marker_headers(v: &Version, last_modified: bool) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(id) = http::HeaderValue::from_str(&v.s3_id()) {
        h.insert("x-amz-version-id", id);
    }
    if last_modified {
        let date = httpdate::fmt_http_date(v.entry.http_mtime());
        if let Ok(d) = http::HeaderValue::from_str(&date) {
            h.insert(http::header::LAST_MODIFIED, d);
        }
    }
    h
}

fn owner_of(e: &Entry) -> Option<Owner> {
    e.owner.as_ref().map(|o| Owner {
        display_name: Some(o.clone()),
        id: Some(o.clone()),
    })
}

enum Item {
    Version(String, Box<Version>),
    Prefix(String),
}

impl KuraS3 {
    pub(super) async fn get_versioning(
        &self,
        who: Caller,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let who = &who;
        let path = self.require_bucket(who, &req.input.bucket).await?;
        let state = self
            .vfs
            .versioning(who, &path)
            .await
            .map_err(bucket_error)?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: state.map(|s| {
                BucketVersioningStatus::from_static(match s {
                    S3Versioning::Enabled => BucketVersioningStatus::ENABLED,
                    S3Versioning::Suspended => BucketVersioningStatus::SUSPENDED,
                })
            }),
            mfa_delete: None,
        }))
    }

    pub(super) async fn put_versioning(
        &self,
        who: Caller,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let who = &who;
        let input = req.input;
        let path = self.require_bucket(who, &input.bucket).await?;
        let conf = input.versioning_configuration;
        if conf
            .mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
        {
            return Err(s3_error!(
                InvalidArgument,
                "MFA delete is not supported: Kura has no MFA devices"
            ));
        }
        let state = match conf.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => S3Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => S3Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "Status must be Enabled or Suspended"
                ))
            }
        };
        match self.vfs.set_versioning(who, &path, state).await {
            Ok(()) => {}
            Err(VfsError::Conflict(m)) => {
                let mut e = S3Error::with_message(S3ErrorCode::InvalidBucketState, m);
                e.set_status_code(http::StatusCode::CONFLICT);
                return Err(e);
            }
            Err(e) => return Err(bucket_error(e)),
        }
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    /// The object `key` of `bucket` for a read: the current file, or the version
    /// `version_id`. A delete marker answers as S3 does: 405 by version id, 404 NoSuchKey as
    /// the latest version, both with `x-amz-delete-marker`.
    pub(super) async fn object_at(
        &self,
        who: &Caller,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<Found> {
        let Some(vid) = version_id else {
            let entry = match self.object_entry(who, bucket, key).await {
                Ok(e) => e,
                Err(e) if *e.code() == S3ErrorCode::NoSuchKey => {
                    return Err(self.deleted(who, bucket, key, e).await)
                }
                Err(e) => return Err(e),
            };
            let version_id = self
                .vfs
                .reported_version(who, &entry.path)
                .await
                .map_err(object_error)?;
            return Ok(Found {
                entry,
                version: None,
                version_id,
            });
        };
        let op = names::object(bucket, key)?;
        self.require_bucket(who, bucket).await?;
        let v = self
            .vfs
            .object_version(who, &op.path, vid)
            .await
            .map_err(version_error)?;
        if v.marker {
            let mut e = S3Error::with_message(
                S3ErrorCode::MethodNotAllowed,
                "The specified method is not allowed against this resource.",
            );
            e.set_status_code(http::StatusCode::METHOD_NOT_ALLOWED);
            e.set_headers(marker_headers(&v, true));
            return Err(e);
        }
        Ok(Found {
            entry: v.entry.clone(),
            version_id: Some(v.s3_id()),
            version: Some(v),
        })
    }

    /// NoSuchKey `e`, with `x-amz-delete-marker` when the key's latest version is a marker.
    async fn deleted(&self, who: &Caller, bucket: &str, key: &str, mut e: S3Error) -> S3Error {
        let Ok(op) = names::object(bucket, key) else {
            return e;
        };
        if let Ok(Some(v)) = self.vfs.latest_version(who, &op.path).await {
            if v.marker {
                e.set_headers(marker_headers(&v, false));
            }
        }
        e
    }

    /// The versionId S3 reports for the current file at `path` after a write (none in a
    /// bucket never versioned).
    pub(super) async fn written_version(&self, who: &Caller, path: &VPath) -> Option<String> {
        self.vfs.reported_version(who, path).await.ok().flatten()
    }

    /// DeleteObject of one key: with a versionId that version goes for good (a missing one
    /// is success, as on AWS); without, a delete (a marker in a versioned bucket). Returns
    /// (versionId, whether it is a delete marker) for the response.
    pub(super) async fn delete_one(
        &self,
        who: &Caller,
        bucket: &str,
        key: &str,
        (version_id, bypass): (Option<&str>, bool),
    ) -> S3Result<(Option<String>, bool)> {
        let Some(vid) = version_id else {
            let marker = self.delete_key(who, bucket, key).await?;
            return Ok(match marker {
                Some(m) => (Some(m.s3_id()), true),
                None => (None, false),
            });
        };
        parse_version_id(vid).map_err(object_error)?;
        let op = names::object(bucket, key)?;
        if op.marker {
            // folder markers have no versions
            return Ok((Some(vid.to_string()), false));
        }
        match self
            .vfs
            .delete_object_version(who, &op.path, vid, bypass)
            .await
        {
            Ok(v) => Ok((Some(v.s3_id()), v.marker)),
            Err(VfsError::NotFound) => Ok((Some(vid.to_string()), false)),
            Err(e) => Err(object_error(e)),
        }
    }

    /// CopyObject from a kept version: its bytes streamed into a new upload at `dst` (a
    /// copy of the current file goes through the core's copy instead).
    pub(super) async fn copy_version(
        &self,
        who: &Caller,
        v: &Version,
        dst: &VPath,
        replace: Option<(Option<String>, std::collections::BTreeMap<String, String>)>,
        (from, into): CopyKeys<'_>,
    ) -> S3Result<Entry> {
        let dl = self
            .vfs
            .open_version(who, v, from)
            .await
            .map_err(object_error)?;
        let (content_type, headers) = match replace {
            Some((ct, h)) => (ct.or_else(|| Some(v.entry.content_type.clone())), h),
            None => (Some(v.entry.content_type.clone()), v.entry.headers.clone()),
        };
        let opts = UploadOptions {
            create_parents: true,
            expected_size: Some(v.entry.size),
            content_type,
            headers,
            customer_key: into.cloned(),
            ..Default::default()
        };
        let mut up = self
            .vfs
            .upload(who, dst, opts)
            .await
            .map_err(object_error)?;
        let mut body = dl
            .into_stream(0..v.entry.size)
            .await
            .map_err(object_error)?;
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            object_error(VfsError::Storage(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                e.to_string(),
            )))
        })? {
            up.write(chunk).await.map_err(object_error)?;
        }
        up.commit().await.map_err(object_error)
    }

    pub(super) async fn list_versions(
        &self,
        who: Caller,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let who = &who;
        let input = req.input;
        let bucket = self.require_bucket(who, &input.bucket).await?;
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let vid_marker = input
            .version_id_marker
            .clone()
            .filter(|v| !v.is_empty() && !key_marker.is_empty());
        if let Some(v) = &vid_marker {
            parse_version_id(v).map_err(object_error)?;
        }
        let mut items: Vec<Item> = Vec::new();
        let (mut after, mut after_v) = (key_marker.clone(), vid_marker.clone());
        let mut last_prefix: Option<String> = None;
        'fill: while max > 0 && items.len() <= max {
            let batch = self
                .vfs
                .object_versions(
                    who,
                    &bucket,
                    &prefix,
                    (&after, after_v.as_deref()),
                    max + 1 - items.len(),
                )
                .await
                .map_err(object_error)?;
            after_v = None;
            if batch.is_empty() {
                break;
            }
            for v in batch {
                let key = names::key_of(&bucket, &v.entry.path);
                let group = delimiter.as_deref().and_then(|d| {
                    key.get(prefix.len()..)?
                        .find(d)
                        .map(|i| key[..prefix.len() + i + d.len()].to_string())
                });
                if let Some(cp) = group {
                    after = format!("{cp}{}", char::MAX);
                    if cp > key_marker && last_prefix.as_ref() != Some(&cp) {
                        last_prefix = Some(cp.clone());
                        items.push(Item::Prefix(cp));
                    }
                    continue 'fill;
                }
                after = key.clone();
                after_v = Some(v.s3_id());
                items.push(Item::Version(key, Box::new(v)));
                if items.len() > max {
                    break 'fill;
                }
            }
        }
        let truncated = items.len() > max;
        items.truncate(max);
        let (next_key, next_version) = match items.last().filter(|_| truncated) {
            Some(Item::Version(k, v)) => (Some(k.clone()), Some(v.s3_id())),
            Some(Item::Prefix(p)) => (Some(p.clone()), None),
            None => (None, None),
        };
        let url = wants_url(input.encoding_type.as_ref());
        let (mut versions, mut markers, mut common) = (Vec::new(), Vec::new(), Vec::new());
        for i in items {
            match i {
                Item::Prefix(p) => common.push(p),
                Item::Version(k, v) if v.marker => markers.push(DeleteMarkerEntry {
                    is_latest: Some(v.latest),
                    key: Some(encode(&k, url)),
                    last_modified: Some(ts(v.entry.http_mtime())),
                    owner: owner_of(&v.entry),
                    version_id: Some(v.s3_id()),
                }),
                Item::Version(k, v) => versions.push(ObjectVersion {
                    key: Some(encode(&k, url)),
                    version_id: Some(v.s3_id()),
                    is_latest: Some(v.latest),
                    size: Some(v.entry.size as i64),
                    e_tag: Some(ETag::Strong(v.entry.etag.clone())),
                    last_modified: Some(ts(v.entry.http_mtime())),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    owner: owner_of(&v.entry),
                    ..Default::default()
                }),
            }
        }
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(encode(&prefix, url)),
            delimiter: input.delimiter.map(|d| encode(&d, url)),
            key_marker: Some(encode(&key_marker, url)),
            version_id_marker: input.version_id_marker,
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: next_key.map(|k| encode(&k, url)),
            next_version_id_marker: next_version,
            encoding_type: input.encoding_type,
            versions: Some(versions),
            delete_markers: (!markers.is_empty()).then_some(markers),
            common_prefixes: Some(prefixes(common, url)),
            ..Default::default()
        }))
    }
}
