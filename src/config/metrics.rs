//! The `[metrics]` section: who may read `/metrics` (used by `crate::http::metrics`).

use serde::{Deserialize, Serialize};

/// The `[metrics]` section of the configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all (false: 404, as for any unknown path).
    pub enabled: bool,
    /// Client addresses or CIDR blocks that may scrape without a token (default: this
    /// machine only). A request forwarded by an untrusted proxy never counts as from here.
    pub allow: Vec<String>,
    /// A bearer token that lets any address scrape (`Authorization: Bearer ...`); unset: none.
    pub token: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            allow: vec!["127.0.0.1".into(), "::1".into()],
            token: None,
        }
    }
}
