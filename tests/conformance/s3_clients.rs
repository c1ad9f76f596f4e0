//! S3 with real clients over TLS: aws-cli, boto3, rclone and s3cmd, and the same files through WebDAV.

use std::process::Command;

use crate::common::{require, run, sha256_file, tree, Server, ADMIN_PW};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn aws_cli_everyday_commands() {
    require("aws");
    let server = Server::start(true);
    let key = server.s3_key();
    let aws = |args: &[&str]| run(server.aws(&key).args(args));
    let dir = tempfile::tempdir().expect("dir");
    aws(&["s3", "mb", "s3://photos"]);

    // 100 MiB goes multipart; the bytes arrive intact through both protocols
    let big = dir.path().join("big.bin");
    run(Command::new("sh").arg("-c").arg(format!(
        "head -c 104857600 /dev/urandom > '{}'",
        big.display()
    )));
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        big.to_str().expect("utf8"),
        "s3://photos/big.bin",
    ]);
    let head = text(&aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "photos",
        "--key",
        "big.bin",
    ]));
    assert!(
        head.contains("-13\\\"\""),
        "100 MiB in 8 MiB parts should have a 13-part ETag: {head}"
    );
    let back = dir.path().join("back.bin");
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        "s3://photos/big.bin",
        back.to_str().expect("utf8"),
    ]);
    assert_eq!(sha256_file(&big), sha256_file(&back));
    let via_dav = server
        .curl_admin(&["-sf", &server.dav("photos/big.bin")])
        .stdout;
    assert_eq!(via_dav.len(), 104_857_600);

    // small files: cp, ls, rm
    let small = dir.path().join("note.txt");
    std::fs::write(&small, b"a small note").expect("write");
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        small.to_str().expect("utf8"),
        "s3://photos/notes/note.txt",
    ]);
    assert!(text(&aws(&["s3", "ls", "s3://photos/notes/"])).contains("note.txt"));
    aws(&[
        "s3",
        "rm",
        "--only-show-errors",
        "s3://photos/notes/note.txt",
    ]);
    assert!(!text(&aws(&["s3", "ls", "s3://photos/", "--recursive"])).contains("note.txt"));

    // sync 500 files up, change some through WebDAV, sync back down
    let up = dir.path().join("up");
    for i in 0..500 {
        let d = up.join(format!("g{}", i % 10));
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(
            d.join(format!("f{i:03}.txt")),
            format!("file {i}\n").repeat(i % 7 + 1),
        )
        .expect("write");
    }
    aws(&[
        "s3",
        "sync",
        "--only-show-errors",
        up.to_str().expect("utf8"),
        "s3://photos/sync/",
    ]);
    let listed = text(&aws(&["s3", "ls", "s3://photos/sync/", "--recursive"]));
    assert_eq!(
        listed.lines().count(),
        500,
        "sync up stored {} files",
        listed.lines().count()
    );
    assert_eq!(
        server.put("photos/sync/g0/f000.txt", b"changed through webdav"),
        204
    );
    assert_eq!(
        server.put("photos/sync/g0/new.txt", b"new through webdav"),
        201
    );
    let down = dir.path().join("down");
    aws(&[
        "s3",
        "sync",
        "--only-show-errors",
        "s3://photos/sync/",
        down.to_str().expect("utf8"),
    ]);
    assert_eq!(tree(&down).len(), 501);
    assert_eq!(
        std::fs::read(down.join("g0/f000.txt")).expect("read"),
        b"changed through webdav"
    );

    // paginated listing over all 501 keys, 100 at a time
    let pages = text(&aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "photos",
        "--prefix",
        "sync/",
        "--page-size",
        "100",
        "--query",
        "length(Contents)",
    ]));
    assert_eq!(pages.trim(), "501");

    // copy-object, delete-objects
    aws(&[
        "s3api",
        "copy-object",
        "--bucket",
        "photos",
        "--key",
        "copy.bin",
        "--copy-source",
        "photos/big.bin",
    ]);
    let copied = text(&aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "photos",
        "--key",
        "copy.bin",
    ]));
    assert!(copied.contains("\"ContentLength\": 104857600"), "{copied}");
    let deleted = text(&aws(&[
        "s3api",
        "delete-objects",
        "--bucket",
        "photos",
        "--delete",
        r#"{"Objects":[{"Key":"copy.bin"},{"Key":"sync/g1/f001.txt"}]}"#,
    ]));
    assert!(
        deleted.contains("copy.bin") && deleted.contains("f001.txt"),
        "{deleted}"
    );

    // presign, then plain curl
    let url = text(&aws(&[
        "s3",
        "presign",
        "s3://photos/sync/g2/f002.txt",
        "--expires-in",
        "120",
    ]));
    let got = server.curl(&["-sf", url.trim()]);
    assert!(got.status.success(), "presigned URL refused");
    assert_eq!(got.stdout, b"file 2\nfile 2\nfile 2\n");
}

/// Runs `s3_boto3.py` (every S3 operation boto3 makes) against `server` with `key`; panics
/// on a failed check.
pub fn boto3(server: &Server, key: &crate::common::S3Key, tls: bool) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/s3_boto3.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .env("KURA_S3_ENDPOINT", server.url(""))
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_CONFIG_FILE", "/dev/null");
    if tls {
        cmd.env("AWS_CA_BUNDLE", server.cert());
    }
    run(&mut cmd)
}

fn boto3_script(tls: bool) {
    require("python3");
    let server = Server::start(tls);
    let key = server.s3_key();
    let out = boto3(&server, &key, tls);
    println!(
        "{} ({})",
        text(&out).trim(),
        if tls { "https" } else { "http" }
    );

    // a revoked key stops working at once
    run(server.kura().args(["key", "revoke", &key.id]));
    let denied = server.aws(&key).args(["s3", "ls"]).output().expect("aws");
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("InvalidAccessKeyId"));
}

/// Over HTTPS botocore streams with STREAMING-UNSIGNED-PAYLOAD-TRAILER (checksum trailers).
#[test]
fn boto3_every_operation_over_https() {
    boto3_script(true);
}

/// Over plain HTTP botocore signs its payloads instead.
#[test]
fn boto3_every_operation_over_http() {
    boto3_script(false);
}

pub(crate) fn rclone(
    server: &Server,
    key: &crate::common::S3Key,
    args: &[&str],
) -> std::process::Output {
    let obscured = run(Command::new("rclone").args(["obscure", ADMIN_PW])).stdout;
    let mut c = Command::new("rclone");
    c.env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_K3_TYPE", "s3")
        .env("RCLONE_CONFIG_K3_PROVIDER", "Other")
        .env("RCLONE_CONFIG_K3_ENDPOINT", server.url(""))
        .env("RCLONE_CONFIG_K3_ACCESS_KEY_ID", &key.id)
        .env("RCLONE_CONFIG_K3_SECRET_ACCESS_KEY", &key.secret)
        .env("RCLONE_CONFIG_K3_FORCE_PATH_STYLE", "true")
        .env("RCLONE_CONFIG_KD_TYPE", "webdav")
        .env("RCLONE_CONFIG_KD_URL", server.dav(""))
        .env("RCLONE_CONFIG_KD_VENDOR", "other")
        .env("RCLONE_CONFIG_KD_USER", "admin")
        .env(
            "RCLONE_CONFIG_KD_PASS",
            String::from_utf8_lossy(&obscured).trim(),
        )
        // rclone 1.60's s3 backend cannot load a CA bundle (--ca-cert, AWS_CA_BUNDLE);
        // Go reads SSL_CERT_FILE instead
        .env("SSL_CERT_FILE", server.cert())
        .env_remove("AWS_CA_BUNDLE")
        .args(args);
    run(&mut c)
}

#[test]
fn rclone_s3_and_webdav_see_the_same_bucket() {
    require("rclone");
    let server = Server::start(true);
    let key = server.s3_key();
    let local = tempfile::tempdir().expect("local");
    for i in 0..60 {
        let d = local.path().join(format!("d{}", i % 4));
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join(format!("f{i}.bin")), vec![i as u8; i * 1000 + 1]).expect("write");
    }
    let src = local.path().to_str().expect("utf8");
    rclone(&server, &key, &["mkdir", "k3:rcl"]);
    rclone(&server, &key, &["copy", src, "k3:rcl"]);
    rclone(&server, &key, &["check", src, "k3:rcl"]);
    std::fs::write(local.path().join("d0/f0.bin"), b"changed").expect("change");
    std::fs::remove_file(local.path().join("d1/f1.bin")).expect("remove");
    rclone(&server, &key, &["sync", src, "k3:rcl"]);
    rclone(&server, &key, &["check", src, "k3:rcl"]);
    let json = text(&rclone(
        &server,
        &key,
        &["lsjson", "-R", "--files-only", "k3:rcl"],
    ));
    assert_eq!(json.matches("\"Path\"").count(), 59, "{json}");
    // the same bucket through WebDAV, compared by rclone itself (size and content)
    rclone(&server, &key, &["check", "--download", "k3:rcl", "kd:rcl"]);
    rclone(&server, &key, &["delete", "k3:rcl/d2"]);
    assert_eq!(server.status(&["-I", &server.dav("rcl/d2/f2.bin")]), 404);
}

#[test]
fn s3cmd_put_get_ls_del() {
    require("s3cmd");
    let server = Server::start(true);
    let key = server.s3_key();
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("s3cfg");
    let host = format!("127.0.0.1:{}", server.port);
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = True\nbucket_location = us-east-1\nca_certs_file = {}\ncheck_ssl_certificate = True\ncheck_ssl_hostname = True\nsignature_v2 = False\n",
            key.id,
            key.secret,
            server.cert().display()
        ),
    )
    .expect("cfg");
    let s3cmd = |args: &[&str]| run(Command::new("s3cmd").arg("-c").arg(&cfg).args(args));
    let file = dir.path().join("doc.txt");
    std::fs::write(&file, b"s3cmd was here").expect("write");
    s3cmd(&["mb", "s3://docs"]);
    s3cmd(&["put", file.to_str().expect("utf8"), "s3://docs/doc.txt"]);
    assert!(text(&s3cmd(&["ls", "s3://docs"])).contains("s3://docs/doc.txt"));
    let info = text(&s3cmd(&["info", "s3://docs/doc.txt"]));
    assert!(
        info.contains("FULL_CONTROL") || info.contains("ACL"),
        "{info}"
    );
    // others (mode 664: read) are the logged-in users; nothing looks public
    assert!(
        info.contains("AuthenticatedUsers: READ")
            && !info.contains("*anon*")
            && !info.contains("AllUsers"),
        "{info}"
    );
    let back = dir.path().join("back.txt");
    s3cmd(&["get", "s3://docs/doc.txt", back.to_str().expect("utf8")]);
    assert_eq!(std::fs::read(&back).expect("read"), b"s3cmd was here");
    s3cmd(&["del", "s3://docs/doc.txt"]);
    assert!(!text(&s3cmd(&["ls", "s3://docs"])).contains("doc.txt"));
}

#[test]
fn same_bytes_etag_type_and_date_through_both_protocols() {
    require("aws");
    let server = Server::start(true);
    let key = server.s3_key();
    let aws = |args: &[&str]| run(server.aws(&key).args(args));
    aws(&["s3", "mb", "s3://xpro"]);
    let dir = tempfile::tempdir().expect("dir");
    let f = dir.path().join("pic.png");
    std::fs::write(&f, vec![7u8; 123_457]).expect("write");
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        f.to_str().expect("utf8"),
        "s3://xpro/from-s3.png",
        "--content-type",
        "image/png",
    ]);
    let s3_head = text(&aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "xpro",
        "--key",
        "from-s3.png",
    ]));
    let dav_head = String::from_utf8_lossy(
        &server
            .curl_admin(&["-sI", &server.dav("xpro/from-s3.png")])
            .stdout,
    )
    .to_lowercase();
    let etag = s3_head
        .split("\"ETag\": \"")
        .nth(1)
        .and_then(|s| s.split("\\\"").nth(1))
        .expect("etag")
        .to_string();
    assert!(
        dav_head.contains(&format!("etag: \"{etag}\"")),
        "{dav_head}\n{s3_head}"
    );
    assert!(dav_head.contains("content-type: image/png"), "{dav_head}");
    let lm = s3_head
        .split("\"LastModified\": \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("lm")
        .to_lowercase();
    assert!(
        dav_head.contains(&format!("last-modified: {lm}")),
        "{dav_head}\n{s3_head}"
    );
    assert_eq!(
        server.get("xpro/from-s3.png"),
        std::fs::read(&f).expect("read")
    );
    // the stored type, not a guess from the name, also without an extension
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        f.to_str().expect("utf8"),
        "s3://xpro/blob",
        "--content-type",
        "image/webp",
    ]);
    let h = String::from_utf8_lossy(&server.curl_admin(&["-sI", &server.dav("xpro/blob")]).stdout)
        .to_lowercase();
    assert!(h.contains("content-type: image/webp"), "{h}");

    // the reverse: WebDAV PUT, S3 GET
    assert_eq!(
        server.put("xpro/from-dav.txt", b"written through webdav"),
        201
    );
    let back = dir.path().join("back.txt");
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        "s3://xpro/from-dav.txt",
        back.to_str().expect("utf8"),
    ]);
    assert_eq!(
        std::fs::read(&back).expect("read"),
        b"written through webdav"
    );
    let h = text(&aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "xpro",
        "--key",
        "from-dav.txt",
    ]));
    let dav_head = String::from_utf8_lossy(
        &server
            .curl_admin(&["-sI", &server.dav("xpro/from-dav.txt")])
            .stdout,
    )
    .to_lowercase();
    let etag = h
        .split("\"ETag\": \"")
        .nth(1)
        .and_then(|s| s.split("\\\"").nth(1))
        .expect("etag");
    assert!(
        dav_head.contains(&format!("etag: \"{etag}\"")),
        "{dav_head}\n{h}"
    );
    assert!(h.contains("\"ContentType\": \"text/plain\""), "{h}");

    // unsigned requests get S3's anonymous answer; a browser at / gets the app
    let anon = server.curl(&["-s", &server.url("/xpro/from-dav.txt")]);
    assert!(String::from_utf8_lossy(&anon.stdout).contains("<Code>AccessDenied</Code>"));
    let page = server.curl(&["-s", "-L", "-H", "Accept: text/html", &server.url("/")]);
    assert!(String::from_utf8_lossy(&page.stdout).contains("<title>Kura</title>"));
}

#[test]
fn virtual_host_style_only_for_subdomains_of_the_base_domain() {
    require("curl");
    let server = Server::start_with(false, &[("KURA_S3_BASE_DOMAIN", "s3.test")]);
    let key = server.s3_key();
    run(server.aws(&key).args(["s3", "mb", "s3://vhost"]));
    assert_eq!(server.put("vhost/hello.txt", b"hello by host"), 201);
    let sig = [
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "-H",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD",
    ];
    let user = format!("{}:{}", key.id, key.secret);
    let resolve = format!("vhost.s3.test:{}:127.0.0.1", server.port);
    let by_host = run(Command::new("curl")
        .args(["-sSf", "--resolve", &resolve, "--user", &user])
        .args(sig)
        .arg(format!("http://vhost.s3.test:{}/hello.txt", server.port)));
    assert_eq!(by_host.stdout, b"hello by host");
    // an IP address is path-style: the first segment is the bucket, not the host
    let by_path = run(Command::new("curl")
        .args(["-sSf", "--user", &user])
        .args(sig)
        .arg(server.url("/vhost/hello.txt")));
    assert_eq!(by_path.stdout, b"hello by host");
}

/// Attack (red team): an object stored with a Content-Disposition whose file name carries bidi
/// controls (`invoice_\u202Efdp.exe` saves as a name that reads `invoice_exe.pdf`),
/// percent-encoded in `filename*` as clients send it, or asked for in a signed
/// `response-content-disposition`. GET and HEAD return the value less those characters
/// (the rule of every download Kura names); the rest of the value as it was stored.
#[test]
fn s3_content_disposition_is_served_without_bidi_controls() {
    require("curl");
    let server = Server::start(false);
    let key = server.s3_key();
    let user = format!("{}:{}", key.id, key.secret);
    let s3 = |args: &[&str]| -> String {
        let mut all = vec![
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--user",
            &user,
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&server.curl(&all).stdout).to_lowercase()
    };
    assert!(s3(&["-X", "PUT", &server.url("/docs")]).starts_with("http/1.1 200"));
    let stored =
        "attachment; filename=\"invoice.exe\"; filename*=UTF-8''invoice_%E2%80%AEfdp%E2%81%A6.exe";
    let put = s3(&[
        "-X",
        "PUT",
        "--data-binary",
        "MZ",
        "-H",
        &format!("Content-Disposition: {stored}"),
        &server.url("/docs/invoice.exe"),
    ]);
    assert!(put.starts_with("http/1.1 200"), "{put}");
    let want = "content-disposition: attachment; filename=\"invoice.exe\"; filename*=utf-8''invoice_fdp.exe\r\n";
    let got = s3(&[&server.url("/docs/invoice.exe")]);
    assert!(got.contains(want), "GET: {got}");
    let head = s3(&["-I", &server.url("/docs/invoice.exe")]);
    assert!(head.contains(want), "HEAD: {head}");
    let asked = s3(&[&server.url(
        "/docs/invoice.exe?response-content-disposition=inline%3B%20filename%2A%3DUTF-8%27%27a%25E2%2580%25AEb.txt",
    )]);
    assert!(
        asked.contains("content-disposition: inline; filename*=utf-8''ab.txt\r\n"),
        "response-content-disposition: {asked}"
    );
}
