//! The audit trail's rows: written with the request context of `wire::audit` inside the
//! transaction of the change they record, read back filtered and paged, purged by age.

use super::DbTx;

use super::{now_ms, MetaError, Store};
use crate::wire::audit::current;

/// One recorded action.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// Increasing id (the paging cursor).
    pub id: i64,
    /// When, ms since the epoch.
    pub time_ms: i64,
    /// The user (absent: anonymous or the server itself).
    pub actor: Option<String>,
    /// The client's address.
    pub client: Option<String>,
    /// webdav, s3, share, api, app, cli or system.
    pub protocol: String,
    /// What was done.
    pub action: String,
    /// The path (or the name of the user, key, share... acted on).
    pub path: Option<String>,
    /// The second path of a move or copy.
    pub path2: Option<String>,
    /// ok or failed.
    pub outcome: String,
    /// More about it.
    pub detail: Option<String>,
}

/// What `kura audit` and the admin API ask for.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only this user's actions.
    pub actor: Option<String>,
    /// Only actions on this path or below it (either path of a move).
    pub path: Option<String>,
    /// Only actions at or after this time (ms).
    pub since_ms: Option<i64>,
    /// Only rows with an id below this (the next page of a newest-first listing).
    pub before_id: Option<i64>,
    /// At most this many rows.
    pub limit: i64,
}

/// Records `action` on `path` (and `path2`) with the current request context, inside `tx`.
pub(super) async fn record_tx(
    tx: &mut DbTx,
    action: &str,
    path: Option<&str>,
    path2: Option<&str>,
) -> Result<(), MetaError> {
    record_detail_tx(tx, action, path, path2, None).await
}

/// `record_tx` with a detail (what an ACL made of the entry).
pub(super) async fn record_detail_tx(
    tx: &mut DbTx,
    action: &str,
    path: Option<&str>,
    path2: Option<&str>,
    detail: Option<&str>,
) -> Result<(), MetaError> {
    let ctx = current();
    sqlx::query(
        "INSERT INTO audit (time_ms, actor, client, protocol, action, path, path2, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(now_ms())
    .bind(ctx.actor)
    .bind(ctx.client)
    .bind(ctx.protocol)
    .bind(action)
    .bind(path)
    .bind(path2)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Records an action that changes nothing in the database (a failed sign-in, a share
    /// opened), with the current request context.
    pub async fn record_audit(
        &self,
        action: &str,
        path: Option<&str>,
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<(), MetaError> {
        let ctx = current();
        sqlx::query(
            "INSERT INTO audit (time_ms, actor, client, protocol, action, path, outcome, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now_ms())
        .bind(ctx.actor)
        .bind(ctx.client)
        .bind(ctx.protocol)
        .bind(action)
        .bind(path)
        .bind(outcome)
        .bind(detail)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Recorded actions matching `q`, newest first.
    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, MetaError> {
        let (lo, hi) = match &q.path {
            Some(p) => super::below(p.trim_end_matches('/')),
            None => (String::new(), String::new()),
        };
        let rows: Vec<AuditTuple> = sqlx::query_as(
            "SELECT id, time_ms, actor, client, protocol, action, path, path2, outcome, detail
             FROM audit
             WHERE ($1 IS NULL OR actor = $1)
               AND ($2 IS NULL OR path = $2 OR path2 = $2
                    OR (path >= $3 AND path < $4) OR (path2 >= $3 AND path2 < $4))
               AND ($5 IS NULL OR time_ms >= $5)
               AND ($6 IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7",
        )
        .bind(&q.actor)
        .bind(q.path.as_deref().map(|p| p.trim_end_matches('/')))
        .bind(lo)
        .bind(hi)
        .bind(q.since_ms)
        .bind(q.before_id)
        .bind(q.limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AuditRow::from).collect())
    }

    /// Rows after `id`, oldest first (the JSON-lines writer's and the notifier's cursor).
    pub async fn audit_after(&self, id: i64, limit: i64) -> Result<Vec<AuditRow>, MetaError> {
        let rows: Vec<AuditTuple> = sqlx::query_as(
            "SELECT id, time_ms, actor, client, protocol, action, path, path2, outcome, detail
             FROM audit WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AuditRow::from).collect())
    }

    /// The newest row's id (0 when none).
    pub async fn audit_head(&self) -> Result<i64, MetaError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Removes rows older than `before_ms`; returns how many.
    pub async fn purge_audit(&self, before_ms: i64) -> Result<u64, MetaError> {
        let r = sqlx::query("DELETE FROM audit WHERE time_ms < $1")
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected())
    }
}

type AuditTuple = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

impl From<AuditTuple> for AuditRow {
    fn from(t: AuditTuple) -> Self {
        AuditRow {
            id: t.0,
            time_ms: t.1,
            actor: t.2,
            client: t.3,
            protocol: t.4,
            action: t.5,
            path: t.6,
            path2: t.7,
            outcome: t.8,
            detail: t.9,
        }
    }
}

/// A write statement about to run.
pub(super) type Statement<'q> = sqlx::query::Query<'q, super::Db, sqlx::any::AnyArguments>;

impl Store {
    /// Runs one write statement and, when it changed a row, its audit row, in one
    /// transaction; returns the rows changed (`Duplicate` on a unique violation).
    pub(super) async fn audited(
        &self,
        q: Statement<'_>,
        action: &str,
        path: Option<&str>,
        path2: Option<&str>,
    ) -> Result<u64, MetaError> {
        let mut tx = self.write_tx().await?;
        let n = q
            .execute(&mut *tx)
            .await
            .map_err(super::map_unique)?
            .rows_affected();
        if n > 0 {
            record_tx(&mut tx, action, path, path2).await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}
