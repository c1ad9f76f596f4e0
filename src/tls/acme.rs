//! One ACME order (RFC 8555) with instant-acme: account, challenges, finalization, files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use super::certs::{write_pair, write_private, Served, Source};
use super::resolver::CertResolver;

/// Errors of one ACME attempt; the current certificate keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The ACME server or the way to it failed.
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The order did not become ready (a challenge failed).
    #[error("ACME order {0}")]
    Order(String),
    /// Account or certificate files.
    #[error(transparent)]
    Files(#[from] super::TlsError),
    /// The validation certificate could not be made.
    #[error("tls-alpn-01 certificate: {0}")]
    Challenge(String),
}

/// What to order and from whom.
#[derive(Clone, Debug)]
pub struct AcmeSettings {
    /// Names the certificate is for.
    pub domains: Vec<String>,
    /// Contact address given to the CA (expiry warnings).
    pub email: Option<String>,
    /// Directory URL.
    pub directory: String,
    /// PEM root to trust for the directory's own HTTPS (test CAs); system roots otherwise.
    pub ca: Option<PathBuf>,
    /// `<data_dir>/tls/acme`.
    pub dir: PathBuf,
    /// Answer http-01 on the port-80 listener instead of tls-alpn-01 on the TLS port.
    pub http01: bool,
}

impl AcmeSettings {
    /// The stored chain and key.
    pub fn cert_paths(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("cert.pem"), self.dir.join("key.pem"))
    }

    /// The account file for this directory: switching directories keeps each account.
    fn account_path(&self) -> PathBuf {
        let id = super::certs::fingerprint(self.directory.as_bytes()).replace(':', "");
        self.dir.join(format!("account-{}.json", &id[..16]))
    }
}

/// http-01 answers by token, shared with the port-80 listener.
pub type Http01Tokens = Arc<Mutex<HashMap<String, String>>>;

/// The account file: the directory it belongs to and instant-acme's credentials (with the key).
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// Orders a certificate for every domain and stores it; returns it ready to serve.
pub async fn obtain(
    s: &AcmeSettings,
    resolver: &CertResolver,
    tokens: &Http01Tokens,
) -> Result<Served, AcmeError> {
    let account = account(s).await?;
    let ids: Vec<Identifier> = s
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&ids)).await?;
    let mut pending = Pending {
        resolver,
        tokens,
        names: Vec::new(),
        tokens_set: Vec::new(),
    };
    let kind = if s.http01 {
        ChallengeType::Http01
    } else {
        ChallengeType::TlsAlpn01
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(AcmeError::Order(format!("authorization is {other:?}"))),
        }
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| AcmeError::Order(format!("the CA offers no {kind:?} challenge")))?;
        let name = challenge.identifier().to_string();
        let key_auth = challenge.key_authorization();
        if s.http01 {
            pending.token(challenge.token.clone(), key_auth.as_str().to_string());
        } else {
            pending.alpn(&name, alpn_certificate(&name, key_auth.digest().as_ref())?);
        }
        tracing::debug!(%name, challenge = ?kind, "ACME challenge ready");
        challenge.set_ready().await?;
    }
    let patient = RetryPolicy::new()
        .initial_delay(Duration::from_millis(500))
        .timeout(Duration::from_secs(120));
    let status = order.poll_ready(&patient).await?;
    drop(pending);
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(format!("is {status:?}, not ready")));
    }
    let key_pem = order.finalize().await?;
    let chain = order.poll_certificate(&patient).await?;
    let served = Served::from_pem(chain.as_bytes(), key_pem.as_bytes(), Source::Acme)
        .map_err(AcmeError::Order)?;
    let (c, k) = s.cert_paths();
    write_pair(&c, chain.as_bytes(), &k, key_pem.as_bytes())?;
    Ok(served)
}

/// The stored account for the directory, or a new one (saved before first use).
async fn account(s: &AcmeSettings) -> Result<Account, AcmeError> {
    // instant-acme builds its HTTPS client on the process-wide rustls provider
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = || match &s.ca {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    let path = s.account_path();
    if let Ok(bytes) = std::fs::read(&path) {
        match serde_json::from_slice::<StoredAccount>(&bytes) {
            Ok(a) if a.directory == s.directory => {
                return Ok(builder()?.from_credentials(a.credentials).await?);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable ACME account file; creating a new account")
            }
        }
    }
    let contact = s.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            s.directory.clone(),
            None,
        )
        .await?;
    let stored = StoredAccount {
        directory: s.directory.clone(),
        credentials,
    };
    let json = serde_json::to_vec_pretty(&stored)
        .map_err(|e| AcmeError::Order(format!("account serialisation: {e}")))?;
    std::fs::create_dir_all(&s.dir).map_err(|e| super::TlsError::Io(s.dir.clone(), e))?;
    write_private(&path, &json)?;
    tracing::info!(directory = %s.directory, account = %account.id(), "ACME account created");
    Ok(account)
}

/// The RFC 8737 validation certificate: the name, and the key authorization's digest in the
/// critical acmeIdentifier extension.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let bad = |e: rcgen::Error| AcmeError::Challenge(e.to_string());
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(bad)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let cert = params.self_signed(&key).map_err(bad)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // not CertifiedKey::from_der: its key check parses the certificate with webpki, which
    // refuses the critical acmeIdentifier extension
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| AcmeError::Challenge(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

/// Challenge answers set up for one order, taken down when the order is done or fails.
struct Pending<'a> {
    resolver: &'a CertResolver,
    tokens: &'a Http01Tokens,
    names: Vec<String>,
    tokens_set: Vec<String>,
}

impl Pending<'_> {
    fn alpn(&mut self, name: &str, cert: Arc<CertifiedKey>) {
        self.resolver.add_challenge(name, cert);
        self.names.push(name.to_string());
    }

    fn token(&mut self, token: String, key_auth: String) {
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(token.clone(), key_auth);
        }
        self.tokens_set.push(token);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            self.resolver.remove_challenge(n);
        }
        if let Ok(mut t) = self.tokens.lock() {
            for k in &self.tokens_set {
                t.remove(k);
            }
        }
    }
}

/// Reads the stored ACME certificate, if there is one that fits its key.
pub fn stored(s: &AcmeSettings) -> Option<Served> {
    let (c, k) = s.cert_paths();
    if !c.exists() {
        return None;
    }
    Served::from_files(&c, &k, Source::Acme)
        .map_err(|e| tracing::warn!(error = %e, "the stored ACME certificate is unusable"))
        .ok()
}

/// `<data_dir>/tls/acme`.
pub fn acme_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("acme")
}
