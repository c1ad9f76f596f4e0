//! The one listener: TCP, optional TLS (rustls, ALPN h2/http1.1), HTTP/1.1 and HTTP/2.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::App;

/// Accepts connections until the process ends; each connection is served on its own task.
pub async fn serve(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, app: Arc<App>) {
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acc) => match acc.accept(stream).await {
                    // a tls-alpn-01 validation ends with the handshake: no HTTP follows
                    Ok(tls)
                        if tls.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) => {}
                    Ok(tls) => serve_conn(TokioIo::new(tls), peer, app).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
                None => serve_conn(TokioIo::new(stream), peer, app).await,
            }
        });
    }
}

async fn serve_conn<I>(io: I, peer: SocketAddr, app: Arc<App>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(app.handle(req, peer).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .initial_stream_window_size(4 * 1024 * 1024)
        .initial_connection_window_size(8 * 1024 * 1024);
    if let Err(e) = builder.serve_connection(io, svc).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
