//! The app's files, embedded in the binary (no CDN, nothing fetched at run time), served with
//! a strict Content-Security-Policy: scripts and styles only from this origin, no inline code.

use http::{header, HeaderValue, Response, StatusCode};

use crate::wire::{full, RespBody};

/// Path (below `/app/`), content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "view.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/view.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/admin.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
];

/// The policy of every app page: nothing but this origin's own files, no framing, no
/// plugins, forms only to this origin. Previews play audio and video from this origin's
/// sandboxed downloads, and show PDF pages the server rendered from `blob:` URLs of the
/// images the app fetched (to read their page count).
const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   media-src 'self'; connect-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The embedded file at `rel` (below `/app/`; `index.html` for the folder), or 404.
pub fn serve_asset(rel: &str) -> Response<RespBody> {
    let rel = rel.trim_start_matches('/');
    let rel = if rel == "index.html" { "" } else { rel };
    let Some((_, ct, body)) = FILES.iter().find(|(p, _, _)| *p == rel) else {
        let mut r = Response::new(full("not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(10));
        return r;
    };
    let mut r = Response::new(full(*body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // the page is the same for everyone; revalidate so an upgrade shows at once
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
