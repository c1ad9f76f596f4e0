//! S3 POST Object (browser form uploads with a signed policy) against a real server: boto3
//! makes the forms, python requests and curl post them as browsers do.

use std::process::Command;

use crate::common::{boto3_with_other_user, require, run, S3Key, Server};

/// A 200 MiB file: held in memory it alone would pass the RSS limit below.
const BIG: u64 = 200 << 20;
/// Peak RSS the server may reach while it stores `BIG` from a form.
const RSS_LIMIT_KIB: u64 = 120 * 1024;

/// boto3's generate_presigned_post, posted with requests: statuses 200/201/204 and redirect,
/// `${filename}`, metadata, checksums, ACL, CORS, size range, tampered, expired, anonymous,
/// extra-field, cross-user, forged-key and bucket-swap attacks.
#[test]
fn post_object_through_boto3_and_requests() {
    boto3_with_other_user(&Server::plain(), "s3_post.py");
}

/// The form's fields from boto3's generate_presigned_post, as `name=value` lines.
fn form_fields(server: &Server, key: &S3Key, bucket: &str, object: &str, max: u64) -> Vec<String> {
    let script = format!(
        "import boto3, json\nfrom botocore.config import Config\n\
         c = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
         config=Config(s3={{'addressing_style': 'path'}}, signature_version='s3v4'))\n\
         f = c.generate_presigned_post('{bucket}', '{object}', \
         Conditions=[['content-length-range', 0, {max}]])\n\
         print('\\n'.join(k + '=' + v for k, v in f['fields'].items()))",
        server.url("")
    );
    let out = run(Command::new("python3")
        .args(["-c", &script])
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// curl posts a form with `file` last, streamed from disk; returns status and body.
fn curl_post(server: &Server, bucket: &str, fields: &[String], file: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}"]);
    for f in fields {
        cmd.args(["--form-string", f]);
    }
    cmd.args(["-F", &format!("file=@{file}")]);
    cmd.arg(server.url(&format!("/{bucket}")));
    let out = run(&mut cmd);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

fn usage(server: &Server) -> String {
    String::from_utf8_lossy(&run(server.kura().arg("usage")).stdout).into_owned()
}

/// A 200 MiB form upload streams to staging: stored whole, server RSS stays bounded; a form
/// over its size range is cut off while it streams and leaves no object, no staged bytes and
/// the quota counters as they were.
#[test]
fn post_object_streams_a_big_file_in_bounded_memory() {
    require("curl");
    require("python3");
    let server = Server::plain();
    let key = server.s3_key();
    run(server
        .aws(&key)
        .args(["s3api", "create-bucket", "--bucket", "big"]));
    let dir = tempfile::tempdir().expect("dir");
    let big = dir.path().join("big.bin");
    run(Command::new("sh")
        .arg("-c")
        .arg(format!("head -c {BIG} /dev/urandom > '{}'", big.display())));
    let big_s = big.to_str().expect("utf8");

    let fields = form_fields(&server, &key, "big", "big.bin", BIG);
    let (status, body) = curl_post(&server, "big", &fields, big_s);
    assert_eq!(status, 204, "{body}");
    let stored = server.files_dir().join("big/big.bin");
    assert_eq!(
        crate::common::sha256_file(&stored),
        crate::common::sha256_file(&big)
    );
    let hwm = server.vm_hwm_kib();
    println!(
        "post object: 200 MiB form upload, server peak RSS (VmHWM) {} MiB",
        hwm / 1024
    );
    assert!(
        hwm < RSS_LIMIT_KIB,
        "server peak RSS {hwm} KiB is over {RSS_LIMIT_KIB} KiB"
    );

    // over the range: refused while streaming, nothing left behind
    let before = usage(&server);
    let fields = form_fields(&server, &key, "big", "too-big.bin", 1 << 20);
    let (status, body) = curl_post(&server, "big", &fields, big_s);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>EntityTooLarge</Code>"), "{body}");
    assert!(!server.files_dir().join("big/too-big.bin").exists());
    assert_eq!(usage(&server), before);
    // the dropped upload's staged file goes (removed off the request's task)
    let tmp = server.data_dir().join("tmp");
    let mut left = Vec::new();
    for _ in 0..50 {
        left = crate::common::tree(&tmp);
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(left.is_empty(), "staged leftovers: {left:?}");
}

/// A form without a size range is still bounded by the bucket group's quota: cut off while it
/// streams (`QuotaExceeded`), nothing stored, the usage as it was; one that fits is stored.
#[test]
fn post_object_is_bounded_by_the_quota() {
    require("curl");
    require("python3");
    let server = Server::plain();
    let key = server.s3_key();
    run(server.kura().args(["group", "add", "qg"]));
    run(server
        .kura()
        .args(["bucket", "create", "quota", "--group", "qg"]));
    run(server
        .kura()
        .args(["quota", "set", "qg", "--bytes", "1MiB"]));
    let dir = tempfile::tempdir().expect("dir");
    let big = dir.path().join("three.bin");
    std::fs::write(&big, vec![7u8; 3 << 20]).expect("body");
    let small = dir.path().join("small.bin");
    std::fs::write(&small, vec![7u8; 1000]).expect("body");
    let before = usage(&server);
    let fields = form_fields(&server, &key, "quota", "three.bin", u64::MAX >> 1);
    let (status, body) = curl_post(&server, "quota", &fields, big.to_str().expect("utf8"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>QuotaExceeded</Code>"), "{body}");
    assert!(!server.files_dir().join("quota/three.bin").exists());
    assert_eq!(usage(&server), before);
    let fields = form_fields(&server, &key, "quota", "small.bin", u64::MAX >> 1);
    let (status, body) = curl_post(&server, "quota", &fields, small.to_str().expect("utf8"));
    assert_eq!(status, 204, "{body}");
    let usage = usage(&server);
    assert!(usage.contains("qg\t1000\t"), "{usage}");
}
