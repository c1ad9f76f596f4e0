//! What the database was first used with (migration 0044): checked by every start, so that a
//! gateway set up otherwise than the others is refused instead of serving wrongly.

use super::{MetaError, Store};

/// The value sealed with the database's `secret.key`.
pub const SERVER_KEY: &str = "server_key";
/// The storage holding the files (`Config`'s storage identity).
pub const STORAGE: &str = "storage";

impl Store {
    /// The value recorded under `name`, if any.
    pub async fn install_check(&self, name: &str) -> Result<Option<String>, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM install_checks WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records `value` under `name` unless a value is there already (a first start racing
    /// another one loses here); returns the value now recorded.
    pub async fn record_install_check(&self, name: &str, value: &str) -> Result<String, MetaError> {
        sqlx::query(
            "INSERT INTO install_checks (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM install_checks WHERE name = $1")
                .bind(name)
                .fetch_one(&self.writer)
                .await?,
        )
    }
}
