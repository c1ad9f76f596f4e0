//! WebDAV adapter: request checks that dav-server does not make, then dav-server over the core.

mod errors;
mod file;
mod finder;
mod fs;
mod live_props;
mod locks;

use crate::wire::ReqBody;
use bytes::Bytes;
use dav_server::DavHandler;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::vfs::{Caller, VPath, Vfs, VfsError};
use crate::wire::{empty, full, RespBody};

/// URL prefix of the WebDAV namespace.
pub const PREFIX: &str = "/dav";

/// Limits and switches of the WebDAV front.
#[derive(Clone, Debug)]
pub struct DavSettings {
    /// Largest XML request body accepted.
    pub max_xml_body: u64,
    /// Whether PROPFIND Depth: infinity is served.
    pub depth_infinity: bool,
}

/// The WebDAV front end shared by all connections.
pub struct DavFront {
    settings: DavSettings,
    vfs: Vfs,
}

/// Largest LOCK body: the `<owner>` the core keeps (`LOCK_OWNER_MAX`) and room for the rest
/// of `lockinfo`; over it, 413 before anything is parsed.
const LOCK_BODY_MAX: usize = crate::vfs::locks::LOCK_OWNER_MAX + 1024;

/// Headers every DAV answer to OPTIONS carries, also for unauthenticated clients.
pub fn options_response() -> Response<RespBody> {
    let mut r = Response::new(empty());
    let h = r.headers_mut();
    h.insert("DAV", HeaderValue::from_static("1, 2"));
    h.insert("MS-Author-Via", HeaderValue::from_static("DAV"));
    h.insert(
        header::ALLOW,
        HeaderValue::from_static(
            "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK",
        ),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn status(code: StatusCode, body: &'static str) -> Response<RespBody> {
    let mut r = Response::new(full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = code;
    if !body.is_empty() {
        let ct = if body.starts_with('<') {
            "application/xml; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        };
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    r
}

impl DavFront {
    /// Builds the handler over the core.
    pub fn new(vfs: Vfs, settings: DavSettings) -> Self {
        DavFront { settings, vfs }
    }

    /// dav-server over the core for one caller: its lock system answers UNLOCK and
    /// lockdiscovery for that caller (dav-server's lock interface carries none).
    /// `user_agent` decides whether quota properties are answered (`finder::gets_quota`).
    fn handler(&self, caller: &Caller, user_agent: &str) -> DavHandler<Caller> {
        DavHandler::builder()
            .filesystem(Box::new(fs::KuraFs::new(
                self.vfs.clone(),
                finder::gets_quota(user_agent),
            )))
            .locksystem(Box::new(locks::SqlLocks::new(
                self.vfs.clone(),
                caller.clone(),
            )))
            .strip_prefix(PREFIX)
            .read_buf_size(crate::wire::PIECE)
            .autoindex(true)
            .build_handler()
    }

    /// Serves one authenticated request under `/dav`. The caller carries the lock tokens of
    /// the `If` header, which every core write checks.
    pub async fn handle(&self, mut req: Request<ReqBody>, caller: Caller) -> Response<RespBody> {
        if let Err(resp) = self.check(&req) {
            return resp;
        }
        crate::wire::tame_ranges(req.headers_mut());
        let req = match self.check_root_element(req).await {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        if let Err(resp) = self.check_listing(&req, &caller).await {
            return resp;
        }
        let caller = caller.with_lock_tokens(locks::submitted_tokens(req.headers()));
        let agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let handler = self.handler(&caller, agent);
        // who asked for which file, should a GET be refused (see `why_forbidden`)
        let get = (req.method() == Method::GET)
            .then(|| url_path(req.uri().path()))
            .flatten()
            .map(|p| (p, caller.clone()));
        let resp = match req.method().as_str() {
            "LOCK" => {
                let (parts, body) = req.into_parts();
                let slot = body.fault_slot();
                let body = match read_lock_body(body).await {
                    Ok(b) => b,
                    Err(resp) => return resp,
                };
                if !body.is_empty() {
                    if let Err(resp) = self.check_lock(&parts, &caller).await {
                        return resp;
                    }
                }
                let req = Request::from_parts(parts, ReqBody::buffered(body, slot));
                handler
                    .handle_guarded(req, caller.user.clone(), caller)
                    .await
            }
            "UNLOCK" => {
                if let Err(resp) = self.check_unlock(&req, &caller).await {
                    return resp;
                }
                handler
                    .handle_guarded(req, caller.user.clone(), caller)
                    .await
            }
            _ => {
                handler
                    .handle_guarded(req, caller.user.clone(), caller)
                    .await
            }
        };
        if resp.status() == StatusCode::FORBIDDEN {
            if let Some(refused) = self.why_forbidden(get).await {
                return refused;
            }
        }
        let (parts, body) = resp.into_parts();
        Response::from_parts(parts, body.map_err(std::io::Error::other).boxed_unsync())
    }

    /// A GET refused because the file is SSE-C gets a text saying so (dav-server's 403 has
    /// none): it opens only with the key its S3 client keeps, never here. Asked only of a
    /// refused GET, so a served one costs no lookup.
    async fn why_forbidden(&self, get: Option<(VPath, Caller)>) -> Option<Response<RespBody>> {
        let (path, caller) = get?;
        match self.vfs.stat(&caller, &path).await {
            Ok(e) if e.needs_customer_key() => Some(status(
                StatusCode::FORBIDDEN,
                "This file is encrypted with a key only its S3 client keeps (SSE-C): read it through S3 with that key.\n",
            )),
            _ => None,
        }
    }

    /// A new lock needs the core's consent first, so a refusal gets its own status (403 no
    /// right, 507 too many locks); dav-server could only answer 423.
    #[allow(clippy::result_large_err)]
    async fn check_lock(
        &self,
        parts: &http::request::Parts,
        caller: &Caller,
    ) -> Result<(), Response<RespBody>> {
        let Some(path) = url_path(parts.uri.path()) else {
            return Ok(());
        };
        match self.vfs.may_lock(caller, &path).await {
            Err(e) => match errors::refusal(&e) {
                Some((code, why)) => {
                    tracing::debug!(user = %caller.user, path = %path, error = %e, "LOCK refused");
                    Err(status(code, why))
                }
                None => Ok(()),
            },
            Ok(()) => Ok(()),
        }
    }

    /// UNLOCK of another user's lock is refused (403): only its holder or an administrator
    /// releases it.
    #[allow(clippy::result_large_err)]
    async fn check_unlock(
        &self,
        req: &Request<ReqBody>,
        caller: &Caller,
    ) -> Result<(), Response<RespBody>> {
        let Some(token) = req
            .headers()
            .get("Lock-Token")
            .and_then(|v| v.to_str().ok())
            .map(|t| t.trim().trim_matches(|c| c == '<' || c == '>'))
        else {
            return Ok(());
        };
        match self.vfs.may_unlock(caller, token).await {
            Err(e) => match errors::refusal(&e) {
                Some((code, why)) => Err(status(code, why)),
                None => Ok(()),
            },
            Ok(()) => Ok(()),
        }
    }

    /// A PROPPATCH or LOCK body must be the DAV: element its method names (`propertyupdate`,
    /// `lockinfo`); dav-server looks at local names only. The body, at most `max_xml_body`
    /// bytes, is read here and handed on.
    #[allow(clippy::result_large_err)]
    async fn check_root_element(
        &self,
        req: Request<ReqBody>,
    ) -> Result<Request<ReqBody>, Response<RespBody>> {
        let root = match req.method().as_str() {
            "PROPPATCH" => "propertyupdate",
            "LOCK" => "lockinfo",
            _ => return Ok(req),
        };
        let (parts, body) = req.into_parts();
        let slot = body.fault_slot();
        let limit = usize::try_from(self.settings.max_xml_body).unwrap_or(usize::MAX);
        let bytes = match crate::wire::read_small(body, limit).await {
            Ok(b) => b,
            Err(crate::wire::SmallBodyError::TooLarge(_)) => {
                return Err(status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large\n",
                ))
            }
            // a framing error or a slow body is answered by the router from the recorded fault
            Err(_) => return Err(status(StatusCode::BAD_REQUEST, "malformed body\n")),
        };
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            let ok = xmltree::Element::parse(&bytes[..])
                .is_ok_and(|e| e.name == root && e.namespace.as_deref() == Some("DAV:"));
            if !ok {
                return Err(status(
                    StatusCode::BAD_REQUEST,
                    "the body must be a DAV: document of the method's element\n",
                ));
            }
        }
        Ok(Request::from_parts(parts, ReqBody::buffered(bytes, slot)))
    }

    /// A PROPFIND below a folder the caller may not list is refused with 403 (dav-server
    /// would answer 207 with the folder alone).
    #[allow(clippy::result_large_err)]
    async fn check_listing(
        &self,
        req: &Request<ReqBody>,
        caller: &Caller,
    ) -> Result<(), Response<RespBody>> {
        if req.method().as_str() != "PROPFIND" {
            return Ok(());
        }
        let depth0 = req
            .headers()
            .get("Depth")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|d| d.trim() == "0");
        if depth0 {
            return Ok(());
        }
        let Some(path) = url_path(req.uri().path()) else {
            return Ok(());
        };
        match self.vfs.may_list(caller, &path).await {
            Err(VfsError::Forbidden(_)) => Err(status(StatusCode::FORBIDDEN, "")),
            _ => Ok(()),
        }
    }

    /// Checks what dav-server would accept too leniently: path syntax, destinations, depth, sizes.
    #[allow(clippy::result_large_err)]
    fn check(&self, req: &Request<ReqBody>) -> Result<(), Response<RespBody>> {
        let raw = req.uri().path();
        let rel = raw.strip_prefix(PREFIX).unwrap_or(raw);
        let rel = if rel.is_empty() { "/" } else { rel };
        if VPath::parse_url(rel).is_err() {
            return Err(status(StatusCode::BAD_REQUEST, "invalid path\n"));
        }
        if let Some(dest) = req.headers().get("Destination") {
            check_destination(req, dest)?;
        }
        let method = req.method().as_str();
        if method == "PROPFIND" && !self.settings.depth_infinity {
            let infinite = req
                .headers()
                .get("Depth")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|d| d.trim().eq_ignore_ascii_case("infinity"));
            if infinite {
                return Err(status(
                    StatusCode::FORBIDDEN,
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n",
                ));
            }
        }
        if req.method() != Method::PUT && req.method() != Method::PATCH {
            let len = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if len.is_some_and(|l| l > self.settings.max_xml_body) {
                return Err(status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large\n",
                ));
            }
        }
        Ok(())
    }
}

/// The namespace path of a request URL under `/dav`.
fn url_path(raw: &str) -> Option<VPath> {
    let rel = raw.strip_prefix(PREFIX).unwrap_or(raw);
    VPath::parse_url(if rel.is_empty() { "/" } else { rel }).ok()
}

/// Reads a LOCK body, at most `LOCK_BODY_MAX` bytes (413 beyond, also without a length).
#[allow(clippy::result_large_err)]
async fn read_lock_body(body: ReqBody) -> Result<Bytes, Response<RespBody>> {
    match crate::wire::read_small(body, LOCK_BODY_MAX).await {
        Ok(b) => Ok(b),
        Err(crate::wire::SmallBodyError::TooLarge(_)) => Err(status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "LOCK body too large: the lock owner is kept up to 4096 bytes\n",
        )),
        Err(_) => Err(status(StatusCode::BAD_REQUEST, "unreadable LOCK body\n")),
    }
}

/// A COPY/MOVE destination must be this server, inside `/dav/`, and a valid path.
#[allow(clippy::result_large_err)]
fn check_destination(req: &Request<ReqBody>, dest: &HeaderValue) -> Result<(), Response<RespBody>> {
    let bad = || status(StatusCode::BAD_REQUEST, "invalid Destination\n");
    let dest = dest.to_str().map_err(|_| bad())?;
    let uri: http::Uri = dest.parse().map_err(|_| bad())?;
    if let Some(authority) = uri.authority() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        if host.is_none_or(|h| !h.eq_ignore_ascii_case(authority.as_str())) {
            return Err(status(
                StatusCode::BAD_GATEWAY,
                "Destination is on another server\n",
            ));
        }
    }
    let path = uri.path();
    let Some(rel) = path.strip_prefix(PREFIX).filter(|r| r.starts_with('/')) else {
        return Err(status(
            StatusCode::FORBIDDEN,
            "Destination is outside /dav/\n",
        ));
    };
    VPath::parse_url(rel).map_err(|_| bad())?;
    Ok(())
}
