//! HTTP/2 flow control against a real server (red team): request bodies a handler has not read
//! yet sit in the server's receive windows, so the windows it grants bound what clients can
//! park in its memory. Here the bodies wait behind the failed-authentication throttle (S3
//! guesses of one unknown access key, each on its own connection), sending as fast as the
//! windows let them. The other way, responses a client does not read wait in the server's
//! send queues, bounded by its read-ahead budget. Either way the server's peak resident memory
//! must stay within the documented bound (docs/security.md, "Connections and timeouts").

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::common::{run, Server, ADMIN_PW};

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
    let before = rt.block_on(baseline(&server, stalled_put(port, [127, 0, 0, 9], 0)));
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

/// Size of the file the stalled downloads ask for: several of the old 1 MiB reads.
const BIG: usize = 4 << 20;
/// Receive window of each stalled download: the server sends this much and then waits.
const STALLED_WINDOW: u32 = 16 * 1024;

/// One HTTP/2 connection from `from` with `streams` downloads of `paths` (in turn) as `admin`,
/// whose bodies are never read: each stream's window stays shut after its first
/// `STALLED_WINDOW` bytes, while the connection's window is wide open. Returns the tasks
/// that hold the responses (aborting them resets the streams).
/// The server's peak memory after one warm-up connection (`warm`, its stalled requests of the
/// kind measured) came and went: the baseline an attack's growth is measured from.
async fn baseline(
    server: &Server,
    warm: impl std::future::Future<Output = Vec<tokio::task::JoinHandle<()>>>,
) -> u64 {
    let warm = warm.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    warm.iter().for_each(|t| t.abort());
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.vm_hwm_kib()
}

async fn stalled_gets(
    port: u16,
    from: [u8; 4],
    streams: usize,
    paths: &[&str],
) -> Vec<tokio::task::JoinHandle<()>> {
    use base64::Engine as _;
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind((from, 0).into()).expect("bind");
    let tcp = sock
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .adaptive_window(false)
        .initial_stream_window_size(STALLED_WINDOW)
        .initial_connection_window_size(1 << 30)
        .handshake::<_, http_body_util::Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    let mut tasks = vec![tokio::spawn(async move {
        let _ = conn.await;
    })];
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"))
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(streams);
    for n in 0..streams {
        let mut send = send.clone();
        let req = http::Request::get(format!("http://127.0.0.1:{port}{}", paths[n % paths.len()]))
            .header("authorization", &auth)
            .body(http_body_util::Empty::new())
            .expect("request");
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let resp = send.send_request(req).await;
            let _ = tx
                .send(resp.as_ref().map(|r| r.status().as_u16()).ok())
                .await;
            // the body is held, unread, until the task is aborted
            std::future::pending::<()>().await;
            drop(resp);
        }));
    }
    for _ in 0..streams {
        let status = rx.recv().await.flatten();
        assert_eq!(status, Some(200), "a stalled download was not answered");
    }
    tasks
}

/// Attack (red team F2): 10 HTTP/2 connections from one address, 100 downloads of a 4 MiB
/// file each (WebDAV GETs, user-API downloads and zips, of a plain file and of one in an
/// encrypted bucket), none of them read past its first 16 KiB. Each stream took a 1 MiB read
/// of the file, which hyper kept queued for the client (an encrypted one read two more ahead,
/// a zip filled its pipe too, and each kept the handler's future, 68 KiB in a debug build):
/// the server grew by 2.9 GiB for these 1,000 streams. Now a streamed body is read by
/// `wire::PIECE` (256 KiB) only once the stream holds its share of the read-ahead budget
/// (`http::ahead`: 16 MiB an address, 256 MiB the server); the address's other streams wait
/// for it, a download from another address goes through meanwhile, and the address's share
/// is back once its connections are gone.
#[test]
fn stalled_http2_downloads_hold_a_bounded_read_ahead() {
    let server = Server::start_with(false, &[]);
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "sec", "--group", "g", "--encrypt"]));
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    assert_eq!(server.put("big.bin", &big), 201);
    assert_eq!(server.put("sec/big.bin", &big), 201);
    let paths = [
        "/dav/big.bin",
        "/api/user/v1/download?path=/big.bin",
        "/dav/sec/big.bin",
        "/api/user/v1/download?path=/sec/big.bin",
        "/api/user/v1/zip?dir=/sec&names=big.bin",
    ];
    for p in paths {
        let got = server.curl_admin(&["-f", "--http2-prior-knowledge", &server.url(p)]);
        let zip = p.contains("/zip?");
        assert!(
            got.status.success()
                && if zip {
                    got.stdout.len() > BIG
                } else {
                    got.stdout == big
                },
            "GET {p}: {}",
            String::from_utf8_lossy(&got.stderr)
        );
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let port = server.port;
    // warm up: one connection of stalled downloads, then the baseline
    let before = rt.block_on(baseline(
        &server,
        stalled_gets(port, [127, 0, 0, 9], 20, &paths),
    ));
    let tasks = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..10 {
            tasks.extend(stalled_gets(port, [127, 0, 0, 2], 100, &paths).await);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        tasks
    });
    let peak = server.vm_hwm_kib();
    // meanwhile, a download from another address completes
    let t = std::time::Instant::now();
    let other = server.curl_admin(&[
        "-f",
        "--http2-prior-knowledge",
        "--interface",
        "127.0.0.3",
        "-m",
        "30",
        &server.url(paths[1]),
    ]);
    let other_secs = t.elapsed().as_secs_f64();
    tasks.iter().for_each(|t| t.abort());
    drop(rt);
    let grown_mib = peak.saturating_sub(before) / 1024;
    println!(
        "h2 stalled downloads: server peak RSS {} MiB before, {} MiB with 1,000 stalled \
         downloads (+{grown_mib} MiB); another address's download took {other_secs:.2} s",
        before / 1024,
        peak / 1024
    );
    assert!(
        other.stdout == big,
        "a download from another address failed: {}",
        String::from_utf8_lossy(&other.stderr)
    );
    // the address's 16 MiB share and the streams' own state (a few KiB a download, about 45
    // KiB a zip in a debug build): 38 to 48 MiB here; it was 2.9 GiB (3 MiB a stream)
    assert!(
        grown_mib < 64,
        "stalled HTTP/2 downloads grew the server by {grown_mib} MiB"
    );
    // the connections gone, their share is back: the address downloads again
    let again = server.curl_admin(&[
        "-f",
        "--http2-prior-knowledge",
        "--interface",
        "127.0.0.2",
        "-m",
        "30",
        &server.url(paths[3]),
    ]);
    assert!(
        again.stdout == big,
        "the address's share was not given back: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(server.status(&[&server.url("/healthz")]), 200);
}
