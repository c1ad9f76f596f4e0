//! The far side of a rule: one bucket on a peer, spoken to over S3 (OpenDAL's s3 service).

use opendal::{HttpTransporter, OperationContext, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use super::{pin, ReplError};
use crate::causes::chain;
use crate::store::PeerRow;

/// A bucket on a peer, with the HTTP client that reaches it.
#[derive(Clone)]
pub struct Remote {
    /// S3 access to the bucket.
    pub op: Operator,
    client: reqwest::Client,
    endpoint: String,
    access_key: String,
    secret: String,
}

impl Remote {
    /// Connects lazily to `bucket` on `peer` with its (unsealed) `secret`.
    pub fn new(peer: &PeerRow, secret: &str, bucket: &str) -> Result<Remote, ReplError> {
        // a pin on plain http would pin nothing: refused, not ignored (a row from before
        // `peer add` checked this)
        if peer.ca_fingerprint.is_some() && !peer.endpoint.starts_with("https://") {
            return Err(ReplError::Invalid(format!(
                "peer {} has a certificate fingerprint but a plain http endpoint ({}): use https:// or remove and add the peer without the fingerprint",
                peer.name, peer.endpoint
            )));
        }
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
            access_key: peer.access_key.clone(),
            secret: secret.to_string(),
        })
    }

    /// The peer's base URL (no trailing slash).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Our access key on the peer.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// Our secret on the peer (signs the requests OpenDAL does not make: delta transfer).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The HTTP client that reaches the peer (its certificate pin included).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
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
    let what = match (s3_field(e, "code"), s3_field(e, "message")) {
        (Some(c), Some(m)) if !c.is_empty() && !m.trim().is_empty() => format!("{c}: {m}"),
        (Some(c), _) if !c.is_empty() => c,
        _ if e.kind() == opendal::ErrorKind::Unexpected && status.is_none() => chain(e),
        _ => format!("{}: {}", e.kind(), e.message()),
    };
    let op = full
        .split(" at ")
        .nth(1)
        .and_then(|s| s.split([',', ' ']).next())
        .filter(|s| !s.is_empty())
        .map(|op| format!(" ({op})"))
        .unwrap_or_default();
    let text = match status {
        Some(s) => format!("{s} {what}{op}"),
        None => format!("{what}{op}"),
    };
    one_line(&text)
}

/// Whether the peer answered that it will not take this one object (a 4xx such as 403
/// AccessDenied for a permission, 423 for a lock, 413 or a quota), as opposed to refusing
/// our credentials, being unreachable, throttling us or failing (5xx): only such an answer
/// is worth skipping the object for after repeated tries.
pub fn is_object_refusal(e: &ReplError) -> bool {
    let ReplError::Remote(o) = e else {
        return false;
    };
    let full = o.to_string();
    let status = full
        .split("status: ")
        .nth(1)
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse::<u16>().ok());
    let key_refused = s3_field(o, "code")
        .is_some_and(|c| c == "InvalidAccessKeyId" || c == "SignatureDoesNotMatch");
    matches!(status, Some(400..=499))
        && !matches!(status, Some(401 | 408 | 429))
        && !key_refused
        && !is_refused(e)
}

/// Whether the peer refused our credentials (401, or 403 for the key or the signature,
/// not for a permission or a quota): retrying soon only trips its failed-login throttle.
pub fn is_refused(e: &ReplError) -> bool {
    if let ReplError::Pull(status, text) = e {
        return *status == 401
            || (*status == 403
                && (text.contains("InvalidAccessKeyId")
                    || text.contains("SignatureDoesNotMatch")));
    }
    let ReplError::Remote(e) = e else {
        return false;
    };
    if e.to_string().contains("status: 401") {
        return true;
    }
    // a HEAD has no body, so no code: a 403 there is taken as a refusal, to be safe
    e.kind() == opendal::ErrorKind::PermissionDenied
        && s3_field(e, "code").is_none_or(|c| {
            c.is_empty() || c == "InvalidAccessKeyId" || c == "SignatureDoesNotMatch"
        })
}

/// A field of the S3 error body as OpenDAL renders it (`code: "..."`, `message: "..."`).
pub fn s3_field(e: &opendal::Error, name: &str) -> Option<String> {
    let m = e.message();
    let start = m.find(&format!("{name}: \""))? + name.len() + 3;
    // the body is shown Debug-escaped: its line breaks arrive as `\n`
    let v = m[start..].split('"').next()?;
    Some(
        v.replace("\\r", " ")
            .replace("\\n", " ")
            .replace("\\t", " "),
    )
}

fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control())
        .filter(|p| !p.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_error(kind: opendal::ErrorKind, code: &str) -> ReplError {
        let body = format!(
            "S3Error {{ code: \"{code}\", message: \"it says\\nwhy\", resource: \"\", request_id: \"\" }}"
        );
        ReplError::Remote(
            opendal::Error::new(kind, body)
                .with_context("response", "Parts { status: 403, version: HTTP/1.1 }"),
        )
    }

    #[test]
    fn refusals_of_the_key_are_told_apart_from_permissions() {
        let denied = opendal::ErrorKind::PermissionDenied;
        assert!(is_refused(&s3_error(denied, "InvalidAccessKeyId")));
        assert!(is_refused(&s3_error(denied, "SignatureDoesNotMatch")));
        assert!(!is_refused(&s3_error(denied, "AccessDenied")));
        assert!(!is_refused(&s3_error(denied, "QuotaExceeded")));
        assert!(!is_refused(&s3_error(
            opendal::ErrorKind::NotFound,
            "NoSuchBucket"
        )));
        let told = describe(&s3_error(denied, "InvalidAccessKeyId"));
        assert!(
            told.starts_with("403 InvalidAccessKeyId: it says why"),
            "{told}"
        );
        assert!(!told.contains('\n') && !told.contains("Parts"), "{told}");
    }

    fn with_status(status: u16, code: &str) -> ReplError {
        let body = format!("S3Error {{ code: \"{code}\", message: \"m\" }}");
        ReplError::Remote(
            opendal::Error::new(
                if matches!(status, 401 | 403) {
                    opendal::ErrorKind::PermissionDenied
                } else {
                    opendal::ErrorKind::Unexpected
                },
                body,
            )
            .with_context(
                "response",
                format!("Parts {{ status: {status}, version: HTTP/1.1 }}"),
            ),
        )
    }

    #[test]
    fn only_an_answer_about_the_object_is_worth_skipping_it() {
        assert!(is_object_refusal(&with_status(423, "Locked")));
        assert!(is_object_refusal(&with_status(403, "AccessDenied")));
        assert!(!is_object_refusal(&with_status(
            403,
            "SignatureDoesNotMatch"
        )));
        assert!(!is_object_refusal(&with_status(401, "")));
        assert!(!is_object_refusal(&with_status(429, "SlowDown")));
        assert!(!is_object_refusal(&with_status(503, "ServiceUnavailable")));
        assert!(!is_object_refusal(&ReplError::Unreachable("down".into())));
    }

    #[test]
    fn a_pin_on_plain_http_is_refused_when_shipping() {
        let peer = PeerRow {
            name: "b".into(),
            endpoint: "http://127.0.0.1:1".into(),
            access_key: "k".into(),
            secret_enc: String::new(),
            ca_fingerprint: Some("AB:CD".into()),
            node_id: None,
            created_ms: 0,
            pull: false,
        };
        let err = Remote::new(&peer, "s", "photos")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("plain http")));
    }
}
