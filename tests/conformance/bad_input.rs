//! Bad input gets a clear error and changes nothing.

use crate::common::{code, require, tree, Server};

fn snapshot(server: &Server) -> (Vec<String>, Vec<u8>) {
    let listing = server
        .curl_admin(&["-X", "PROPFIND", "-H", "Depth: 1", &server.dav("")])
        .stdout;
    (tree(server.root.path()), listing)
}

#[test]
fn traversal_and_encoded_tricks_are_rejected_and_touch_nothing() {
    require("curl");
    let server = Server::plain();
    assert_eq!(server.put("inside.txt", b"inside"), 201);
    let canary = server.root.path().join("canary.txt");
    std::fs::write(&canary, b"outside the storage root").expect("canary");
    let before = snapshot(&server);

    for path in [
        "/dav/../canary.txt",
        "/dav/../../etc/passwd",
        "/dav/%2e%2e/canary.txt",
        "/dav/%2E%2E/%2E%2E/etc/passwd",
        "/dav/..%2fcanary.txt",
        "/dav/a%2f..%2f..%2fcanary.txt",
        "/dav/a%5c..%5ccanary.txt",
        "/dav/inside.txt%00.jpg",
        "/dav/./inside.txt",
        "/dav//inside.txt",
    ] {
        for method in ["GET", "PUT", "DELETE", "MKCOL", "PROPFIND"] {
            let mut args = vec!["-X", method, "-o", "/dev/null", "-w", "%{http_code}"];
            if method == "PUT" {
                args.extend(["--data-binary", "evil"]);
            }
            let url = server.url(path);
            args.push(&url);
            let status = code(&server.curl_admin(&args));
            assert_eq!(status, 400, "{method} {path} answered {status}");
        }
    }

    let src = server.dav("inside.txt");
    for (dest, want) in [
        ("http://evil.example.com/dav/x.txt".to_string(), 502),
        (server.url("/elsewhere/x.txt"), 403),
        (server.url("/dav/../canary.txt"), 400),
        (server.url("/dav/%2e%2e/canary.txt"), 400),
        (server.url("/dav/a%2fb"), 400),
        ("/etc/passwd".to_string(), 403),
        // the root itself, which holds the source: refused before anything (it panicked the
        // handler before dav-server patch 25, then was a 207 naming 403 until patch 26)
        (server.url("/dav/"), 403),
    ] {
        for method in ["MOVE", "COPY"] {
            let d = format!("Destination: {dest}");
            let status = server.status(&["-X", method, "-H", &d, &src]);
            assert_eq!(status, want, "{method} to {dest} answered {status}");
        }
    }

    assert_eq!(
        snapshot(&server),
        before,
        "a rejected request changed something"
    );
    assert_eq!(
        std::fs::read(&canary).expect("canary"),
        b"outside the storage root"
    );
    assert_eq!(server.get("inside.txt"), b"inside");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn malformed_xml_wrong_password_oversize_and_depth_infinity() {
    require("curl");
    let server = Server::plain();
    assert_eq!(server.put("f.txt", b"x"), 201);
    let before = snapshot(&server);
    let bad_xml =
        "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><unclosed></D:propfind>";
    for method in ["PROPFIND", "PROPPATCH", "LOCK"] {
        let status = server.status(&[
            "-X",
            method,
            "-H",
            "Content-Type: application/xml",
            "--data-binary",
            bad_xml,
            &server.dav("f.txt"),
        ]);
        assert_eq!(status, 400, "malformed XML {method} answered {status}");
    }
    let not_dav = "<?xml version=\"1.0\"?><propfind><prop/></propfind>";
    assert_eq!(
        server.status(&[
            "-X",
            "PROPFIND",
            "--data-binary",
            not_dav,
            &server.dav("f.txt")
        ]),
        400
    );

    // wrong password and no credentials: 401 with a Basic challenge
    let wrong = server.curl(&[
        "-u",
        "admin:wrong",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-w",
        "\n%{http_code}",
        &server.dav("f.txt"),
    ]);
    let text = String::from_utf8_lossy(&wrong.stdout).to_lowercase();
    assert!(text.trim_end().ends_with("401"), "{text}");
    assert!(text.contains("www-authenticate: basic realm="), "{text}");
    let none = code(&server.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &server.dav("f.txt"),
    ]));
    assert_eq!(none, 401);
    let unknown = code(&server.curl(&[
        "-u",
        "nobody:x",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &server.dav("f.txt"),
    ]));
    assert_eq!(unknown, 401);
    // unauthenticated OPTIONS still answers with the DAV headers (Windows needs it)
    let opts = server.curl(&[
        "-X",
        "OPTIONS",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &server.dav(""),
    ]);
    let h = String::from_utf8_lossy(&opts.stdout).to_lowercase();
    assert!(
        h.starts_with("http/1.1 200") && h.contains("dav: 1, 2"),
        "{h}"
    );

    // XML bodies over the limit: 413, with and without Content-Length
    let big = format!(
        "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>{}</D:prop></D:propfind>",
        "<D:getetag/>".repeat(10_000)
    );
    let status = server.status(&[
        "-X",
        "PROPFIND",
        "--data-binary",
        &big,
        &server.dav("f.txt"),
    ]);
    assert_eq!(status, 413);
    let status = server.status(&[
        "-X",
        "PROPFIND",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &big,
        &server.dav("f.txt"),
    ]);
    assert_eq!(status, 413);

    // PROPFIND Depth: infinity is refused with the RFC 4918 precondition
    let inf = server.curl_admin(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: infinity",
        "-w",
        "\n%{http_code}",
        &server.dav(""),
    ]);
    let body = String::from_utf8_lossy(&inf.stdout);
    assert!(
        body.trim_end().ends_with("403") && body.contains("propfind-finite-depth"),
        "{body}"
    );

    assert_eq!(
        snapshot(&server),
        before,
        "a rejected request changed something"
    );
}

/// Seconds after which a connection that never finishes its TLS handshake or its request head
/// must be closed (the server allows 30).
const SLOW_CLIENT_CUTOFF: u64 = 40;

/// Whether the server closes a connection that sent `first` and then stalls, within the cutoff.
fn stalled_connection_is_closed(port: u16, first: &[u8]) -> bool {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(first).expect("write");
    s.set_read_timeout(Some(std::time::Duration::from_secs(SLOW_CLIENT_CUTOFF)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error answer (408) before the close is fine
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Slowloris: a client that opens a connection and sends half a request head (plain HTTP), or
/// nothing at all (TLS, no ClientHello), is cut off instead of holding a task and a file
/// descriptor for ever.
#[test]
fn a_stalled_request_head_or_handshake_is_cut_off() {
    let plain = Server::plain();
    let tls = Server::start(true);
    std::thread::scope(|s| {
        let head = s.spawn(|| {
            stalled_connection_is_closed(plain.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        });
        let hello = s.spawn(|| stalled_connection_is_closed(tls.port, b""));
        assert!(
            head.join().expect("thread"),
            "a half request head was still open after {SLOW_CLIENT_CUTOFF} s"
        );
        assert!(
            hello.join().expect("thread"),
            "a connection without a TLS handshake was still open after {SLOW_CLIENT_CUTOFF} s"
        );
    });
}

/// A COPY or MOVE of a folder onto the folder that holds it, or into one of its own
/// subfolders, with `Overwrite: T`: refused before anything is deleted (it deleted the
/// parent, source included, then answered 404), in a bucket that keeps no trash.
#[test]
fn a_folder_copied_or_moved_onto_its_parent_or_into_itself_deletes_nothing() {
    require("curl");
    let server = Server::plain();
    for d in ["r", "r/p", "r/p/sub"] {
        assert_eq!(server.status(&["-X", "MKCOL", &server.dav(d)]), 201);
    }
    assert_eq!(server.put("r/p/important.txt", b"important"), 201);
    assert_eq!(server.put("r/p/sub/s.txt", b"sub"), 201);
    let before = snapshot(&server);
    for method in ["COPY", "MOVE"] {
        for (from, to) in [
            ("r/p/sub/", "r/p/"),
            ("r/p/sub", "r/p"),
            ("r/p/", "r/p/sub/"),
            ("r/p/", "r/p/sub/deeper/"),
            ("r/p/sub/", "r/"),
            ("r/p/", ""),
        ] {
            let dest = format!("Destination: {}", server.dav(to));
            let got = server.status(&[
                "-X",
                method,
                "-H",
                &dest,
                "-H",
                "Overwrite: T",
                &server.dav(from),
            ]);
            assert_eq!(got, 403, "{method} {from} -> {to}");
            assert_eq!(snapshot(&server), before, "{method} {from} -> {to}");
        }
    }
    assert_eq!(server.get("r/p/important.txt"), b"important");
}
