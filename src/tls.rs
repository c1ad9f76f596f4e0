//! TLS: the configured certificate, or a self-signed one generated once and kept in the data dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256};

use crate::config::Config;

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
    /// rustls rejected the certificate or key.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// Only one of tls_cert and tls_key was set.
    #[error("tls_cert and tls_key must be set together")]
    Half,
    /// There is no certificate to read (TLS off, wrong folder, or the server never started).
    #[error("no TLS certificate at {0}{1}")]
    NoCertificate(PathBuf, &'static str),
}

/// A ready rustls configuration and the certificate's SHA-256 fingerprint (for pinning).
pub struct Tls {
    /// Server configuration with ALPN h2 and http/1.1.
    pub config: Arc<ServerConfig>,
    /// Colon-separated SHA-256 of the leaf certificate.
    pub fingerprint: String,
    /// Where the certificate was read from.
    pub cert_path: PathBuf,
}

/// Paths of the generated certificate and key inside the data dir.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Loads the configured pair, or generates (first start) / reuses (later starts) a self-signed one.
pub fn load_or_generate(cfg: &Config) -> Result<Tls, TlsError> {
    let (cert_path, key_path) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => {
            let (c, k) = generated_paths(&cfg.data_dir);
            if !c.exists() || !k.exists() {
                generate(&c, &k, &cfg.tls_names)?;
                tracing::info!(cert = %c.display(), "generated a self-signed TLS certificate");
            }
            (c, k)
        }
        _ => return Err(TlsError::Half),
    };
    let (certs, fingerprint) = read_chain(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| TlsError::Pem(key_path.clone(), e.to_string()))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        fingerprint,
        cert_path,
    })
}

/// The fingerprint and path of the certificate in use, read only: nothing is generated.
pub fn current_fingerprint(cfg: &Config) -> Result<(String, PathBuf), TlsError> {
    let cert_path = match &cfg.tls_cert {
        Some(c) => c.clone(),
        None => generated_paths(&cfg.data_dir).0,
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
    let (_, fp) = read_chain(&cert_path)?;
    Ok((fp, cert_path))
}

/// The certificates of a PEM file and the fingerprint of the first (the server's own).
fn read_chain(path: &Path) -> Result<(Vec<CertificateDer<'static>>, String), TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Pem(path.to_path_buf(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(path.to_path_buf(), e.to_string()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| TlsError::Pem(path.to_path_buf(), "no certificate found".into()))?;
    let fp = fingerprint(leaf.as_ref());
    Ok((certs, fp))
}

fn generate(cert_path: &Path, key_path: &Path, extra: &[String]) -> Result<(), TlsError> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() && h != "localhost" {
            names.push(h.to_string());
        }
    }
    names.extend(extra.iter().cloned());
    let ck = rcgen::generate_simple_self_signed(names)?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TlsError::Io(dir.to_path_buf(), e))?;
    }
    write_private(key_path, ck.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, ck.cert.pem())
        .map_err(|e| TlsError::Io(cert_path.to_path_buf(), e))?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TlsError::Io(path.to_path_buf(), e))?;
    f.write_all(bytes)
        .map_err(|e| TlsError::Io(path.to_path_buf(), e))
}

/// SHA-256 of a DER certificate as `AB:CD:...`, the form browsers and `openssl x509 -fingerprint` show.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_the_fingerprint_never_generates_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        assert!(matches!(
            current_fingerprint(&cfg),
            Err(TlsError::NoCertificate(..))
        ));
        assert!(!dir.path().join("tls").exists());
    }

    #[test]
    fn generated_certificate_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let a = load_or_generate(&cfg).unwrap();
        let b = load_or_generate(&cfg).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(current_fingerprint(&cfg).unwrap().0, a.fingerprint);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
    }
}
