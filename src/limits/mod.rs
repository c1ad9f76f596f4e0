//! Rate limits in front of the adapters: who the client is (behind trusted proxies), how fast
//! it may call share links, how fast a share may send, and failed-authentication throttling.

pub mod attempt;
pub mod ip;
pub mod pace;
pub mod throttle;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

pub use ip::TrustedProxies;
pub use pace::Pacer;
pub use throttle::{FailedAuth, Outcome, Refusal, ThrottleView};

/// The `[limits]` section of the configuration; see docs/configuration.md.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Requests per second one client address may make to share links (0: unlimited).
    pub share_requests_per_second: u32,
    /// Requests a client may make at once before the per-second rate applies.
    pub share_burst: u32,
    /// Bytes per second one share may send, over all its downloads together (0: unlimited).
    pub share_bytes_per_second: u64,
    /// Failed authentications per client address and account (or share) within the window
    /// before that address gets 429 for that account (0: off).
    pub auth_failures: u32,
    /// Failed authentications per client address, whatever the account, within the window;
    /// beyond it every attempt from the address on an account it has not logged in to waits a
    /// delay that doubles per failure, up to `auth_delay_max_ms` (0: off).
    pub auth_failures_per_ip: u32,
    /// Failed authentications per account over all addresses within the window; beyond it the
    /// account gets 429 from every address it has not logged in from (0: off).
    pub auth_failures_per_account: u32,
    /// The window of the failure counters, in seconds.
    pub auth_failure_window_seconds: u64,
    /// Longest delay of an attempt from an address over its budget, in milliseconds; attempts
    /// that would wait longer get 429.
    pub auth_delay_max_ms: u64,
    /// Proxies whose `client_ip_header` is believed (addresses or CIDRs).
    pub trusted_proxies: Vec<String>,
    /// The one header a trusted proxy sets to the client's address: `X-Forwarded-For`
    /// (a list, nearest last), `Forwarded` (RFC 7239), `X-Real-IP`, ...
    pub client_ip_header: String,
    /// Most connections open at once (0: no cap); lowered at start to what the descriptor
    /// limit (`ulimit -n`) leaves after a reserve for files and the database.
    pub max_connections: u32,
    /// Most connections from one client address (trusted proxies exempt; 0: no cap).
    pub max_connections_per_ip: u32,
    /// Seconds a client has to send a request's headers (HTTP/1; 0: no limit).
    pub header_read_timeout_seconds: u64,
    /// Seconds a client has to complete the TLS handshake.
    pub tls_handshake_timeout_seconds: u64,
    /// Seconds a connection may stay open with no request in flight (0: no limit).
    pub idle_timeout_seconds: u64,
    /// Seconds between HTTP/2 pings; a connection that does not answer one within as long is
    /// closed (0: no pings).
    pub http2_keep_alive_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            share_requests_per_second: 20,
            share_burst: 40,
            share_bytes_per_second: 0,
            auth_failures: 5,
            auth_failures_per_ip: 20,
            auth_failures_per_account: 100,
            auth_failure_window_seconds: 900,
            auth_delay_max_ms: 30_000,
            trusted_proxies: Vec::new(),
            client_ip_header: "X-Forwarded-For".into(),
            max_connections: 1024,
            max_connections_per_ip: 128,
            header_read_timeout_seconds: 30,
            tls_handshake_timeout_seconds: 10,
            idle_timeout_seconds: 60,
            http2_keep_alive_seconds: 30,
        }
    }
}

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
        Ok(Limits {
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

    /// Admits one anonymous request from `ip` (to a share link, or a public S3 read: one
    /// budget for both), or says how long to wait.
    pub fn admit_share_request(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(l) = &self.share_requests else {
            return Ok(());
        };
        l.check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(l.clock().now()))
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
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn share_requests_are_limited_per_address() {
        let l = Limits::new(&LimitsConfig {
            share_requests_per_second: 1,
            share_burst: 3,
            ..LimitsConfig::default()
        })
        .unwrap();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.admit_share_request(a).is_ok());
        }
        let wait = l.admit_share_request(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(l.admit_share_request(b).is_ok());
    }
}
