//! `GET`, `POST /api/user/v1/shares` and `DELETE /api/user/v1/shares/{id}`: a user's own share
//! links, made, listed and revoked through the same service (`crate::share_links::Shares`) as
//! the admin API and the CLI, acting as the signed-in user (her read right, or write for a
//! drop box, decides).

use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::read_json;
use super::errors::{error, from_vfs, ErrorReply};
use crate::share_links::{parse_duration, ShareError, ShareRow, ShareSpec, Shares, URL_PREFIX};
use crate::vfs::Caller;
use crate::wire::{ReqBody, RespBody};

/// Largest share request.
const MAX_BODY: usize = 8 * 1024;

/// A new share link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    /// The file or folder, `/bucket/folder/name`.
    path: String,
    /// Visitors must give it.
    password: Option<String>,
    /// Lifetime: `7d`, `12h`, `30m`, `2w` or seconds.
    expires: Option<String>,
    /// Most downloads (at least 1).
    max_downloads: Option<u64>,
    /// A drop box: visitors may only add files to the folder.
    drop_box: Option<bool>,
}

/// One of the user's share links (never its token or password).
#[derive(Serialize, ToSchema)]
pub struct ShareView {
    id: String,
    path: String,
    /// It asks for a password.
    password: bool,
    expires_ms: Option<i64>,
    max_downloads: Option<i64>,
    downloads: i64,
    drop_box: bool,
    created_ms: i64,
}

/// A link just made: its URL path holds the token, shown only in this answer.
#[derive(Serialize, ToSchema)]
pub struct CreatedShareView {
    share: ShareView,
    /// `/s/<token>`, on this server's origin.
    url: String,
}

fn view(r: ShareRow) -> ShareView {
    ShareView {
        id: r.id,
        path: r.path,
        password: r.password_hash.is_some(),
        expires_ms: r.expires_ms,
        max_downloads: r.max_downloads,
        downloads: r.downloads,
        drop_box: r.upload_only,
        created_ms: r.created_ms,
    }
}

/// A share-service refusal as a reply.
fn refused(e: ShareError) -> Response<RespBody> {
    match e {
        ShareError::NotFound => error(StatusCode::NOT_FOUND, "not_found", "no such share"),
        ShareError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid", &m),
        ShareError::Vfs(e) => from_vfs(e),
        e => {
            tracing::error!(error = %e, "share request failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

/// The caller's own share links.
#[utoipa::path(get, path = "/api/user/v1/shares", operation_id = "list_shares",
    responses((status = 200, body = [ShareView])))]
pub async fn list(shares: &Shares, caller: &Caller) -> Response<RespBody> {
    match shares.list(Some(&caller.user)).await {
        Ok(rows) => {
            let list: Vec<ShareView> = rows.into_iter().map(view).collect();
            super::json(
                StatusCode::OK,
                serde_json::json!({ "shares": list }).to_string(),
            )
        }
        Err(e) => refused(e),
    }
}

/// Makes a share link acting as the caller.
#[utoipa::path(post, path = "/api/user/v1/shares", operation_id = "create_share", request_body = ShareBody,
    responses((status = 201, body = CreatedShareView), (status = 400, body = ErrorReply),
              (status = 403, body = ErrorReply), (status = 404, body = ErrorReply)))]
pub async fn create(shares: &Shares, caller: &Caller, req: Request<ReqBody>) -> Response<RespBody> {
    if caller.is_anonymous() {
        return error(StatusCode::FORBIDDEN, "forbidden", "sign in to share");
    }
    let b: ShareBody = match read_json(req, MAX_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let expires = match b
        .expires
        .as_deref()
        .filter(|e| !e.is_empty())
        .map(parse_duration)
        .transpose()
    {
        Ok(d) => d,
        Err(e) => return refused(e),
    };
    let spec = ShareSpec {
        path: b.path,
        owner: caller.user.clone(),
        password: b.password.filter(|p| !p.is_empty()),
        expires,
        max_downloads: b.max_downloads,
        upload_only: b.drop_box.unwrap_or(false),
    };
    match shares.create(spec).await {
        Ok((row, token)) => super::json(
            StatusCode::CREATED,
            serde_json::json!(CreatedShareView {
                share: view(row),
                url: format!("{URL_PREFIX}{token}"),
            })
            .to_string(),
        ),
        Err(e) => refused(e),
    }
}

/// Revokes one of the caller's share links (another's answers 404, as a missing one).
#[utoipa::path(delete, path = "/api/user/v1/shares/{id}", operation_id = "revoke_share",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorReply)))]
pub async fn revoke(shares: &Shares, caller: &Caller, id: &str) -> Response<RespBody> {
    match shares.revoke(id, Some(&caller.user)).await {
        Ok(()) => {
            let mut r = Response::new(crate::wire::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => refused(e),
    }
}
