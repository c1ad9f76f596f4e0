//! S3 CORS against a real server: boto3 sets the rules and makes presigned requests with an
//! Origin; curl sends browsers' preflights, allowed and refused, and attacks.

use crate::common::{boto3_with_other_user, code, require, run, Server};

const APP: &str = "https://app.example.org";

/// Status and headers (lower-cased) of an unsigned request made with curl.
fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut args = vec![
        "-o".to_string(),
        "-".to_string(),
        "-D".to_string(),
        "/dev/stderr".to_string(),
        "-w".to_string(),
        "\n%{http_code}".to_string(),
        "-X".to_string(),
        method.to_string(),
    ];
    for (k, v) in headers {
        args.push("-H".into());
        args.push(format!("{k}: {v}"));
    }
    args.push(server.url(path));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = server.curl(&args);
    let status = code(&out);
    let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    (status, head, body)
}

fn preflight(
    server: &Server,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> (u16, String, String) {
    let mut h = vec![
        ("Origin", origin),
        ("Access-Control-Request-Method", method),
    ];
    if let Some(x) = headers {
        h.push(("Access-Control-Request-Headers", x));
    }
    request(server, "OPTIONS", path, &h)
}

/// boto3: Put/Get/DeleteBucketCors, presigned GET/PUT with Origin, MalformedXML, bad rules,
/// another user refused.
#[test]
fn cors_rules_through_boto3() {
    boto3_with_other_user(&Server::plain(), "s3_cors.py");
}

/// A browser's preflights, answered from the bucket's rules exactly as AWS answers them.
#[test]
fn cors_preflights_allowed_and_refused() {
    require("curl");
    require("aws");
    let server = Server::plain();
    let key = server.s3_key();
    run(server
        .aws(&key)
        .args(["s3api", "create-bucket", "--bucket", "web"]));
    run(server
        .aws(&key)
        .args(["s3api", "create-bucket", "--bucket", "closed"]));
    let rules = format!(
        r#"{{"CORSRules":[{{"AllowedOrigins":["{APP}"],"AllowedMethods":["GET","PUT"],"AllowedHeaders":["content-type","x-amz-*"],"ExposeHeaders":["ETag"],"MaxAgeSeconds":600}}]}}"#
    );
    run(server.aws(&key).args([
        "s3api",
        "put-bucket-cors",
        "--bucket",
        "web",
        "--cors-configuration",
        &rules,
    ]));

    // allowed: origin, method and headers all in the rule
    let (s, h, _) = preflight(
        &server,
        "/web/some/object.txt",
        APP,
        "PUT",
        Some("Content-Type, X-Amz-Date"),
    );
    assert_eq!(s, 200, "{h}");
    assert!(
        h.contains(&format!("access-control-allow-origin: {APP}")),
        "{h}"
    );
    assert!(h.contains("access-control-allow-methods: get, put"), "{h}");
    assert!(
        h.contains("access-control-allow-headers: content-type, x-amz-date"),
        "{h}"
    );
    assert!(h.contains("access-control-expose-headers: etag"), "{h}");
    assert!(h.contains("access-control-max-age: 600"), "{h}");
    assert!(
        h.contains("vary: origin, access-control-request-headers, access-control-request-method"),
        "{h}"
    );
    // the bucket URL itself too (ListObjects from a page)
    assert_eq!(preflight(&server, "/web", APP, "GET", None).0, 200);

    // refused: another origin, a look-alike origin, a method or a header not in the rule
    for (origin, method, headers) in [
        ("https://evil.example", "GET", None),
        ("https://app.example.org.evil.example", "GET", None),
        ("http://app.example.org", "GET", None),
        (APP, "DELETE", None),
        (APP, "PATCH", None),
        (APP, "PUT", Some("content-type, authorization")),
    ] {
        let (s, h, body) = preflight(&server, "/web/object.txt", origin, method, headers);
        assert_eq!(s, 403, "{origin} {method} {headers:?}: {h}");
        assert!(body.contains("<Code>AccessForbidden</Code>"), "{body}");
        assert!(
            body.contains("<ResourceType>OBJECT</ResourceType>"),
            "{body}"
        );
        assert!(!h.contains("access-control-allow-origin"), "{h}");
    }
    // a bucket without rules, and one that does not exist: the same refusal
    for path in ["/closed/x", "/no-such-bucket/x"] {
        let (s, _, body) = preflight(&server, path, APP, "GET", None);
        assert_eq!(s, 403);
        assert!(
            body.contains("CORS is not enabled for this bucket"),
            "{body}"
        );
    }
    // not a preflight: no Origin, or no requested method
    let (s, _, body) = request(
        &server,
        "OPTIONS",
        "/web/x",
        &[("Access-Control-Request-Method", "GET")],
    );
    assert_eq!(s, 400, "{body}");
    let (s, _, _) = request(&server, "OPTIONS", "/web/x", &[("Origin", APP)]);
    assert_eq!(s, 400);

    // a preflight with forged credentials is still only a preflight: no failed login counted,
    // nothing served but the CORS answer
    let forged = "AWS4-HMAC-SHA256 Credential=AKIAFORGED/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";
    for _ in 0..8 {
        let (s, h, _) = request(
            &server,
            "OPTIONS",
            "/web/object.txt",
            &[
                ("Origin", APP),
                ("Access-Control-Request-Method", "GET"),
                ("Authorization", forged),
            ],
        );
        assert_eq!(s, 200, "{h}");
    }
    // an unsigned actual request from the allowed origin is refused, with the CORS headers
    // (the page can read the error), and changes nothing
    let (s, h, body) = request(&server, "PUT", "/web/object.txt", &[("Origin", APP)]);
    assert_eq!(s, 403, "{body}");
    assert!(
        h.contains(&format!("access-control-allow-origin: {APP}")),
        "{h}"
    );
    let (s, _, _) = request(&server, "GET", "/web/object.txt", &[]);
    assert_eq!(s, 403);
    let listed = run(server
        .aws(&key)
        .args(["s3api", "list-objects-v2", "--bucket", "web"]));
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("object.txt"));

    // WebDAV's OPTIONS stays WebDAV's
    let (s, h, _) = request(&server, "OPTIONS", "/dav/", &[("Origin", APP)]);
    assert_eq!(s, 200);
    assert!(h.contains("dav: 1"), "{h}");

    // the rules follow their bucket when WebDAV renames it, and go when it is deleted: a new
    // bucket of the same name starts without them
    let dest = format!("Destination: {}", server.dav("site"));
    assert_eq!(
        server.status(&["-X", "MOVE", "-H", &dest, &server.dav("web")]),
        201
    );
    assert_eq!(preflight(&server, "/site/x", APP, "GET", None).0, 200);
    assert_eq!(preflight(&server, "/web/x", APP, "GET", None).0, 403);
    run(server
        .aws(&key)
        .args(["s3api", "delete-bucket", "--bucket", "site"]));
    run(server
        .aws(&key)
        .args(["s3api", "create-bucket", "--bucket", "site"]));
    assert_eq!(preflight(&server, "/site/x", APP, "GET", None).0, 403);
    let got = server
        .aws(&key)
        .args(["s3api", "get-bucket-cors", "--bucket", "site"])
        .output()
        .expect("aws");
    assert!(String::from_utf8_lossy(&got.stderr).contains("NoSuchCORSConfiguration"));

    // DeleteBucketCors: preflights are refused again
    run(server.aws(&key).args([
        "s3api",
        "put-bucket-cors",
        "--bucket",
        "site",
        "--cors-configuration",
        &rules,
    ]));
    assert_eq!(preflight(&server, "/site/x", APP, "GET", None).0, 200);
    run(server
        .aws(&key)
        .args(["s3api", "delete-bucket-cors", "--bucket", "site"]));
    assert_eq!(preflight(&server, "/site/x", APP, "GET", None).0, 403);
}

/// Preflights are unsigned and each reads the bucket's rules: they are paced per address
/// with anonymous reads (S3's 503 SlowDown over the budget), so a flood of them from one
/// address costs the store little; signed requests are not slowed.
#[test]
fn preflight_floods_are_paced_per_address() {
    require("curl");
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__SHARE_REQUESTS_PER_SECOND", "2"),
            ("KURA_LIMITS__SHARE_BURST", "20"),
        ],
    );
    let key = server.s3_key();
    run(server
        .aws(&key)
        .args(["s3api", "create-bucket", "--bucket", "flood"]));
    // the budget refills at 2/s, so on a slow machine a later request may pass again: the
    // first refusal is what is checked
    let mut codes = Vec::new();
    let mut refused = None;
    for _ in 0..40 {
        let (s, head, body) = preflight(&server, "/flood/k", APP, "GET", None);
        codes.push(s);
        if s == 503 && refused.is_none() {
            refused = Some((head, body));
        }
    }
    let Some((head, body)) = refused else {
        panic!("no SlowDown in {codes:?}");
    };
    assert!(body.contains("<Code>SlowDown</Code>"), "{body}");
    assert!(head.contains("retry-after:"), "{head}");
    // signed requests are not slowed by the anonymous budget
    run(server.aws(&key).args(["s3", "ls", "s3://flood"]));
}
