//! S3 identities: access key -> sealed secret for SigV4, and key -> Kura user for every call.

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Request, S3Result};

use crate::keys::Vault;
use crate::store::Store;
use crate::vfs::Caller;

/// Answers s3s's secret lookups from the access key table.
pub struct KuraAuth {
    pub store: Store,
    pub vault: Vault,
}

#[async_trait::async_trait]
impl S3Auth for KuraAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let row = self.store.key(access_key).await.map_err(|e| {
            tracing::error!(error = %e, "access key lookup failed");
            s3_error!(InternalError)
        })?;
        let Some(row) = row else {
            return Err(s3_error!(InvalidAccessKeyId));
        };
        let secret = self.vault.unseal(&row.id, &row.secret_enc).map_err(|e| {
            tracing::error!(error = %e, "access key cannot be unsealed");
            s3_error!(InternalError)
        })?;
        Ok(SecretKey::from(secret))
    }
}

/// The Kura user a verified request acts for; anonymous requests are denied.
pub async fn caller<T>(store: &Store, req: &S3Request<T>) -> S3Result<Caller> {
    let Some(cred) = &req.credentials else {
        return Err(s3_error!(AccessDenied, "anonymous access is not allowed"));
    };
    let user = store
        .key_owner(&cred.access_key)
        .await
        .map_err(|_| s3_error!(InternalError))?
        .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
    Ok(Caller::from_user(user))
}
