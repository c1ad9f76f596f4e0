//! The settings the TLS layer reads, taken from the configuration, so that it sees its own
//! keys and nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::Config;

/// TLS and ACME settings (see the `tls*` keys of `Config`).
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// Serve HTTPS at all.
    pub tls: bool,
    /// Where the generated certificate and the ACME state live.
    pub data_dir: PathBuf,
    /// Operator-provided certificate chain.
    pub tls_cert: Option<PathBuf>,
    /// Operator-provided key.
    pub tls_key: Option<PathBuf>,
    /// Extra names of the generated certificate.
    pub tls_names: Vec<String>,
    /// Names to get a certificate for by ACME.
    pub tls_acme_domains: Vec<String>,
    /// Contact address given to the ACME CA.
    pub tls_acme_email: Option<String>,
    /// ACME directory URL.
    pub tls_acme_directory: String,
    /// Root certificate to trust for the ACME directory (test CAs).
    pub tls_acme_ca: Option<PathBuf>,
    /// Plain-HTTP listener for http-01 and redirects.
    pub tls_acme_http_listen: Option<SocketAddr>,
    /// Where the port-80 listener redirects to, when set.
    pub public_url: Option<String>,
    /// The HTTPS listener's address (its port is the redirect target otherwise).
    pub listen: SocketAddr,
}

impl Config {
    /// The part of the configuration the TLS layer needs.
    pub fn tls_settings(&self) -> TlsSettings {
        TlsSettings {
            tls: self.tls,
            data_dir: self.data_dir.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_names: self.tls_names.clone(),
            tls_acme_domains: self.tls_acme_domains.clone(),
            tls_acme_email: self.tls_acme_email.clone(),
            tls_acme_directory: self.tls_acme_directory.clone(),
            tls_acme_ca: self.tls_acme_ca.clone(),
            tls_acme_http_listen: self.tls_acme_http_listen,
            public_url: self.public_url.clone(),
            listen: self.listen,
        }
    }
}
