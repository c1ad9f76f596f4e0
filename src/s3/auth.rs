//! S3 identities: access key -> sealed secret for SigV4, and key -> Kura user for every call.

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Request, S3Result};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::keys::Vault;
use crate::store::{Store, UserRow};
use crate::vfs::replica::Peer;
use crate::vfs::Caller;

/// Answers s3s's secret lookups from the access key table.
pub struct KuraAuth {
    pub store: Store,
    pub vault: Vault,
    pub owners: Owners,
}

/// The key's owner as read with its secret, handed from the signature check to the request's
/// handler: one query per request instead of two. The handler takes it out; a missing entry
/// (another request with the same key took it) costs the query again.
#[derive(Clone, Default)]
pub struct Owners(Arc<Mutex<HashMap<String, UserRow>>>);

impl Owners {
    fn put(&self, key: &str, user: UserRow) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_string(), user);
        }
    }

    fn take(&self, key: &str) -> Option<UserRow> {
        self.0.lock().ok()?.remove(key)
    }
}

#[async_trait::async_trait]
impl S3Auth for KuraAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let found = self.store.key_and_owner(access_key).await.map_err(|e| {
            tracing::error!(error = %e, "access key lookup failed");
            s3_error!(InternalError)
        })?;
        let Some((row, owner)) = found else {
            return Err(s3_error!(InvalidAccessKeyId));
        };
        self.owners.put(access_key, owner);
        let secret = self.vault.unseal(&row.id, &row.secret_enc).map_err(|e| {
            tracing::error!(error = %e, "access key cannot be unsealed");
            s3_error!(InternalError)
        })?;
        Ok(SecretKey::from(secret))
    }
}

/// The Kura user a verified request acts for; an unsigned one acts as the core's anonymous
/// caller (the access hook lets only GetObject and HeadObject through).
pub async fn caller<T>(store: &Store, owners: &Owners, req: &S3Request<T>) -> S3Result<Caller> {
    let Some(cred) = &req.credentials else {
        return Ok(Caller::anonymous());
    };
    if let Some(user) = owners.take(&cred.access_key) {
        return Ok(Caller::from_user(user));
    }
    let user = store
        .key_owner(&cred.access_key)
        .await
        .map_err(|_| s3_error!(InternalError))?
        .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
    Ok(Caller::from_user(user))
}

/// The replication peer a verified request was signed for: only a peer key (`kura peer key`)
/// makes a request a shipment, whatever its headers say.
pub async fn peer_of(store: &Store, access_key: Option<&str>) -> S3Result<Option<Peer>> {
    let Some(key) = access_key else {
        return Ok(None);
    };
    let name = store.peer_of_key(key).await.map_err(|e| {
        tracing::error!(error = %e, "peer key lookup failed");
        s3_error!(InternalError)
    })?;
    Ok(name.map(|name| Peer { name }))
}
