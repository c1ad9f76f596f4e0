//! Browser sign-in (docs/web.md): sessions behind an HttpOnly cookie, stored in SQL so they
//! survive restarts and work across gateways sharing a database, with idle and absolute
//! lifetimes, CSRF tokens, and optional TOTP two-factor authentication with recovery codes.
//!
//! The password check is the one every protocol uses (`auth::Authenticator`); the failed-login
//! throttle is the router's, because the credentials come in an `Authorization: Basic` header.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::{AuthError, Authenticator};
use crate::store::{now_ms, MetaError, Store};

/// A session as its user sees it (the list `Sessions::list` answers).
pub use crate::store::SessionInfo;
use crate::vault::Vault;
use crate::vfs::Caller;

/// Recovery codes made when two-factor authentication is turned on.
const RECOVERY_CODES: usize = 10;
/// Wrong second factors one account may get within `CODE_WINDOW`, from all addresses together:
/// whoever asks for a code knows the password, and an address proven by that password (a
/// WebDAV login) escapes the throttle's per-account cap, so codes have their own.
const CODE_FAILURES: usize = 10;
/// The window of `CODE_FAILURES`.
const CODE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Why a sign-in or a two-factor change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Wrong user name or password, or a wrong or reused code (counted as a failure).
    #[error("invalid credentials")]
    Invalid,
    /// The password was right but the account wants a second factor, which was not given.
    #[error("a two-factor code is required")]
    SecondFactor,
    /// No credentials, or malformed ones.
    #[error("credentials required")]
    Missing,
    /// The request makes no sense (a secret that is not one, 2FA already on...).
    #[error("{0}")]
    Bad(&'static str),
    /// Too many wrong codes on this account lately: no code is checked for this long.
    #[error("too many wrong codes")]
    Throttled(Duration),
    /// The database or the vault failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MetaError> for SessionError {
    fn from(e: MetaError) -> Self {
        SessionError::Internal(e.to_string())
    }
}

impl From<AuthError> for SessionError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid => SessionError::Invalid,
            AuthError::Missing => SessionError::Missing,
            e => SessionError::Internal(e.to_string()),
        }
    }
}

/// A session just opened: the cookie's token (shown once) and its CSRF token.
#[derive(Debug)]
pub struct Opened {
    /// The cookie value.
    pub token: String,
    /// What state-changing requests must send back in `X-Kura-CSRF`.
    pub csrf: String,
    /// Who signed in.
    pub caller: Caller,
}

/// A request's session: who, and the CSRF token its writes must carry.
#[derive(Debug)]
pub struct Live {
    /// The signed-in user.
    pub caller: Caller,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session's token hash (to end it).
    id_hash: String,
}

/// Two-factor set-up data for the user to put in an authenticator app.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// The secret in base32 (typed by hand, or sent back to confirm).
    pub secret: String,
    /// The `otpauth://` URL (QR code contents).
    pub url: String,
}

/// The session service.
#[derive(Clone)]
pub struct Sessions {
    store: Store,
    vault: Vault,
    idle: Duration,
    max: Duration,
    /// Per user, when recent wrong second factors were given (see `CODE_FAILURES`).
    code_misses: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

/// A random token: 32 bytes, URL-safe base64.
fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The TOTP of a secret (SHA-1, 6 digits, 30 s, one step of skew: what every app reads).
fn totp(secret: Vec<u8>, user: &str) -> Result<totp_rs::Totp, SessionError> {
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_issuer(Some("Kura"))
        .with_account_name(user.replace(':', "_"))
        .build()
        .map_err(|_| SessionError::Bad("not a usable TOTP secret"))
}

/// Recovery codes are compared without case, spaces or dashes.
fn normal_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Sessions {
    /// Sessions in `store`, TOTP secrets sealed by `vault`, with their lifetimes.
    pub fn new(store: Store, vault: Vault, idle: Duration, max: Duration) -> Self {
        Sessions {
            store,
            vault,
            idle,
            max,
            code_misses: Arc::default(),
        }
    }

    /// The absolute lifetime (the cookie's Max-Age).
    pub fn max_age(&self) -> Duration {
        self.max
    }

    /// Signs in with an `Authorization: Basic` header and, when the account has two-factor
    /// authentication, a TOTP or recovery code.
    pub async fn sign_in(
        &self,
        auth: &Authenticator,
        basic: Option<&str>,
        code: Option<&str>,
        client: &str,
        agent: Option<&str>,
    ) -> Result<Opened, SessionError> {
        let caller = auth.basic(basic).await?;
        crate::wire::audit::set_actor(&caller.user);
        if let Some((sealed, _)) = self.store.totp(&caller.user).await? {
            let code = code.map(str::trim).filter(|c| !c.is_empty());
            let Some(code) = code else {
                return Err(SessionError::SecondFactor);
            };
            if !self.second_factor(&caller.user, &sealed, code).await? {
                return Err(SessionError::Invalid);
            }
        }
        let (token, csrf) = (random_token(), random_token());
        let agent = agent.map(|a| a.chars().take(200).collect::<String>());
        self.store
            .create_session(
                &sha256_hex(&token),
                &caller.user,
                &csrf,
                now_ms(),
                client,
                agent.as_deref(),
            )
            .await?;
        Ok(Opened {
            token,
            csrf,
            caller,
        })
    }

    /// Whether `code` is the current TOTP code (once) or an unused recovery code (used up).
    async fn second_factor(
        &self,
        user: &str,
        sealed: &str,
        code: &str,
    ) -> Result<bool, SessionError> {
        self.code_budget(user)?;
        let ok = self.check_code(user, sealed, code).await?;
        if !ok {
            let mut misses = self.code_misses.lock().unwrap_or_else(|e| e.into_inner());
            let list = misses.entry(user.to_string()).or_default();
            list.push_back(Instant::now());
            while list.len() > CODE_FAILURES {
                list.pop_front();
            }
        }
        Ok(ok)
    }

    /// Refuses to check a code while the account has had `CODE_FAILURES` wrong ones within
    /// `CODE_WINDOW` (a correct code is refused too, so guessing on learns nothing).
    fn code_budget(&self, user: &str) -> Result<(), SessionError> {
        let now = Instant::now();
        let mut misses = self.code_misses.lock().unwrap_or_else(|e| e.into_inner());
        misses.retain(|_, l| {
            while l
                .front()
                .is_some_and(|t| now.duration_since(*t) >= CODE_WINDOW)
            {
                l.pop_front();
            }
            !l.is_empty()
        });
        match misses.get(user) {
            Some(l) if l.len() >= CODE_FAILURES => Err(SessionError::Throttled(
                CODE_WINDOW.saturating_sub(now.duration_since(l[l.len() - CODE_FAILURES])),
            )),
            _ => Ok(()),
        }
    }

    /// Whether `code` is right (see `second_factor`), without the budget.
    async fn check_code(&self, user: &str, sealed: &str, code: &str) -> Result<bool, SessionError> {
        let secret = self
            .vault
            .unseal(&totp_id(user), sealed)
            .map_err(|e| SessionError::Internal(e.to_string()))?;
        let secret = totp_rs::Secret::try_from_base32(&secret)
            .map_err(|_| SessionError::Internal("stored TOTP secret unreadable".into()))?;
        let t = totp(secret.as_bytes().to_vec(), user)?;
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(match t.check_current(code) {
                Some(step) => self.store.use_totp_step(user, step as i64).await?,
                None => false,
            });
        }
        Ok(self
            .store
            .take_recovery_code(user, &sha256_hex(&normal_code(code)))
            .await?)
    }

    /// The live session of a cookie token, if any.
    pub async fn session(&self, token: &str) -> Result<Option<Live>, SessionError> {
        let id_hash = sha256_hex(token);
        let row = self
            .store
            .session(
                &id_hash,
                now_ms(),
                self.idle.as_millis() as i64,
                self.max.as_millis() as i64,
            )
            .await?;
        Ok(row.map(|r| Live {
            caller: Caller::from_user(r.user),
            csrf: r.csrf,
            id_hash,
        }))
    }

    /// Ends this session.
    pub async fn sign_out(&self, live: &Live) -> Result<(), SessionError> {
        Ok(self.store.delete_session(&live.id_hash).await?)
    }

    /// Ends every session of the user (this one included); returns how many.
    pub async fn sign_out_everywhere(&self, user: &str) -> Result<u64, SessionError> {
        Ok(self.store.delete_sessions_of(user).await?)
    }

    /// The user's sessions, newest first.
    pub async fn list(&self, user: &str) -> Result<Vec<SessionInfo>, SessionError> {
        Ok(self.store.sessions_of(user).await?)
    }

    /// Removes expired sessions (the background sweep); returns how many.
    pub async fn purge(&self) -> Result<u64, SessionError> {
        Ok(self
            .store
            .purge_sessions(
                now_ms(),
                self.idle.as_millis() as i64,
                self.max.as_millis() as i64,
            )
            .await?)
    }

    /// A new TOTP secret for `user` to confirm with `enable_totp` (nothing is stored yet).
    pub fn begin_totp(&self, user: &str) -> Result<TotpSetup, SessionError> {
        let mut b = vec![0u8; 20];
        rand::thread_rng().fill_bytes(&mut b);
        let t = totp(b, user)?;
        Ok(TotpSetup {
            secret: t.secret().to_base32(),
            url: t
                .to_url()
                .map_err(|_| SessionError::Bad("cannot make the otpauth URL"))?,
        })
    }

    /// Turns two-factor on once the user gives their password again (`basic`: a session alone,
    /// stolen or left open, must not lock its owner out with a secret of its own) and proves
    /// their app reads `secret` (a current code); returns the recovery codes, shown once.
    /// Other sessions of the user end.
    pub async fn enable_totp(
        &self,
        auth: &Authenticator,
        basic: Option<&str>,
        live: &Live,
        secret: &str,
        code: &str,
    ) -> Result<Vec<String>, SessionError> {
        self.password_again(auth, basic, live).await?;
        let user = live.caller.user.as_str();
        if self.store.totp(user).await?.is_some() {
            return Err(SessionError::Bad("two-factor authentication is on already"));
        }
        let parsed = totp_rs::Secret::try_from_base32(secret.trim())
            .map_err(|_| SessionError::Bad("not a base32 TOTP secret"))?;
        let t = totp(parsed.as_bytes().to_vec(), user)?;
        let Some(step) = t.check_current(code.trim()) else {
            return Err(SessionError::Invalid);
        };
        let (codes, json) = recovery_codes()?;
        let sealed = self.vault.seal(&totp_id(user), &t.secret().to_base32());
        if !self
            .store
            .set_totp(user, &sealed, &json, &live.id_hash)
            .await?
        {
            return Err(SessionError::Bad("two-factor authentication is on already"));
        }
        self.store.use_totp_step(user, step as i64).await?;
        Ok(codes)
    }

    /// Fails unless `basic` holds the password of the session's own user: what turning
    /// two-factor on or off and new recovery codes ask for again, so that a session alone
    /// (a cookie stolen, a browser left open) cannot. A wrong one is a failed login.
    async fn password_again(
        &self,
        auth: &Authenticator,
        basic: Option<&str>,
        live: &Live,
    ) -> Result<(), SessionError> {
        if auth.basic(basic).await?.user != live.caller.user {
            return Err(SessionError::Invalid);
        }
        Ok(())
    }

    /// Turns two-factor off for the session's user, who gives her password again (`basic`)
    /// and a current or recovery code; every session of hers ends.
    pub async fn disable_totp(
        &self,
        auth: &Authenticator,
        basic: Option<&str>,
        live: &Live,
        code: &str,
    ) -> Result<(), SessionError> {
        self.password_again(auth, basic, live).await?;
        let user = live.caller.user.as_str();
        if !self.check_second_factor(user, code.trim()).await? {
            return Err(SessionError::Invalid);
        }
        self.reset_totp(user).await?;
        Ok(())
    }

    /// New recovery codes for the session's user, replacing the old ones (used or not), with
    /// her password again (`basic`) and a current or recovery code; shown once.
    pub async fn renew_recovery_codes(
        &self,
        auth: &Authenticator,
        basic: Option<&str>,
        live: &Live,
        code: &str,
    ) -> Result<Vec<String>, SessionError> {
        self.password_again(auth, basic, live).await?;
        let user = live.caller.user.as_str();
        if !self.check_second_factor(user, code.trim()).await? {
            return Err(SessionError::Invalid);
        }
        let (codes, json) = recovery_codes()?;
        if !self.store.set_recovery_codes(user, &json).await? {
            return Err(SessionError::Bad("two-factor authentication is off"));
        }
        Ok(codes)
    }

    /// Turns two-factor off (an administrator's reset, or the user's own with her password
    /// and a code) and ends the user's sessions; false when the user does not exist.
    pub async fn reset_totp(&self, user: &str) -> Result<bool, SessionError> {
        self.code_misses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
        Ok(self.store.clear_totp(user).await?)
    }

    /// Whether `code` is a valid second factor for `user` now (turning 2FA off asks for one).
    pub async fn check_second_factor(&self, user: &str, code: &str) -> Result<bool, SessionError> {
        match self.store.totp(user).await? {
            Some((sealed, _)) => self.second_factor(user, &sealed, code).await,
            None => Ok(false),
        }
    }

    /// Whether the user has two-factor authentication on.
    pub async fn has_totp(&self, user: &str) -> Result<bool, SessionError> {
        Ok(self.store.totp(user).await?.is_some())
    }
}

/// `RECOVERY_CODES` fresh recovery codes, and the JSON list of their hashes to store.
fn recovery_codes() -> Result<(Vec<String>, String), SessionError> {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let mut b = [0u8; 5];
            rand::thread_rng().fill_bytes(&mut b);
            let h = hex::encode(b);
            format!("{}-{}", &h[..5], &h[5..])
        })
        .collect();
    let hashes: Vec<String> = codes.iter().map(|c| sha256_hex(&normal_code(c))).collect();
    let json = serde_json::to_string(&hashes).map_err(|e| SessionError::Internal(e.to_string()))?;
    Ok((codes, json))
}

/// The vault binding of a user's TOTP secret.
fn totp_id(user: &str) -> String {
    format!("totp:{user}")
}

/// Constant-time comparison of a presented CSRF token with the session's.
pub fn csrf_matches(live: &Live, presented: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    presented.is_some_and(|p| p.as_bytes().ct_eq(live.csrf.as_bytes()).into())
}
