//! Rate limits in front of the adapters: who the client is (behind trusted proxies), how fast
//! it may call share links, how fast a share may send, and failed-authentication throttling.

pub mod ip;
pub mod pace;
pub mod shared;
pub mod throttle;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub use crate::config::LimitsConfig;

pub use ip::{budget_key, AddressSet, TrustedProxies};
pub use pace::Pacer;
pub use shared::Windows;
pub use throttle::{FailedAuth, Outcome, Refusal, ThrottleView};

/// Errors in the `[limits]` settings.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// A trusted proxy is neither an address nor a CIDR block.
    #[error("trusted_proxies: {0:?} is not an IP address or CIDR block")]
    BadProxy(String),
    /// `client_ip_header` is not a header name.
    #[error("client_ip_header: {0:?} is not a header name")]
    BadHeader(String),
    /// A timeout that cannot be off is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Connection limits and timeouts of the listener.
#[derive(Clone, Debug)]
pub struct NetLimits {
    /// Most connections at once (after the descriptor limit).
    pub max_connections: usize,
    /// Most connections per client address.
    pub max_connections_per_ip: usize,
    /// Time to send a request's headers.
    pub header_read: Option<Duration>,
    /// Time to complete the TLS handshake.
    pub tls_handshake: Duration,
    /// Time without a request in flight before a connection is closed.
    pub idle: Option<Duration>,
    /// HTTP/2 ping interval (and timeout).
    pub http2_keep_alive: Option<Duration>,
}

impl NetLimits {
    fn new(cfg: &LimitsConfig) -> Result<Self, LimitsError> {
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        if cfg.tls_handshake_timeout_seconds == 0 {
            return Err(LimitsError::Zero("tls_handshake_timeout_seconds"));
        }
        let mut max = cfg.max_connections as usize;
        if let Some(fds) = descriptor_limit() {
            // a quarter of the descriptors (at least 32) stay for files, the database, the log
            let room = fds.saturating_sub((fds / 4).max(32)).max(1);
            if max == 0 || max > room {
                max = room;
            }
        }
        Ok(NetLimits {
            max_connections: max,
            max_connections_per_ip: cfg.max_connections_per_ip as usize,
            header_read: secs(cfg.header_read_timeout_seconds),
            tls_handshake: Duration::from_secs(cfg.tls_handshake_timeout_seconds),
            idle: secs(cfg.idle_timeout_seconds),
            http2_keep_alive: secs(cfg.http2_keep_alive_seconds),
        })
    }
}

impl NetLimits {
    /// The time a client has to send a small body read whole (JSON, a form, an XML document)
    /// from the start of its request: the time it has for the request's headers (30 s when
    /// that timeout is off), so a trickled body holds a connection no longer than trickled
    /// headers. Uploads and other streamed bodies have no such deadline.
    pub fn small_body(&self) -> Duration {
        self.header_read.unwrap_or(Duration::from_secs(30))
    }
}

/// The soft limit on open files (`ulimit -n`), from /proc on Linux.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Every limiter of the server, shared by all connections.
pub struct Limits {
    proxies: TrustedProxies,
    /// Connection caps and timeouts.
    pub net: NetLimits,
    share_requests: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// The share budget: one request per this long, bursts of so many.
    share_budget: (Duration, u32),
    /// The counts shared with the other gateways on the database, when there are any.
    shared: std::sync::OnceLock<Arc<dyn Windows>>,
    /// Bandwidth caps of share downloads.
    pub pacer: Pacer,
    /// Failed-authentication throttling for every entry point.
    pub failures: FailedAuth,
}

impl Limits {
    /// Builds the limiters from the configuration.
    pub fn new(cfg: &LimitsConfig) -> Result<Self, LimitsError> {
        let share_requests = NonZeroU32::new(cfg.share_requests_per_second).map(|rate| {
            let burst = NonZeroU32::new(cfg.share_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let rate = cfg.share_requests_per_second.max(1);
        let share_budget = (
            Duration::from_secs(1) / rate,
            if cfg.share_burst == 0 {
                rate
            } else {
                cfg.share_burst
            },
        );
        Ok(Limits {
            share_budget,
            shared: std::sync::OnceLock::new(),
            proxies: TrustedProxies::parse(&cfg.trusted_proxies, &cfg.client_ip_header)?,
            net: NetLimits::new(cfg)?,
            share_requests,
            pacer: Pacer::new(cfg.share_bytes_per_second),
            failures: FailedAuth::new(
                cfg.auth_failures,
                cfg.auth_failures_per_ip,
                cfg.auth_failures_per_account,
                Duration::from_secs(cfg.auth_failure_window_seconds.max(1)),
                Duration::from_millis(cfg.auth_delay_max_ms),
            ),
        })
    }

    /// The client's address: the peer, or what a trusted proxy says it forwarded for.
    pub fn client_ip(&self, peer: SocketAddr, headers: &http::HeaderMap) -> IpAddr {
        self.proxies.client_ip(peer.ip(), headers)
    }

    /// Whether connections from `ip` come from a trusted proxy (no per-address cap).
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.proxies.trusts(ip)
    }

    /// Counts the throttles in `windows` too, shared with every gateway on the database
    /// (PostgreSQL); each gateway's own counters stay in front of them.
    pub fn share_with(&self, windows: Arc<dyn Windows>) {
        self.failures.share_with(windows.clone());
        let _ = self.shared.set(windows);
    }

    /// Admits one anonymous request from `ip` (to a share link, or a public S3 read: one
    /// budget for both), or says how long to wait. On several gateways the budget is counted
    /// across them once this gateway's own admits the request.
    pub async fn admit_share_request(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(l) = &self.share_requests else {
            return Ok(());
        };
        let key = ip::budget_key(ip);
        l.check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(l.clock().now()))?;
        let Some(w) = self.shared.get() else {
            return Ok(());
        };
        let (interval, burst) = self.share_budget;
        let admitted = shared::within(
            "share budget",
            w.admit(&format!("share:{key}"), interval, burst),
        )
        .await;
        admitted.unwrap_or(Ok(()))
    }

    /// Drops the state of clients and shares idle long enough to be back at a full budget.
    pub fn housekeeping(&self) {
        if let Some(l) = &self.share_requests {
            l.retain_recent();
            l.shrink_to_fit();
        }
        self.pacer.housekeeping();
        self.failures.housekeeping();
    }

    /// Runs `housekeeping` every minute.
    pub fn spawn_housekeeping(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match me.upgrade() {
                    Some(l) => l.housekeeping(),
                    None => return,
                }
            }
        });
    }
}

/// Seconds for a `Retry-After` header: whole seconds, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_be_enforced_stop_the_start() {
        // main refuses to run any command with these (exit 2)
        for bad in [
            LimitsConfig {
                trusted_proxies: vec!["not-an-address".into()],
                ..LimitsConfig::default()
            },
            LimitsConfig {
                client_ip_header: "bad header".into(),
                ..LimitsConfig::default()
            },
        ] {
            assert!(Limits::new(&bad).is_err());
        }
        assert!(Limits::new(&LimitsConfig::default()).is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn share_requests_are_limited_per_address() {
        let l = Limits::new(&LimitsConfig {
            share_requests_per_second: 1,
            share_burst: 3,
            ..LimitsConfig::default()
        })
        .unwrap();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.admit_share_request(a).await.is_ok());
        }
        let wait = l.admit_share_request(a).await.unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(l.admit_share_request(b).await.is_ok());
    }
}
