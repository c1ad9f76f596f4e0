//! Headers that keep user files from running as pages of Kura's origin: every response carrying
//! user content gets `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`,
//! so an uploaded page, SVG or PDF opened in a browser runs in an opaque origin, without
//! access to the admin API or the user's credentials.

use http::{header, HeaderMap, HeaderValue};

/// The sandbox without any `allow-*` token: no scripts, no forms, no same-origin access.
const SANDBOX: &str = "sandbox";

/// Marks a response that carries user content (WebDAV, S3, share downloads).
pub fn protect(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX),
    );
}

/// True for media types a browser renders as a document or runs as a script: HTML, XHTML,
/// SVG and every other XML, JavaScript, PDF, XSLT, and anything unreadable. A client may not
/// ask for these in place of a file's stored type (S3 `response-content-type`).
pub fn is_active_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    const ACTIVE: &[&str] = &[
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "application/xslt+xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/ecmascript",
        "application/ecmascript",
        "application/pdf",
        "application/x-shockwave-flash",
        "multipart/x-mixed-replace",
        "text/vtt",
        "text/cache-manifest",
    ];
    essence.is_empty()
        || !essence.contains('/')
        || essence.ends_with("+xml")
        || ACTIVE.contains(&essence.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scriptable_types_are_active() {
        for t in [
            "text/html; charset=utf-8",
            "TEXT/HTML",
            "image/svg+xml",
            "application/atom+xml",
            "application/pdf",
            "text/javascript",
            "",
            "garbage",
        ] {
            assert!(is_active_type(t), "{t}");
        }
        for t in [
            "text/plain",
            "image/png",
            "application/octet-stream",
            "video/mp4",
        ] {
            assert!(!is_active_type(t), "{t}");
        }
    }
}
