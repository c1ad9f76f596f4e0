//! The one listener: TCP, optional TLS (rustls, ALPN h2/http1.1), HTTP/1.1 and HTTP/2, with
//! every connection bounded in time (TLS handshake, request headers, idle keep-alive, HTTP/2
//! pings) and in number (globally and per address); out of descriptors, it backs off.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::ahead::{Gate, Shares};
use super::conns::{Busy, Conns, Ctl, Refused, Slot};
use super::App;
use crate::limits::NetLimits;
use crate::wire::RespBody;

/// `EMFILE` and `ENFILE`: the process or the system is out of file descriptors.
const OUT_OF_DESCRIPTORS: [i32; 2] = [24, 23];
/// Requests in flight on one HTTP/2 connection (RFC 9113 asks for at least 100).
const H2_MAX_STREAMS: u32 = 100;
/// Streams a client may open and reset before they are accepted (the "rapid reset" attack).
const H2_MAX_PENDING_RESETS: usize = 20;
/// Largest header block of an HTTP/2 request, in bytes (decoded: HPACK lets a client send it
/// for a few bytes), so at most 100 x 32 KiB of headers are held a connection.
const H2_MAX_HEADER_LIST: u32 = 32 * 1024;
/// Receive window of a stream and of a whole connection: request bodies a handler has not read
/// yet (one waiting out the failed-authentication delay, say) hold at most this much a
/// connection, whatever the number of streams; fixed, not adaptive (hyper's BDP estimate
/// grows it up to 16 MiB). One upload then moves at most 1 MiB a round trip (50 MiB/s at
/// 20 ms, docs/security.md); it was 4 MiB a stream, 8 MiB a connection: 1 GiB an address.
const H2_WINDOW: u32 = 1024 * 1024;
/// Waits of 50 ms for an evicted connection to release its descriptor.
const ROOM_TRIES: u32 = 20;
/// Longest pause of the accept loop while descriptors are short.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts connections until the process ends; each connection is served on its own task.
pub async fn serve(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, app: Arc<App>) {
    let net = app.limits.net.clone();
    let conns = Conns::new(net.max_connections, net.max_connections_per_ip);
    let shares = Arc::new(Shares::default());
    tracing::info!(
        max_connections = net.max_connections,
        per_address = net.max_connections_per_ip,
        "connection limits"
    );
    let acceptor = tls.map(TlsAcceptor::from);
    let mut short = Shortage::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                let pause = match short.failed(&e) {
                    Some(first) => {
                        if first {
                            // one line per shortage (at most one a minute), not one per accept
                            tracing::warn!(error = %e, open = conns.len(), "out of file descriptors: closing idle connections and slowing down accepts; raise `ulimit -n` or lower limits.max_connections");
                        }
                        let shed = conns.shed_idle(16);
                        if shed > 0 {
                            Duration::from_millis(10)
                        } else {
                            short.pause()
                        }
                    }
                    None => {
                        tracing::debug!(error = %e, "accept failed");
                        Duration::from_millis(10)
                    }
                };
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if let Some(n) = short.accepted() {
            tracing::debug!(failed_accepts = n, "descriptors available again");
        }
        let capped = !app.limits.is_trusted_proxy(peer.ip());
        let Some(slot) = admit(&conns, peer, capped).await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let net = net.clone();
        // a trusted proxy's clients share the server's read-ahead budget only
        let share = capped.then(|| shares.of(peer.ip()));
        tokio::spawn(run(stream, (peer, share), acceptor, app, slot, net));
    }
}

/// A slot for a new connection: at a cap, an idle connection is closed to make room and the
/// loop waits (briefly) until its descriptor is free; `None` if nothing can make room.
async fn admit(conns: &Arc<Conns>, peer: SocketAddr, capped: bool) -> Option<Slot> {
    for _ in 0..ROOM_TRIES {
        match conns.admit(peer.ip(), capped) {
            Ok(s) => return Some(s),
            Err(Refused::Wait) => conns.freed(Duration::from_millis(50)).await,
            Err(why) => {
                tracing::debug!(%peer, ?why, "connection refused: limit reached");
                return None;
            }
        }
    }
    tracing::debug!(%peer, "connection refused: no room made in time");
    None
}

/// The accept loop's state while descriptors are short: one warning per shortage (and at most
/// one per `WARN_EVERY`, should shortages come and go), and pauses that double from 10 ms up to
/// `MAX_BACKOFF` while accepts keep failing.
#[derive(Debug, Default)]
struct Shortage {
    failed: u32,
    warned: Option<std::time::Instant>,
}

/// Least time between two warnings about descriptors.
const WARN_EVERY: Duration = Duration::from_secs(60);

impl Shortage {
    /// After a failed accept: `None` if it is not a shortage of descriptors, else whether to
    /// log it (the first failure of a shortage, unless one was logged within `WARN_EVERY`).
    fn failed(&mut self, e: &std::io::Error) -> Option<bool> {
        if !e
            .raw_os_error()
            .is_some_and(|c| OUT_OF_DESCRIPTORS.contains(&c))
        {
            return None;
        }
        self.failed = self.failed.saturating_add(1);
        let quiet = self.warned.is_some_and(|t| t.elapsed() < WARN_EVERY);
        let warn = self.failed == 1 && !quiet;
        if warn {
            self.warned = Some(std::time::Instant::now());
        }
        Some(warn)
    }

    /// How long to wait before the next accept.
    fn pause(&self) -> Duration {
        Duration::from_millis(10u64 << self.failed.saturating_sub(1).min(7)).min(MAX_BACKOFF)
    }

    /// A connection was accepted: the shortage, if any, is over (its failed accepts).
    fn accepted(&mut self) -> Option<u32> {
        (self.failed > 0).then(|| std::mem::take(&mut self.failed))
    }
}

async fn run(
    stream: TcpStream,
    (peer, share): (SocketAddr, Option<Arc<Semaphore>>),
    acceptor: Option<TlsAcceptor>,
    app: Arc<App>,
    slot: Slot,
    net: NetLimits,
) {
    let ctl = slot.ctl.clone();
    let work = async {
        match acceptor {
            Some(acc) => match tokio::time::timeout(net.tls_handshake, acc.accept(stream)).await {
                // a tls-alpn-01 validation ends with the handshake: no HTTP follows
                Ok(Ok(tls))
                    if tls.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) => {}
                Ok(Ok(tls)) => {
                    let io = TokioIo::new(tls);
                    serve_conn((io, true), (peer, share), app, ctl.clone(), &net).await
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            },
            None => {
                let io = TokioIo::new(stream);
                serve_conn((io, false), (peer, share), app, ctl.clone(), &net).await
            }
        }
    };
    tokio::select! {
        _ = work => {}
        _ = ctl.close.notified() => tracing::debug!(%peer, "idle connection closed to make room"),
    }
    drop(slot);
}

/// Serves the requests of one connection (`tls`: it is a TLS one; each request is marked
/// `wire::Secure`); its response bodies draw on `share`, its address's read-ahead budget.
async fn serve_conn<I>(
    (io, tls): (I, bool),
    (peer, share): (SocketAddr, Option<Arc<Semaphore>>),
    app: Arc<App>,
    ctl: Arc<Ctl>,
    net: &NetLimits,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn_ctl = ctl.clone();
    let svc = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let busy = conn_ctl.begin();
        let share = share.clone();
        if tls {
            req.extensions_mut().insert(crate::wire::Secure);
        }
        async move {
            // boxed: hyper keeps a stream's future (its largest state) until the response is
            // sent, and the handler's is tens of KiB, so a stalled stream would keep it too
            let resp = Box::pin(app.handle(req, peer)).await;
            Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked::new(body, busy, share)))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(net.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(net.http2_keep_alive)
        .keep_alive_timeout(net.http2_keep_alive.unwrap_or(Duration::from_secs(20)))
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_send_buf_size(super::ahead::H2_SEND_BUF)
        .adaptive_window(false)
        .initial_stream_window_size(H2_WINDOW)
        .initial_connection_window_size(H2_WINDOW);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    loop {
        // a connection with no request in flight for `idle` is closed (keep-alive timeout)
        let idle = ctl.idle_for();
        if net.idle.is_some_and(|limit| idle >= limit) {
            tracing::debug!(%peer, "idle connection closed");
            return;
        }
        let wait = net
            .idle
            .map_or(Duration::from_secs(3600), |limit| limit - idle);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped,
/// and, unless it is tiny, takes the read-ahead budget before each piece (`ahead`).
struct Tracked {
    body: RespBody,
    _busy: Busy,
    gate: Option<Gate>,
}

impl Tracked {
    fn new(body: RespBody, busy: Busy, share: Option<Arc<Semaphore>>) -> Self {
        // one HTTP/2 frame: not worth a turn
        let small = body.size_hint().upper().is_some_and(|n| n <= 16 * 1024);
        Tracked {
            body,
            _busy: busy,
            gate: (!small).then(|| Gate::new(share)),
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let Some(gate) = this.gate.as_mut() else {
            return Pin::new(&mut this.body).poll_frame(cx);
        };
        ready!(gate.poll_take(cx));
        let r = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &r {
            Some(Ok(_)) => gate.handed_on(),
            None | Some(Err(_)) => gate.release(),
        }
        Poll::Ready(r)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortage_is_logged_once_and_backs_off() {
        let emfile = std::io::Error::from_raw_os_error(24);
        let mut s = Shortage::default();
        assert_eq!(s.failed(&std::io::Error::other("reset")), None);
        assert_eq!(s.failed(&emfile), Some(true));
        assert_eq!(s.pause(), Duration::from_millis(10));
        let later: Vec<Option<bool>> = (0..20).map(|_| s.failed(&emfile)).collect();
        assert!(later.iter().all(|l| *l == Some(false)));
        assert_eq!(s.pause(), MAX_BACKOFF);
        assert_eq!(s.accepted(), Some(21));
        assert_eq!(s.accepted(), None);
        // a new shortage right after: counted, not logged again within a minute
        assert_eq!(
            s.failed(&std::io::Error::from_raw_os_error(23)),
            Some(false)
        );
        assert_eq!(s.accepted(), Some(1));
    }
}
