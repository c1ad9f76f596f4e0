//! JSON answers of the browser app's session endpoints and the user API: one shape for
//! bodies and for errors (`{"error": CODE, "message": TEXT}`), never cached.

use http::{header, HeaderValue, Response, StatusCode};

use super::{full, RespBody};

/// A JSON answer that no cache keeps.
pub fn json(status: StatusCode, body: String) -> Response<RespBody> {
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A JSON error answer as `json_error` writes it, for OpenAPI documents.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorReply {
    /// Stable code: invalid, forbidden, csrf, not_found, method, conflict, offset,
    /// precondition, too_large, locked, quota, internal (and the session endpoints'
    /// signed_out, second_factor_required, too_many_codes, ...).
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

/// A JSON error answer with a stable code.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response<RespBody> {
    json(
        status,
        serde_json::json!({ "error": code, "message": message }).to_string(),
    )
}
