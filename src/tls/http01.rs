//! The optional plain-HTTP listener (port 80): answers http-01 challenges, sends everything
//! else to HTTPS on one of the ACME names (never to a name the request made up).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::acme::Http01Tokens;

const PREFIX: &str = "/.well-known/acme-challenge/";

/// Where redirects go and which challenge answers exist.
struct Redirect {
    /// `public_url`, when set: every redirect goes there.
    public: Option<String>,
    /// The ACME names, lowercase: a request's Host is kept only when it is one of them.
    names: Vec<String>,
    /// `:port` of the HTTPS listener (empty for 443).
    port: String,
    tokens: Http01Tokens,
}

/// Serves the port-80 listener until the process ends.
pub fn spawn(
    listener: TcpListener,
    tokens: Http01Tokens,
    names: Vec<String>,
    public_url: Option<String>,
    https_port: u16,
) {
    let r = Arc::new(Redirect {
        public: public_url.map(|u| u.trim_end_matches('/').to_string()),
        names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        port: if https_port == 443 {
            String::new()
        } else {
            format!(":{https_port}")
        },
        tokens,
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let r = r.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let r = r.clone();
                    async move { Ok::<_, Infallible>(r.answer(&req)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .max_buf_size(16 * 1024)
                    .serve_connection(TokioIo::new(stream), svc);
                // a slow client is cut off after a minute whatever it sends
                match tokio::time::timeout(Duration::from_secs(60), conn).await {
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "port-80 connection error"),
                    Err(_) => tracing::debug!(%peer, "port-80 connection timed out"),
                    Ok(Ok(())) => {}
                }
            });
        }
    });
}

impl Redirect {
    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if let Some(token) = path.strip_prefix(PREFIX) {
            let found = self.tokens.lock().ok().and_then(|t| t.get(token).cloned());
            return match found {
                Some(key_auth) => reply(StatusCode::OK, Some(("text/plain", key_auth)), None),
                None => reply(StatusCode::NOT_FOUND, None, None),
            };
        }
        let base = self.public.clone().unwrap_or_else(|| {
            let asked = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| {
                    h.rsplit_once(':')
                        .map_or(h, |(n, _)| n)
                        .to_ascii_lowercase()
                })
                .filter(|h| self.names.contains(h));
            let host = asked
                .or_else(|| self.names.first().cloned())
                .unwrap_or_else(|| "localhost".into());
            format!("https://{host}{}", self.port)
        });
        let tail = req.uri().path_and_query().map_or("/", |p| p.as_str());
        reply(
            StatusCode::PERMANENT_REDIRECT,
            None,
            Some(format!("{base}{tail}")),
        )
    }
}

fn reply(
    status: StatusCode,
    body: Option<(&str, String)>,
    location: Option<String>,
) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    if let Some(l) = location {
        b = b.header(header::LOCATION, l);
    }
    let body = match body {
        Some((ct, text)) => {
            b = b.header(header::CONTENT_TYPE, ct);
            Bytes::from(text)
        }
        None => Bytes::new(),
    };
    b.body(Full::new(body)).unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}
