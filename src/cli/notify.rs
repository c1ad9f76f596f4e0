//! `kura notify`: add, list and remove notification rules (the admin service's).

use clap::Subcommand;

use super::admin::open_admin;
use super::CliError;
use crate::admin::NewNotification;
use crate::config::Config;

/// `kura notify ...`
#[derive(Subcommand, Debug)]
pub enum NotifyCmd {
    /// Send a bucket's events (or those below a prefix) to a webhook or an e-mail address.
    Add {
        /// The bucket.
        #[arg(long)]
        bucket: String,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Comma-separated: created, deleted, restored, share_opened, quota,
        /// replication_failing.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// POST each event as JSON to this http(s) URL (HMAC-signed).
        #[arg(long, conflicts_with = "email")]
        webhook: Option<String>,
        /// The webhook's HMAC key (generated and printed once when absent).
        #[arg(long, requires = "webhook")]
        secret: Option<String>,
        /// E-mail each event to this address (needs [smtp] in the configuration).
        #[arg(long)]
        email: Option<String>,
        /// E-mail one digest every this many minutes instead of each event.
        #[arg(long, default_value_t = 0, requires = "email")]
        digest_minutes: i64,
        /// For `quota` events: the share of the quota (percent) that fires them.
        #[arg(long)]
        quota_percent: Option<i64>,
    },
    /// List the rules and the deliveries waiting or given up.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule and its waiting deliveries.
    Remove {
        /// The rule's id.
        id: String,
    },
}

/// Runs `kura notify ...`.
pub async fn notify(cfg: &Config, cmd: NotifyCmd) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    match cmd {
        NotifyCmd::Add {
            bucket,
            prefix,
            events,
            webhook,
            secret,
            email,
            digest_minutes,
            quota_percent,
        } => {
            let created = admin
                .add_notification(NewNotification {
                    bucket,
                    prefix,
                    events,
                    webhook,
                    secret,
                    email,
                    digest_minutes,
                    quota_percent,
                })
                .await?;
            println!("rule {}", created.rule.id);
            if let Some(s) = created.secret {
                println!("secret: {s}");
                println!("(each POST carries X-Kura-Signature: t=TIME,sha256=HMAC-SHA256(secret, \"TIME.BODY\"))");
            }
        }
        NotifyCmd::List { json } => {
            let v = admin.notifications().await?;
            if json {
                println!("{}", serde_json::to_string(&v).unwrap_or_default());
                return Ok(());
            }
            println!("id\tbucket\tprefix\tevents\ttarget");
            for r in &v.rules {
                let target = r.webhook.clone().or(r.email.clone()).unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{target}",
                    r.id,
                    r.bucket,
                    r.prefix,
                    r.events.join(",")
                );
            }
            println!("queue: {} waiting, {} given up", v.waiting, v.given_up);
            for q in &v.failing {
                println!(
                    "  {} {} attempts {}{}: {}",
                    q.rule_id,
                    q.event_id,
                    q.attempts,
                    if q.dead { " (given up)" } else { "" },
                    q.last_error.as_deref().unwrap_or("")
                );
            }
        }
        NotifyCmd::Remove { id } => {
            admin.remove_notification(&id).await?;
            println!("removed rule {id}");
        }
    }
    Ok(())
}
