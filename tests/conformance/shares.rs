//! Share links end to end against a real server: files with ranges and UTF-8 names, folders
//! (listing, files inside, streamed zip), drop boxes under a quota, expiry, exhaustion under
//! concurrency, revocation, passwords, traversal, permissions revoked after sharing; and the
//! limits: per-address request rate, bandwidth cap, failed-authentication throttling on every
//! entry point, trusted proxies. Measured figures are printed (run with --show-output).

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{code, require, run, Server, ADMIN_PW};

/// Generous request limits for the functional tests (the limiter has its own test).
const ROOMY: &[(&str, &str)] = &[
    ("KURA_LIMITS__SHARE_REQUESTS_PER_SECOND", "1000"),
    ("KURA_LIMITS__SHARE_BURST", "1000"),
];

fn kura_in(server: &Server, args: &[&str], input: Option<&str>) -> Output {
    let mut c = server.kura();
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run kura");
    if let Some(i) = input {
        child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(i.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("kura output")
}

/// `kura share create ... --json`; returns (id, token, url).
/// The group `g` and its bucket `b`, which most tests here share files of.
fn group_g_bucket_b(server: &Server) {
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "b", "--group", "g"]));
}

fn share(server: &Server, args: &[&str], password: Option<&str>) -> (String, String, String) {
    let mut all = vec!["share", "create"];
    all.extend_from_slice(args);
    all.push("--json");
    let input = password.map(|p| format!("{p}\n"));
    if password.is_some() {
        all.push("--password");
    }
    let out = kura_in(server, &all, input.as_deref());
    assert!(
        out.status.success(),
        "share create {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let s = |k: &str| v[k].as_str().expect(k).to_string();
    (
        v["share"]["id"].as_str().expect("id").to_string(),
        s("token"),
        s("url"),
    )
}

fn share_fails(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["share", "create"];
    all.extend_from_slice(args);
    let out = kura_in(server, &all, None);
    assert!(!out.status.success(), "share create {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn add_user(server: &Server, name: &str, pw: &str, group: &str) {
    // the group may exist already; `user add --group` never creates one
    let _ = server.kura().args(["group", "add", group]).output();
    let out = kura_in(
        server,
        &["user", "add", name, "--password-stdin", "--group", group],
        Some(&format!("{pw}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Status of an anonymous request.
fn st(server: &Server, args: &[&str]) -> u16 {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    code(&server.curl(&all))
}

/// Body and status of an anonymous request.
fn fetch(server: &Server, args: &[&str]) -> (u16, Vec<u8>) {
    let mut all = vec!["-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let out = server.curl(&all).stdout;
    let cut = out.iter().rposition(|b| *b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&out[cut + 1..])
        .trim()
        .parse()
        .expect("status");
    (status, out[..cut].to_vec())
}

/// Response headers of an anonymous request (lower-cased names).
fn head(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["-o", "/dev/null", "-D", "-"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&server.curl(&all).stdout).to_lowercase()
}

fn s_url(server: &Server, token: &str, rest: &str) -> String {
    server.url(&format!("/s/{token}{rest}"))
}

#[test]
fn shared_file_ranges_names_limits_expiry_revocation_and_passwords() {
    require("curl");
    let server = Server::start_with(false, ROOMY);
    group_g_bucket_b(&server);
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(server.put("b/Gr%C3%BC%C3%9Fe%20%E2%82%AC.bin", &body), 201);
    let path = "/b/Grüße €.bin";

    let (id, token, url) = share(&server, &[path], None);
    assert!(url.ends_with(&format!("/s/{token}")), "{url}");
    assert!(token.len() >= 22, "at least 128 random bits");
    let u = s_url(&server, &token, "");
    let (s, got) = fetch(&server, &[&u]);
    assert_eq!((s, got.len()), (200, body.len()));
    assert_eq!(got, body);
    let h = head(&server, &["-I", &u]);
    assert!(h.contains("content-length: 100000"), "{h}");
    assert!(h.contains("accept-ranges: bytes"), "{h}");
    assert!(
        h.contains("content-disposition: attachment; filename=\"gr__e _.bin\"; filename*=utf-8''gr%c3%bc%c3%9fe%20%e2%82%ac.bin"),
        "{h}"
    );
    let (s, part) = fetch(&server, &["-r", "1000-1999", &u]);
    assert_eq!(s, 206);
    assert_eq!(part, body[1000..2000]);
    assert_eq!(st(&server, &["-r", "200000-", &u]), 416);
    // a file share has nothing below it; unknown and revoked tokens are 404
    assert_eq!(st(&server, &[&s_url(&server, &token, "/x")]), 404);
    let unknown = "A".repeat(token.len());
    assert_eq!(st(&server, &[&s_url(&server, &unknown, "")]), 404);
    let listed =
        String::from_utf8_lossy(&run(server.kura().args(["share", "list"])).stdout).into_owned();
    assert!(listed.contains(&id) && !listed.contains(&token), "{listed}");
    run(server.kura().args(["share", "revoke", &id]));
    assert_eq!(st(&server, &[&u]), 404);

    // downloads: a client's first range or whole GET counts, HEAD and ranges continuing it
    // (up to the file's size) do not; exact under concurrency (docs/shares.md)
    let (_, token, _) = share(&server, &[path, "--max-downloads", "2"], None);
    let u = s_url(&server, &token, "");
    assert_eq!(st(&server, &["-I", &u]), 200);
    assert_eq!(st(&server, &["-r", "0-20", &u]), 206);
    assert_eq!(st(&server, &["-r", "21-", &u]), 206);
    assert_eq!(st(&server, &[&u]), 200);
    assert_eq!(st(&server, &[&u]), 410);
    assert_eq!(st(&server, &["-I", &u]), 410);
    let (_, token, _) = share(&server, &[path, "--max-downloads", "5"], None);
    let u = s_url(&server, &token, "");
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let mut c = Command::new("curl");
            c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", &u]);
            std::thread::spawn(move || code(&c.output().expect("curl")))
        })
        .collect();
    let codes: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect();
    let ok = codes.iter().filter(|c| **c == 200).count();
    let gone = codes.iter().filter(|c| **c == 410).count();
    println!("shares: 20 concurrent downloads of a 5-download link: {ok} served, {gone} gone");
    assert_eq!((ok, gone), (5, 15), "{codes:?}");

    // expiry
    let (_, token, _) = share(&server, &[path, "--expires", "2s"], None);
    let u = s_url(&server, &token, "");
    assert_eq!(st(&server, &[&u]), 200);
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(st(&server, &[&u]), 410);

    // passwords: Basic for programs, a form and a cookie for browsers
    let (_, token, _) = share(&server, &[path], Some("open sesame"));
    let u = s_url(&server, &token, "");
    let h = head(&server, &[&u]);
    assert!(h.starts_with("http/1.1 401"), "{h}");
    assert!(h.contains("www-authenticate: basic"), "{h}");
    let (s, page) = fetch(&server, &["-H", "Accept: text/html", &u]);
    assert_eq!(s, 401);
    assert!(String::from_utf8_lossy(&page).contains("type=\"password\""));
    assert_eq!(st(&server, &["-u", "x:wrong", &u]), 401);
    assert_eq!(st(&server, &["-u", "x:open sesame", &u]), 200);
    let jar = server.root.path().join("jar.txt");
    let jar = jar.to_str().expect("utf8");
    let h = head(
        &server,
        &["-c", jar, "--data-urlencode", "password=open sesame", &u],
    );
    assert!(h.starts_with("http/1.1 303"), "{h}");
    assert!(h.contains("set-cookie: kura_share_"), "{h}");
    let (s, got) = fetch(&server, &["-b", jar, &u]);
    assert_eq!((s, got.len()), (200, body.len()));
    let h = head(&server, &["--data-urlencode", "password=nope", &u]);
    assert!(h.starts_with("http/1.1 401"), "{h}");

    // only what the owner may read; drop boxes only on folders
    assert!(share_fails(&server, &["/b/missing"]).contains("not found"));
    assert!(share_fails(&server, &[path, "--upload-only"]).contains("folder"));
}

#[test]
fn shared_folder_listing_zip_traversal_and_permission_revoked_later() {
    require("curl");
    require("python3");
    let server = Server::start_with(false, ROOMY);
    add_user(&server, "ann", "ann-pw", "fam");
    run(server
        .kura()
        .args(["bucket", "create", "fam", "--group", "fam"]));
    for d in ["fam/docs", "fam/docs/sub", "fam/private"] {
        assert_eq!(server.status(&["-X", "MKCOL", &server.dav(d)]), 201);
    }
    assert_eq!(server.put("fam/docs/a.txt", b"alpha"), 201);
    assert_eq!(server.put("fam/docs/sub/b%20c.txt", b"bravo charlie"), 201);
    assert_eq!(server.put("fam/private/secret.txt", b"TOP-SECRET"), 201);
    assert_eq!(server.put("fam/top.txt", b"TOP-LEVEL"), 201);

    let (_, token, _) = share(&server, &["/fam/docs", "--as", "ann"], None);
    let (s, json) = fetch(
        &server,
        &[
            "-H",
            "Accept: application/json",
            &s_url(&server, &token, ""),
        ],
    );
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_slice(&json).expect("json listing");
    let names: Vec<&str> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["a.txt", "sub"]);
    let (s, html) = fetch(&server, &[&s_url(&server, &token, "/sub/")]);
    assert_eq!(s, 200);
    let html = String::from_utf8_lossy(&html);
    assert!(
        html.contains(&format!("href=\"/s/{token}/sub/b%20c.txt\"")),
        "{html}"
    );
    let (s, got) = fetch(&server, &[&s_url(&server, &token, "/sub/b%20c.txt")]);
    assert_eq!((s, got.as_slice()), (200, b"bravo charlie".as_slice()));

    // no way out of the shared folder
    for bad in [
        "/../",
        "/..",
        "/../private/secret.txt",
        "/%2e%2e/private/secret.txt",
        "/sub/../../top.txt",
        "/..%2ftop.txt",
        "/./a.txt",
    ] {
        let (s, body) = fetch(&server, &[&s_url(&server, &token, bad)]);
        assert!(s == 400 || s == 404, "{bad}: {s}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("TOP-"), "{bad} leaked: {text}");
    }

    // the streamed zip holds every file, checked by Python's zipfile (CRCs included)
    let zip = fetch_zip(&server, &token);
    let out = run(Command::new("python3").arg("-c").arg(format!(
        "import zipfile; z = zipfile.ZipFile({:?}); assert z.testzip() is None; print(sorted((i.filename, z.read(i).decode()) for i in z.infolist()))",
        zip.to_str().expect("utf8")
    )));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[('a.txt', 'alpha'), ('sub/b c.txt', 'bravo charlie')]"
    );

    // the owner loses access: the link stops serving at once, listing, files and zip alike
    run(server.kura().args(["chmod", "700", "/fam/docs"]));
    for rest in ["", "/a.txt", "/sub/b%20c.txt", "?zip"] {
        assert_eq!(st(&server, &[&s_url(&server, &token, rest)]), 403, "{rest}");
    }
    run(server.kura().args(["chmod", "775", "/fam/docs"]));
    assert_eq!(st(&server, &[&s_url(&server, &token, "/a.txt")]), 200);
    // ann may not share what she cannot read
    run(server.kura().args(["chmod", "700", "/fam/private"]));
    assert!(share_fails(&server, &["/fam/private", "--as", "ann"]).contains("may not"));
}

/// Issue 13 L3: a zip of a shared folder listed files inside a subfolder its owner may enter
/// (x) but not list (r).
#[test]
fn a_zip_holds_only_what_its_owner_may_list() {
    require("curl");
    require("python3");
    let server = Server::start_with(false, ROOMY);
    add_user(&server, "ann", "ann-pw", "fam");
    run(server
        .kura()
        .args(["bucket", "create", "fam", "--group", "fam"]));
    for d in ["fam/docs", "fam/docs/blind"] {
        assert_eq!(server.status(&["-X", "MKCOL", &server.dav(d)]), 201);
    }
    assert_eq!(server.put("fam/docs/a.txt", b"alpha"), 201);
    assert_eq!(server.put("fam/docs/blind/hidden.txt", b"HIDDEN"), 201);
    run(server.kura().args(["chown", "ann", "/fam/docs/blind"]));
    run(server.kura().args(["chmod", "100", "/fam/docs/blind"]));
    let (_, token, _) = share(&server, &["/fam/docs", "--as", "ann"], None);
    let zip = fetch_zip(&server, &token);
    let out = run(Command::new("python3").arg("-c").arg(format!(
        "import zipfile; z = zipfile.ZipFile({:?}); print(sorted(i.filename for i in z.infolist()))",
        zip.to_str().expect("utf8")
    )));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "['a.txt']");
}

/// A server with the user ann in the group fam, which owns the bucket fam.
fn fam_server() -> Server {
    let server = Server::start_with(false, ROOMY);
    add_user(&server, "ann", "ann-pw", "fam");
    run(server
        .kura()
        .args(["bucket", "create", "fam", "--group", "fam"]));
    server
}

/// A folder its owner may list but not enter (`r` without `x`): its zip is refused with 403
/// before anything is sent or counted, never a 200 with an empty, broken body.
#[test]
fn a_zip_of_a_folder_its_owner_may_not_enter_is_refused() {
    require("curl");
    let server = fam_server();
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("fam/shut")]),
        201
    );
    assert_eq!(server.put("fam/shut/inside.txt", b"inside"), 201);
    // ann is in the group: read without enter
    run(server.kura().args(["chmod", "740", "/fam/shut"]));
    let (_, token, _) = share(
        &server,
        &["/fam", "--as", "ann", "--max-downloads", "1"],
        None,
    );
    let (s, body) = fetch(&server, &[&s_url(&server, &token, "/shut/?zip")]);
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&body));
    // the refused zip did not use up the one download
    let (s, _) = fetch(
        &server,
        &[&s_url(&server, &token, "?zip"), "-o", "/dev/null"],
    );
    assert_eq!(s, 200);
}

#[test]
fn drop_box_adds_files_under_the_quota_and_never_overwrites() {
    require("curl");
    let server = fam_server();
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("fam/inbox")]),
        201
    );
    assert_eq!(server.put("fam/inbox/existing.txt", b"keep me"), 201);
    run(server
        .kura()
        .args(["quota", "set", "fam", "--bytes", "1000"]));
    let (_, token, _) = share(
        &server,
        &["/fam/inbox", "--upload-only", "--as", "ann"],
        None,
    );

    let (s, page) = fetch(&server, &[&s_url(&server, &token, "")]);
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&page).contains("type=\"file\""));
    let f = server.root.path().join("up.txt");
    std::fs::write(&f, vec![b'u'; 200]).expect("write");
    let f = f.to_str().expect("utf8");
    assert_eq!(
        st(&server, &["-T", f, &s_url(&server, &token, "/report.txt")]),
        201
    );
    assert_eq!(server.get("fam/inbox/report.txt"), vec![b'u'; 200]);
    // plain POST too; never over an existing file
    assert_eq!(
        st(
            &server,
            &[
                "--data-binary",
                &format!("@{f}"),
                &s_url(&server, &token, "/posted.txt")
            ]
        ),
        201
    );
    assert_eq!(
        st(
            &server,
            &["-T", f, &s_url(&server, &token, "/existing.txt")]
        ),
        409
    );
    assert_eq!(server.get("fam/inbox/existing.txt"), b"keep me");
    // the owner's group pays: over the quota nothing is stored
    let big = server.root.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 2000]).expect("write");
    assert_eq!(
        st(
            &server,
            &[
                "-T",
                big.to_str().expect("utf8"),
                &s_url(&server, &token, "/big.bin")
            ]
        ),
        507
    );
    assert_eq!(
        server.status(&["-I", &server.dav("fam/inbox/big.bin")]),
        404
    );
    let usage =
        String::from_utf8_lossy(&run(server.kura().args(["usage", "fam"])).stdout).into_owned();
    assert!(usage.contains("fam\t407\t1000\t3\t"), "{usage}");
    // nothing can be read back or listed through a drop box, and no folders or paths
    assert_eq!(st(&server, &[&s_url(&server, &token, "/report.txt")]), 405);
    assert_eq!(
        st(
            &server,
            &[
                "-H",
                "Accept: application/json",
                &s_url(&server, &token, "/")
            ]
        ),
        200
    );
    assert_eq!(
        st(&server, &["-T", f, &s_url(&server, &token, "/a/b.txt")]),
        400
    );
    assert_eq!(
        st(&server, &["-T", f, &s_url(&server, &token, "/../x.txt")]),
        400
    );
}

#[test]
fn zip_of_300_mib_folder_streams_in_bounded_memory() {
    require("curl");
    require("python3");
    let server = Server::start_with(false, ROOMY);
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "big", "--group", "g"]));
    let src = tempfile::tempdir().expect("dir");
    for i in 0..3 {
        let f = src.path().join(format!("part{i}.bin"));
        run(Command::new("sh").arg("-c").arg(format!(
            "head -c {} /dev/urandom > '{}'",
            100 << 20,
            f.display()
        )));
        assert_eq!(
            server.status(&[
                "-T",
                f.to_str().expect("utf8"),
                &server.dav(&format!("big/part{i}.bin"))
            ]),
            201
        );
    }
    let (_, token, _) = share(&server, &["/big"], None);
    let zip = src.path().join("all.zip");
    let t = Instant::now();
    let (s, _) = fetch(
        &server,
        &[
            "-o",
            zip.to_str().expect("utf8"),
            &s_url(&server, &token, "?zip"),
        ],
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(s, 200);
    let size = std::fs::metadata(&zip).expect("zip").len();
    let out = run(Command::new("python3").arg("-c").arg(format!(
        "import zipfile; z = zipfile.ZipFile({:?}); assert z.testzip() is None; print(sum(i.file_size for i in z.infolist()), len(z.infolist()))",
        zip.to_str().expect("utf8")
    )));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{} 3", 300 << 20)
    );
    let hwm = server.vm_hwm_kib();
    println!(
        "shares: zip of a 300 MiB folder ({size} bytes) streamed at {:.0} MiB/s; server peak RSS (VmHWM) {} MiB",
        300.0 / secs,
        hwm / 1024
    );
    assert!(hwm < 200 * 1024, "server peak RSS {hwm} KiB");
}

fn load_script() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/share_load.py"
    )
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn per_address_limiter_admits_the_configured_rate() {
    require("python3");
    const RATE: f64 = 200.0;
    // a burst of half a second's worth: a client thread stalled by a busy machine for less than
    // that loses no allowance, so the measure is the limiter's, not the scheduler's
    const BURST: f64 = 100.0;
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__SHARE_REQUESTS_PER_SECOND", "200"),
            ("KURA_LIMITS__SHARE_BURST", "100"),
        ],
    );
    group_g_bucket_b(&server);
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("b/d")]), 201);
    assert_eq!(server.put("b/d/f.txt", b"hello"), 201);
    let (_, token, _) = share(&server, &["/b/d"], None);
    // 2,000 requests over 4 s from 127.0.0.1 (2.5 times the rate), 10/s from 127.0.0.2
    let out = run(Command::new("python3").args([
        load_script(),
        "rate",
        &server.port.to_string(),
        &format!("/s/{token}/"),
        "4",
        "500",
    ]));
    let v = json_of(&out);
    let n = |side: &str, k: &str| v[side][k].as_f64().unwrap_or(0.0);
    let elapsed = v["elapsed"].as_f64().expect("elapsed");
    let (admitted, refused) = (n("main", "200"), n("main", "429"));
    let rate = (admitted - BURST) / elapsed;
    println!(
        "shares: per-address limiter: {} requests in {elapsed:.2} s from 127.0.0.1, {admitted} admitted ({rate:.1}/s after the burst of {BURST}, configured {RATE}/s), {refused} refused with 429; 127.0.0.2: {} of {} served",
        admitted + refused,
        n("other", "200"),
        n("other", "200") + n("other", "429")
    );
    assert!(admitted + refused >= 1900.0, "{v}");
    // never more than the rate; fewer only when the loaded client sends too slowly to fill it
    // (CI shares two cores: 167.8/s was seen with 1,143 refused)
    assert!(
        (RATE * 0.7..=RATE * 1.10).contains(&rate),
        "admitted {rate}/s, configured {RATE}/s"
    );
    assert_eq!(n("other", "429"), 0.0, "{v}");
    assert!(n("other", "200") >= 35.0, "{v}");
}

#[test]
fn bandwidth_cap_paces_a_download() {
    require("curl");
    const CAP: f64 = 1024.0 * 1024.0;
    let server = Server::start_with(false, &[("KURA_LIMITS__SHARE_BYTES_PER_SECOND", "1048576")]);
    group_g_bucket_b(&server);
    let body = vec![b'z'; 5 << 20];
    assert_eq!(server.put("b/five.bin", &body), 201);
    let (_, token, _) = share(&server, &["/b/five.bin"], None);
    let t = Instant::now();
    let (s, got) = fetch(&server, &[&s_url(&server, &token, "")]);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!((s, got.len()), (200, body.len()));
    let rate = body.len() as f64 / secs;
    println!(
        "shares: bandwidth cap {:.0} KiB/s, measured {:.0} KiB/s over 5 MiB ({secs:.2} s)",
        CAP / 1024.0,
        rate / 1024.0
    );
    // never faster than the cap; slower only by what a loaded machine takes (CI shares two
    // cores: 853 KiB/s was seen with the pacing right)
    assert!(
        (CAP * 0.6..=CAP * 1.15).contains(&rate),
        "{rate} B/s against a cap of {CAP}"
    );
    // WebDAV is not paced
    let t = Instant::now();
    assert_eq!(server.get("b/five.bin").len(), body.len());
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn failed_authentication_is_throttled_on_every_entry_point() {
    require("curl");
    require("python3");
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__AUTH_FAILURES", "5"),
            ("KURA_LIMITS__AUTH_FAILURES_PER_IP", "40"),
            ("KURA_LIMITS__AUTH_FAILURE_WINDOW_SECONDS", "300"),
            ("KURA_LIMITS__SHARE_REQUESTS_PER_SECOND", "1000"),
            ("KURA_LIMITS__SHARE_BURST", "1000"),
            ("KURA_LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
        ],
    );
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "bkt", "--group", "g"]));
    assert_eq!(server.put("bkt/f.txt", b"shared"), 201);
    let (_, token, _) = share(&server, &["/bkt/f.txt"], Some("right-pw"));

    // share password: 200 guesses from 127.0.0.1, then the right one from there and elsewhere
    let out = run(Command::new("python3").args([
        load_script(),
        "brute",
        &server.port.to_string(),
        &format!("/s/{token}"),
        "200",
        "guess",
        "right-pw",
    ]));
    let v = json_of(&out);
    let statuses: Vec<u64> = v["statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .map(|s| s.as_u64().expect("status"))
        .collect();
    let first_429 = statuses.iter().position(|s| *s == 429).expect("throttled");
    println!(
        "shares: password brute force: {} attempts in {:.2} s, throttled from attempt {} on (Retry-After {} s); right password from the same address {}, from 127.0.0.2 {}",
        statuses.len(),
        v["elapsed"].as_f64().unwrap_or(0.0),
        first_429 + 1,
        v["retry_after"].as_str().unwrap_or("-"),
        v["right_same_ip"],
        v["right_other_ip"]
    );
    assert_eq!(first_429, 5, "{statuses:?}");
    assert!(statuses[..5].iter().all(|s| *s == 401));
    assert!(statuses[5..].iter().all(|s| *s == 429));
    assert!(v["retry_after"]
        .as_str()
        .and_then(|r| r.parse::<u64>().ok())
        .is_some_and(|r| r > 0 && r <= 300));
    assert_eq!(v["right_same_ip"], 429);
    assert_eq!(v["right_other_ip"], 200);

    // WebDAV Basic, the admin API and S3 signatures: N failures, then 429 even for the right
    // password; another account from the same address is unaffected
    let dav = server.dav("bkt/f.txt");
    for _ in 0..5 {
        assert_eq!(st(&server, &["-u", "admin:wrong", &dav]), 401);
    }
    let h = head(&server, &["-u", &format!("admin:{ADMIN_PW}"), &dav]);
    assert!(
        h.starts_with("http/1.1 429") && h.contains("retry-after: "),
        "{h}"
    );
    let api = server.url("/api/v1/users");
    for _ in 0..5 {
        assert_eq!(
            st(&server, &["-H", "Authorization: Bearer kura_nope", &api]),
            401
        );
    }
    assert_eq!(
        st(&server, &["-H", "Authorization: Bearer kura_nope", &api]),
        429
    );
    let key = server.s3_key();
    let s3 = server.url("/bkt/f.txt");
    let wrong = format!("{}:not-the-secret", key.id);
    let right = format!("{}:{}", key.id, key.secret);
    let signed = |user: &str| {
        st(
            &server,
            &[
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                "-u",
                user,
                &s3,
            ],
        )
    };
    assert_eq!(signed(&right), 200);
    for _ in 0..5 {
        assert_eq!(signed(&wrong), 403);
    }
    assert_eq!(signed(&right), 429);
    // an S3 permission refusal is not an authentication failure
    run(server.kura().args(["chmod", "770", "/bkt"]));
    add_user(&server, "bob", "bob-pw", "other");
    let bob = server.s3_key_for("bob");
    let bob_right = format!("{}:{}", bob.id, bob.secret);
    for _ in 0..6 {
        assert_eq!(signed(&bob_right), 403);
    }
    // trusted proxy: the forwarded address is the one throttled; untrusted peers cannot pick one
    let xff = |ip: &str| format!("X-Forwarded-For: {ip}");
    for _ in 0..5 {
        assert_eq!(
            st(
                &server,
                &["-H", &xff("198.51.100.7"), "-u", "bob:wrong", &dav]
            ),
            401
        );
    }
    assert_eq!(
        st(
            &server,
            &["-H", &xff("198.51.100.7"), "-u", "bob:bob-pw", &dav]
        ),
        429
    );
    assert_eq!(
        st(
            &server,
            &["-H", &xff("198.51.100.8"), "-u", "bob:bob-pw", &dav]
        ),
        403
    );
    assert_eq!(
        st(
            &server,
            &[
                "--interface",
                "127.0.0.2",
                "-H",
                &xff("198.51.100.7"),
                "-u",
                "bob:bob-pw",
                &dav
            ]
        ),
        403
    );
    assert!(server
        .log()
        .contains("throttled after failed authentications"));
    assert!(
        !server.log().contains(&token),
        "the token must never be logged in full"
    );
}

#[test]
fn shares_through_the_admin_api() {
    require("curl");
    let server = Server::start_with(false, ROOMY);
    add_user(&server, "ann", "ann-pw", "fam");
    add_user(&server, "bob", "bob-pw", "other");
    run(server
        .kura()
        .args(["bucket", "create", "fam", "--group", "fam"]));
    run(server.kura().args(["chmod", "770", "/fam"]));
    assert_eq!(server.put("fam/a.txt", b"api"), 201);
    let api = server.url("/api/v1/shares");
    let auth = format!("admin:{ADMIN_PW}");
    let post = |body: &str| {
        let out = server.curl(&[
            "-u",
            &auth,
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &api,
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').expect("status");
        (
            status.trim().parse::<u16>().expect("status"),
            body.to_string(),
        )
    };
    let (s, body) = post(r#"{"path":"/fam/a.txt","user":"ann","expires":"1h","max_downloads":3}"#);
    assert_eq!(s, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = v["token"].as_str().expect("token");
    let id = v["share"]["id"].as_str().expect("id");
    assert!(v["url"]
        .as_str()
        .expect("url")
        .ends_with(&format!("/s/{token}")));
    assert_eq!(v["share"]["max_downloads"], 3);
    assert!(v["share"]["expires_ms"].as_i64().is_some());
    let (s, got) = fetch(&server, &[&s_url(&server, token, "")]);
    assert_eq!((s, got.as_slice()), (200, b"api".as_slice()));
    // bob cannot read it, so he cannot share it; bad values are 400
    let (s, body) = post(r#"{"path":"/fam/a.txt","user":"bob"}"#);
    assert_eq!(s, 403, "{body}");
    let (s, body) = post(r#"{"path":"/fam/a.txt","user":"ann","expires":"soon"}"#);
    assert_eq!(s, 400, "{body}");
    let (s, _) = post(r#"{"path":"/fam/none","user":"ann"}"#);
    assert_eq!(s, 404);
    let list = server
        .curl(&["-u", &auth, &format!("{api}?user=ann")])
        .stdout;
    let list: serde_json::Value = serde_json::from_slice(&list).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["downloads"], 1);
    assert!(!String::from_utf8_lossy(&serde_json::to_vec(&list).expect("json")).contains(token));
    let del = format!("{api}/{id}");
    assert_eq!(st(&server, &["-u", &auth, "-X", "DELETE", &del]), 204);
    assert_eq!(st(&server, &["-u", &auth, "-X", "DELETE", &del]), 404);
    assert_eq!(st(&server, &[&s_url(&server, token, "")]), 404);
}

/// A browser opening a link to one file got a download and no page: nothing said what the
/// file was, how large, or who may want to look first (Nextcloud and SFTPGo show a page).
/// Now a browser gets a landing page (the name as text with bidi controls as markers, the
/// size, a Download button), while curl, wget, HEAD and `?download=1` get the bytes; the
/// page counts no download and shows nothing before the password.
#[test]
fn a_shared_file_opened_in_a_browser_gets_a_page_and_clients_the_bytes() {
    require("curl");
    let server = Server::start_with(false, ROOMY);
    group_g_bucket_b(&server);
    // "<i>x_\u{202E}gnp.exe": markup and a right-to-left override that makes it read x_exe.png
    assert_eq!(server.put("b/%3Ci%3Ex_%E2%80%AEgnp.exe", b"MZ-bytes"), 201);
    let path = "/b/<i>x_\u{202E}gnp.exe";
    let html = "Accept: text/html,application/xhtml+xml,*/*;q=0.8";

    let (_, token, _) = share(&server, &[path, "--max-downloads", "1"], None);
    let u = s_url(&server, &token, "");
    for _ in 0..3 {
        let (s, page) = fetch(&server, &["-H", html, &u]);
        let page = String::from_utf8_lossy(&page).into_owned();
        assert_eq!(s, 200, "{page}");
        assert!(
            page.contains("&lt;i&gt;x_\u{27E8}U+202E\u{27E9}gnp.exe"),
            "the name as text, its override as a marker: {page}"
        );
        assert!(
            !page.contains('\u{202E}') && !page.contains("<i>"),
            "{page}"
        );
        assert!(page.contains("8 bytes"), "{page}");
        assert!(
            page.contains(&format!("href=\"/s/{token}?download=1\"")),
            "{page}"
        );
        assert!(
            !page.contains("<img"),
            "a limited link previews nothing: {page}"
        );
    }
    // the pages counted no download: the one allowed is still there, for the button's link
    let (s, got) = fetch(&server, &["-H", html, &format!("{u}?download=1")]);
    assert_eq!((s, got.as_slice()), (200, &b"MZ-bytes"[..]));
    assert_eq!(st(&server, &[&u]), 410);

    // curl, wget and HEAD (no text/html asked for) get the bytes at the old address
    let (_, token, _) = share(&server, &[path], None);
    let u = s_url(&server, &token, "");
    let (s, got) = fetch(&server, &[&u]);
    assert_eq!((s, got.as_slice()), (200, &b"MZ-bytes"[..]));
    let (s, got) = fetch(&server, &["-H", "Accept: */*", "-A", "Wget/1.21", &u]);
    assert_eq!((s, got.as_slice()), (200, &b"MZ-bytes"[..]));
    let h = head(&server, &["-I", "-H", html, &u]);
    assert!(h.contains("content-length: 8"), "{h}");

    // an image is previewed on a link without a download limit
    assert_eq!(
        server.put("b/sunset.png", b"\x89PNG\r\n\x1a\nnot-really"),
        201
    );
    let (_, token, _) = share(&server, &["/b/sunset.png"], None);
    let (s, page) = fetch(&server, &["-H", html, &s_url(&server, &token, "")]);
    let page = String::from_utf8_lossy(&page).into_owned();
    assert_eq!(s, 200);
    assert!(
        page.contains(&format!(
            "<img id=\"preview\" src=\"/s/{token}?download=1\""
        )),
        "{page}"
    );

    // behind a password, the page says nothing of the file until the password is given
    let (_, token, _) = share(&server, &[path], Some("open sesame"));
    let u = s_url(&server, &token, "");
    let (s, page) = fetch(&server, &["-H", html, &u]);
    let page = String::from_utf8_lossy(&page).into_owned();
    assert_eq!(s, 401);
    assert!(
        page.contains("type=\"password\"") && !page.contains("gnp") && !page.contains("8 bytes"),
        "{page}"
    );
    let jar = server.root.path().join("jar.txt");
    let jar = jar.to_str().expect("utf8");
    let h = head(
        &server,
        &["-c", jar, "--data-urlencode", "password=open sesame", &u],
    );
    assert!(h.starts_with("http/1.1 303"), "{h}");
    let (s, page) = fetch(&server, &["-b", jar, "-H", html, &u]);
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&page).contains("8 bytes"));
    let (s, got) = fetch(
        &server,
        &["-b", jar, "-H", html, &format!("{u}?download=1")],
    );
    assert_eq!((s, got.as_slice()), (200, &b"MZ-bytes"[..]));
}

/// Attack (red team): a page of another site posts a share's password form (a guess, or the
/// visitor's own password replayed into a session the attacker chose) and a drop box's files.
/// Every such write gets 403 before anything is read or counted: no cookie, no file, no
/// request of the visitor's per-address budget spent. Links from other sites still open,
/// and same-origin pages and clients that send no `Origin` (curl) work as before.
#[test]
fn a_foreign_page_cannot_post_to_a_share() {
    require("curl");
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__SHARE_REQUESTS_PER_SECOND", "1"),
            ("KURA_LIMITS__SHARE_BURST", "6"),
        ],
    );
    group_g_bucket_b(&server);
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("b/in")]), 201);
    assert_eq!(server.put("b/f.txt", b"secret"), 201);
    let (_, token, _) = share(&server, &["/b/f.txt"], Some("open sesame"));
    let (_, drop, _) = share(&server, &["/b/in", "--upload-only"], None);
    let u = s_url(&server, &token, "");
    let same = format!("Origin: http://127.0.0.1:{}", server.port);
    let jar = server.root.path().join("jar.txt");
    let jar = jar.to_str().expect("utf8");
    let form = ["--data-urlencode", "password=open sesame"];
    let forged: [&[&str]; 4] = [
        &["-H", "Origin: https://evil.example"],
        &["-H", "Sec-Fetch-Site: cross-site"],
        &["-H", "Origin: null"],
        // the right host under another scheme is another origin
        &["-H", "Origin: https://127.0.0.1"],
    ];
    for (i, h) in forged.iter().enumerate() {
        let mut args = vec!["-c", jar];
        args.extend_from_slice(h);
        args.extend_from_slice(&form);
        args.push(&u);
        let got = head(&server, &args);
        assert!(got.starts_with("http/1.1 403"), "{h:?}: {got}");
        assert!(!got.contains("set-cookie"), "{h:?}: {got}");
        let to_drop = s_url(&server, &drop, &format!("/forged{i}.txt"));
        let mut args = vec!["-X", "POST", "--data-binary", "x"];
        args.extend_from_slice(h);
        args.push(&to_drop);
        assert_eq!(st(&server, &args), 403, "{h:?}");
    }
    assert!(!std::fs::read_to_string(jar)
        .unwrap_or_default()
        .contains("kura_share_"));
    assert_eq!(server.status(&[&server.dav("b/in/forged0.txt")]), 404);
    // eight refusals spent none of the six requests of the budget
    assert_eq!(
        st(&server, &["-H", "Origin: https://evil.example", &u]),
        401,
        "a link followed from another site still opens (its password page)"
    );
    let h = head(&server, &["-c", jar, "-H", &same, form[0], form[1], &u]);
    assert!(h.starts_with("http/1.1 303"), "{h}");
    assert!(h.contains("set-cookie: kura_share_"), "{h}");
    let h = head(&server, &[form[0], form[1], &u]);
    assert!(h.starts_with("http/1.1 303"), "{h}");
    let (s, got) = fetch(&server, &["-b", jar, &u]);
    assert_eq!((s, got.as_slice()), (200, &b"secret"[..]));
    let mine = s_url(&server, &drop, "/mine.txt");
    assert_eq!(
        st(
            &server,
            &["-X", "POST", "-H", &same, "--data-binary", "x", &mine]
        ),
        201
    );
}

/// Attack (red team): files whose names carry bidi controls (`invoice_\u202Efdp.exe` reads
/// `invoice_exe.pdf`), in a folder whose name carries one too, downloaded as a share link's
/// zip: every entry is named without them, as a single download's Content-Disposition is.
#[test]
fn a_zip_names_its_entries_without_bidi_controls() {
    require("curl");
    require("python3");
    let server = Server::start_with(false, ROOMY);
    group_g_bucket_b(&server);
    // U+2067 (isolate) folder; U+202E (override), U+061C (Arabic letter mark) and U+200F files
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("b/docs")]), 201);
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("b/docs/x%E2%81%A7y")]),
        201
    );
    assert_eq!(server.put("b/docs/invoice_%E2%80%AEfdp.exe", b"MZ"), 201);
    assert_eq!(server.put("b/docs/x%E2%81%A7y/a%D8%9Cb.txt", b"ab"), 201);
    assert_eq!(server.put("b/docs/%E2%80%8F", b"rlm"), 201);
    let (_, token, _) = share(&server, &["/b/docs"], None);
    let zip = fetch_zip(&server, &token);
    let out = run(Command::new("python3").arg("-c").arg(format!(
        "import zipfile; z = zipfile.ZipFile({:?}); print(ascii(sorted(i.filename for i in z.infolist())))",
        zip.to_str().expect("utf8")
    )));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "['download', 'invoice_fdp.exe', 'xy/ab.txt']"
    );
}

/// Downloads a shared folder's `?zip` into the server's root (`docs.zip`) and checks it went
/// out as user content: sandboxed and not sniffed, as every shared file (red team F7).
fn fetch_zip(server: &Server, token: &str) -> std::path::PathBuf {
    let zip = server.root.path().join("docs.zip");
    let heads = server.root.path().join("docs.headers");
    let (s, _) = fetch(
        server,
        &[
            "-o",
            zip.to_str().expect("utf8"),
            "-D",
            heads.to_str().expect("utf8"),
            &s_url(server, token, "?zip"),
        ],
    );
    assert_eq!(s, 200);
    let heads = std::fs::read_to_string(&heads)
        .expect("headers")
        .to_lowercase();
    assert!(
        heads.contains("content-security-policy: sandbox")
            && heads.contains("x-content-type-options: nosniff"),
        "{heads}"
    );
    zip
}
