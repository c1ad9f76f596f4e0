//! The core built from the configuration, once, for the server and the admin commands alike, so a
//! setting added later cannot be forgotten on one side.

use crate::config::Config;
use crate::store::Store;
use crate::vfs::{build_operator, build_staging, Vfs, VfsError};

/// The namespace over `store` with the storage, modes and limits the configuration names.
pub fn build_vfs(cfg: &Config, store: Store) -> Result<Vfs, VfsError> {
    let (op, local) = build_operator(&cfg.storage, &cfg.data_dir)?;
    let staging = build_staging(&cfg.storage, &cfg.data_dir)?;
    let keys = crate::seal::KeyRing::load(&cfg.data_dir, &cfg.encryption).map_err(|e| {
        VfsError::from(opendal::Error::new(
            opendal::ErrorKind::ConfigInvalid,
            e.to_string(),
        ))
    })?;
    Ok(Vfs::new(op, staging, store, local)
        .with_keys(keys)
        .with_umask(cfg.umask_bits())
        .with_macos_metadata(cfg.macos_metadata)
        .with_lock_timeout_max(std::time::Duration::from_secs(cfg.lock_timeout_max_seconds))
        .with_lock_max_per_user(cfg.lock_max_per_user)
        .with_uploads_max_per_user(cfg.uploads_max_per_user)
        .with_durable_commits(cfg.durable_commits)
        .with_tombstone_keep(cfg.replication.tombstone_keep())
        .with_disk_umask(cfg.disk_umask_bits()))
}
