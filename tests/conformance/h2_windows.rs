//! HTTP/2 flow control against a real server (red team): request bodies a handler has not read
//! yet sit in the server's receive windows, so the windows it grants bound what clients can
//! park in its memory. Here the bodies wait behind the failed-authentication throttle (S3
//! guesses of one unknown access key, each on its own connection), sending as fast as the
//! windows let them; the server's peak resident memory must stay within the documented bound
//! (docs/security.md, "Connections and timeouts").

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::common::Server;

/// One HTTP/2 connection from `from` carrying one S3 PUT signed with an unknown key, whose body
/// (64 MiB announced) is sent as fast as the server's windows allow and never finishes here.
async fn stalled_put(port: u16, from: [u8; 4], n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind((from, 0).into()).expect("bind");
    let tcp = sock
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let body = StreamBody::new(stream::repeat_with(move || {
        Ok::<_, Infallible>(Frame::data(chunk.clone()))
    }));
    let now = time::OffsetDateTime::now_utc();
    let date = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("date");
    let req = http::Request::put(format!("http://127.0.0.1:{port}/bkt/guess{n}"))
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIAGUESS000000000000/{}/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
                &date[..8],
                "0".repeat(64)
            ),
        )
        .header("x-amz-date", &date)
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .header("content-length", (64u64 << 20).to_string())
        .body(body)
        .expect("request");
    let request = tokio::spawn(async move {
        let _ = send.send_request(req).await;
    });
    vec![driver, request]
}

/// Attack: 24 connections from two addresses, each a guess of the same unknown S3 key whose
/// request waits while its body streams in: five guesses an address are decided at a time
/// (`auth_failures`), one after another (`auth_failures_per_ip` 1: 0.25 s, 0.5 s, 1 s...), and
/// the others wait their turn for seconds before their 429. With 4 MiB stream windows the
/// server took in 4 MiB for each waiting request (96 MiB here; 1 GiB from the 128 connections
/// one address may open); now a connection holds at most 1 MiB of unread body.
#[test]
fn parked_http2_bodies_hold_at_most_one_window_a_connection() {
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__AUTH_FAILURES_PER_IP", "1"),
            ("KURA_LIMITS__AUTH_DELAY_MAX_MS", "600000"),
        ],
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let port = server.port;
    // warm up: one connection and request of the same kind, then the baseline
    let before = rt.block_on(async {
        let warm = stalled_put(port, [127, 0, 0, 9], 0).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        warm.iter().for_each(|t| t.abort());
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.vm_hwm_kib()
    });
    let tasks = rt.block_on(async {
        let mut tasks = Vec::new();
        for a in [2, 3] {
            for n in 0..12 {
                tasks.extend(stalled_put(port, [127, 0, 0, a], n).await);
            }
        }
        // the last of the first five guesses an address is decided after 3.75 s
        tokio::time::sleep(Duration::from_secs(2)).await;
        tasks
    });
    let peak = server.vm_hwm_kib();
    tasks.iter().for_each(|t| t.abort());
    drop(rt);
    let grown_mib = peak.saturating_sub(before) / 1024;
    println!(
        "h2 windows: server peak RSS {} MiB before, {} MiB with 24 parked uploads (+{grown_mib} MiB)",
        before / 1024,
        peak / 1024
    );
    // 24 connections at 1 MiB each, and the server's own bookkeeping
    assert!(
        grown_mib < 48,
        "parked HTTP/2 bodies grew the server by {grown_mib} MiB"
    );
    assert_eq!(server.status(&[&server.url("/healthz")]), 200);
}
