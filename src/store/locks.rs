//! Lock rows. Decisions about conflicts are the core's (`vfs::locks`); this module only keeps
//! the rows and runs a decision inside one write transaction, so racing LOCKs cannot both win.

use sqlx::Row;

use super::{now_ms, MetaError, Store};

/// A lock as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct LockRow {
    /// `urn:uuid:` token.
    pub token: String,
    /// Canonical path of the locked resource.
    pub path: String,
    /// The lock was taken on a collection URL.
    pub collection: bool,
    /// User holding it.
    pub principal: Option<String>,
    /// The client's `<owner>` XML, kept as sent.
    pub owner_xml: Option<String>,
    /// Expiry, ms since the epoch (`None`: infinite).
    pub timeout_at_ms: Option<i64>,
    /// The granted timeout in seconds.
    pub timeout_s: Option<i64>,
    /// Shared or exclusive.
    pub shared: bool,
    /// Depth infinity.
    pub deep: bool,
}

fn to_lock(r: super::DbRow) -> LockRow {
    LockRow {
        token: r.get(0),
        path: r.get(1),
        collection: r.get::<i64, _>(2) != 0,
        principal: r.get(3),
        owner_xml: r.get(4),
        timeout_at_ms: r.get(5),
        timeout_s: r.get(6),
        shared: r.get::<i64, _>(7) != 0,
        deep: r.get::<i64, _>(8) != 0,
    }
}

/// What a decision over the current locks changes.
pub enum LockChange {
    /// Nothing.
    None,
    /// Add a lock.
    Insert(LockRow),
    /// Set a lock's expiry (token, timeout_at_ms, timeout_s).
    Refresh(String, Option<i64>, Option<i64>),
    /// Remove a lock by token.
    Remove(String),
}

impl Store {
    /// Runs `decide` over the live locks (expired ones are purged first) and applies its change,
    /// all in one write transaction.
    pub async fn with_locks<T, F>(&self, decide: F) -> Result<T, MetaError>
    where
        F: FnOnce(&[LockRow]) -> (LockChange, T),
    {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        sqlx::query("DELETE FROM locks WHERE timeout_at_ms IS NOT NULL AND timeout_at_ms < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let rows: Vec<LockRow> = sqlx::query(
            "SELECT token, path, collection, principal, owner_xml, timeout_at_ms, timeout_s, shared, deep
             FROM locks ORDER BY path, created_ms",
        )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(to_lock)
            .collect();
        let (change, out) = decide(&rows);
        match change {
            LockChange::None => {}
            LockChange::Insert(l) => {
                sqlx::query(
                    "INSERT INTO locks (token, path, collection, principal, owner_xml, timeout_at_ms, timeout_s, shared, deep, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&l.token)
                .bind(&l.path)
                .bind(i64::from(l.collection))
                .bind(&l.principal)
                .bind(&l.owner_xml)
                .bind(l.timeout_at_ms)
                .bind(l.timeout_s)
                .bind(i64::from(l.shared))
                .bind(i64::from(l.deep))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            LockChange::Refresh(token, at, secs) => {
                sqlx::query("UPDATE locks SET timeout_at_ms = $1, timeout_s = $2 WHERE token = $3")
                    .bind(at)
                    .bind(secs)
                    .bind(&token)
                    .execute(&mut *tx)
                    .await?;
            }
            LockChange::Remove(token) => {
                sqlx::query("DELETE FROM locks WHERE token = $1")
                    .bind(&token)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The unexpired locks, read without a write transaction (checks and discovery, which
    /// change nothing, so concurrent readers never queue behind each other).
    /// The rows are kept in memory while the locks generation holds (`generations.rs`): most
    /// writes find no lock, and every write checks.
    pub async fn live_locks(&self) -> Result<Vec<LockRow>, MetaError> {
        let at = self.generations().await.map(|g| g.locks);
        let rows = match self.generation.locks.get(at, &()) {
            Some(rows) => rows,
            None => {
                let rows = std::sync::Arc::new(
                    sqlx::query(
                        "SELECT token, path, collection, principal, owner_xml, timeout_at_ms,
                           timeout_s, shared, deep FROM locks ORDER BY path, created_ms",
                    )
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(to_lock)
                    .collect::<Vec<_>>(),
                );
                if let Some(at) = at {
                    self.generation.locks.put(at, (), rows.clone());
                }
                rows
            }
        };
        let now = now_ms();
        Ok(rows
            .iter()
            .filter(|l| l.timeout_at_ms.is_none_or(|t| t >= now))
            .cloned()
            .collect())
    }

    /// Removes the locks on a path and below it (after DELETE or MOVE).
    pub async fn delete_locks_below(&self, path: &str) -> Result<(), MetaError> {
        let mut conn = self.pool.acquire().await?;
        delete_locks_below_tx(&mut conn, path).await
    }
}

/// Removes the locks on a path and below it inside a tree change's transaction, so a deleted
/// or moved resource never leaves a lock behind (a lock never travels with a moved resource).
pub(super) async fn delete_locks_below_tx(
    conn: &mut sqlx::AnyConnection,
    path: &str,
) -> Result<(), MetaError> {
    let (lo, hi) = if path == "/" {
        ("/".to_string(), "0".to_string())
    } else {
        (format!("{path}/"), format!("{path}0"))
    };
    sqlx::query("DELETE FROM locks WHERE path = $1 OR (path >= $2 AND path < $3)")
        .bind(path)
        .bind(&lo)
        .bind(&hi)
        .execute(conn)
        .await?;
    Ok(())
}
