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
    let store = Store::connect(url.as_str(), false).await?;
    Ok(Store {
        _scratch: Some(Arc::new(url.to_string())),
        ..store
    })
}

impl Store {
    /// What `connect` takes to open a second handle on a unit test's database (as another
    /// process or gateway would).
    pub fn url_for_tests(&self) -> String {
        match self.inline.file() {
            Some(file) => file.to_string_lossy().into_owned(),
            None => self
                ._scratch
                .as_ref()
                .and_then(|s| s.downcast_ref::<String>())
                .expect("a unit test's store")
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Write transactions of two handles on one database (two processes, two gateways) run
    /// one at a time: SQLite's write lock, PostgreSQL's transaction-scoped advisory lock,
    /// which COMMIT releases.
    #[tokio::test]
    async fn write_transactions_of_two_handles_run_one_at_a_time() {
        let a = Store::in_memory().await.unwrap();
        let b = Store::connect(&a.url_for_tests(), false).await.unwrap();
        let first = a.write_tx().await.unwrap();
        let second = tokio::spawn(async move {
            let tx = b.write_tx().await.unwrap();
            tx.commit().await.unwrap();
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !second.is_finished(),
            "a second writer ran beside the first"
        );
        first.commit().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second writer waits only for the first")
            .unwrap();
    }
}
