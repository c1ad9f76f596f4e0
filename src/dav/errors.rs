//! The one place where core errors become WebDAV filesystem results.

use dav_server::fs::FsError;
use http::StatusCode;

use crate::vfs::VfsError;

/// Maps a core error to the dav-server status family; server-side faults are logged here.
pub fn to_fs_error(e: VfsError) -> FsError {
    match e {
        VfsError::NotFound => FsError::NotFound,
        // a PUT's If-Match / If-None-Match that does not hold, at the checks or at the commit
        VfsError::Exists | VfsError::PreconditionFailed(_) | VfsError::Changed(_) => {
            FsError::Exists
        }
        // 409 on every method (dav-server patch 24): a MOVE refused after racing writers
        // answered 404 before, as if its source were gone
        VfsError::Conflict(_) => FsError::Conflict,
        VfsError::WrongKind(_)
        | VfsError::InvalidPath(_)
        | VfsError::Forbidden(_)
        | VfsError::NotEmpty => FsError::Forbidden,
        VfsError::Incomplete { .. } => FsError::GeneralFailure,
        VfsError::BadDigest(_)
        | VfsError::NoSuchUpload
        | VfsError::InvalidPart(_)
        | VfsError::InvalidPartOrder
        | VfsError::EntityTooSmall
        | VfsError::InvalidArgument(_)
        // WebDAV starts no multipart or resumable upload
        | VfsError::TooManyUploads(_) => FsError::Forbidden,
        e @ VfsError::Storage(_) if e.is_unavailable() => {
            tracing::warn!(error = %e, "storage unreachable");
            FsError::Unavailable
        }
        VfsError::Storage(e) => match e.kind() {
            opendal::ErrorKind::NotFound => FsError::NotFound,
            // the store refusing Kura itself (its credentials, the root folder's modes) is the
            // server's fault, not the client's: 500 and a log line, not 403
            _ => {
                tracing::error!(error = %e, "storage failure");
                FsError::GeneralFailure
            }
        },
        // RFC 4918 9.2: a property the server cannot store answers 507
        VfsError::QuotaExceeded(_) | VfsError::TooLarge(_) | VfsError::TooManyLocks(_) => {
            FsError::InsufficientStorage
        }
        // dav-server evaluates the If header through the lock system first (423); the core
        // checks the same locks again inside each write's transaction, and a refusal there
        // (a lock taken meanwhile) has no FsError of its own
        VfsError::Locked(_) => FsError::Forbidden,
        // an SSE-C file opens only with the key its S3 client keeps (mod.rs answers a GET
        // with a text saying so before dav-server runs)
        VfsError::CustomerKey(_) => FsError::Forbidden,
        e @ VfsError::Meta(_) if e.is_unavailable() => {
            tracing::warn!(error = %e, "metadata store unreachable");
            FsError::Unavailable
        }
        VfsError::Meta(e) => {
            tracing::error!(error = %e, "metadata failure");
            FsError::GeneralFailure
        }
    }
}

/// The status and text of a LOCK or UNLOCK the core refused before dav-server saw it (its lock
/// interface can only answer 423); `None`: let dav-server answer.
pub fn refusal(e: &VfsError) -> Option<(StatusCode, &'static str)> {
    match e {
        VfsError::Forbidden(_) => Some((
            StatusCode::FORBIDDEN,
            "you may not lock or unlock this resource\n",
        )),
        VfsError::TooManyLocks(_) => Some((
            StatusCode::INSUFFICIENT_STORAGE,
            "too many live locks for this user\n",
        )),
        _ => None,
    }
}
