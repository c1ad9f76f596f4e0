//! In-process read/write locks by file path, so a read never pairs one version's metadata
//! with another version's bytes.
//!
//! A commit renames the new bytes into place inside its SQL transaction, so between that
//! rename and the commit a reader sees the old row over the new file (same size: nothing
//! tells them apart). Readers take a path's lock shared while they look the row up and open
//! the file; commits take it exclusive around the rename and the transaction. Paths share
//! a fixed number of stripes: memory stays constant, an unrelated path waits at worst for
//! one commit.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// Stripes of the path locks (a power of two is not needed; a prime spreads well).
const STRIPES: usize = 61;

/// Read/write locks shared by every clone of the core.
#[derive(Clone)]
pub(super) struct PathLocks(Arc<Vec<Arc<RwLock<()>>>>);

impl Default for PathLocks {
    fn default() -> Self {
        PathLocks(Arc::new(
            (0..STRIPES).map(|_| Arc::new(RwLock::new(()))).collect(),
        ))
    }
}

impl PathLocks {
    fn stripe(&self, path: &str) -> Arc<RwLock<()>> {
        let mut h = DefaultHasher::new();
        path.hash(&mut h);
        self.0[(h.finish() % STRIPES as u64) as usize].clone()
    }

    /// Held while a reader looks up a file's row and opens its bytes.
    pub(super) async fn read(&self, path: &str) -> OwnedRwLockReadGuard<()> {
        self.stripe(path).read_owned().await
    }

    /// Held while a commit puts new bytes and their row in place.
    pub(super) async fn write(&self, path: &str) -> OwnedRwLockWriteGuard<()> {
        self.stripe(path).write_owned().await
    }
}
