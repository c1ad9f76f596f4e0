//! `/metrics`: who may scrape (listed addresses, this machine by default, or anyone with the
//! bearer token) and the scrape itself: the running counters plus the usage, quotas and
//! replication state read from SQL at that moment.

use std::net::IpAddr;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::config::MetricsConfig;
use crate::limits::{AddressSet, Limits};
use crate::metrics::{GroupUsage, RuleState, Snapshot};
use crate::wire::{full, AuthFailed, RespBody};

/// Where Prometheus scrapes.
pub const PATH: &str = "/metrics";

/// Headers a proxy adds for the client it forwards: a request carrying one from a proxy Kura
/// does not trust may come from anywhere, whatever its TCP peer.
const FORWARDING: &[&str] = &["forwarded", "x-forwarded-for", "x-real-ip"];

/// A `[metrics]` setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetricsSetupError {
    /// An `allow` entry is neither an address nor a CIDR block.
    #[error("metrics.allow: {0:?} is not an IP address or CIDR block")]
    BadAddress(String),
    /// A token shorter than 16 characters is guessable.
    #[error("metrics.token must be at least 16 characters")]
    ShortToken,
}

/// Who may read `/metrics`.
pub struct MetricsGate {
    enabled: bool,
    allow: AddressSet,
    /// SHA-256 of the token, so that comparing takes the same time whatever matches.
    token: Option<[u8; 32]>,
}

impl MetricsGate {
    /// Checks and keeps the `[metrics]` settings.
    pub fn new(cfg: &MetricsConfig) -> Result<Self, MetricsSetupError> {
        let allow = AddressSet::parse(&cfg.allow).map_err(MetricsSetupError::BadAddress)?;
        let token = match cfg.token.as_deref().map(str::trim) {
            Some(t) if t.len() < 16 => return Err(MetricsSetupError::ShortToken),
            Some(t) => Some(Sha256::digest(t.as_bytes()).into()),
            None => None,
        };
        Ok(MetricsGate {
            enabled: cfg.enabled,
            allow,
            token,
        })
    }

    /// Whether `/metrics` is served at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Admits a scrape, or answers why not. A request presenting credentials must present the
    /// token (a wrong token counts as a failed authentication); one without must come from a
    /// listed address, directly or through a trusted proxy.
    #[allow(clippy::result_large_err)]
    fn admit<B>(
        &self,
        req: &Request<B>,
        client: IpAddr,
        limits: &Limits,
        peer: IpAddr,
    ) -> Result<(), Response<RespBody>> {
        if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
            let presented = auth
                .to_str()
                .ok()
                .and_then(|a| {
                    a.get(..7)
                        .filter(|p| p.eq_ignore_ascii_case("bearer "))
                        .map(|_| &a[7..])
                })
                .map(|t| <[u8; 32]>::from(Sha256::digest(t.trim().as_bytes())));
            if let (Some(p), Some(t)) = (presented, self.token) {
                if p == t {
                    return Ok(());
                }
            }
            let mut r = refusal(StatusCode::UNAUTHORIZED, "wrong metrics token\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kura-metrics\""),
            );
            // a wrong token counts toward the throttle; a password sent here is not checked
            // (a scraper set up with a user's password must not lock that user out)
            if presented.is_some() {
                r.extensions_mut().insert(AuthFailed);
            }
            return Err(r);
        }
        let forwarded_blindly = !limits.is_trusted_proxy(peer)
            && FORWARDING.iter().any(|h| req.headers().contains_key(*h));
        if self.allow.contains(client) && !forwarded_blindly {
            return Ok(());
        }
        Err(refusal(
            StatusCode::FORBIDDEN,
            "metrics are served to the addresses in [metrics] allow, or with the bearer token\n",
        ))
    }
}

/// Answers a request for `/metrics`.
pub async fn serve<B>(
    gate: &MetricsGate,
    admin: &crate::admin::Admin,
    limits: &Limits,
    req: &Request<B>,
    client: IpAddr,
    peer: IpAddr,
) -> Response<RespBody> {
    if let Err(r) = gate.admit(req, client, limits, peer) {
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = refusal(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let snap = snapshot(admin).await;
    match crate::metrics::encode(&snap) {
        Ok(text) => {
            let mut r = Response::new(full(if req.method() == Method::HEAD {
                String::new()
            } else {
                text
            }));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            )
        }
    }
}

/// Usage, quotas and replication state, read now (a few small queries); a database that does
/// not answer leaves them out and sets `kura_database_up` to 0.
async fn snapshot(admin: &crate::admin::Admin) -> Snapshot {
    let groups = admin.store.groups().await;
    let rules = admin.replication().await;
    let db_up = groups.is_ok() && rules.is_ok();
    Snapshot {
        groups: groups
            .unwrap_or_default()
            .into_iter()
            .map(|g| GroupUsage {
                group: g.name,
                used_bytes: g.used_bytes,
                used_objects: g.used_objects,
                version_bytes: g.version_bytes,
                quota_bytes: g.quota_bytes,
                quota_objects: g.quota_objects,
            })
            .collect(),
        rules: rules
            .unwrap_or_default()
            .into_iter()
            .map(|r| RuleState {
                failing: r.last_error.is_some(),
                lag_seconds: r.lag_seconds.unwrap_or(0.0),
                backlog: r.backlog,
                peer: r.peer,
                bucket: r.bucket,
            })
            .collect(),
        db_up,
    }
}

fn refusal(code: StatusCode, msg: &'static str) -> Response<RespBody> {
    let mut r = Response::new(full(msg));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
