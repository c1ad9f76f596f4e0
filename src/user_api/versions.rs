//! `GET /api/user/v1/versions?path=`, `GET /api/user/v1/trash?bucket=` and
//! `POST /api/user/v1/restore`: a user's view of kept versions and deletes, and restoring one,
//! under the core's rules (what she may read, where she may write).

use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::errors::{error, from_vfs, ErrorReply};
use super::Params;
use crate::vfs::{Caller, VPath, Vfs};
use crate::wire::{ReqBody, RespBody};

/// Largest restore request body.
const MAX_BODY: usize = 8 * 1024;

/// One kept version or delete marker.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionView {
    id: String,
    size: i64,
    etag: String,
    delete_marker: bool,
    folder: bool,
    modified_ms: i64,
    replaced_ms: i64,
    delete_id: Option<String>,
}

/// One delete in the trash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TrashView {
    delete_id: String,
    path: String,
    folder: bool,
    deleted_ms: i64,
    files: i64,
    bytes: i64,
}

/// A path's versions, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionsView {
    versions: Vec<VersionView>,
}

/// The deletes in the trash, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeletesView {
    deletes: Vec<TrashView>,
}

/// What emptying the trash removed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PurgedView {
    removed: u64,
    bytes: i64,
}

/// What a restore made current again.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RestoredView {
    files: usize,
    folders: usize,
}

/// What to restore: `version` (an id of `versions`), or the latest delete; to `to`, or where
/// it was.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    path: String,
    version: Option<String>,
    to: Option<String>,
}

#[allow(clippy::result_large_err)]
fn path_param(params: &Params, name: &str) -> Result<VPath, Response<RespBody>> {
    let Some(p) = params.get(name) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid",
            &format!("{name} is required"),
        ));
    };
    VPath::parse(p).map_err(from_vfs)
}

/// The versions of a path the caller may read, newest first.
#[utoipa::path(get, path = "/api/user/v1/versions", params(("path" = String, Query)),
    responses((status = 200, body = VersionsView), (status = 400, body = ErrorReply),
              (status = 404, body = ErrorReply)))]
pub async fn versions(vfs: &Vfs, caller: &Caller, params: &Params) -> Response<RespBody> {
    let path = match path_param(params, "path") {
        Ok(p) => p,
        Err(r) => return r,
    };
    match vfs.versions(caller, &path).await {
        Ok(rows) => {
            let list: Vec<VersionView> = rows
                .into_iter()
                .map(|r| VersionView {
                    id: r.id,
                    size: r.size,
                    etag: r.etag,
                    delete_marker: r.marker,
                    folder: r.is_dir,
                    modified_ms: r.mtime_ms,
                    replaced_ms: r.archived_ms,
                    delete_id: r.batch,
                })
                .collect();
            super::json(
                StatusCode::OK,
                serde_json::json!(VersionsView { versions: list }).to_string(),
            )
        }
        Err(e) => from_vfs(e),
    }
}

/// The deletes the caller may see, newest first.
#[utoipa::path(get, path = "/api/user/v1/trash", operation_id = "list_trash",
    params(("bucket" = Option<String>, Query, description = "one bucket (default: all)")),
    responses((status = 200, body = DeletesView), (status = 400, body = ErrorReply)))]
pub async fn trash(vfs: &Vfs, caller: &Caller, params: &Params) -> Response<RespBody> {
    let bucket = match params.get("bucket") {
        Some(b) => match VPath::parse(&format!("/{}", b.trim_matches('/'))) {
            Ok(p) => Some(p),
            Err(e) => return from_vfs(e),
        },
        None => None,
    };
    match vfs.trash(caller, bucket.as_ref()).await {
        Ok(rows) => {
            let list: Vec<TrashView> = rows
                .into_iter()
                .map(|t| TrashView {
                    delete_id: t.batch,
                    path: t.path,
                    folder: t.is_dir,
                    deleted_ms: t.deleted_ms,
                    files: t.files,
                    bytes: t.bytes,
                })
                .collect();
            super::json(
                StatusCode::OK,
                serde_json::json!(DeletesView { deletes: list }).to_string(),
            )
        }
        Err(e) => from_vfs(e),
    }
}

/// Empties the trash (of one bucket, or all) now, as the core allows the caller (its
/// administrators: docs/versions.md); answers what was removed.
#[utoipa::path(delete, path = "/api/user/v1/trash", operation_id = "empty_trash",
    params(("bucket" = Option<String>, Query, description = "one bucket (default: all)")),
    responses((status = 200, body = PurgedView),
              (status = 403, body = ErrorReply, description = "not an administrator, or `csrf`")))]
pub async fn empty_trash(vfs: &Vfs, caller: &Caller, params: &Params) -> Response<RespBody> {
    let bucket = match params.get("bucket") {
        Some(b) => match VPath::parse(&format!("/{}", b.trim_matches('/'))) {
            Ok(p) => Some(p),
            Err(e) => return from_vfs(e),
        },
        None => None,
    };
    match vfs.empty_trash(caller, bucket.as_ref()).await {
        Ok(p) => super::json(
            StatusCode::OK,
            serde_json::json!(PurgedView {
                removed: p.rows,
                bytes: p.bytes
            })
            .to_string(),
        ),
        Err(e) => from_vfs(e),
    }
}

/// Restores a version, a deleted file or a whole deleted folder as the current version.
#[utoipa::path(post, path = "/api/user/v1/restore", request_body = RestoreRequest,
    responses((status = 200, body = RestoredView), (status = 400, body = ErrorReply),
              (status = 403, body = ErrorReply), (status = 404, body = ErrorReply),
              (status = 409, body = ErrorReply), (status = 507, body = ErrorReply)))]
pub async fn restore(vfs: &Vfs, caller: &Caller, req: Request<ReqBody>) -> Response<RespBody> {
    let r: RestoreRequest = match super::body::read_json(req, MAX_BODY).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (path, to) = match (
        VPath::parse(&r.path),
        r.to.as_deref().map(VPath::parse).transpose(),
    ) {
        (Ok(p), Ok(t)) => (p, t),
        (Err(e), _) | (_, Err(e)) => return from_vfs(e),
    };
    match vfs
        .restore(caller, &path, r.version.as_deref(), to.as_ref())
        .await
    {
        Ok(done) => super::json(
            StatusCode::OK,
            serde_json::json!(RestoredView {
                files: done.files,
                folders: done.folders
            })
            .to_string(),
        ),
        Err(e) => from_vfs(e),
    }
}
