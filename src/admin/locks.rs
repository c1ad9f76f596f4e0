//! Live WebDAV locks, listed and broken by administrators, for the CLI and the REST API alike.

use serde::Serialize;
use utoipa::ToSchema;

use super::{Admin, AdminError};
use crate::vfs::locks::Lock;

/// A live lock.
#[derive(Serialize, ToSchema)]
pub struct LockView {
    /// The token (`urn:uuid:...`), which `kura lock break` and `DELETE /api/v1/locks/{token}` take.
    pub token: String,
    pub path: String,
    /// The user holding it.
    pub user: Option<String>,
    /// `exclusive` or `shared`.
    pub scope: String,
    /// `0` or `infinity`.
    pub depth: String,
    /// Expiry, ms since the epoch (`null`: never).
    pub expires_ms: Option<i64>,
    /// The `<owner>` XML the client sent.
    pub owner: Option<String>,
}

fn lock_view(l: Lock) -> LockView {
    LockView {
        token: l.token,
        path: l.path.to_string(),
        user: l.principal,
        scope: if l.shared { "shared" } else { "exclusive" }.into(),
        depth: if l.deep { "infinity" } else { "0" }.into(),
        expires_ms: l.timeout_at.and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as i64)
        }),
        owner: l.owner_xml,
    }
}

impl Admin {
    /// Every live lock, in path order.
    pub async fn locks(&self) -> Result<Vec<LockView>, AdminError> {
        Ok(self
            .vfs
            .all_locks(&Self::admin_caller())
            .await?
            .into_iter()
            .map(lock_view)
            .collect())
    }

    /// Removes a lock by its token, whoever holds it (a client that vanished, or a lock that
    /// blocks others); the lock removed.
    pub async fn break_lock(&self, token: &str) -> Result<LockView, AdminError> {
        match self.vfs.break_lock(&Self::admin_caller(), token).await? {
            Some(l) => {
                tracing::info!(token = %l.token, path = %l.path, user = ?l.principal, "lock broken by an administrator");
                Ok(lock_view(l))
            }
            None => Err(AdminError::NotFound(format!("lock {token}"))),
        }
    }
}
