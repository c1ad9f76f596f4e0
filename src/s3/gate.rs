//! Checks made in the router before s3s reads a byte of the body: the request must carry a
//! signature unless it is an anonymous read (GET or HEAD without a body; the core decides
//! whether what it asks for is public), a SigV2 header signature must be fresh, and
//! presigned URLs may not run longer than seven days (AWS's own limit). Malformed signature,
//! date and Content-MD5 headers get the codes AWS answers them with, where s3s's differ.
//! SSE-C headers (a client's encryption key) are refused unless the request came over TLS,
//! as AWS refuses them, before the key or the body is read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderValue, Request, Response, StatusCode};

use crate::wire::{full, RespBody};

/// Largest clock difference a SigV2 header signature may have (AWS: 15 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// Longest validity of a presigned URL, SigV2 or SigV4 (AWS: 604800 seconds).
pub const MAX_PRESIGNED: Duration = Duration::from_secs(7 * 24 * 3600);

/// How a request says who it is.
#[derive(Debug, PartialEq, Eq)]
enum Signature {
    None,
    HeaderV4,
    HeaderV2,
    QueryV4,
    QueryV2,
}

fn signature<B>(req: &Request<B>) -> Signature {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth.starts_with("AWS4-HMAC-SHA256 ") {
        return Signature::HeaderV4;
    }
    if auth.starts_with("AWS ") {
        return Signature::HeaderV2;
    }
    if query(req, "X-Amz-Algorithm").is_some() && query(req, "X-Amz-Signature").is_some() {
        return Signature::QueryV4;
    }
    if query(req, "AWSAccessKeyId").is_some() && query(req, "Signature").is_some() {
        return Signature::QueryV2;
    }
    Signature::None
}

fn query<'a, B>(req: &'a Request<B>, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if kv == name => Some(""),
            _ => None,
        })
}

/// AWS's words for an SSE-C key sent over plain HTTP.
pub(super) const SSE_C_OVER_HTTP: &str = "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.";

/// Whether a header (or form field, or query parameter) name, lowercase, carries SSE-C: the
/// client's key, its MD5 or its algorithm, for the object or for a copy's source.
pub(super) fn is_sse_c(name: &str) -> bool {
    name.strip_prefix("x-amz-")
        .map(|n| n.strip_prefix("copy-source-").unwrap_or(n))
        .is_some_and(|n| n.starts_with("server-side-encryption-customer-"))
}

/// Refuses a request carrying SSE-C that did not come over TLS (`wire::Secure`), before its
/// key is used or its body read; SSE-C in the query string, where s3s would not see it and
/// the key would be ignored, is refused too.
#[allow(clippy::result_large_err)]
fn sse_c_transport<B>(req: &Request<B>) -> Result<(), Response<RespBody>> {
    let in_query = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| is_sse_c(&kv.split('=').next().unwrap_or("").to_ascii_lowercase()))
    });
    if in_query {
        return Err(s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "SSE-C values are sent as headers, not in the query string",
        ));
    }
    let in_headers = req.headers().keys().any(|h| is_sse_c(h.as_str()));
    if in_headers && req.extensions().get::<crate::wire::Secure>().is_none() {
        return Err(s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            SSE_C_OVER_HTTP,
        ));
    }
    // a copy source's key on a request that copies nothing (a PutObject, an UploadPart) would
    // be ignored, and the client believe its source checked or its object sealed: AWS refuses
    let source_key = req.headers().keys().any(|h| {
        h.as_str()
            .starts_with("x-amz-copy-source-server-side-encryption-customer-")
    });
    if source_key && !req.headers().contains_key("x-amz-copy-source") {
        return Err(s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "x-amz-copy-source-server-side-encryption-customer-* headers are only valid on a copy (CopyObject, UploadPartCopy: a request with x-amz-copy-source)",
        ));
    }
    Ok(())
}

/// Refuses, before any body is read, an S3 request that is unsigned, a SigV2 header signature
/// dated more than 15 minutes from now, a presigned URL valid for more than seven days, and
/// SSE-C over plain HTTP.
#[allow(clippy::result_large_err)]
pub fn admit<B>(req: &Request<B>) -> Result<(), Response<RespBody>> {
    let now = SystemTime::now();
    sse_c_transport(req)?;
    match signature(req) {
        Signature::None if is_anonymous_read(req) => Ok(()),
        Signature::None => Err(s3_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "an unsigned request may only GET or HEAD a public object, without a body",
        )),
        Signature::HeaderV4 => {
            if !well_formed_v4(req) {
                return Err(s3_error(
                    StatusCode::BAD_REQUEST,
                    "AuthorizationHeaderMalformed",
                    "the authorization header is malformed",
                ));
            }
            let amz_date = req.headers().get("x-amz-date").map(|v| v.as_bytes());
            if amz_date.is_some_and(|d| !iso8601_basic(d)) {
                return Err(s3_error(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "AWS authentication requires a valid Date or x-amz-date header",
                ));
            }
            content_md5(req)
        }
        Signature::HeaderV2 => {
            let h = req.headers();
            let auth = h
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("AWS "))
                .and_then(|v| v.split_once(':'));
            if !auth.is_some_and(|(id, sig)| !id.is_empty() && !sig.is_empty()) {
                return Err(s3_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "a SigV2 authorization header is AWS <access key id>:<signature>",
                ));
            }
            let date = h
                .get("x-amz-date")
                .or_else(|| h.get(header::DATE))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v.trim()).ok());
            match date {
                None => Err(s3_error(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "a SigV2 request needs a valid Date or x-amz-date header",
                )),
                Some(d) if distance(d, now) > MAX_SKEW => Err(s3_error(
                    StatusCode::FORBIDDEN,
                    "RequestTimeTooSkewed",
                    "the difference between the request time and the server's time is too large",
                )),
                Some(_) => content_md5(req),
            }
        }
        Signature::QueryV4 => {
            let expires = query(req, "X-Amz-Expires").and_then(|v| v.parse::<u64>().ok());
            match expires {
                Some(s) if s <= MAX_PRESIGNED.as_secs() => Ok(()),
                _ => Err(s3_error(
                    StatusCode::BAD_REQUEST,
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be a number of seconds of at most 604800 (one week)",
                )),
            }
        }
        Signature::QueryV2 => {
            let expires = query(req, "Expires").and_then(|v| v.parse::<u64>().ok());
            let limit = now
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_add(MAX_PRESIGNED)
                .as_secs();
            match expires {
                Some(e) if e <= limit => Ok(()),
                _ => Err(s3_error(
                    StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "a presigned URL must expire within one week",
                )),
            }
        }
    }
}

/// A SigV4 Authorization header in its documented form: `AWS4-HMAC-SHA256
/// Credential=ID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX`.
fn well_formed_v4<B>(req: &Request<B>) -> bool {
    let Some(fields) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("AWS4-HMAC-SHA256 "))
    else {
        return false;
    };
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for field in fields.split(',') {
        let Some((name, value)) = field.trim().split_once('=') else {
            return false;
        };
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return false,
        };
        if slot.replace(value).is_some() {
            return false;
        }
    }
    let scope_ok = credential.is_some_and(|c: &str| {
        let parts: Vec<&str> = c.split('/').collect();
        parts.len() == 5 && parts[4] == "aws4_request" && parts.iter().all(|p| !p.is_empty())
    });
    scope_ok
        && signed.is_some_and(|s: &str| !s.is_empty())
        && signature
            .is_some_and(|s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `YYYYMMDDTHHMMSSZ`, the only form of `x-amz-date` SigV4 signs.
fn iso8601_basic(d: &[u8]) -> bool {
    d.len() == 16
        && d.iter().enumerate().all(|(i, b)| match i {
            8 => *b == b'T',
            15 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// A Content-MD5 header must be the base64 of 16 bytes (AWS: InvalidDigest), an empty one too;
/// s3s takes an empty header for none.
#[allow(clippy::result_large_err)]
fn content_md5<B>(req: &Request<B>) -> Result<(), Response<RespBody>> {
    use base64::Engine;
    let Some(v) = req.headers().get("content-md5") else {
        return Ok(());
    };
    let raw = base64::engine::general_purpose::STANDARD.decode(v.as_bytes().trim_ascii());
    if raw.is_ok_and(|r| r.len() == 16) {
        return Ok(());
    }
    Err(s3_error(
        StatusCode::BAD_REQUEST,
        "InvalidDigest",
        "the Content-MD5 header is not the base64 of an MD5 digest",
    ))
}

/// An unsigned `GET` or `HEAD` without a body: the only request an anonymous caller may make
/// (what it may read, the core decides). One with an `Authorization` header that is no S3
/// signature (empty, say) is no anonymous read but a failed login (AWS: AccessDenied).
pub fn is_anonymous_read<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    signature(req) == Signature::None
        && !h.contains_key(header::AUTHORIZATION)
        && matches!(*req.method(), http::Method::GET | http::Method::HEAD)
        && !h.contains_key(header::TRANSFER_ENCODING)
        && h.get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}

/// An unsigned request that costs a lookup in the store: a read (`is_anonymous_read`) or a
/// CORS preflight (`OPTIONS`, which reads the bucket's rules). These are paced per address.
pub fn is_paced<B>(req: &Request<B>) -> bool {
    is_anonymous_read(req)
        || (*req.method() == http::Method::OPTIONS && signature(req) == Signature::None)
}

/// The answer to an anonymous read over its address's budget: S3's `503 SlowDown`, which
/// S3 clients retry after `Retry-After`.
pub fn slow_down(wait: Duration) -> Response<RespBody> {
    let mut r = s3_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "SlowDown",
        "too many anonymous requests from this address; please reduce your request rate",
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs().max(1)),
    );
    r
}

fn distance(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or_default()
}

/// An S3 error reply written here, as s3s would, for a request s3s never sees.
pub(super) fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<RespBody> {
    s3_error_xml(status, code, message, "")
}

/// `s3_error` with more (escaped) elements after the message.
pub(super) fn s3_error_xml(
    status: StatusCode,
    code: &str,
    message: &str,
    extra: &str,
) -> Response<RespBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>{extra}</Error>"
    );
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn code(r: Result<(), Response<RespBody>>) -> u16 {
        r.map_or_else(|e| e.status().as_u16(), |()| 200)
    }

    #[test]
    fn unsigned_and_stale_requests_are_refused() {
        // an unsigned GET or HEAD passes (the core decides what it may read); with a body not
        let get = |m: &str, h: &[(&str, &str)]| {
            let mut b = Request::builder().method(m).uri("/b/k");
            for (k, v) in h {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        assert_eq!(code(admit(&get("GET", &[]))), 200);
        assert_eq!(code(admit(&get("HEAD", &[("content-length", "0")]))), 200);
        assert_eq!(code(admit(&get("GET", &[("content-length", "5")]))), 403);
        assert_eq!(
            code(admit(&get("GET", &[("transfer-encoding", "chunked")]))),
            403
        );
        for m in ["PUT", "POST", "DELETE", "PATCH"] {
            assert_eq!(code(admit(&get(m, &[]))), 403, "{m}");
        }
        assert_eq!(code(admit(&req("/b/k", &[]))), 200);
        // S3-looking headers are no signature: a write with them is refused, a read with them
        // is anonymous
        let date = ("x-amz-date", "20260101T000000Z");
        assert_eq!(code(admit(&get("PUT", &[date]))), 403);
        assert!(is_anonymous_read(&get("GET", &[date])));
        let sig = "0".repeat(64);
        let v4 = format!("AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}");
        assert_eq!(code(admit(&req("/b/k", &[("authorization", &v4)]))), 200);
        let now = httpdate::fmt_http_date(SystemTime::now());
        assert_eq!(
            code(admit(&req(
                "/b/k",
                &[("authorization", "AWS K:s"), ("date", &now)]
            ))),
            200
        );
        let old = "Fri, 06 Nov 2015 08:49:37 GMT";
        assert_eq!(
            code(admit(&req(
                "/b/k",
                &[("authorization", "AWS K:s"), ("date", old)]
            ))),
            403
        );
        assert_eq!(
            code(admit(&req("/b/k", &[("authorization", "AWS K:s")]))),
            403
        );
        let q4 = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0&X-Amz-Expires=";
        assert_eq!(code(admit(&req(&format!("{q4}604800"), &[]))), 200);
        assert_eq!(code(admit(&req(&format!("{q4}604801"), &[]))), 400);
        let q2 = "/b/k?AWSAccessKeyId=K&Signature=s&Expires=";
        assert_eq!(code(admit(&req(&format!("{q2}4102444800"), &[]))), 403);
        let soon = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        assert_eq!(code(admit(&req(&format!("{q2}{soon}"), &[]))), 200);
    }

    #[test]
    fn sse_c_is_refused_over_plain_http_and_in_the_query() {
        let sig = "0".repeat(64);
        let v4 = format!("AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}");
        let auth = ("authorization", v4.as_str());
        let copy = ("x-amz-copy-source", "/b/src");
        for h in [
            "x-amz-server-side-encryption-customer-algorithm",
            "x-amz-server-side-encryption-customer-key",
            "x-amz-server-side-encryption-customer-key-MD5",
            "x-amz-copy-source-server-side-encryption-customer-key",
        ] {
            let plain = req("/b/k", &[auth, copy, (h, "x")]);
            let r = admit(&plain).unwrap_err();
            assert_eq!(r.status(), 400, "{h}");
            let mut secure = req("/b/k", &[auth, copy, (h, "x")]);
            secure.extensions_mut().insert(crate::wire::Secure);
            assert_eq!(code(admit(&secure)), 200, "{h}");
        }
        // a copy source's key on a request that copies nothing: refused, over TLS too
        for h in [
            "x-amz-copy-source-server-side-encryption-customer-algorithm",
            "x-amz-copy-source-server-side-encryption-customer-key",
            "x-amz-copy-source-server-side-encryption-customer-key-MD5",
        ] {
            let mut put = req("/b/k", &[auth, (h, "x")]);
            put.extensions_mut().insert(crate::wire::Secure);
            assert_eq!(code(admit(&put)), 400, "{h}");
        }
        // the SSE-S3 header is no SSE-C
        assert_eq!(
            code(admit(&req(
                "/b/k",
                &[auth, ("x-amz-server-side-encryption", "AES256")]
            ))),
            200
        );
        let mut q = req(
            "/b/k?X-Amz-Server-Side-Encryption-Customer-Key=abc",
            &[auth],
        );
        q.extensions_mut().insert(crate::wire::Secure);
        assert_eq!(code(admit(&q)), 400);
    }

    #[test]
    fn malformed_signature_headers_get_the_codes_aws_gives() {
        let error = |headers: &[(&str, &str)]| {
            admit(&req("/b/k", headers)).map_or_else(|r| r.status().as_u16(), |()| 200)
        };
        let sig = "a".repeat(64);
        let v4 = format!("AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}");
        let date = ("x-amz-date", "20260101T000000Z");
        assert_eq!(error(&[("authorization", &v4), date]), 200);
        for bad in [
            "AWS4-HMAC-SHA256 garbage".to_string(),
            v4.replace("/aws4_request", ""),
            v4.replace(&sig, "abc"),
            v4.replace(", SignedHeaders=host;x-amz-date", ""),
            format!("{v4}, Signature={sig}"),
        ] {
            assert_eq!(error(&[("authorization", &bad), date]), 400, "{bad}");
        }
        assert_eq!(
            error(&[("authorization", &v4), ("x-amz-date", "Bad Date")]),
            403
        );
        assert_eq!(error(&[("authorization", "AWS HAHAHA")]), 400);
        for md5 in ["", "YWJyYWNhZGFicmE=", "AWS HAHAHA"] {
            assert_eq!(
                error(&[("authorization", &v4), date, ("content-md5", md5)]),
                400
            );
        }
        let good_md5 = ("content-md5", "rL0Y20xC+Fzt72VPzMSk2A==");
        assert_eq!(error(&[("authorization", &v4), date, good_md5]), 200);
    }
}
