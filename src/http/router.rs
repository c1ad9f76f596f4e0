//! Routing by path prefix, authentication, and one log line per request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::attempt;
use super::metered::Metered;
use super::metrics::MetricsGate;
use crate::admin::api;
use crate::app::{self, SessionFront};
use crate::auth::Authenticator;
use crate::dav::{self, DavFront};
use crate::limits::{retry_after_secs, Limits, Outcome, Refusal};
use crate::metrics::{Protocol, Throttle};
use crate::s3::{self, S3Front};
use crate::share::http::ShareFront;
use crate::vfs::Caller;
use crate::wire::{full, AuthFailed, BodyFault, ReqBody, RespBody};

/// Everything a request may need, shared by all connections.
pub struct App {
    /// Password checks.
    pub auth: Authenticator,
    /// The WebDAV front end.
    pub dav: DavFront,
    /// The S3 front end.
    pub s3: S3Front,
    /// The admin service behind `/api/v1`.
    pub admin: crate::admin::Admin,
    /// Share links behind `/s/`.
    pub shares: ShareFront,
    /// Client addresses, request and bandwidth limits, failed-authentication throttling.
    pub limits: Arc<Limits>,
    /// What `/healthz` checks (database, storage root) and this gateway's node id.
    pub health: super::health::Health,
    /// The TLS certificate in use (days to expiry in `/healthz`); None without TLS.
    pub cert: Option<Arc<crate::tls::CertStore>>,
    /// Browser sessions behind `/api/user/v1/session`.
    pub sessions: SessionFront,
    /// Who may read `/metrics`.
    pub metrics: MetricsGate,
    /// The user API behind `/api/user/v1` (search, and the app's next endpoints).
    pub user: crate::user_api::UserApi,
    /// What `/api/v1/facts` reports beside the store's facts (start time, storage, certificate).
    pub runtime: crate::admin::Runtime,
}

/// Where a request goes, decided from its path, method and headers before anything runs: the
/// router's one table, which also names the protocol its metrics are counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Health,
    NodeId,
    Metrics,
    /// S3 with a signature (header or presigned), whatever the path.
    S3Signed,
    Dav,
    /// Windows' probe of the server root (OPTIONS without Origin).
    RootOptions,
    /// A browser's `GET /`: sent to the app.
    Landing,
    /// The browser app's pages under `/app/` (and `/app`, redirected).
    App,
    /// The browser app's session API (sign-in, sign-out).
    Session,
    /// The rest of the user API (session cookie or Basic).
    UserApi,
    Api,
    Share,
    /// A reserved prefix with nothing behind it.
    Reserved,
    /// Everything else: anonymous S3.
    S3,
}

impl Route {
    fn of<B>(req: &Request<B>, metrics: bool) -> Route {
        let path = req.uri().path();
        if path == "/healthz" {
            Route::Health
        } else if path == "/.well-known/kura-node" {
            Route::NodeId
        } else if s3::is_signed(req) {
            // S3 clients sign: a bucket named `metrics` stays theirs
            Route::S3Signed
        } else if metrics && path == super::metrics::PATH {
            Route::Metrics
        } else if path == dav::PREFIX || path.starts_with("/dav/") {
            Route::Dav
        } else if path == "/"
            && req.method() == Method::OPTIONS
            && !req.headers().contains_key(header::ORIGIN)
        {
            // a CORS preflight (with Origin) stays S3's
            Route::RootOptions
        } else if path == "/" && req.method() == Method::GET && wants_html(req) {
            Route::Landing
        } else if path == "/app" || path.starts_with(app::PREFIX) {
            Route::App
        } else if SessionFront::serves(path) {
            Route::Session
        } else if path == crate::user_api::PREFIX || path.starts_with("/api/user/v1/") {
            Route::UserApi
        } else if path == api::PREFIX || path.starts_with("/api/v1/") {
            Route::Api
        } else if path.starts_with(crate::share::PREFIX) {
            Route::Share
        } else if RESERVED.iter().any(|p| path.starts_with(p)) {
            Route::Reserved
        } else {
            Route::S3
        }
    }

    /// The `protocol` label of the request's metrics.
    fn protocol(self) -> Protocol {
        match self {
            Route::Dav | Route::RootOptions => Protocol::Webdav,
            Route::S3Signed | Route::S3 => Protocol::S3,
            Route::Api => Protocol::Api,
            Route::Landing | Route::App | Route::Session | Route::UserApi => Protocol::App,
            Route::Share => Protocol::Share,
            Route::Metrics => Protocol::Metrics,
            Route::Health | Route::NodeId | Route::Reserved => Protocol::Other,
        }
    }
}

/// Prefixes Kura keeps for itself (share links, APIs, the browser app): never S3 buckets.
const RESERVED: &[&str] = &["/s/", "/api/", "/app/"];

/// Longest wait of an authentication attempt for the attempts in flight on its account.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// Largest S3 error body read to tell a signature or key failure from other refusals.
const S3_ERROR_PEEK: usize = 16 * 1024;

/// `/healthz` header: this gateway's node id.
const NODE: &str = "kura-node";

/// `/healthz` header: whole days until the TLS certificate in use expires.
const CERT_DAYS_LEFT: &str = "kura-cert-days-left";

const REALM: &str = "Basic realm=\"Kura\", charset=\"UTF-8\"";

impl App {
    /// Serves one request and logs it (never credentials, never a share token in full).
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<RespBody> {
        let start = Instant::now();
        let (mut req, fault) = crate::wire::watch(req);
        req.body_mut()
            .deadline_small_in(self.limits.net.small_body());
        if self.forwarded_over_tls(&req, peer) {
            req.extensions_mut().insert(crate::wire::Secure);
        }
        let method = req.method().clone();
        let path = loggable_path(req.uri().path());
        let client = self.limits.client_ip(peer, req.headers());
        let route = Route::of(&req, self.metrics.enabled());
        let proto = route.protocol();
        let meters = crate::metrics::get();
        req.body_mut().count_into(meters.received(proto));
        // An error may be answered before the body is read; on HTTP/1.1 the unread bytes would
        // then be taken as the start of the next request, so such connections are closed.
        let has_body = req.version() <= http::Version::HTTP_11
            && (req.headers().contains_key(header::TRANSFER_ENCODING)
                || req
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .is_some_and(|v| v.as_bytes() != b"0"));
        // A client that sent `Expect: 100-continue` for an empty body never gets its 100 (there
        // is nothing to read); botocore then parses its next response on that connection
        // against a stale status and stalls for its 60 s timeout (boto/botocore#3755), which
        // `aws s3 sync` of a tree with empty files meets every time. Such connections close.
        let empty_expect = req.version() <= http::Version::HTTP_11
            && !has_body
            && req.headers().contains_key(header::EXPECT);
        // any version: an HTTP/2 request with a body has no framing headers to tell
        let _upload = (!hyper::body::Body::is_end_stream(req.body()))
            .then(|| InFlight::enter(meters.uploads(proto)));
        // a small HTTP/2 body is in hand before anything can refuse its request
        let early = crate::wire::read_early(&mut req).await;
        // Failed-authentication throttling, for every entry point at once: an attempt is
        // admitted (maybe after a delay) or refused before its credentials are checked, and
        // its outcome recorded after; see limits::throttle.
        let account = early.is_ok().then(|| attempt::account(&req)).flatten();
        let ticket = match account.as_deref() {
            Some(a) => self.admit_attempt(client, a, &req).await.map(Some),
            None => Ok(None),
        };
        let (mut resp, user) = match (early, host_error(&req), ticket) {
            (Err(f), _, _) => (body_fault(f), None),
            (Ok(()), Some(msg), _) => (
                text(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", msg),
                None,
            ),
            (Ok(()), None, Err(wait)) => {
                meters.throttled(Throttle::AuthFailures);
                tracing::warn!(%client, account = account.as_deref().unwrap_or("-"), "throttled after failed authentications");
                (
                    too_many(wait, "too many failed authentication attempts\n"),
                    None,
                )
            }
            (Ok(()), None, Ok(ticket)) => {
                if let Some(t) = ticket.as_ref().filter(|t| !t.delay.is_zero()) {
                    tracing::info!(%client, delay_ms = t.delay.as_millis() as u64, "authentication attempt delayed after failures from this address");
                    tokio::time::sleep(t.delay).await;
                }
                // the audit trail's protocol is the route's, the metrics' label
                let ctx = crate::wire::audit::Context {
                    actor: None,
                    client: Some(client.to_string()),
                    protocol: proto.as_str(),
                };
                let routed = crate::wire::audit::scope(ctx.clone(), async {
                    let (resp, user) = self.route(req, route, client, peer).await;
                    (resp, user, crate::wire::audit::current().protocol)
                })
                .await;
                let (resp, user) =
                    audit_refusal(&self.admin.store, account.as_deref(), ctx, routed).await;
                let user = user.or_else(|| {
                    resp.extensions()
                        .get::<crate::wire::User>()
                        .map(|u| u.0.clone())
                });
                if let Some(t) = ticket {
                    t.finish(if resp.extensions().get::<AuthFailed>().is_some() {
                        Outcome::Failed
                    } else if user.is_some() {
                        Outcome::Succeeded
                    } else {
                        Outcome::Unknown
                    });
                }
                (resp, user)
            }
        };
        if let Some(f) = fault.get() {
            if !resp.status().is_success() {
                resp = body_fault(*f);
            }
        }
        if (has_body && !resp.status().is_success()) || empty_expect {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        let method_label = crate::metrics::method_label(&method);
        meters.request(&crate::metrics::RequestLabels {
            protocol: proto.as_str(),
            method: method_label,
            status: resp.status().as_u16(),
        });
        if resp.extensions().get::<AuthFailed>().is_some() {
            meters.auth_failure(proto);
        }
        tracing::info!(
            target: "kura::access",
            %peer,
            %client,
            %method,
            path = %path,
            status = resp.status().as_u16(),
            bytes = %bytes,
            ms = start.elapsed().as_secs_f64() * 1000.0,
            user = user.as_deref().unwrap_or("-"),
        );
        let latency = meters.latency(&crate::metrics::RouteLabels {
            protocol: proto.as_str(),
            method: method_label,
        });
        resp.map(|b| Metered::wrap(b, meters.sent(proto), latency, start))
    }

    /// Whether the site a browser request comes from is served over HTTPS: the request came
    /// over TLS (or a trusted proxy says so), or `public_url` is `https://`.
    fn site_https<B>(&self, req: &Request<B>) -> bool {
        req.extensions().get::<crate::wire::Secure>().is_some() || self.sessions.secure
    }

    /// The refusal of the password alone (HTTP Basic) for `user`, who has turned two-factor
    /// authentication on: the user and admin APIs then take only a session opened with a code
    /// (or, for the admin API, an API token). WebDAV and S3 are not asked (docs/web.md).
    async fn password_only(
        &self,
        user: &str,
        error: fn(StatusCode, &str, &str) -> Response<RespBody>,
    ) -> Option<Response<RespBody>> {
        match self.admin.store.totp(user).await {
            Ok(None) => None,
            Ok(Some(_)) => {
                tracing::warn!(%user, "password-only request refused: two-factor is on");
                Some(error(
                    StatusCode::UNAUTHORIZED,
                    "second_factor_required",
                    "two-factor authentication is on for this account: the password alone is \
                     refused here; sign in for a session (POST /api/user/v1/session with a \
                     code), use an API token for the admin API, or an access key for S3",
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "two-factor lookup failed");
                Some(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "internal",
                    "metadata store unavailable",
                ))
            }
        }
    }

    /// Whether a request on a plain connection came over TLS before a trusted proxy forwarded
    /// it (`X-Forwarded-Proto: https`; from any other peer the header counts for nothing).
    fn forwarded_over_tls<B>(&self, req: &Request<B>, peer: SocketAddr) -> bool {
        req.extensions().get::<crate::wire::Secure>().is_none()
            && self.limits.is_trusted_proxy(peer.ip())
            && req
                .headers()
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
    }

    /// Admits an authentication attempt through the throttle: waits while attempts in flight
    /// on the same account fill its budget (at most `IN_FLIGHT_WAIT`), or says how long the
    /// client must wait.
    async fn admit_attempt<B>(
        &self,
        client: IpAddr,
        account: &str,
        req: &Request<B>,
    ) -> Result<crate::limits::throttle::Ticket, Duration> {
        let presented = attempt::credential(req);
        let deadline = Instant::now() + IN_FLIGHT_WAIT;
        loop {
            match self
                .limits
                .failures
                .admit(client, account, presented.as_deref())
                .await
            {
                Ok(t) => return Ok(t),
                Err(Refusal::Throttled(wait)) => return Err(wait),
                Err(Refusal::InFlight) if Instant::now() >= deadline => {
                    return Err(Duration::from_secs(1))
                }
                Err(Refusal::InFlight) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    async fn route(
        &self,
        req: Request<ReqBody>,
        route: Route,
        client: IpAddr,
        peer: SocketAddr,
    ) -> (Response<RespBody>, Option<String>) {
        let path = req.uri().path();
        match route {
            Route::Health => {
                let (status, body) = match self.health.probe().await {
                    Ok(()) => (StatusCode::OK, "ok\n"),
                    Err(what) => (StatusCode::SERVICE_UNAVAILABLE, what),
                };
                let mut r = text(status, "text/plain; charset=utf-8", body);
                if let Ok(node) = HeaderValue::from_str(&self.health.node_id) {
                    r.headers_mut().insert(NODE, node);
                }
                if let Some(c) = &self.cert {
                    r.headers_mut()
                        .insert(CERT_DAYS_LEFT, HeaderValue::from(c.days_left()));
                }
                (r, None)
            }
            Route::NodeId => {
                // replication peers learn who they talk to (the id is no secret)
                match self.admin.store.node_id().await {
                    Ok(id) => (
                        text(
                            StatusCode::OK,
                            "application/json",
                            serde_json::json!({ "node_id": id }).to_string(),
                        ),
                        None,
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the node id");
                        (
                            text(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "text/plain; charset=utf-8",
                                "node id unavailable\n",
                            ),
                            None,
                        )
                    }
                }
            }
            Route::Metrics => {
                let r = super::metrics::serve(
                    &self.metrics,
                    &self.admin,
                    &self.limits,
                    &req,
                    client,
                    peer.ip(),
                )
                .await;
                (r, None)
            }
            Route::S3Signed => {
                if let Some(slow) = self.pace_anonymous(&req, client).await {
                    return (slow, None);
                }
                let resp = mark_s3_auth_failure(self.s3.handle(req).await).await;
                (user_content(resp), None)
            }
            Route::Dav => {
                // Answered without credentials: Windows' WebDAV client gives up otherwise.
                if req.method() == Method::OPTIONS {
                    return (dav::options_response(), None);
                }
                let caller = match self.authenticate(&req).await {
                    Ok(c) => c,
                    Err(resp) => return (resp, None),
                };
                let user = caller.user.clone();
                crate::wire::audit::set_actor(&user);
                (user_content(self.dav.handle(req, caller).await), Some(user))
            }
            // Windows' Mini-Redirector probes the server root before mapping /dav/
            Route::RootOptions => (dav::options_response(), None),
            Route::Landing => (redirect(app::PREFIX), None),
            Route::App => {
                let Some(rel) = path.strip_prefix(app::PREFIX) else {
                    return (redirect(app::PREFIX), None);
                };
                if req.method() != Method::GET && req.method() != Method::HEAD {
                    return (
                        text(
                            StatusCode::METHOD_NOT_ALLOWED,
                            "text/plain; charset=utf-8",
                            "the app's pages are read-only\n",
                        ),
                        None,
                    );
                }
                (app::serve_asset(rel), None)
            }
            Route::Session => {
                if let Some(why) = super::origin::cross_site(&req, self.site_https(&req)) {
                    tracing::warn!(%client, why, "user API request refused");
                    return (app::error(StatusCode::FORBIDDEN, "forbidden", why), None);
                }
                let resp = self
                    .sessions
                    .handle(&self.auth, req, &client.to_string())
                    .await;
                (resp, None)
            }
            Route::UserApi => {
                if let Some(why) = super::origin::cross_site(&req, self.site_https(&req)) {
                    tracing::warn!(%client, why, "user API request refused");
                    return (
                        crate::user_api::error(StatusCode::FORBIDDEN, "forbidden", why),
                        None,
                    );
                }
                // the browser app's session cookie (unsafe methods with its CSRF token), else Basic
                let caller = match self.session_caller(&req, crate::user_api::error).await {
                    Err(resp) => return (resp, None),
                    Ok(Some(caller)) => caller,
                    Ok(None) => match self.authenticate(&req).await {
                        Ok(c) => match self.password_only(&c.user, crate::user_api::error).await {
                            Some(resp) => return (resp, Some(c.user)),
                            None => c,
                        },
                        Err(resp) => return (unchallenged(resp, &req), None),
                    },
                };
                let user = caller.user.clone();
                crate::wire::audit::set_actor(&user);
                (self.user.handle(req, caller).await, Some(user))
            }
            Route::Api => {
                let https = self.site_https(&req);
                if let Some(why) = super::origin::cross_site(&req, https)
                    .or_else(|| super::origin::admin_refusal(&req, https))
                {
                    tracing::warn!(%client, why, "admin API request refused");
                    return (api::error(StatusCode::FORBIDDEN, "forbidden", why), None);
                }
                // an administrator's browser session (the console), else Basic or a token
                let admin = match self.session_caller(&req, api::error).await {
                    Err(resp) => Err(resp),
                    Ok(Some(c)) if c.is_admin => Ok(c.user),
                    Ok(Some(c)) => {
                        tracing::warn!(%client, user = %c.user, "admin API refused to a non-administrator's session");
                        return (
                            api::error(StatusCode::FORBIDDEN, "forbidden", "administrators only"),
                            Some(c.user),
                        );
                    }
                    Ok(None) => self.authenticate_admin(&req).await,
                };
                match admin {
                    Ok(user) if path.trim_end_matches('/') == api::THROTTLE => {
                        (api::throttle(&self.limits.failures, &req), Some(user))
                    }
                    Ok(user) if path.trim_end_matches('/') == api::FACTS => (
                        api::facts(&self.admin, &self.runtime, &req).await,
                        Some(user),
                    ),
                    Ok(user) => {
                        crate::wire::audit::set_actor(&user);
                        (api::handle(&self.admin, req).await, Some(user))
                    }
                    Err(resp) => (resp, None),
                }
            }
            Route::Share => {
                // before the per-address budget: a refused forgery costs the visitor nothing
                if let Some(why) = super::origin::cross_site_write(&req, self.site_https(&req)) {
                    tracing::warn!(%client, why, "share request refused");
                    return (
                        text(
                            StatusCode::FORBIDDEN,
                            "text/plain; charset=utf-8",
                            "requests from another origin are refused\n",
                        ),
                        None,
                    );
                }
                if let Err(wait) = self.limits.admit_share_request(client).await {
                    crate::metrics::get().throttled(Throttle::ShareRequests);
                    return (too_many(wait, "too many requests\n"), None);
                }
                let mut req = req;
                req.extensions_mut().insert(crate::wire::ClientIp(client));
                (self.shares.handle(req).await, None)
            }
            Route::Reserved => (
                text(
                    StatusCode::NOT_FOUND,
                    "text/plain; charset=utf-8",
                    "not found\n",
                ),
                None,
            ),
            // Unsigned requests get S3's anonymous answers: a public read, a CORS preflight,
            // or AccessDenied.
            Route::S3 => {
                if let Some(slow) = self.pace_anonymous(&req, client).await {
                    return (slow, None);
                }
                (user_content(self.s3.handle(req).await), None)
            }
        }
    }

    /// Anonymous S3 reads (unsigned GET and HEAD, whatever S3-looking headers they carry) and
    /// CORS preflights are paced per address like share links, from one budget: `SlowDown`
    /// when it is spent.
    async fn pace_anonymous(
        &self,
        req: &Request<ReqBody>,
        client: IpAddr,
    ) -> Option<Response<RespBody>> {
        if !s3::is_paced(req) {
            return None;
        }
        let wait = self.limits.admit_share_request(client).await.err()?;
        crate::metrics::get().throttled(Throttle::AnonymousS3);
        tracing::warn!(%client, "anonymous S3 reads over this address's budget");
        Some(user_content(s3::slow_down(wait)))
    }

    /// The caller of a request signed in by the browser app's session cookie, for every API a
    /// browser calls (the user API and the admin API): `None` without a cookie; refused, in
    /// the API's own error shape `err`, when the session has ended, when credentials come
    /// beside it, or when an unsafe request lacks the session's CSRF token.
    #[allow(clippy::result_large_err)]
    async fn session_caller(
        &self,
        req: &Request<ReqBody>,
        err: fn(StatusCode, &str, &str) -> Response<RespBody>,
    ) -> Result<Option<Caller>, Response<RespBody>> {
        let Some(live) = self.sessions.live(req).await? else {
            return Ok(None);
        };
        if let Some(r) = SessionFront::unchecked_credentials(req) {
            return Err(r);
        }
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !SessionFront::csrf_ok(&live, req) {
            return Err(err(
                StatusCode::FORBIDDEN,
                "csrf",
                "the request lacks this session's X-Kura-CSRF token",
            ));
        }
        Ok(Some(live.caller))
    }

    /// Administrators by Basic auth, or an API token (`Authorization: Bearer ...`).
    #[allow(clippy::result_large_err)]
    async fn authenticate_admin(
        &self,
        req: &Request<ReqBody>,
    ) -> Result<String, Response<RespBody>> {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(token) = header.strip_prefix("Bearer ") {
            return match self
                .admin
                .store
                .token_known(&crate::admin::token_hash(token.trim()))
                .await
            {
                Ok(true) => Ok("token".into()),
                Ok(false) => Err(failed(api::error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "unknown API token",
                ))),
                Err(_) => Err(api::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "internal",
                    "metadata store unavailable",
                )),
            };
        }
        match self.auth.basic(Some(header)).await {
            Ok(c) if c.is_admin => match self.password_only(&c.user, api::error).await {
                Some(resp) => Err(resp),
                None => Ok(c.user),
            },
            Ok(_) => Err(api::error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "administrators only",
            )),
            Err(crate::auth::AuthError::Meta(_)) => Err(api::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "metadata store unavailable",
            )),
            Err(e) => {
                let mut r = api::error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "authentication required",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
                Err(if matches!(e, crate::auth::AuthError::Invalid) {
                    failed(r)
                } else {
                    r
                })
            }
        }
    }

    #[allow(clippy::result_large_err)]
    async fn authenticate(&self, req: &Request<ReqBody>) -> Result<Caller, Response<RespBody>> {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self.auth.basic(header).await {
            Ok(c) => Ok(c),
            Err(crate::auth::AuthError::Meta(e)) => {
                tracing::error!(error = %e, "user lookup failed");
                Err(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "metadata store unavailable\n",
                ))
            }
            Err(e) => {
                let mut r = text(
                    StatusCode::UNAUTHORIZED,
                    "text/plain; charset=utf-8",
                    "authentication required\n",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
                Err(if matches!(e, crate::auth::AuthError::Invalid) {
                    failed(r)
                } else {
                    r
                })
            }
        }
    }
}

/// Counts a request with a body as an upload in flight until it is answered.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn enter(g: prometheus_client::metrics::gauge::Gauge) -> Self {
        g.inc();
        InFlight(g)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Audits a routed answer (answer, user, protocol) that refused wrong credentials
/// (`sign_in_failed`, naming the account tried) and hands on the answer and its user.
async fn audit_refusal(
    store: &crate::store::Store,
    account: Option<&str>,
    ctx: crate::wire::audit::Context,
    (resp, user, protocol): (Response<RespBody>, Option<String>, &'static str),
) -> (Response<RespBody>, Option<String>) {
    if resp.extensions().get::<AuthFailed>().is_some() {
        let ctx = crate::wire::audit::Context {
            // the throttle's account names a user as `user:NAME`, a key as `key:ID`
            actor: account.map(|a| a.strip_prefix("user:").unwrap_or(a).to_string()),
            protocol,
            ..ctx
        };
        let rec = store.record_audit("sign_in_failed", None, "failed", None);
        if let Err(e) = crate::wire::audit::scope(ctx, rec).await {
            tracing::warn!(error = %e, "cannot audit a failed sign-in");
        }
    }
    (resp, user)
}

/// Marks a refusal of wrong credentials for the failure counters.
/// The user API's 401 as the JSON the app reads, without the Basic challenge: a browser
/// answers a challenge with its password dialog, then sends the password it was given with
/// every request of the origin, without CSRF token or second factor. Scripts send their
/// credentials without being asked.
fn unchallenged<B>(resp: Response<RespBody>, req: &Request<B>) -> Response<RespBody> {
    if resp.status() != StatusCode::UNAUTHORIZED {
        return resp;
    }
    let (code, why) = match req.headers().contains_key(header::AUTHORIZATION) {
        true => ("invalid", "wrong user name or password"),
        false => ("signed_out", "sign in first"),
    };
    let mut r = crate::user_api::error(StatusCode::UNAUTHORIZED, code, why);
    *r.extensions_mut() = resp.into_parts().0.extensions;
    r
}

fn failed(mut r: Response<RespBody>) -> Response<RespBody> {
    r.extensions_mut().insert(AuthFailed);
    r
}

/// S3 refuses a bad signature or an unknown key with 403 and an XML code; other 403s
/// (AccessDenied for permissions or anonymous requests) are not authentication failures. The
/// small error body is read to tell them apart and handed on unchanged.
async fn mark_s3_auth_failure(resp: Response<RespBody>) -> Response<RespBody> {
    if resp.status() != StatusCode::FORBIDDEN {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = match Limited::new(body, S3_ERROR_PEEK).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            let mut r = Response::from_parts(parts, crate::wire::empty());
            *r.status_mut() = StatusCode::FORBIDDEN;
            return r;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let auth_failure = ["SignatureDoesNotMatch", "InvalidAccessKeyId"]
        .iter()
        .any(|c| text.contains(&format!("<Code>{c}</Code>")));
    let r = Response::from_parts(parts, full(bytes));
    if auth_failure {
        failed(r)
    } else {
        r
    }
}

/// A response of WebDAV or S3, which may carry a user's file: never sniffed, never run as a
/// page of this origin.
fn user_content(mut r: Response<RespBody>) -> Response<RespBody> {
    crate::wire::protect(r.headers_mut());
    r
}

/// A 303 to another page of this server.
fn redirect(to: &'static str) -> Response<RespBody> {
    let mut r = Response::new(crate::wire::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    r
}

/// RFC 9112 section 3.2: an HTTP/1.1 request without `Host`, and any request with two, is a
/// 400 (two hosts would let a proxy and Kura disagree about the target).
fn host_error<B>(req: &Request<B>) -> Option<&'static str> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Some("more than one Host header\n");
    }
    (hosts == 0 && req.version() == http::Version::HTTP_11).then_some("missing Host header\n")
}

/// The answer to a request whose body broke its own framing, whatever the handler made of it.
fn body_fault(f: BodyFault) -> Response<RespBody> {
    let (code, msg) = match f {
        BodyFault::Malformed => (StatusCode::BAD_REQUEST, "malformed request body\n"),
        BodyFault::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body chunk too large\n",
        ),
        BodyFault::TooSlow => (
            StatusCode::REQUEST_TIMEOUT,
            "the request body was not sent in time\n",
        ),
    };
    let mut r = text(code, "text/plain; charset=utf-8", msg);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// 429 with `Retry-After`, answered at once so a throttled client slows no one else.
fn too_many(wait: Duration, body: &'static str) -> Response<RespBody> {
    let mut r = text(
        StatusCode::TOO_MANY_REQUESTS,
        "text/plain; charset=utf-8",
        body,
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs(wait)),
    );
    r
}

/// The request path for the access log, with a share token cut to a hint.
fn loggable_path(path: &str) -> String {
    match path.strip_prefix(crate::share::PREFIX) {
        Some(rest) => {
            let (token, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            format!(
                "{}{}{tail}",
                crate::share::PREFIX,
                crate::share_links::token_hint(token)
            )
        }
        None => path.to_string(),
    }
}

/// A browser asking for a page (not an S3 client listing buckets).
fn wants_html<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn text(code: StatusCode, ct: &'static str, body: impl Into<bytes::Bytes>) -> Response<RespBody> {
    let body: bytes::Bytes = body.into();
    let mut r = Response::new(full(body.clone()));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    r
}
