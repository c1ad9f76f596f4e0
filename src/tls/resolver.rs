//! Picks the certificate for each handshake: the one in use, or a tls-alpn-01 challenge answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::store::CertStore;

/// The ALPN protocol of ACME TLS validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// rustls' certificate source: reads the store on every handshake, so a swap counts at once.
#[derive(Debug)]
pub struct CertResolver {
    store: Arc<CertStore>,
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    /// A resolver serving `store`'s certificate.
    pub fn new(store: Arc<CertStore>) -> CertResolver {
        CertResolver {
            store,
            challenges: Mutex::new(HashMap::new()),
        }
    }

    /// Answers tls-alpn-01 validation for `name` with `cert` until removed.
    pub fn add_challenge(&self, name: &str, cert: Arc<CertifiedKey>) {
        if let Ok(mut m) = self.challenges.lock() {
            m.insert(name.to_ascii_lowercase(), cert);
        }
    }

    /// Stops answering validation for `name`.
    pub fn remove_challenge(&self, name: &str) {
        if let Ok(mut m) = self.challenges.lock() {
            m.remove(&name.to_ascii_lowercase());
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if validation {
            // only a pending challenge answers; anything else fails the handshake
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.challenges.lock().ok()?.get(&name).cloned();
        }
        Some(self.store.current().key.clone())
    }
}
