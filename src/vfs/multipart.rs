//! Multipart uploads: parts stream to a staging area outside the visible tree and are
//! assembled, in order, into one atomic upload on completion.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};

use super::upload::{to_the_end, Sink};
use super::{
    headers_from, headers_json, Caller, CustomerKey, Entry, UploadOptions, VPath, Vfs, VfsError,
};
use crate::store::{now_ms, PartRow, UploadRow};

/// Smallest part S3 accepts, except for the last one.
pub const MIN_PART_SIZE: i64 = 5 * 1024 * 1024;
/// Highest part number S3 allows.
pub const MAX_PART_NUMBER: i64 = 10_000;

/// A part named by the client in CompleteMultipartUpload.
#[derive(Clone, Debug)]
pub struct CompletedPart {
    /// Part number.
    pub number: i64,
    /// ETag the client got for it (hex MD5, quotes removed).
    pub etag: String,
}

/// A part being received; dropped without `commit`, it leaves nothing.
pub struct PartUpload {
    vfs: Vfs,
    upload_id: String,
    number: i64,
    sink: Sink,
    checksums: Option<String>,
}

impl PartUpload {
    /// The hex MD5 the client announced (Content-MD5): a part whose bytes differ is refused
    /// with `BadDigest` before it replaces anything.
    pub fn expect_md5(&mut self, md5: String) {
        self.sink.expected_md5 = Some(md5);
    }

    /// The flexible checksums the adapter computed (`x-amz-checksum-*` -> value), kept with
    /// the part for ListParts and the object's composite checksum.
    pub fn set_checksums(&mut self, sums: BTreeMap<String, String>) {
        self.checksums = headers_json(&sums);
    }

    /// Appends a chunk of the part.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), VfsError> {
        self.sink.write(chunk).await
    }

    /// Stores the part and records it.
    pub async fn commit(&mut self) -> Result<PartRow, VfsError> {
        let mut sink = self.sink.take();
        let (vfs, upload_id, number) = (self.vfs.clone(), self.upload_id.clone(), self.number);
        let checksums = self.checksums.take();
        to_the_end(async move {
            let (md5, size) = sink.seal().await?;
            sink.close().await?;
            let row = PartRow {
                number,
                size: size as i64,
                etag: md5,
                mtime_ms: now_ms(),
                checksums,
                sealed: sink.wrapped.take(),
            };
            vfs.store.put_part(&upload_id, &row).await?;
            Ok(row)
        })
        .await
    }
}

/// The preconditions of a write that takes no other options (S3 CompleteMultipartUpload's
/// If-None-Match: * and If-Match), checked before and again inside the commit.
#[derive(Clone, Debug, Default)]
pub struct Preconditions {
    /// Nothing may be at the path.
    pub if_none_match_any: bool,
    /// Some file must be at the path.
    pub if_match_any: bool,
    /// The file at the path must have this ETag.
    pub if_match: Option<String>,
}

/// Where part `number` of upload `id` is staged.
pub use crate::config::DEFAULT_UPLOADS_PER_USER;

/// Whether `c` is the user who started upload `u`: the same name, and the same user behind
/// it (a user removed and added again under the name is someone else).
pub(super) fn started_by(u: &UploadRow, c: &Caller) -> bool {
    !c.user.is_empty() && u.owner == c.user && u.owner_uid == u.owner_uid_now
}

pub(super) fn part_key(upload: &str, number: i64) -> String {
    format!("{upload}/{number:05}")
}

impl Vfs {
    /// Starts a multipart upload of `path`; the object is created only on completion. With
    /// the S3 client's `key` (SSE-C) every part and the completion must come with it too:
    /// only a salted fingerprint of it is recorded.
    pub async fn multipart_start(
        &self,
        caller: &Caller,
        path: &VPath,
        (content_type, mut headers): (Option<String>, BTreeMap<String, String>),
        key: Option<&CustomerKey>,
    ) -> Result<String, VfsError> {
        if path.parent().is_root() {
            return Err(VfsError::Conflict("objects live inside a bucket"));
        }
        let opts = UploadOptions {
            create_parents: true,
            content_type,
            ..Default::default()
        };
        self.check_write(caller, path, &opts).await?;
        if let Some(ct) = opts.content_type {
            headers.insert("content-type".into(), ct);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let max = self.uploads_max_per_user;
        let recorded = self
            .store
            .insert_upload(
                &id,
                path.as_str(),
                (&caller.user, max),
                (
                    headers_json(&headers).as_deref(),
                    key.map(CustomerKey::fingerprint).as_deref(),
                ),
            )
            .await?;
        if !recorded {
            return Err(VfsError::TooManyUploads(max));
        }
        Ok(id)
    }

    /// The upload row, if it exists and targets `path`.
    pub async fn multipart_get(
        &self,
        caller: &Caller,
        id: &str,
        path: &VPath,
    ) -> Result<UploadRow, VfsError> {
        // only its initiator (or an administrator) may use an upload
        match self.store.upload_row(id).await? {
            Some(u) if u.path == path.as_str() && (caller.is_admin || started_by(&u, caller)) => {
                Ok(u)
            }
            _ => Err(VfsError::NoSuchUpload),
        }
    }

    /// Starts receiving part `number` of upload `id`, with the client's `key` when the upload
    /// was started with one (SSE-C): the part is sealed under it.
    pub async fn multipart_part(
        &self,
        caller: &Caller,
        (id, path): (&str, &VPath),
        number: i64,
        expected_size: Option<u64>,
        key: Option<&CustomerKey>,
    ) -> Result<PartUpload, VfsError> {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(VfsError::InvalidArgument("part numbers are 1 to 10000"));
        }
        let upload = self.multipart_get(caller, id, path).await?;
        Self::check_upload_key(&upload, key)?;
        // parts count against the quota as they arrive, with every other part staged for the
        // same group, so unfinished uploads cannot hold more than the quota
        let limit = match self.store.bytes_left(path.as_str()).await? {
            Some((group, left)) => {
                let room = (left - self.store.staged_bytes(&group).await?).max(0) as u64;
                if expected_size.is_some_and(|n| n > room) {
                    return Err(VfsError::QuotaExceeded(group));
                }
                Some((group, room))
            }
            None => None,
        };
        let writer = self.temp(&part_key(id, number), true).await?;
        let mut sink = Sink::new(writer, expected_size, format!("upload {id} part {number}"));
        if let Some((data, wrapped)) = self.sealing_for(path, key).await? {
            sink.seal_with(&data, wrapped);
        }
        if let Some((group, room)) = limit {
            sink.limit_to(group, room);
        }
        Ok(PartUpload {
            vfs: self.clone(),
            upload_id: id.to_string(),
            number,
            sink,
            checksums: None,
        })
    }

    /// Parts received so far.
    pub async fn multipart_parts(
        &self,
        caller: &Caller,
        id: &str,
        path: &VPath,
    ) -> Result<Vec<PartRow>, VfsError> {
        self.multipart_get(caller, id, path).await?;
        Ok(self.store.parts(id).await?)
    }

    /// A page of at most `limit` uploads in progress below `dir` whose name starts with
    /// `prefix`, by name then start time: those after the name `after` (relative to `dir`),
    /// or, with `after_upload` too, after that upload of that name (S3's key and upload-id
    /// markers).
    pub async fn multipart_list(
        &self,
        _caller: &Caller,
        dir: &VPath,
        prefix: &str,
        after: &str,
        after_upload: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UploadRow>, VfsError> {
        let lo = format!("{dir}/{prefix}");
        let hi = format!("{lo}{}", char::MAX);
        let after_path = if after.is_empty() {
            String::new()
        } else {
            format!("{dir}/{after}")
        };
        // an upload-id marker counts only for an upload of the key marker's name
        let marker = match after_upload {
            Some(id) if !after_path.is_empty() => self
                .store
                .upload_row(id)
                .await?
                .filter(|u| u.path == after_path),
            _ => None,
        };
        let cursor = match &marker {
            Some(u) => (after_path.as_str(), u.created_ms, u.id.as_str()),
            None => (after_path.as_str(), i64::MAX, ""),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self.store.uploads_in_range(&lo, &hi, cursor, limit).await?)
    }

    /// Assembles the named parts, in order, into the object: one atomic commit. An upload
    /// started with an SSE-C key completes only with it (its parts open with nothing else),
    /// into an object sealed under it.
    pub async fn multipart_complete(
        &self,
        caller: &Caller,
        (peer, key): (Option<&super::replica::Peer>, Option<&CustomerKey>),
        id: &str,
        path: &VPath,
        (parts, when): (&[CompletedPart], &Preconditions),
    ) -> Result<Entry, VfsError> {
        let upload = self.multipart_get(caller, id, path).await?;
        Self::check_upload_key(&upload, key)?;
        if parts.is_empty() {
            return Err(VfsError::InvalidPart(
                "at least one part is required".into(),
            ));
        }
        let stored: BTreeMap<i64, PartRow> = self
            .store
            .parts(id)
            .await?
            .into_iter()
            .map(|p| (p.number, p))
            .collect();
        let mut chosen = Vec::with_capacity(parts.len());
        let mut md5s = Md5::new();
        if parts.windows(2).any(|w| w[1].number <= w[0].number) {
            return Err(VfsError::InvalidPartOrder);
        }
        for (i, p) in parts.iter().enumerate() {
            let Some(row) = stored.get(&p.number) else {
                // its parts went with it: a racing completion or an abort ended the upload
                if self.multipart_get(caller, id, path).await.is_err() {
                    return Err(VfsError::NoSuchUpload);
                }
                return Err(VfsError::InvalidPart(format!(
                    "part {} was not uploaded",
                    p.number
                )));
            };
            if !row.etag.eq_ignore_ascii_case(p.etag.trim_matches('"')) {
                return Err(VfsError::InvalidPart(format!(
                    "part {} has another ETag",
                    p.number
                )));
            }
            if i + 1 < parts.len() && row.size < MIN_PART_SIZE {
                return Err(VfsError::EntityTooSmall);
            }
            md5s.update(hex::decode(&row.etag).unwrap_or_default());
            chosen.push(row.clone());
        }
        let total: i64 = chosen.iter().map(|p| p.size).sum();
        let mut headers = headers_from(upload.headers.as_deref());
        let content_type = headers.remove("content-type");
        let opts = UploadOptions {
            create_new: when.if_none_match_any,
            must_exist: when.if_match_any,
            if_match: when.if_match.clone(),
            create_parents: true,
            expected_size: Some(total as u64),
            content_type,
            headers,
            etag: Some(format!("{}-{}", hex::encode(md5s.finalize()), chosen.len())),
            customer_key: key.cloned(),
            ..Default::default()
        };
        self.assemble(caller, peer, id, path, &chosen, opts).await
    }

    /// Streams the staged `parts` of upload `id`, in order, into one atomic write of `path`
    /// (the commit every other write uses) and ends the upload with it.
    pub(super) async fn assemble(
        &self,
        caller: &Caller,
        peer: Option<&super::replica::Peer>,
        id: &str,
        path: &VPath,
        parts: &[PartRow],
        opts: UploadOptions,
    ) -> Result<Entry, VfsError> {
        // the client's key (SSE-C) opens the parts it sealed, and seals the object
        let customer = opts.customer_key.clone();
        let opts = UploadOptions {
            completes_upload: Some(id.to_string()),
            ..opts
        };
        let mut up = self.receive(caller, peer, path, opts).await?;
        let streamed: Result<(), VfsError> = async {
            for p in parts {
                let reader = self.staging.reader(&part_key(id, p.number)).await?;
                let size = p.size as u64;
                let mut stream = match &p.sealed {
                    Some(w) => self
                        .download(
                            super::Source::Store(reader),
                            size,
                            (Some(w), customer.as_ref()),
                        )?
                        .into_stream(0..size)
                        .await?
                        .boxed(),
                    None => reader.into_bytes_stream(0..size).await?.boxed(),
                };
                while let Some(chunk) = stream.try_next().await.map_err(|e| {
                    let kind = match e.kind() {
                        std::io::ErrorKind::NotFound => opendal::ErrorKind::NotFound,
                        _ => opendal::ErrorKind::Unexpected,
                    };
                    opendal::Error::new(kind, e.to_string())
                })? {
                    up.write(chunk).await?;
                }
            }
            Ok(())
        }
        .await;
        match streamed {
            // a completion racing this one ended the upload and removed its parts first
            Err(VfsError::Storage(e)) if e.kind() == opendal::ErrorKind::NotFound => {
                return Err(VfsError::NoSuchUpload)
            }
            r => r?,
        }
        // the object and the end of its upload go together, whatever the client does
        let (vfs, id) = (self.clone(), id.to_string());
        to_the_end(async move {
            let entry = match up.commit().await {
                // another completion, or an abort, ended the upload first
                Err(VfsError::Conflict(crate::store::UPLOAD_GONE)) => {
                    return Err(VfsError::NoSuchUpload)
                }
                r => r?,
            };
            vfs.multipart_discard(&id).await?;
            Ok(entry)
        })
        .await
    }

    /// Abandons an upload and deletes its parts.
    pub async fn multipart_abort(
        &self,
        caller: &Caller,
        id: &str,
        path: &VPath,
    ) -> Result<(), VfsError> {
        self.multipart_get(caller, id, path).await?;
        self.multipart_discard(id).await
    }

    /// Removes the staged parts of uploads the store has already forgotten (those of a
    /// removed user); a failure is logged, and the folder stays for `kura fsck` to find.
    pub async fn discard_staged(&self, ids: &[String]) {
        for id in ids {
            if let Err(e) = self
                .staging
                .delete_with(&format!("{id}/"))
                .recursive(true)
                .await
            {
                tracing::warn!(upload = %id, error = %e, "could not remove a dropped upload's parts");
            }
        }
    }

    pub(super) async fn multipart_discard(&self, id: &str) -> Result<(), VfsError> {
        self.store.delete_upload(id).await?;
        self.staging
            .delete_with(&format!("{id}/"))
            .recursive(true)
            .await?;
        Ok(())
    }

    /// Removes uploads started more than `max_age` ago; returns how many.
    pub async fn multipart_expire(&self, max_age: std::time::Duration) -> Result<usize, VfsError> {
        let cutoff = now_ms() - max_age.as_millis() as i64;
        let stale = self.store.uploads_older_than(cutoff).await?;
        for u in &stale {
            self.multipart_discard(&u.id).await?;
        }
        Ok(stale.len())
    }
}
