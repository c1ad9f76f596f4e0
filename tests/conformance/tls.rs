//! Defaults: TLS on with a self-signed certificate generated once and reused.

use std::process::Command;

use crate::common::{require, run, Server, ADMIN_PW};

fn fingerprint_in(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains("fingerprint="))
        .unwrap_or_else(|| panic!("no fingerprint logged:\n{log}"));
    let start = line.find("fingerprint=").expect("key") + "fingerprint=".len();
    line[start..]
        .split_whitespace()
        .next()
        .expect("value")
        .to_string()
}

#[test]
fn generated_certificate_works_with_curl_and_rclone_and_survives_restart() {
    require("curl");
    require("rclone");
    let mut server = Server::start(true);
    let fp1 = fingerprint_in(&server.log());
    assert_eq!(fp1.len(), 95, "SHA-256 fingerprint expected, got {fp1}");
    let pem = std::fs::read(server.cert()).expect("cert");

    // curl trusts exactly the generated certificate; without it the handshake fails
    assert_eq!(server.put("hello.txt", b"over tls"), 201);
    assert_eq!(server.get("hello.txt"), b"over tls");
    let untrusted = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", &server.url("/healthz")])
        .output()
        .expect("curl");
    assert!(
        !untrusted.status.success(),
        "self-signed certificate accepted without --cacert"
    );
    let by_name = Command::new("curl")
        .arg("--cacert")
        .arg(server.cert())
        .args(["-sS", "-w", "%{http_version}", "-o", "/dev/null"])
        .arg(format!("https://localhost:{}/healthz", server.port))
        .output()
        .expect("curl");
    assert!(
        by_name.status.success(),
        "certificate not valid for localhost"
    );
    assert_eq!(
        String::from_utf8_lossy(&by_name.stdout),
        "2",
        "HTTP/2 not negotiated by ALPN"
    );

    let obscured = run(Command::new("rclone").args(["obscure", ADMIN_PW])).stdout;
    let out = run(Command::new("rclone")
        .env("RCLONE_CONFIG", "/dev/null")
        .arg("--ca-cert")
        .arg(server.cert())
        .args([
            "cat",
            &format!(
                ":webdav,url='{}',user=admin,pass={}:hello.txt",
                server.dav(""),
                String::from_utf8_lossy(&obscured).trim()
            ),
        ]));
    assert_eq!(out.stdout, b"over tls");

    server.restart();
    let fp2 = fingerprint_in(&server.log());
    println!("certificate fingerprint {fp1} (after restart {fp2})");
    assert_eq!(fp1, fp2, "restart generated a new certificate");
    assert_eq!(std::fs::read(server.cert()).expect("cert"), pem);
    assert_eq!(server.get("hello.txt"), b"over tls");
}
