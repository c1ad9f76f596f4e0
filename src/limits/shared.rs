//! Throttle counts shared by every gateway on one database (docs/scale-out.md, "Shared
//! throttles"), behind the in-memory ones of each gateway. A count that does not answer
//! within `SHARED_WAIT` is skipped (the in-memory counters still apply): the database being
//! down never makes a login hang, and a login cannot succeed without the database anyway.

use std::time::Duration;

/// Longest wait for a shared count before the attempt goes on with the gateway's own.
pub const SHARED_WAIT: Duration = Duration::from_secs(1);

/// Counters in a store every gateway reaches (the database on PostgreSQL).
#[async_trait::async_trait]
pub trait Windows: Send + Sync {
    /// Counts one event of `key` in its window; the count and the time left.
    async fn count(&self, key: &str, window: Duration) -> Result<(i64, Duration), String>;
    /// Takes back one event of `key`'s open window.
    async fn uncount(&self, key: &str) -> Result<(), String>;
    /// The count of `key`'s open window and the time left.
    async fn read(&self, key: &str) -> Result<(i64, Duration), String>;
    /// Forgets the failed-authentication windows of an address, an account, their pair, or
    /// (both `None`) everyone's.
    async fn forget(&self, ip: Option<String>, account: Option<String>) -> Result<u64, String>;
    /// One request of `key` against one per `interval` with bursts of `burst`: admitted, or
    /// how long to wait.
    async fn admit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Result<(), Duration>, String>;
}

/// `f` within `SHARED_WAIT`, or `None` (logged) when it fails or is late.
pub async fn within<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Option<T> {
    match tokio::time::timeout(SHARED_WAIT, f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, what, "shared throttle count failed: this gateway's own counts apply");
            None
        }
        Err(_) => {
            tracing::warn!(
                what,
                "shared throttle count too slow: this gateway's own counts apply"
            );
            None
        }
    }
}
