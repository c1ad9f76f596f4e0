//! Public S3 reads against a real server: boto3 sets ACLs, policies and public access blocks
//! and an anonymous reader checks each; curl attacks a public bucket without a signature.

use std::process::Command;

use crate::common::{boto3_with_other_user, code, require, run, Server};

/// Status of an unsigned curl request (body to stdout after the status line is dropped).
fn anon(server: &Server, args: &[&str]) -> (u16, String) {
    let mut all = vec!["-o", "/dev/stderr", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    let out = server.curl(&all);
    (
        code(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// boto3: canned ACLs, grants, public-read buckets and objects, policies, blocks.
#[test]
fn public_reads_through_boto3() {
    boto3_with_other_user(&Server::plain(), "s3_public.py");
}

/// A public bucket attacked without a signature: writes, bodies, listings and traversal are
/// refused and change nothing; reads are paced per address.
#[test]
fn anonymous_attacks_on_a_public_bucket() {
    require("curl");
    require("aws");
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__SHARE_REQUESTS_PER_SECOND", "2"),
            ("KURA_LIMITS__SHARE_BURST", "20"),
        ],
    );
    let key = server.s3_key();
    let aws = |args: &[&str]| run(server.aws(&key).args(args));
    aws(&["s3api", "create-bucket", "--bucket", "pub"]);
    aws(&["s3api", "create-bucket", "--bucket", "priv"]);
    let f = server.data_dir().join("../body.txt");
    std::fs::write(&f, b"public bytes").unwrap();
    let f = f.to_str().unwrap();
    aws(&["s3", "cp", f, "s3://pub/page.txt"]);
    aws(&["s3", "cp", f, "s3://priv/secret.txt"]);
    aws(&[
        "s3api",
        "put-bucket-acl",
        "--bucket",
        "pub",
        "--acl",
        "public-read",
    ]);
    let url = |p: &str| server.url(p);

    let (s, body) = anon(&server, &[&url("/pub/page.txt")]);
    assert_eq!((s, body.as_str()), (200, "public bytes"));

    // writes of every kind: 403, nothing changed
    for args in [
        vec!["-X", "PUT", "--data-binary", "evil", "/pub/page.txt"],
        vec!["-X", "PUT", "--data-binary", "evil", "/pub/new.txt"],
        vec!["-X", "PUT", "/pub/empty.txt"],
        vec!["-X", "DELETE", "/pub/page.txt"],
        vec!["-X", "DELETE", "/pub"],
        vec!["-X", "POST", "--data-binary", "x", "/pub/page.txt?uploads"],
        vec![
            "-X",
            "POST",
            "-F",
            "key=up.txt",
            "-F",
            "file=@/etc/hostname",
            "/pub",
        ],
        vec![
            "-X",
            "PUT",
            "-H",
            "x-amz-acl: public-read-write",
            "/pub?acl",
        ],
        vec!["-X", "PUT", "/evil-bucket"],
    ] {
        let (last, rest) = args.split_last().unwrap();
        let u = url(last);
        let mut a: Vec<&str> = rest.to_vec();
        a.push(&u);
        let (s, body) = anon(&server, &a);
        assert_eq!(s, 403, "{args:?}: {body}");
        assert!(body.contains("AccessDenied"), "{args:?}: {body}");
    }
    // a GET or HEAD with a body is refused before the body is read
    let (s, body) = anon(
        &server,
        &["-X", "GET", "--data-binary", "x", &url("/pub/page.txt")],
    );
    assert_eq!(s, 403, "{body}");
    // listings, sub-resources and the service are not public
    for p in [
        "/pub",
        "/pub/",
        "/pub?list-type=2",
        "/pub?acl",
        "/pub?policy",
        "/pub/page.txt?acl",
        "/",
    ] {
        let (s, body) = anon(&server, &[&url(p)]);
        assert_eq!(s, 403, "{p}: {body}");
    }
    // the private bucket beside it, directly and by traversal
    for p in [
        "/priv/secret.txt",
        "/pub/../priv/secret.txt",
        "/pub/%2e%2e/priv/secret.txt",
        "/pub/..%2fpriv%2fsecret.txt",
        "/pub/%2E%2E%2Fpriv/secret.txt",
        "/pub//../priv/secret.txt",
        "/pub/page.txt/../../priv/secret.txt",
    ] {
        let (s, body) = anon(&server, &[&url(p)]);
        assert_ne!(s, 200, "{p}: {body}");
        assert!(!body.contains("public bytes"), "{p}");
    }
    let listed = aws(&["s3", "ls", "s3://pub"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("page.txt") && !listed.contains("new.txt") && !listed.contains("empty.txt"),
        "{listed}"
    );
    let got = aws(&["s3", "cp", "s3://pub/page.txt", "-"]);
    assert_eq!(got.stdout, b"public bytes");
    let buckets = aws(&["s3", "ls"]);
    assert!(!String::from_utf8_lossy(&buckets.stdout).contains("evil-bucket"));

    // the public access block: 403 even with the public-read ACL
    aws(&[
        "s3api",
        "put-public-access-block",
        "--bucket",
        "pub",
        "--public-access-block-configuration",
        "IgnorePublicAcls=true",
    ]);
    assert_eq!(anon(&server, &[&url("/pub/page.txt")]).0, 403);
    aws(&["s3api", "delete-public-access-block", "--bucket", "pub"]);

    // anonymous reads are paced per address (burst 20, then 2 a second): S3's 503 SlowDown
    // (the refused answer is read from the same burst: a later request may find a new token)
    let answers: Vec<(u16, String)> = (0..40)
        .map(|_| anon(&server, &["-i", &url("/pub/page.txt")]))
        .collect();
    let codes: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    let Some((_, body)) = answers.iter().find(|(s, _)| *s == 503) else {
        panic!("no SlowDown in {codes:?}");
    };
    assert!(codes.iter().all(|c| *c == 200 || *c == 503), "{codes:?}");
    assert!(body.contains("<Code>SlowDown</Code>"), "{body}");
    assert!(body.to_ascii_lowercase().contains("retry-after:"), "{body}");
    // signed requests are not slowed by the anonymous budget
    let got = aws(&["s3", "cp", "s3://pub/page.txt", "-"]);
    assert_eq!(got.stdout, b"public bytes");
}

/// A link to a public file may not rewrite how it is served: unsigned `response-*`
/// parameters are refused as AWS refuses them (no page made of a text file, no year-long
/// cache of a file that may be made private again), and a signed `response-content-type`
/// listing types (a browser takes the last: `text/plain,text/html` renders as HTML) is
/// dropped like any active type.
#[test]
fn response_header_rewrites_cannot_make_a_public_file_a_page() {
    require("curl");
    require("aws");
    require("python3");
    let server = Server::plain();
    let key = server.s3_key();
    let aws = |args: &[&str]| run(server.aws(&key).args(args));
    aws(&["s3api", "create-bucket", "--bucket", "pub"]);
    let f = server.data_dir().join("../page.txt");
    std::fs::write(&f, b"<h1>not a page</h1>").unwrap();
    aws(&["s3", "cp", f.to_str().unwrap(), "s3://pub/page.txt"]);
    aws(&[
        "s3api",
        "put-object-acl",
        "--bucket",
        "pub",
        "--key",
        "page.txt",
        "--acl",
        "public-read",
    ]);
    assert_eq!(anon(&server, &[&server.url("/pub/page.txt")]).0, 200);
    for q in [
        "response-content-type=text/html",
        "response-content-type=text/plain,text/html",
        "response-content-type=image/png",
        "response-cache-control=public,max-age=31536000",
        "response-expires=Thu,%2001%20Dec%202099%2016:00:00%20GMT",
        "response-content-disposition=inline",
        "response-content-encoding=gzip",
        "response-content-language=en",
    ] {
        let u = server.url(&format!("/pub/page.txt?{q}"));
        let (s, body) = anon(&server, &["-i", &u]);
        assert_eq!(s, 400, "{q}: {body}");
        assert!(body.contains("<Code>InvalidRequest</Code>"), "{q}: {body}");
        let lower = body.to_ascii_lowercase();
        assert!(
            !lower.contains("cache-control:") && !lower.contains("text/html"),
            "{q}: {body}"
        );
        let (s, _) = anon(&server, &["-I", &u]);
        assert_eq!(s, 400, "HEAD {q}");
    }
    // signed (a presigned URL): a list of types is refused like text/html, the stored type
    // is served
    for asked in [
        "text/plain,text/html",
        "text/plain;a=b,text/html",
        "text/html",
    ] {
        let presign = format!(
            "import boto3; from botocore.config import Config; \
             print(boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             config=Config(s3={{'addressing_style': 'path'}})).generate_presigned_url(\
             'get_object', Params={{'Bucket': 'pub', 'Key': 'page.txt', \
             'ResponseContentType': '{asked}'}}, ExpiresIn=300))",
            server.url("")
        );
        let out = run(Command::new("python3")
            .args(["-c", &presign])
            .env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"));
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (s, head) = anon(&server, &["-i", &url]);
        assert_eq!(s, 200, "{asked}: {head}");
        let ct = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            ct.contains("text/plain") && !ct.contains("html"),
            "{asked}: {ct}"
        );
    }
}
