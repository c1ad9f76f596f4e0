//! S3 object lock rows: the retention and legal hold of one version (by version id), and the
//! bucket's default retention applied to new versions inside their commit.

use super::DbTx;

use super::usage::bucket_of;
use super::{MetaError, Store};

/// The bucket setting holding a bucket's object lock configuration (JSON:
/// `{"mode": "GOVERNANCE"|"COMPLIANCE"|null, "days": n|null}`).
pub const LOCK_SETTING: &str = "object_lock";

/// SQL condition true when the `versions` row `$v.id` may not be destroyed at time `$now`
/// (a retention not yet over, or a legal hold).
macro_rules! locked_sql {
    ($id:literal, $now:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM object_locks l WHERE l.version_id = ",
            $id,
            " AND (l.legal_hold = 1 OR l.until_ms > ",
            $now,
            "))"
        )
    };
}
pub(super) use locked_sql;

/// The lock of one version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// `GOVERNANCE` or `COMPLIANCE` while a retention is set.
    pub mode: Option<String>,
    /// Retain until, ms since the epoch.
    pub until_ms: Option<i64>,
    /// A legal hold is on.
    pub legal_hold: bool,
}

/// Gives the new version `path` just got (inside its commit) its bucket's default retention,
/// if the bucket has one.
pub(super) async fn default_retention_tx(
    tx: &mut DbTx,
    path: &str,
    now: i64,
) -> Result<(), MetaError> {
    let Some(bucket) = bucket_of(path) else {
        return Ok(());
    };
    let pg = super::dialect::is_pg(tx);
    let (mode, days) = (
        super::dialect::json_text(pg, "s.value", "mode"),
        super::dialect::json_text(pg, "s.value", "days"),
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO object_locks (version_id, mode, until_ms)
         SELECT e.version_id, {mode}, $3 + CAST({days} AS BIGINT) * 86400000
         FROM entries e, bucket_settings s
         WHERE e.path = $1 AND e.is_dir = 0 AND e.version_id IS NOT NULL
           AND s.bucket = $2 AND s.name = 'object_lock'
           AND {mode} IS NOT NULL
         ON CONFLICT (version_id) DO NOTHING"
    )))
    .bind(path)
    .bind(bucket)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The lock of version `id` (none set: the default row).
    pub async fn lock_of(&self, id: &str) -> Result<Retention, MetaError> {
        let row: Option<(Option<String>, Option<i64>, i64)> = sqlx::query_as(
            "SELECT mode, until_ms, legal_hold FROM object_locks WHERE version_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|(mode, until_ms, hold)| Retention {
                mode,
                until_ms,
                legal_hold: hold != 0,
            })
            .unwrap_or_default())
    }

    /// Sets the lock of version `id` of `path`.
    pub async fn set_lock(&self, path: &str, id: &str, l: &Retention) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO object_locks (version_id, mode, until_ms, legal_hold) VALUES ($1, $2, $3, $4)
             ON CONFLICT (version_id) DO UPDATE SET mode = excluded.mode,
               until_ms = excluded.until_ms, legal_hold = excluded.legal_hold",
        )
        .bind(id)
        .bind(&l.mode)
        .bind(l.until_ms)
        .bind(i64::from(l.legal_hold))
        .execute(&mut *tx)
        .await?;
        super::audit::record_tx(&mut tx, "object_lock", Some(path), Some(id)).await?;
        tx.commit().await?;
        Ok(())
    }
}
