//! HTTPS to a peer whose self-signed certificate is pinned by its SHA-256 fingerprint.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::ReplError;

/// A fingerprint in the stored form (`AB:CD:...`) from `sha256:abcd...`, `AB:CD:...` or hex.
pub fn normalize(fp: &str) -> Result<String, ReplError> {
    let t = fp.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ReplError::Invalid(format!(
            "not a SHA-256 fingerprint: {fp} (expected sha256:<64 hex digits>)"
        )));
    }
    let upper = hex.to_ascii_uppercase();
    Ok(upper
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(":"))
}

/// Accepts exactly the certificate with the pinned fingerprint (names and CAs do not matter).
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = crate::tls::fingerprint(end_entity.as_ref());
        if got == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "peer certificate fingerprint {got} is not the pinned {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An HTTP client for one peer: pinned when a fingerprint is given, else the system's roots.
pub fn client(fingerprint: Option<&str>) -> Result<reqwest::Client, ReplError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(120))
        // a peer busy writing (rebuilding a large file from a delta, a slow disk) keeps its
        // receive window closed for a while; reqwest's default 30 s TCP user timeout would
        // cut that live transfer. A dead peer is still found by the read timeout.
        .tcp_user_timeout(None)
        .pool_idle_timeout(std::time::Duration::from_secs(60));
    let builder = match fingerprint {
        Some(fp) => {
            let verifier = Pinned {
                fingerprint: normalize(fp)?,
                provider: provider.clone(),
            };
            let cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ReplError::Invalid(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            builder.tls_backend_preconfigured(cfg)
        }
        None => {
            // reqwest's platform verifier needs a process-wide provider
            let _ = rustls::crypto::ring::default_provider().install_default();
            builder
        }
    };
    builder
        .build()
        .map_err(|e| ReplError::Invalid(format!("HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_read_in_every_common_form() {
        let hex = "ab".repeat(32);
        let want = vec!["AB"; 32].join(":");
        assert_eq!(normalize(&format!("sha256:{hex}")).unwrap(), want);
        assert_eq!(normalize(&want).unwrap(), want);
        assert_eq!(normalize(&hex.to_uppercase()).unwrap(), want);
        assert!(normalize("sha256:abcd").is_err());
        assert!(normalize(&"zz".repeat(32)).is_err());
    }
}
