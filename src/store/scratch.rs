//! Unit tests' throw-away databases: a temporary SQLite file, or, when
//! `KURA_TEST_DATABASE_URL` names a PostgreSQL server (scripts/test-store-postgres.sh), a
//! fresh database on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::Connection;

use super::{MetaError, Store};

impl Store {
    /// A throwaway store for unit tests, opened as `connect` does (readers beside the one
    /// writer: the core reads the locks while a write transaction is open, which a single
    /// in-memory connection would deadlock on).
    pub async fn in_memory() -> Result<Self, MetaError> {
        match std::env::var("KURA_TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => fresh_postgres(&server).await,
            _ => {
                let dir = tempfile::tempdir().map_err(|e| MetaError::Db(sqlx::Error::Io(e)))?;
                let store = Self::open(&dir.path().join("kura.db")).await?;
                Ok(Store {
                    _scratch: Some(Arc::new(dir)),
                    ..store
                })
            }
        }
    }
}

/// A new database on the server `server` names (its own database is only connected to), with
/// the migrations applied. Left on the server: the test cluster is thrown away whole.
async fn fresh_postgres(server: &str) -> Result<Store, MetaError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    sqlx::any::install_default_drivers();
    let name = format!(
        "kura_unit_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::AnyConnection::connect(server).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let mut url =
        url::Url::parse(server).map_err(|e| MetaError::Db(sqlx::Error::Configuration(e.into())))?;
    url.set_path(&name);
    Store::connect(url.as_str(), false).await
}
