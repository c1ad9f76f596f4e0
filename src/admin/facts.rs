//! Facts about the running server (release, uptime, TLS certificate, storage), for the
//! console and for scripts: what `kura status` tells on the machine, over the admin API.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::{Admin, AdminError};

/// What only the running server knows, handed to `Admin::facts` by the router.
pub struct Runtime {
    /// When the server started, ms since the epoch.
    pub started_ms: i64,
    /// The OpenDAL service holding file contents (`fs`, `memory`, `s3`, ...).
    pub backend: String,
    /// The certificate in use (it may be swapped while the server runs); None without TLS.
    pub cert: Option<Arc<crate::tls::CertStore>>,
}

/// The server's facts.
#[derive(Serialize, ToSchema)]
pub struct FactsView {
    /// The release and the git commit it was built from.
    pub version: String,
    /// This node's replication id.
    pub node_id: String,
    pub started_ms: i64,
    pub uptime_seconds: i64,
    /// SHA-256 of the certificate served now (`AB:CD:...`); null when TLS is off (a proxy in front).
    pub tls_fingerprint: Option<String>,
    /// Days until that certificate expires.
    pub tls_days_left: Option<i64>,
    /// `self-signed`, `files` or `acme`.
    pub tls_source: Option<String>,
    /// The storage backend of file contents.
    pub storage_backend: String,
    /// The base of share links.
    pub public_url: String,
}

/// The release and commit, as `kura --version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BUILD_GIT_COMMIT"),
    ")"
);

impl Admin {
    /// The running server's facts.
    pub async fn facts(&self, rt: &Runtime) -> Result<FactsView, AdminError> {
        let cert = rt.cert.as_ref().map(|c| (c.current(), c.days_left()));
        Ok(FactsView {
            version: VERSION.into(),
            node_id: self.store.node_id().await?,
            started_ms: rt.started_ms,
            uptime_seconds: ((crate::store::now_ms() - rt.started_ms) / 1000).max(0),
            tls_fingerprint: cert.as_ref().map(|(c, _)| c.info.fingerprint.clone()),
            tls_days_left: cert.as_ref().map(|(_, d)| *d),
            tls_source: cert.as_ref().map(|(c, _)| c.info.source.to_string()),
            storage_backend: rt.backend.clone(),
            public_url: self.public_url.clone(),
        })
    }
}
