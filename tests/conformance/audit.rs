//! The audit trail (docs/operations.md): a scripted session through WebDAV, S3, share links
//! and the CLI reads back exactly, with who, from where and by which protocol, a failed
//! sign-in included; the admin API pages it and refuses other users; the JSON-lines copy
//! holds the same rows.

use std::time::{Duration, Instant};

use crate::common::{code, require, run, Server};

fn audit(server: &Server, args: &[&str]) -> Vec<serde_json::Value> {
    let out = run(server.kura().arg("audit").args(args).arg("--json"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("-")
}

#[test]
fn a_scripted_session_reads_back_exactly_from_the_audit_trail() {
    require("curl");
    require("aws");
    let log = tempfile::tempdir().expect("log dir");
    let log_file = log.path().join("audit.jsonl");
    let server = Server::start_with(
        false,
        &[("KURA_AUDIT_LOG", log_file.to_str().expect("utf8"))],
    );
    run(server.kura().args(["group", "add", "fam"]));
    run(server
        .kura()
        .args(["bucket", "create", "photos", "--group", "fam"]));
    server.add_user("alice", "alice-pw-1", &["--group", "fam"]);
    let alice = |args: &[&str]| {
        let mut all = vec![
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            "alice:alice-pw-1",
        ];
        all.extend_from_slice(args);
        code(&server.curl(&all))
    };
    let body = log.path().join("body");
    std::fs::write(&body, b"hello").expect("body");
    let b = body.to_str().expect("utf8");
    assert_eq!(alice(&["-T", b, &server.dav("photos/a.txt")]), 201);
    assert_eq!(alice(&["-T", b, &server.dav("photos/a.txt")]), 204);
    let dest = format!("Destination: {}", server.dav("photos/b.txt"));
    assert_eq!(
        alice(&["-X", "MOVE", "-H", &dest, &server.dav("photos/a.txt")]),
        201
    );
    assert_eq!(alice(&["-X", "DELETE", &server.dav("photos/b.txt")]), 204);
    // a wrong password
    let wrong = server.status_as("alice:nope", &[&server.dav("photos/")]);
    assert_eq!(wrong, 401);
    // S3, signed by alice's key
    let key = server.s3_key_for("alice");
    run(server.aws(&key).args(["s3", "cp", b, "s3://photos/s3.txt"]));

    let mine = audit(&server, &["--user", "alice"]);
    let got: Vec<(String, String, String, String)> = mine
        .iter()
        .rev()
        .map(|r| {
            (
                field(r, "protocol").to_string(),
                field(r, "action").to_string(),
                field(r, "path").to_string(),
                field(r, "outcome").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String, String)> = [
        ("webdav", "create", "/photos/a.txt", "ok"),
        ("webdav", "overwrite", "/photos/a.txt", "ok"),
        ("webdav", "move", "/photos/a.txt", "ok"),
        ("webdav", "delete", "/photos/b.txt", "ok"),
        ("webdav", "sign_in_failed", "-", "failed"),
        ("s3", "create", "/photos/s3.txt", "ok"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(got, want, "{mine:#?}");
    assert!(
        mine.iter().all(|r| field(r, "client") == "127.0.0.1"),
        "{mine:#?}"
    );
    let moved = mine
        .iter()
        .find(|r| field(r, "action") == "move")
        .expect("move");
    assert_eq!(field(moved, "path2"), "/photos/b.txt");

    // admin commands are recorded as the account that ran them, by path
    run(server.kura().args(["chmod", "750", "/photos"]));
    let on_photos = audit(&server, &["--path", "/photos", "--since", "1h"]);
    let chmod = on_photos
        .iter()
        .find(|r| field(r, "action") == "chmod")
        .expect("chmod");
    assert_eq!(field(chmod, "protocol"), "cli");
    assert!(field(chmod, "actor").starts_with("cli:"), "{chmod}");
    assert!(on_photos
        .iter()
        .any(|r| field(r, "action") == "create" && field(r, "path") == "/photos/s3.txt"));
    assert!(audit(&server, &["--since", "2000-01-01"]).len() >= mine.len());
    assert!(audit(&server, &["--user", "nobody"]).is_empty());

    // the admin API pages it; another user cannot read it
    let token = server.api_token();
    let bearer = format!("Authorization: Bearer {token}");
    let page = |extra: &str| -> serde_json::Value {
        let url = server.url(&format!("/api/v1/audit?user=alice&limit=4{extra}"));
        let out = server.curl(&["-s", "-H", &bearer, &url]);
        serde_json::from_slice(&out.stdout).expect("page")
    };
    let first = page("");
    assert_eq!(first["entries"].as_array().map(Vec::len), Some(4));
    let next = first["next"].as_i64().expect("a next page");
    let second = page(&format!("&before={next}"));
    assert_eq!(second["entries"].as_array().map(Vec::len), Some(2));
    assert!(second["next"].is_null());
    let denied = server.status_as("alice:alice-pw-1", &[&server.url("/api/v1/audit")]);
    assert_eq!(denied, 403);

    // the JSON-lines copy holds every row, once
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = audit(&server, &["--limit", "1000"]);
    loop {
        let text = std::fs::read_to_string(&log_file).unwrap_or_default();
        let ids: Vec<i64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["id"].as_i64())
            .collect();
        let want: Vec<i64> = all.iter().rev().filter_map(|v| v["id"].as_i64()).collect();
        if ids.len() >= want.len() {
            assert_eq!(&ids[..want.len()], &want[..]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the audit log has {} of {} rows",
            ids.len(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_admin_command_is_audited_as_the_account_that_ran_it_whatever_its_environment() {
    // red team: the CLI's actor came from $USER, which the caller sets: `USER=alice kura ...`
    // was recorded as alice's, and cron or systemd (no USER) recorded "cli:?"
    let server = Server::plain();
    let me = run(std::process::Command::new("id").arg("-un"));
    let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
    assert!(!me.is_empty());
    run(server
        .kura()
        .env("USER", "someone-else")
        .args(["group", "add", "forged"]));
    run(server
        .kura()
        .env_remove("USER")
        .args(["group", "add", "unset"]));
    let rows = audit(&server, &["--since", "1h"]);
    for g in ["forged", "unset"] {
        let row = rows
            .iter()
            .find(|r| field(r, "action") == "group_add" && field(r, "path") == g)
            .expect("the group_add row");
        assert_eq!(field(row, "actor"), format!("cli:{me}"), "{row}");
    }
}

#[test]
fn an_s3_acl_that_makes_an_object_public_is_audited() {
    // red team: PutObjectAcl / PutBucketAcl change the mode and public reads (a canned
    // public-read opens the object to anyone) but left no audit row
    require("aws");
    let server = Server::plain();
    run(server.kura().args(["group", "add", "fam"]));
    run(server
        .kura()
        .args(["bucket", "create", "pics", "--group", "fam"]));
    server.add_user("alice", "alice-pw-1", &["--group", "fam"]);
    let key = server.s3_key_for("alice");
    let dir = tempfile::tempdir().expect("dir");
    let f = dir.path().join("a.txt");
    std::fs::write(&f, b"hello").expect("body");
    run(server
        .aws(&key)
        .arg("s3")
        .arg("cp")
        .arg(&f)
        .arg("s3://pics/a.txt"));
    run(server.aws(&key).args([
        "s3api",
        "put-object-acl",
        "--bucket",
        "pics",
        "--key",
        "a.txt",
        "--acl",
        "public-read",
    ]));
    let rows = audit(&server, &["--path", "/pics/a.txt"]);
    let chmod = rows
        .iter()
        .find(|r| field(r, "action") == "chmod")
        .unwrap_or_else(|| panic!("no chmod row for the ACL: {rows:?}"));
    assert_eq!(field(chmod, "actor"), "alice", "{chmod}");
    assert_eq!(field(chmod, "protocol"), "s3", "{chmod}");
    assert_eq!(field(chmod, "detail"), "public", "{chmod}");
}
