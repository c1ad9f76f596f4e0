//! The one place where core errors become S3 error replies.

use http::StatusCode;
use s3s::{S3Error, S3ErrorCode};

use crate::vfs::{KeyNeed, VfsError};

/// Kura's own error code for a key that cannot be a file: `a` while `a/b` exists, or the reverse.
pub const PATH_CONFLICT: &str = "KeyConflict";
/// Kura's own error code for a write on a resource locked through WebDAV (HTTP 423).
pub const LOCKED: &str = "Locked";
/// Kura's own error code for a write refused by the bucket group's quota (HTTP 403, so that
/// clients do not retry it as they would a 5xx).
pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
/// AWS's code for a conditional write that a concurrent write broke before it committed.
pub const CONDITIONAL_CONFLICT: &str = "ConditionalRequestConflict";
/// Kura's own error code for a user with as many unfinished uploads as allowed (HTTP 403,
/// so that clients show it at once instead of retrying as they would a 503).
pub const TOO_MANY_UPLOADS: &str = "TooManyUploads";
/// Kura's own error code for a key that breaks the naming rules (`a//b`, `..`, NUL, ...).
pub const INVALID_NAME: &str = "InvalidObjectName";

fn custom(code: &'static str, status: StatusCode, msg: String) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), msg);
    e.set_status_code(status);
    e
}

/// Maps a core error for an object operation; server-side faults are logged here.
pub fn object_error(e: VfsError) -> S3Error {
    match e {
        VfsError::NotFound => S3Error::new(S3ErrorCode::NoSuchKey),
        VfsError::Forbidden(m) => S3Error::with_message(S3ErrorCode::AccessDenied, m),
        VfsError::Exists => {
            S3Error::with_message(S3ErrorCode::PreconditionFailed, "the object exists")
        }
        VfsError::PreconditionFailed(m) => {
            S3Error::with_message(S3ErrorCode::PreconditionFailed, m)
        }
        VfsError::Changed(m) => custom(
            CONDITIONAL_CONFLICT,
            StatusCode::CONFLICT,
            format!("a conflicting write happened during this one; retry: {m}"),
        ),
        VfsError::NotEmpty => custom(
            PATH_CONFLICT,
            StatusCode::CONFLICT,
            "the folder is not empty".into(),
        ),
        VfsError::Conflict(m) | VfsError::WrongKind(m) => custom(
            PATH_CONFLICT,
            StatusCode::CONFLICT,
            format!("the key conflicts with an existing object or folder: {m}"),
        ),
        VfsError::InvalidPath(m) => invalid_name(m),
        VfsError::Incomplete { expected, got } => S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            format!("expected {expected} bytes, received {got}"),
        ),
        VfsError::BadDigest(m) => S3Error::with_message(S3ErrorCode::BadDigest, m),
        VfsError::NoSuchUpload => S3Error::new(S3ErrorCode::NoSuchUpload),
        VfsError::InvalidPart(m) => S3Error::with_message(S3ErrorCode::InvalidPart, m),
        VfsError::InvalidPartOrder => S3Error::new(S3ErrorCode::InvalidPartOrder),
        VfsError::EntityTooSmall => S3Error::new(S3ErrorCode::EntityTooSmall),
        VfsError::InvalidArgument(m) => S3Error::with_message(S3ErrorCode::InvalidArgument, m),
        // S3 sets neither dead properties nor locks; mapped for completeness
        VfsError::TooLarge(m) => S3Error::with_message(S3ErrorCode::EntityTooLarge, m),
        VfsError::TooManyUploads(n) => custom(
            TOO_MANY_UPLOADS,
            StatusCode::FORBIDDEN,
            format!("at most {n} unfinished multipart uploads per user (tus uploads of the web app included): complete or abort one (aws s3api list-multipart-uploads)"),
        ),
        VfsError::TooManyLocks(n) => S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            format!("at most {n} live locks per user"),
        ),
        e @ VfsError::Storage(_) if e.is_unavailable() => {
            tracing::warn!(error = %e, "storage unreachable");
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "the storage service is unreachable; retry",
            )
        }
        VfsError::Storage(e) => {
            tracing::error!(error = %e, "storage failure");
            S3Error::new(S3ErrorCode::InternalError)
        }
        VfsError::Locked(p) => custom(
            LOCKED,
            StatusCode::LOCKED,
            format!("{p} is locked by a WebDAV client"),
        ),
        VfsError::QuotaExceeded(g) => custom(
            QUOTA_EXCEEDED,
            StatusCode::FORBIDDEN,
            format!("the quota of group {g} does not allow this write"),
        ),
        VfsError::CustomerKey(need) => customer_key_error(need),
        e @ VfsError::Meta(_) if e.is_unavailable() => {
            tracing::warn!(error = %e, "metadata store unreachable");
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "the metadata store is unreachable; retry",
            )
        }
        VfsError::Meta(e) => {
            tracing::error!(error = %e, "metadata failure");
            S3Error::new(S3ErrorCode::InternalError)
        }
    }
}

/// AWS's answers to an SSE-C key missing (400), wrong (403) or sent for an object stored
/// without one (400).
fn customer_key_error(need: KeyNeed) -> S3Error {
    match need {
        KeyNeed::Missing => S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
        ),
        KeyNeed::Wrong => S3Error::with_message(
            S3ErrorCode::AccessDenied,
            "The SSE-C key provided is not the one the object was stored with",
        ),
        KeyNeed::Unexpected => S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "The encryption parameters are not applicable to this object.",
        ),
    }
}

/// Maps a core error for a bucket operation (the bucket is the object that is missing).
pub fn bucket_error(e: VfsError) -> S3Error {
    match e {
        VfsError::NotFound => S3Error::new(S3ErrorCode::NoSuchBucket),
        VfsError::Exists => S3Error::new(S3ErrorCode::BucketAlreadyOwnedByYou),
        VfsError::NotEmpty => S3Error::new(S3ErrorCode::BucketNotEmpty),
        other => object_error(other),
    }
}

/// A key or bucket name that cannot be a path.
pub fn invalid_name(m: impl std::fmt::Display) -> S3Error {
    custom(
        INVALID_NAME,
        StatusCode::BAD_REQUEST,
        format!("invalid object name: {m}"),
    )
}
