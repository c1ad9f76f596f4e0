//! Issue 13, written as the attacks: anonymous S3 memory exhaustion, stored XSS through user
//! files, CSRF and browser credentials on the admin API, SigV2 replays and long-lived presigned
//! URLs, and share download limits dodged with ranges.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{code, require, run, S3Key, Server, ADMIN_PW};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/conformance/hardening_s3.py"
);

/// Response headers and status of an anonymous curl request (lower-cased).
fn headers(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["-o", "/dev/null", "-D", "-"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&server.curl(&all).stdout).to_lowercase()
}

fn status(server: &Server, args: &[&str]) -> u16 {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    code(&server.curl(&all))
}

/// Runs hardening_s3.py and returns its JSON answer.
fn s3py(server: &Server, args: &[&str]) -> serde_json::Value {
    let out = run(Command::new("python3")
        .arg(SCRIPT)
        .args(&args[..1])
        .arg(server.port.to_string())
        .args(&args[1..]));
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

/// A new share link (`kura share create ARGS --json`) on this server's address.
fn share_link(server: &Server, args: &[&str]) -> String {
    let out = run(server
        .kura()
        .args(["share", "create"])
        .args(args)
        .arg("--json"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    server.url(&format!("/s/{}", v["token"].as_str().expect("token")))
}

/// A GET of `obj` in `bkt` through a SigV4 presigned URL (boto3), maybe asking for a type.
fn presigned_get(
    server: &Server,
    key: &S3Key,
    obj: &str,
    asked: Option<&str>,
) -> serde_json::Value {
    let mut a = vec!["presign4", &key.id, &key.secret, "bkt", obj, "600"];
    a.extend(asked);
    s3py(server, &a)
}

fn bucket_with_files(server: &Server) {
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "bkt", "--group", "g"]));
    assert_eq!(
        server.put("bkt/page.html", b"<script>alert(document.domain)</script>"),
        201
    );
    assert_eq!(
        server.put("bkt/notes.txt", b"<script>alert(1)</script>"),
        201
    );
}

/// A form POST carries its signature in its fields, so those (at most 64 KiB before the file
/// part) are read; the file part of an unsigned one never is (s3/post.rs).
#[test]
fn unsigned_s3_post_is_refused_before_its_body_is_read() {
    require("curl");
    let server = Server::plain();
    bucket_with_files(&server);
    let big = server.root.path().join("big.bin");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(300 * 1024 * 1024).expect("size");
    let before = server.vm_hwm_kib();
    let form = format!("file=@{}", big.display());
    let url = server.url("/bkt/");
    // with `Expect: 100-continue` (curl's default for large bodies) the refusal comes first
    let t = Instant::now();
    let with_expect = status(
        &server,
        &["--max-time", "60", "-F", "key=x", "-F", &form, &url],
    );
    let first = t.elapsed();
    // without it the client pushes the body anyway: the server must not take it in
    let t = Instant::now();
    let out = server.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "60",
        "-H",
        "Expect:",
        "-F",
        "key=x",
        "-F",
        &form,
        &url,
    ]);
    let second = t.elapsed();
    let pushed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let after = server.vm_hwm_kib();
    println!(
        "unsigned 300 MiB POST: {with_expect} in {first:?}; without Expect: {pushed} in {second:?}; VmHWM {before} -> {after} KiB"
    );
    assert_eq!(with_expect, 403);
    assert!(first < Duration::from_secs(5), "{first:?}");
    // the answer is 403, or the connection was closed under the sender (curl reports 000)
    assert!(pushed == "403" || pushed == "000", "{pushed}");
    assert!(second < Duration::from_secs(20), "{second:?}");
    assert!(
        after < before + 32 * 1024,
        "VmHWM grew from {before} to {after} KiB"
    );
    // the server is unharmed and nothing was stored
    assert_eq!(status(&server, &[&server.url("/healthz")]), 200);
    assert_eq!(server.status(&["-I", &server.dav("bkt/x")]), 404);
}

#[test]
fn browser_rendered_files_are_sandboxed_on_every_path() {
    require("curl");
    require("python3");
    let server = Server::plain();
    bucket_with_files(&server);
    let auth = format!("admin:{ADMIN_PW}");
    let sandboxed = |h: &str| {
        h.contains("content-security-policy: sandbox")
            && h.contains("x-content-type-options: nosniff")
    };
    // WebDAV GET
    let h = headers(&server, &["-u", &auth, &server.dav("bkt/page.html")]);
    assert!(h.starts_with("http/1.1 200") && sandboxed(&h), "{h}");
    let h = headers(&server, &["-u", &auth, &server.dav("bkt/notes.txt")]);
    assert!(h.contains("x-content-type-options: nosniff"), "{h}");
    // S3 GetObject, signed and presigned; response-content-type cannot make a page of text
    let key = server.s3_key();
    let v = presigned_get(&server, &key, "page.html", None);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["csp"], "sandbox", "{v}");
    assert_eq!(v["nosniff"], "nosniff", "{v}");
    let v = presigned_get(&server, &key, "notes.txt", Some("text/html"));
    assert_eq!(v["status"], 200, "{v}");
    let ct = v["content_type"].as_str().unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "{v}");
    assert_eq!(v["csp"], "sandbox", "{v}");
    let v = presigned_get(&server, &key, "notes.txt", Some("image/png"));
    assert_eq!(
        v["content_type"], "image/png",
        "a harmless type may still be asked for: {v}"
    );
    // a share link
    let h = headers(&server, &[&share_link(&server, &["/bkt/page.html"])]);
    assert!(h.starts_with("http/1.1 200") && sandboxed(&h), "{h}");
}

#[test]
fn admin_api_refuses_cross_site_posts_and_browser_basic_credentials() {
    require("curl");
    let server = Server::plain();
    let api = server.url("/api/v1/users");
    let auth = format!("admin:{ADMIN_PW}");
    let body = r#"{"name":"mallory","admin":true}"#;
    let post = |extra: &[&str]| {
        let mut a = vec!["-u", auth.as_str(), "-X", "POST", "--data-binary", body];
        a.extend_from_slice(extra);
        a.push(&api);
        status(&server, &a)
    };
    // a cross-site form or text/plain post, as a page elsewhere would send it
    assert_eq!(post(&["-H", "Content-Type: text/plain"]), 400);
    assert_eq!(
        post(&["-H", "Content-Type: application/x-www-form-urlencoded"]),
        400
    );
    // Basic credentials sent by a browser, even same-origin (a stored page on this origin)
    let same = format!("Origin: http://127.0.0.1:{}", server.port);
    let json = "Content-Type: application/json";
    assert_eq!(
        post(&[
            "-H",
            json,
            "-H",
            "Sec-Fetch-Site: same-origin",
            "-H",
            "Sec-Fetch-Mode: cors"
        ]),
        403
    );
    assert_eq!(post(&["-H", json, "-H", &same]), 403);
    // a foreign Origin, even with a token
    let token = server.api_token();
    let bearer = format!("Authorization: Bearer {token}");
    let st = status(
        &server,
        &[
            "-H",
            &bearer,
            "-H",
            "Origin: https://evil.example",
            "-H",
            json,
            "-X",
            "POST",
            "--data-binary",
            body,
            &api,
        ],
    );
    assert_eq!(st, 403);
    let users =
        String::from_utf8_lossy(&run(server.kura().args(["user", "list"])).stdout).into_owned();
    assert!(!users.contains("mallory"), "{users}");
    // scripts still work: Basic without browser headers, a token from the same origin
    assert_eq!(post(&["-H", json]), 201);
    let st = status(&server, &["-H", &bearer, "-H", &same, &api]);
    assert_eq!(st, 200);
}

#[test]
fn sigv2_replays_and_week_long_presigned_urls_are_refused() {
    require("python3");
    let server = Server::plain();
    bucket_with_files(&server);
    let key = server.s3_key();
    let sig2 = |date: &str| {
        s3py(
            &server,
            &["sigv2", &key.id, &key.secret, "bkt", "notes.txt", date],
        )
    };
    let now = httpdate_now();
    assert_eq!(sig2(&now)["status"], 200);
    let v = sig2("Fri, 06 Nov 2015 08:49:37 GMT");
    assert_eq!(v["status"], 403, "{v}");
    assert!(
        v["body"]
            .as_str()
            .is_some_and(|b| b.contains("RequestTimeTooSkewed")),
        "{v}"
    );
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let pre2 = |expires: u64| {
        s3py(
            &server,
            &[
                "presign2",
                &key.id,
                &key.secret,
                "bkt",
                "notes.txt",
                &expires.to_string(),
            ],
        )
    };
    assert_eq!(pre2(epoch + 600)["status"], 200);
    assert_eq!(
        pre2(4_102_444_800)["status"],
        403,
        "an URL valid until 2100"
    );
    let pre4 = |secs: &str| {
        s3py(
            &server,
            &["presign4", &key.id, &key.secret, "bkt", "notes.txt", secs],
        )
    };
    assert_eq!(pre4("604800")["status"], 200);
    let v = pre4("604801");
    assert_eq!(v["status"], 400, "{v}");
    assert!(
        v["body"]
            .as_str()
            .is_some_and(|b| b.contains("AuthorizationQueryParametersError")),
        "{v}"
    );
}

/// Now as an IMF-fixdate, from the `date` command.
fn httpdate_now() -> String {
    let out = run(Command::new("date").args(["-u", "+%a, %d %b %Y %H:%M:%S GMT"]));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn share_download_limit_counts_ranges() {
    require("curl");
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__SHARE_REQUESTS_PER_SECOND", "1000"),
            ("KURA_LIMITS__SHARE_BURST", "1000"),
        ],
    );
    bucket_with_files(&server);
    let link = |max: &str| share_link(&server, &["/bkt/notes.txt", "--max-downloads", max]);
    // `Range: bytes=1-` over and over: each pass is a download
    let u = link("1");
    assert_eq!(status(&server, &["-r", "1-", &u]), 206);
    assert_eq!(status(&server, &["-r", "1-", &u]), 410);
    // a download resumed in pieces counts once
    let u = link("2");
    assert_eq!(status(&server, &["-r", "0-9", &u]), 206);
    assert_eq!(status(&server, &["-r", "10-", &u]), 206);
    assert_eq!(status(&server, &[&u]), 200);
    assert_eq!(status(&server, &["-r", "0-9", &u]), 410);
}
