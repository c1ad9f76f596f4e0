//! `/healthz`: whether this gateway can serve, database and storage included.

use std::path::PathBuf;
use std::time::Duration;

use crate::store::Store;

/// How long the stat of the storage root may take.
const STAT_TIMEOUT: Duration = Duration::from_secs(1);

/// What `/healthz` checks, and the name it answers with.
pub struct Health {
    /// The metadata database (`SELECT 1`).
    pub store: Store,
    /// The `fs` backend's folder (stat); None for other backends.
    pub root: Option<PathBuf>,
    /// This gateway's node id (header `kura-node`).
    pub node_id: String,
}

impl Health {
    /// `Ok` when the database answers and the storage root is a folder; else what is not.
    pub async fn probe(&self) -> Result<(), &'static str> {
        if let Err(e) = self.store.ping().await {
            tracing::warn!(error = %e, "health: the database does not answer");
            return Err("database unreachable\n");
        }
        if let Some(root) = &self.root {
            let stat = tokio::time::timeout(STAT_TIMEOUT, tokio::fs::metadata(root)).await;
            if !matches!(stat, Ok(Ok(m)) if m.is_dir()) {
                tracing::warn!(root = %root.display(), "health: the storage root is not reachable");
                return Err("storage unreachable\n");
            }
        }
        Ok(())
    }
}
