//! Tags and descriptions (docs/search.md): set through S3 (boto3), read as WebDAV properties in
//! `urn:kura:props` and back; they follow MOVE and COPY and come back with a restored version.

use crate::common::{boto3_with_other_user, code, require, run, Server};

const NS: &str = "urn:kura:props";

/// A Depth: 0 PROPFIND of Kura's tags and description, as `admin`: (status, body).
fn props(server: &Server, path: &str) -> (u16, String) {
    let body = format!(
        r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:K="{NS}"><D:prop><K:tags/><K:description/></D:prop></D:propfind>"#
    );
    let out = server.curl_admin(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 0",
        "-H",
        "Content-Type: application/xml",
        "--data-binary",
        &body,
        "-w",
        "\n%{http_code}",
        &server.dav(path),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (code(&out), text)
}

/// A PROPPATCH setting Kura's tags and description, as `user:password`: (status, body).
fn patch(server: &Server, auth: &str, path: &str, tags: &str, description: &str) -> (u16, String) {
    let body = format!(
        r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:K="{NS}"><D:set><D:prop><K:tags>{tags}</K:tags><K:description>{description}</K:description></D:prop></D:set></D:propertyupdate>"#
    );
    let out = server.curl(&[
        "-u",
        auth,
        "-X",
        "PROPPATCH",
        "-H",
        "Content-Type: application/xml",
        "--data-binary",
        &body,
        "-w",
        "\n%{http_code}",
        &server.dav(path),
    ]);
    (
        code(&out),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The object's tags as aws-cli reads them, sorted "k=v" strings.
fn s3_tags(server: &Server, key: &crate::common::S3Key, object: &str) -> Vec<String> {
    let out = run(server.aws(key).args([
        "s3api",
        "get-object-tagging",
        "--bucket",
        "tagged",
        "--key",
        object,
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tagging JSON");
    let mut t: Vec<String> = v["TagSet"]
        .as_array()
        .expect("TagSet")
        .iter()
        .map(|t| {
            format!(
                "{}={}",
                t["Key"].as_str().unwrap(),
                t["Value"].as_str().unwrap()
            )
        })
        .collect();
    t.sort();
    t
}

/// boto3 tags objects and buckets (limits, directives, multipart, another user refused); WebDAV
/// reads them as `K:tags` and writes them and a description back, which aws-cli reads.
#[test]
fn tags_set_through_s3_read_and_written_as_webdav_properties() {
    require("curl");
    require("aws");
    let server = Server::plain();
    boto3_with_other_user(&server, "s3_tags.py");
    let key = server.s3_key();
    let (status, body) = props(&server, "tagged/doc.txt");
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("project=kura&amp;year=2026"), "{body}");
    // written over WebDAV (URL-encoded, XML-escaped), read through S3
    let (status, body) = patch(
        &server,
        &format!("admin:{}", crate::common::ADMIN_PW),
        "tagged/doc.txt",
        "team=red&amp;x=%C3%A9",
        "Rapport annuel &lt;2026&gt;",
    );
    assert_eq!(status, 207, "{body}");
    assert!(!body.contains("403") && !body.contains("424"), "{body}");
    assert_eq!(s3_tags(&server, &key, "doc.txt"), vec!["team=red", "x=é"]);
    let (_, body) = props(&server, "tagged/doc.txt");
    assert!(body.contains("Rapport annuel &lt;2026&gt;"), "{body}");
    // eleven tags are refused over WebDAV too, and nothing changes
    let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
    let (status, body) = patch(
        &server,
        &format!("admin:{}", crate::common::ADMIN_PW),
        "tagged/doc.txt",
        &eleven.join("&amp;"),
        "other",
    );
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("403"), "{body}");
    assert_eq!(s3_tags(&server, &key, "doc.txt"), vec!["team=red", "x=é"]);
    let (_, body) = props(&server, "tagged/doc.txt");
    assert!(body.contains("Rapport annuel"), "{body}");
}

/// Tags and description follow a WebDAV MOVE and COPY, stay with the version an overwrite
/// replaces, and come back when that version is restored.
#[test]
fn tags_follow_move_copy_and_versions() {
    require("curl");
    let server = Server::plain();
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "tagged", "--group", "g"]));
    assert_eq!(server.put("tagged/a.txt", b"first"), 201);
    let admin = format!("admin:{}", crate::common::ADMIN_PW);
    let (status, body) = patch(&server, &admin, "tagged/a.txt", "k=v1", "the first draft");
    assert_eq!(status, 207, "{body}");
    // the change is in the audit trail, as WebDAV's, by admin
    let out = run(server
        .kura()
        .args(["audit", "--path", "/tagged/a.txt", "--json"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"annotate\"") && text.contains("webdav"),
        "{text}"
    );
    // MOVE: the properties go with the file
    let dest = format!("Destination: {}", server.dav("tagged/b.txt"));
    assert_eq!(
        server.status(&["-X", "MOVE", "-H", &dest, &server.dav("tagged/a.txt")]),
        201
    );
    let (_, body) = props(&server, "tagged/b.txt");
    assert!(
        body.contains(">k=v1<") && body.contains("the first draft"),
        "{body}"
    );
    // COPY: the copy has them too, and the source keeps them
    let dest = format!("Destination: {}", server.dav("tagged/c.txt"));
    assert_eq!(
        server.status(&["-X", "COPY", "-H", &dest, &server.dav("tagged/b.txt")]),
        201
    );
    let (_, body) = props(&server, "tagged/c.txt");
    assert!(
        body.contains(">k=v1<") && body.contains("the first draft"),
        "{body}"
    );
    // a WebDAV PUT writes new content into the same resource: the properties stay, as dead
    // properties do; the replaced version keeps the ones it had
    assert_eq!(server.put("tagged/b.txt", b"second"), 204);
    let (_, body) = props(&server, "tagged/b.txt");
    assert!(body.contains(">k=v1<"), "{body}");
    let admin2 = format!("admin:{}", crate::common::ADMIN_PW);
    let (status, body) = patch(&server, &admin2, "tagged/b.txt", "k=v2", "the second draft");
    assert_eq!(status, 207, "{body}");
    // restoring the first version brings its own tags back
    run(server.kura().args(["restore", "/tagged/b.txt"]));
    assert_eq!(server.get("tagged/b.txt"), b"first");
    let (_, body) = props(&server, "tagged/b.txt");
    assert!(
        body.contains(">k=v1<") && body.contains("the first draft"),
        "{body}"
    );
    // a deleted file restored from the trash has them too
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("tagged/c.txt")]),
        204
    );
    run(server.kura().args(["restore", "/tagged/c.txt"]));
    let (_, body) = props(&server, "tagged/c.txt");
    assert!(
        body.contains(">k=v1<") && body.contains("the first draft"),
        "{body}"
    );
}

/// A user who may not change a file cannot tag it or describe it (403 for the property, 424
/// for the rest, nothing changed), and one who may not read it does not see its tags.
#[test]
fn tags_cannot_be_changed_or_read_without_the_rights() {
    require("curl");
    let server = Server::plain();
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "tagged", "--group", "g"]));
    server.add_user("mallory", "mallory-pw-1", &[]);
    assert_eq!(server.put("tagged/f.txt", b"x"), 201);
    let admin = format!("admin:{}", crate::common::ADMIN_PW);
    assert_eq!(patch(&server, &admin, "tagged/f.txt", "k=v", "mine").0, 207);
    run(server.kura().args(["chmod", "755", "/tagged"]));
    run(server.kura().args(["chmod", "644", "/tagged/f.txt"]));
    let (status, body) = patch(
        &server,
        "mallory:mallory-pw-1",
        "tagged/f.txt",
        "k=evil",
        "evil",
    );
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("403") && !body.contains("200 OK"), "{body}");
    let (_, body) = props(&server, "tagged/f.txt");
    assert!(body.contains(">k=v<") && body.contains(">mine<"), "{body}");
    // no read right: PROPFIND shows neither tags nor description
    run(server.kura().args(["chmod", "640", "/tagged/f.txt"]));
    let body = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:K="urn:kura:props"><D:prop><K:tags/><K:description/></D:prop></D:propfind>"#;
    let out = server.curl(&[
        "-u",
        "mallory:mallory-pw-1",
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 0",
        "--data-binary",
        body,
        &server.dav("tagged/f.txt"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("k=v") && !text.contains("mine"), "{text}");
    let out = server.curl(&[
        "-u",
        "mallory:mallory-pw-1",
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        &server.dav("tagged/"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("k=v") && !text.contains("mine"), "{text}");
}
