//! Who is asking, built in one place: passwords (argon2id hashing, HTTP Basic verification and
//! a short-lived cache of successes) and S3 access keys, each resolved to a core `Caller`.
//!
//! The cache is keyed by a salted SHA-256 of user and password (never the password itself) and
//! every hit is checked against the user's current hash, so a password change or a removed user
//! takes effect on the next request, whichever process made the change.
//!
//! The user's row (hash, rights, groups) and an access key with its owner are remembered too
//! (`remembered.rs`), each valid while the store's identity generation is the one it was read
//! at: a request whose identity did not change costs no SQL statement for it, and any change
//! to users, groups or keys, made here or by the CLI, counts from the next request.

mod hashing;
mod remembered;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::{KeyRow, MetaError, Store, UserRow};
use crate::vault::Vault;
use crate::vfs::Caller;

/// Most entries the cache keeps before it starts over.
const CACHE_LIMIT: usize = 10_000;

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No or malformed credentials.
    #[error("missing or malformed credentials")]
    Missing,
    /// Unknown user or wrong password (deliberately indistinguishable).
    #[error("invalid user name or password")]
    Invalid,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The user table could not be read.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A stored secret could not be unsealed (wrong or missing vault key).
    #[error("stored secret cannot be unsealed: {0}")]
    Sealed(String),
}

struct Cached {
    hash: String,
    expires: Instant,
}

/// The identity of a user by name, with the memberships read with its row (None: no such
/// user); for requests that act as a stored user without credentials of their own (share
/// links act as their owner, resync pulls as the peer key's user).
pub async fn caller_named(store: &Store, name: &str) -> Result<Option<Caller>, MetaError> {
    Ok(store.user(name).await?.map(Caller::from_user))
}

/// S3 access keys: the sealed secret a signature is checked with, the key's owner as a
/// `Caller`, and whether the key is a replication peer's.
#[derive(Clone)]
pub struct AccessKeys {
    store: Store,
    vault: Vault,
    /// Keys and their owners, by key id (sealed secrets: unsealed per request).
    known: std::sync::Arc<remembered::Remembered<(KeyRow, UserRow)>>,
}

impl AccessKeys {
    /// Keys read from the access key table, secrets unsealed with `vault`.
    pub fn new(store: Store, vault: Vault) -> Self {
        AccessKeys {
            store,
            vault,
            known: Default::default(),
        }
    }

    /// A key and its owner: remembered while no identity changed, else read (one statement).
    async fn key_and_owner(&self, key: &str) -> Result<Option<(KeyRow, UserRow)>, MetaError> {
        if let Some(found) = self.known.get(key, self.store.identity_generation().await) {
            return Ok(Some(found));
        }
        let (found, at) = self.store.key_and_owner_and_generation(key).await?;
        self.known.put(key, at, found.clone());
        Ok(found)
    }

    /// The secret of a key and its owner, read together (None: no such key).
    pub async fn secret_and_owner(&self, key: &str) -> Result<Option<(String, Caller)>, AuthError> {
        let Some((row, owner)) = self.key_and_owner(key).await? else {
            return Ok(None);
        };
        let secret = self
            .vault
            .unseal(&row.id, &row.secret_enc)
            .map_err(|e| AuthError::Sealed(e.to_string()))?;
        Ok(Some((secret, Caller::from_user(owner))))
    }

    /// The owner of a key (None: no such key, or removed since the signature was checked).
    pub async fn owner(&self, key: &str) -> Result<Option<Caller>, AuthError> {
        Ok(self
            .key_and_owner(key)
            .await?
            .map(|(_, owner)| Caller::from_user(owner)))
    }

    /// The replication peer a key was issued to (`kura peer key`), if it is a peer key.
    pub async fn peer(&self, key: &str) -> Result<Option<String>, AuthError> {
        Ok(self.store.peer_of_key(key).await?)
    }
}

/// Checks credentials against the user table.
pub struct Authenticator {
    store: Store,
    ttl: Duration,
    salt: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    /// User rows with their groups, by name.
    users: remembered::Remembered<UserRow>,
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches an argon2 PHC `hash` (blocking: call off the async threads).
pub(crate) fn verify_hash(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// `verify_hash` on the password hashing threads, in turn with every other hash.
pub(crate) async fn verify_hash_queued(password: String, hash: String) -> bool {
    hashing::run(move || verify_hash(&password, &hash))
        .await
        .unwrap_or(false)
}

/// A random password for generated accounts: 24 URL-safe characters (144 bits).
pub fn random_password() -> String {
    let mut b = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Authenticator {
    /// An authenticator remembering successes for `ttl` (zero disables the cache).
    pub fn new(store: Store, ttl: Duration) -> Self {
        let mut salt = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        Authenticator {
            store,
            ttl,
            salt,
            cache: Mutex::new(HashMap::new()),
            users: Default::default(),
        }
    }

    /// A user's row: remembered while no identity changed, else read (one statement).
    async fn user(&self, name: &str) -> Result<Option<UserRow>, MetaError> {
        if let Some(row) = self.users.get(name, self.store.identity_generation().await) {
            return Ok(Some(row));
        }
        let (row, at) = self.store.user_and_generation(name).await?;
        self.users.put(name, at, row.clone());
        Ok(row)
    }

    /// Checks an `Authorization: Basic ...` header value.
    pub async fn basic(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let (user, password) = parse_basic(header.ok_or(AuthError::Missing)?)?;
        self.verify(&user, &password).await
    }

    /// Checks a user name and password.
    pub async fn verify(&self, user: &str, password: &str) -> Result<Caller, AuthError> {
        let row = self.user(user).await?;
        let key = self.cache_key(user, password);
        if let Some(row) = &row {
            if self.cached(&key, &row.password_hash) {
                return Ok(Caller::from_user(row.clone()));
            }
        }
        // Unknown users still cost one hash so timing does not reveal which names exist.
        let hash = row
            .as_ref()
            .map(|r| r.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = verify_hash_queued(password.to_string(), hash).await;
        match row {
            Some(row) if ok => {
                self.remember(key, &row.password_hash);
                Ok(Caller::from_user(row))
            }
            _ => Err(AuthError::Invalid),
        }
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0u8]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn cached(&self, key: &[u8; 32], current_hash: &str) -> bool {
        let Ok(cache) = self.cache.lock() else {
            return false;
        };
        matches!(cache.get(key), Some(c) if c.hash == current_hash && c.expires > Instant::now())
    }

    fn remember(&self, key: [u8; 32], hash: &str) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                let now = Instant::now();
                cache.retain(|_, c| c.expires > now);
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                Cached {
                    hash: hash.to_string(),
                    expires: Instant::now() + self.ttl,
                },
            );
        }
    }
}

/// A valid argon2id hash of a random string, verified against for unknown users.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0LhTzK0gRZcWzyZCF0yBlGn2ztiqCEsQh6bbVMGD9k8";

/// The user name of a Basic header (which account an attempt is on), without checking it.
pub(crate) fn basic_user(header: &str) -> Option<String> {
    parse_basic(header).ok().map(|(u, _)| u)
}

/// The password of a Basic header (share links ignore the user name).
pub(crate) fn basic_password(header: &str) -> Option<String> {
    parse_basic(header).ok().map(|(_, p)| p)
}

fn parse_basic(header: &str) -> Result<(String, String), AuthError> {
    let (scheme, rest) = header.trim().split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::Missing);
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| AuthError::Missing)?;
    let text = String::from_utf8(raw).map_err(|_| AuthError::Missing)?;
    let (user, pw) = text.split_once(':').ok_or(AuthError::Missing)?;
    Ok((user.to_string(), pw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verify_caches_and_notices_password_change() {
        let store = Store::in_memory().await.unwrap();
        store
            .create_user("ann", &hash_password("one").unwrap(), false)
            .await
            .unwrap();
        let auth = Authenticator::new(store.clone(), Duration::from_secs(60));
        assert_eq!(auth.verify("ann", "one").await.unwrap().user, "ann");
        assert!(matches!(
            auth.verify("ann", "two").await,
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            auth.verify("bob", "one").await,
            Err(AuthError::Invalid)
        ));
        // cached success must not survive a password change made elsewhere
        store
            .set_password("ann", &hash_password("two").unwrap())
            .await
            .unwrap();
        assert!(matches!(
            auth.verify("ann", "one").await,
            Err(AuthError::Invalid)
        ));
        assert!(auth.verify("ann", "two").await.is_ok());
        store.delete_user("ann").await.unwrap();
        assert!(auth.verify("ann", "two").await.is_err());
    }

    /// The remembered identity serves while nothing changed, and a change made through
    /// another connection (as the CLI makes it) counts at once.
    #[tokio::test]
    async fn remembered_identity_follows_changes_made_elsewhere() {
        let store = Store::in_memory().await.unwrap();
        store
            .create_user("ann", &hash_password("one").unwrap(), false)
            .await
            .unwrap();
        store.create_group("team").await.unwrap();
        let auth = Authenticator::new(store.clone(), Duration::from_secs(60));
        assert!(auth.verify("ann", "one").await.unwrap().groups.is_empty());
        // remembered: the same answer without the row being read again
        let at = store.identity_generation().await.unwrap();
        assert!(auth.users.get("ann", Some(at)).is_some());
        assert!(auth.verify("ann", "one").await.unwrap().groups.is_empty());

        let other = Store::connect(&store.url_for_tests(), false).await.unwrap();
        other.add_member("ann", "team").await.unwrap();
        assert_eq!(auth.verify("ann", "one").await.unwrap().groups, ["team"]);
        other.remove_member("ann", "team").await.unwrap();
        assert!(auth.verify("ann", "one").await.unwrap().groups.is_empty());
        other.set_admin("ann", true).await.unwrap();
        assert!(auth.verify("ann", "one").await.unwrap().is_admin);
        other.delete_user("ann").await.unwrap();
        assert!(matches!(
            auth.verify("ann", "one").await,
            Err(AuthError::Invalid)
        ));
    }

    #[test]
    fn basic_header_parsing() {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:p:w")
        );
        assert_eq!(parse_basic(&h).unwrap(), ("u".into(), "p:w".into()));
        assert!(parse_basic("Bearer x").is_err());
        assert!(parse_basic("Basic !!!").is_err());
    }

    #[test]
    fn dummy_hash_is_well_formed() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
