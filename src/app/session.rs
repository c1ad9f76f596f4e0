//! `/api/user/v1/session`, `/sessions` and `/2fa`: sign-in with Basic credentials (so the
//! router's failed-login throttle counts them like any other) and an optional code, then a
//! cookie; sign-out; the list of one's sessions; two-factor set-up.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;

use super::{API, CSRF_HEADER};
use crate::auth::Authenticator;
use crate::sessions::{csrf_matches, Live, SessionError, Sessions};
use crate::wire::{AuthFailed, ReqBody, RespBody, User};

/// Largest JSON body of these endpoints.
const MAX_BODY: usize = 8 * 1024;

/// The session endpoints.
#[derive(Clone)]
pub struct SessionFront {
    sessions: Sessions,
    /// Cookies get `Secure` and the `__Host-` prefix (served over HTTPS).
    secure: bool,
}

/// The cookie's name: `__Host-` makes browsers refuse it unless Secure, host-only, Path=/.
fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-kura"
    } else {
        "kura"
    }
}

/// The session token a request's cookie carries, if any.
fn cookie_token<B>(req: &Request<B>, secure: bool) -> Option<String> {
    let name = cookie_name(secure);
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

/// A JSON answer.
fn json(code: StatusCode, v: serde_json::Value) -> Response<RespBody> {
    crate::wire::json(code, v.to_string())
}

/// An error answer with a stable code.
pub use crate::wire::json_error as error;

fn from_session_error(e: SessionError) -> Response<RespBody> {
    match e {
        SessionError::Invalid => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "invalid",
                "wrong user name, password or code",
            );
            r.extensions_mut().insert(AuthFailed);
            r
        }
        SessionError::SecondFactor => error(
            StatusCode::UNAUTHORIZED,
            "second_factor_required",
            "enter the code of your authenticator app, or a recovery code",
        ),
        SessionError::Missing => error(
            StatusCode::UNAUTHORIZED,
            "credentials_required",
            "send the user name and password as Basic credentials",
        ),
        SessionError::Throttled(wait) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_codes",
                "too many wrong codes for this account; try again later",
            );
            let secs = wait.as_secs().max(1);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        SessionError::Bad(m) => error(StatusCode::BAD_REQUEST, "invalid_request", m),
        SessionError::Internal(m) => {
            tracing::error!(error = %m, "session service failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "the server cannot check sessions now",
            )
        }
    }
}

/// The request's JSON body (at most `MAX_BODY`), or an empty object when there is none.
async fn body<T: for<'de> Deserialize<'de> + Default>(
    req: Request<ReqBody>,
) -> Result<T, Response<RespBody>> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is too large",
            )
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()))
}

#[derive(Deserialize, Default)]
struct SignIn {
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize, Default)]
struct Confirm {
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
}

impl SessionFront {
    /// The endpoints over `sessions`; `secure` when the server speaks HTTPS.
    pub fn new(sessions: Sessions, secure: bool) -> Self {
        SessionFront { sessions, secure }
    }

    /// Whether these endpoints answer `path`.
    pub fn serves(path: &str) -> bool {
        matches!(path.strip_prefix(API), Some("session" | "sessions" | "2fa"))
    }

    /// The live session of the request's cookie, if any.
    pub async fn live<B>(&self, req: &Request<B>) -> Result<Option<Live>, Response<RespBody>> {
        let Some(token) = cookie_token(req, self.secure) else {
            return Ok(None);
        };
        self.sessions
            .session(&token)
            .await
            .map_err(from_session_error)
    }

    /// Refuses credentials beside a session cookie where they are not checked: the request
    /// would succeed on the session, and the failed-login throttle would take that success
    /// for the credentials' (proving another account's "password" from this address).
    pub fn unchecked_credentials<B>(req: &Request<B>) -> Option<Response<RespBody>> {
        req.headers().contains_key(header::AUTHORIZATION).then(|| {
            error(
                StatusCode::BAD_REQUEST,
                "credentials_with_session",
                "send the session cookie or credentials, not both",
            )
        })
    }

    /// Whether an unsafe request of this session carries its CSRF token.
    pub fn csrf_ok<B>(live: &Live, req: &Request<B>) -> bool {
        let presented = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        csrf_matches(live, presented)
    }

    /// Answers one request to the session endpoints (the router refused other origins).
    pub async fn handle(
        &self,
        auth: &Authenticator,
        req: Request<ReqBody>,
        client: &str,
    ) -> Response<RespBody> {
        let path = req.uri().path().strip_prefix(API).unwrap_or("").to_string();
        let method = req.method().clone();
        if path == "session" && method == Method::POST {
            return self.sign_in(auth, req, client).await;
        }
        let live = match self.live(&req).await {
            Ok(Some(l)) => l,
            Ok(None) => return error(StatusCode::UNAUTHORIZED, "signed_out", "sign in first"),
            Err(r) => return r,
        };
        // turning 2FA on checks the password it is sent again
        if !(path == "2fa" && method == Method::PUT) {
            if let Some(r) = Self::unchecked_credentials(&req) {
                return r;
            }
        }
        let safe = matches!(method, Method::GET | Method::HEAD);
        if !safe && !Self::csrf_ok(&live, &req) {
            return error(
                StatusCode::FORBIDDEN,
                "csrf",
                "the request lacks this session's X-Kura-CSRF token",
            );
        }
        let user = live.caller.user.clone();
        let mut r = match (path.as_str(), method) {
            ("session", Method::GET) => {
                let totp = match self.sessions.has_totp(&user).await {
                    Ok(t) => t,
                    Err(e) => return from_session_error(e),
                };
                json(
                    StatusCode::OK,
                    serde_json::json!({
                        "user": user,
                        "admin": live.caller.is_admin,
                        "csrf": live.csrf,
                        "two_factor": totp,
                    }),
                )
            }
            ("session", Method::DELETE) => match self.sessions.sign_out(&live).await {
                Ok(()) => self.cleared(),
                Err(e) => from_session_error(e),
            },
            ("sessions", Method::GET) => match self.sessions.list(&user).await {
                Ok(list) => json(StatusCode::OK, serde_json::json!({ "sessions": list })),
                Err(e) => from_session_error(e),
            },
            ("sessions", Method::DELETE) => match self.sessions.sign_out_everywhere(&user).await {
                Ok(_) => self.cleared(),
                Err(e) => from_session_error(e),
            },
            ("2fa", Method::POST) => match self.sessions.begin_totp(&user) {
                Ok(setup) => json(StatusCode::OK, serde_json::json!(setup)),
                Err(e) => from_session_error(e),
            },
            ("2fa", Method::PUT) => {
                let basic = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let c: Confirm = match body(req).await {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                match self
                    .sessions
                    .enable_totp(auth, basic.as_deref(), &live, &c.secret, &c.code)
                    .await
                {
                    Ok(codes) => json(
                        StatusCode::OK,
                        serde_json::json!({ "recovery_codes": codes }),
                    ),
                    Err(e) => from_session_error(e),
                }
            }
            ("2fa", Method::DELETE) => {
                let c: Confirm = match body(req).await {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                match self.sessions.check_second_factor(&user, &c.code).await {
                    Ok(true) => match self.sessions.reset_totp(&user).await {
                        Ok(_) => self.cleared(),
                        Err(e) => from_session_error(e),
                    },
                    Ok(false) => from_session_error(SessionError::Invalid),
                    Err(e) => from_session_error(e),
                }
            }
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "not a method of this endpoint",
            ),
        };
        r.extensions_mut().insert(User(user));
        r
    }

    async fn sign_in(
        &self,
        auth: &Authenticator,
        req: Request<ReqBody>,
        client: &str,
    ) -> Response<RespBody> {
        let basic = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let b: SignIn = match body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let opened = match self
            .sessions
            .sign_in(
                auth,
                basic.as_deref(),
                b.code.as_deref(),
                client,
                agent.as_deref(),
            )
            .await
        {
            Ok(o) => o,
            Err(e) => return from_session_error(e),
        };
        tracing::info!(user = %opened.caller.user, %client, "browser sign-in");
        let mut r = json(
            StatusCode::OK,
            serde_json::json!({
                "user": opened.caller.user,
                "admin": opened.caller.is_admin,
                "csrf": opened.csrf,
            }),
        );
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            cookie_name(self.secure),
            opened.token,
            self.sessions.max_age().as_secs(),
            if self.secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r.extensions_mut().insert(User(opened.caller.user));
        r
    }

    /// 204 with the cookie removed.
    fn cleared(&self) -> Response<RespBody> {
        let mut r = Response::new(crate::wire::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let cookie = format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            cookie_name(self.secure),
            if self.secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    }
}
