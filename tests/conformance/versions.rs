//! Versions and trash (docs/versions.md): what WebDAV and S3 clients overwrite or delete is
//! kept, listed and restored byte for byte; the trash expires by policy; kept bytes count
//! against the quota; a kill during a version-making overwrite leaves a consistent state.

use std::time::Duration;

use crate::common::{fsck_clean, require, run, tree, Server};

fn setup(server: &Server) {
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "b", "--group", "g"]));
}

/// `kura versions list PATH --json`, parsed.
fn versions(server: &Server, path: &str) -> Vec<serde_json::Value> {
    let out = run(server.kura().args(["versions", "list", path, "--json"]));
    serde_json::from_slice(&out.stdout).expect("versions JSON")
}

/// `kura trash list --json`, parsed.
fn trash(server: &Server) -> Vec<serde_json::Value> {
    let out = run(server.kura().args(["trash", "list", "--json"]));
    serde_json::from_slice(&out.stdout).expect("trash JSON")
}

/// (used bytes, version bytes) of group g, from `kura usage`.
fn usage(server: &Server) -> (i64, i64) {
    let out = run(server.kura().args(["usage", "g"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("g\t")).expect("usage");
    let f: Vec<&str> = line.split('\t').collect();
    (f[1].parse().expect("used"), f[5].parse().expect("versions"))
}

#[test]
fn word_safe_save_then_restore_of_the_previous_version_is_byte_equal() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    let v1: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let v2 = b"PK\x03\x04 the second draft".to_vec();
    assert_eq!(server.put("b/report.docx", &v1), 201);
    // Word: the new version to a temporary file, MOVEd over the document
    assert_eq!(server.put("b/~WRD0001.tmp", &v2), 201);
    let dest = format!("Destination: {}", server.dav("b/report.docx"));
    assert_eq!(
        server.status(&[
            "-X",
            "MOVE",
            "-H",
            &dest,
            "-H",
            "Overwrite: T",
            &server.dav("b/~WRD0001.tmp")
        ]),
        204
    );
    assert_eq!(server.get("b/report.docx"), v2);
    let v = versions(&server, "/b/report.docx");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["size"], v1.len());
    // the previous version comes back as the current one; the draft it replaces is kept
    run(server.kura().args(["restore", "/b/report.docx"]));
    assert_eq!(server.get("b/report.docx"), v1);
    let v = versions(&server, "/b/report.docx");
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[0]["size"], v2.len());
    // and that one by its id
    let id = v[0]["id"].as_str().expect("id").to_string();
    run(server
        .kura()
        .args(["restore", "/b/report.docx", "--version", &id]));
    assert_eq!(server.get("b/report.docx"), v2);
    // an unknown version is refused and changes nothing
    let out = server
        .kura()
        .args(["restore", "/b/report.docx", "--version", "nope"])
        .output()
        .expect("kura");
    assert!(!out.status.success());
    assert_eq!(server.get("b/report.docx"), v2);
    fsck_clean(&server);
}

#[test]
fn s3_overwrite_through_aws_cli_keeps_a_listed_version() {
    require("aws");
    let server = Server::plain();
    setup(&server);
    // S3 bucket names have three characters at least
    run(server
        .kura()
        .args(["bucket", "create", "vs3", "--group", "g"]));
    let key = server.s3_key();
    let dir = server.root.path();
    let (a, b) = (dir.join("a.txt"), dir.join("b.txt"));
    std::fs::write(&a, b"first version").expect("a");
    std::fs::write(&b, b"second, longer version").expect("b");
    for f in [&a, &b] {
        run(server
            .aws(&key)
            .args(["s3", "cp", f.to_str().expect("utf8"), "s3://vs3/k.txt"]));
    }
    let v = versions(&server, "/vs3/k.txt");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["size"], 13);
    assert_eq!(v[0]["delete_marker"], false);
    assert_eq!(usage(&server), (22, 13));
    // a delete through S3 leaves a marker above the deleted bytes
    run(server.aws(&key).args(["s3", "rm", "s3://vs3/k.txt"]));
    let v = versions(&server, "/vs3/k.txt");
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v.iter().any(|x| x["delete_marker"] == true));
    run(server.kura().args(["restore", "/vs3/k.txt"]));
    assert_eq!(server.get("vs3/k.txt"), b"second, longer version");
    fsck_clean(&server);
}

#[test]
fn a_folder_of_1000_files_deleted_through_webdav_is_restored_whole() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    let mkcol = |p: &str| server.status(&["-X", "MKCOL", &server.dav(p)]);
    assert_eq!(mkcol("b/dir"), 201);
    assert_eq!(mkcol("b/dir/sub"), 201);
    assert_eq!(mkcol("b/dir/empty"), 201);
    // one curl uploads them all over one connection
    let body_dir = server.root.path().join("bodies");
    std::fs::create_dir_all(&body_dir).expect("bodies");
    let mut args: Vec<String> = vec!["-f".into()];
    for i in 0..1000 {
        let f = body_dir.join(format!("{i}"));
        std::fs::write(&f, format!("file {i} ").repeat(i % 7 + 1)).expect("body");
        let sub = if i % 2 == 0 { "dir" } else { "dir/sub" };
        args.extend([
            "-T".into(),
            f.to_string_lossy().into_owned(),
            server.dav(&format!("b/{sub}/f{i}.txt")),
        ]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = server.curl_admin(&refs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = server.files_dir().join("b/dir");
    let before: Vec<(String, Vec<u8>)> = tree(&stored)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(stored.join(&p)).expect("read");
            (p, bytes)
        })
        .collect();
    assert_eq!(before.len(), 1000);

    let t0 = std::time::Instant::now();
    assert_eq!(server.status(&["-X", "DELETE", &server.dav("b/dir")]), 204);
    let took = t0.elapsed();
    assert_eq!(server.status(&["-I", &server.dav("b/dir/f0.txt")]), 404);
    let t = trash(&server);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        (t[0]["path"].as_str(), t[0]["files"].as_i64()),
        (Some("/b/dir"), Some(1000))
    );
    assert_eq!(t[0]["folder"], true);
    fsck_clean(&server);

    let (delete, restore) = (took, std::time::Instant::now());
    let out = run(server.kura().args(["restore", "/b/dir"]));
    println!(
        "1000 files: WebDAV DELETE into the trash {delete:?}, kura restore {:?}",
        restore.elapsed()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1000 files"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after: Vec<(String, Vec<u8>)> = tree(&stored)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(stored.join(&p)).expect("read");
            (p, bytes)
        })
        .collect();
    assert_eq!(after, before);
    // the empty folder is back too, and the restored files are served
    assert_eq!(
        server.status(&[
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
            &server.dav("b/dir/empty")
        ]),
        207
    );
    assert_eq!(server.get("b/dir/sub/f1.txt"), b"file 1 file 1 ");
    assert!(
        trash(&server).is_empty(),
        "the restored delete left the trash"
    );
    fsck_clean(&server);
}

#[test]
fn the_trash_expires_after_its_retention() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    run(server
        .kura()
        .args(["bucket", "set", "b", "--trash-days", "2s"]));
    assert_eq!(server.put("b/old.txt", b"soon gone"), 201);
    assert_eq!(server.put("b/young.txt", b"kept a while"), 201);
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("b/old.txt")]),
        204
    );
    // not yet expired: pruning keeps it
    run(server.kura().args(["versions", "prune"]));
    assert_eq!(trash(&server).len(), 1);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("b/young.txt")]),
        204
    );
    let out = run(server.kura().args(["versions", "prune"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("9 bytes"));
    let t = trash(&server);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["path"], "/b/young.txt");
    assert_eq!(usage(&server), (0, 12));
    // the expired bytes are gone from disk, and a restore of them is refused
    assert!(server
        .kura()
        .args(["restore", "/b/old.txt"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(false));
    // emptying on demand drops the rest
    run(server.kura().args(["trash", "empty", "--bucket", "b"]));
    assert!(trash(&server).is_empty());
    assert_eq!(usage(&server), (0, 0));
    assert!(tree(&server.data_dir().join("versions")).is_empty());
    fsck_clean(&server);
}

#[test]
fn kept_versions_count_against_the_quota_and_purge_first_makes_room() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    run(server.kura().args(["quota", "set", "g", "--bytes", "1000"]));
    assert_eq!(server.put("b/f", &[b'a'; 600]), 201);
    assert_eq!(server.put("b/f", &[b'b'; 300]), 204);
    assert_eq!(usage(&server), (300, 600));
    // 300 current + 600 kept + 200 new is over 1000: refused, nothing changes
    assert_eq!(server.put("b/g", &[b'c'; 200]), 507);
    assert_eq!(usage(&server), (300, 600));
    // the quota as WebDAV reports it counts the kept bytes
    let ask = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/></D:prop></D:propfind>"#;
    let out = server.curl_admin(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 0",
        "--data-binary",
        ask,
        &server.dav("b/"),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("quota-used-bytes>900<"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // with purge-first the oldest kept bytes go to make room
    run(server
        .kura()
        .args(["bucket", "set", "b", "--purge-first", "true"]));
    // a write announcing more than purging everything could free costs the group nothing
    let huge = server.status(&[
        "--http1.1",
        "-X",
        "PUT",
        "-H",
        "Content-Length: 10737418240",
        "--data-binary",
        "0123456789",
        "--max-time",
        "20",
        &server.dav("b/huge"),
    ]);
    assert_eq!(huge, 507);
    assert_eq!(usage(&server), (300, 600));
    assert_eq!(versions(&server, "/b/f").len(), 1);
    assert_eq!(server.put("b/g", &[b'c'; 200]), 201);
    assert_eq!(usage(&server), (500, 0));
    assert!(versions(&server, "/b/f").is_empty());
    fsck_clean(&server);
}

#[test]
fn kill_during_a_version_making_overwrite_leaves_old_or_new_and_fsck_clean() {
    require("curl");
    let mut server = Server::plain();
    setup(&server);
    assert_eq!(server.put("b/doc", b"version one"), 201);
    // the next journaled commit of the server dies between its storage steps and its COMMIT
    server.stop();
    server.set_env("KURA_TEST_CRASH_AFTER_STEPS", "1");
    server.start_again();
    let _ = server.put("b/doc", b"version two, never committed");
    assert!(
        server.exits_within(Duration::from_secs(30)),
        "the crash hook never fired:\n{}",
        server.log()
    );
    server.set_env("KURA_TEST_CRASH_AFTER_STEPS", "");
    server.start_again();
    // undone at start: the old current, no version, nothing left in versions/ or tmp/
    assert_eq!(server.get("b/doc"), b"version one");
    assert!(versions(&server, "/b/doc").is_empty());
    assert!(tree(&server.data_dir().join("versions")).is_empty());
    assert!(tree(&server.data_dir().join("tmp")).is_empty());
    fsck_clean(&server);
    // and the same overwrite, not interrupted, keeps the old bytes as a version
    assert_eq!(server.put("b/doc", b"version two"), 204);
    assert_eq!(versions(&server, "/b/doc").len(), 1);
    run(server.kura().args(["restore", "/b/doc"]));
    assert_eq!(server.get("b/doc"), b"version one");
    fsck_clean(&server);
    // a delete into the trash killed before its COMMIT: the file stays, the trash is empty
    server.stop();
    server.set_env("KURA_TEST_CRASH_AFTER_STEPS", "1");
    server.start_again();
    let _ = server.status(&["-X", "DELETE", &server.dav("b/doc")]);
    assert!(
        server.exits_within(Duration::from_secs(30)),
        "the crash hook never fired:\n{}",
        server.log()
    );
    server.set_env("KURA_TEST_CRASH_AFTER_STEPS", "");
    server.start_again();
    assert_eq!(server.get("b/doc"), b"version one");
    assert!(trash(&server).is_empty());
    fsck_clean(&server);
}

/// A call to the admin API: (status, body).
fn api(server: &Server, auth: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = server.url(&format!("/api/v1{path}"));
    let mut args: Vec<&str> = vec!["-X", method, "-w", "\n%{http_code}", "-u", auth];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    args.push(&url);
    let out = server.curl(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

#[test]
fn the_admin_api_lists_restores_and_sets_policy_and_refuses_the_rest() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    server.add_user("eve", "eve-pw", &["--group", "g"]);
    let admin = format!("admin:{}", crate::common::ADMIN_PW);
    assert_eq!(server.put("b/f.txt", b"one"), 201);
    assert_eq!(server.put("b/f.txt", b"two!"), 204);
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("b/f.txt")]),
        204
    );

    let (s, body) = api(&server, &admin, "GET", "/versions?path=/b/f.txt", None);
    assert_eq!(s, 200, "{body}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    assert_eq!(v.len(), 3, "{body}");
    let (s, body) = api(&server, &admin, "GET", "/trash?bucket=b", None);
    assert_eq!(s, 200, "{body}");
    assert!(body.contains(r#""path":"/b/f.txt""#), "{body}");

    // a member of the bucket's group who is no administrator: refused, nothing restored
    for (m, p, b) in [
        ("GET", "/versions?path=/b/f.txt", None),
        ("GET", "/trash", None),
        ("DELETE", "/trash", None),
        ("POST", "/versions/prune", None),
        ("POST", "/restore", Some(r#"{"path":"/b/f.txt"}"#)),
        (
            "PUT",
            "/buckets/b/policy",
            Some(r#"{"trash_secs":0,"keep_versions":0,"keep_secs":0,"purge_first":true}"#),
        ),
    ] {
        let (s, body) = api(&server, "eve:eve-pw", m, p, b);
        assert_eq!(s, 403, "{m} {p}: {body}");
    }
    assert_eq!(server.status(&["-I", &server.dav("b/f.txt")]), 404);
    // hostile input: another path's version, a path escaping the tree, unknown fields,
    // negative retentions, an unknown bucket
    let first = v.iter().find(|x| x["size"] == 3).expect("v1")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let other = format!(r#"{{"path":"/b/g.txt","version":"{first}"}}"#);
    assert_eq!(
        api(&server, &admin, "POST", "/restore", Some(&other)).0,
        404
    );
    let escape = r#"{"path":"/b/f.txt","to":"/b/../../etc/passwd"}"#;
    assert_eq!(
        api(&server, &admin, "POST", "/restore", Some(escape)).0,
        400
    );
    let extra = r#"{"path":"/b/f.txt","force":true}"#;
    assert_eq!(api(&server, &admin, "POST", "/restore", Some(extra)).0, 400);
    let negative = r#"{"trash_secs":-1,"keep_versions":null,"keep_secs":null,"purge_first":false}"#;
    assert_eq!(
        api(&server, &admin, "PUT", "/buckets/b/policy", Some(negative)).0,
        400
    );
    let fine = r#"{"trash_secs":60,"keep_versions":5,"keep_secs":null,"purge_first":false}"#;
    assert_eq!(
        api(&server, &admin, "PUT", "/buckets/nope/policy", Some(fine)).0,
        404
    );
    assert_eq!(server.status(&["-I", &server.dav("b/f.txt")]), 404);

    // the first version, by id, at another name; then the policy
    let req = format!(r#"{{"path":"/b/f.txt","version":"{first}","to":"/b/back.txt"}}"#);
    let (s, body) = api(&server, &admin, "POST", "/restore", Some(&req));
    assert_eq!(s, 200, "{body}");
    assert_eq!(server.get("b/back.txt"), b"one");
    let (s, body) = api(&server, &admin, "PUT", "/buckets/b/policy", Some(fine));
    assert_eq!(s, 200, "{body}");
    let (s, body) = api(&server, &admin, "GET", "/buckets/b/policy", None);
    assert_eq!(
        (s, body.contains(r#""keep_versions":5"#)),
        (200, true),
        "{body}"
    );
    let (s, body) = api(&server, &admin, "DELETE", "/trash?bucket=b", None);
    assert_eq!(s, 200, "{body}");
    let (s, body) = api(&server, &admin, "GET", "/trash", None);
    assert_eq!((s, body.as_str()), (200, "[]"));
    fsck_clean(&server);
}
