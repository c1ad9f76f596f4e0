//! POST Object: browser form uploads with a signed policy (AWS's SigV4 POST). s3s 0.14 holds
//! the file part in memory, so the form is parsed here with multer, the policy and its
//! signature are checked, and the file part streams into the same PutObject call a PUT makes
//! (staging, quota, locks, versions, checksums): the policy's size range is enforced while it
//! streams, and a refused upload leaves nothing behind.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use s3s::auth::{Credentials, SecretKey};
use s3s::dto::{PutObjectAclInput, PutObjectInput, StreamingBlob};
use s3s::{s3_error, S3Error, S3Request};

use super::host::KuraHost;
use super::post_policy::{authenticate, check_conditions, policy_refusal, Form, Signed};
use super::service::KuraS3;
use crate::wire::{full, ReqBody, RespBody};

/// Largest total of the form fields before the file, names and values (AWS: 20 KB).
const FORM_MAX: usize = 20 * 1024;
/// Most bytes read from the body before the file part begins (fields, part headers, framing):
/// what bounds a part header that never ends.
const PREAMBLE_MAX: u64 = 64 * 1024;
/// Most bytes after the file part read (and ignored, as AWS does) to keep the connection.
const EPILOGUE_MAX: usize = 64 * 1024;
/// How long the body of a refused form is still read after the answer (see `linger`).
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// What stays unescaped in a key's segment (the `Location`) and in the redirect's query.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The bucket a POST Object request uploads into: a POST of `multipart/form-data` to a bucket
/// (path style `/bucket`, or `/` of a virtual-host bucket); `None` for anything else.
pub(super) fn target<B>(req: &Request<B>, host: &KuraHost) -> Option<String> {
    if req.method() != http::Method::POST {
        return None;
    }
    let ct = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return None;
    }
    let path = req.uri().path().trim_start_matches('/');
    let vhost = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| host.bucket_of(h));
    let bucket = match vhost {
        Some(b) if path.is_empty() => b,
        Some(_) => return None,
        None => path.strip_suffix('/').unwrap_or(path),
    };
    (!bucket.is_empty() && !bucket.contains('/')).then(|| bucket.to_string())
}

/// Counts what multer reads from the body and refuses more than `PREAMBLE_MAX` before the file
/// part begins.
struct Preamble {
    inner: http_body_util::BodyDataStream<ReqBody>,
    read: Arc<AtomicU64>,
    in_file: Arc<AtomicBool>,
    overflow: Arc<AtomicBool>,
}

impl Stream for Preamble {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if !this.in_file.load(Ordering::Relaxed) && this.read.load(Ordering::Relaxed) > PREAMBLE_MAX
        {
            this.overflow.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(std::io::Error::other(
                "form fields before the file are too large",
            ))));
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                this.read.fetch_add(b.len() as u64, Ordering::Relaxed);
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            other => other.map(|o| o.map(|r| r.map_err(std::io::Error::other))),
        }
    }
}

/// Why the file part was cut off: outside the policy's `content-length-range`.
#[derive(Clone, Copy, Debug)]
enum Size {
    TooLarge,
    TooSmall,
}

/// The file part as PutObject reads it, failing as soon as it passes the policy's maximum and
/// at its end when it is under the minimum, so the upload is aborted before its commit.
struct FilePart {
    field: multer::Field<'static>,
    seen: u64,
    min: u64,
    max: u64,
    verdict: Arc<Mutex<Option<Size>>>,
}

impl FilePart {
    fn refuse(&mut self, why: Size) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(why);
        }
        Poll::Ready(Some(Err(std::io::Error::other(
            "file outside the policy's content-length-range",
        ))))
    }
}

impl Stream for FilePart {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.field).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                this.seen = this.seen.saturating_add(b.len() as u64);
                if this.seen > this.max {
                    return this.refuse(Size::TooLarge);
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            Poll::Ready(None) if this.seen < this.min => this.refuse(Size::TooSmall),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> S3Error {
    s3_error!(
        MalformedPOSTRequest,
        "The body of your POST request is not well-formed multipart/form-data: {}",
        e
    )
}

fn too_long() -> S3Error {
    s3_error!(
        MaxPostPreDataLengthExceededError,
        "Your POST request fields preceding the upload file were too large."
    )
}

/// An S3 error as s3s writes it.
fn reply(e: S3Error) -> Response<RespBody> {
    match e.to_http_response() {
        Ok(r) => r.map(|b| b.map_err(std::io::Error::other).boxed_unsync()),
        Err(e) => {
            tracing::error!(error = ?e, "cannot write an S3 error");
            let mut r = Response::new(crate::wire::empty());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// Reads the form fields up to the file part (bounded by `FORM_MAX`); fields after it are
/// never read, as in AWS.
async fn read_form(
    mp: &mut multer::Multipart<'static>,
    overflow: &AtomicBool,
) -> Result<(Form, multer::Field<'static>), S3Error> {
    let fault = |e: multer::Error| {
        if overflow.load(Ordering::Relaxed) {
            too_long()
        } else {
            malformed(e)
        }
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut total = 0usize;
    loop {
        let Some(mut field) = mp.next_field().await.map_err(fault)? else {
            return Err(s3_error!(
                InvalidArgument,
                "POST requires exactly one file upload per request."
            ));
        };
        let name = field.name().unwrap_or("").to_ascii_lowercase();
        if name == "file" {
            let filename = field
                .file_name()
                .map(|f| f.rsplit(['/', '\\']).next().unwrap_or("").to_string())
                .unwrap_or_default();
            return Ok((Form { fields, filename }, field));
        }
        total += name.len();
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(fault)? {
            total += chunk.len();
            if total > FORM_MAX {
                return Err(too_long());
            }
            value.extend_from_slice(&chunk);
        }
        if total > FORM_MAX {
            return Err(too_long());
        }
        let value = String::from_utf8(value).map_err(|_| malformed("a field is not UTF-8"))?;
        if fields.iter().any(|(n, _)| *n == name) {
            return Err(s3_error!(
                InvalidArgument,
                "the form field {} is given more than once",
                name
            ));
        }
        fields.push((name, value));
    }
}

fn request<T>(input: T, signed: &Signed, uri: &http::Uri) -> S3Request<T> {
    S3Request {
        input,
        method: http::Method::POST,
        uri: uri.clone(),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::new(),
        credentials: Some(Credentials {
            access_key: signed.access_key.clone(),
            secret_key: SecretKey::from(signed.secret.clone()),
        }),
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// The PutObject input the form describes, the file part as its body.
fn put_input(form: &Form, bucket: &str, key: &str, body: FilePart) -> PutObjectInput {
    let field = |n: &str| form.get(n).map(str::to_string);
    let metadata: std::collections::HashMap<String, String> = form
        .fields
        .iter()
        .filter_map(|(n, v)| Some((n.strip_prefix("x-amz-meta-")?.to_string(), v.clone())))
        .collect();
    let mut input = PutObjectInput::builder()
        .bucket(bucket.to_string())
        .key(key.to_string())
        .build()
        .unwrap_or_default();
    input.body = Some(StreamingBlob::wrap(body));
    input.content_type = field("content-type");
    input.cache_control = field("cache-control");
    input.content_disposition = field("content-disposition");
    input.content_encoding = field("content-encoding");
    input.content_language = field("content-language");
    input.metadata = (!metadata.is_empty()).then_some(metadata);
    input.checksum_crc32 = field("x-amz-checksum-crc32");
    input.checksum_crc32c = field("x-amz-checksum-crc32c");
    input.checksum_crc64nvme = field("x-amz-checksum-crc64nvme");
    input.checksum_sha1 = field("x-amz-checksum-sha1");
    input.checksum_sha256 = field("x-amz-checksum-sha256");
    input.checksum_algorithm = form
        .get("x-amz-checksum-algorithm")
        .map(|a| a.to_ascii_uppercase().into());
    input.sse_customer_algorithm = field("x-amz-server-side-encryption-customer-algorithm");
    input.sse_customer_key = field("x-amz-server-side-encryption-customer-key");
    input.sse_customer_key_md5 = field("x-amz-server-side-encryption-customer-key-md5");
    input
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The answer to a stored upload: a redirect when the form asks for one (an http or https
/// URL), else `success_action_status` (200, 201 with AWS's XML body, or 204, the default).
fn success(
    form: &Form,
    uri: &http::Uri,
    bucket: &str,
    key: &str,
    etag: &str,
) -> Response<RespBody> {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
    let path = key
        .split('/')
        .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/");
    let location = format!("/{bucket}/{path}");
    let etag = format!("\"{etag}\"");
    let redirect = form
        .get("success_action_redirect")
        .or_else(|| form.get("redirect"))
        .filter(|u| {
            let l = u.to_ascii_lowercase();
            (l.starts_with("https://") || l.starts_with("http://"))
                && u.parse::<http::Uri>().is_ok()
        });
    let mut r = if let Some(url) = redirect {
        let sep = if url.contains('?') { '&' } else { '?' };
        let to = format!(
            "{url}{sep}bucket={}&key={}&etag={}",
            enc(bucket),
            enc(key),
            enc(&etag)
        );
        let mut r = Response::new(crate::wire::empty());
        *r.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = HeaderValue::from_str(&to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    } else {
        match form.get("success_action_status") {
            Some("200") => {
                let mut r = Response::new(crate::wire::empty());
                *r.status_mut() = StatusCode::OK;
                r
            }
            Some("201") => {
                let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    xml_escape(&if host.is_empty() { location.clone() } else { format!("https://{host}{location}") }),
                    xml_escape(bucket),
                    xml_escape(key),
                    xml_escape(&etag)
                );
                let mut r = Response::new(full(body));
                *r.status_mut() = StatusCode::CREATED;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
                r
            }
            _ => {
                let mut r = Response::new(crate::wire::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    if r.status() != StatusCode::SEE_OTHER {
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
    }
    r
}

/// Serves one POST Object request into `bucket`.
pub(super) async fn handle(
    s3: &KuraS3,
    req: Request<ReqBody>,
    bucket: String,
) -> Response<RespBody> {
    let (parts, body) = req.into_parts();
    let boundary = match parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(multer::parse_boundary)
    {
        Some(Ok(b)) => b,
        _ => return reply(malformed("no boundary in Content-Type")),
    };
    let in_file = Arc::new(AtomicBool::new(false));
    let overflow = Arc::new(AtomicBool::new(false));
    let stream = Preamble {
        inner: body.into_data_stream(),
        read: Arc::new(AtomicU64::new(0)),
        in_file: in_file.clone(),
        overflow: overflow.clone(),
    };
    let mut mp = multer::Multipart::new(stream, boundary);
    let (form, file) = match read_form(&mut mp, &overflow).await {
        Ok(f) => f,
        Err(e) => return reply(e),
    };
    in_file.store(true, Ordering::Relaxed);
    // a form's SSE-C key, as a header's, comes only over TLS (gate.rs)
    let secure = parts.extensions.get::<crate::wire::Secure>().is_some();
    if !secure && form.fields.iter().any(|(n, _)| super::gate::is_sse_c(n)) {
        linger(mp);
        return reply(S3Error::with_message(
            s3s::S3ErrorCode::InvalidRequest,
            super::gate::SSE_C_OVER_HTTP,
        ));
    }
    let mut resp = match store(s3, &parts.uri, &bucket, form, file).await {
        Ok(r) => r,
        Err(e) => {
            linger(mp);
            return reply(e);
        }
    };
    // fields after the file are ignored (AWS); read a little so the connection can be kept
    if !drain(&mut mp).await {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// After a refusal, the rest of the body is still read (and dropped) for up to `LINGER`
/// while the answer goes out: closing a connection with unread bytes resets it, and the client
/// (still sending, after a `100 Continue`) would lose the answer (a lingering close, as web
/// servers make). Clients stop sending once they read an early answer.
fn linger(mut mp: multer::Multipart<'static>) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(LINGER, async move {
            while let Ok(Some(mut f)) = mp.next_field().await {
                while let Ok(Some(_)) = f.chunk().await {}
            }
        })
        .await;
    });
}

/// Reads what follows the file part, up to `EPILOGUE_MAX`; false if more is left.
async fn drain(mp: &mut multer::Multipart<'static>) -> bool {
    let mut left = EPILOGUE_MAX;
    loop {
        let mut f = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return true,
            Err(_) => return false,
        };
        loop {
            match f.chunk().await {
                Ok(Some(c)) if c.len() <= left => left -= c.len(),
                Ok(Some(_)) | Err(_) => return false,
                Ok(None) => break,
            }
        }
    }
}

/// Authenticates the form, checks its policy, and streams the file part into PutObject.
async fn store(
    s3: &KuraS3,
    uri: &http::Uri,
    bucket: &str,
    form: Form,
    file: multer::Field<'static>,
) -> Result<Response<RespBody>, S3Error> {
    let signed = authenticate(s3, &form).await?;
    let Some(raw_key) = form.get("key") else {
        return Err(s3_error!(
            InvalidArgument,
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields."
        ));
    };
    let key = raw_key.replace("${filename}", &form.filename);
    if key.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "User key must have a length greater than 0."
        ));
    }
    // PutObject makes a folder for such a key and reads no body: a form always has a file
    if key.ends_with('/') {
        return Err(s3_error!(
            InvalidArgument,
            "a form uploads a file; a key ending in / names a folder"
        ));
    }
    if let Some(b) = form.get("bucket") {
        if b != bucket {
            return Err(policy_refusal(format!(
                "the form's bucket {b} is not the bucket of the URL"
            )));
        }
    }
    let (min, max) = check_conditions(&signed.policy, &form, bucket, &key)?;
    let acl = form.get("acl").map(str::to_string);
    if let Some(a) = &acl {
        super::acl::check_canned(a)?;
    }
    let verdict = Arc::new(Mutex::new(None));
    let body = FilePart {
        field: file,
        seen: 0,
        min,
        max,
        verdict: verdict.clone(),
    };
    let input = put_input(&form, bucket, &key, body);
    let who = signed.who.clone();
    let user = who.user.clone();
    let put = s3.put(who.clone(), request(input, &signed, uri)).await;
    let size = verdict.lock().ok().and_then(|v| *v);
    let out = match (put, size) {
        (_, Some(Size::TooLarge)) => {
            return Err(s3_error!(
                EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed size"
            ))
        }
        (_, Some(Size::TooSmall)) => {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed size"
            ))
        }
        (Err(e), None) => return Err(e),
        (Ok(out), None) => out.output,
    };
    if let Some(a) = acl {
        let mut input = PutObjectAclInput::builder()
            .bucket(bucket.to_string())
            .key(key.clone())
            .build()
            .unwrap_or_default();
        input.acl = Some(a.into());
        s3.put_object_acl(who, request(input, &signed, uri)).await?;
    }
    let etag = out
        .e_tag
        .as_ref()
        .map(|e| e.value().to_string())
        .unwrap_or_default();
    let mut r = success(&form, uri, bucket, &key, &etag);
    r.extensions_mut().insert(crate::wire::User(user));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_form_post_to_a_bucket_is_post_object() {
        let host = KuraHost::new(None);
        let req = |m: &str, uri: &str, ct: &str| {
            Request::builder()
                .method(m)
                .uri(uri)
                .header("content-type", ct)
                .body(())
                .unwrap()
        };
        let form = "multipart/form-data; boundary=x";
        assert_eq!(
            target(&req("POST", "/b", form), &host).as_deref(),
            Some("b")
        );
        assert_eq!(
            target(&req("POST", "/b/", form), &host).as_deref(),
            Some("b")
        );
        assert_eq!(target(&req("POST", "/b/k", form), &host), None);
        assert_eq!(
            target(&req("POST", "/b?delete", "application/xml"), &host),
            None
        );
        assert_eq!(target(&req("PUT", "/b", form), &host), None);
        assert_eq!(target(&req("POST", "/", form), &host), None);
    }
}
