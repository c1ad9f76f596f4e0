//! One webhook delivery: the event's JSON, POSTed with its id and an HMAC-SHA256 signature
//! over the timestamp and the body (`X-Kura-Signature: t=TIME,sha256=HEX`), as Stripe and
//! GitHub sign theirs, so a receiver can check both origin and freshness.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::{now_ms, QueuedRow};

/// The signature header value of `body` sent at `t` (seconds) with `secret`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs one queued event; any 2xx answer is a delivery.
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    q: &QueuedRow,
) -> Result<(), String> {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("kura/", env!("CARGO_PKG_VERSION")))
        .header("x-kura-event-id", &q.event_id)
        .body(q.payload.clone());
    if let Some(s) = secret {
        req = req.header(
            "x-kura-signature",
            signature(s, now_ms() / 1000, &q.payload),
        );
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the webhook answered {}", r.status())),
        Err(e) => Err(format!("the webhook is unreachable: {e}")),
    }
}
