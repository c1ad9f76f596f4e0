//! dav-server's lock-system interface over the core's persistent locks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use futures_util::FutureExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use xmltree::Element;

use super::fs::vpath;
use super::PREFIX;
use crate::vfs::locks::{Lock, LockRequest, LockView, Rules};
use crate::vfs::{Caller, VPath, Vfs};

/// What stays unescaped in a URL path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Most lock tokens taken from one request's `If` header, and the longest one kept.
const MAX_TOKENS: usize = 32;
const MAX_TOKEN_LEN: usize = 256;

/// Locks kept in SQL by the core, seen by one request's caller (dav-server's lock interface
/// carries no caller, so one is made per request: UNLOCK and lockdiscovery depend on who asks).
#[derive(Clone)]
pub struct SqlLocks {
    vfs: Vfs,
    caller: Caller,
    /// The locks `lockdiscovery` shows, read once per request (a PROPFIND of 10,000 entries
    /// made 10,000 reads); dropped by every change this request makes to the locks.
    view: Arc<Mutex<Option<Arc<LockView>>>>,
}

impl SqlLocks {
    /// The lock system of one request by `caller`.
    pub fn new(vfs: Vfs, caller: Caller) -> Self {
        SqlLocks {
            vfs,
            caller,
            view: Arc::default(),
        }
    }

    fn forget_view(&self) {
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn view(&self) -> Result<Arc<LockView>, crate::vfs::VfsError> {
        if let Some(v) = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(v);
        }
        let v = Arc::new(self.vfs.lock_view(&self.caller).await?);
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.clone());
        Ok(v)
    }
}

/// The state tokens of an `If` header (RFC 4918 10.4): each Coded-URL inside a list's
/// parentheses; resource tags (outside them) and entity tags are skipped. The core checks
/// them against the locks on every write.
pub fn submitted_tokens(headers: &http::HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    for v in headers.get_all("If") {
        let Ok(v) = v.to_str() else { continue };
        let (mut in_list, mut rest) = (false, v);
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            match c {
                '(' => in_list = true,
                ')' => in_list = false,
                '<' => {
                    let end = rest.find('>').unwrap_or(rest.len());
                    let url = &rest[..end];
                    rest = rest.get(end + 1..).unwrap_or("");
                    if in_list && url.len() <= MAX_TOKEN_LEN && out.len() < MAX_TOKENS {
                        out.push(url.to_string());
                    }
                }
                '[' => rest = rest.find(']').map_or("", |e| &rest[e + 1..]),
                _ => {}
            }
        }
    }
    out
}

impl std::fmt::Debug for SqlLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqlLocks")
    }
}

fn dav_path(p: &VPath, collection: bool) -> DavPath {
    let mut url = String::from(PREFIX);
    for seg in p.as_str().split('/').filter(|s| !s.is_empty()) {
        url.push('/');
        url.extend(utf8_percent_encode(seg, SEGMENT));
    }
    if collection || p.is_root() {
        url.push('/');
    }
    let mut d = DavPath::new(&url).unwrap_or_else(|_| DavPath::new("/").expect("root path"));
    let _ = d.set_prefix(PREFIX);
    d
}

fn to_dav(l: Lock) -> DavLock {
    DavLock {
        path: Box::new(dav_path(&l.path, l.collection)),
        owner: l
            .owner_xml
            .and_then(|x| Element::parse(x.as_bytes()).ok())
            .map(|mut e| {
                e.prefix = Some("D".into());
                Box::new(e)
            }),
        token: l.token,
        principal: l.principal,
        timeout_at: l.timeout_at,
        timeout: l.timeout,
        shared: l.shared,
        deep: l.deep,
    }
}

/// The `<owner>` element as text. dav-server renames its prefix to `D` without declaring it,
/// so prefixes are dropped (each element keeps its namespace) to keep the XML well-formed.
fn owner_xml(e: &Element) -> Option<String> {
    fn unprefix(e: &mut Element) {
        e.prefix = None;
        for c in e.children.iter_mut() {
            if let xmltree::XMLNode::Element(c) = c {
                unprefix(c);
            }
        }
    }
    let mut e = e.clone();
    unprefix(&mut e);
    let mut out = Vec::new();
    e.write(&mut out).ok()?;
    String::from_utf8(out).ok()
}

/// A lock standing for "something went wrong" (dav-server can only report a conflicting lock).
fn failed(path: &DavPath) -> DavLock {
    DavLock {
        token: String::new(),
        path: Box::new(path.clone()),
        principal: None,
        owner: None,
        timeout_at: None,
        timeout: None,
        shared: false,
        deep: false,
    }
}

impl DavLockSystem for SqlLocks {
    fn lock(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let path = path.clone();
        // the caller is this request's, the same user dav-server names as principal
        let _ = principal;
        let owner = owner.and_then(owner_xml);
        async move {
            self.forget_view();
            let Ok(p) = vpath(&path) else {
                return Err(failed(&path));
            };
            let req = LockRequest {
                path: &p,
                collection: path.is_collection(),
                owner_xml: owner,
                timeout,
                shared,
                deep,
            };
            match self.vfs.lock(&self.caller, req).await {
                Ok(Ok(l)) => Ok(to_dav(l)),
                Ok(Err(l)) => Err(to_dav(*l)),
                Err(
                    e @ (crate::vfs::VfsError::Forbidden(_)
                    | crate::vfs::VfsError::TooLarge(_)
                    | crate::vfs::VfsError::TooManyLocks(_)),
                ) => {
                    // the adapter asked `may_lock` first; reached only in a race
                    tracing::debug!(error = %e, "lock refused");
                    Err(failed(&path))
                }
                Err(e) => {
                    tracing::error!(error = %e, "lock store failed");
                    Err(failed(&path))
                }
            }
        }
        .boxed()
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let path = path.clone();
        let token = token.to_string();
        async move {
            self.forget_view();
            let p = vpath(&path).map_err(|_| ())?;
            match self.vfs.unlock(&self.caller, &p, &token).await {
                Ok(true) => Ok(()),
                _ => Err(()),
            }
        }
        .boxed()
    }

    fn refresh(
        &'_ self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let path = path.clone();
        let token = token.to_string();
        async move {
            self.forget_view();
            let p = vpath(&path).map_err(|_| ())?;
            match self.vfs.refresh_lock(&p, &token, timeout).await {
                Ok(Some(l)) => Ok(to_dav(l)),
                _ => Err(()),
            }
        }
        .boxed()
    }

    fn check(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let path = path.clone();
        let principal = principal.map(str::to_string);
        let tokens = submitted_tokens.to_vec();
        async move {
            let Ok(p) = vpath(&path) else {
                return Err(failed(&path));
            };
            let rules = Rules {
                principal: principal.as_deref(),
                ignore_principal,
                tokens: &tokens,
                shared_ok: false,
            };
            match self.vfs.check_locks(&p, rules, deep).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(l)) => Err(to_dav(*l)),
                Err(e) => {
                    tracing::error!(error = %e, "lock store failed");
                    Err(failed(&path))
                }
            }
        }
        .boxed()
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        async move {
            let Ok(view) = self.view().await else {
                return Vec::new();
            };
            // most listings have no lock anywhere: no path to parse per entry then
            if view.is_empty() {
                return Vec::new();
            }
            let Ok(p) = vpath(&path) else {
                return Vec::new();
            };
            view.on(&p).into_iter().map(to_dav).collect()
        }
        .boxed()
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let path = path.clone();
        async move {
            self.forget_view();
            let p = vpath(&path).map_err(|_| ())?;
            self.vfs.drop_locks(&p).await.map_err(|_| ())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_header_tokens_skip_resource_and_entity_tags() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "If",
            http::HeaderValue::from_static(
                "<http://x/dav/a> (<urn:uuid:1> [\"e<t>ag\"]) (Not <urn:uuid:2>)",
            ),
        );
        assert_eq!(submitted_tokens(&h), vec!["urn:uuid:1", "urn:uuid:2"]);
    }

    #[test]
    fn owner_xml_round_trips() {
        let mut info = Element::parse(
            r#"<?xml version="1.0" encoding="utf-8"?><lockinfo xmlns='DAV:'><lockscope><exclusive/></lockscope><locktype><write/></locktype><owner>litmus test suite</owner></lockinfo>"#.as_bytes(),
        )
        .unwrap();
        let mut e = info.take_child("owner").unwrap();
        e.prefix = Some("D".into());
        let x = owner_xml(&e);
        println!("{x:?}");
        let back = Element::parse(x.unwrap().as_bytes()).unwrap();
        assert_eq!(back.get_text().as_deref(), Some("litmus test suite"));
    }
}
