//! `/api/user/v1/session`, `/sessions` and `/2fa`: sign-in with Basic credentials (so the
//! router's failed-login throttle counts them like any other) and an optional code, then a
//! cookie; sign-out; the list of one's sessions; two-factor set-up.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::{API, CSRF_HEADER};
use crate::auth::Authenticator;
use crate::sessions::{csrf_matches, Live, SessionError, Sessions, TotpSetup};
use crate::wire::ErrorReply;
use crate::wire::{AuthFailed, ReqBody, RespBody, User};

/// Largest JSON body of these endpoints.
const MAX_BODY: usize = 8 * 1024;

/// The session endpoints.
#[derive(Clone)]
pub struct SessionFront {
    sessions: Sessions,
    /// Cookies get `Secure` and the `__Host-` prefix (served over HTTPS); the browser
    /// checks also expect pages of an `https://` origin then.
    pub(crate) secure: bool,
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
    let bytes = crate::wire::read_small(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| small_body_error(&e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_json", &e.to_string()))
}

/// The answer to a small body that could not be read (the router answers a slow or broken
/// one from the body's recorded fault).
fn small_body_error(e: &crate::wire::SmallBodyError) -> Response<RespBody> {
    match e {
        crate::wire::SmallBodyError::TooLarge(_) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is too large",
        ),
        _ => error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    }
}

/// A sign-in's body: the code when two-factor authentication is on.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct SignIn {
    #[serde(default)]
    code: Option<String>,
}

/// A TOTP secret and a current code of it (turning two-factor on).
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct Confirm {
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
}

/// A current TOTP code or a recovery code (turning two-factor off, new recovery codes).
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct Code {
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
        matches!(
            path.strip_prefix(API),
            Some("session" | "sessions" | "2fa" | "2fa/recovery-codes")
        )
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
            return sign_in(self, auth, req, client).await;
        }
        let live = match self.live(&req).await {
            Ok(Some(l)) => l,
            Ok(None) => return error(StatusCode::UNAUTHORIZED, "signed_out", "sign in first"),
            Err(r) => return r,
        };
        // turning 2FA on or off and new recovery codes check the password they are sent again
        let asks_password = matches!(
            (path.as_str(), &method),
            ("2fa", &Method::PUT)
                | ("2fa", &Method::DELETE)
                | ("2fa/recovery-codes", &Method::POST)
        );
        if !asks_password {
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
        let s = &self.sessions;
        let mut r = match (path.as_str(), method) {
            ("session", Method::GET) => whoami(s, &live).await,
            ("session", Method::DELETE) => sign_out(self, &live).await,
            ("sessions", Method::GET) => list(s, &user).await,
            ("sessions", Method::DELETE) => sign_out_everywhere(self, &user).await,
            ("2fa", Method::POST) => begin_two_factor(s, &user),
            ("2fa", Method::PUT) => enable_two_factor(s, auth, &live, req).await,
            ("2fa", Method::DELETE) => disable_two_factor(self, auth, &live, req).await,
            ("2fa/recovery-codes", Method::POST) => renew_recovery_codes(s, auth, &live, req).await,
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "not a method of this endpoint",
            ),
        };
        r.extensions_mut().insert(User(user));
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

/// Signs in with Basic credentials (and a code when two-factor authentication is on): the
/// answer sets the session cookie.
#[utoipa::path(post, path = "/api/user/v1/session", operation_id = "sign_in",
    request_body(content = SignIn, description = "the code, when two-factor authentication is on"),
    security(("basic" = [])),
    responses((status = 200, body = SignedIn, description = "signed in; sets the session cookie"),
              (status = 401, body = ErrorReply, description = "`invalid` (wrong credentials or code), `second_factor_required`, `credentials_required`"),
              (status = 429, body = ErrorReply, description = "throttled: too many failed logins from this address, or `too_many_codes` for this account")))]
async fn sign_in(
    front: &SessionFront,
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
    // no credentials, nothing to check: refused before any byte of the body is waited for
    if basic.is_none() {
        return from_session_error(SessionError::Missing);
    }
    let b: SignIn = match body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let opened = match front
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
        serde_json::json!(SignedIn {
            user: opened.caller.user.clone(),
            admin: opened.caller.is_admin,
            csrf: opened.csrf,
        }),
    );
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        cookie_name(front.secure),
        opened.token,
        front.sessions.max_age().as_secs(),
        if front.secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.extensions_mut().insert(User(opened.caller.user));
    r
}

/// Who is signed in.
#[utoipa::path(get, path = "/api/user/v1/session", operation_id = "whoami", security(("session" = [])),
    responses((status = 200, body = Whoami), (status = 401, body = ErrorReply, description = "`signed_out`")))]
async fn whoami(sessions: &Sessions, live: &Live) -> Response<RespBody> {
    match sessions.has_totp(&live.caller.user).await {
        Ok(totp) => json(
            StatusCode::OK,
            serde_json::json!(Whoami {
                user: live.caller.user.clone(),
                admin: live.caller.is_admin,
                csrf: live.csrf.clone(),
                two_factor: totp,
            }),
        ),
        Err(e) => from_session_error(e),
    }
}

/// Signs this browser out.
#[utoipa::path(delete, path = "/api/user/v1/session", operation_id = "sign_out", security(("session" = [])),
    params(("X-Kura-CSRF" = String, Header)),
    responses((status = 204, description = "signed out; the cookie is removed"),
              (status = 403, body = ErrorReply, description = "`csrf`")))]
async fn sign_out(front: &SessionFront, live: &Live) -> Response<RespBody> {
    match front.sessions.sign_out(live).await {
        Ok(()) => front.cleared(),
        Err(e) => from_session_error(e),
    }
}

/// The user's sessions (signed-in browsers).
#[utoipa::path(get, path = "/api/user/v1/sessions", operation_id = "list_sessions", security(("session" = [])),
    responses((status = 200, body = SessionsView)))]
async fn list(sessions: &Sessions, user: &str) -> Response<RespBody> {
    match sessions.list(user).await {
        Ok(sessions) => json(StatusCode::OK, serde_json::json!(SessionsView { sessions })),
        Err(e) => from_session_error(e),
    }
}

/// Signs every browser of the user out.
#[utoipa::path(delete, path = "/api/user/v1/sessions", operation_id = "sign_out_everywhere", security(("session" = [])),
    params(("X-Kura-CSRF" = String, Header)),
    responses((status = 204, description = "every session ended; the cookie is removed"),
              (status = 403, body = ErrorReply, description = "`csrf`")))]
async fn sign_out_everywhere(front: &SessionFront, user: &str) -> Response<RespBody> {
    match front.sessions.sign_out_everywhere(user).await {
        Ok(_) => front.cleared(),
        Err(e) => from_session_error(e),
    }
}

/// A new TOTP secret to confirm with `PUT` (nothing is stored yet).
#[utoipa::path(post, path = "/api/user/v1/2fa", operation_id = "begin_two_factor", security(("session" = [])),
    params(("X-Kura-CSRF" = String, Header)),
    responses((status = 200, body = TotpSetup), (status = 403, body = ErrorReply, description = "`csrf`")))]
fn begin_two_factor(sessions: &Sessions, user: &str) -> Response<RespBody> {
    match sessions.begin_totp(user) {
        Ok(setup) => json(StatusCode::OK, serde_json::json!(setup)),
        Err(e) => from_session_error(e),
    }
}

/// Turns two-factor authentication on: the password again (Basic, beside the session) and a
/// current code of the secret; answers the recovery codes, shown once; other sessions end.
#[utoipa::path(put, path = "/api/user/v1/2fa", operation_id = "enable_two_factor", request_body = Confirm,
    security(("session" = [])),
    params(("X-Kura-CSRF" = String, Header), ("Authorization" = String, Header, description = "Basic credentials: the password again")),
    responses((status = 200, body = RecoveryCodes),
              (status = 400, body = ErrorReply, description = "not a base32 secret, or already on"),
              (status = 401, body = ErrorReply, description = "`invalid`: wrong password or code"),
              (status = 403, body = ErrorReply, description = "`csrf`")))]
async fn enable_two_factor(
    sessions: &Sessions,
    auth: &Authenticator,
    live: &Live,
    req: Request<ReqBody>,
) -> Response<RespBody> {
    let (basic, c): (_, Confirm) = match password_and_body(req).await {
        Ok(both) => both,
        Err(r) => return r,
    };
    match sessions
        .enable_totp(auth, basic.as_deref(), live, &c.secret, &c.code)
        .await
    {
        Ok(recovery_codes) => json(
            StatusCode::OK,
            serde_json::json!(RecoveryCodes { recovery_codes }),
        ),
        Err(e) => from_session_error(e),
    }
}

/// The `Authorization: Basic` header a request sends (the password again), if any, and its
/// JSON body: what every two-factor change asks for.
async fn password_and_body<T: for<'de> Deserialize<'de> + Default>(
    req: Request<ReqBody>,
) -> Result<(Option<String>, T), Response<RespBody>> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((basic, body(req).await?))
}

/// Turns two-factor authentication off: the password again (Basic, beside the session) and a
/// current or recovery code; every session ends.
#[utoipa::path(delete, path = "/api/user/v1/2fa", operation_id = "disable_two_factor", request_body = Code,
    security(("session" = [])),
    params(("X-Kura-CSRF" = String, Header), ("Authorization" = String, Header, description = "Basic credentials: the password again")),
    responses((status = 204, description = "off; signed out everywhere"),
              (status = 401, body = ErrorReply, description = "`invalid`: wrong password or code"),
              (status = 403, body = ErrorReply, description = "`csrf`"),
              (status = 429, body = ErrorReply, description = "`too_many_codes`")))]
async fn disable_two_factor(
    front: &SessionFront,
    auth: &Authenticator,
    live: &Live,
    req: Request<ReqBody>,
) -> Response<RespBody> {
    let (basic, c): (_, Code) = match password_and_body(req).await {
        Ok(both) => both,
        Err(r) => return r,
    };
    match front
        .sessions
        .disable_totp(auth, basic.as_deref(), live, &c.code)
        .await
    {
        Ok(()) => front.cleared(),
        Err(e) => from_session_error(e),
    }
}

/// New recovery codes, replacing the old ones: the password again (Basic, beside the
/// session) and a current or recovery code; answers the codes, shown once.
#[utoipa::path(post, path = "/api/user/v1/2fa/recovery-codes", operation_id = "renew_recovery_codes",
    request_body = Code, security(("session" = [])),
    params(("X-Kura-CSRF" = String, Header), ("Authorization" = String, Header, description = "Basic credentials: the password again")),
    responses((status = 200, body = RecoveryCodes),
              (status = 400, body = ErrorReply, description = "two-factor authentication is off"),
              (status = 401, body = ErrorReply, description = "`invalid`: wrong password or code"),
              (status = 403, body = ErrorReply, description = "`csrf`"),
              (status = 429, body = ErrorReply, description = "`too_many_codes`")))]
async fn renew_recovery_codes(
    sessions: &Sessions,
    auth: &Authenticator,
    live: &Live,
    req: Request<ReqBody>,
) -> Response<RespBody> {
    let (basic, c): (_, Code) = match password_and_body(req).await {
        Ok(both) => both,
        Err(r) => return r,
    };
    match sessions
        .renew_recovery_codes(auth, basic.as_deref(), live, &c.code)
        .await
    {
        Ok(recovery_codes) => json(
            StatusCode::OK,
            serde_json::json!(RecoveryCodes { recovery_codes }),
        ),
        Err(e) => from_session_error(e),
    }
}

/// The answer of a sign-in.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    user: String,
    admin: bool,
    /// The token to send in `X-Kura-CSRF` on every state-changing request.
    csrf: String,
}

/// Who is signed in.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Whoami {
    user: String,
    admin: bool,
    csrf: String,
    /// Whether two-factor authentication is on.
    two_factor: bool,
}

/// The user's sessions.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SessionsView {
    sessions: Vec<crate::sessions::SessionInfo>,
}

/// Recovery codes, each good for one sign-in; shown once.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

/// The OpenAPI paths of these endpoints, which the user API's document takes in.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        sign_in,
        whoami,
        sign_out,
        list,
        sign_out_everywhere,
        begin_two_factor,
        enable_two_factor,
        disable_two_factor,
        renew_recovery_codes
    ),
    components(schemas(
        SignIn,
        SignedIn,
        Whoami,
        SessionsView,
        crate::sessions::SessionInfo,
        TotpSetup,
        Confirm,
        Code,
        RecoveryCodes,
        ErrorReply
    ))
)]
struct SessionDoc;

/// The session endpoints' part of the user API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <SessionDoc as utoipa::OpenApi>::openapi()
}
