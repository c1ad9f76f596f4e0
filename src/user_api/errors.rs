//! The one place where core errors become user API replies (JSON `{"error", "message"}`, as
//! the session endpoints of the browser app answer).

use http::{Response, StatusCode};

use crate::vfs::resumable::OFFSET_MISMATCH;
use crate::vfs::VfsError;
use crate::wire::RespBody;

/// Every error of the user API, as the OpenAPI document describes it.
pub use crate::wire::ErrorReply;

/// A JSON error reply.
pub use crate::wire::json_error as error;

/// A core refusal as a reply; server faults are logged here and not described.
pub fn from_vfs(e: VfsError) -> Response<RespBody> {
    let (status, code, message) = reply_parts(e);
    error(status, code, &message)
}

/// The status, code and message a core refusal answers (batches list them per path).
pub fn reply_parts(e: VfsError) -> (StatusCode, &'static str, String) {
    let (status, code) = match &e {
        VfsError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        VfsError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        VfsError::InvalidArgument(_) | VfsError::InvalidPath(_) | VfsError::WrongKind(_) => {
            (StatusCode::BAD_REQUEST, "invalid")
        }
        VfsError::Conflict(OFFSET_MISMATCH) => (StatusCode::CONFLICT, "offset"),
        VfsError::Conflict(_) | VfsError::Exists | VfsError::NotEmpty | VfsError::Changed(_) => {
            (StatusCode::CONFLICT, "conflict")
        }
        VfsError::Locked(_) => (StatusCode::LOCKED, "locked"),
        VfsError::QuotaExceeded(_) => (StatusCode::INSUFFICIENT_STORAGE, "quota"),
        VfsError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        VfsError::TooManyUploads(_) => (StatusCode::FORBIDDEN, "too_many_uploads"),
        VfsError::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "precondition"),
        // an SSE-C file opens only with the key its S3 client keeps: the app has none
        VfsError::CustomerKey(_) => (StatusCode::FORBIDDEN, "forbidden"),
        e if e.is_unavailable() => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => {
            tracing::error!(error = %e, "user API request failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".to_string(),
            );
        }
    };
    (status, code, e.to_string())
}
