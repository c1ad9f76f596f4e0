//! Persistent locks: they survive a restart, S3 writes honour them (423), and of 20 clients
//! racing for one exclusive lock exactly one wins.

use std::process::{Command, Stdio};

use crate::common::{code, require, run, Server, ADMIN_PW};

const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>finder</D:owner></D:lockinfo>"#;

fn lock(server: &Server, path: &str, depth: &str) -> (u16, Option<String>) {
    lock_as(server, &format!("admin:{ADMIN_PW}"), path, depth, LOCKINFO)
}

/// LOCK with credentials `auth` (`user:password`) and body `body`: the status and the
/// Lock-Token header as sent (`<urn:uuid:...>`).
pub(crate) fn lock_as(
    server: &Server,
    auth: &str,
    path: &str,
    depth: &str,
    body: &str,
) -> (u16, Option<String>) {
    let out = server.curl(&[
        "-u",
        auth,
        "-X",
        "LOCK",
        "-H",
        &format!("Depth: {depth}"),
        "-H",
        "Timeout: Second-3600",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-binary",
        body,
        &server.dav(path),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = text.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .starts_with("lock-token:")
            .then(|| l[11..].trim().to_string())
    });
    let status = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (status, token)
}

#[test]
fn locks_survive_restart_and_bind_s3_too() {
    require("aws");
    let mut server = Server::plain();
    let key = server.s3_key();
    run(server.aws(&key).args(["s3", "mb", "s3://docs"]));
    assert_eq!(server.put("docs/report.odt", b"v1"), 201);
    let (status, token) = lock(&server, "docs/report.odt", "0");
    assert_eq!(status, 200);
    let token = token.expect("Lock-Token");

    server.restart();
    // the holder still writes with its token; anyone else gets 423, through either protocol
    let if_header = format!("If: ({token})");
    assert_eq!(
        server.status(&[
            "-X",
            "PUT",
            "--data-binary",
            "v2",
            "-H",
            &if_header,
            &server.dav("docs/report.odt")
        ]),
        204
    );
    assert_eq!(
        server.status(&[
            "-X",
            "PUT",
            "--data-binary",
            "v3",
            &server.dav("docs/report.odt")
        ]),
        423
    );
    let body = server.root.path().join("body");
    std::fs::write(&body, b"from s3").expect("body");
    let put = server
        .aws(&key)
        .args(["s3", "cp"])
        .arg(&body)
        .arg("s3://docs/report.odt")
        .output()
        .expect("aws");
    assert!(!put.status.success());
    assert!(
        String::from_utf8_lossy(&put.stderr).contains("Locked"),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let del = server
        .aws(&key)
        .args(["s3", "rm", "s3://docs/report.odt"])
        .output()
        .expect("aws");
    assert!(!del.status.success(), "S3 deleted a locked object");
    assert_eq!(server.get("docs/report.odt"), b"v2");
    // reads are never blocked
    let got = run(server
        .aws(&key)
        .args(["s3", "cp", "s3://docs/report.odt", "-"]));
    assert_eq!(got.stdout, b"v2");

    // a depth-infinity lock on a folder covers new keys below it
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("docs/shared")]),
        201
    );
    let (status, folder_token) = lock(&server, "docs/shared/", "infinity");
    assert_eq!(status, 200);
    let put = server
        .aws(&key)
        .args(["s3", "cp"])
        .arg(&body)
        .arg("s3://docs/shared/new.txt")
        .output()
        .expect("aws");
    assert!(!put.status.success(), "S3 wrote under a deep lock");
    // UNLOCK releases: S3 writes go through again
    let unlock = format!("Lock-Token: {}", folder_token.expect("token"));
    assert_eq!(
        server.status(&["-X", "UNLOCK", "-H", &unlock, &server.dav("docs/shared/")]),
        204
    );
    run(server
        .aws(&key)
        .args(["s3", "cp", "--only-show-errors"])
        .arg(&body)
        .arg("s3://docs/shared/new.txt"));
}

#[test]
fn twenty_clients_race_for_one_exclusive_lock() {
    require("curl");
    let server = Server::plain();
    assert_eq!(server.put("race.txt", b"x"), 201);
    let children: Vec<_> = (0..20)
        .map(|_| {
            Command::new("curl")
                .args([
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-u",
                    &format!("admin:{ADMIN_PW}"),
                ])
                .args(["-X", "LOCK", "-H", "Depth: 0", "--data-binary", LOCKINFO])
                .arg(server.dav("race.txt"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("curl")
        })
        .collect();
    let codes: Vec<u16> = children
        .into_iter()
        .map(|c| code(&c.wait_with_output().expect("curl")))
        .collect();
    let won = codes.iter().filter(|c| **c == 200).count();
    let lost = codes.iter().filter(|c| **c == 423).count();
    println!("lock race: 20 clients, {won} won, {lost} got 423");
    assert_eq!((won, lost), (1, 19), "{codes:?}");
}

fn slow_get(server: &Server, path: &str, out: &std::path::Path) -> std::process::Child {
    Command::new("curl")
        .args([
            "-sS",
            "--limit-rate",
            "5M",
            "-u",
            &format!("admin:{ADMIN_PW}"),
            "-o",
        ])
        .arg(out)
        .arg(server.dav(path))
        .spawn()
        .expect("curl")
}

fn slow_put(server: &Server, path: &str, body: &std::path::Path) -> std::process::Child {
    Command::new("curl")
        .args([
            "-sS",
            "--limit-rate",
            "5M",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            &format!("admin:{ADMIN_PW}"),
            "-T",
        ])
        .arg(body)
        .arg(server.dav(path))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl")
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn tmp_has_bytes(server: &Server) -> bool {
    std::fs::read_dir(server.data_dir().join("tmp"))
        .map(|rd| {
            rd.flatten()
                .any(|e| e.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false))
        })
        .unwrap_or(false)
}

#[test]
fn easyfs_concurrency_cases() {
    require("curl");
    let server = Server::plain();
    let dir = tempfile::tempdir().expect("dir");
    let old = dir.path().join("old");
    let new = dir.path().join("new");
    std::fs::write(&old, vec![b'o'; 12 << 20]).expect("old");
    std::fs::write(&new, vec![b'n'; 12 << 20]).expect("new");
    let old_bytes = std::fs::read(&old).expect("read");
    assert_eq!(
        server.status(&["-T", old.to_str().expect("utf8"), &server.dav("big")]),
        201
    );

    // 1. delete while another client downloads: the download completes with the old bytes
    let got = dir.path().join("got");
    let mut dl = slow_get(&server, "big", &got);
    wait_for(|| {
        std::fs::metadata(&got)
            .map(|m| m.len() > 1 << 20)
            .unwrap_or(false)
    });
    assert_eq!(server.status(&["-X", "DELETE", &server.dav("big")]), 204);
    assert!(dl.wait().expect("curl").success());
    assert_eq!(
        std::fs::read(&got).expect("got"),
        old_bytes,
        "the download changed under a delete"
    );
    assert_eq!(server.status(&["-I", &server.dav("big")]), 404);

    // 2. read while an update uploads: readers get the old version until the commit
    assert_eq!(
        server.status(&["-T", old.to_str().expect("utf8"), &server.dav("doc")]),
        201
    );
    let up = slow_put(&server, "doc", &new);
    wait_for(|| tmp_has_bytes(&server));
    assert_eq!(
        server.get("doc"),
        old_bytes,
        "a reader saw a partial update"
    );
    assert_eq!(code(&up.wait_with_output().expect("curl")), 204);
    assert_eq!(server.get("doc"), std::fs::read(&new).expect("new"));

    // 3. delete while the file is being created: the create wins whole, never a partial file
    let up = slow_put(&server, "fresh", &new);
    wait_for(|| tmp_has_bytes(&server));
    assert_eq!(server.status(&["-X", "DELETE", &server.dav("fresh")]), 404);
    assert_eq!(code(&up.wait_with_output().expect("curl")), 201);
    assert_eq!(server.get("fresh").len(), 12 << 20);

    // 4. deleting a folder with a locked file: 207 naming the member with 423, nothing deleted
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("folder")]), 201);
    assert_eq!(server.put("folder/free.txt", b"free"), 201);
    assert_eq!(server.put("folder/locked.txt", b"locked"), 201);
    let (status, _token) = lock(&server, "folder/locked.txt", "0");
    assert_eq!(status, 200);
    let out = server.curl_admin(&[
        "-X",
        "DELETE",
        "-w",
        "\n%{http_code}",
        &server.dav("folder/"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("207"), "{text}");
    assert!(
        text.contains("/dav/folder/locked.txt") && text.contains("423"),
        "{text}"
    );
    assert_eq!(server.get("folder/free.txt"), b"free");
    assert_eq!(server.get("folder/locked.txt"), b"locked");
    assert!(tree_is_clean(&server));
}

fn tree_is_clean(server: &Server) -> bool {
    crate::common::tree(&server.data_dir().join("tmp")).is_empty()
}

/// Every write path of both protocols, without the token, meets the lock: 423 and nothing
/// changes; the holder's token opens each WebDAV path.
#[test]
fn every_write_path_of_both_protocols_meets_the_lock() {
    require("aws");
    let server = Server::plain();
    let key = server.s3_key();
    run(server.aws(&key).args(["s3", "mb", "s3://docs"]));
    assert_eq!(server.put("docs/a.txt", b"a"), 201);
    assert_eq!(server.put("docs/other.txt", b"o"), 201);
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("docs/deep")]),
        201
    );
    let (status, file_token) = lock(&server, "docs/a.txt", "0");
    assert_eq!(status, 200);
    let (status, deep_token) = lock(&server, "docs/deep/", "infinity");
    assert_eq!(status, 200);
    let (file_token, deep_token) = (file_token.expect("token"), deep_token.expect("token"));
    let dest = |p: &str| format!("Destination: {}", server.dav(p));
    let proppatch = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:tag xmlns:x="urn:example">v</x:tag></D:prop></D:set></D:propertyupdate>"#;

    // WebDAV without the token: PUT, DELETE, MOVE, COPY onto, PROPPATCH, MKCOL under a deep lock
    let a = server.dav("docs/a.txt");
    let refused: Vec<(&str, Vec<String>)> = vec![
        (
            "PUT",
            vec![
                "-X".into(),
                "PUT".into(),
                "--data-binary".into(),
                "x".into(),
                a.clone(),
            ],
        ),
        ("DELETE", vec!["-X".into(), "DELETE".into(), a.clone()]),
        (
            "MOVE",
            vec![
                "-X".into(),
                "MOVE".into(),
                "-H".into(),
                dest("docs/b.txt"),
                a.clone(),
            ],
        ),
        (
            "COPY onto",
            vec![
                "-X".into(),
                "COPY".into(),
                "-H".into(),
                dest("docs/a.txt"),
                server.dav("docs/other.txt"),
            ],
        ),
        (
            "PROPPATCH",
            vec![
                "-X".into(),
                "PROPPATCH".into(),
                "--data-binary".into(),
                proppatch.into(),
                a.clone(),
            ],
        ),
        (
            "MKCOL",
            vec!["-X".into(), "MKCOL".into(), server.dav("docs/deep/sub")],
        ),
        (
            "PUT below",
            vec![
                "-X".into(),
                "PUT".into(),
                "--data-binary".into(),
                "x".into(),
                server.dav("docs/deep/n.txt"),
            ],
        ),
    ];
    for (what, args) in &refused {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(server.status(&args), 423, "WebDAV {what} without the token");
    }

    // S3 carries no token: PutObject, DeleteObject(s), CopyObject onto, CompleteMultipartUpload
    let body = server.root.path().join("body");
    std::fs::write(&body, b"from s3").expect("body");
    let s3 = |args: &[&str]| -> String {
        let out = server.aws(&key).args(args).output().expect("aws");
        assert!(!out.status.success(), "S3 {args:?} went through a lock");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let body_arg = body.display().to_string();
    for args in [
        vec![
            "s3api",
            "put-object",
            "--bucket",
            "docs",
            "--key",
            "a.txt",
            "--body",
            &body_arg,
        ],
        vec![
            "s3api",
            "delete-object",
            "--bucket",
            "docs",
            "--key",
            "a.txt",
        ],
        vec![
            "s3api",
            "copy-object",
            "--bucket",
            "docs",
            "--key",
            "a.txt",
            "--copy-source",
            "docs/other.txt",
        ],
        vec![
            "s3api",
            "put-object",
            "--bucket",
            "docs",
            "--key",
            "deep/x.txt",
            "--body",
            &body_arg,
        ],
    ] {
        let err = s3(&args);
        assert!(err.contains("Locked"), "{args:?}: {err}");
    }
    let out = run(server.aws(&key).args([
        "s3api",
        "delete-objects",
        "--bucket",
        "docs",
        "--delete",
        "Objects=[{Key=a.txt},{Key=other.txt}]",
    ]));
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        answer.contains("Locked") && answer.contains("a.txt"),
        "{answer}"
    );
    let out = run(server.aws(&key).args([
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "docs",
        "--key",
        "a.txt",
        "--query",
        "UploadId",
        "--output",
        "text",
    ]));
    let upload = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = run(server.aws(&key).args([
        "s3api",
        "upload-part",
        "--bucket",
        "docs",
        "--key",
        "a.txt",
        "--part-number",
        "1",
        "--upload-id",
        &upload,
        "--body",
        &body_arg,
        "--query",
        "ETag",
        "--output",
        "text",
    ]));
    let etag = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let parts = format!("Parts=[{{ETag={etag},PartNumber=1}}]");
    let err = s3(&[
        "s3api",
        "complete-multipart-upload",
        "--bucket",
        "docs",
        "--key",
        "a.txt",
        "--upload-id",
        &upload,
        "--multipart-upload",
        &parts,
    ]);
    assert!(err.contains("Locked"), "{err}");

    // nothing locked changed (DeleteObjects removed the unlocked other.txt, per key)
    assert_eq!(server.get("docs/a.txt"), b"a");
    assert_eq!(
        crate::common::tree(&server.files_dir().join("docs")),
        vec!["a.txt"]
    );

    // the holder's tokens open the WebDAV paths
    let file_if = format!("If: (<{}>)", file_token.trim_matches(['<', '>']));
    let deep_if = format!("If: (<{}>)", deep_token.trim_matches(['<', '>']));
    assert_eq!(
        server.status(&[
            "-X",
            "PROPPATCH",
            "-H",
            &file_if,
            "--data-binary",
            proppatch,
            &a
        ]),
        207
    );
    assert_eq!(
        server.status(&["-X", "PUT", "-H", &file_if, "--data-binary", "a2", &a]),
        204
    );
    assert_eq!(
        server.status(&["-X", "MKCOL", "-H", &deep_if, &server.dav("docs/deep/sub")]),
        201
    );
    assert_eq!(server.get("docs/a.txt"), b"a2");
}
