//! The user-level JSON API under `/api/user/v1/`, for the browser app and scripts: an adapter
//! like WebDAV and S3 (Basic auth, the core's rules for the caller), one module per endpoint
//! family, JSON in and out, core errors mapped once in `errors.rs`.

mod annotations;
mod body;
mod changes;
mod download;
mod errors;
mod files;
mod openapi;
mod preview;
pub mod search;
mod shares;
mod tus;
mod versions;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::delivery::thumbnail::Thumbnailer;
use crate::share_links::Shares;
use crate::vfs::{Caller, Vfs};
use crate::wire::{json, ReqBody, RespBody};

pub use errors::error;

/// Where the API lives.
pub const PREFIX: &str = "/api/user/v1";

/// Longest query string accepted, in bytes.
const MAX_QUERY_STRING: usize = 4096;

/// The user API: the core it calls.
#[derive(Clone)]
pub struct UserApi {
    /// The namespace, with every rule.
    pub vfs: Vfs,
    /// The share-link service the admin API and the CLI use too.
    pub shares: Shares,
    /// Previews' image thumbnails and PDF pages, cached under the data dir.
    pub thumbs: Thumbnailer,
    /// The session endpoints' part of the OpenAPI document (the browser app serves them).
    pub session_doc: fn() -> utoipa::openapi::OpenApi,
}

impl UserApi {
    /// Answers one authenticated request.
    pub async fn handle(&self, req: Request<ReqBody>, caller: Caller) -> Response<RespBody> {
        let path = req.uri().path();
        let rest = path.strip_prefix(PREFIX).unwrap_or_default();
        let query = req.uri().query().unwrap_or_default();
        if query.len() > MAX_QUERY_STRING {
            return error(
                StatusCode::URI_TOO_LONG,
                "too_long",
                "the query string is over 4096 bytes",
            );
        }
        let params = match Params::parse(query) {
            Ok(p) => p,
            Err(why) => return error(StatusCode::BAD_REQUEST, "invalid", why),
        };
        let rest = rest.trim_end_matches('/').to_string();
        if rest == "/uploads" {
            return tus::handle(&self.vfs, &caller, req, None).await;
        }
        if let Some(id) = rest.strip_prefix("/uploads/") {
            let id = id.to_string();
            return tus::handle(&self.vfs, &caller, req, Some(&id)).await;
        }
        if let Some(id) = rest.strip_prefix("/shares/") {
            return match req.method() {
                &Method::DELETE => shares::revoke(&self.shares, &caller, id).await,
                _ => not_allowed("DELETE"),
            };
        }
        let (vfs, c) = (&self.vfs, &caller);
        match (rest.as_str(), req.method()) {
            ("/search", &Method::GET) => search::search(vfs, c, &params).await,
            ("/versions", &Method::GET) => versions::versions(vfs, c, &params).await,
            ("/trash", &Method::GET) => versions::trash(vfs, c, &params).await,
            ("/restore", &Method::POST) => versions::restore(vfs, c, req).await,
            ("/trash", &Method::DELETE) => versions::empty_trash(vfs, c, &params).await,
            ("/thumbnail", &Method::GET) => {
                preview::thumbnail(vfs, &self.thumbs, c, &req, &params).await
            }
            ("/tags", &Method::POST) => annotations::set(vfs, c, req).await,
            ("/shares", &Method::GET) => shares::list(&self.shares, c).await,
            ("/shares", &Method::POST) => shares::create(&self.shares, c, req).await,
            ("/buckets", &Method::GET) => files::buckets(vfs, c).await,
            ("/openapi.json", &Method::GET) => openapi::document((self.session_doc)()),
            ("/files", &Method::GET) => files::list(vfs, c, &params).await,
            ("/file", &Method::GET) => files::stat(vfs, c, &params).await,
            ("/download", &Method::GET | &Method::HEAD) => {
                download::download(vfs, c, &req, &params).await
            }
            ("/zip", &Method::GET) => download::zip(vfs, c, &params).await,
            ("/folders", &Method::POST) => changes::mkdir(vfs, c, req).await,
            ("/rename", &Method::POST) => changes::rename(vfs, c, req).await,
            ("/move", &Method::POST) => changes::move_into(vfs, c, req).await,
            ("/copy", &Method::POST) => changes::copy_into(vfs, c, req).await,
            ("/delete", &Method::POST) => changes::delete(vfs, c, req).await,
            ("/attributes", &Method::POST) => changes::attributes(vfs, c, req).await,
            (
                "/search" | "/versions" | "/buckets" | "/files" | "/file" | "/download" | "/zip"
                | "/thumbnail" | "/openapi.json",
                _,
            ) => not_allowed("GET"),
            (
                "/restore" | "/folders" | "/rename" | "/move" | "/copy" | "/delete" | "/attributes"
                | "/tags",
                _,
            ) => not_allowed("POST"),
            ("/trash", _) => not_allowed("GET, DELETE"),
            ("/shares", _) => not_allowed("GET, POST"),
            _ => error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        }
    }
}

/// 405 naming the one method allowed.
fn not_allowed(allow: &'static str) -> Response<RespBody> {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method",
        &format!("only {allow} is allowed here"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Query parameters, each at most once.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `a=1&b=2` (percent-escapes and `+` for space); a repeated name or bad escape is
    /// refused.
    fn parse(q: &str) -> Result<Params, &'static str> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| "a query parameter is not UTF-8")
            };
            let (k, v) = (dec(k)?, dec(v)?);
            if out.iter().any(|(o, _)| *o == k) {
                return Err("a query parameter is repeated");
            }
            out.push((k, v));
        }
        Ok(Params(out))
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
