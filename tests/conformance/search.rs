//! Search (docs/search.md) through the user API and `kura find`: results respect what the
//! caller may list and read, follow renames and deletes, match tags and fold case and accents;
//! hostile requests (FTS syntax, huge queries, forged cursors, foreign scopes, other origins,
//! no or wrong credentials) get a clear refusal and reveal nothing.

use crate::common::{code, require, run, Server, ADMIN_PW};

const EVE: &str = "eve:eve-password-1";

/// A GET of the search endpoint with `params` (URL-encoded by curl) as `auth`, with extra
/// curl arguments: (status, body).
fn search(
    server: &Server,
    auth: Option<&str>,
    params: &[(&str, &str)],
    extra: &[&str],
) -> (u16, String) {
    let mut args: Vec<String> = vec!["-G".into(), "-w".into(), "\n%{http_code}".into()];
    if let Some(a) = auth {
        args.push("-u".into());
        args.push(a.into());
    }
    for (k, v) in params {
        args.push("--data-urlencode".into());
        args.push(format!("{k}={v}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(server.url("/api/user/v1/search"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = server.curl(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let body = text.rsplit_once('\n').map_or("", |(b, _)| b).to_string();
    (code(&out), body)
}

/// The paths a search returns (status 200 required).
fn paths(server: &Server, auth: &str, q: &str, scope: Option<&str>) -> Vec<String> {
    let mut p = vec![("q", q)];
    if let Some(s) = scope {
        p.push(("scope", s));
    }
    let (status, body) = search(server, Some(auth), &p, &[]);
    assert_eq!(status, 200, "{q}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON page");
    let mut out: Vec<String> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["path"].as_str().expect("path").to_string())
        .collect();
    out.sort();
    out
}

fn admin() -> String {
    format!("admin:{ADMIN_PW}")
}

/// A bucket `docs` eve may list, with a folder `secret` she may not, and a few files.
fn setup(server: &Server) {
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "docs", "--group", "g"]));
    server.add_user("eve", "eve-password-1", &[]);
    for d in ["docs/secret", "docs/team", "docs/team/sub"] {
        assert_eq!(server.status(&["-X", "MKCOL", &server.dav(d)]), 201, "{d}");
    }
    for f in [
        "docs/%C3%89l%C3%A8ve%20Report.txt",
        "docs/secret/report-secret.txt",
        "docs/team/notes.txt",
        "docs/team/sub/deep%20report.txt",
    ] {
        assert_eq!(server.put(f, b"content"), 201, "{f}");
    }
    run(server
        .kura()
        .args(["chmod", "755", "/docs", "/docs/team", "/docs/team/sub"]));
    run(server.kura().args(["chmod", "750", "/docs/secret"]));
}

/// A second user sees only what she may list and read; the index follows tags, renames and
/// deletes at once; case and accents are folded; `kura find` answers as the API does.
#[test]
fn search_respects_permissions_and_follows_renames_tags_and_deletes() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    let all = vec![
        "/docs/secret/report-secret.txt",
        "/docs/team/sub/deep report.txt",
        "/docs/Élève Report.txt",
    ];
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(paths(&server, &admin(), "report", None), sorted);
    // eve cannot list /docs/secret: its file is not hers to find
    assert_eq!(
        paths(&server, EVE, "REPORT", None),
        vec!["/docs/team/sub/deep report.txt", "/docs/Élève Report.txt"]
    );
    // nor when the folder lets her pass but not list (x without r)
    run(server.kura().args(["chmod", "751", "/docs/secret"]));
    assert!(!paths(&server, EVE, "report", None)
        .iter()
        .any(|p| p.contains("secret")));
    // nor a file she may not read in a folder she may list
    run(server
        .kura()
        .args(["chmod", "600", "/docs/team/sub/deep report.txt"]));
    assert_eq!(
        paths(&server, EVE, "report", None),
        vec!["/docs/Élève Report.txt"]
    );
    // case and accents fold both ways
    for q in ["eleve", "ÉLÈVE", "élève rep", "\"ve rep\""] {
        assert_eq!(
            paths(&server, EVE, q, None),
            vec!["/docs/Élève Report.txt"],
            "{q}"
        );
    }
    // tags and descriptions set over WebDAV are found at once
    let body = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:K="urn:kura:props"><D:set><D:prop><K:tags>status=final</K:tags><K:description>Minutes of the annual meeting</K:description></D:prop></D:set></D:propertyupdate>"#;
    let out = server.curl_admin(&[
        "-X",
        "PROPPATCH",
        "--data-binary",
        body,
        "-w",
        "\n%{http_code}",
        &server.dav("docs/team/notes.txt"),
    ]);
    assert_eq!(code(&out), 207);
    for q in [
        "tag:status=final",
        "tag:status",
        "annual meeting",
        "MINUTES notes",
    ] {
        assert_eq!(
            paths(&server, EVE, q, None),
            vec!["/docs/team/notes.txt"],
            "{q}"
        );
    }
    assert!(paths(&server, EVE, "tag:status=draft", None).is_empty());
    // a folder rename: everything below is found under the new name, nothing under the old
    let dest = format!("Destination: {}", server.dav("docs/crew"));
    assert_eq!(
        server.status(&["-X", "MOVE", "-H", &dest, &server.dav("docs/team")]),
        201
    );
    assert_eq!(
        paths(&server, EVE, "tag:status=final", None),
        vec!["/docs/crew/notes.txt"]
    );
    assert_eq!(
        paths(&server, EVE, "notes", Some("/docs/crew")),
        vec!["/docs/crew/notes.txt"]
    );
    assert_eq!(paths(&server, EVE, "crew", None), vec!["/docs/crew"]);
    assert!(paths(&server, EVE, "team", None).is_empty());
    // a delete: gone from the results at once
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("docs/crew/notes.txt")]),
        204
    );
    assert!(paths(&server, EVE, "notes", None).is_empty());
    assert!(paths(&server, EVE, "tag:status", None).is_empty());
    // kura find: eve's view and the administrator's
    let out = run(server
        .kura()
        .args(["find", "report", "--user", "eve", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("find JSON");
    assert_eq!(v["items"].as_array().expect("items").len(), 1, "{v}");
    let out = run(server
        .kura()
        .args(["find", "report", "--bucket", "docs", "--path", "secret"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/docs/secret/report-secret.txt"), "{text}");
    let out = server
        .kura()
        .args(["find", "report", "--user", "nobody"])
        .output()
        .expect("kura");
    assert!(!out.status.success());
}

/// Pages follow the cursor to the end, each result once.
#[test]
fn search_pages_with_a_cursor() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    for i in 0..7 {
        assert_eq!(server.put(&format!("docs/page-{i}.txt"), b"x"), 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let mut p = vec![("q", "page-"), ("limit", "3")];
        if let Some(c) = &cursor {
            p.push(("cursor", c.as_str()));
        }
        let (status, body) = search(&server, Some(EVE), &p, &[]);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        for i in v["items"].as_array().expect("items") {
            seen.push(i["path"].as_str().expect("path").to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    // newest first
    let want: Vec<String> = (0..7)
        .rev()
        .map(|i| format!("/docs/page-{i}.txt"))
        .collect();
    assert_eq!(seen, want);
}

/// Hostile requests: FTS syntax is taken literally, oversize queries and forged cursors are
/// refused, a scope the caller may not list is refused, other origins, missing and wrong
/// credentials too (and the throttle locks out repeated wrong passwords).
#[test]
fn search_refuses_hostile_requests() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    // FTS5 syntax never reaches FTS5 as syntax: no error, nothing it should not match
    for q in [
        "report\" OR \"secret",
        "NEAR(report secret)",
        "*",
        "report OR secret",
        "r*",
        "{name}:x",
        "^report",
        "secret AND",
    ] {
        let (status, body) = search(&server, Some(EVE), &[("q", q)], &[]);
        assert_eq!(status, 200, "{q}: {body}");
        assert!(!body.contains("report-secret"), "{q}: {body}");
    }
    // a lone quote is an empty phrase: an empty query
    assert_eq!(search(&server, Some(EVE), &[("q", "\"")], &[]).0, 400);
    // oversize query and query string
    let big = "x".repeat(1500);
    assert_eq!(search(&server, Some(EVE), &[("q", &big)], &[]).0, 400);
    let huge = "x".repeat(5000);
    assert_eq!(search(&server, Some(EVE), &[("q", &huge)], &[]).0, 414);
    // forged cursors and limits
    for c in ["abc", "-1", "0", "99999999999999999999", "1 OR 1=1"] {
        assert_eq!(
            search(&server, Some(EVE), &[("q", "report"), ("cursor", c)], &[]).0,
            400,
            "{c}"
        );
    }
    let (status, body) = search(&server, Some(EVE), &[("q", "report"), ("cursor", "1")], &[]);
    assert_eq!(
        (status, body.contains("\"items\":[]")),
        (200, true),
        "{body}"
    );
    for l in ["0", "1001", "x"] {
        assert_eq!(
            search(&server, Some(EVE), &[("q", "report"), ("limit", l)], &[]).0,
            400,
            "{l}"
        );
    }
    assert_eq!(search(&server, Some(EVE), &[("q", "")], &[]).0, 400);
    assert_eq!(search(&server, Some(EVE), &[], &[]).0, 400);
    let (status, _) = search(&server, Some(EVE), &[("q", "a"), ("q", "b")], &[]);
    assert_eq!(status, 400, "a repeated parameter");
    // scopes outside her rights, or not paths at all
    assert_eq!(
        search(
            &server,
            Some(EVE),
            &[("q", "report"), ("scope", "/docs/secret")],
            &[]
        )
        .0,
        403
    );
    assert_eq!(
        search(
            &server,
            Some(EVE),
            &[("q", "report"), ("scope", "/docs/../docs/secret")],
            &[]
        )
        .0,
        400
    );
    assert_eq!(
        search(
            &server,
            Some(EVE),
            &[("q", "report"), ("scope", "/nope")],
            &[]
        )
        .0,
        404
    );
    assert_eq!(
        search(
            &server,
            Some(EVE),
            &[("q", "report"), ("scope", "/docs/Élève Report.txt")],
            &[]
        )
        .0,
        400
    );
    // browsers on other sites
    let origin = search(
        &server,
        Some(EVE),
        &[("q", "report")],
        &["-H", "Origin: https://evil.example"],
    );
    assert_eq!(origin.0, 403, "{}", origin.1);
    assert!(!origin.1.contains("docs"));
    assert_eq!(
        search(
            &server,
            Some(EVE),
            &[("q", "report")],
            &["-H", "Sec-Fetch-Site: cross-site"]
        )
        .0,
        403
    );
    assert_eq!(
        search(&server, Some(EVE), &[("q", "x")], &["-X", "POST"]).0,
        405
    );
    assert_eq!(
        server
            .curl(&[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-u",
                EVE,
                &server.url("/api/user/v1/other")
            ])
            .stdout,
        b"404"
    );
    // no credentials, wrong ones, then the throttle
    assert_eq!(search(&server, None, &[("q", "report")], &[]).0, 401);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(search(&server, Some("eve:wrong-password"), &[("q", "report")], &[]).0);
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
    assert_eq!(
        search(&server, Some(EVE), &[("q", "report")], &[]).0,
        429,
        "locked out even with the right password"
    );
}

/// The browser app's session cookie authenticates a search as its user (no Basic), and a
/// request of another site carrying it is refused.
#[test]
fn search_through_the_browser_session() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    let out = server.curl(&[
        "-u",
        EVE,
        "-X",
        "POST",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &server.url("/api/user/v1/session"),
    ]);
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let cookie = head
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l["set-cookie:".len()..].trim().to_string())
        })
        .and_then(|c| c.split(';').next().map(str::to_string))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    let cookie = format!("Cookie: {cookie}");
    let (status, body) = search(&server, None, &[("q", "report")], &["-H", &cookie]);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Élève Report.txt") && !body.contains("report-secret"),
        "{body}"
    );
    let (status, _) = search(
        &server,
        None,
        &[("q", "report")],
        &["-H", &cookie, "-H", "Origin: https://evil.example"],
    );
    assert_eq!(status, 403);
    let (status, _) = search(
        &server,
        None,
        &[("q", "report")],
        &["-H", "Cookie: kura=forged"],
    );
    assert_eq!(status, 401);
}
