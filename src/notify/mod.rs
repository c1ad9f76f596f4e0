//! Event notifications (docs/operations.md): rules per bucket and prefix turn audit rows
//! (the durable record of every change, written in the change's transaction) into queued
//! deliveries, which a worker sends to webhooks (JSON, HMAC-signed) and e-mail, retrying with
//! back-off. The queue and the audit cursor move in one transaction, so a restart loses no
//! event, and an event is queued once per rule (receivers deduplicate by its id).

mod email;
mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::SmtpConfig;
use crate::store::{now_ms, AuditRow, MetaError, NotifyRule, QueuedRow, Store};
use crate::vault::Vault;

/// The event types a rule can ask for.
pub const EVENTS: &[&str] = &[
    "created",
    "deleted",
    "restored",
    "share_opened",
    "quota",
    "replication_failing",
];

/// Attempts before a delivery is given up.
const MAX_ATTEMPTS: i64 = 20;

/// How long a given-up delivery stays listed.
const GIVEN_UP_KEPT_MS: i64 = 7 * 86_400_000;

/// The background worker.
#[derive(Clone)]
pub struct Notifier {
    store: Store,
    vault: Vault,
    http: reqwest::Client,
    smtp: Option<SmtpConfig>,
    /// Set at shutdown: the delivery under way finishes and is recorded, no other starts.
    stopping: Arc<AtomicBool>,
}

/// The running worker, to stop it cleanly at shutdown.
pub struct Running {
    stopping: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Lets the delivery under way finish and be recorded (so a restart does not send it
    /// again), waiting at most `limit`.
    pub async fn stop(self, limit: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        if tokio::time::timeout(limit, self.task).await.is_err() {
            tracing::warn!("a notification was still being delivered at shutdown");
        }
    }
}

/// The events an audit row stands for, with the path each is about.
fn events_of(row: &AuditRow) -> Vec<(&'static str, Option<String>)> {
    let p = row.path.clone();
    let p2 = row.path2.clone();
    match row.action.as_str() {
        "create" | "overwrite" => vec![("created", p)],
        "copy" => vec![("created", p2)],
        "move" => vec![("deleted", p), ("created", p2)],
        "delete" => vec![("deleted", p)],
        "restore" => vec![("restored", p)],
        "share_open" => vec![("share_opened", None)],
        "replication_failing" => vec![("replication_failing", p)],
        _ => Vec::new(),
    }
}

/// Whether `rule` watches `path` (a bucket itself for bucket-wide events).
fn watches(rule: &NotifyRule, path: &str) -> bool {
    let bucket = format!("/{}", rule.bucket);
    if path == bucket {
        return rule.prefix.is_empty();
    }
    path.strip_prefix(&bucket)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|key| key.starts_with(&rule.prefix))
}

/// The JSON body of an event.
fn payload(id: &str, event: &str, path: &str, row: &AuditRow) -> String {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let bucket = parts.next().unwrap_or("");
    let key = parts.next().unwrap_or("");
    serde_json::json!({
        "id": id,
        "event": event,
        "bucket": bucket,
        "key": key,
        "path": path,
        "time_ms": row.time_ms,
        "actor": row.actor,
        "client": row.client,
        "protocol": row.protocol,
    })
    .to_string()
}

impl Notifier {
    /// A worker over `store`, webhook secrets unsealed by `vault`, e-mail through `smtp`.
    pub fn new(store: Store, vault: Vault, smtp: Option<SmtpConfig>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Notifier {
            store,
            vault,
            http,
            smtp,
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Runs until stopped: queues new events and sends what is due, every `every`.
    pub fn spawn(self, every: Duration) -> Running {
        let stopping = self.stopping.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                if self.stopped() {
                    return;
                }
                ticks += 1;
                // one gateway on a shared database queues and sends at a time (scale-out.md)
                let turn = self.store.once(crate::store::Job::Notify, self.turn(ticks));
                if let Err(e) = turn.await {
                    tracing::warn!(error = %e, "cannot take the notifications' turn");
                }
            }
        });
        Running { stopping, task }
    }

    /// One tick's work: queue what is new, send what is due.
    async fn turn(&self, ticks: u64) {
        // given-up deliveries are kept a week for `kura notify list`, then forgotten
        if ticks % 3600 == 1 {
            let before = now_ms() - GIVEN_UP_KEPT_MS;
            if let Err(e) = self.store.purge_given_up(before).await {
                tracing::warn!(error = %e, "purging given-up notifications failed");
            }
        }
        if let Err(e) = self.queue_new().await {
            tracing::warn!(error = %e, "queueing notifications failed");
        }
        if let Err(e) = self.send_due().await {
            tracing::warn!(error = %e, "sending notifications failed");
        }
    }

    /// Turns the audit rows after the cursor into queued deliveries.
    pub async fn queue_new(&self) -> Result<(), MetaError> {
        loop {
            let from = self.store.notify_cursor().await?;
            let rows = self.store.audit_after(from, 500).await?;
            let Some(last) = rows.last().map(|r| r.id) else {
                return Ok(());
            };
            let rules = self.store.notify_rules().await?;
            let mut items = Vec::new();
            for row in &rows {
                for (event, path) in events_of(row) {
                    let path = match (event, path) {
                        ("share_opened", _) => match &row.path2 {
                            Some(id) => self.store.share_path(id).await?,
                            None => None,
                        },
                        (_, p) => p,
                    };
                    let Some(path) = path else { continue };
                    for rule in rules.iter().filter(|r| r.events.iter().any(|e| e == event)) {
                        if !watches(rule, &path) {
                            continue;
                        }
                        let id = format!("{}-{event}", row.id);
                        items.push((rule.id.clone(), id.clone(), payload(&id, event, &path, row)));
                    }
                    if event == "created" {
                        self.quota_events(&rules, &path, row, &mut items).await?;
                    }
                }
            }
            // another process moved the cursor meanwhile: read again from there
            self.store.enqueue_notifications(from, last, &items).await?;
            if rows.len() < 500 {
                return Ok(());
            }
        }
    }

    /// A `quota` event per rule whose bucket's group is at or above the rule's share of its
    /// quota after a write: at most one a day per rule.
    async fn quota_events(
        &self,
        rules: &[NotifyRule],
        path: &str,
        row: &AuditRow,
        items: &mut Vec<(String, String, String)>,
    ) -> Result<(), MetaError> {
        let wanting: Vec<&NotifyRule> = rules
            .iter()
            .filter(|r| r.events.iter().any(|e| e == "quota") && watches(r, path))
            .collect();
        if wanting.is_empty() {
            return Ok(());
        }
        let Some((Some(quota), used)) = self.store.quota_of(path).await? else {
            return Ok(());
        };
        let day = row.time_ms / 86_400_000;
        for rule in wanting {
            if quota > 0 && used.saturating_mul(100) >= quota.saturating_mul(rule.quota_percent) {
                let id = format!("quota-{day}");
                let bucket_path = format!("/{}", rule.bucket);
                let mut body: serde_json::Value =
                    serde_json::from_str(&payload(&id, "quota", &bucket_path, row))
                        .unwrap_or_default();
                body["used_bytes"] = used.into();
                body["quota_bytes"] = quota.into();
                items.push((rule.id.clone(), id, body.to_string()));
            }
        }
        Ok(())
    }

    /// Sends the deliveries due now; reschedules failures with exponential back-off.
    pub async fn send_due(&self) -> Result<(), MetaError> {
        let due = self.store.notifications_due(now_ms(), 100).await?;
        if due.is_empty() {
            return Ok(());
        }
        let rules = self.store.notify_rules().await?;
        let mut digests: std::collections::BTreeMap<String, Vec<QueuedRow>> = Default::default();
        for q in due {
            if self.stopped() {
                return Ok(());
            }
            let Some(rule) = rules.iter().find(|r| r.id == q.rule_id) else {
                continue;
            };
            let result = if let Some(url) = &rule.webhook {
                let secret = match &rule.secret_sealed {
                    Some(s) => self.vault.unseal(&secret_id(&rule.id), s).ok(),
                    None => None,
                };
                webhook::send(&self.http, url, secret.as_deref(), &q).await
            } else if rule.email.is_some() && rule.digest_minutes > 0 {
                digests.entry(rule.id.clone()).or_default().push(q);
                continue;
            } else if let Some(to) = &rule.email {
                email::send(self.smtp.as_ref(), to, std::slice::from_ref(&q)).await
            } else {
                Err("the rule has no target".into())
            };
            self.settle(&[q], result).await?;
        }
        for (rule_id, batch) in digests {
            let Some(rule) = rules.iter().find(|r| r.id == rule_id) else {
                continue;
            };
            // a digest goes once its oldest event has waited its period
            let oldest = batch.iter().map(|q| q.created_ms).min().unwrap_or(0);
            if now_ms() - oldest < rule.digest_minutes * 60_000 {
                continue;
            }
            let to = rule.email.clone().unwrap_or_default();
            let result = email::send(self.smtp.as_ref(), &to, &batch).await;
            self.settle(&batch, result).await?;
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    async fn settle(
        &self,
        batch: &[QueuedRow],
        result: Result<(), String>,
    ) -> Result<(), MetaError> {
        match result {
            Ok(()) => {
                let ids: Vec<i64> = batch.iter().map(|q| q.id).collect();
                self.store.notification_sent(&ids).await
            }
            Err(e) => {
                for q in batch {
                    let wait = 2i64
                        .saturating_pow((q.attempts + 1).min(12) as u32)
                        .min(3600);
                    let dead = q.attempts + 1 >= MAX_ATTEMPTS;
                    if dead {
                        tracing::warn!(rule = %q.rule_id, event = %q.event_id, error = %e, "notification given up");
                    }
                    self.store
                        .notification_failed(q.id, now_ms() + wait * 1000, &e, dead)
                        .await?;
                }
                Ok(())
            }
        }
    }
}

/// The vault binding of a rule's webhook secret.
pub fn secret_id(rule: &str) -> String {
    format!("notify:{rule}")
}
