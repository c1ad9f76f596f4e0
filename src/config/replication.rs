//! The `[replication]` section: peer replication timings (used by `crate::replication`).

use serde::{Deserialize, Serialize};

/// The `[replication]` section of the configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationConfig {
    /// Longest wait between retries of a failing shipment (the backoff doubles up to it).
    pub retry_max_seconds: u64,
    /// Seconds between background reconciles of every rule (0: never).
    pub reconcile_seconds: u64,
    /// Wait after the peer refuses our credentials (401/403): retrying sooner would trip its
    /// failed-login throttle and lock out every client of this address there.
    pub refused_retry_seconds: u64,
    /// Days a deletion is remembered for peers (fractions allowed): a resync trusts a
    /// tombstone this young, and a peer away longer than this is warned about.
    pub tombstone_days: f64,
    /// Seconds between two reads of a mailbox a peer is reached through (each is a LIST
    /// request to the bucket's provider: see docs/replication.md for the cost).
    pub mailbox_poll_seconds: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            retry_max_seconds: 60,
            reconcile_seconds: 3600,
            refused_retry_seconds: 900,
            tombstone_days: 30.0,
            mailbox_poll_seconds: 10,
        }
    }
}

impl ReplicationConfig {
    /// How long deletions are remembered (`tombstone_days`).
    pub fn tombstone_keep(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64((self.tombstone_days * 86_400.0).max(1.0))
    }
}
