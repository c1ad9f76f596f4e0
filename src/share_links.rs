//! Public share links: the service that creates, lists, revokes and opens them.
//!
//! A share acts as its owner: every visitor request resolves the owner to a `Caller` at that
//! moment and goes through the core's own read, list and upload calls, so the owner's current
//! permissions (and the quota of the owning group) decide, and a permission revoked after the
//! share was made is honoured at once. The token is 256 random bits; only its SHA-256 is kept.

use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use crate::store::ShareRow;
use crate::store::{now_ms, MetaError, Store};
use crate::vfs::{Caller, VPath, Vfs, VfsError};

/// Why a share operation or a visitor request failed; mapped to HTTP in `http.rs` and to admin
/// errors in the admin service.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// Unknown or revoked token, or the owner no longer exists.
    #[error("no such share")]
    NotFound,
    /// Expired, or no downloads left.
    #[error("the share {0}")]
    Gone(&'static str),
    /// The share has a password and none was given.
    #[error("this share needs a password")]
    PasswordRequired,
    /// The given password is wrong.
    #[error("wrong share password")]
    WrongPassword,
    /// The request asks for something a share cannot do.
    #[error("{0}")]
    Invalid(String),
    /// The share does not answer this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The core refused (permission, not found, quota, ...).
    #[error(transparent)]
    Vfs(#[from] VfsError),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Hashing the password failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// What a new share should be.
#[derive(Clone, Debug, Default)]
pub struct ShareSpec {
    /// File or folder to share.
    pub path: String,
    /// The user the share acts as; it must be able to read the path (write, for a drop box).
    pub owner: String,
    /// Visitors must give this password.
    pub password: Option<String>,
    /// The share ends after this long.
    pub expires: Option<Duration>,
    /// Most counted downloads.
    pub max_downloads: Option<u64>,
    /// A drop box: visitors may only add new files to the folder.
    pub upload_only: bool,
}

/// A share as seen by the owner and the API (never its token or password).
pub type Share = ShareRow;

/// A share being visited: its row, the owner acting for the visitor, and the shared path.
#[derive(Clone, Debug)]
pub struct Active {
    /// The stored share.
    pub row: ShareRow,
    /// The owner, with its current memberships.
    pub owner: Caller,
    /// The shared file or folder.
    pub root: VPath,
}

/// URL prefix of share links: a link is this and its token.
pub const URL_PREFIX: &str = "/s/";

/// A fresh token: 256 random bits, URL-safe.
fn new_token() -> String {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A first few characters of a token, enough to recognise it in a log and useless to a reader.
pub fn token_hint(token: &str) -> String {
    let hint: String = token.chars().take(6).collect();
    format!("{hint}…")
}

/// Parses `7d`, `12h`, `30m`, `90s`, `2w` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ShareError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ShareError::Invalid(format!("{s} is not a duration like 7d or 12h")))?;
    let secs = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(ShareError::Invalid(format!("{s}: unknown unit"))),
    };
    n.checked_mul(secs)
        .filter(|v| *v > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| ShareError::Invalid(format!("{s} is not a usable duration")))
}

/// Creates, lists, revokes and opens shares.
#[derive(Clone)]
pub struct Shares {
    store: Store,
    vfs: Vfs,
}

impl Shares {
    /// The service over the store and the core.
    pub fn new(store: Store, vfs: Vfs) -> Self {
        Shares { store, vfs }
    }

    /// The namespace the shares act on.
    pub fn vfs(&self) -> &Vfs {
        &self.vfs
    }

    async fn caller(&self, user: &str) -> Result<Option<Caller>, ShareError> {
        Ok(crate::auth::caller_named(&self.store, user).await?)
    }

    /// Makes a share; returns it and its token, which is not kept and shown only now.
    pub async fn create(&self, spec: ShareSpec) -> Result<(Share, String), ShareError> {
        let owner = self
            .caller(&spec.owner)
            .await?
            .ok_or_else(|| ShareError::Invalid(format!("no user {}", spec.owner)))?;
        let path = VPath::parse(&spec.path)?;
        if path.is_root() {
            return Err(ShareError::Invalid("the root cannot be shared".into()));
        }
        if spec.upload_only {
            if spec.max_downloads.is_some() {
                return Err(ShareError::Invalid(
                    "a drop box has no downloads to limit".into(),
                ));
            }
            self.vfs.may_add_to(&owner, &path).await?;
        } else {
            self.vfs.may_read(&owner, &path).await?;
        }
        if spec.max_downloads == Some(0) {
            return Err(ShareError::Invalid(
                "max downloads must be at least 1".into(),
            ));
        }
        let password_hash = match spec.password.as_deref() {
            Some("") => return Err(ShareError::Invalid("empty password".into())),
            Some(p) => {
                Some(crate::auth::hash_password(p).map_err(|e| ShareError::Hash(e.to_string()))?)
            }
            None => None,
        };
        let token = new_token();
        let expires_ms = spec
            .expires
            .map(|d| now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        let row = ShareRow {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            token_hash: token_hash(&token),
            owner: owner.user.clone(),
            path: path.to_string(),
            password_hash,
            expires_ms,
            max_downloads: spec
                .max_downloads
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            downloads: 0,
            upload_only: spec.upload_only,
            created_ms: now_ms(),
        };
        self.store.insert_share(&row).await?;
        tracing::info!(share = %row.id, owner = %row.owner, path = %row.path, "share created");
        let row = self.store.share(&row.id).await?.unwrap_or(row);
        Ok((row, token))
    }

    /// Gives a share a new token (its link was lost: tokens are never kept); the old link
    /// stops working at once. Returns the share and the new token.
    pub async fn reissue(&self, id: &str) -> Result<(Share, String), ShareError> {
        let token = new_token();
        if !self.store.set_share_token(id, &token_hash(&token)).await? {
            return Err(ShareError::NotFound);
        }
        tracing::info!(share = %id, "share link reissued");
        let row = self.store.share(id).await?.ok_or(ShareError::NotFound)?;
        Ok((row, token))
    }

    /// All shares, or those of one owner.
    pub async fn list(&self, owner: Option<&str>) -> Result<Vec<Share>, ShareError> {
        Ok(self.store.shares(owner).await?)
    }

    /// Ends a share at once; with `owner`, only a share of that user.
    pub async fn revoke(&self, id: &str, owner: Option<&str>) -> Result<(), ShareError> {
        let row = self.store.share(id).await?.ok_or(ShareError::NotFound)?;
        if owner.is_some_and(|o| o != row.owner) {
            return Err(ShareError::NotFound);
        }
        if !self.store.delete_share(id).await? {
            return Err(ShareError::NotFound);
        }
        tracing::info!(share = %id, "share revoked");
        Ok(())
    }

    /// The live share behind a token: known, not expired, downloads left, owner still there.
    pub async fn open(&self, token: &str) -> Result<Active, ShareError> {
        let row = self
            .store
            .share_by_token(&token_hash(token))
            .await?
            .ok_or(ShareError::NotFound)?;
        if row.expires_ms.is_some_and(|e| e <= now_ms()) {
            return Err(ShareError::Gone("has expired"));
        }
        if row.max_downloads.is_some_and(|m| row.downloads >= m) {
            return Err(ShareError::Gone("has no downloads left"));
        }
        let owner = self.caller(&row.owner).await?.ok_or(ShareError::NotFound)?;
        let root = VPath::parse(&row.path)?;
        Ok(Active { row, owner, root })
    }

    /// Checks a presented share password (argon2, off the async threads).
    pub async fn check_password(&self, a: &Active, given: Option<&str>) -> Result<(), ShareError> {
        let Some(hash) = a.row.password_hash.clone() else {
            return Ok(());
        };
        let Some(given) = given.map(str::to_string) else {
            return Err(ShareError::PasswordRequired);
        };
        let ok = crate::auth::verify_hash_queued(given, hash).await;
        if ok {
            Ok(())
        } else {
            Err(ShareError::WrongPassword)
        }
    }

    /// Counts one download, exactly, however many run at once; `Gone` when none are left.
    pub async fn count_download(&self, a: &Active) -> Result<(), ShareError> {
        if self.store.count_download(&a.row.id).await? {
            Ok(())
        } else {
            Err(ShareError::Gone("has no downloads left"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::vfs::{build_operator, build_staging, UploadOptions};

    async fn setup() -> (Shares, Store, Vfs) {
        let store = Store::in_memory().await.unwrap();
        let cfg = StorageConfig {
            backend: "memory".into(),
            ..StorageConfig::default()
        };
        let dir = std::env::temp_dir();
        let (op, _) = build_operator(&cfg, &dir).unwrap();
        let staging = build_staging(&cfg, &dir).unwrap();
        let vfs = Vfs::new(op, staging, store.clone(), None);
        store.create_user("ann", "x", false).await.unwrap();
        store.create_user("bob", "x", false).await.unwrap();
        let admin = Caller::admin("admin");
        vfs.mkdir(&admin, &VPath::parse("/b").unwrap())
            .await
            .unwrap();
        vfs.chown(&admin, &VPath::parse("/b").unwrap(), Some("ann"), None)
            .await
            .unwrap();
        vfs.chmod(&admin, &VPath::parse("/b").unwrap(), 0o700)
            .await
            .unwrap();
        let mut up = vfs
            .upload(
                &admin,
                &VPath::parse("/b/f").unwrap(),
                UploadOptions::default(),
            )
            .await
            .unwrap();
        up.write(bytes::Bytes::from_static(b"hi")).await.unwrap();
        up.commit().await.unwrap();
        vfs.chown(&admin, &VPath::parse("/b/f").unwrap(), Some("ann"), None)
            .await
            .unwrap();
        (Shares::new(store.clone(), vfs.clone()), store, vfs)
    }

    #[tokio::test]
    async fn only_what_the_owner_can_read_is_shared() {
        let (shares, _, _) = setup().await;
        let spec = |owner: &str, upload_only: bool| ShareSpec {
            path: "/b/f".into(),
            owner: owner.into(),
            upload_only,
            ..ShareSpec::default()
        };
        let (row, token) = shares.create(spec("ann", false)).await.unwrap();
        assert!(token.len() >= 43, "256 bits of token");
        assert_eq!(row.token_hash, token_hash(&token));
        assert!(matches!(
            shares.create(spec("bob", false)).await,
            Err(ShareError::Vfs(VfsError::Forbidden(_)))
        ));
        // a drop box must be a folder the owner may add to
        assert!(matches!(
            shares.create(spec("ann", true)).await,
            Err(ShareError::Vfs(VfsError::WrongKind(_)))
        ));
        let mut s = spec("ann", true);
        s.path = "/b".into();
        assert!(shares.create(s).await.is_ok());
        let a = shares.open(&token).await.unwrap();
        assert_eq!(a.owner.user, "ann");
        shares.revoke(&row.id, Some("bob")).await.unwrap_err();
        shares.revoke(&row.id, Some("ann")).await.unwrap();
        assert!(matches!(
            shares.open(&token).await,
            Err(ShareError::NotFound)
        ));
    }

    #[tokio::test]
    async fn expiry_limits_and_passwords() {
        let (shares, store, _) = setup().await;
        let (row, token) = shares
            .create(ShareSpec {
                path: "/b/f".into(),
                owner: "ann".into(),
                password: Some("pw".into()),
                max_downloads: Some(1),
                ..ShareSpec::default()
            })
            .await
            .unwrap();
        let a = shares.open(&token).await.unwrap();
        assert!(matches!(
            shares.check_password(&a, None).await,
            Err(ShareError::PasswordRequired)
        ));
        assert!(matches!(
            shares.check_password(&a, Some("no")).await,
            Err(ShareError::WrongPassword)
        ));
        shares.check_password(&a, Some("pw")).await.unwrap();
        shares.count_download(&a).await.unwrap();
        assert!(matches!(
            shares.count_download(&a).await,
            Err(ShareError::Gone(_))
        ));
        assert!(matches!(
            shares.open(&token).await,
            Err(ShareError::Gone(_))
        ));
        store.delete_share(&row.id).await.unwrap();
        let (_, token) = shares
            .create(ShareSpec {
                path: "/b/f".into(),
                owner: "ann".into(),
                expires: Some(Duration::from_millis(1)),
                ..ShareSpec::default()
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(
            shares.open(&token).await,
            Err(ShareError::Gone(_))
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("7y").is_err());
        assert!(parse_duration("").is_err());
    }
}
