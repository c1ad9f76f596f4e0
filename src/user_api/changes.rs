//! `POST /api/user/v1/folders`, `rename`, `move`, `copy`, `delete` and `attributes`: each
//! change one core call per path, with the caller's rights; batches answer per path.

use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{read_json, MAX_JSON};
use super::errors::{error, from_vfs, reply_parts, ErrorReply};
use super::files::{one, EntryView};
use crate::vfs::{Caller, VPath, Vfs, VfsError};
use crate::wire::{ReqBody, RespBody};

/// Most paths one batch names.
const MAX_BATCH: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PathBody {
    path: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    path: String,
    to: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    sources: Vec<String>,
    to: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    paths: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributesBody {
    path: String,
    mode: Option<String>,
    group: Option<String>,
}

/// One path of a batch that was refused.
#[derive(Serialize, ToSchema)]
pub struct FailedView {
    path: String,
    /// The error code a single request would have answered.
    error: &'static str,
    message: String,
}

/// The outcome of a batch, path by path.
#[derive(Serialize, ToSchema)]
pub struct BatchView {
    done: Vec<String>,
    failed: Vec<FailedView>,
}

/// Parses every path of a batch first: one bad path refuses the whole request.
#[allow(clippy::result_large_err)]
fn parse_all(paths: &[String]) -> Result<Vec<VPath>, Response<RespBody>> {
    if paths.is_empty() || paths.len() > MAX_BATCH {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "name 1 to 1000 paths",
        ));
    }
    paths
        .iter()
        .map(|p| VPath::parse(p).map_err(from_vfs))
        .collect()
}

/// `{"done": [...], "failed": [{"path", "error", "message"}]}` from one result per path.
fn batch(results: Vec<(VPath, Result<(), VfsError>)>) -> Response<RespBody> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (p, r) in results {
        match r {
            Ok(()) => done.push(p.to_string()),
            Err(e) => {
                let (_, code, message) = reply_parts(e);
                failed.push(
                    serde_json::json!({ "path": p.to_string(), "error": code, "message": message }),
                );
            }
        }
    }
    super::json(
        StatusCode::OK,
        serde_json::json!({ "done": done, "failed": failed }).to_string(),
    )
}

/// A new folder.
#[utoipa::path(post, path = "/api/user/v1/folders", request_body = PathBody,
    responses((status = 201, body = EntryView), (status = 409, body = ErrorReply), (status = 403, body = ErrorReply)))]
pub async fn mkdir(vfs: &Vfs, caller: &Caller, req: Request<ReqBody>) -> Response<RespBody> {
    let b: PathBody = match read_json(req, MAX_JSON).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let path = match VPath::parse(&b.path) {
        Ok(p) => p,
        Err(e) => return from_vfs(e),
    };
    match vfs.mkdir(caller, &path).await {
        Ok(()) => one(vfs, caller, &path, StatusCode::CREATED).await,
        Err(e) => from_vfs(e),
    }
}

/// Refuses a target that exists (the API never replaces by a move or copy).
async fn vacant(vfs: &Vfs, caller: &Caller, to: &VPath) -> Result<(), VfsError> {
    match vfs.stat(caller, to).await {
        Ok(_) => Err(VfsError::Exists),
        Err(VfsError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Renames (or moves) one entry to a new full path.
#[utoipa::path(post, path = "/api/user/v1/rename", request_body = RenameBody,
    responses((status = 200, body = EntryView), (status = 409, body = ErrorReply), (status = 423, body = ErrorReply),
              (status = 507, body = ErrorReply)))]
pub async fn rename(vfs: &Vfs, caller: &Caller, req: Request<ReqBody>) -> Response<RespBody> {
    let b: RenameBody = match read_json(req, MAX_JSON).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (from, to) = match (VPath::parse(&b.path), VPath::parse(&b.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return from_vfs(e),
    };
    if let Err(e) = vacant(vfs, caller, &to).await {
        return from_vfs(e);
    }
    match vfs.rename(caller, &from, &to).await {
        Ok(()) => one(vfs, caller, &to, StatusCode::OK).await,
        Err(e) => from_vfs(e),
    }
}

/// `POST /move`, documented.
#[utoipa::path(post, path = "/api/user/v1/move", request_body = TransferBody,
    responses((status = 200, body = BatchView), (status = 400, body = ErrorReply)))]
pub async fn move_into(vfs: &Vfs, caller: &Caller, req: Request<ReqBody>) -> Response<RespBody> {
    transfer(vfs, caller, req, false).await
}

/// `POST /copy`, documented.
#[utoipa::path(post, path = "/api/user/v1/copy", request_body = TransferBody,
    responses((status = 200, body = BatchView), (status = 400, body = ErrorReply)))]
pub async fn copy_into(vfs: &Vfs, caller: &Caller, req: Request<ReqBody>) -> Response<RespBody> {
    transfer(vfs, caller, req, true).await
}

/// Moves (`copy` false) or copies each source into a folder.
async fn transfer(
    vfs: &Vfs,
    caller: &Caller,
    req: Request<ReqBody>,
    copy: bool,
) -> Response<RespBody> {
    let b: TransferBody = match read_json(req, MAX_JSON).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (sources, to) = match (parse_all(&b.sources), VPath::parse(&b.to)) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(r), _) => return r,
        (_, Err(e)) => return from_vfs(e),
    };
    let mut results = Vec::with_capacity(sources.len());
    for src in sources {
        let r = match VPath::parse(&format!(
            "{}/{}",
            to.as_str().trim_end_matches('/'),
            src.name()
        )) {
            Ok(dst) if src.is_root() => Err(VfsError::InvalidPath(format!("{dst}: the root"))),
            Ok(dst) => match vacant(vfs, caller, &dst).await {
                Ok(()) if copy => vfs.copy(caller, &src, &dst).await,
                Ok(()) => vfs.rename(caller, &src, &dst).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        results.push((src, r));
    }
    batch(results)
}

/// Deletes each path (files, or folders with all they hold) the way every delete goes.
#[utoipa::path(post, path = "/api/user/v1/delete", request_body = DeleteBody,
    responses((status = 200, body = BatchView), (status = 400, body = ErrorReply)))]
pub async fn delete(vfs: &Vfs, caller: &Caller, req: Request<ReqBody>) -> Response<RespBody> {
    let b: DeleteBody = match read_json(req, MAX_JSON).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let paths = match parse_all(&b.paths) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut results = Vec::with_capacity(paths.len());
    for p in paths {
        let r = vfs.delete(caller, &p).await;
        results.push((p, r));
    }
    batch(results)
}

/// chmod and/or chgrp.
#[utoipa::path(post, path = "/api/user/v1/attributes", request_body = AttributesBody,
    responses((status = 200, body = EntryView), (status = 403, body = ErrorReply)))]
pub async fn attributes(vfs: &Vfs, caller: &Caller, req: Request<ReqBody>) -> Response<RespBody> {
    let b: AttributesBody = match read_json(req, MAX_JSON).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let path = match VPath::parse(&b.path) {
        Ok(p) => p,
        Err(e) => return from_vfs(e),
    };
    let mode = match b.mode.as_deref().map(|m| u32::from_str_radix(m, 8)) {
        None => None,
        Some(Ok(m)) if m <= 0o7777 => Some(m),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "mode is an octal string such as \"0640\"",
            )
        }
    };
    if mode.is_none() && b.group.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "give mode, group or both",
        );
    }
    if let Some(g) = b.group.as_deref() {
        if let Err(e) = vfs.chown(caller, &path, None, Some(g)).await {
            return from_vfs(e);
        }
    }
    if let Some(m) = mode {
        if let Err(e) = vfs.chmod(caller, &path, m).await {
            return from_vfs(e);
        }
    }
    one(vfs, caller, &path, StatusCode::OK).await
}
