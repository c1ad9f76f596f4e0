//! Event notifications (docs/operations.md): a webhook receiver on 127.0.0.1 gets every
//! event of a burst of writes, with a valid HMAC signature, across a restart of Kura in the
//! middle of it; a failing receiver is retried with back-off; e-mail goes through a local
//! SMTP server (aiosmtpd), one per event or as a digest; bad rules are refused.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{code, free_port, run, Server};

const RECEIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/conformance/webhook_receiver.py"
);
pub const SECRET: &str = "webhook-secret-for-tests";

pub struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn receiver(out: &std::path::Path) -> (Killed, u16) {
    let port = free_port();
    let child = Command::new("python3")
        .args([RECEIVER, &port.to_string(), SECRET])
        .arg(out)
        .stdout(Stdio::null())
        .spawn()
        .expect("receiver");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the receiver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), port)
}

pub fn received(out: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn setup(server: &Server) {
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "inbox", "--group", "g"]));
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("inbox/in/")]),
        201
    );
}

#[test]
fn every_event_of_a_burst_reaches_the_webhook_once_across_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("got.jsonl");
    let (_rx, port) = receiver(&out);
    let mut server = Server::plain();
    setup(&server);
    let url = format!("http://127.0.0.1:{port}/hook");
    let add = run(server.kura().args([
        "notify",
        "add",
        "--bucket",
        "inbox",
        "--prefix",
        "in/",
        "--events",
        "created,deleted",
        "--webhook",
        &url,
        "--secret",
        SECRET,
    ]));
    assert!(String::from_utf8_lossy(&add.stdout).starts_with("rule n"));
    // outside the prefix: no event
    assert_eq!(server.put("inbox/other.txt", b"x"), 201);
    // a burst, with a restart in its middle
    let mut written = BTreeSet::new();
    for i in 0..40 {
        if i == 20 {
            server.restart();
        }
        let path = format!("inbox/in/f{i}.txt");
        if server.put(&path, format!("body {i}").as_bytes()) == 201 {
            written.insert(format!("/{path}"));
        }
    }
    assert!(written.len() >= 38, "{written:?}");
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("inbox/in/f0.txt")]),
        204
    );
    let got = wait_for("every event", 30, || {
        let got = received(&out);
        let created: BTreeSet<String> = got
            .iter()
            .filter(|e| e["event"] == "created")
            .filter_map(|e| e["path"].as_str().map(str::to_string))
            .collect();
        let deleted = got
            .iter()
            .any(|e| e["event"] == "deleted" && e["path"] == "/inbox/in/f0.txt");
        (created == written && deleted).then_some(got)
    });
    // every delivery is signed, names its event, and each event came once
    assert!(got.iter().all(|e| e["valid"] == true), "{got:?}");
    assert!(got.iter().all(|e| e["actor"] == "admin"));
    let ids: BTreeSet<&str> = got.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), got.len(), "an event came twice: {got:?}");
    assert!(!got.iter().any(|e| e["path"] == "/inbox/other.txt"));
}

#[test]
fn a_failing_webhook_is_retried_and_bad_rules_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("got.jsonl");
    let (_rx, port) = receiver(&out);
    let server = Server::plain();
    setup(&server);
    let url = format!("http://127.0.0.1:{port}/fail/hook");
    run(server.kura().args([
        "notify",
        "add",
        "--bucket",
        "inbox",
        "--events",
        "created",
        "--webhook",
        &url,
    ]));
    assert_eq!(server.put("inbox/in/a.txt", b"a"), 201);
    // tried, refused, tried again after a back-off
    wait_for("a retry", 20, || (received(&out).len() >= 2).then_some(()));
    let list = run(server.kura().args(["notify", "list"]));
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(text.contains("queue: 1 waiting"), "{text}");
    assert!(text.contains("answered 500"), "{text}");

    for bad in [
        vec![
            "--bucket",
            "nosuch",
            "--events",
            "created",
            "--webhook",
            "http://127.0.0.1:1/",
        ],
        vec![
            "--bucket",
            "inbox",
            "--events",
            "exploded",
            "--webhook",
            "http://127.0.0.1:1/",
        ],
        vec![
            "--bucket",
            "inbox",
            "--events",
            "created",
            "--webhook",
            "file:///etc/passwd",
        ],
        vec![
            "--bucket",
            "inbox",
            "--events",
            "created",
            "--email",
            "not-an-address",
        ],
    ] {
        let out = server
            .kura()
            .args(["notify", "add"])
            .args(&bad)
            .output()
            .expect("kura");
        assert!(!out.status.success(), "{bad:?} was accepted");
    }
    // the admin API manages the same rules; other users cannot
    let token = server.api_token();
    let bearer = format!("Authorization: Bearer {token}");
    let listed = server.curl(&["-s", "-H", &bearer, &server.url("/api/v1/notifications")]);
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let id = v["rules"][0]["id"].as_str().expect("id").to_string();
    assert!(v["rules"][0].get("secret_sealed").is_none(), "{v}");
    server.add_user("eve", "eve-pw-123", &[]);
    let denied = server.status_as("eve:eve-pw-123", &[&server.url("/api/v1/notifications")]);
    assert_eq!(denied, 403);
    let del = server.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "DELETE",
        "-H",
        &bearer,
        &server.url(&format!("/api/v1/notifications/{id}")),
    ]);
    assert_eq!(code(&del), 204);
    let list = run(server.kura().args(["notify", "list"]));
    assert!(String::from_utf8_lossy(&list.stdout).contains("queue: 0 waiting"));
}

#[test]
fn e_mail_goes_through_a_local_smtp_server_each_or_as_a_digest() {
    let dir = tempfile::tempdir().expect("dir");
    let maildir = dir.path().join("mail");
    let port = free_port();
    let _smtp = Killed(
        Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd"),
    );
    wait_for("the SMTP server", 10, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let p = port.to_string();
    let server = Server::start_with(
        false,
        &[
            ("KURA_SMTP__HOST", "127.0.0.1"),
            ("KURA_SMTP__PORT", &p),
            ("KURA_SMTP__SECURITY", "none"),
            ("KURA_SMTP__FROM", "kura@example.org"),
        ],
    );
    setup(&server);
    run(server.kura().args([
        "notify",
        "add",
        "--bucket",
        "inbox",
        "--events",
        "created",
        "--email",
        "alice@example.org",
    ]));
    run(server.kura().args([
        "notify",
        "add",
        "--bucket",
        "inbox",
        "--events",
        "deleted",
        "--email",
        "bob@example.org",
        "--digest-minutes",
        "1",
    ]));
    assert_eq!(server.put("inbox/in/a.txt", b"a"), 201);
    assert_eq!(server.put("inbox/in/b.txt", b"b"), 201);
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("inbox/in/a.txt")]),
        204
    );
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("inbox/in/b.txt")]),
        204
    );
    let mails = |to: &str| -> Vec<String> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(maildir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let t = std::fs::read_to_string(e.path()).unwrap_or_default();
                if t.contains(&format!("To: {to}")) {
                    v.push(t);
                }
            }
        }
        v
    };
    let each = wait_for("one mail per created file", 30, || {
        let m = mails("alice@example.org");
        (m.len() == 2).then_some(m)
    });
    assert!(
        each.iter().any(|m| m.contains("/inbox/in/a.txt"))
            && each.iter().any(|m| m.contains("/inbox/in/b.txt"))
    );
    // the digest waits for its minute, then brings both deletes in one mail
    let digest = wait_for("the digest", 90, || {
        let m = mails("bob@example.org");
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(digest.len(), 1, "{digest:?}");
    assert!(
        digest[0].contains("2 events")
            && digest[0].contains("a.txt")
            && digest[0].contains("b.txt"),
        "{}",
        digest[0]
    );
}
