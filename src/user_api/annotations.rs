//! `POST /api/user/v1/tags`: a file's or folder's tags and description, set through the core
//! (`Vfs::set_tags`, `Vfs::set_description`: the right to change the entry, no lock of another).

use http::{Request, Response, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;

use super::body::read_json;
use super::errors::{error, from_vfs, ErrorReply};
use super::files::{one, EntryView};
use crate::vfs::{Caller, VPath, Vfs};
use crate::wire::{ReqBody, RespBody};

/// Largest tags request (ten tags and a 4096-character description fit with room).
const MAX_BODY: usize = 64 * 1024;

/// New tags, a new description, or both; each given replaces the old one whole.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    path: String,
    /// `[key, value]` pairs (at most 10; empty: none).
    tags: Option<Vec<(String, String)>>,
    /// Free text (empty: none).
    description: Option<String>,
}

/// Replaces the tags and/or the description of one entry; answers the entry.
#[utoipa::path(post, path = "/api/user/v1/tags", operation_id = "set_tags", request_body = TagsBody,
    responses((status = 200, body = EntryView), (status = 400, body = ErrorReply),
              (status = 403, body = ErrorReply), (status = 404, body = ErrorReply),
              (status = 423, body = ErrorReply)))]
pub async fn set(vfs: &Vfs, caller: &Caller, req: Request<ReqBody>) -> Response<RespBody> {
    let b: TagsBody = match read_json(req, MAX_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let path = match VPath::parse(&b.path) {
        Ok(p) => p,
        Err(e) => return from_vfs(e),
    };
    if b.tags.is_none() && b.description.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "give tags, description or both",
        );
    }
    // both checked before either is written, so a bad one changes nothing
    let checked = b
        .tags
        .as_deref()
        .map_or(Ok(()), crate::vfs::tags::check_tags)
        .and_then(|_| {
            b.description
                .as_deref()
                .map_or(Ok(()), |d| crate::vfs::tags::check_description(d.trim()))
        });
    if let Err(e) = checked {
        return from_vfs(e);
    }
    if let Some(t) = &b.tags {
        if let Err(e) = vfs.set_tags(caller, &path, t).await {
            return from_vfs(e);
        }
    }
    if let Some(d) = &b.description {
        if let Err(e) = vfs.set_description(caller, &path, Some(d)).await {
            return from_vfs(e);
        }
    }
    one(vfs, caller, &path, StatusCode::OK).await
}
