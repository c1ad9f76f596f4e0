//! Resumable uploads (the tus protocol's model): a file announced with its length, whose
//! bytes arrive in appends at the current offset, each staged as one part of a multipart
//! upload, and which becomes visible, whole and at once, through the same commit as every
//! other write when the last byte is in. State is in SQL and bytes in staging, so an upload
//! outlives its connections and the server.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::multipart::{part_key, started_by};
use super::upload::{to_the_end, Sink};
use super::{headers_from, headers_json, Caller, Entry, UploadOptions, VPath, Vfs, VfsError};
use crate::store::{now_ms, PartRow, ResumableRow};

/// Largest file a resumable upload may announce (tus `Tus-Max-Size`).
pub const MAX_LENGTH: u64 = 1 << 40;
/// An upload unused this long expires and its bytes are removed.
pub const IDLE: Duration = Duration::from_secs(24 * 3600);
/// The append's offset is not the upload's (tus: 409).
pub const OFFSET_MISMATCH: &str = "Upload-Offset is not the upload's offset";
/// Another append of the same upload is under way on this server.
pub const BUSY: &str = "another append of this upload is under way";

/// A resumable upload as its uploader sees it.
#[derive(Clone, Debug)]
pub struct Resumable {
    /// 128 random bits, hex.
    pub id: String,
    /// The file it will be.
    pub path: VPath,
    /// Bytes announced.
    pub length: u64,
    /// Bytes received.
    pub offset: u64,
    /// When it expires unless used again.
    pub expires: SystemTime,
    /// The file, once the last byte is in and committed.
    pub done: Option<Entry>,
}

impl Resumable {
    fn from_row(r: &ResumableRow, path: VPath) -> Resumable {
        Resumable {
            id: r.id.clone(),
            path,
            length: r.length.max(0) as u64,
            offset: r.offset.max(0) as u64,
            expires: UNIX_EPOCH + Duration::from_millis(r.touched_ms.max(0) as u64) + IDLE,
            done: None,
        }
    }
}

/// Uploads with an append in progress on this server.
fn busy() -> &'static Mutex<HashSet<String>> {
    static BUSY_SET: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    BUSY_SET.get_or_init(Default::default)
}

/// Marks an upload busy while it lives.
struct Busy(String);

impl Busy {
    fn take(id: &str) -> Result<Busy, VfsError> {
        let mut set = busy().lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(id.to_string()) {
            return Err(VfsError::Conflict(BUSY));
        }
        Ok(Busy(id.to_string()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        busy()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

impl Vfs {
    /// What a resumable upload to `path` (over `existing`) may still stage: what the quota
    /// leaves, plus what the commit gives back by replacing `existing` (none when the bucket
    /// keeps versions), less every byte staged for the group (this upload's parts included);
    /// `None` without a quota.
    async fn resumable_room(
        &self,
        path: &VPath,
        existing: Option<&Entry>,
    ) -> Result<Option<(String, i64)>, VfsError> {
        let Some((group, left)) = self.store.bytes_left(path.as_str()).await? else {
            return Ok(None);
        };
        let freed = self.freed_by_overwrite(path, existing).await? as i64;
        let room = left + freed - self.store.staged_bytes(&group).await?;
        Ok(Some((group, room)))
    }

    /// Starts a resumable upload of `length` bytes to `path`: the write rules, locks and the
    /// quota (the length against what the group has left, less what is staged for it) are
    /// checked now, and again when the file is committed. An empty file is committed now.
    pub async fn resumable_start(
        &self,
        c: &Caller,
        path: &VPath,
        length: u64,
        content_type: Option<String>,
    ) -> Result<Resumable, VfsError> {
        if length > MAX_LENGTH {
            return Err(VfsError::TooLarge("the upload is over the largest length"));
        }
        if path.parent().is_root() {
            return Err(VfsError::Conflict("files live inside a bucket"));
        }
        let opts = UploadOptions {
            create_parents: true,
            content_type,
            ..Default::default()
        };
        let (existing, _) = self.check_write(c, path, &opts).await?;
        self.check_unlocked(c, vec![(path.clone(), false)]).await?;
        if let Some((group, room)) = self.resumable_room(path, existing.as_ref()).await? {
            if length as i64 > room {
                return Err(VfsError::QuotaExceeded(group));
            }
        }
        let mut headers = std::collections::BTreeMap::new();
        if let Some(ct) = opts.content_type {
            headers.insert("content-type".to_string(), ct);
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        let max = self.uploads_max_per_user;
        let recorded = self
            .store
            .insert_resumable(
                &id,
                path.as_str(),
                (&c.user, max),
                headers_json(&headers).as_deref(),
                length as i64,
            )
            .await?;
        if !recorded {
            return Err(VfsError::TooManyUploads(max));
        }
        let mut up = self.resumable_get(c, &id).await?;
        if length == 0 {
            // complete at creation: tus clients (tus-js-client, Uppy) append nothing to it
            match self.resumable_commit(c, &id, path).await {
                Ok(entry) => up.done = Some(entry),
                Err(e) => {
                    if let Err(a) = self.resumable_abort(c, &id).await {
                        tracing::warn!(upload = %id, error = %a, "could not drop an empty upload");
                    }
                    return Err(e);
                }
            }
        }
        Ok(up)
    }

    /// The upload `id`, to its uploader only: to anyone else, as an expired or unknown id,
    /// it is `NotFound`.
    pub async fn resumable_get(&self, c: &Caller, id: &str) -> Result<Resumable, VfsError> {
        let (row, up) = match (
            self.store.resumable_row(id).await?,
            self.store.upload_row(id).await?,
        ) {
            (Some(r), Some(u)) if started_by(&u, c) => (r, u),
            _ => return Err(VfsError::NotFound),
        };
        if row.touched_ms + IDLE.as_millis() as i64 <= now_ms() {
            return Err(VfsError::NotFound);
        }
        Ok(Resumable::from_row(&row, VPath::parse(&up.path)?))
    }

    /// Appends `body` at `offset` (which must be the upload's offset), for a caller who may
    /// still write the file (the write rules are checked again). The bytes received are
    /// kept even when the body breaks off (a dropped connection), and this runs to its end
    /// even if the caller goes away; a body running past the announced length keeps nothing
    /// (`TooLarge`). The append that completes the upload commits the file; if that commit is
    /// refused, the append is undone so it can be sent again.
    pub async fn resumable_append<S, E>(
        &self,
        c: &Caller,
        id: &str,
        offset: u64,
        body: S,
    ) -> Result<Resumable, VfsError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let guard = Busy::take(id)?;
        let mut up = self.resumable_get(c, id).await?;
        if up.offset != offset {
            return Err(VfsError::Conflict(OFFSET_MISMATCH));
        }
        // rights change while an upload waits: bytes are staged (and charged to the group)
        // only for someone who may still write the file
        let opts = UploadOptions {
            create_parents: true,
            ..Default::default()
        };
        let (existing, _) = self.check_write(c, &up.path, &opts).await?;
        let row = self
            .store
            .resumable_row(id)
            .await?
            .ok_or(VfsError::NotFound)?;
        let number = row.parts + 1;
        let remaining = up.length - up.offset;
        let mut sink = Sink::new(
            self.temp(&part_key(id, number), true).await?,
            None,
            format!("resumable upload {id} part {number}"),
        );
        if let Some((key, wrapped)) = self.sealing_for(&up.path, None).await? {
            sink.seal_with(&key, wrapped);
        }
        if let Some((group, room)) = self.resumable_room(&up.path, existing.as_ref()).await? {
            sink.limit_to(group, room.max(0) as u64);
        }
        let (vfs, c, id) = (self.clone(), c.clone(), id.to_string());
        to_the_end(async move {
            let _guard = guard;
            let mut body = body;
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::info!(upload = %id, kept = written, error = %e, "an append broke off");
                        break;
                    }
                };
                written += chunk.len() as u64;
                if written > remaining {
                    sink.abort().await;
                    return Err(VfsError::TooLarge("the body runs past Upload-Length"));
                }
                sink.write(chunk).await?;
            }
            if written == 0 && up.offset < up.length {
                sink.abort().await;
                return Ok(up);
            }
            if written > 0 {
                let (md5, size) = sink.seal().await?;
                sink.close().await?;
                let part = PartRow {
                    number,
                    size: size as i64,
                    etag: md5,
                    mtime_ms: now_ms(),
                    checksums: None,
                    sealed: sink.wrapped.take(),
                };
                if let Err(e) = vfs
                    .store
                    .append_resumable(&id, offset as i64, &part)
                    .await
                {
                    vfs.drop_staged(&id, number).await;
                    return Err(e.into());
                }
                up.offset += size;
            } else {
                sink.abort().await;
            }
            if up.offset == up.length {
                match vfs.resumable_commit(&c, &id, &up.path).await {
                    Ok(entry) => up.done = Some(entry),
                    Err(e) => {
                        // the next try sends this append again
                        if written > 0 {
                            vfs.undo_append(&id, number).await;
                        }
                        return Err(e);
                    }
                }
            }
            Ok(up)
        })
        .await
    }

    /// Makes the file of a complete upload visible: the staged parts, in order, through the
    /// commit of every write.
    async fn resumable_commit(
        &self,
        c: &Caller,
        id: &str,
        path: &VPath,
    ) -> Result<Entry, VfsError> {
        let up = self.store.upload_row(id).await?.ok_or(VfsError::NotFound)?;
        let parts = self.store.parts(id).await?;
        let mut headers = headers_from(up.headers.as_deref());
        let total: i64 = parts.iter().map(|p| p.size).sum();
        let opts = UploadOptions {
            create_parents: true,
            expected_size: Some(total as u64),
            content_type: headers.remove("content-type"),
            headers,
            ..Default::default()
        };
        self.assemble(c, None, id, path, &parts, opts).await
    }

    async fn undo_append(&self, id: &str, number: i64) {
        if let Err(e) = self.store.drop_part(id, number).await {
            tracing::warn!(upload = %id, error = %e, "could not undo an append");
            return;
        }
        self.drop_staged(id, number).await;
    }

    async fn drop_staged(&self, id: &str, number: i64) {
        if let Err(e) = self.staging.delete(&part_key(id, number)).await {
            tracing::warn!(upload = %id, error = %e, "could not remove a staged part");
        }
    }

    /// Ends an upload and removes its bytes (tus termination).
    pub async fn resumable_abort(&self, c: &Caller, id: &str) -> Result<(), VfsError> {
        self.resumable_get(c, id).await?;
        let _guard = Busy::take(id)?;
        self.multipart_discard(id).await
    }

    /// Removes uploads unused for `idle` (`IDLE` in service); returns how many. One with an
    /// append under way is left for the next sweep: its bytes are arriving (an upload is
    /// touched when an append ends), and removing it would leave that append's part behind.
    pub async fn resumable_expire(&self, idle: Duration) -> Result<usize, VfsError> {
        let stale = self
            .store
            .resumable_older_than(now_ms() - idle.as_millis() as i64)
            .await?;
        let mut removed = 0;
        for id in &stale {
            let Ok(_guard) = Busy::take(id) else { continue };
            self.multipart_discard(id).await?;
            removed += 1;
        }
        Ok(removed)
    }
}
