//! `/healthz`: whether this gateway can serve, database and storage included.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;

use crate::store::Store;

/// How long the storage check (the root's stat, or the store's answer) may take.
const STAT_TIMEOUT: Duration = Duration::from_secs(1);

/// What of the storage `/healthz` checks.
pub enum StorageCheck {
    /// The `fs` backend's root: a folder.
    Folder(PathBuf),
    /// An object store (s3, ...): one page of at most one key of its root answers.
    Store(opendal::Operator),
    /// Nothing to reach (the `memory` backend).
    Nothing,
}

/// How long a probe's answer is reused: `/healthz` needs no authentication, so a flood of it
/// costs the database one `SELECT 1` a second, not one per request.
const REUSE: Duration = Duration::from_secs(1);

/// What `/healthz` checks, and the name it answers with.
pub struct Health {
    store: Store,
    storage: StorageCheck,
    /// This gateway's node id (header `kura-node`).
    pub node_id: String,
    /// The last probe: when, and its answer; requests arriving during a probe wait for it.
    last: tokio::sync::Mutex<Option<(Instant, Result<(), &'static str>)>>,
}

impl Health {
    /// Checks of `store` (`SELECT 1`) and of `storage`.
    pub fn new(store: Store, storage: StorageCheck, node_id: String) -> Self {
        Health {
            store,
            storage,
            node_id,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// `Ok` when the database answers and the storage does (its root is a folder, or the
    /// object store lists its root within a second); else what is not
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
        match &self.storage {
            StorageCheck::Folder(root) => {
                let stat = tokio::time::timeout(STAT_TIMEOUT, tokio::fs::metadata(root)).await;
                if !matches!(stat, Ok(Ok(m)) if m.is_dir()) {
                    tracing::warn!(root = %root.display(), "health: the storage root is not reachable");
                    return Err("storage unreachable\n");
                }
            }
            StorageCheck::Store(op) => {
                let list = async {
                    let mut page = op.lister_with("").limit(1).await?;
                    page.try_next().await
                };
                match tokio::time::timeout(STAT_TIMEOUT, list).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "health: the object store does not answer");
                        return Err("storage unreachable\n");
                    }
                    Err(_) => {
                        tracing::warn!("health: the object store did not answer within a second");
                        return Err("storage unreachable\n");
                    }
                }
            }
            StorageCheck::Nothing => {}
        }
        Ok(())
    }
}
