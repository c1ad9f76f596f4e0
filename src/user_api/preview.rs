//! `GET /api/user/v1/thumbnail?path=&size=256&page=1`: an image's thumbnail or a PDF's page
//! for the app's previews, read through the core as the caller (read access decides) and made
//! within the bounds of `crate::delivery::thumbnail` and `crate::delivery::pdf_page`.

use http::{header, HeaderValue, Request, Response, StatusCode};

use super::errors::{error, from_vfs, ErrorReply};
use super::files::path_param;
use super::Params;
use crate::delivery::thumbnail::{ThumbError, Thumbnailer};
use crate::vfs::{Caller, Vfs};
use crate::wire::{full, ReqBody, RespBody};

/// The header that tells a PDF's number of pages.
const PAGES: &str = "x-kura-pages";

/// The thumbnail of one image, or one page of a PDF, at most `size` pixels on a side.
#[utoipa::path(get, path = "/api/user/v1/thumbnail",
    params(("path" = String, Query), ("size" = Option<u32>, Query, description = "64, 128, 256 (default), 512 or 1024"),
           ("page" = Option<u32>, Query, description = "a PDF's page, from 1 (the default)")),
    responses((status = 200, description = "a JPEG, or a PNG for images with transparency and PDF pages",
               headers(("X-Kura-Pages" = u32, description = "a PDF's number of pages"))),
              (status = 304, description = "If-None-Match matched"),
              (status = 400, body = ErrorReply, description = "a size not served, a page past the last, a page of an image"),
              (status = 403, body = ErrorReply), (status = 404, body = ErrorReply),
              (status = 413, body = ErrorReply, description = "over 64 MiB or 50 megapixels"),
              (status = 415, body = ErrorReply, description = "not an image or PDF Kura previews, or one that does not decode or render within the limits (remembered: the same content is refused at once for an hour)"),
              (status = 503, body = ErrorReply, description = "`busy`: no render slot came free within 10 s (one render at a time per user, two for the server); `Retry-After` says when to ask again")))]
pub async fn thumbnail(
    vfs: &Vfs,
    thumbs: &Thumbnailer,
    caller: &Caller,
    req: &Request<ReqBody>,
    params: &Params,
) -> Response<RespBody> {
    let path = match path_param(params, "path") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(size) = params.get("size").unwrap_or("256").parse::<u32>() else {
        return error(StatusCode::BAD_REQUEST, "invalid", "size is a number");
    };
    let Ok(page) = params.get("page").unwrap_or("1").parse::<u32>() else {
        return error(StatusCode::BAD_REQUEST, "invalid", "page is a number");
    };
    let t = match thumbs.thumbnail(vfs, caller, &path, size, page).await {
        Ok(t) => t,
        Err(ThumbError::Vfs(e)) => return from_vfs(e),
        Err(ThumbError::Invalid(m)) => return error(StatusCode::BAD_REQUEST, "invalid", &m),
        Err(ThumbError::Unsupported(m)) => {
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported", &m)
        }
        Err(ThumbError::TooLarge(m)) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &m)
        }
        Err(ThumbError::Busy(wait)) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "previews are busy; try again shortly",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            return r;
        }
        Err(e @ ThumbError::Internal(_)) => {
            tracing::error!(error = %e, "thumbnail failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            );
        }
    };
    let etag = format!("\"{}\"", t.etag);
    let matched = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim() == etag));
    let mut r = if matched {
        let mut r = Response::new(crate::wire::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(full(t.bytes));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(t.content_type),
        );
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(n) = t.pages {
        h.insert(PAGES, HeaderValue::from(n));
    }
    // private: the permission is checked on every request (revalidated, never shared)
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    crate::wire::protect(h);
    r
}
