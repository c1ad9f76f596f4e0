//! The admin REST API: the same operations as the CLI, JSON errors with stable codes, and an
//! OpenAPI document that validates.

use std::process::Command;

use crate::common::{code, require, run, Server, ADMIN_PW};

fn api(
    server: &Server,
    auth: &[&str],
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let url = server.url(&format!("/api/v1{path}"));
    let mut args: Vec<&str> = vec!["-X", method, "-w", "\n%{http_code}"];
    args.extend_from_slice(auth);
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
fn admin_api_end_to_end_with_negative_cases() {
    require("curl");
    let server = Server::plain();
    let admin_auth = format!("admin:{ADMIN_PW}");
    let a = ["-u", admin_auth.as_str()];

    // users, groups, memberships, quota, bucket, keys, permissions
    let ann = r#"{"name":"ann","password":"ann-pw","group":"family","create_buckets":true}"#;
    // a group is never created as a side effect: a typo would make a new one
    let (s, b) = api(&server, &a, "POST", "/users", Some(ann));
    assert_eq!(s, 404, "{b}");
    assert!(b.contains("group family"), "{b}");
    let (s, b) = api(&server, &a, "POST", "/groups", Some(r#"{"name":"family"}"#));
    assert_eq!(s, 201, "{b}");
    let (s, b) = api(&server, &a, "POST", "/users", Some(ann));
    assert_eq!(s, 201, "{b}");
    assert!(b.contains(r#""primary_group":"family""#), "{b}");
    let (s, b) = api(&server, &a, "POST", "/users", Some(r#"{"name":"bob"}"#));
    assert_eq!(s, 201);
    assert!(
        b.contains(r#""password":""#),
        "a generated password is returned once: {b}"
    );
    assert_eq!(
        api(&server, &a, "PUT", "/groups/family/members/bob", None).0,
        200
    );
    let (s, b) = api(
        &server,
        &a,
        "PUT",
        "/groups/family/quota",
        Some(r#"{"bytes":1048576,"objects":100}"#),
    );
    assert_eq!(s, 200);
    assert!(
        b.contains(r#""quota_bytes":1048576"#) && b.contains("\"bob\""),
        "{b}"
    );
    let (s, b) = api(
        &server,
        &a,
        "POST",
        "/buckets",
        Some(r#"{"name":"photos","group":"family","owner":"ann"}"#),
    );
    assert_eq!(s, 201, "{b}");
    let (s, b) = api(&server, &a, "POST", "/keys", Some(r#"{"user":"ann"}"#));
    assert_eq!(s, 201);
    assert!(b.contains("secret_access_key"), "{b}");
    let (s, b) = api(&server, &a, "GET", "/keys?user=ann", None);
    assert!(
        s == 200 && b.contains("\"user\":\"ann\"") && !b.contains("secret"),
        "{b}"
    );
    let (s, b) = api(
        &server,
        &a,
        "PATCH",
        "/permissions",
        Some(r#"{"path":"/photos","mode":"750"}"#),
    );
    assert!(s == 200 && b.contains(r#""mode":"750""#), "{b}");
    let (s, b) = api(&server, &a, "GET", "/permissions?path=/photos", None);
    assert!(
        s == 200 && b.contains(r#""owner":"ann""#) && b.contains(r#""group":"family""#),
        "{b}"
    );
    // the CLI sees what the API did, at once
    let usage =
        String::from_utf8_lossy(&run(server.kura().args(["usage", "family"])).stdout).into_owned();
    assert!(usage.contains("family\t0\t1048576\t0\t100"), "{usage}");
    // ann can log in with the password set through the API
    let ann = code(&server.curl(&[
        "-u",
        "ann:ann-pw",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 0",
        &server.dav("photos/"),
    ]));
    assert_eq!(ann, 207);

    // negative cases: stable codes, nothing changed
    let (s, b) = api(&server, &["-u", "ann:ann-pw"], "GET", "/users", None);
    assert!(s == 403 && b.contains(r#""code":"forbidden""#), "{s} {b}");
    let (s, b) = api(&server, &[], "GET", "/users", None);
    assert!(
        s == 401 && b.contains(r#""code":"unauthorized""#),
        "{s} {b}"
    );
    let (s, b) = api(&server, &a, "POST", "/groups", Some(r#"{"name": "broken""#));
    assert!(s == 400 && b.contains(r#""code":"invalid""#), "{s} {b}");
    let (s, b) = api(
        &server,
        &a,
        "POST",
        "/groups",
        Some(r#"{"name":"x","unknown":1}"#),
    );
    assert!(s == 400 && b.contains(r#""code":"invalid""#), "{s} {b}");
    let (s, b) = api(&server, &a, "GET", "/users/nobody", None);
    assert!(s == 404 && b.contains(r#""code":"not_found""#), "{s} {b}");
    let (s, b) = api(&server, &a, "POST", "/users", Some(r#"{"name":"ann"}"#));
    assert!(s == 409 && b.contains(r#""code":"conflict""#), "{s} {b}");
    let (s, b) = api(
        &server,
        &a,
        "PUT",
        "/groups/family/quota",
        Some(r#"{"bytes":-1}"#),
    );
    assert!(s == 400 && b.contains(r#""code":"invalid""#), "{s} {b}");
    assert_eq!(
        api(&server, &a, "DELETE", "/keys/KURANOSUCHKEY", None).0,
        404
    );
    let (_, users) = api(&server, &a, "GET", "/users", None);
    assert_eq!(users.matches("\"name\"").count(), 3, "{users}");

    // an API token works like an administrator and stops working when revoked
    let out = String::from_utf8_lossy(
        &run(server.kura().args(["token", "create", "--name", "ci"])).stdout,
    )
    .into_owned();
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .expect("token")
        .trim()
        .to_string();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("token id:"))
        .expect("id")
        .trim()
        .to_string();
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(
        api(&server, &["-H", &bearer], "GET", "/groups", None).0,
        200
    );
    run(server.kura().args(["token", "revoke", &id]));
    assert_eq!(
        api(&server, &["-H", &bearer], "GET", "/groups", None).0,
        401
    );
    assert_eq!(api(&server, &a, "DELETE", "/users/bob", None).0, 204);
    // the last administrator stays, whoever asks
    let (s, b) = api(&server, &a, "DELETE", "/users/admin", None);
    assert!(
        s == 409 && b.contains("last administrator") && b.contains(r#""code":"conflict""#),
        "{s} {b}"
    );
    assert_eq!(api(&server, &a, "GET", "/users/admin", None).0, 200);
}

#[test]
fn openapi_documents_validate() {
    require("python3");
    let server = Server::plain();
    let (s, admin_doc) = api(
        &server,
        &["-u", &format!("admin:{ADMIN_PW}")],
        "GET",
        "/openapi.json",
        None,
    );
    assert_eq!(s, 200);
    // the user API's document, next to it, for any signed-in user
    server.add_user("ann", "ann-pw-12345", &[]);
    let out = server.curl(&[
        "-f",
        "-u",
        "ann:ann-pw-12345",
        &server.url("/api/user/v1/openapi.json"),
    ]);
    let user_doc = String::from_utf8_lossy(&out.stdout).into_owned();
    for (name, doc) in [("admin", admin_doc), ("user", user_doc)] {
        assert!(doc.contains("\"openapi\": \"3."), "{name}: {doc}");
        let file = server.root.path().join(format!("{name}-openapi.json"));
        std::fs::write(&file, &doc).expect("write");
        let out = run(Command::new("python3").arg("-c").arg(
            "import json,sys; from openapi_spec_validator import validate; d=json.load(open(sys.argv[1])); validate(d); print('valid OpenAPI', d['openapi'], len(d['paths']), 'paths')",
        ).arg(&file));
        println!("{name}: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
}

/// A page on another origin, in a browser that holds an administrator's Basic credentials,
/// posts a form (`text/plain`: no CORS preflight) to the API: refused with 403 and nothing
/// created. The same request from the server's own origin, or without `Origin` (curl,
/// scripts), works.
#[test]
fn a_page_of_another_origin_cannot_use_the_api() {
    require("curl");
    let server = Server::plain();
    let basic = format!("admin:{ADMIN_PW}");
    let post = |origin: Option<String>, name: &str| -> (u16, String) {
        let url = server.url("/api/v1/groups");
        let body = format!("{{\"name\":\"{name}\"}}");
        let mut args: Vec<String> = ["-X", "POST", "-w", "\n%{http_code}", "-u", &basic]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["-H".into(), "Content-Type: text/plain".into()]);
        if let Some(o) = origin {
            args.extend(["-H".into(), format!("Origin: {o}")]);
        }
        args.extend(["--data-binary".into(), body, url]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = String::from_utf8_lossy(&server.curl(&refs).stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').expect("status line");
        (status.trim().parse().expect("status"), body.to_string())
    };
    for evil in [
        "https://evil.example".to_string(),
        "null".to_string(),
        format!("http://127.0.0.1:{}.evil.example", server.port),
    ] {
        let (s, body) = post(Some(evil.clone()), "csrf");
        assert_eq!(s, 403, "Origin {evil}: {body}");
        assert!(body.contains("\"forbidden\""), "{body}");
    }
    let (s, _) = api(&server, &["-u", &basic], "GET", "/groups/csrf", None);
    assert_eq!(s, 404, "a cross-origin POST created the group");
    // a browser's cached Basic credentials count for nothing, even from Kura's own origin
    // (the browser app uses a session); a script without Origin must send JSON as JSON
    let own = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(post(Some(own), "same-origin").0, 403);
    assert_eq!(post(None, "no-origin").0, 400);
    let (s, _) = api(
        &server,
        &["-u", &basic],
        "POST",
        "/groups",
        Some("{\"name\":\"no-origin\"}"),
    );
    assert_eq!(s, 201);
}
