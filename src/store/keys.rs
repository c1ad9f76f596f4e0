//! S3 access key rows; the secret column holds only sealed bytes.

use sqlx::Row;

use super::{now_ms, MetaError, Store};

/// An access key as stored.
#[derive(Clone, Debug)]
pub struct KeyRow {
    /// Public access key id.
    pub id: String,
    /// User the key acts for.
    pub owner: String,
    /// Sealed secret (see `crate::vault`).
    pub secret_enc: String,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

fn to_key(r: super::DbRow) -> KeyRow {
    KeyRow {
        id: r.get(0),
        owner: r.get(1),
        secret_enc: r.get(2),
        created_ms: r.get(3),
    }
}

impl Store {
    /// Stores a new key; `Duplicate` if the id exists.
    pub async fn insert_key(
        &self,
        id: &str,
        owner: &str,
        secret_enc: &str,
    ) -> Result<(), MetaError> {
        let q = sqlx::query(
            "INSERT INTO access_keys (id, owner, secret_enc, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(owner)
        .bind(secret_enc)
        .bind(now_ms());
        self.audited(q, "key_create", Some(owner), Some(id)).await?;
        Ok(())
    }

    /// All keys, or those of one user.
    pub async fn keys(&self, owner: Option<&str>) -> Result<Vec<KeyRow>, MetaError> {
        let rows = match owner {
            Some(o) => {
                sqlx::query("SELECT id, owner, secret_enc, created_ms FROM access_keys WHERE owner = $1 ORDER BY id")
                    .bind(o)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT id, owner, secret_enc, created_ms FROM access_keys ORDER BY owner, id")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows.into_iter().map(to_key).collect())
    }

    /// Deletes a key; false when it does not exist.
    pub async fn delete_key(&self, id: &str) -> Result<bool, MetaError> {
        let q = sqlx::query("DELETE FROM access_keys WHERE id = $1").bind(id);
        Ok(self.audited(q, "key_revoke", None, Some(id)).await? == 1)
    }
}
