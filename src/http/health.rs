//! `/healthz`: whether this gateway can serve, database and storage included.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::store::Store;

/// How long the stat of the storage root may take.
const STAT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a probe's answer is reused: `/healthz` needs no authentication, so a flood of it
/// costs the database one `SELECT 1` a second, not one per request.
const REUSE: Duration = Duration::from_secs(1);

/// What `/healthz` checks, and the name it answers with.
pub struct Health {
    store: Store,
    root: Option<PathBuf>,
    /// This gateway's node id (header `kura-node`).
    pub node_id: String,
    /// The last probe: when, and its answer; requests arriving during a probe wait for it.
    last: tokio::sync::Mutex<Option<(Instant, Result<(), &'static str>)>>,
}

impl Health {
    /// Checks of `store` (`SELECT 1`) and, for the `fs` backend, of its folder `root`.
    pub fn new(store: Store, root: Option<PathBuf>, node_id: String) -> Self {
        Health {
            store,
            root,
            node_id,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// `Ok` when the database answers and the storage root is a folder; else what is not
    /// (the answer of a probe less than a second old).
    pub async fn probe(&self) -> Result<(), &'static str> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last {
            if at.elapsed() < REUSE {
                return answer;
            }
        }
        let answer = self.check().await;
        *last = Some((Instant::now(), answer));
        answer
    }

    async fn check(&self) -> Result<(), &'static str> {
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
