//! Notification rules for the CLI and the admin API: checked here, stored by the store, run
//! by `crate::notify`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Admin, AdminError};
use crate::notify::{secret_id, EVENTS};
use crate::store::{NotifyRule, QueuedRow};

/// A rule to add: a bucket (and prefix), the events, and one target.
#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct NewNotification {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    /// Some of: created, deleted, restored, share_opened, quota, replication_failing.
    pub events: Vec<String>,
    /// An http(s) URL to POST each event to.
    pub webhook: Option<String>,
    /// The webhook's HMAC key; generated (and returned once) when absent.
    pub secret: Option<String>,
    /// An address to e-mail each event (or a digest) to.
    pub email: Option<String>,
    /// E-mail a digest every this many minutes instead of each event.
    #[serde(default)]
    pub digest_minutes: i64,
    /// The quota share (percent, default 90) that fires `quota` events.
    pub quota_percent: Option<i64>,
}

/// An added rule, with the webhook secret shown once.
#[derive(Serialize, ToSchema)]
pub struct CreatedNotification {
    pub rule: NotifyRule,
    pub secret: Option<String>,
}

/// Rules, how many deliveries wait or were given up, and the newest failing ones (at most
/// 100, bodies left out).
#[derive(Serialize, ToSchema)]
pub struct NotificationsView {
    pub rules: Vec<NotifyRule>,
    pub waiting: i64,
    pub given_up: i64,
    pub failing: Vec<QueuedRow>,
}

impl Admin {
    /// Adds a notification rule.
    pub async fn add_notification(
        &self,
        n: NewNotification,
    ) -> Result<CreatedNotification, AdminError> {
        if !self.buckets().await?.iter().any(|b| b.name == n.bucket) {
            return Err(AdminError::NotFound(format!("bucket {}", n.bucket)));
        }
        if n.events.is_empty() {
            return Err(AdminError::Invalid(format!(
                "name the events to send: {}",
                EVENTS.join(", ")
            )));
        }
        if let Some(bad) = n.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err(AdminError::Invalid(format!(
                "unknown event {bad}; the events are {}",
                EVENTS.join(", ")
            )));
        }
        match (&n.webhook, &n.email) {
            (Some(url), None) => {
                let ok = url::Url::parse(url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok {
                    return Err(AdminError::Invalid(format!("{url} is not an http(s) URL")));
                }
            }
            (None, Some(addr)) => {
                if addr.parse::<lettre::Address>().is_err() {
                    return Err(AdminError::Invalid(format!(
                        "{addr} is not an e-mail address"
                    )));
                }
            }
            _ => {
                return Err(AdminError::Invalid(
                    "give one target: a webhook URL or an e-mail address".into(),
                ))
            }
        }
        if !(0..=10_080).contains(&n.digest_minutes) {
            return Err(AdminError::Invalid("digest minutes: 0 to 10080".into()));
        }
        let quota_percent = n.quota_percent.unwrap_or(90);
        if !(1..=100).contains(&quota_percent) {
            return Err(AdminError::Invalid("quota percent: 1 to 100".into()));
        }
        let id = format!("n{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let secret = n.webhook.as_ref().map(|_| {
            n.secret
                .clone()
                .unwrap_or_else(crate::auth::random_password)
        });
        let rule = NotifyRule {
            id: id.clone(),
            bucket: n.bucket,
            prefix: n.prefix.trim_start_matches('/').to_string(),
            events: n.events,
            webhook: n.webhook,
            secret_sealed: secret.as_ref().map(|s| self.vault.seal(&secret_id(&id), s)),
            email: n.email,
            digest_minutes: n.digest_minutes,
            quota_percent,
        };
        self.store.insert_notify_rule(&rule).await?;
        Ok(CreatedNotification { rule, secret })
    }

    /// Every rule and the deliveries waiting or given up.
    pub async fn notifications(&self) -> Result<NotificationsView, AdminError> {
        let (waiting, given_up) = self.store.notification_counts().await?;
        Ok(NotificationsView {
            rules: self.store.notify_rules().await?,
            waiting,
            given_up,
            failing: self.store.failing_notifications(100).await?,
        })
    }

    /// Removes a rule and its queue.
    pub async fn remove_notification(&self, id: &str) -> Result<(), AdminError> {
        if !self.store.delete_notify_rule(id).await? {
            return Err(AdminError::NotFound(format!("notification rule {id}")));
        }
        Ok(())
    }
}
