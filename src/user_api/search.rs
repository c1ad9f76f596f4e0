//! `GET /api/user/v1/search?q=...&scope=/bucket/folder&cursor=...&limit=...`: one page of
//! the core's search for the caller, as JSON.

use std::time::UNIX_EPOCH;

use http::{Response, StatusCode};
use serde::Serialize;

use super::errors::{error, from_vfs, ErrorReply};
use super::Params;
use crate::vfs::search::SearchPage;
use crate::vfs::tags::{description_of, tags_of};
use crate::vfs::{Caller, Entry, VPath, Vfs};
use crate::wire::RespBody;

/// Entries per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 50;

/// One entry found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HitView {
    /// Path in the namespace (`/bucket/...`).
    pub path: String,
    /// Whether it is a folder.
    pub is_dir: bool,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Last modification, ms since the epoch.
    pub modified_ms: u64,
    /// Content type.
    pub content_type: String,
    /// Tags as [key, value] pairs.
    pub tags: Vec<(String, String)>,
    /// Description, if any.
    pub description: Option<String>,
}

/// One page of results.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SearchPage)]
pub struct PageView {
    /// Entries found, newest first.
    pub items: Vec<HitView>,
    /// Pass as `cursor` for the next page; null when nothing is left.
    pub next_cursor: Option<String>,
}

/// The JSON view of an entry found.
pub fn hit_view(e: Entry) -> HitView {
    HitView {
        path: e.path.to_string(),
        is_dir: e.is_dir,
        size: e.size,
        modified_ms: e
            .mtime
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        content_type: e.content_type.clone(),
        tags: tags_of(&e.headers),
        description: description_of(&e.headers).map(str::to_string),
        // headers other than these stay private to the protocols that set them
    }
}

/// The JSON view of a page.
pub fn page_view(p: SearchPage) -> PageView {
    PageView {
        items: p.hits.into_iter().map(hit_view).collect(),
        next_cursor: p.next,
    }
}

/// One page of the search for the caller (only what she may read).
#[utoipa::path(get, path = "/api/user/v1/search",
    params(("q" = String, Query, description = "words of names and descriptions, `tag:KEY=VALUE`, `tag:KEY`"),
           ("scope" = Option<String>, Query, description = "a folder to search below (default /)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
           ("limit" = Option<usize>, Query, description = "1 to 1000, default 50")),
    responses((status = 200, body = PageView), (status = 400, body = ErrorReply)))]
pub async fn search(vfs: &Vfs, caller: &Caller, params: &Params) -> Response<RespBody> {
    let Some(q) = params.get("q") else {
        return error(StatusCode::BAD_REQUEST, "invalid", "q is required");
    };
    let scope = match VPath::parse(params.get("scope").unwrap_or("/")) {
        Ok(p) => p,
        Err(e) => return from_vfs(e),
    };
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=crate::vfs::search::MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "limit is a number from 1 to 1000",
            )
        }
    };
    match vfs
        .search(caller, q, &scope, params.get("cursor"), limit)
        .await
    {
        Ok(page) => super::json(
            StatusCode::OK,
            serde_json::to_string(&page_view(page)).unwrap_or_default(),
        ),
        Err(e) => from_vfs(e),
    }
}
