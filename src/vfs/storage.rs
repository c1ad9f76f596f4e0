//! Building the OpenDAL operator from the config, and start-up sweeping of temporary objects.

use std::path::{Path, PathBuf};

use opendal::{HttpTransporter, OperationContext, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use super::VfsError;
use crate::config::StorageConfig;

/// Where multipart parts are staged on services other than `fs` and `memory`, under the
/// storage root (no bucket can have this name; fsck leaves it to the upload expiry job).
pub const STAGING_PREFIX: &str = ".kura-multipart/";

/// Builds the staging operator for multipart parts: `<data_dir>/multipart` for `fs`
/// (same filesystem as the temporary folder), memory for the `memory` service, and a
/// `.kura-multipart/` prefix of the same service otherwise.
pub fn build_staging(cfg: &StorageConfig, data_dir: &Path) -> Result<Operator, VfsError> {
    match cfg.backend.as_str() {
        "fs" => {
            let root = data_dir.join("multipart");
            std::fs::create_dir_all(&root).map_err(io_err)?;
            let builder = opendal::services::Fs::default()
                .root(&root.to_string_lossy())
                .atomic_write_dir(&temp_dir(data_dir).to_string_lossy());
            Ok(Operator::new(builder)?)
        }
        "memory" => Ok(Operator::new(opendal::services::Memory::default())?),
        scheme => {
            let mut opts = cfg.options.clone();
            let root = opts.get("root").cloned().unwrap_or_default();
            opts.insert(
                "root".into(),
                format!("{}/{STAGING_PREFIX}", root.trim_end_matches('/')),
            );
            remote(scheme, opts)
        }
    }
}

/// Builds the operator; returns it with the local root folder when the service is `fs`.
pub fn build_operator(
    cfg: &StorageConfig,
    data_dir: &Path,
) -> Result<(Operator, Option<LocalFs>), VfsError> {
    opendal::init_default_registry();
    if cfg.backend == "fs" {
        let root = cfg.root.clone().unwrap_or_else(|| data_dir.join("files"));
        let tmp = temp_dir(data_dir);
        std::fs::create_dir_all(&root).map_err(io_err)?;
        std::fs::create_dir_all(&tmp).map_err(io_err)?;
        let builder = opendal::services::Fs::default()
            .root(&root.to_string_lossy())
            .atomic_write_dir(&tmp.to_string_lossy());
        let versions = data_dir.join("versions");
        std::fs::create_dir_all(&versions).map_err(io_err)?;
        let open_inline =
            super::disk::local_file_system(&root) && super::disk::local_file_system(&versions);
        let local = LocalFs {
            versions,
            staging: data_dir.join("multipart"),
            root,
            tmp,
            file_mode: 0o600,
            dir_mode: 0o700,
            open_inline,
            durable: true,
        };
        return Ok((Operator::new(builder)?, Some(local)));
    }
    let op = match cfg.backend.as_str() {
        "memory" => Operator::new(opendal::services::Memory::default())?,
        scheme => remote(scheme, cfg.options.clone())?,
    };
    Ok((op, None))
}

/// An operator of a service reached over HTTP (s3, ...), with Kura's own HTTP client: the
/// build leaves OpenDAL's default transport out, so without one every request would fail.
fn remote(
    scheme: &str,
    options: std::collections::HashMap<String, String>,
) -> Result<Operator, VfsError> {
    opendal::init_default_registry();
    let op = Operator::via_iter(scheme, options)?;
    // reqwest's rustls without a provider of its own needs the process-wide one
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(30))
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| {
            VfsError::from(opendal::Error::new(
                opendal::ErrorKind::ConfigInvalid,
                format!("HTTP client for the {scheme} storage: {e}"),
            ))
        })?;
    let transport = HttpTransporter::new(ReqwestTransport::new(client));
    Ok(op.with_context(OperationContext::new().with_http_transport(transport)))
}

/// The folders of the `fs` backend, for what is faster done on them directly (uploads, a
/// folder move as one rename, free space).
#[derive(Clone, Debug)]
pub struct LocalFs {
    /// The visible tree (the operator's root).
    pub root: PathBuf,
    /// Multipart parts (the staging operator's root).
    pub staging: PathBuf,
    /// Uploads until they are committed.
    pub tmp: PathBuf,
    /// Noncurrent versions and trash (docs/versions.md), outside the visible tree.
    pub versions: PathBuf,
    /// Mode of the files Kura stores (0666 minus `disk_umask`).
    pub file_mode: u32,
    /// Mode of the folders Kura makes on disk (0777 minus `disk_umask`).
    pub dir_mode: u32,
    /// Small files may be opened and read on a runtime thread (`disk::DiskFile::open_sized`):
    /// the files and versions are on a local disk's file system, not a network's.
    pub open_inline: bool,
    /// Stored files and the folders of their renames are fsynced before a commit
    /// (`durable_commits`); off, a power cut may lose what the page cache held.
    pub durable: bool,
}

/// Where `fs` uploads live until they are committed (outside the visible tree).
pub fn temp_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tmp")
}

/// Removes upload leftovers of a previous run (a crash or kill mid-upload); returns how many.
pub fn sweep_temp(data_dir: &Path) -> std::io::Result<usize> {
    let tmp = temp_dir(data_dir);
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir(&tmp) else {
        return Ok(0);
    };
    for e in rd {
        let e = e?;
        if e.file_type()?.is_dir() {
            std::fs::remove_dir_all(e.path())?;
        } else {
            std::fs::remove_file(e.path())?;
        }
        n += 1;
    }
    Ok(n)
}

/// Makes `dir` with exactly `mode` (the process umask does not apply).
pub(super) fn make_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(mode).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

pub(super) fn io_err(e: std::io::Error) -> VfsError {
    VfsError::from(opendal::Error::new(
        opendal::ErrorKind::Unexpected,
        e.to_string(),
    ))
}
