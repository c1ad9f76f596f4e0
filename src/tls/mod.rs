//! TLS: the certificate Kura serves (self-signed, the operator's files, or ACME), swapped for
//! new connections without a restart while open connections keep theirs.

mod acme;
mod certs;
mod http01;
mod reload;
mod renew;
mod resolver;
mod status;
mod store;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;

use crate::config::TlsSettings;

pub use certs::fingerprint;
pub use resolver::ACME_TLS_ALPN;
pub use status::{in_use, print_status};
pub use store::CertStore;

use acme::AcmeSettings;
use certs::{Served, Source};

/// Errors preparing TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A PEM file held nothing usable.
    #[error("{0}: {1}")]
    Pem(PathBuf, String),
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// Only one of tls_cert and tls_key was set.
    #[error("tls_cert and tls_key must be set together")]
    Half,
    /// An ACME setting is unusable.
    #[error("invalid ACME configuration: {0}")]
    AcmeConfig(String),
    /// There is no certificate to read (TLS off, wrong folder, or the server never started).
    #[error("no TLS certificate at {0}{1}")]
    NoCertificate(PathBuf, &'static str),
    /// The status record is missing or unreadable.
    #[error("{0}")]
    Status(String),
}

/// A ready rustls configuration and the live certificate behind it.
pub struct Tls {
    /// Server configuration with ALPN h2, http/1.1 (and acme-tls/1 for validation).
    pub config: Arc<ServerConfig>,
    /// The certificate in use, for `/healthz`.
    pub store: Arc<CertStore>,
}

/// Where the first certificate comes from, and what keeps it fresh.
enum Plan {
    SelfSigned(PathBuf, PathBuf),
    Files(PathBuf, PathBuf),
    Acme(AcmeSettings),
}

fn plan(cfg: &TlsSettings) -> Result<Plan, TlsError> {
    if !cfg.tls_acme_domains.is_empty() {
        if cfg.tls_cert.is_some() || cfg.tls_key.is_some() {
            return Err(TlsError::AcmeConfig(
                "tls_acme_domains and tls_cert/tls_key exclude each other".into(),
            ));
        }
        return Ok(Plan::Acme(acme_settings(cfg)?));
    }
    match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Ok(Plan::Files(c.clone(), k.clone())),
        (None, None) => {
            let (c, k) = certs::generated_paths(&cfg.data_dir);
            Ok(Plan::SelfSigned(c, k))
        }
        _ => Err(TlsError::Half),
    }
}

fn acme_settings(cfg: &TlsSettings) -> Result<AcmeSettings, TlsError> {
    let mut domains = Vec::new();
    for d in &cfg.tls_acme_domains {
        let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
        if !valid_domain(&d) {
            return Err(TlsError::AcmeConfig(format!(
                "{d:?} is not a DNS name a certificate can be ordered for (no wildcards, no IP addresses)"
            )));
        }
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    if let Some(e) = &cfg.tls_acme_email {
        let ok = e.len() <= 254
            && e.split_once('@')
                .is_some_and(|(u, h)| !u.is_empty() && valid_domain(h))
            && e.chars()
                .all(|c| c.is_ascii_graphic() && !"<>,;\"'`\\".contains(c));
        if !ok {
            return Err(TlsError::AcmeConfig(format!(
                "tls_acme_email {e:?} is not an email address"
            )));
        }
    }
    let directory = cfg.tls_acme_directory.trim().to_string();
    if !directory.starts_with("https://") {
        return Err(TlsError::AcmeConfig(format!(
            "tls_acme_directory {directory:?} is not an https:// URL"
        )));
    }
    if let Some(ca) = &cfg.tls_acme_ca {
        std::fs::metadata(ca).map_err(|e| TlsError::Io(ca.clone(), e))?;
    }
    Ok(AcmeSettings {
        domains,
        email: cfg.tls_acme_email.clone(),
        directory,
        ca: cfg.tls_acme_ca.clone(),
        dir: acme::acme_dir(&cfg.data_dir),
        http01: cfg.tls_acme_http_listen.is_some(),
    })
}

/// A DNS name of letters, digits and hyphens, two labels or more.
fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.split('.').count() >= 2
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && !d.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// The certificate served at start: the stored ACME one, the files, or the self-signed one.
fn first(cfg: &TlsSettings, plan: &Plan) -> Result<Served, TlsError> {
    match plan {
        Plan::Files(c, k) => Served::from_files(c, k, Source::Files),
        Plan::SelfSigned(c, k) => {
            certs::ensure_self_signed(&cfg.data_dir, &cfg.tls_names)?;
            Served::from_files(c, k, Source::SelfSigned)
        }
        Plan::Acme(s) => match acme::stored(s) {
            Some(served) => Ok(served),
            None => {
                // serves until the first ACME certificate arrives
                certs::ensure_self_signed(&cfg.data_dir, &cfg.tls_names)?;
                let (c, k) = certs::generated_paths(&cfg.data_dir);
                Served::from_files(&c, &k, Source::SelfSigned)
            }
        },
    }
}

/// Loads the first certificate, builds the rustls configuration and starts what keeps the
/// certificate fresh (file watch or ACME, and the port-80 listener when configured).
pub async fn start(cfg: &TlsSettings) -> Result<Tls, TlsError> {
    let plan = plan(cfg)?;
    let served = first(cfg, &plan)?;
    tracing::info!(
        fingerprint = %served.info.fingerprint,
        source = %served.info.source,
        names = ?served.info.names,
        not_after = %store::rfc3339(served.info.not_after),
        "TLS certificate (SHA-256)"
    );
    let acme_status = match &plan {
        Plan::Acme(s) => Some(store::AcmeStatus {
            domains: s.domains.clone(),
            directory: s.directory.clone(),
            ..Default::default()
        }),
        _ => None,
    };
    let store = Arc::new(CertStore::new(served, acme_status, &cfg.data_dir));
    let resolver = Arc::new(resolver::CertResolver::new(store.clone()));
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    match plan {
        Plan::Files(c, k) => reload::spawn_file_watch(store.clone(), c, k, Source::Files),
        Plan::SelfSigned(c, k) => reload::spawn_file_watch(store.clone(), c, k, Source::SelfSigned),
        Plan::Acme(s) => {
            config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
            let tokens = Arc::new(Mutex::new(Default::default()));
            if let Some(addr) = cfg.tls_acme_http_listen {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| TlsError::Io(PathBuf::from(addr.to_string()), e))?;
                tracing::info!(%addr, "port-80 listener: http-01 challenges and redirects to HTTPS");
                http01::spawn(
                    l,
                    tokens.clone(),
                    s.domains.clone(),
                    cfg.public_url.clone(),
                    cfg.listen.port(),
                );
            }
            renew::spawn(s, store.clone(), resolver, tokens);
        }
    }
    Ok(Tls {
        config: Arc::new(config),
        store,
    })
}

/// The fingerprint and path of the certificate a start would serve now (the stored ACME one,
/// the files or the generated one), read only: nothing is generated.
pub fn current_fingerprint(cfg: &TlsSettings) -> Result<(String, PathBuf), TlsError> {
    let cert_path = match plan(cfg)? {
        Plan::Files(c, _) => c,
        Plan::SelfSigned(c, _) => c,
        Plan::Acme(s) => Some(s.cert_paths().0)
            .filter(|c| c.is_file())
            .unwrap_or_else(|| certs::generated_paths(&cfg.data_dir).0),
    };
    if !cert_path.is_file() {
        let why = if !cfg.tls {
            " (TLS is off in this configuration)"
        } else if cfg.tls_cert.is_none() {
            " (the server generates it at its first start; is this the right data dir?)"
        } else {
            ""
        };
        return Err(TlsError::NoCertificate(
            crate::install::shown(&cert_path),
            why,
        ));
    }
    Ok((certs::leaf_fingerprint(&cert_path)?, cert_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LETS_ENCRYPT};

    #[test]
    fn reading_the_fingerprint_never_generates_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        assert!(matches!(
            current_fingerprint(&cfg.tls_settings()),
            Err(TlsError::NoCertificate(..))
        ));
        cfg.tls_acme_domains = vec!["files.example.org".into()];
        assert!(matches!(
            current_fingerprint(&cfg.tls_settings()),
            Err(TlsError::NoCertificate(..))
        ));
        assert!(!dir.path().join("tls").exists());
        certs::ensure_self_signed(dir.path(), &[]).unwrap();
        let (fp, path) = current_fingerprint(&cfg.tls_settings()).unwrap();
        assert_eq!(path, certs::generated_paths(dir.path()).0);
        assert_eq!(fp.len(), 32 * 3 - 1);
    }

    #[test]
    fn acme_names_and_addresses_are_checked() {
        for good in ["files.example.org", "a-b.example", "kura.test"] {
            assert!(valid_domain(good), "{good}");
        }
        for bad in [
            "*.example.org",
            "localhost",
            "127.0.0.1",
            "-a.example",
            "a..example",
            "<script>.example",
            "a b.example",
            "",
        ] {
            assert!(!valid_domain(bad), "{bad}");
        }
        let mut cfg = Config {
            tls_acme_domains: vec!["Files.Example.org.".into()],
            ..Config::default()
        };
        let s = acme_settings(&cfg.tls_settings()).unwrap();
        assert_eq!(s.domains, ["files.example.org"]);
        assert_eq!(s.directory, LETS_ENCRYPT);
        cfg.tls_acme_email = Some("a@b.example>, c@evil.example".into());
        assert!(acme_settings(&cfg.tls_settings()).is_err());
        cfg.tls_acme_email = Some("me@example.org".into());
        cfg.tls_acme_directory = "http://plain.example/dir".into();
        assert!(acme_settings(&cfg.tls_settings()).is_err());
        cfg.tls_acme_directory = LETS_ENCRYPT.into();
        cfg.tls_cert = Some("/x.pem".into());
        assert!(matches!(
            plan(&cfg.tls_settings()),
            Err(TlsError::AcmeConfig(_))
        ));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn acme_settings_come_from_the_documented_variables() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "KURA_TLS_ACME_DOMAINS",
                "[\"files.example.org\", \"b.example.org\"]",
            );
            jail.set_env("KURA_TLS_ACME_EMAIL", "me@example.org");
            jail.set_env("KURA_TLS_ACME_DIRECTORY", "https://127.0.0.1:14000/dir");
            jail.create_file("ca.pem", "")?;
            jail.set_env("KURA_TLS_ACME_CA", "ca.pem");
            jail.set_env("KURA_TLS_ACME_HTTP_LISTEN", "0.0.0.0:80");
            let cfg = Config::load(None).expect("config");
            let s = acme_settings(&cfg.tls_settings()).expect("settings");
            assert_eq!(s.domains, ["files.example.org", "b.example.org"]);
            assert_eq!(s.email.as_deref(), Some("me@example.org"));
            assert_eq!(s.directory, "https://127.0.0.1:14000/dir");
            assert_eq!(s.ca, Some(PathBuf::from("ca.pem")));
            assert!(s.http01);
            jail.set_env("KURA_TLS_ACME_CA", "missing.pem");
            let cfg = Config::load(None).expect("config");
            assert!(matches!(
                acme_settings(&cfg.tls_settings()),
                Err(TlsError::Io(..))
            ));
            Ok(())
        });
    }
}
