//! Throttle counts shared by every gateway on one database (docs/scale-out.md, "Shared
//! throttles"), behind the in-memory ones of each gateway. A count that does not answer in
//! time (`SHARED_WAIT`, or `COLD_WAIT` when no count succeeded lately) is skipped (the
//! in-memory counters still apply), and none is tried for `REST` after it: the database
//! being down never makes a login hang, and a login cannot succeed without it anyway.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest wait for a shared count while the database answered one lately (`WARM`): it is
/// there, perhaps busy.
pub const SHARED_WAIT: Duration = Duration::from_secs(2);
/// Longest wait for a shared count otherwise (perhaps it is down).
pub const COLD_WAIT: Duration = Duration::from_millis(300);
/// How long after a successful count the database counts as there.
const WARM: Duration = Duration::from_secs(10);
/// How long shared counts are not tried after one failed or was late.
pub const REST: Duration = Duration::from_secs(5);

/// The last successful count, and until when counts are not tried (one database per process).
static STATE: Mutex<(Option<Instant>, Option<Instant>)> = Mutex::new((None, None));

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

/// `f` in time, or `None` when it fails or is late (logged; then for `REST` every call is
/// `None` at once, `f` not run).
pub async fn within<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Option<T> {
    let state = || STATE.lock().unwrap_or_else(|e| e.into_inner());
    let resting = |r: &Option<Instant>| r.is_some_and(|t| Instant::now() < t);
    let wait = {
        let st = state();
        if resting(&st.1) {
            return None;
        }
        match st.0.is_some_and(|t| t.elapsed() < WARM) {
            true => SHARED_WAIT,
            false => COLD_WAIT,
        }
    };
    let error = match tokio::time::timeout(wait, f).await {
        Ok(Ok(v)) => {
            state().0 = Some(Instant::now());
            return Some(v);
        }
        Ok(Err(e)) => e,
        Err(_) => format!("no answer within {} ms", wait.as_millis()),
    };
    let mut st = state();
    if !resting(&st.1) {
        st.1 = Some(Instant::now() + REST);
        tracing::warn!(%error, what, rest_s = REST.as_secs(),
            "shared throttle count failed: this gateway's own counts apply meanwhile");
    }
    None
}
