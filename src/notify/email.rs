//! E-mail deliveries: one message per event, or one digest of several, through the
//! configured mail server (`lettre`).

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpSecurity};
use crate::store::QueuedRow;

/// One line of text for an event.
fn line(q: &QueuedRow) -> String {
    let v: serde_json::Value = serde_json::from_str(&q.payload).unwrap_or_default();
    format!(
        "{} {} by {} ({}, {})",
        v["event"].as_str().unwrap_or("?"),
        v["path"].as_str().unwrap_or("?"),
        v["actor"].as_str().unwrap_or("anonymous"),
        v["protocol"].as_str().unwrap_or("?"),
        q.event_id
    )
}

/// Sends `batch` (one event, or a digest) to `to`.
pub async fn send(smtp: Option<&SmtpConfig>, to: &str, batch: &[QueuedRow]) -> Result<(), String> {
    let Some(cfg) = smtp.filter(|c| !c.host.is_empty()) else {
        return Err("no [smtp] server is configured".into());
    };
    let from: Mailbox = cfg.from.parse().map_err(|e| format!("[smtp] from: {e}"))?;
    let to: Mailbox = to.parse().map_err(|e| format!("recipient {to}: {e}"))?;
    let subject = match batch {
        [one] => format!("Kura: {}", line(one)),
        many => format!("Kura: {} events", many.len()),
    };
    let body: Vec<String> = batch.iter().map(line).collect();
    let msg = Message::builder()
        .from(from)
        .to(to)
        .subject(subject.chars().take(200).collect::<String>())
        .header(ContentType::TEXT_PLAIN)
        .body(body.join("\n") + "\n")
        .map_err(|e| format!("building the message: {e}"))?;
    let builder = match cfg.security {
        SmtpSecurity::None => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
        }
        SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
            .map_err(|e| format!("smtp: {e}"))?,
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
            .map_err(|e| format!("smtp: {e}"))?,
    };
    let mut builder = builder.port(cfg.port);
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    builder
        .build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| format!("smtp: {e}"))
}
