//! Object endpoints: PUT, GET, HEAD, DELETE, DeleteObjects, CopyObject, ACL and attributes views.

use futures_util::TryStreamExt;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::checksum::{self, Checker};
use super::dto::{md5_hex, trailer_names, ts, user_metadata, StoredHeaders, EMPTY_MD5};
use super::errors::{bucket_error, object_error};
use super::names;
use super::service::KuraS3;
use super::sse_c;
use crate::delivery::headers::stored_disposition;
use crate::vfs::{Caller, Entry, ObjectVersion, UploadOptions, VPath, Vfs, VfsError};

fn etag_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

fn offset(t: &Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t.clone())
}

/// GET/HEAD preconditions in S3's order of precedence.
fn check_conditions(
    e: &Entry,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let mtime = time::OffsetDateTime::from(e.http_mtime());
    if let Some(m) = if_match {
        if !etag_matches(m, &e.etag) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(t) = if_unmodified_since {
        if mtime > offset(t) {
            return Err(s3_error!(PreconditionFailed));
        }
    }
    if let Some(n) = if_none_match {
        if etag_matches(n, &e.etag) {
            return Err(not_modified());
        }
    } else if let Some(t) = if_modified_since {
        if mtime <= offset(t) {
            return Err(not_modified());
        }
    }
    Ok(())
}

fn not_modified() -> S3Error {
    let mut e = S3Error::new(S3ErrorCode::NotModified);
    e.set_status_code(http::StatusCode::NOT_MODIFIED);
    e
}

impl KuraS3 {
    /// The bucket's folder, or NoSuchBucket.
    pub(super) async fn require_bucket(&self, who: &Caller, bucket: &str) -> S3Result<VPath> {
        let p = names::bucket(bucket)?;
        match self.vfs.stat(who, &p).await {
            Ok(e) if e.is_dir => Ok(p),
            Ok(_) | Err(VfsError::NotFound) => Err(s3_error!(NoSuchBucket)),
            Err(e) => Err(bucket_error(e)),
        }
    }

    /// A file entry, or NoSuchKey (folders are not objects, except as markers).
    pub(super) async fn object_entry(
        &self,
        who: &Caller,
        bucket: &str,
        key: &str,
    ) -> S3Result<Entry> {
        let op = names::object(bucket, key)?;
        // the object first: its lookup also finds the bucket; only a miss asks which is missing
        match self.vfs.stat(who, &op.path).await {
            Ok(e) if e.is_dir == op.marker => Ok(e),
            Ok(_) | Err(VfsError::NotFound) | Err(VfsError::Conflict(_)) => {
                self.require_bucket(who, bucket).await?;
                Err(s3_error!(NoSuchKey))
            }
            Err(e) => {
                self.require_bucket(who, bucket).await?;
                Err(object_error(e))
            }
        }
    }

    pub(super) async fn put(
        &self,
        who: Caller,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let who = &who;
        let trailer_names = trailer_names(&req.headers);
        let trailers = req.trailing_headers.clone();
        let access_key = req.credentials.as_ref().map(|c| c.access_key.clone());
        let input = req.input;
        let op = names::object(&input.bucket, &input.key)?;
        let customer = sse_c::key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        // the bucket is checked only where its absence would not show (the upload's own
        // checks find a missing bucket; it is never created implicitly)
        if op.marker || input.if_match.is_some() {
            self.require_bucket(who, &input.bucket).await?;
        }
        if op.marker {
            if input.content_length.unwrap_or(0) > 0 {
                return Err(s3_error!(
                    InvalidArgument,
                    "a folder marker (key ending in /) has no content"
                ));
            }
            // a marker's ETag is that of empty content: another one never matches
            let exists = match (&input.if_match, &input.if_none_match) {
                (Some(ETagCondition::ETag(e)), _) if e.value() != EMPTY_MD5 => {
                    return Err(s3_error!(PreconditionFailed));
                }
                (Some(_), _) => Some(true),
                (None, Some(ETagCondition::Any)) => Some(false),
                (None, Some(_)) => {
                    return Err(s3_error!(
                        NotImplemented,
                        "If-None-Match on a write accepts only *"
                    ))
                }
                (None, None) => None,
            };
            self.vfs
                .mkdir_marker(who, &op.path, exists)
                .await
                .map_err(object_error)?;
            return Ok(S3Response::new(PutObjectOutput {
                e_tag: Some(ETag::Strong(EMPTY_MD5.into())),
                ..Default::default()
            }));
        }
        if matches!(input.if_none_match, Some(ETagCondition::ETag(_))) {
            return Err(s3_error!(
                NotImplemented,
                "If-None-Match on a write accepts only *"
            ));
        }
        let lock_mode = input
            .object_lock_mode
            .as_ref()
            .map(|m| m.as_str().to_string());
        let lock_until = input.object_lock_retain_until_date.clone();
        let lock_hold = input
            .object_lock_legal_hold_status
            .as_ref()
            .map(|h| h.as_str().to_string());
        self.check_lock_headers(
            who,
            &input.bucket,
            (
                lock_mode.is_some(),
                lock_until.is_some(),
                lock_hold.is_some(),
            ),
        )
        .await?;
        let declared = Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            ..Default::default()
        };
        let mut checker =
            Checker::new(input.checksum_algorithm.as_ref(), declared, &trailer_names)?;
        let content_md5 = match &input.content_md5 {
            Some(b64) => Some(md5_hex(b64)?),
            None => None,
        };
        let headers = StoredHeaders {
            metadata: input.metadata,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
        };
        let mut stored = headers.into_map();
        super::tagging::store_header(input.tagging.as_deref(), &mut stored)?;
        let opts = UploadOptions {
            create_new: matches!(input.if_none_match, Some(ETagCondition::Any)),
            must_exist: matches!(input.if_match, Some(ETagCondition::Any)),
            if_match: match &input.if_match {
                Some(ETagCondition::ETag(e)) => Some(e.value().to_string()),
                _ => None,
            },
            create_parents: true,
            expected_size: input.content_length.map(|l| l.max(0) as u64),
            content_type: input.content_type,
            content_md5,
            headers: stored.clone(),
            customer_key: customer.clone(),
            ..Default::default()
        };
        // a peer's shipment only when the key says so (one lookup, only when it could be one)
        let shipped = stored.keys().any(|k| {
            k.strip_prefix("x-amz-meta-")
                .is_some_and(crate::vfs::replica::is_replica_key)
        });
        let peer = if shipped {
            super::auth::peer_of(&self.keys, access_key.as_deref()).await?
        } else {
            None
        };
        let mut up = match self.vfs.receive(who, peer.as_ref(), &op.path, opts).await {
            Ok(up) => up,
            Err(e @ (VfsError::NotFound | VfsError::Conflict(_))) => {
                self.require_bucket(who, &input.bucket).await?;
                return Err(object_error(e));
            }
            Err(e) => return Err(object_error(e)),
        };
        let Some(mut body) = input.body else {
            return Err(s3_error!(IncompleteBody));
        };
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| s3_error!(IncompleteBody, "body ended early: {e}"))?
        {
            checker.update(&chunk);
            up.write(chunk).await.map_err(object_error)?;
        }
        let sums = match checker.verify(trailers.and_then(|t| t.take())) {
            Ok(s) => s,
            Err(e) => {
                up.abort().await;
                return Err(e);
            }
        };
        checksum::to_headers(&sums, &mut stored);
        up.set_headers(stored);
        let entry = match up.commit().await {
            Ok(e) => e,
            // the bucket may have been deleted while the body streamed
            Err(e @ (VfsError::NotFound | VfsError::Conflict(_))) => {
                self.require_bucket(who, &input.bucket).await?;
                return Err(object_error(e));
            }
            Err(e) => return Err(object_error(e)),
        };
        let version_id = self.written_version(who, &op.path).await;
        self.lock_written(
            who,
            &op.path,
            (
                lock_mode.as_deref(),
                lock_until.as_ref(),
                lock_hold.as_deref(),
            ),
            version_id.as_deref(),
        )
        .await?;
        let (sse_customer_algorithm, sse_customer_key_md5) = sse_c::echo(customer.as_ref());
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(entry.etag)),
            sse_customer_algorithm,
            sse_customer_key_md5,
            version_id,
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            ..Default::default()
        }))
    }

    pub(super) async fn get(
        &self,
        who: Caller,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let who = &who;
        let input = req.input;
        let customer = sse_c::key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let key = customer.as_ref();
        let found = self
            .object_at(who, &input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        // the current file is looked up again with its open: the row found above may describe
        // bytes a commit has replaced since (headers and checksums not the body's)
        let (entry, opened) = match (&found.version, found.entry.is_dir) {
            (None, false) => {
                let (e, d) = self
                    .vfs
                    .open_read_keyed(who, &found.entry.path, key)
                    .await
                    .map_err(object_error)?;
                (e, Some(d))
            }
            _ => (found.entry, None),
        };
        // no condition is answered about an SSE-C object without its key
        Vfs::check_customer_key(&entry, key).map_err(object_error)?;
        check_conditions(
            &entry,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let size = entry.size;
        let (range, content_range) = match &input.range {
            None => (0..size, None),
            Some(r) => {
                let r = r.check(size).map_err(|_| s3_error!(InvalidRange))?;
                let cr = format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), size);
                (r, Some(cr))
            }
        };
        let whole = content_range.is_none();
        let body = if entry.is_dir {
            StreamingBlob::wrap(futures_util::stream::empty::<
                Result<bytes::Bytes, std::io::Error>,
            >())
        } else {
            let dl = match (opened, &found.version) {
                (Some(d), _) => d,
                (None, Some(v)) => self
                    .vfs
                    .open_version(who, v, key)
                    .await
                    .map_err(object_error)?,
                (None, None) => self
                    .vfs
                    .open_entry(who, &entry, key)
                    .await
                    .map_err(object_error)?,
            };
            StreamingBlob::wrap(dl.into_stream(range.clone()).await.map_err(object_error)?)
        };
        let sums = if whole && is_enabled(input.checksum_mode.as_ref()) {
            checksum::from_headers(&entry.headers)
        } else {
            Checksum::default()
        };
        let (object_lock_mode, object_lock_retain_until_date, object_lock_legal_hold_status) = self
            .lock_view(who, &entry.path, found.version_id.as_deref())
            .await;
        let h = &entry.headers;
        let (sse_customer_algorithm, sse_customer_key_md5) =
            sse_c::echo(key.filter(|_| entry.needs_customer_key()));
        Ok(S3Response::new(GetObjectOutput {
            sse_customer_algorithm,
            sse_customer_key_md5,
            object_lock_mode,
            object_lock_retain_until_date,
            object_lock_legal_hold_status,
            body: Some(body),
            accept_ranges: Some("bytes".into()),
            content_length: Some((range.end - range.start) as i64),
            content_range,
            e_tag: Some(ETag::Strong(entry.etag.clone())),
            last_modified: Some(ts(entry.http_mtime())),
            // s3s applies `response-content-type` itself (access.rs drops unsafe ones)
            content_type: Some(entry.content_type.clone()),
            // `response-content-disposition` was cleaned like a stored one (access.rs)
            content_disposition: input
                .response_content_disposition
                .or_else(|| h.get("content-disposition").map(|v| stored_disposition(v))),
            content_encoding: input
                .response_content_encoding
                .or_else(|| h.get("content-encoding").cloned()),
            content_language: input
                .response_content_language
                .or_else(|| h.get("content-language").cloned()),
            cache_control: input
                .response_cache_control
                .or_else(|| h.get("cache-control").cloned()),
            metadata: user_metadata(h),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            tag_count: super::tagging::count(h),
            version_id: found.version_id,
            ..Default::default()
        }))
    }

    pub(super) async fn head(
        &self,
        who: Caller,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let who = &who;
        let input = req.input;
        let found = self
            .object_at(who, &input.bucket, &input.key, input.version_id.as_deref())
            .await?;
        let entry = found.entry;
        // HEAD of an SSE-C object needs its key, as GET does (AWS's rule)
        let customer = sse_c::key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        self.vfs
            .require_readable_keyed(who, &entry, customer.as_ref())
            .await
            .map_err(object_error)?;
        let (sse_customer_algorithm, sse_customer_key_md5) =
            sse_c::echo(customer.as_ref().filter(|_| entry.needs_customer_key()));
        check_conditions(
            &entry,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let sums = if is_enabled(input.checksum_mode.as_ref()) {
            checksum::from_headers(&entry.headers)
        } else {
            Checksum::default()
        };
        let (object_lock_mode, object_lock_retain_until_date, object_lock_legal_hold_status) = self
            .lock_view(who, &entry.path, found.version_id.as_deref())
            .await;
        let h = &entry.headers;
        let tag_count = super::tagging::count(h);
        let mut resp = S3Response::new(HeadObjectOutput {
            sse_customer_algorithm,
            sse_customer_key_md5,
            object_lock_mode,
            object_lock_retain_until_date,
            object_lock_legal_hold_status,
            accept_ranges: Some("bytes".into()),
            content_length: Some(entry.size as i64),
            e_tag: Some(ETag::Strong(entry.etag.clone())),
            last_modified: Some(ts(entry.http_mtime())),
            content_type: Some(served_type(
                input.response_content_type,
                &entry.content_type,
            )),
            content_disposition: h.get("content-disposition").map(|v| stored_disposition(v)),
            content_encoding: h.get("content-encoding").cloned(),
            content_language: h.get("content-language").cloned(),
            cache_control: h.get("cache-control").cloned(),
            metadata: user_metadata(h),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            version_id: found.version_id,
            ..Default::default()
        });
        // S3 names the count on GET; HEAD carries it too, so a client need not fetch bytes
        if let Some(n) = tag_count {
            resp.headers
                .insert("x-amz-tagging-count", http::HeaderValue::from(n));
        }
        Ok(resp)
    }

    /// Deletes one key; a missing key is success (S3 semantics); a `dir/` marker goes as
    /// `Vfs::delete_marker` says.
    /// Returns the delete marker a versioned bucket keeps for it.
    pub(super) async fn delete_key(
        &self,
        who: &Caller,
        bucket: &str,
        key: &str,
    ) -> S3Result<Option<ObjectVersion>> {
        let op = names::object(bucket, key)?;
        match self.vfs.stat(who, &op.path).await {
            Err(VfsError::NotFound) => Ok(None),
            Err(e) => Err(object_error(e)),
            Ok(e) if e.is_dir => {
                if !op.marker {
                    return Ok(None);
                }
                match self.vfs.delete_marker(who, &op.path).await {
                    Ok(()) | Err(VfsError::NotFound) => Ok(None),
                    Err(e) => Err(object_error(e)),
                }
            }
            Ok(_) if op.marker => Ok(None),
            Ok(_) => match self.vfs.delete_object(who, &op.path).await {
                Ok(m) => Ok(m),
                Err(VfsError::NotFound) => Ok(None),
                Err(e) => Err(object_error(e)),
            },
        }
    }

    /// DeleteObject with If-Match (AWS, 2025): the key must exist (`NoSuchKey`), and with an
    /// ETag still have it, checked by the core inside the delete's transaction (`412` when it
    /// differs, `409` when a write landed meanwhile).
    async fn delete_key_if(
        &self,
        who: &Caller,
        bucket: &str,
        key: &str,
        cond: &ETagCondition,
    ) -> S3Result<Option<ObjectVersion>> {
        let op = names::object(bucket, key)?;
        let e = self.vfs.stat(who, &op.path).await.map_err(object_error)?;
        let etag = match cond {
            ETagCondition::ETag(t) => Some(t.value().to_string()),
            ETagCondition::Any => None,
        };
        match (e.is_dir, op.marker, &etag) {
            (true, true, None) => {
                self.vfs
                    .delete_marker(who, &op.path)
                    .await
                    .map_err(object_error)?;
                return Ok(None);
            }
            (true, _, _) | (false, true, _) => return Err(s3_error!(NoSuchKey)),
            (false, false, _) => {}
        }
        self.vfs
            .delete_object_if(who, &op.path, etag.as_deref())
            .await
            .map_err(object_error)
    }

    pub(super) async fn delete(
        &self,
        who: Caller,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let who = &who;
        let input = req.input;
        self.require_bucket(who, &input.bucket).await?;
        if let (Some(cond), None) = (&input.if_match, &input.version_id) {
            let m = self
                .delete_key_if(who, &input.bucket, &input.key, cond)
                .await?;
            return Ok(S3Response::new(DeleteObjectOutput {
                delete_marker: m.is_some().then_some(true),
                version_id: m.map(|m| m.s3_id()),
                ..Default::default()
            }));
        }
        let (version_id, marker) = self
            .delete_one(
                who,
                &input.bucket,
                &input.key,
                (
                    input.version_id.as_deref(),
                    input.bypass_governance_retention.unwrap_or(false),
                ),
            )
            .await?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: marker.then_some(true),
            version_id,
            ..Default::default()
        }))
    }

    pub(super) async fn delete_many(
        &self,
        who: Caller,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let who = &who;
        let input = req.input;
        self.require_bucket(who, &input.bucket).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bypass = input.bypass_governance_retention.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            let asked = obj.version_id.clone();
            match self
                .delete_one(who, &input.bucket, &obj.key, (asked.as_deref(), bypass))
                .await
            {
                Ok((id, marker)) => {
                    if !quiet {
                        // by version id: that version (a marker or not); else the new marker
                        let made = asked.is_none() && marker;
                        deleted.push(DeletedObject {
                            key: Some(obj.key),
                            version_id: asked.clone(),
                            delete_marker: marker.then_some(true),
                            delete_marker_version_id: if made {
                                id
                            } else {
                                asked.filter(|_| marker)
                            },
                        });
                    }
                }
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    message: e.message().map(str::to_string),
                    key: Some(obj.key),
                    version_id: asked,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    pub(super) async fn copy(
        &self,
        who: Caller,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let who = &who;
        let input = req.input;
        let CopySource::Bucket {
            bucket: sb,
            key: sk,
            version_id: sv,
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "only bucket/key copy sources are supported"
            ));
        };
        // the source's SSE-C key opens it; the copy's own (if any) seals the copy
        let from_key = sse_c::key(
            input.copy_source_sse_customer_algorithm.as_deref(),
            input.copy_source_sse_customer_key.as_deref(),
            input.copy_source_sse_customer_key_md5.as_deref(),
        )?;
        let into_key = sse_c::key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let keys = (from_key.as_ref(), into_key.as_ref());
        let found = self.object_at(who, sb, sk, sv.as_deref()).await?;
        let src = found.entry.clone();
        Vfs::check_customer_key(&src, keys.0).map_err(object_error)?;
        // read and written again: from an SSE-C source, or into an SSE-C copy
        let rewritten = src.needs_customer_key() || keys.1.is_some();
        // a kept version is copied from its own bytes; the current one by the core's copy
        let kept = found.version.filter(ObjectVersion::is_kept);
        let source_version = found.version_id;
        if src.is_dir {
            return Err(s3_error!(
                InvalidRequest,
                "folders cannot be copied through S3"
            ));
        }
        if let Some(m) = &input.copy_source_if_match {
            if !etag_matches(m, &src.etag) {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        if let Some(n) = &input.copy_source_if_none_match {
            if etag_matches(n, &src.etag) {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        self.require_bucket(who, &input.bucket).await?;
        let dst = names::object(&input.bucket, &input.key)?;
        if dst.marker {
            return Err(object_error(VfsError::WrongKind(
                "a folder marker cannot be a copy target",
            )));
        }
        // REPLACE takes the request's tags (none: no tags); COPY, the default, keeps the source's
        let new_tags = match &input.tagging_directive {
            Some(d) if d.as_str() == TaggingDirective::REPLACE => {
                Some(super::tagging::from_header(input.tagging.as_deref())?)
            }
            _ => None,
        };
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if dst.path == src.path && !replace && new_tags.is_none() && kept.is_none() && !rewritten {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata"
            ));
        }
        if let Ok(existing) = self.vfs.stat(who, &dst.path).await {
            if existing.is_dir {
                return Err(object_error(VfsError::WrongKind("a folder has this name")));
            }
        }
        if let Some(v) = &kept {
            let headers = replace.then(|| {
                let mut stored = StoredHeaders {
                    metadata: input.metadata.clone(),
                    cache_control: input.cache_control.clone(),
                    content_disposition: input.content_disposition.clone(),
                    content_encoding: input.content_encoding.clone(),
                    content_language: input.content_language.clone(),
                }
                .into_map();
                for n in checksum::NAMES
                    .into_iter()
                    .chain([crate::vfs::tags::TAGS, crate::vfs::tags::DESCRIPTION])
                {
                    if let Some(x) = src.headers.get(n) {
                        stored.insert(n.to_string(), x.clone());
                    }
                }
                (input.content_type.clone(), stored)
            });
            let e = self.copy_version(who, v, &dst.path, headers, keys).await?;
            let version_id = self.written_version(who, &dst.path).await;
            let (sse_customer_algorithm, sse_customer_key_md5) = sse_c::echo(keys.1);
            return Ok(S3Response::new(CopyObjectOutput {
                sse_customer_algorithm,
                sse_customer_key_md5,
                copy_object_result: Some(CopyObjectResult {
                    e_tag: Some(ETag::Strong(e.etag.clone())),
                    last_modified: Some(ts(e.http_mtime())),
                    ..Default::default()
                }),
                copy_source_version_id: source_version,
                version_id,
                ..Default::default()
            }));
        }
        if dst.path != src.path || rewritten {
            // missing folders above the destination are made only if the copy commits
            self.vfs
                .copy_object(who, &src.path, &dst.path, keys)
                .await
                .map_err(object_error)?;
        }
        if replace {
            let mut stored = StoredHeaders {
                metadata: input.metadata,
                cache_control: input.cache_control,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
            }
            .into_map();
            // the bytes did not change, so their checksums still hold; tags go with the object
            for n in checksum::NAMES
                .into_iter()
                .chain([crate::vfs::tags::TAGS, crate::vfs::tags::DESCRIPTION])
            {
                if let Some(v) = src.headers.get(n) {
                    stored.insert(n.to_string(), v.clone());
                }
            }
            self.vfs
                .set_headers(who, &dst.path, input.content_type.as_deref(), &stored)
                .await
                .map_err(object_error)?;
        }
        if let Some(t) = &new_tags {
            self.vfs
                .set_tags(who, &dst.path, t)
                .await
                .map_err(object_error)?;
        }
        let e = self.vfs.stat(who, &dst.path).await.map_err(object_error)?;
        let version_id = self.written_version(who, &dst.path).await;
        let (sse_customer_algorithm, sse_customer_key_md5) = sse_c::echo(keys.1);
        Ok(S3Response::new(CopyObjectOutput {
            sse_customer_algorithm,
            sse_customer_key_md5,
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(e.etag.clone())),
                last_modified: Some(ts(e.http_mtime())),
                ..Default::default()
            }),
            copy_source_version_id: source_version.filter(|_| sv.is_some()),
            version_id,
            ..Default::default()
        }))
    }

    pub(super) async fn object_acl(
        &self,
        who: Caller,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let who = &who;
        let e = self
            .object_entry(who, &req.input.bucket, &req.input.key)
            .await?;
        let public = self
            .vfs
            .is_public_read(who, &e.path)
            .await
            .map_err(object_error)?;
        let (owner, grants) = super::dto::acl_view(&e, public);
        Ok(S3Response::new(GetObjectAclOutput {
            owner: Some(owner),
            grants: Some(grants),
            ..Default::default()
        }))
    }

    pub(super) async fn attributes(
        &self,
        who: Caller,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let who = &who;
        let e = self
            .object_entry(who, &req.input.bucket, &req.input.key)
            .await?;
        // an SSE-C object's attributes, as its HEAD, need its key (AWS's rule)
        let customer = sse_c::key(
            req.input.sse_customer_algorithm.as_deref(),
            req.input.sse_customer_key.as_deref(),
            req.input.sse_customer_key_md5.as_deref(),
        )?;
        Vfs::check_customer_key(&e, customer.as_ref()).map_err(object_error)?;
        let sums = checksum::from_headers(&e.headers);
        let has_sum = sums.checksum_crc32.is_some()
            || sums.checksum_crc32c.is_some()
            || sums.checksum_crc64nvme.is_some()
            || sums.checksum_sha1.is_some()
            || sums.checksum_sha256.is_some();
        // only the attributes asked for, as S3 answers (s3s may hand over the header's
        // comma-separated list as one item)
        let asked = |a: &str| {
            req.input
                .object_attributes
                .iter()
                .flat_map(|x| x.as_str().split(','))
                .any(|x| x.trim().eq_ignore_ascii_case(a))
        };
        // an object completed from N parts has the ETag `<md5>-N`; its parts are not kept
        let parts = e
            .etag
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse::<i32>().ok())
            .map(|n| GetObjectAttributesParts {
                total_parts_count: Some(n),
                ..Default::default()
            });
        Ok(S3Response::new(GetObjectAttributesOutput {
            e_tag: asked(ObjectAttributes::ETAG).then(|| ETag::Strong(e.etag.clone())),
            last_modified: Some(ts(e.http_mtime())),
            object_size: asked(ObjectAttributes::OBJECT_SIZE).then_some(e.size as i64),
            storage_class: asked(ObjectAttributes::STORAGE_CLASS)
                .then(|| StorageClass::from_static(StorageClass::STANDARD)),
            checksum: (has_sum && asked(ObjectAttributes::CHECKSUM)).then_some(sums),
            object_parts: parts.filter(|_| asked(ObjectAttributes::OBJECT_PARTS)),
            ..Default::default()
        }))
    }
}

fn is_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
}

/// The type a file is served with: the one asked for by `response-content-type`, unless a
/// browser would render or run it (then the stored type stands, so that a presigned link
/// cannot turn a text file into a page).
fn served_type(asked: Option<String>, stored: &str) -> String {
    match asked {
        Some(t) if !crate::wire::is_active_type(&t) => t,
        _ => stored.to_string(),
    }
}
