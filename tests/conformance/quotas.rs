//! Per-group quotas: enforced before anything is committed, usage exact after every kind of
//! change, and a race of 32 writers that together exceed the quota.

use std::process::{Command, Stdio};

use crate::common::{code, fsck_clean, group_bucket, require, run, tree, usage, Server, ADMIN_PW};

fn put_bytes(server: &Server, path: &str, n: usize) -> u16 {
    server.put(path, &vec![b'q'; n])
}

fn no_drift(server: &Server) {
    let out = run(server.kura().arg("fsck"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no drift"));
}

fn setup(server: &Server) {
    run(server.kura().args(["group", "add", "g"]));
    run(server.kura().args(["group", "add", "h"]));
    run(server
        .kura()
        .args(["bucket", "create", "gbucket", "--group", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "hbucket", "--group", "h"]));
    run(server
        .kura()
        .args(["quota", "set", "g", "--bytes", "1000", "--objects", "5"]));
    run(server.kura().args(["quota", "set", "h", "--bytes", "600"]));
    // these tests count current bytes: nothing is kept (versions.rs counts kept bytes)
    for b in ["gbucket", "hbucket"] {
        run(server
            .kura()
            .args(["bucket", "set", b, "--trash-days", "0", "--keep-days", "0"]));
    }
}

#[test]
fn quota_edges_through_webdav() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    // exact fill, then one byte over: 507 and nothing stored
    assert_eq!(put_bytes(&server, "gbucket/full", 1000), 201);
    assert_eq!(usage(&server, "g"), (1000, 1));
    assert_eq!(put_bytes(&server, "gbucket/over", 1), 507);
    assert_eq!(server.status(&["-I", &server.dav("gbucket/over")]), 404);
    // overwrite: shrink, grow to the limit, one byte more keeps the old version
    assert_eq!(put_bytes(&server, "gbucket/full", 400), 204);
    assert_eq!(usage(&server, "g"), (400, 1));
    assert_eq!(put_bytes(&server, "gbucket/full", 1000), 204);
    assert_eq!(put_bytes(&server, "gbucket/full", 1001), 507);
    assert_eq!(server.get("gbucket/full").len(), 1000);
    assert_eq!(usage(&server, "g"), (1000, 1));
    // a chunked body of unknown length is cut off as it crosses the limit
    assert_eq!(put_bytes(&server, "gbucket/full", 100), 204);
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "head -c 5000 /dev/zero | curl -sS -o /dev/null -w '%{{http_code}}' -u admin:{ADMIN_PW} -T - '{}'",
        server.dav("gbucket/chunked")
    )));
    assert_eq!(code(&out), 507);
    assert_eq!(server.status(&["-I", &server.dav("gbucket/chunked")]), 404);
    assert_eq!(usage(&server, "g"), (100, 1));
    // COPY and MOVE across groups charge the destination and credit the source
    assert_eq!(put_bytes(&server, "gbucket/a", 500), 201);
    let dest = |p: &str| format!("Destination: {}", server.dav(p));
    assert_eq!(
        server.status(&[
            "-X",
            "COPY",
            "-H",
            &dest("hbucket/a"),
            &server.dav("gbucket/a")
        ]),
        201
    );
    assert_eq!(
        (usage(&server, "g"), usage(&server, "h")),
        ((600, 2), (500, 1))
    );
    assert_eq!(
        server.status(&[
            "-X",
            "COPY",
            "-H",
            &dest("hbucket/a2"),
            &server.dav("gbucket/a")
        ]),
        507
    );
    assert_eq!(
        server.status(&[
            "-X",
            "MOVE",
            "-H",
            &dest("gbucket/moved"),
            &server.dav("hbucket/a")
        ]),
        507
    );
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("gbucket/a")]),
        204
    );
    assert_eq!(
        server.status(&[
            "-X",
            "MOVE",
            "-H",
            &dest("gbucket/moved"),
            &server.dav("hbucket/a")
        ]),
        201
    );
    assert_eq!(
        (usage(&server, "g"), usage(&server, "h")),
        ((600, 2), (0, 0))
    );
    // a refused COPY over an existing file leaves that file as it was
    assert_eq!(put_bytes(&server, "hbucket/keep", 300), 201);
    assert_eq!(put_bytes(&server, "hbucket/filler", 250), 201);
    let over = ["-X", "COPY", "-H", "Overwrite: T"];
    let d = dest("hbucket/keep");
    let mut args = over.to_vec();
    args.extend(["-H", d.as_str()]);
    let src = server.dav("gbucket/moved");
    args.push(&src);
    assert_eq!(server.status(&args), 507);
    assert_eq!(server.get("hbucket/keep").len(), 300);
    assert_eq!(usage(&server, "h"), (550, 2));
    // the object limit counts files
    for i in 0..3 {
        assert_eq!(put_bytes(&server, &format!("gbucket/n{i}"), 1), 201);
    }
    assert_eq!(put_bytes(&server, "gbucket/n3", 1), 507);
    assert_eq!(usage(&server, "g"), (603, 5));
    // RFC 4331: the bucket shows what is left of its group's quota
    let ask = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"#;
    let props = server
        .curl_admin(&[
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
            "--data-binary",
            ask,
            &server.dav("gbucket/"),
        ])
        .stdout;
    let props = String::from_utf8_lossy(&props);
    assert!(
        props.contains("<D:quota-available-bytes>397</D:quota-available-bytes>"),
        "{props}"
    );
    assert!(
        props.contains("<D:quota-used-bytes>603</D:quota-used-bytes>"),
        "{props}"
    );
    // deleting a folder credits everything below it
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("gbucket/")]),
        204
    );
    assert_eq!(usage(&server, "g"), (0, 0));
    no_drift(&server);
    assert!(tree(&server.data_dir().join("tmp")).is_empty());
}

#[test]
fn thirty_two_writers_never_exceed_the_quota() {
    require("curl");
    let server = Server::plain();
    group_bucket(&server, "race", "rbucket", Some("10MiB"));
    let body = server.root.path().join("one-mib");
    std::fs::write(&body, vec![7u8; 1 << 20]).expect("body");
    let children: Vec<_> = (0..32)
        .map(|i| {
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
                .arg("-T")
                .arg(&body)
                .arg(server.dav(&format!("rbucket/w{i:02}")))
                .stdout(Stdio::piped())
                .spawn()
                .expect("curl")
        })
        .collect();
    let codes: Vec<u16> = children
        .into_iter()
        .map(|c| code(&c.wait_with_output().expect("curl")))
        .collect();
    let ok = codes.iter().filter(|c| **c == 201).count();
    let refused = codes.iter().filter(|c| **c == 507).count();
    assert_eq!(ok + refused, 32, "unexpected statuses: {codes:?}");
    let (bytes, files) = usage(&server, "race");
    let stored = tree(&server.files_dir().join("rbucket"));
    println!(
        "quota race: 32 writers x 1 MiB against 10 MiB: {ok} stored, {refused} refused (507); usage {bytes} bytes / {files} files, quota {} bytes",
        10 << 20
    );
    assert!(bytes <= 10 << 20, "usage {bytes} is over the quota");
    assert_eq!(bytes, (ok as i64) << 20);
    assert_eq!(files, ok as i64);
    assert_eq!(stored.len(), ok, "files on disk do not match the successes");
    assert!(ok >= 1, "no writer got in");
    assert!(
        tree(&server.data_dir().join("tmp")).is_empty(),
        "a refused upload left a trace"
    );
    no_drift(&server);
}

#[test]
fn s3_writes_are_held_to_the_same_quota() {
    require("aws");
    let server = Server::start(true);
    setup(&server);
    let key = server.s3_key();
    let dir = tempfile::tempdir().expect("dir");
    let small = dir.path().join("small");
    std::fs::write(&small, vec![1u8; 900]).expect("small");
    run(server
        .aws(&key)
        .args(["s3", "cp", "--only-show-errors"])
        .arg(&small)
        .arg("s3://gbucket/small"));
    let big = dir.path().join("big");
    std::fs::write(&big, vec![1u8; 200]).expect("big");
    let refused = server
        .aws(&key)
        .args(["s3", "cp"])
        .arg(&big)
        .arg("s3://gbucket/big")
        .output()
        .expect("aws");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("QuotaExceeded"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(usage(&server, "g"), (900, 1));
    // multipart: completing an object over the quota is refused and leaves nothing
    let id = String::from_utf8_lossy(
        &run(server.aws(&key).args([
            "s3api",
            "create-multipart-upload",
            "--bucket",
            "hbucket",
            "--key",
            "mp",
            "--query",
            "UploadId",
            "--output",
            "text",
        ]))
        .stdout,
    )
    .trim()
    .to_string();
    // staged parts count against the quota as they arrive
    let part = dir.path().join("part");
    std::fs::write(&part, vec![2u8; 400]).expect("part");
    let upload_part = |n: &str| {
        server
            .aws(&key)
            .args(["s3api", "upload-part", "--bucket", "hbucket", "--key", "mp"])
            .args(["--part-number", n, "--upload-id", &id])
            .args(["--query", "ETag", "--output", "text", "--body"])
            .arg(&part)
            .output()
            .expect("aws")
    };
    let first = upload_part("1");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let etag = String::from_utf8_lossy(&first.stdout).trim().to_string();
    let second = upload_part("2");
    assert!(
        !second.status.success(),
        "a second 400-byte part fit a 600-byte quota"
    );
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("QuotaExceeded"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // the bucket fills up meanwhile: completing is then over the quota
    let other = dir.path().join("other");
    std::fs::write(&other, vec![3u8; 300]).expect("other");
    run(server
        .aws(&key)
        .args(["s3", "cp", "--only-show-errors"])
        .arg(&other)
        .arg("s3://hbucket/other"));
    let parts = format!(r#"{{"Parts":[{{"PartNumber":1,"ETag":{etag}}}]}}"#);
    let done = server
        .aws(&key)
        .args([
            "s3api",
            "complete-multipart-upload",
            "--bucket",
            "hbucket",
            "--key",
            "mp",
            "--upload-id",
            &id,
            "--multipart-upload",
            &parts,
        ])
        .output()
        .expect("aws");
    assert!(!done.status.success());
    assert!(
        String::from_utf8_lossy(&done.stderr).contains("QuotaExceeded"),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(usage(&server, "h"), (300, 1));
    assert_eq!(server.status(&["-I", &server.dav("hbucket/mp")]), 404);
    no_drift(&server);
}

#[test]
fn fsck_finds_and_repairs_changes_made_behind_kuras_back() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    assert_eq!(put_bytes(&server, "gbucket/keep", 10), 201);
    assert_eq!(put_bytes(&server, "gbucket/gone", 20), 201);
    assert_eq!(put_bytes(&server, "gbucket/grown", 30), 201);
    let files = server.files_dir().join("gbucket");
    std::fs::remove_file(files.join("gone")).expect("rm");
    std::fs::write(files.join("grown"), vec![b'g'; 300]).expect("grow");
    std::fs::create_dir_all(files.join("dropped/in")).expect("mkdir");
    std::fs::write(files.join("dropped/in/new.txt"), b"put there by hand").expect("new");

    let check = server.kura().arg("fsck").output().expect("fsck");
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(!check.status.success(), "fsck found nothing:\n{text}");
    for want in [
        "recorded but not stored: /gbucket/gone",
        "size changed on disk: /gbucket/grown",
        "stored but not recorded: /gbucket/dropped/in/new.txt",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    println!("fsck before repair:\n{text}");
    run(server.kura().args(["fsck", "--repair"]));
    fsck_clean(&server);
    // metadata now follows storage, through the protocols too
    assert_eq!(
        server.get("gbucket/dropped/in/new.txt"),
        b"put there by hand"
    );
    assert_eq!(server.status(&["-I", &server.dav("gbucket/gone")]), 404);
    assert_eq!(server.get("gbucket/grown").len(), 300);
    assert_eq!(usage(&server, "g"), (10 + 300 + 17, 3));
}

/// A WebDAV COPY of a folder over an existing folder (`Overwrite: T`) that the quota or an
/// unreadable source file refuses: the destination was deleted first to make room, then the
/// copy refused, so a bucket keeping no trash lost it for good (outside red team). Now the
/// copy's checks are made before the delete: 507 or 403, and the destination stays.
#[test]
fn a_refused_folder_copy_over_a_folder_deletes_nothing() {
    require("curl");
    let server = Server::plain();
    setup(&server);
    run(server
        .kura()
        .args(["quota", "set", "g", "--bytes", "1000", "--objects", "50"]));
    for d in ["gbucket/src", "gbucket/dst"] {
        assert_eq!(server.status(&["-X", "MKCOL", &server.dav(d)]), 201);
    }
    assert_eq!(put_bytes(&server, "gbucket/src/a", 300), 201);
    assert_eq!(put_bytes(&server, "gbucket/src/b", 300), 201);
    assert_eq!(server.put("gbucket/dst/precious.txt", b"precious"), 201);
    let before = usage(&server, "g");
    let copy = |who: Option<&str>| {
        let dest = format!("Destination: {}", server.dav("gbucket/dst"));
        let args = [
            "-X",
            "COPY",
            "-H",
            &dest,
            "-H",
            "Overwrite: T",
            &server.dav("gbucket/src"),
        ];
        match who {
            Some(u) => server.status_as(u, &args),
            None => server.status(&args),
        }
    };
    // 600 more bytes do not fit beside 608 (the 8 of dst freed by its delete)
    assert_eq!(copy(None), 507);
    assert_eq!(server.get("gbucket/dst/precious.txt"), b"precious");
    assert_eq!(usage(&server, "g"), before);
    // a source file the copier may not read
    run(server
        .kura()
        .args(["quota", "set", "g", "--bytes", "100000", "--objects", "50"]));
    server.add_user("bob", "bob-pw", &["--group", "g"]);
    run(server
        .kura()
        .args(["chmod", "777", "/gbucket", "/gbucket/src", "/gbucket/dst"]));
    run(server.kura().args([
        "chmod",
        "666",
        "/gbucket/dst/precious.txt",
        "/gbucket/src/a",
    ]));
    run(server.kura().args(["chmod", "600", "/gbucket/src/b"]));
    assert_eq!(copy(Some("bob:bob-pw")), 403);
    assert_eq!(server.get("gbucket/dst/precious.txt"), b"precious");
    // and a copy that may be made replaces the folder
    assert_eq!(copy(None), 204);
    assert_eq!(
        server.status(&["-I", &server.dav("gbucket/dst/precious.txt")]),
        404
    );
    assert_eq!(server.get("gbucket/dst/a"), vec![b'q'; 300]);
    no_drift(&server);
}
