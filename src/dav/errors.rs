//! The one place where core errors become WebDAV filesystem results.

use dav_server::fs::FsError;

use crate::vfs::VfsError;

/// Maps a core error to the dav-server status family; server-side faults are logged here.
pub fn to_fs_error(e: VfsError) -> FsError {
    match e {
        VfsError::NotFound => FsError::NotFound,
        VfsError::Exists => FsError::Exists,
        // dav-server turns NotFound on PUT/MKCOL/COPY targets into 409 Conflict.
        VfsError::Conflict(_) => FsError::NotFound,
        VfsError::WrongKind(_) | VfsError::InvalidPath(_) | VfsError::Forbidden(_) => {
            FsError::Forbidden
        }
        VfsError::Incomplete { .. } => FsError::GeneralFailure,
        VfsError::BadDigest(_)
        | VfsError::NoSuchUpload
        | VfsError::InvalidPart(_)
        | VfsError::InvalidPartOrder
        | VfsError::EntityTooSmall
        | VfsError::InvalidArgument(_) => FsError::Forbidden,
        VfsError::Storage(e) => match e.kind() {
            opendal::ErrorKind::NotFound => FsError::NotFound,
            opendal::ErrorKind::PermissionDenied => FsError::Forbidden,
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
        VfsError::Meta(e) => {
            tracing::error!(error = %e, "metadata failure");
            FsError::GeneralFailure
        }
    }
}
