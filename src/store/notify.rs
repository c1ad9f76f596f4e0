//! Notification rules, their durable delivery queue and the audit cursor that feeds it
//! (migration 0023).

use super::{now_ms, MetaError, Store};

/// A notification rule.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RuleRow {
    /// Its id.
    pub id: String,
    /// The bucket it watches.
    pub bucket: String,
    /// Only keys below this prefix ("" for all).
    pub prefix: String,
    /// The event types it sends.
    pub events: Vec<String>,
    /// Where webhooks go.
    pub webhook: Option<String>,
    /// The sealed HMAC key of the webhook.
    #[serde(skip)]
    pub secret_sealed: Option<String>,
    /// Where e-mails go.
    pub email: Option<String>,
    /// 0: one e-mail per event; N: a digest every N minutes.
    pub digest_minutes: i64,
    /// The quota share (percent) that fires `quota` events.
    pub quota_percent: i64,
}

/// A queued delivery.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct QueuedRow {
    /// Queue id.
    pub id: i64,
    /// The rule it is for.
    pub rule_id: String,
    /// The event's id (what receivers deduplicate by).
    pub event_id: String,
    /// The JSON body (not shown in listings).
    #[serde(skip)]
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When to try next, ms.
    pub next_ms: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Given up.
    pub dead: bool,
    /// Queued at, ms.
    pub created_ms: i64,
}

type RuleTuple = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);
type QueueTuple = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    i64,
    i64,
);

fn rule(t: RuleTuple) -> RuleRow {
    RuleRow {
        id: t.0,
        bucket: t.1,
        prefix: t.2,
        events: serde_json::from_str(&t.3).unwrap_or_default(),
        webhook: t.4,
        secret_sealed: t.5,
        email: t.6,
        digest_minutes: t.7,
        quota_percent: t.8,
    }
}

fn queued(t: QueueTuple) -> QueuedRow {
    QueuedRow {
        id: t.0,
        rule_id: t.1,
        event_id: t.2,
        payload: t.3,
        attempts: t.4,
        next_ms: t.5,
        last_error: t.6,
        dead: t.7 != 0,
        created_ms: t.8,
    }
}

const QUEUE_COLS: &str =
    "id, rule_id, event_id, payload, attempts, next_ms, last_error, dead, created_ms";

impl Store {
    /// Adds a rule.
    pub async fn insert_notify_rule(&self, r: &RuleRow) -> Result<(), MetaError> {
        let q = sqlx::query(
            "INSERT INTO notify_rules (id, bucket, prefix, events, webhook, secret_sealed, email,
               digest_minutes, quota_percent, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&r.id)
        .bind(&r.bucket)
        .bind(&r.prefix)
        .bind(serde_json::to_string(&r.events).unwrap_or_else(|_| "[]".into()))
        .bind(&r.webhook)
        .bind(&r.secret_sealed)
        .bind(&r.email)
        .bind(r.digest_minutes)
        .bind(r.quota_percent)
        .bind(now_ms());
        self.audited(q, "notify_add", Some(&r.bucket), Some(&r.id))
            .await?;
        Ok(())
    }

    /// Every rule, oldest first.
    pub async fn notify_rules(&self) -> Result<Vec<RuleRow>, MetaError> {
        let rows: Vec<RuleTuple> = sqlx::query_as(
            "SELECT id, bucket, prefix, events, webhook, secret_sealed, email, digest_minutes,
               quota_percent FROM notify_rules ORDER BY created_ms, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(rule).collect())
    }

    /// Removes a rule and its queue; false when unknown.
    pub async fn delete_notify_rule(&self, id: &str) -> Result<bool, MetaError> {
        let q = sqlx::query("DELETE FROM notify_rules WHERE id = $1").bind(id);
        Ok(self.audited(q, "notify_remove", None, Some(id)).await? == 1)
    }

    /// The audit id the queue has been filled up to.
    pub async fn notify_cursor(&self) -> Result<i64, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT audit_id FROM notify_cursor WHERE one = 1")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Queues `items` (rule, event id, payload) and moves the cursor from `from` to `to`, in
    /// one transaction; nothing when another worker moved the cursor first. An event already
    /// queued for a rule is not queued again.
    pub async fn enqueue_notifications(
        &self,
        from: i64,
        to: i64,
        items: &[(String, String, String)],
    ) -> Result<bool, MetaError> {
        let mut tx = self.write_tx().await?;
        let moved =
            sqlx::query("UPDATE notify_cursor SET audit_id = $2 WHERE one = 1 AND audit_id = $1")
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        let now = now_ms();
        for (rule, event, payload) in items {
            sqlx::query(
                "INSERT INTO notify_queue (rule_id, event_id, payload, next_ms, created_ms)
                 SELECT $1, $2, $3, $4, $4 WHERE EXISTS (SELECT 1 FROM notify_rules WHERE id = $1)
                 ON CONFLICT (rule_id, event_id) DO NOTHING",
            )
            .bind(rule)
            .bind(event)
            .bind(payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deliveries due now, oldest first.
    pub async fn notifications_due(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<QueuedRow>, MetaError> {
        let sql = format!(
            "SELECT {QUEUE_COLS} FROM notify_queue WHERE dead = 0 AND next_ms <= $1 ORDER BY id LIMIT $2"
        );
        let rows: Vec<QueueTuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(queued).collect())
    }

    /// How many deliveries wait and how many were given up.
    pub async fn notification_counts(&self) -> Result<(i64, i64), MetaError> {
        Ok(sqlx::query_as(
            "SELECT COALESCE(CAST(SUM(CASE WHEN dead = 0 THEN 1 ELSE 0 END) AS BIGINT), 0), COALESCE(CAST(SUM(CASE WHEN dead = 1 THEN 1 ELSE 0 END) AS BIGINT), 0) FROM notify_queue",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The newest deliveries that failed at least once (waiting or given up), at most `limit`.
    pub async fn failing_notifications(&self, limit: i64) -> Result<Vec<QueuedRow>, MetaError> {
        let sql = format!(
            "SELECT {QUEUE_COLS} FROM notify_queue WHERE attempts > 0 ORDER BY id DESC LIMIT $1"
        );
        let rows: Vec<QueueTuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(queued).collect())
    }

    /// Forgets deliveries given up before `before_ms`; returns how many.
    pub async fn purge_given_up(&self, before_ms: i64) -> Result<u64, MetaError> {
        let r = sqlx::query("DELETE FROM notify_queue WHERE dead = 1 AND created_ms < $1")
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected())
    }

    /// A delivery succeeded: forget it.
    pub async fn notification_sent(&self, ids: &[i64]) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        for id in ids {
            sqlx::query("DELETE FROM notify_queue WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A delivery failed: try again at `next_ms`, or give up (`dead`).
    pub async fn notification_failed(
        &self,
        id: i64,
        next_ms: i64,
        error: &str,
        dead: bool,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "UPDATE notify_queue SET attempts = attempts + 1, next_ms = $2, last_error = $3,
               dead = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(next_ms)
        .bind(error)
        .bind(i64::from(dead))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The path a share link points at (a `share_open` event names the share).
    pub async fn share_path(&self, id: &str) -> Result<Option<String>, MetaError> {
        Ok(sqlx::query_scalar("SELECT path FROM shares WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }
}
