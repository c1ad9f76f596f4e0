//! The server key's check value: which `secret.key` the database belongs with.

use super::{MetaError, Store};

impl Store {
    /// The check value sealed with the database's server key, if one was recorded.
    pub async fn server_key_check(&self) -> Result<Option<String>, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM server_key_check WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records `sealed` unless a value is there already (a first start racing another one
    /// loses here); returns the value now recorded.
    pub async fn record_server_key_check(&self, sealed: &str) -> Result<String, MetaError> {
        sqlx::query(
            "INSERT INTO server_key_check (id, sealed) VALUES (1, $1) ON CONFLICT DO NOTHING",
        )
        .bind(sealed)
        .execute(&self.writer)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT sealed FROM server_key_check WHERE id = 1")
                .fetch_one(&self.writer)
                .await?,
        )
    }
}
