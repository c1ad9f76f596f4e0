//! S3 identities: access key -> secret for SigV4, and key -> Kura caller for every call, both
//! from the identity layer (`crate::auth::AccessKeys`).

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Request, S3Result};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::auth::{AccessKeys, AuthError};
use crate::vfs::replica::Peer;
use crate::vfs::Caller;

/// Answers s3s's secret lookups from the access key table.
pub struct KuraAuth {
    pub keys: AccessKeys,
    pub owners: Owners,
}

/// The key's owner as read with its secret, handed from the signature check to the request's
/// handler: one query per request instead of two. The handler takes it out; a missing entry
/// (another request with the same key took it) costs the query again.
#[derive(Clone, Default)]
pub struct Owners(Arc<Mutex<HashMap<String, Caller>>>);

impl Owners {
    fn put(&self, key: &str, who: Caller) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_string(), who);
        }
    }

    fn take(&self, key: &str) -> Option<Caller> {
        self.0.lock().ok()?.remove(key)
    }

    /// Drops the owner a signature check left for a request that does not use it.
    pub fn take_key(&self, key: &str) {
        self.take(key);
    }
}

/// A failed key lookup: logged, answered as S3's InternalError, or ServiceUnavailable (503,
/// which clients retry) when the metadata database could not be reached.
pub(super) fn internal(what: &str, e: AuthError) -> s3s::S3Error {
    if matches!(&e, AuthError::Meta(m) if m.is_unavailable()) {
        tracing::warn!(error = %e, "{what}: metadata store unreachable");
        return s3s::S3Error::with_message(
            s3s::S3ErrorCode::ServiceUnavailable,
            "the metadata store is unreachable; retry",
        );
    }
    tracing::error!(error = %e, "{what} failed");
    s3_error!(InternalError)
}

#[async_trait::async_trait]
impl S3Auth for KuraAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let found = self
            .keys
            .secret_and_owner(access_key)
            .await
            .map_err(|e| internal("access key lookup", e))?;
        let Some((secret, owner)) = found else {
            return Err(s3_error!(InvalidAccessKeyId));
        };
        self.owners.put(access_key, owner);
        Ok(SecretKey::from(secret))
    }
}

/// The Kura user a verified request acts for; an unsigned one acts as the core's anonymous
/// caller (the access hook lets only GetObject and HeadObject through).
pub async fn caller<T>(keys: &AccessKeys, owners: &Owners, req: &S3Request<T>) -> S3Result<Caller> {
    let Some(cred) = &req.credentials else {
        return Ok(Caller::anonymous());
    };
    let who = match owners.take(&cred.access_key) {
        Some(who) => who,
        None => keys
            .owner(&cred.access_key)
            .await
            .map_err(|e| internal("access key owner lookup", e))?
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))?,
    };
    crate::wire::audit::set_actor(&who.user);
    Ok(who)
}

/// The replication peer a verified request was signed for: only a peer key (`kura peer key`)
/// makes a request a shipment, whatever its headers say.
pub async fn peer_of(keys: &AccessKeys, access_key: Option<&str>) -> S3Result<Option<Peer>> {
    let Some(key) = access_key else {
        return Ok(None);
    };
    let name = keys
        .peer(key)
        .await
        .map_err(|e| internal("peer key lookup", e))?;
    Ok(name.map(|name| Peer { name }))
}
