//! `GET /api/user/v1/download?path=` (one file, with ranges) and `GET .../zip?dir=&names=`
//! (a selection as one streamed zip): served as share links serve them (`crate::delivery`).

use futures_util::TryStreamExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::errors::{error, from_vfs, ErrorReply};
use super::files::path_param;
use super::Params;
use crate::delivery::{file, headers::content_disposition, zip};
use crate::vfs::{Caller, VPath, Vfs};
use crate::wire::{empty, ReqBody, RespBody};

/// Most entries one zip names.
const MAX_NAMES: usize = 1000;

/// One file's bytes (or a kept version's, `version=`), whole or one range; `inline=1` for
/// previews (still sandboxed).
#[utoipa::path(get, path = "/api/user/v1/download",
    params(("path" = String, Query), ("inline" = Option<String>, Query, description = "1: inline"),
           ("version" = Option<String>, Query, description = "a kept version's id (GET .../versions)"),
           ("Range" = Option<String>, Header)),
    responses((status = 200, description = "the bytes", content_type = "application/octet-stream"),
              (status = 206, description = "one range"), (status = 416, description = "beyond the end"),
              (status = 403, body = ErrorReply), (status = 404, body = ErrorReply)))]
pub async fn download(
    vfs: &Vfs,
    caller: &Caller,
    req: &Request<ReqBody>,
    params: &Params,
) -> Response<RespBody> {
    let path = match path_param(params, "path") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let opened = match params.get("version") {
        // an old version the caller may read, by the id the versions list gives
        Some(id) => vfs.open_kept(caller, &path, id).await,
        None => vfs.open_read(caller, &path).await,
    };
    let (entry, download) = match opened {
        Ok(x) => x,
        Err(e) => return from_vfs(e),
    };
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|h| h.to_str().ok());
    let (status, span) = match file::span(&entry, range) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body = if req.method() == Method::HEAD || span.is_empty() {
        empty()
    } else {
        match download.into_stream(span.clone()).await {
            Ok(s) => StreamBody::new(s.map_ok(Frame::data)).boxed_unsync(),
            Err(e) => return from_vfs(e),
        }
    };
    let inline = params.get("inline") == Some("1");
    file::response(&entry, (status, span), body, inline)
}

/// The named entries of one folder as a zip.
#[utoipa::path(get, path = "/api/user/v1/zip",
    params(("dir" = String, Query), ("names" = String, Query, description = "names in dir, joined by /")),
    responses((status = 200, description = "a streamed zip", content_type = "application/zip"),
              (status = 400, body = ErrorReply), (status = 403, body = ErrorReply)))]
pub async fn zip(vfs: &Vfs, caller: &Caller, params: &Params) -> Response<RespBody> {
    let dir = match path_param(params, "dir") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let names: Vec<&str> = params
        .get("names")
        .unwrap_or_default()
        .split('/')
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() || names.len() > MAX_NAMES {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "names lists 1 to 1000 names of dir, joined by /",
        );
    }
    // each entry once, in the order given: two spellings of one name (NFC and NFD) are one
    // path to the core, so the paths are compared, not the names
    let mut roots: Vec<VPath> = Vec::with_capacity(names.len());
    for n in names {
        match VPath::from_segments(dir.as_str().split('/').filter(|s| !s.is_empty()).chain([n])) {
            Ok(p) if roots.contains(&p) => {}
            Ok(p) => roots.push(p),
            Err(e) => return from_vfs(e),
        }
    }
    // the folder must be one the caller may list and enter, refused before the 200
    if let Err(e) = vfs.may_read(caller, &dir).await {
        return from_vfs(e);
    }
    let stream = zip::stream(vfs.clone(), caller.clone(), dir.clone(), roots);
    let body = StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync();
    let name = if dir.is_root() { "files" } else { dir.name() };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&format!("{name}.zip"))) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    crate::wire::protect(h);
    r
}
