//! The `[limits]` section: rate limits, failed-authentication throttling, connection caps
//! and timeouts (enforced by `crate::limits`).

use serde::{Deserialize, Serialize};

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
