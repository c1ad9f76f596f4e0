//! Visitor endpoints under `/s/{token}`: a shared file (GET/HEAD with ranges), a shared folder
//! (HTML or JSON listing, each file inside, a streamed zip with `?zip`), a drop box (a page and
//! PUT/POST of new files). Every request opens the share anew (existence, expiry, downloads,
//! password) and acts through the core as the owner. Errors become HTTP here and only here.

use std::sync::Arc;

use crate::wire::ReqBody;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{page, PREFIX};
use crate::delivery::file;
use crate::delivery::headers::{content_disposition, encode_segment, http_date};
use crate::limits::Limits;
use crate::share_links::{Active, ShareError, Shares};
use crate::vfs::{Entry, UploadOptions, VPath, VfsError};
use crate::wire::{empty, full, AuthFailed, RespBody};

/// Largest password form body read.
const MAX_FORM: usize = 4096;
/// Length of a token: 32 bytes in URL-safe base64 without padding.
const TOKEN_LEN: usize = 43;

/// The visitor front end shared by all connections.
pub struct ShareFront {
    shares: Shares,
    limits: Arc<Limits>,
    /// Bytes sent per client and file, to count downloads.
    ledger: super::ledger::Ledger,
    /// Per-process key for the cookie a correct password form sets.
    cookie_key: [u8; 32],
    secure: bool,
}

/// A visitor request after the share and its password were checked.
struct Visit {
    active: Active,
    token: String,
    /// Path below the shared folder (root for the share itself).
    rel: VPath,
}

impl ShareFront {
    /// The front end; `secure` marks cookies `Secure` (TLS on).
    pub fn new(shares: Shares, limits: Arc<Limits>, secure: bool) -> Self {
        let mut cookie_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut cookie_key);
        ShareFront {
            shares,
            limits,
            ledger: Default::default(),
            cookie_key,
            secure,
        }
    }

    /// Serves one visitor request (the router has already applied the per-address limit).
    pub async fn handle(&self, req: Request<ReqBody>) -> Response<RespBody> {
        let html = wants_html(&req);
        let mut r = match self.serve(req).await {
            Ok(r) => r,
            Err(e) => error_response(&e, html),
        };
        // every page (landing, listing, password form, drop box, errors) is framed by no one,
        // sniffed as nothing else, cached nowhere, and leaks its token in no Referer; a
        // shared file's own bytes keep their sandbox (`wire::safety::protect`), not the
        // pages' policy, which lets the drop box's script run
        let is_html = r
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
        if is_html {
            if !r.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
                insert(&mut r, header::CONTENT_SECURITY_POLICY, page::policy());
            }
            insert(&mut r, header::X_FRAME_OPTIONS, "DENY");
            insert(&mut r, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
            insert(&mut r, header::REFERRER_POLICY, "no-referrer");
            if !r.headers().contains_key(header::CACHE_CONTROL) {
                insert(&mut r, header::CACHE_CONTROL, "private, no-store");
            }
        }
        r
    }

    async fn serve(&self, req: Request<ReqBody>) -> Result<Response<RespBody>, ShareError> {
        let (token, rel) = split_path(req.uri().path())?;
        let active = self.shares.open(&token).await?;
        if active.row.password_hash.is_some() && is_form_post(&req) {
            return self.password_post(req, &active, &token).await;
        }
        self.authorize(req.headers(), &active).await?;
        let v = Visit { active, token, rel };
        if v.active.row.upload_only {
            return self.drop_box(req, &v).await;
        }
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => return Err(ShareError::MethodNotAllowed),
        };
        let vfs = self.shares.vfs();
        let root = vfs.stat(&v.active.owner, &v.active.root).await?;
        if !root.is_dir && !v.rel.is_root() {
            return Err(ShareError::Vfs(VfsError::NotFound));
        }
        let target = join(&v.active.root, &v.rel)?;
        let entry = if v.rel.is_root() {
            root
        } else {
            vfs.stat(&v.active.owner, &target).await?
        };
        if !entry.is_dir {
            // a browser opening a link to one file gets its page (name, size, Download);
            // `?download=1`, HEAD and clients that do not ask for HTML get the bytes
            if v.rel.is_root() && !head && wants_html(&req) && !query_flag(&req, "download") {
                return Ok(self.landing(&v, &entry));
            }
            let client = req
                .extensions()
                .get::<crate::wire::ClientIp>()
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0);
            return self.file(client, req.headers(), &v, &target, head).await;
        }
        if query_flag(&req, "zip") {
            return self.zip(&v, &target, &entry, head).await;
        }
        self.listing(&req, &v, &target, head).await
    }

    /// The landing page of a shared file (after the password, like the file itself): no
    /// download is counted; an image is previewed only on a share without a download limit
    /// (the preview is a download).
    fn landing(&self, v: &Visit, entry: &Entry) -> Response<RespBody> {
        let download = format!("{}?download=1", link(&v.token, &v.rel, false));
        let image = matches!(
            entry.content_type.as_str(),
            "image/jpeg" | "image/png" | "image/gif" | "image/webp"
        );
        let preview = (image && v.active.row.max_downloads.is_none() && entry.size <= PREVIEW_MAX)
            .then_some(download.as_str());
        let body = page::file(v.active.root.name(), entry.size, &download, preview);
        let len = body.len();
        let mut r = Response::new(full(body));
        insert(&mut r, header::CONTENT_TYPE, "text/html; charset=utf-8");
        insert(&mut r, header::CONTENT_LENGTH, &len.to_string());
        insert(&mut r, header::CACHE_CONTROL, "private, no-store");
        insert(&mut r, header::VARY, "Accept");
        r
    }

    /// Cookie or Basic password; a request without either is asked for one.
    async fn authorize(&self, headers: &http::HeaderMap, a: &Active) -> Result<(), ShareError> {
        let Some(hash) = &a.row.password_hash else {
            return Ok(());
        };
        let want = self.cookie_value(&a.row.id, hash);
        if cookies(headers).any(|(k, v)| k == cookie_name(&a.row.id) && v == want) {
            return Ok(());
        }
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::basic_password);
        self.shares.check_password(a, basic.as_deref()).await
    }

    /// The password form's POST: a cookie for this share and back to the same address.
    async fn password_post(
        &self,
        req: Request<ReqBody>,
        a: &Active,
        token: &str,
    ) -> Result<Response<RespBody>, ShareError> {
        let location = req.uri().path().to_string();
        // the form comes before any password is checked: bounded in size and time
        let body = crate::wire::read_small(req.into_body(), MAX_FORM)
            .await
            .map_err(|e| match e {
                crate::wire::SmallBodyError::TooLarge(_) => {
                    ShareError::Invalid("the form is too large".into())
                }
                e => ShareError::Invalid(e.to_string()),
            })?;
        let password = form_field(&body, "password");
        self.shares.check_password(a, password.as_deref()).await?;
        let hash = a.row.password_hash.as_deref().unwrap_or_default();
        let cookie = format!(
            "{}={}; Path={PREFIX}{token}; HttpOnly; SameSite=Lax{}",
            cookie_name(&a.row.id),
            self.cookie_value(&a.row.id, hash),
            if self.secure { "; Secure" } else { "" }
        );
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::SEE_OTHER;
        insert(&mut r, header::LOCATION, &location);
        insert(&mut r, header::SET_COOKIE, &cookie);
        Ok(r)
    }

    /// A keyed digest of the share and its password hash: changes with the password, and
    /// means nothing to anyone without the server's per-process key.
    fn cookie_value(&self, id: &str, password_hash: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.cookie_key);
        h.update(id.as_bytes());
        h.update([0u8]);
        h.update(password_hash.as_bytes());
        hex::encode(h.finalize())
    }

    /// A file: whole or one range. What counts as a download is the ledger's rule (bytes sent
    /// to one client add up to the file's size); HEAD never counts.
    async fn file(
        &self,
        client: std::net::IpAddr,
        headers: &http::HeaderMap,
        v: &Visit,
        path: &VPath,
        head: bool,
    ) -> Result<Response<RespBody>, ShareError> {
        let (entry, download) = self.shares.vfs().open_read(&v.active.owner, path).await?;
        let range = headers.get(header::RANGE).and_then(|h| h.to_str().ok());
        let (status, span) = match file::span(&entry, range) {
            Ok(s) => s,
            Err(r) => return Ok(r),
        };
        let len = span.end - span.start;
        if !head
            && self
                .ledger
                .is_new_download(&v.active.row.id, client, path.as_str(), len, entry.size)
        {
            self.shares.count_download(&v.active).await?;
        }
        let body = if head || len == 0 {
            empty()
        } else {
            let bytes = download.into_stream(span.clone()).await?;
            paced_body(&self.limits, &v.active.row.id, bytes)
        };
        Ok(file::response(&entry, (status, span), body, false))
    }

    /// A folder as a streamed zip (counts as one download).
    async fn zip(
        &self,
        v: &Visit,
        path: &VPath,
        entry: &Entry,
        head: bool,
    ) -> Result<Response<RespBody>, ShareError> {
        // the owner must still be able to list and enter it, as the zip's own listing does
        // (refused here, before the 200 and the download count, not as an empty body after
        // them); the files are checked one by one as they go
        self.shares
            .vfs()
            .files_below(&v.active.owner, path, "", "", 1)
            .await?;
        let body = if head {
            empty()
        } else {
            self.shares.count_download(&v.active).await?;
            let bytes = crate::delivery::zip::stream(
                self.shares.vfs().clone(),
                v.active.owner.clone(),
                path.clone(),
                vec![path.clone()],
            );
            paced_body(&self.limits, &v.active.row.id, bytes)
        };
        let mut r = Response::new(body);
        insert(&mut r, header::CONTENT_TYPE, "application/zip");
        insert(
            &mut r,
            header::CONTENT_DISPOSITION,
            &content_disposition(&format!("{}.zip", entry.path.name())),
        );
        insert(&mut r, header::CACHE_CONTROL, "private, no-store");
        // user content, as every shared file is (the app's zip has them too)
        crate::wire::protect(r.headers_mut());
        Ok(r)
    }

    /// A folder's entries as HTML, or JSON for `Accept: application/json`.
    async fn listing(
        &self,
        req: &Request<ReqBody>,
        v: &Visit,
        path: &VPath,
        head: bool,
    ) -> Result<Response<RespBody>, ShareError> {
        let entries = self.shares.vfs().list(&v.active.owner, path).await?;
        let base = link(&v.token, &v.rel, true);
        let linked: Vec<(Entry, String)> = entries
            .into_iter()
            .map(|e| {
                let mut href = format!("{base}{}", encode_segment(e.path.name()));
                if e.is_dir {
                    href.push('/');
                }
                (e, href)
            })
            .collect();
        let zip_href = format!("{base}?zip");
        let title = if v.rel.is_root() {
            v.active.root.name().to_string()
        } else {
            format!("{}{}", v.active.root.name(), v.rel)
        };
        let (ct, body) = if wants_json(req) {
            let items: Vec<serde_json::Value> = linked
                .iter()
                .map(|(e, href)| {
                    serde_json::json!({
                        "name": e.path.name(),
                        "type": if e.is_dir { "folder" } else { "file" },
                        "size": e.size,
                        "modified": http_date(e.http_mtime()),
                        "href": href,
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "name": title,
                "path": v.rel.as_str(),
                "zip": zip_href,
                "entries": items,
            });
            ("application/json", doc.to_string())
        } else {
            let up = (!v.rel.is_root()).then(|| link(&v.token, &v.rel.parent(), true));
            (
                "text/html; charset=utf-8",
                page::listing(&title, &linked, &zip_href, up.as_deref()),
            )
        };
        let len = body.len();
        let mut r = Response::new(if head { empty() } else { full(body) });
        insert(&mut r, header::CONTENT_TYPE, ct);
        insert(&mut r, header::CONTENT_LENGTH, &len.to_string());
        insert(&mut r, header::CACHE_CONTROL, "private, no-store");
        Ok(r)
    }

    /// A drop box: its page, or a new file by PUT/POST to `/s/{token}/{name}`.
    async fn drop_box(
        &self,
        req: Request<ReqBody>,
        v: &Visit,
    ) -> Result<Response<RespBody>, ShareError> {
        let vfs = self.shares.vfs();
        let m = req.method().clone();
        if (m == Method::GET || m == Method::HEAD) && v.rel.is_root() {
            let dir = vfs.may_add_to(&v.active.owner, &v.active.root).await?;
            let body = page::drop_box(dir.path.name(), &link(&v.token, &v.rel, true));
            let mut r = Response::new(if m == Method::HEAD {
                empty()
            } else {
                full(body)
            });
            insert(&mut r, header::CONTENT_TYPE, "text/html; charset=utf-8");
            insert(&mut r, header::CACHE_CONTROL, "private, no-store");
            return Ok(r);
        }
        if m != Method::PUT && m != Method::POST {
            return Err(ShareError::MethodNotAllowed);
        }
        if v.rel.is_root() || !v.rel.parent().is_root() {
            return Err(ShareError::Invalid(
                "send a file to /s/{token}/{name}; folders cannot be made".into(),
            ));
        }
        let path = join(&v.active.root, &v.rel)?;
        let expected_size = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // the core's upload as the owner: its permissions, its group's quota, never an overwrite
        let mut upload = vfs
            .upload(
                &v.active.owner,
                &path,
                UploadOptions {
                    create_new: true,
                    expected_size,
                    ..UploadOptions::default()
                },
            )
            .await?;
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ShareError::Invalid(format!("body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                upload.write(data).await?;
            }
        }
        let entry = upload.commit().await?;
        tracing::info!(share = %v.active.row.id, path = %entry.path, size = entry.size, "drop box upload");
        Ok(plain(
            StatusCode::CREATED,
            &format!("stored {} ({} bytes)\n", entry.path.name(), entry.size),
        ))
    }
}

/// `/s/{token}` and the path below the share, validated by the core's path rules (no `..`,
/// no encoded separators).
fn split_path(path: &str) -> Result<(String, VPath), ShareError> {
    let rest = path.strip_prefix(PREFIX).ok_or(ShareError::NotFound)?;
    let (token, sub) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if token.len() != TOKEN_LEN
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ShareError::NotFound);
    }
    let rel = if sub.is_empty() || sub == "/" {
        VPath::root()
    } else {
        VPath::parse_url(sub)?
    };
    Ok((token.to_string(), rel))
}

/// The path of `rel` below the shared `root`.
fn join(root: &VPath, rel: &VPath) -> Result<VPath, ShareError> {
    let segs = root
        .as_str()
        .split('/')
        .chain(rel.as_str().split('/'))
        .filter(|s| !s.is_empty());
    Ok(VPath::from_segments(segs)?)
}

/// The visitor URL path of `rel` in a share (with a trailing slash for folders).
fn link(token: &str, rel: &VPath, dir: bool) -> String {
    let mut out = format!("{PREFIX}{token}");
    for seg in rel.as_str().split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(&encode_segment(seg));
    }
    if dir {
        out.push('/');
    }
    out
}

fn paced_body<S>(limits: &Limits, share: &str, bytes: S) -> RespBody
where
    S: futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    StreamBody::new(limits.pacer.pace(share, bytes).map(|r| r.map(Frame::data))).boxed_unsync()
}

fn cookie_name(id: &str) -> String {
    format!("kura_share_{id}")
}

fn cookies(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
}

fn is_form_post<B>(req: &Request<B>) -> bool {
    req.method() == Method::POST
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
}

/// A field of an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Largest image a landing page previews (a bigger one is only downloaded).
const PREVIEW_MAX: u64 = 20 * 1024 * 1024;

fn query_flag<B>(req: &Request<B>, name: &str) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some(name)))
}

fn wants_html<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn wants_json<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

fn insert(r: &mut Response<RespBody>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn plain(status: StatusCode, text: &str) -> Response<RespBody> {
    let mut r = Response::new(full(text.to_string()));
    *r.status_mut() = status;
    insert(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    r
}

/// The one place share errors become HTTP answers.
fn error_response(e: &ShareError, html: bool) -> Response<RespBody> {
    let (status, title, text): (StatusCode, &str, String) = match e {
        ShareError::NotFound => (
            StatusCode::NOT_FOUND,
            "Not found",
            "This link does not exist or was revoked.".into(),
        ),
        ShareError::Gone(why) => (StatusCode::GONE, "Gone", format!("This link {why}.")),
        ShareError::PasswordRequired | ShareError::WrongPassword => {
            let wrong = matches!(e, ShareError::WrongPassword);
            let mut r = if html {
                let mut r = Response::new(full(page::password_form(wrong)));
                insert(&mut r, header::CONTENT_TYPE, "text/html; charset=utf-8");
                r
            } else {
                let mut r = plain(StatusCode::UNAUTHORIZED, &format!("{e}\n"));
                insert(
                    &mut r,
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"Kura share\", charset=\"UTF-8\"",
                );
                r
            };
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            if wrong {
                r.extensions_mut().insert(AuthFailed);
            }
            return r;
        }
        ShareError::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            "Not allowed",
            "This link does not accept that request.".into(),
        ),
        ShareError::Invalid(m) => (StatusCode::BAD_REQUEST, "Bad request", m.clone()),
        ShareError::Vfs(v) => match v {
            VfsError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "Nothing is there.".into(),
            ),
            VfsError::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The owner of this link may no longer access it.".into(),
            ),
            // Changed: another drop of the same name committed while this one streamed
            VfsError::Exists | VfsError::Changed(_) => (
                StatusCode::CONFLICT,
                "Conflict",
                "A file with this name exists already; choose another name.".into(),
            ),
            VfsError::QuotaExceeded(_) => (
                StatusCode::INSUFFICIENT_STORAGE,
                "Full",
                "The folder has no room for this file.".into(),
            ),
            VfsError::InvalidPath(m) => (StatusCode::BAD_REQUEST, "Bad request", m.clone()),
            VfsError::Incomplete { .. } => (
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The upload was incomplete.".into(),
            ),
            VfsError::WrongKind(m) | VfsError::Conflict(m) => {
                (StatusCode::CONFLICT, "Conflict", (*m).to_string())
            }
            VfsError::Locked(_) => (StatusCode::LOCKED, "Locked", "The file is locked.".into()),
            VfsError::CustomerKey(_) => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "This file is encrypted with a key only its S3 client keeps (SSE-C): a link cannot serve it.".into(),
            ),
            other => {
                tracing::error!(error = %other, "share request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    "The server failed; try again later.".into(),
                )
            }
        },
        ShareError::Meta(_) | ShareError::Hash(_) => {
            tracing::error!(error = %e, "share request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "The server failed; try again later.".into(),
            )
        }
    };
    let mut r = if html {
        let mut r = Response::new(full(page::message(title, &text)));
        insert(&mut r, header::CONTENT_TYPE, "text/html; charset=utf-8");
        r
    } else {
        plain(status, &format!("{text}\n"))
    };
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_below_a_share_cannot_climb_out() {
        let t = "a".repeat(TOKEN_LEN);
        assert_eq!(split_path(&format!("/s/{t}")).unwrap().1, VPath::root());
        assert_eq!(split_path(&format!("/s/{t}/")).unwrap().1, VPath::root());
        assert_eq!(
            split_path(&format!("/s/{t}/a%20b/c")).unwrap().1,
            VPath::parse("/a b/c").unwrap()
        );
        for bad in ["/..", "/../", "/a/../../x", "/%2e%2e/x", "/a%2fb", "/./x"] {
            assert!(
                split_path(&format!("/s/{t}{bad}")).is_err(),
                "{bad} must be refused"
            );
        }
        assert!(matches!(split_path("/s/short"), Err(ShareError::NotFound)));
        assert!(matches!(
            split_path("/s/../dav/x"),
            Err(ShareError::NotFound)
        ));
        let root = VPath::parse("/b/shared").unwrap();
        assert_eq!(
            join(&root, &VPath::parse("/x/y").unwrap())
                .unwrap()
                .as_str(),
            "/b/shared/x/y"
        );
        assert_eq!(
            link(&t, &VPath::parse("/a b").unwrap(), true),
            format!("/s/{t}/a%20b/")
        );
    }

    #[test]
    fn form_fields_decode() {
        assert_eq!(
            form_field(b"x=1&password=a+b%21", "password").as_deref(),
            Some("a b!")
        );
        assert_eq!(form_field(b"x=1", "password"), None);
    }
}
