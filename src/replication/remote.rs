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
