//! Backup and restore of a whole installation (docs/operations.md): a consistent snapshot of
//! the metadata, the secret key, the TLS material and the configuration, and the stored bytes
//! (current files and kept versions) in a content-addressed repository shared by snapshots,
//! so a later backup copies only what changed.
//!
//! A repository `DEST` holds `kura-backup.json` (its format), `objects/ab/<sha256>` (each
//! distinct content once) and `snapshots/<id>/` (`manifest.json`, `kura.db`, `objects.jsonl`
//! and the extra files).

mod repo;
mod restore;
mod take;
mod verify;

use serde::{Deserialize, Serialize};

pub use repo::{is_repository, snapshots};
pub use restore::restore;
pub use take::{take, TakeOptions};
pub use verify::verify;

/// Why a backup, verification or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The metadata database failed.
    #[error(transparent)]
    Meta(#[from] crate::store::MetaError),
    /// The storage failed.
    #[error(transparent)]
    Vfs(#[from] crate::vfs::VfsError),
    /// The data dir is missing or unusable.
    #[error(transparent)]
    Install(#[from] crate::install::InstallError),
    /// The repository or the request is not usable as given.
    #[error("{0}")]
    Invalid(String),
    /// The installation keeps its metadata in PostgreSQL, which a backup does not copy yet.
    #[error(
        "kura backup and restore copy the SQLite store only; this installation's database_url \
         is PostgreSQL (back it up with pg_dump; docs/scale-out.md)"
    )]
    Postgres,
    /// What verification found wrong, one line each.
    #[error("the backup is damaged:\n{}", .0.join("\n"))]
    Damaged(Vec<String>),
}

/// A file of a snapshot with its size and hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Piece {
    /// Path relative to the snapshot folder.
    pub file: String,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
}

/// What one snapshot holds, written last (a snapshot without it is unfinished).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Repository format.
    pub format: u32,
    /// The snapshot's id (its folder name, a UTC time).
    pub id: String,
    /// When the metadata was copied, ms since the epoch.
    pub created_ms: i64,
    /// The Kura version that made it.
    pub kura_version: String,
    /// Whether stored bytes were copied (`--no-files` leaves them out).
    pub files_included: bool,
    /// The metadata database.
    pub metadata: Piece,
    /// The list of stored objects (`objects.jsonl`).
    pub objects: Piece,
    /// The secret key, TLS files and configuration file.
    pub extras: Vec<Piece>,
    /// Figures for people.
    pub counts: Counts,
}

/// A snapshot's figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Current files.
    pub files: u64,
    /// Kept versions and trashed files with bytes.
    pub kept: u64,
    /// Bytes of both.
    pub bytes: u64,
    /// Objects this backup had to copy (the others were in the repository already).
    pub copied: u64,
    /// Bytes it copied.
    pub copied_bytes: u64,
    /// Files found changed or deleted between the metadata copy and their capture.
    pub amended: u64,
}

/// One line of `objects.jsonl`: a stored object and the content that holds its bytes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectLine {
    /// `file` (a current file, by path) or `kept` (kept bytes, by versions-store key).
    pub kind: String,
    /// The path or key.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The ETag the metadata records.
    pub etag: String,
    /// Hex SHA-256 of the bytes: the object's name in `objects/`.
    pub sha256: String,
}
