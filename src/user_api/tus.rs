//! Resumable uploads with the tus 1.0 protocol (core, `creation`, `termination`,
//! `expiration`) under `/api/user/v1/uploads`: protocol headers in and out here, everything
//! else (rights, quota, offsets, staging, the commit) in the core's `resumable_*` calls.

use base64::Engine;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::errors::{error, from_vfs, ErrorReply};
use crate::delivery::headers::http_date;
use crate::vfs::resumable::{Resumable, MAX_LENGTH};
use crate::vfs::{Caller, VPath, Vfs};
use crate::wire::{empty, ReqBody, RespBody};

/// The protocol version spoken.
const VERSION: &str = "1.0.0";
/// Where uploads live (their URLs are this and `/{id}`).
pub const UPLOADS: &str = "/api/user/v1/uploads";
/// Longest `Upload-Metadata` header.
const MAX_METADATA: usize = 8 * 1024;

/// Answers a request to `/uploads` (`id` None) or `/uploads/{id}`.
pub async fn handle(
    vfs: &Vfs,
    caller: &Caller,
    req: Request<ReqBody>,
    id: Option<&str>,
) -> Response<RespBody> {
    let mut r = route(vfs, caller, req, id).await;
    r.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(VERSION));
    r
}

async fn route(
    vfs: &Vfs,
    caller: &Caller,
    req: Request<ReqBody>,
    id: Option<&str>,
) -> Response<RespBody> {
    if req.method() == Method::OPTIONS {
        return discovery();
    }
    if req
        .headers()
        .get("tus-resumable")
        .map(HeaderValue::as_bytes)
        != Some(VERSION.as_bytes())
    {
        let mut r = error(
            StatusCode::PRECONDITION_FAILED,
            "precondition",
            "Tus-Resumable: 1.0.0 is required",
        );
        r.headers_mut()
            .insert("tus-version", HeaderValue::from_static(VERSION));
        return r;
    }
    match (id, req.method().clone()) {
        (None, Method::POST) => create(vfs, caller, req.headers()).await,
        (Some(id), Method::HEAD) => head(vfs, caller, id).await,
        (Some(id), Method::PATCH) => append(vfs, caller, req, id).await,
        (Some(id), Method::DELETE) => terminate(vfs, caller, id).await,
        (None, _) => not_allowed("OPTIONS, POST"),
        (Some(_), _) => not_allowed("OPTIONS, HEAD, PATCH, DELETE"),
    }
}

/// HEAD: where the upload stands.
#[utoipa::path(head, path = "/api/user/v1/uploads/{id}",
    params(("id" = String, Path), ("Tus-Resumable" = String, Header)),
    responses((status = 200, description = "Upload-Offset, Upload-Length, Upload-Expires"),
              (status = 404, description = "no such upload of this user (or expired)"),
              (status = 412, description = "Tus-Resumable missing or not 1.0.0")))]
async fn head(vfs: &Vfs, caller: &Caller, id: &str) -> Response<RespBody> {
    match vfs.resumable_get(caller, id).await {
        Ok(u) => {
            let mut r = state(StatusCode::OK, &u);
            r.headers_mut()
                .insert("upload-length", HeaderValue::from(u.length));
            r
        }
        Err(e) => without_body(from_vfs(e)),
    }
}

/// DELETE: the upload and its staged bytes go (tus termination).
#[utoipa::path(delete, path = "/api/user/v1/uploads/{id}",
    params(("id" = String, Path), ("Tus-Resumable" = String, Header)),
    responses((status = 204, description = "terminated"), (status = 404, body = ErrorReply)))]
async fn terminate(vfs: &Vfs, caller: &Caller, id: &str) -> Response<RespBody> {
    match vfs.resumable_abort(caller, id).await {
        Ok(()) => no_content(),
        Err(e) => from_vfs(e),
    }
}

fn no_content() -> Response<RespBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn without_body(r: Response<RespBody>) -> Response<RespBody> {
    let (mut parts, _) = r.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, empty())
}

fn not_allowed(allow: &'static str) -> Response<RespBody> {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method",
        &format!("only {allow} here"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// OPTIONS: what this server speaks.
#[utoipa::path(options, path = "/api/user/v1/uploads",
    responses((status = 204, description = "Tus-Version, Tus-Extension, Tus-Max-Size")))]
fn discovery() -> Response<RespBody> {
    let mut r = no_content();
    let h = r.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(VERSION));
    h.insert(
        "tus-extension",
        HeaderValue::from_static("creation,termination,expiration"),
    );
    h.insert("tus-max-size", HeaderValue::from(MAX_LENGTH));
    r
}

/// An upload's offset and expiry, with `status` and no body.
fn state(status: StatusCode, u: &Resumable) -> Response<RespBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("upload-offset", HeaderValue::from(u.offset));
    if let Ok(v) = HeaderValue::from_str(&http_date(u.expires)) {
        h.insert("upload-expires", v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn number(headers: &HeaderMap, name: &str) -> Option<Result<u64, ()>> {
    headers.get(name).map(|v| {
        v.to_str()
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or(())
    })
}

/// `Upload-Metadata`: `key base64,key base64,...` (a key may come without a value).
fn metadata(headers: &HeaderMap) -> Result<Vec<(String, String)>, &'static str> {
    let Some(raw) = headers.get("upload-metadata") else {
        return Ok(Vec::new());
    };
    if raw.len() > MAX_METADATA {
        return Err("Upload-Metadata is over 8 KiB");
    }
    let raw = raw.to_str().map_err(|_| "Upload-Metadata is not ASCII")?;
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once(' ').unwrap_or((pair, ""));
        let v = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| "an Upload-Metadata value is not base64")?;
        let v = String::from_utf8(v).map_err(|_| "an Upload-Metadata value is not UTF-8")?;
        if out.iter().any(|(o, _)| o == k) {
            return Err("an Upload-Metadata key is repeated");
        }
        out.push((k.to_string(), v));
    }
    Ok(out)
}

/// POST: a new upload of `Upload-Length` bytes to `path` + `/` + `filename`.
#[utoipa::path(post, path = "/api/user/v1/uploads",
    params(("Tus-Resumable" = String, Header), ("Upload-Length" = u64, Header),
           ("Upload-Metadata" = String, Header, description = "path and filename (base64), optional filetype")),
    responses((status = 201, description = "Location of the upload, Upload-Expires"),
              (status = 400, body = ErrorReply), (status = 403, body = ErrorReply),
              (status = 412, body = ErrorReply), (status = 413, body = ErrorReply),
              (status = 423, body = ErrorReply), (status = 507, body = ErrorReply)))]
async fn create(vfs: &Vfs, caller: &Caller, headers: &HeaderMap) -> Response<RespBody> {
    if headers.contains_key("upload-defer-length") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Upload-Defer-Length is not supported: send Upload-Length",
        );
    }
    let length = match number(headers, "upload-length") {
        Some(Ok(n)) => n,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Upload-Length (a number of bytes) is required",
            )
        }
    };
    if length > MAX_LENGTH {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "Upload-Length is over Tus-Max-Size",
        );
    }
    let meta = match metadata(headers) {
        Ok(m) => m,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid", why),
    };
    let get = |k: &str| meta.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(folder), Some(name)) = (get("path"), get("filename")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Upload-Metadata needs path (the folder) and filename",
        );
    };
    let target = match VPath::parse(folder).and_then(|f| {
        VPath::from_segments(
            f.as_str()
                .split('/')
                .filter(|s| !s.is_empty())
                .chain([name]),
        )
    }) {
        Ok(p) => p,
        Err(e) => return from_vfs(e),
    };
    let content_type = get("filetype")
        .filter(|t| !t.is_empty() && t.len() <= 255)
        .map(str::to_string);
    match vfs
        .resumable_start(caller, &target, length, content_type)
        .await
    {
        Ok(u) => {
            let mut r = state(StatusCode::CREATED, &u);
            if let Ok(v) = HeaderValue::from_str(&format!("{UPLOADS}/{}", u.id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(e) => from_vfs(e),
    }
}

/// PATCH: appends the body at `Upload-Offset`.
#[utoipa::path(patch, path = "/api/user/v1/uploads/{id}",
    params(("id" = String, Path), ("Tus-Resumable" = String, Header), ("Upload-Offset" = u64, Header)),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "the new Upload-Offset"),
              (status = 404, body = ErrorReply), (status = 409, body = ErrorReply),
              (status = 413, body = ErrorReply), (status = 415, body = ErrorReply),
              (status = 423, body = ErrorReply), (status = 507, body = ErrorReply)))]
async fn append(vfs: &Vfs, caller: &Caller, req: Request<ReqBody>, id: &str) -> Response<RespBody> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.eq_ignore_ascii_case("application/offset+octet-stream") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid",
            "Content-Type: application/offset+octet-stream is required",
        );
    }
    let offset = match number(req.headers(), "upload-offset") {
        Some(Ok(n)) => n,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Upload-Offset (a number of bytes) is required",
            )
        }
    };
    let body = req.into_body().into_data_stream();
    match vfs.resumable_append(caller, id, offset, body).await {
        Ok(u) => state(StatusCode::NO_CONTENT, &u),
        Err(e) => from_vfs(e),
    }
}
