//! Browser checks for the admin API, the user API and share links (CSRF and stored-XSS
//! defence): a request from another origin is refused (on share links, one that may change
//! something), and so are Basic credentials a browser sends to the admin API, which would
//! otherwise be replayed by any page a logged-in administrator opens. Scripts and the CLI
//! send no `Origin` and no `Sec-Fetch-*` headers; the browser app uses a session, not Basic.

use http::{header, Request};

/// Why a user API request is refused before anything else: it comes from a page of another
/// origin (its `Origin`, or a browser's `Sec-Fetch-Site: cross-site`). `https`: the site is
/// served over HTTPS (the request came over TLS, a trusted proxy says it did, or
/// `public_url` is `https://`), so an `http://` page of the same host is another origin.
pub fn cross_site<B>(req: &Request<B>, https: bool) -> Option<&'static str> {
    let h = req.headers();
    let cross = h
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site" || v.as_bytes() == b"same-site");
    if cross || foreign_origin(req, https) {
        return Some("requests from another origin are refused");
    }
    None
}

/// Why a request that may change something (any method but GET, HEAD, OPTIONS, TRACE) is
/// refused because it comes from a page of another origin (`cross_site`); links from other
/// sites still open. Share links use it: a foreign page may not post a share's password form
/// or a drop box's files.
pub fn cross_site_write<B>(req: &Request<B>, https: bool) -> Option<&'static str> {
    if req.method().is_safe() {
        return None;
    }
    cross_site(req, https)
}

/// Whether the request's `Origin` names another origin than its `Host` and the site's
/// scheme (`https` or not).
fn foreign_origin<B>(req: &Request<B>, https: bool) -> bool {
    let h = req.headers();
    let Some(origin) = h.get(header::ORIGIN) else {
        return false;
    };
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let want = if https { "https" } else { "http" };
    match (origin.to_str().ok().and_then(origin_parts), host) {
        (Some((scheme, o)), Some(h)) => {
            !scheme.eq_ignore_ascii_case(want) || !o.eq_ignore_ascii_case(h)
        }
        _ => true,
    }
}

/// Why an admin API request is refused before authentication, if it is (`https` as for
/// `cross_site`).
pub fn admin_refusal<B>(req: &Request<B>, https: bool) -> Option<&'static str> {
    let h = req.headers();
    if foreign_origin(req, https) {
        return Some("requests from another origin are refused");
    }
    let basic = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case("basic "));
    let browser =
        h.contains_key(header::ORIGIN) || h.keys().any(|k| k.as_str().starts_with("sec-fetch-"));
    (basic && browser)
        .then_some("Basic credentials sent by a browser are refused; use an API token")
}

/// The scheme and `host[:port]` of an origin such as `https://nas.local:8443` (`None` for
/// `null`).
fn origin_parts(origin: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = origin.trim().split_once("://")?;
    let authority = rest.trim_end_matches('/');
    (!authority.is_empty() && !authority.contains('/')).then_some((scheme, authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/api/v1/users");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn admin_refusal_s(r: &Request<()>) -> Option<&'static str> {
        admin_refusal(r, true)
    }

    #[test]
    fn foreign_origins_and_browser_basic_are_refused() {
        let host = ("host", "nas.local:8443");
        let basic = ("authorization", "Basic YWRtaW46cHc=");
        assert_eq!(admin_refusal_s(&req(&[host, basic])), None);
        assert_eq!(
            admin_refusal_s(&req(&[host, ("authorization", "Bearer kura_x")])),
            None
        );
        assert!(admin_refusal_s(&req(&[host, ("origin", "https://evil.example")])).is_some());
        assert!(admin_refusal_s(&req(&[host, ("origin", "null")])).is_some());
        assert!(admin_refusal_s(&req(&[host, basic, ("sec-fetch-site", "same-origin")])).is_some());
        assert!(
            admin_refusal_s(&req(&[host, basic, ("origin", "https://nas.local:8443")])).is_some()
        );
        assert_eq!(
            admin_refusal_s(&req(&[
                host,
                ("authorization", "Bearer kura_x"),
                ("origin", "https://NAS.local:8443")
            ])),
            None
        );
    }

    /// Attack: a page of `http://` the same host and port posts to an `https://` site (or
    /// the other way round): another origin, refused like any other.
    #[test]
    fn the_origin_scheme_must_be_the_sites() {
        let host = ("host", "nas.local:8443");
        let plain = ("origin", "http://nas.local:8443");
        let tls = ("origin", "https://nas.local:8443");
        assert!(cross_site(&req(&[host, plain]), true).is_some());
        assert!(admin_refusal(&req(&[host, plain]), true).is_some());
        assert_eq!(cross_site(&req(&[host, tls]), true), None);
        assert!(cross_site(&req(&[host, tls]), false).is_some());
        assert_eq!(cross_site(&req(&[host, plain]), false), None);
        assert_eq!(
            cross_site(&req(&[host, ("origin", "HTTPS://nas.local:8443/")]), true),
            None
        );
        assert!(cross_site(&req(&[host, ("origin", "ftp://nas.local:8443")]), true).is_some());
    }

    /// Attack: a page of another site posts to a share link; reads from links still open.
    #[test]
    fn only_writes_from_another_origin_are_refused() {
        let evil = [("host", "nas.local"), ("origin", "https://evil.example")];
        let mut post = req(&evil);
        *post.method_mut() = http::Method::POST;
        assert!(cross_site_write(&post, true).is_some());
        assert_eq!(cross_site_write(&req(&evil), true), None);
        let mut same = req(&[("host", "nas.local"), ("origin", "https://nas.local")]);
        *same.method_mut() = http::Method::PUT;
        assert_eq!(cross_site_write(&same, true), None);
    }
}
