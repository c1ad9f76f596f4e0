//! SSE-C (docs/encryption.md) against a real server: boto3 over TLS runs the attacks of
//! `encryption_ssec.py` (right key, wrong key, no key, a bad key-MD5, HEAD, copies both ways,
//! multipart, a presigned GET, WebDAV and the app refused, no plaintext on disk, neither the
//! key nor its MD5 in the database); then a share link of an SSE-C file is refused, turning a
//! bucket's encryption off leaves its SSE-C files as they are, `kura fsck` finds nothing wrong
//! and the log holds nothing of the key. Over plain HTTP every SSE-C request is refused and
//! nothing is stored, unless a trusted proxy says the client used HTTPS (a client saying so
//! itself is not believed).

use std::process::Command;

use crate::common::{require, run, Server, ADMIN_PW};

/// A server (`tls` or not) with the group `g`, the encrypted bucket `sec` and the plain `pub`.
fn server(tls: bool) -> Server {
    let s = Server::start(tls);
    run(s.kura().args(["group", "add", "g"]));
    run(s
        .kura()
        .args(["bucket", "create", "sec", "--group", "g", "--encrypt"]));
    run(s.kura().args(["bucket", "create", "pub", "--group", "g"]));
    s
}

/// Runs `encryption_ssec.py MODE` against `s` as the admin; prints and returns its output.
fn script(s: &Server, mode: &str) -> String {
    require("python3");
    let key = s.s3_key();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/encryption_ssec.py"
    );
    let out = run(Command::new("python3")
        .args([path, mode])
        .env("KURA_S3_ENDPOINT", s.url(""))
        .env("AWS_CA_BUNDLE", s.cert())
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("KURA_DAV_PASSWORD", ADMIN_PW)
        .env("KURA_FILES", s.files_dir())
        .env("KURA_DB", s.data_dir().join("kura.db")));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{}", text.trim());
    text
}

#[test]
fn sse_c_through_boto3_over_tls_and_every_path_without_the_key() {
    require("curl");
    let mut s = server(true);
    assert!(script(&s, "tls").contains("checks passed"));

    // aws-cli: a multipart upload (8 MiB parts) and a download in ranges, both with the key
    require("aws");
    let key = s.s3_key();
    let dir = tempfile::tempdir().expect("dir");
    let (file, back, my_key) = (
        dir.path().join("big"),
        dir.path().join("back"),
        dir.path().join("my.key"),
    );
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &big).expect("write");
    std::fs::write(&my_key, [7u8; 32]).expect("write");
    let sse = format!("fileb://{}", my_key.display());
    let cp = |from: &str, to: &str, with_key: bool| {
        let mut c = s.aws(&key);
        c.args(["s3", "cp", from, to]);
        if with_key {
            c.args(["--sse-c", "AES256", "--sse-c-key", &sse]);
        }
        c.output().expect("aws")
    };
    let up = cp(file.to_str().expect("path"), "s3://pub/big.bin", true);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let head = run(s.aws(&key).args([
        "s3api",
        "head-object",
        "--bucket",
        "pub",
        "--key",
        "big.bin",
        "--sse-customer-algorithm",
        "AES256",
        "--sse-customer-key",
        &sse,
    ]));
    let head = String::from_utf8_lossy(&head.stdout);
    assert!(head.contains("-3\\\""), "three 8 MiB parts: {head}");
    let stored = std::fs::read(s.files_dir().join("pub/big.bin")).expect("stored");
    assert!(
        !stored.windows(64).any(|w| w == &big[..64]),
        "plaintext on disk"
    );
    let down = cp("s3://pub/big.bin", back.to_str().expect("path"), true);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        std::fs::read(&back).expect("back") == big,
        "not the same bytes"
    );
    let without = cp("s3://pub/big.bin", back.to_str().expect("path"), false);
    assert!(!without.status.success(), "a download without the key");

    // a share link cannot bring the client's key: refused, saying why, serving nothing
    let out = run(s
        .kura()
        .args(["share", "create", "/pub/ssec.bin", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let token = v["token"].as_str().expect("token");
    let got = s.curl(&["-s", "-w", "\n%{http_code}", &s.url(&format!("/s/{token}"))]);
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(text.ends_with("\n403"), "{text}");
    assert!(
        text.contains("SSE-C") && !text.contains("KNOWN-PATTERN"),
        "{text}"
    );

    // fsck knows the sealed length of an SSE-C file: nothing is damaged or missing
    let fsck = String::from_utf8_lossy(&run(s.kura().arg("fsck")).stdout).into_owned();
    assert!(fsck.contains("storage: no drift"), "{fsck}");

    // turning the bucket's encryption off converts what the master key sealed, never an
    // SSE-C file (its key is not here): it stays as it was and still opens with its key
    assert_eq!(s.put("sec/mine.txt", b"sealed by the master key"), 201);
    let before = std::fs::read(s.files_dir().join("sec/ssec.bin")).expect("stored");
    let off = run(s.kura().args(["encryption", "disable", "sec"]));
    let said = String::from_utf8_lossy(&off.stdout);
    assert!(said.contains("sec: 1 files written plain"), "{said}");
    assert!(!said.contains("changed while"), "{said}");
    assert_eq!(s.get("sec/mine.txt"), b"sealed by the master key");
    assert_eq!(
        std::fs::read(s.files_dir().join("sec/ssec.bin")).expect("stored"),
        before
    );
    assert!(script(&s, "after").contains("checks passed"));
    // overwritten over WebDAV, then the kept version restored: SSE-C again, with its key
    assert_eq!(s.put("sec/ssec.bin", b"overwritten"), 204);
    run(s.kura().args(["restore", "/sec/ssec.bin"]));
    assert!(script(&s, "after").contains("checks passed"));
    // no file is sealed by the master key now: without it the server starts (an SSE-C file
    // names no master key) and the SSE-C files still open with their own keys
    s.stop();
    std::fs::remove_file(s.data_dir().join("encryption.key")).expect("master key");
    s.start_again();
    assert!(script(&s, "after").contains("checks passed"));
    // a backup keeps them sealed; restored elsewhere they open with their key, and no other way
    let repo = tempfile::tempdir().expect("repo");
    let repo = repo.path().join("repo");
    let repo = repo.to_str().expect("path");
    run(s.kura().args(["backup", repo]));
    let mut target = Server::in_folder(&[]);
    run(target.kura().args(["restore", repo]));
    target.start_again();
    assert!(script(&target, "after").contains("checks passed"));
    // the script's key is bytes 0..32: neither its hex nor its base64 is logged
    let log = s.log();
    assert!(
        !log.contains("000102030405060708090a0b"),
        "the key (hex) in the log"
    );
    assert!(
        !log.contains("AAECAwQFBgcICQoL"),
        "the key (base64) in the log"
    );
}

#[test]
fn sse_c_over_plain_http_is_refused_and_nothing_stored() {
    let s = server(false);
    assert!(script(&s, "plain").contains("checks passed"));
}

#[test]
fn behind_a_proxy_only_a_trusted_proxy_says_the_client_used_tls() {
    // a client that forges X-Forwarded-Proto on a plain connection is not believed
    let direct = server(false);
    assert!(script(&direct, "forged").contains("checks passed"));
    drop(direct);
    // from a trusted proxy (here 127.0.0.1) the header is what tells TLS from plain HTTP
    let s = Server::start_with(
        false,
        &[("KURA_LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]")],
    );
    run(s.kura().args(["group", "add", "g"]));
    run(s.kura().args(["bucket", "create", "pub", "--group", "g"]));
    assert!(script(&s, "proxied").contains("checks passed"));
}

#[test]
fn a_server_logging_at_debug_logs_no_key_signature_or_password() {
    use base64::Engine;
    require("curl");
    // RUST_LOG=debug asks every library for its debug events, s3s's too, whose request dump
    // would hold the SSE-C key and the Authorization header
    let s = Server::start_with(true, &[("RUST_LOG", "debug")]);
    run(s.kura().args(["group", "add", "g"]));
    run(s.kura().args(["bucket", "create", "pub", "--group", "g"]));
    let out = script(&s, "logged");
    assert!(out.contains("checks passed"), "{out}");
    assert_eq!(s.put("pub/dav.txt", b"over WebDAV, with Basic auth"), 201);
    let signature = out
        .lines()
        .find_map(|l| l.strip_prefix("presigned-signature: "))
        .expect("the script prints the presigned URL's signature")
        .trim()
        .to_string();
    let log = s.log();
    assert!(
        log.contains(" DEBUG "),
        "the server did not log at debug:\n{log}"
    );
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let key: Vec<u8> = (0..32).collect(); // the script's KEY and OTHER
    let other: Vec<u8> = (100..132).collect();
    let s3 = s.s3_key();
    let basic = b64(format!("admin:{ADMIN_PW}").as_bytes());
    let secrets = [
        ("the SSE-C key (base64)", b64(&key)),
        ("the other SSE-C key (base64)", b64(&other)),
        (
            "the SSE-C key (raw)",
            String::from_utf8(key.clone()).expect("ascii"),
        ),
        // its bytes 100..=127, the ones a text log could hold as they are
        (
            "the other SSE-C key (raw)",
            String::from_utf8(other[..28].to_vec()).expect("ascii"),
        ),
        ("the SSE-C key (hex)", hex::encode(&key)),
        (
            "an SSE-C header",
            "server-side-encryption-customer-key".into(),
        ),
        (
            "a SigV4 Authorization header",
            "AWS4-HMAC-SHA256 Credential".into(),
        ),
        ("the presigned URL's signature", signature),
        ("the S3 secret key", s3.secret.clone()),
        ("the admin password", ADMIN_PW.into()),
        ("a Basic Authorization header", basic),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(&secret), "{what} is in the debug log");
    }
}

/// `kura peer status --json` as JSON.
fn peer_status(s: &Server) -> serde_json::Value {
    let out = run(s.kura().args(["peer", "status", "--json"]));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn peer_status_counts_the_sse_c_files_replication_skips_and_says_why() {
    require("aws");
    let s = server(true);
    let key = s.s3_key();
    // a peer that is down, and rules to it: the whole of sec, and pub below docs/
    run(s.kura().args([
        "peer",
        "add",
        "far",
        "--endpoint",
        "https://127.0.0.1:9",
        "--access-key",
        "AKFAR",
        "--secret-key",
        "far-secret",
        "--no-check",
    ]));
    run(s
        .kura()
        .args(["replicate", "sec", "--to", "far", "--no-check"]));
    run(s.kura().args([
        "replicate",
        "pub",
        "--to",
        "far",
        "--prefix",
        "docs/",
        "--no-check",
    ]));
    let rules = peer_status(&s);
    assert!(
        rules
            .as_array()
            .expect("rules")
            .iter()
            .all(|r| r["skipped"] == serde_json::json!([])),
        "{rules}"
    );
    let dir = tempfile::tempdir().expect("dir");
    let (file, my_key) = (dir.path().join("f"), dir.path().join("my.key"));
    std::fs::write(&file, b"secret bytes").expect("write");
    std::fs::write(&my_key, [9u8; 32]).expect("write");
    let sse = format!("fileb://{}", my_key.display());
    let put = |to: &str, with_key: bool| {
        let mut c = s.aws(&key);
        c.args(["s3", "cp", file.to_str().expect("path"), to]);
        if with_key {
            c.args(["--sse-c", "AES256", "--sse-c-key", &sse]);
        }
        let out = c.output().expect("aws");
        assert!(out.status.success(), "{out:?}");
    };
    put("s3://sec/a", true);
    put("s3://sec/deep/b", true);
    put("s3://sec/plain", false);
    put("s3://pub/docs/c", true);
    put("s3://pub/other/d", true); // outside the rule's prefix
    let rules = peer_status(&s);
    let skipped = |bucket: &str| -> serde_json::Value {
        rules
            .as_array()
            .expect("rules")
            .iter()
            .find(|r| r["bucket"] == bucket)
            .expect("rule")["skipped"]
            .clone()
    };
    let sec = skipped("sec");
    assert_eq!(sec[0]["reason"], "sse-c", "{rules}");
    assert_eq!(sec[0]["files"], 2, "{rules}");
    assert!(
        sec[0]["why"].as_str().unwrap_or("").contains("SSE-C"),
        "{rules}"
    );
    assert_eq!(skipped("pub")[0]["files"], 1, "{rules}");
    // the table says it too
    let table = run(s.kura().args(["peer", "status"]));
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("SKIPPED") && table.contains("2 (SSE-C)"),
        "{table}"
    );
    assert!(
        table
            .contains("sec -> far: 2 files not replicated: encrypted with the S3 client's own key"),
        "{table}"
    );
    // a file deleted is no longer counted
    let rm = s
        .aws(&key)
        .args(["s3", "rm", "s3://sec/a"])
        .output()
        .expect("aws");
    assert!(rm.status.success(), "{rm:?}");
    assert_eq!(peer_status(&s)[1]["skipped"][0]["files"], 1);
}

/// The three SSE-C headers for the key of 32 bytes `k`.
fn sse_c_headers(k: u8) -> [String; 3] {
    let out = run(Command::new("python3").args([
        "-c",
        &format!(
            "import base64,hashlib;k=bytes([{k}])*32;print(base64.b64encode(k).decode());print(base64.b64encode(hashlib.md5(k).digest()).decode())"
        ),
    ]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let (key, md5) = (lines.next().expect("key"), lines.next().expect("md5"));
    [
        "x-amz-server-side-encryption-customer-algorithm: AES256".to_string(),
        format!("x-amz-server-side-encryption-customer-key: {key}"),
        format!("x-amz-server-side-encryption-customer-key-MD5: {md5}"),
    ]
}

/// curl's `--aws-sigv4` against Kura (docs/s3.md, "curl"): accepted when curl orders the
/// signed headers as SigV4 says (by name); curl 7.88 sorts whole `name:value` lines, which puts
/// `...-customer-key-md5` before `...-customer-key` (and `x-amz-meta-a-b` before
/// `x-amz-meta-a`), so its SSE-C requests fail with SignatureDoesNotMatch, as they would on AWS,
/// and store nothing. A curl that orders by name gets its SSE-C PUT stored and read back.
#[test]
fn curl_aws_sigv4_with_sse_c_headers() {
    require("curl");
    let s = server(true);
    let key = s.s3_key();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("f");
    std::fs::write(&file, b"curl bytes").expect("write");
    let user = format!("{}:{}", key.id, key.secret);
    // (status, body, the SignedHeaders curl sent)
    let curl = |extra: &[&str], upload: bool, url: &str| -> (u16, String, String) {
        let mut args: Vec<String> = ["-v", "-o", "-", "-w", "\n%{http_code}", "--aws-sigv4"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(["aws:amz:us-east-1:s3".into(), "--user".into(), user.clone()]);
        // curl 7.88 sends no payload hash, which S3 (and Kura) require
        for h in ["x-amz-content-sha256: UNSIGNED-PAYLOAD"]
            .iter()
            .chain(extra)
        {
            args.extend(["-H".to_string(), h.to_string()]);
        }
        if upload {
            args.extend(["-T".to_string(), file.to_string_lossy().into()]);
        }
        args.push(url.into());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = s.curl(&a);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let signed = err
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or("")
            .to_string();
        (status.trim().parse().unwrap_or(0), body.to_string(), signed)
    };
    // Kura takes curl's signatures: one x-amz-meta header
    let (st, body, _) = curl(&["x-amz-meta-colour: blue"], true, &s.url("/sec/meta"));
    assert_eq!(st, 200, "{body}");
    let [alg, k, md5] = sse_c_headers(5);
    let sse = [alg.as_str(), k.as_str(), md5.as_str()];
    let (st, body, signed) = curl(&sse, true, &s.url("/sec/ssec"));
    let by_name = signed.contains("customer-key;x-amz-server-side-encryption-customer-key-md5");
    let by_line = signed.contains("customer-key-md5;x-amz-server-side-encryption-customer-key");
    assert!(by_name != by_line, "SignedHeaders={signed}");
    if by_line {
        // curl's bug (curl/curl#14370): the same for two x-amz-meta headers, no SSE-C at all
        assert_eq!(st, 403, "{body}");
        assert!(body.contains("SignatureDoesNotMatch"), "{body}");
        assert!(!s.files_dir().join("sec/ssec").exists());
        let (st, body, _) = curl(
            &["x-amz-meta-a: 1", "x-amz-meta-a-b: 2"],
            true,
            &s.url("/sec/meta2"),
        );
        assert_eq!(st, 403, "{body}");
        assert!(body.contains("SignatureDoesNotMatch"), "{body}");
    } else {
        assert_eq!(st, 200, "{body}");
        let (st, body, _) = curl(&sse, false, &s.url("/sec/ssec"));
        assert_eq!((st, body.as_str()), (200, "curl bytes"));
    }
}
