//! The far side of a rule: one bucket on a peer, spoken to over S3 (OpenDAL's s3 service).

use opendal::{HttpTransporter, OperationContext, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use super::{pin, ReplError};
use crate::store::PeerRow;

/// A bucket on a peer, with the HTTP client that reaches it.
#[derive(Clone)]
pub struct Remote {
    /// S3 access to the bucket.
    pub op: Operator,
    client: reqwest::Client,
    endpoint: String,
}

impl Remote {
    /// Connects lazily to `bucket` on `peer` with its (unsealed) `secret`.
    pub fn new(peer: &PeerRow, secret: &str, bucket: &str) -> Result<Remote, ReplError> {
        let client = pin::client(peer.ca_fingerprint.as_deref())?;
        let builder = opendal::services::S3::default()
            .endpoint(peer.endpoint.trim_end_matches('/'))
            .bucket(bucket)
            .region("us-east-1")
            .access_key_id(&peer.access_key)
            .secret_access_key(secret)
            .disable_config_load()
            .disable_ec2_metadata();
        let op = Operator::new(builder)?;
        let transport = HttpTransporter::new(ReqwestTransport::new(client.clone()));
        let op = op.with_context(OperationContext::new().with_http_transport(transport));
        Ok(Remote {
            op,
            client,
            endpoint: peer.endpoint.trim_end_matches('/').to_string(),
        })
    }

    /// The peer's node id when it is a Kura node (None for other S3 stores).
    pub async fn node_id(&self) -> Result<Option<String>, ReplError> {
        let url = format!("{}/.well-known/kura-node", self.endpoint);
        let resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| ReplError::Unreachable(format!("{url}: {}", chain(&e))))?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ReplError::Unreachable(format!("{url}: {e}")))?;
        Ok(serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("node_id")?.as_str().map(str::to_string)))
    }
}

/// A failure told in one line a person can act on: what the peer answered (HTTP status,
/// S3 error code and message) instead of the client's debug dump.
pub fn describe(e: &ReplError) -> String {
    let text = match e {
        ReplError::Remote(e) => describe_s3(e),
        e => chain(e),
    };
    one_line(&text)
}

/// An S3 error of the peer: `403 InvalidAccessKeyId: The access key ... (write)`.
pub fn describe_s3(e: &opendal::Error) -> String {
    let full = e.to_string();
    let status = full
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .filter(|s| !s.is_empty());
    let field = |name: &str| {
        let m = e.message();
        let start = m.find(&format!("{name}: \""))? + name.len() + 3;
        m[start..].split('"').next().map(str::to_string)
    };
    let what = match (field("code"), field("message")) {
        (Some(c), Some(m)) if !c.is_empty() => format!("{c}: {m}"),
        _ if e.kind() == opendal::ErrorKind::Unexpected && status.is_none() => chain(e),
        _ => format!("{}: {}", e.kind(), e.message()),
    };
    let op = full
        .split(" at ")
        .nth(1)
        .and_then(|s| s.split([',', ' ']).next())
        .unwrap_or("request");
    let text = match status {
        Some(s) => format!("{s} {what} ({op})"),
        None => format!("{what} ({op})"),
    };
    one_line(&text)
}

/// Whether the peer refused our credentials (401/403): retrying soon only trips its
/// failed-login throttle.
pub fn is_refused(e: &ReplError) -> bool {
    match e {
        ReplError::Remote(e) => {
            e.kind() == opendal::ErrorKind::PermissionDenied
                || e.to_string().contains("status: 401")
        }
        _ => false,
    }
}

fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control())
        .filter(|p| !p.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// An error with its causes, so "error sending request" says why (refused, certificate, ...).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        // wrappers often repeat their cause's text
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}
