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
pub use throttle::FailedAuth;

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
    /// before further attempts get 429 (0: no throttling).
    pub auth_failures: u32,
    /// Failed authentications per client address, whatever the account, within the window.
    pub auth_failures_per_ip: u32,
    /// The window of the failure counters, in seconds.
    pub auth_failure_window_seconds: u64,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers are believed (addresses or CIDRs).
    pub trusted_proxies: Vec<String>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            share_requests_per_second: 20,
            share_burst: 40,
            share_bytes_per_second: 0,
            auth_failures: 5,
            auth_failures_per_ip: 20,
            auth_failure_window_seconds: 900,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Errors in the `[limits]` settings.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// A trusted proxy is neither an address nor a CIDR block.
    #[error("trusted_proxies: {0:?} is not an IP address or CIDR block")]
    BadProxy(String),
}

/// Every limiter of the server, shared by all connections.
pub struct Limits {
    proxies: TrustedProxies,
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
            proxies: TrustedProxies::parse(&cfg.trusted_proxies)?,
            share_requests,
            pacer: Pacer::new(cfg.share_bytes_per_second),
            failures: FailedAuth::new(
                cfg.auth_failures,
                cfg.auth_failures_per_ip,
                Duration::from_secs(cfg.auth_failure_window_seconds.max(1)),
            ),
        })
    }

    /// The client's address: the peer, or what a trusted proxy says it forwarded for.
    pub fn client_ip(&self, peer: SocketAddr, headers: &http::HeaderMap) -> IpAddr {
        self.proxies.client_ip(peer.ip(), headers)
    }

    /// Admits one request to a share link from `ip`, or says how long to wait.
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
