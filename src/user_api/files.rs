//! `GET /api/user/v1/buckets`, `GET .../files?path=` and `GET .../file?path=`: what the user
//! may see, one keyset page at a time, with owner, mode, lock and the buckets' quota meters.

use std::time::UNIX_EPOCH;

use http::{Response, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::errors::{error, from_vfs, ErrorReply};
use super::Params;
use crate::vfs::locks::Lock;
use crate::vfs::{Caller, Entry, VPath, Vfs};
use crate::wire::RespBody;

/// Entries per page unless the caller asks for fewer or more.
const DEFAULT_LIMIT: usize = 1000;
/// Most entries one page holds.
const MAX_LIMIT: usize = 5000;

/// The WebDAV lock bearing on an entry.
#[derive(Serialize, ToSchema)]
pub struct LockView {
    /// The user holding it.
    holder: Option<String>,
    /// When it expires (ms since the epoch); null: never.
    expires_ms: Option<i64>,
    /// `0` or `infinity`.
    depth: &'static str,
    /// A shared lock (else exclusive).
    shared: bool,
}

/// One file or folder as the app shows it.
#[derive(Serialize, ToSchema)]
pub struct EntryView {
    name: String,
    /// Absolute path, `/bucket/folder/name`.
    path: String,
    folder: bool,
    /// Bytes (0 for folders).
    size: u64,
    modified_ms: i64,
    etag: String,
    /// MIME type (empty for folders).
    content_type: String,
    owner: Option<String>,
    group: Option<String>,
    /// Permission bits, octal (`0644`).
    mode: String,
    /// The lock bearing on it, if any.
    lock: Option<LockView>,
    /// Its tags as `[key, value]` pairs, in the order they were set (omitted: none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<(String, String)>,
    /// Its description (omitted: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// A group's quota meter.
#[derive(Serialize, ToSchema)]
pub struct MeterView {
    group: String,
    /// Bytes used (current files and kept versions).
    used: u64,
    /// The quota in bytes; null: no quota.
    quota: Option<u64>,
}

/// A bucket the user may enter.
#[derive(Serialize, ToSchema)]
pub struct BucketView {
    name: String,
    owner: Option<String>,
    group: Option<String>,
    mode: String,
    modified_ms: i64,
    /// Its group's meter; null when no group pays for it.
    quota: Option<MeterView>,
}

/// The buckets the user may enter.
#[derive(Serialize, ToSchema)]
pub struct BucketsView {
    buckets: Vec<BucketView>,
}

/// One page of a folder, by name.
#[derive(Serialize, ToSchema)]
pub struct PageView {
    path: String,
    entries: Vec<EntryView>,
    /// Pass as `after` for the next page; null on the last.
    next: Option<String>,
}

fn ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl EntryView {
    /// The view of `e` with the lock bearing on it.
    pub fn new(e: Entry, lock: Option<Lock>) -> EntryView {
        let tags = crate::vfs::tags::tags_of(&e.headers);
        let description = crate::vfs::tags::description_of(&e.headers).map(str::to_string);
        EntryView {
            tags,
            description,
            name: e.path.name().to_string(),
            path: e.path.to_string(),
            folder: e.is_dir,
            size: if e.is_dir { 0 } else { e.size },
            modified_ms: ms(e.mtime),
            etag: e.etag,
            content_type: if e.is_dir {
                String::new()
            } else {
                e.content_type
            },
            owner: e.owner,
            group: e.group,
            mode: format!("{:04o}", e.mode & 0o7777),
            lock: lock.map(|l| LockView {
                holder: l.principal,
                expires_ms: l.timeout_at.map(ms),
                depth: if l.deep { "infinity" } else { "0" },
                shared: l.shared,
            }),
        }
    }
}

/// `entries` with their locks, as views.
pub async fn views(
    vfs: &Vfs,
    caller: &Caller,
    entries: Vec<Entry>,
) -> Result<Vec<EntryView>, crate::vfs::VfsError> {
    let paths: Vec<VPath> = entries.iter().map(|e| e.path.clone()).collect();
    let locks = vfs.locks_bearing_on(caller, &paths).await?;
    Ok(entries
        .into_iter()
        .zip(locks)
        .map(|(e, l)| EntryView::new(e, l))
        .collect())
}

/// The `path` query parameter, parsed by the core's rules.
#[allow(clippy::result_large_err)]
pub fn path_param(params: &Params, name: &str) -> Result<VPath, Response<RespBody>> {
    let Some(p) = params.get(name) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid",
            &format!("{name} is required"),
        ));
    };
    VPath::parse(p).map_err(from_vfs)
}

/// The buckets the caller may enter, with their quota meters.
#[utoipa::path(get, path = "/api/user/v1/buckets", responses((status = 200, body = BucketsView)))]
pub async fn buckets(vfs: &Vfs, caller: &Caller) -> Response<RespBody> {
    let list = match vfs.list(caller, &VPath::root()).await {
        Ok(l) => l,
        Err(e) => return from_vfs(e),
    };
    let mut buckets = Vec::with_capacity(list.len());
    for b in list.into_iter().filter(|e| e.is_dir) {
        let quota = match vfs.meter(caller, &b.path).await {
            Ok(m) => m.map(|(group, used, quota)| MeterView { group, used, quota }),
            Err(e) => return from_vfs(e),
        };
        buckets.push(BucketView {
            name: b.path.name().to_string(),
            owner: b.owner,
            group: b.group,
            mode: format!("{:04o}", b.mode & 0o7777),
            modified_ms: ms(b.mtime),
            quota,
        });
    }
    super::json(
        StatusCode::OK,
        serde_json::json!(BucketsView { buckets }).to_string(),
    )
}

/// One page of a folder, by name.
#[utoipa::path(get, path = "/api/user/v1/files",
    params(("path" = String, Query, description = "the folder"),
           ("after" = Option<String>, Query, description = "the previous page's next"),
           ("limit" = Option<u32>, Query, description = "1 to 5000, default 1000"),
           ("sort" = Option<String>, Query, description = "only `name`")),
    responses((status = 200, body = PageView), (status = 400, body = ErrorReply),
              (status = 403, body = ErrorReply), (status = 404, body = ErrorReply)))]
pub async fn list(vfs: &Vfs, caller: &Caller, params: &Params) -> Response<RespBody> {
    let dir = match path_param(params, "path") {
        Ok(p) => p,
        Err(r) => return r,
    };
    if params.get("sort").is_some_and(|s| s != "name") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "only sort=name is served; sort a page by size or date in the app",
        );
    }
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "limit is a number from 1 to 5000",
            )
        }
    };
    // a folder's name sorts with its `/` (the core's key order), so `next` carries it
    let after = params.get("after").unwrap_or_default();
    if after.trim_end_matches('/').contains('/') || after.ends_with("//") || after.contains('\0') {
        return error(StatusCode::BAD_REQUEST, "invalid", "after is one name");
    }
    // one more than the page says whether another follows
    let mut page = match vfs.list_page(caller, &dir, "", after, limit + 1).await {
        Ok(p) => p,
        Err(e) => return from_vfs(e),
    };
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|e| match e.is_dir {
            true => format!("{}/", e.path.name()),
            false => e.path.name().to_string(),
        })
    } else {
        None
    };
    match views(vfs, caller, page).await {
        Ok(entries) => super::json(
            StatusCode::OK,
            serde_json::json!(PageView {
                path: dir.to_string(),
                entries,
                next
            })
            .to_string(),
        ),
        Err(e) => from_vfs(e),
    }
}

/// One entry.
#[utoipa::path(get, path = "/api/user/v1/file", params(("path" = String, Query)),
    responses((status = 200, body = EntryView), (status = 404, body = ErrorReply)))]
pub async fn stat(vfs: &Vfs, caller: &Caller, params: &Params) -> Response<RespBody> {
    let path = match path_param(params, "path") {
        Ok(p) => p,
        Err(r) => return r,
    };
    one(vfs, caller, &path, StatusCode::OK).await
}

/// The entry at `path` as the answer, with `status`.
pub async fn one(
    vfs: &Vfs,
    caller: &Caller,
    path: &VPath,
    status: StatusCode,
) -> Response<RespBody> {
    let entry = match vfs.stat(caller, path).await {
        Ok(e) => e,
        Err(e) => return from_vfs(e),
    };
    match views(vfs, caller, vec![entry]).await {
        Ok(mut v) => match v.pop() {
            Some(view) => super::json(status, serde_json::json!(view).to_string()),
            None => error(StatusCode::NOT_FOUND, "not_found", "not found"),
        },
        Err(e) => from_vfs(e),
    }
}
