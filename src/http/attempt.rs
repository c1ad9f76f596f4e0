//! Which requests are authentication attempts, and on which account: the key of the
//! per-(address, account) failure counter. Requests presenting no credentials are not attempts.

use http::{header, Method, Request};
use sha2::{Digest, Sha256};

/// The account a request tries to authenticate as: `user:NAME` (Basic), `token` (Bearer),
/// `key:ID` (S3 header or presigned URL), `share:HASH` (a share link given a password).
pub fn account<B>(req: &Request<B>) -> Option<String> {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(token) = req.uri().path().strip_prefix(crate::share::PREFIX) {
        let token = token.split('/').next().unwrap_or_default();
        let form = req.method() == Method::POST
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        // the token itself never becomes part of a key kept in memory
        return (auth.is_some() || form)
            .then(|| format!("share:{}", &crate::share_links::token_hash(token)[..16]));
    }
    if let Some(a) = auth {
        let a = a.trim();
        if let Some(rest) = a.strip_prefix("AWS4-HMAC-SHA256 ") {
            let cred = rest
                .split(',')
                .find_map(|p| p.trim().strip_prefix("Credential="))?;
            return Some(format!("key:{}", cred.split('/').next()?));
        }
        if let Some(rest) = a.strip_prefix("AWS ") {
            return Some(format!("key:{}", rest.split(':').next()?));
        }
        if a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer ") {
            return Some("token".into());
        }
        if let Some(user) = crate::auth::basic_user(a) {
            return Some(format!("user:{user}"));
        }
        return None;
    }
    let q = req.uri().query()?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
        match k {
            "X-Amz-Credential" => Some(format!("key:{}", v.split('/').next()?)),
            "AWSAccessKeyId" => Some(format!("key:{v}")),
            _ => None,
        }
    })
}

/// A fingerprint of the credential a request presents, to recognise one that succeeded before:
/// the SHA-256 of the `Authorization` value (Basic, Bearer) or of the share cookies; for S3
/// signatures, which change with every request, the access key id (its secret is random and
/// long, so recognising the key is enough). `None` when nothing can be recognised.
pub fn credential<B>(req: &Request<B>) -> Option<String> {
    let h = req.headers();
    let auth = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let s3 = auth.is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 ") || a.starts_with("AWS "));
    if s3
        || auth.is_none()
            && req
                .uri()
                .path()
                .strip_prefix(crate::share::PREFIX)
                .is_none()
    {
        return account(req);
    }
    let presented = match auth {
        Some(a) => a.as_bytes(),
        None => h.get(header::COOKIE)?.as_bytes(),
    };
    Some(hex::encode(Sha256::digest(presented)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn accounts_of_each_entry_point() {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ann:pw")
        );
        assert_eq!(
            account(&req("GET", "/dav/x", &[("authorization", &basic)])).as_deref(),
            Some("user:ann")
        );
        assert_eq!(account(&req("GET", "/dav/x", &[])), None);
        assert_eq!(
            account(&req(
                "GET",
                "/api/v1/users",
                &[("authorization", "Bearer kura_x")]
            ))
            .as_deref(),
            Some("token")
        );
        let sig = "AWS4-HMAC-SHA256 Credential=KURAABC/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(
            account(&req("GET", "/b/k", &[("authorization", sig)])).as_deref(),
            Some("key:KURAABC")
        );
        assert_eq!(
            account(&req(
                "GET",
                "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=KURAQ%2F20260101%2Fus-east-1%2Fs3%2Faws4_request",
                &[]
            ))
            .as_deref(),
            Some("key:KURAQ")
        );
        let token = "t".repeat(43);
        assert_eq!(account(&req("GET", &format!("/s/{token}"), &[])), None);
        let a = account(&req(
            "POST",
            &format!("/s/{token}"),
            &[("content-type", "application/x-www-form-urlencoded")],
        ))
        .unwrap();
        assert!(a.starts_with("share:") && !a.contains(&token));
        assert_eq!(
            account(&req(
                "GET",
                &format!("/s/{token}/f"),
                &[("authorization", &basic)]
            )),
            Some(a)
        );
        // credentials: a hash of what is presented, the key id for signatures
        let c = credential(&req("GET", "/dav/x", &[("authorization", &basic)])).unwrap();
        assert_eq!(c.len(), 64);
        assert_ne!(
            Some(c),
            credential(&req("GET", "/dav/x", &[("authorization", "Basic eDp5")]))
        );
        assert_eq!(
            credential(&req("GET", "/b/k", &[("authorization", sig)])).as_deref(),
            Some("key:KURAABC")
        );
        assert_eq!(credential(&req("GET", &format!("/s/{token}"), &[])), None);
    }
}
