//! Multipart endpoints over the core's staging area and atomic assembly.

use futures_util::TryStreamExt;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::checksum::{self, Checker};
use super::dto::{md5_hex, trailer_names, ts, StoredHeaders};
use super::errors::object_error;
use super::names;
use super::service::KuraS3;
use super::sse_c;
use crate::vfs::{Caller, CompletedPart, Preconditions};

impl KuraS3 {
    pub(super) async fn mp_create(
        &self,
        who: Caller,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let who = &who;
        let input = req.input;
        self.require_bucket(who, &input.bucket).await?;
        let op = names::object(&input.bucket, &input.key)?;
        let mut headers = StoredHeaders {
            metadata: input.metadata,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
        }
        .into_map();
        super::tagging::store_header(input.tagging.as_deref(), &mut headers)?;
        let customer = sse_c::key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let id = self
            .vfs
            .multipart_start(
                who,
                &op.path,
                (input.content_type, headers),
                customer.as_ref(),
            )
            .await
            .map_err(object_error)?;
        let (sse_customer_algorithm, sse_customer_key_md5) = sse_c::echo(customer.as_ref());
        Ok(S3Response::new(CreateMultipartUploadOutput {
            sse_customer_algorithm,
            sse_customer_key_md5,
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    pub(super) async fn mp_part(
        &self,
        who: Caller,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let who = &who;
        let names_t = trailer_names(&req.headers);
        let trailers = req.trailing_headers.clone();
        let input = req.input;
        let op = names::object(&input.bucket, &input.key)?;
        let declared = Checksum {
            checksum_crc32: input.checksum_crc32,
            checksum_crc32c: input.checksum_crc32c,
            checksum_crc64nvme: input.checksum_crc64nvme,
            checksum_sha1: input.checksum_sha1,
            checksum_sha256: input.checksum_sha256,
            ..Default::default()
        };
        let mut checker = Checker::new(input.checksum_algorithm.as_ref(), declared, &names_t)?;
        let customer = sse_c::key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        let mut part = self
            .vfs
            .multipart_part(
                who,
                (&input.upload_id, &op.path),
                i64::from(input.part_number),
                input.content_length.map(|l| l.max(0) as u64),
                customer.as_ref(),
            )
            .await
            .map_err(object_error)?;
        if let Some(b64) = &input.content_md5 {
            part.expect_md5(md5_hex(b64)?);
        }
        let Some(mut body) = input.body else {
            return Err(s3_error!(IncompleteBody));
        };
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| s3_error!(IncompleteBody, "body ended early: {e}"))?
        {
            checker.update(&chunk);
            part.write(chunk).await.map_err(object_error)?;
        }
        let sums = checker.verify(trailers.and_then(|t| t.take()))?;
        let mut kept = std::collections::BTreeMap::new();
        checksum::to_headers(&sums, &mut kept);
        part.set_checksums(kept);
        let row = part.commit().await.map_err(object_error)?;
        let (sse_customer_algorithm, sse_customer_key_md5) = sse_c::echo(customer.as_ref());
        Ok(S3Response::new(UploadPartOutput {
            sse_customer_algorithm,
            sse_customer_key_md5,
            e_tag: Some(ETag::Strong(row.etag)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            ..Default::default()
        }))
    }

    pub(super) async fn mp_part_copy(
        &self,
        who: Caller,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let who = &who;
        let input = req.input;
        let CopySource::Bucket {
            bucket: sb,
            key: sk,
            ..
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "only bucket/key copy sources are supported"
            ));
        };
        self.require_bucket(who, sb).await?;
        let src = names::object(sb, sk)?;
        // the source opens with its SSE-C key, the part is sealed with the upload's
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
        let (entry, dl) = self
            .vfs
            .open_read_keyed(who, &src.path, from_key.as_ref())
            .await
            .map_err(object_error)?;
        let range = match &input.copy_source_range {
            None => 0..entry.size,
            Some(r) => {
                let spec = r
                    .strip_prefix("bytes=")
                    .ok_or_else(|| s3_error!(InvalidArgument))?;
                let (a, b) = spec
                    .split_once('-')
                    .ok_or_else(|| s3_error!(InvalidArgument))?;
                let a: u64 = a.parse().map_err(|_| s3_error!(InvalidArgument))?;
                let b: u64 = b.parse().map_err(|_| s3_error!(InvalidArgument))?;
                if a > b || b >= entry.size {
                    return Err(s3_error!(InvalidRange));
                }
                a..b + 1
            }
        };
        let dst = names::object(&input.bucket, &input.key)?;
        let mut part = self
            .vfs
            .multipart_part(
                who,
                (&input.upload_id, &dst.path),
                i64::from(input.part_number),
                Some(range.end - range.start),
                into_key.as_ref(),
            )
            .await
            .map_err(object_error)?;
        let mut stream = dl.into_stream(range).await.map_err(object_error)?;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| s3_error!(InternalError, "{e}"))?
        {
            part.write(chunk).await.map_err(object_error)?;
        }
        let row = part.commit().await.map_err(object_error)?;
        let (sse_customer_algorithm, sse_customer_key_md5) = sse_c::echo(into_key.as_ref());
        Ok(S3Response::new(UploadPartCopyOutput {
            sse_customer_algorithm,
            sse_customer_key_md5,
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(row.etag)),
                last_modified: Some(ts(std::time::SystemTime::now())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    pub(super) async fn mp_complete(
        &self,
        who: Caller,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let who = &who;
        let peer = super::auth::peer_of(
            &self.keys,
            req.credentials.as_ref().map(|c| c.access_key.as_str()),
        )
        .await?;
        let input = req.input;
        self.require_bucket(who, &input.bucket).await?;
        let op = names::object(&input.bucket, &input.key)?;
        // an upload started with an SSE-C key completes with it: its parts open with no other
        let customer = sse_c::key(
            input.sse_customer_algorithm.as_deref(),
            input.sse_customer_key.as_deref(),
            input.sse_customer_key_md5.as_deref(),
        )?;
        if matches!(input.if_none_match, Some(ETagCondition::ETag(_))) {
            return Err(s3_error!(
                NotImplemented,
                "If-None-Match on a write accepts only *"
            ));
        }
        let when = Preconditions {
            if_none_match_any: input.if_none_match.is_some(),
            if_match_any: matches!(input.if_match, Some(ETagCondition::Any)),
            if_match: match &input.if_match {
                Some(ETagCondition::ETag(e)) => Some(e.value().to_string()),
                _ => None,
            },
        };
        let parts = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        // the object's composite checksum, from the checksums each part arrived with
        let stored = self
            .vfs
            .multipart_parts(who, &input.upload_id, &op.path)
            .await
            .map_err(object_error)?;
        let sums: Vec<(Checksum, Checksum)> = parts
            .iter()
            .filter_map(|p| {
                let number = i64::from(p.part_number.unwrap_or(0));
                let row = stored.iter().find(|r| r.number == number)?;
                let named = Checksum {
                    checksum_crc32: p.checksum_crc32.clone(),
                    checksum_crc32c: p.checksum_crc32c.clone(),
                    checksum_crc64nvme: p.checksum_crc64nvme.clone(),
                    checksum_sha1: p.checksum_sha1.clone(),
                    checksum_sha256: p.checksum_sha256.clone(),
                    ..Default::default()
                };
                Some((checksum::of_part(row.checksums.as_deref()), named))
            })
            .collect();
        let whole = checksum::composite(&sums)?;
        let parts: Vec<CompletedPart> = parts
            .into_iter()
            .map(|p| CompletedPart {
                number: i64::from(p.part_number.unwrap_or(0)),
                etag: p.e_tag.map(|e| e.value().to_string()).unwrap_or_default(),
            })
            .collect();
        let entry = self
            .vfs
            .multipart_complete(
                who,
                (peer.as_ref(), customer.as_ref()),
                &input.upload_id,
                &op.path,
                (&parts, &when),
            )
            .await
            .map_err(object_error)?;
        let version_id = self.written_version(who, &op.path).await;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            version_id,
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(entry.etag)),
            checksum_type: (whole.checksum_crc32.is_some()
                || whole.checksum_crc32c.is_some()
                || whole.checksum_sha1.is_some()
                || whole.checksum_sha256.is_some())
            .then(|| ChecksumType::from_static(ChecksumType::COMPOSITE)),
            checksum_crc32: whole.checksum_crc32,
            checksum_crc32c: whole.checksum_crc32c,
            checksum_sha1: whole.checksum_sha1,
            checksum_sha256: whole.checksum_sha256,
            ..Default::default()
        }))
    }

    pub(super) async fn mp_abort(
        &self,
        who: Caller,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let who = &who;
        let input = req.input;
        let op = names::object(&input.bucket, &input.key)?;
        self.vfs
            .multipart_abort(who, &input.upload_id, &op.path)
            .await
            .map_err(object_error)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn mp_list_parts(
        &self,
        who: Caller,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let who = &who;
        let input = req.input;
        let op = names::object(&input.bucket, &input.key)?;
        let after = input.part_number_marker.unwrap_or(0);
        let max = input.max_parts.unwrap_or(1000).clamp(1, 1000) as usize;
        let all = self
            .vfs
            .multipart_parts(who, &input.upload_id, &op.path)
            .await
            .map_err(object_error)?;
        let rest: Vec<_> = all
            .into_iter()
            .filter(|p| p.number > i64::from(after))
            .collect();
        let truncated = rest.len() > max;
        let parts: Vec<Part> = rest
            .into_iter()
            .take(max)
            .map(|p| {
                let sums = checksum::of_part(p.checksums.as_deref());
                Part {
                    part_number: Some(p.number as i32),
                    size: Some(p.size),
                    e_tag: Some(ETag::Strong(p.etag)),
                    checksum_crc32: sums.checksum_crc32,
                    checksum_crc32c: sums.checksum_crc32c,
                    checksum_crc64nvme: sums.checksum_crc64nvme,
                    checksum_sha1: sums.checksum_sha1,
                    checksum_sha256: sums.checksum_sha256,
                    last_modified: Some(ts(std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(p.mtime_ms.max(0) as u64))),
                }
            })
            .collect();
        let next = parts.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: Some(after),
            next_part_number_marker: truncated.then_some(next).flatten(),
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    pub(super) async fn mp_list_uploads(
        &self,
        who: Caller,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let who = &who;
        let input = req.input;
        let bucket_path = self.require_bucket(who, &input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_uploads.unwrap_or(1000).clamp(1, 1000) as usize;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let mut rows = self
            .vfs
            .multipart_list(
                who,
                &bucket_path,
                &prefix,
                &key_marker,
                input.upload_id_marker.as_deref(),
                max + 1,
            )
            .await
            .map_err(object_error)?;
        let truncated = rows.len() > max;
        rows.truncate(max);
        let key_of = |path: &str| {
            path.strip_prefix(&format!("{bucket_path}/"))
                .unwrap_or(path)
                .to_string()
        };
        let last = rows.last().map(|u| (key_of(&u.path), u.id.clone()));
        let uploads = rows
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(key_of(&u.path)),
                upload_id: Some(u.id),
                initiator: Some(Initiator {
                    display_name: Some(u.owner.clone()),
                    id: Some(u.owner.clone()),
                }),
                owner: Some(Owner {
                    display_name: Some(u.owner.clone()),
                    id: Some(u.owner),
                }),
                initiated: Some(ts(std::time::UNIX_EPOCH
                    + std::time::Duration::from_millis(u.created_ms.max(0) as u64))),
                ..Default::default()
            })
            .collect();
        let (next_key, next_id) = match last {
            Some((k, id)) if truncated => (Some(k), Some(id)),
            _ => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            max_uploads: Some(max as i32),
            uploads: Some(uploads),
            is_truncated: Some(truncated),
            ..Default::default()
        }))
    }
}
