//! Admin API tokens; only their SHA-256 is stored.

use sqlx::Row;

use super::{now_ms, MetaError, Store};

impl Store {
    /// Stores a token's hash under an id.
    pub async fn insert_token(
        &self,
        id: &str,
        hash: &str,
        name: Option<&str>,
    ) -> Result<(), MetaError> {
        let q = sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, name, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(hash)
        .bind(name)
        .bind(now_ms());
        self.audited(q, "token_create", name, Some(id)).await?;
        Ok(())
    }

    /// Whether a token hash is known.
    pub async fn token_known(&self, hash: &str) -> Result<bool, MetaError> {
        Ok(
            sqlx::query("SELECT 1 FROM api_tokens WHERE token_hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Token ids and names.
    pub async fn tokens(&self) -> Result<Vec<(String, Option<String>)>, MetaError> {
        let rows = sqlx::query("SELECT id, name FROM api_tokens ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Revokes a token; false when unknown.
    pub async fn delete_token(&self, id: &str) -> Result<bool, MetaError> {
        let q = sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id);
        Ok(self.audited(q, "token_revoke", None, Some(id)).await? == 1)
    }
}
