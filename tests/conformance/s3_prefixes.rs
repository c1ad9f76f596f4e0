//! Empty prefixes behave as in S3: folders made only as the parents of keys go with their last
//! entry, through any protocol, while folders made on purpose stay; conditional writes and
//! the bucket and copy rules of the core (boto3 script with attacks and race loops).

use std::process::Command;

use crate::common::{fsck_clean, require, run, Server};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status of a WebDAV request as admin.
fn dav(server: &Server, args: &[&str]) -> u16 {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    crate::common::code(&server.curl_admin(&all))
}

fn propfind(server: &Server, path: &str) -> u16 {
    dav(
        server,
        &["-X", "PROPFIND", "-H", "Depth: 0", &server.dav(path)],
    )
}

/// `kura fsck` finds nothing (no leftover folder on disk, no row without its folder).
#[test]
fn aws_rm_recursive_then_rb_succeeds() {
    require("aws");
    let server = Server::start(true);
    let key = server.s3_key();
    let aws = |args: &[&str]| run(server.aws(&key).args(args));
    let dir = tempfile::tempdir().expect("dir");
    for (i, rel) in ["a/one.txt", "a/b/two.txt", "a/b/c/three.txt", "top.txt"]
        .iter()
        .enumerate()
    {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, format!("file {i}")).expect("write");
    }
    aws(&["s3", "mb", "s3://tidy"]);
    aws(&[
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        dir.path().to_str().expect("utf8"),
        "s3://tidy/dir/",
    ]);
    assert_eq!(propfind(&server, "tidy/dir/a/b/c"), 207);
    aws(&[
        "s3",
        "rm",
        "--recursive",
        "--only-show-errors",
        "s3://tidy/dir/",
    ]);
    // the folders went with their files, on disk too
    assert_eq!(propfind(&server, "tidy/dir"), 404);
    assert!(!server.files_dir().join("tidy/dir").exists());
    fsck_clean(&server);
    aws(&["s3", "rb", "s3://tidy"]);
    assert_eq!(propfind(&server, "tidy"), 404);
}

#[test]
fn rclone_purge_of_a_bucket_succeeds() {
    require("rclone");
    let server = Server::start(true);
    let key = server.s3_key();
    let local = tempfile::tempdir().expect("local");
    for i in 0..12 {
        let d = local.path().join(format!("d{}/e{}", i % 3, i % 2));
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join(format!("f{i}")), vec![b'x'; i + 1]).expect("write");
    }
    let rclone = |args: &[&str]| crate::s3_clients::rclone(&server, &key, args);
    rclone(&["mkdir", "k3:purged"]);
    rclone(&["copy", local.path().to_str().expect("utf8"), "k3:purged"]);
    assert_eq!(propfind(&server, "purged/d1/e1"), 207);
    rclone(&["purge", "k3:purged"]);
    assert_eq!(propfind(&server, "purged"), 404);
    fsck_clean(&server);
}

#[test]
fn folders_made_on_purpose_survive_their_last_file() {
    require("aws");
    let server = Server::start(false);
    let key = server.s3_key();
    let aws = |args: &[&str]| run(server.aws(&key).args(args));
    aws(&["s3", "mb", "s3://kept"]);
    // a WebDAV MKCOL folder
    assert_eq!(
        dav(&server, &["-X", "MKCOL", &server.dav("kept/made")]),
        201
    );
    assert_eq!(server.put("kept/made/f.txt", b"x"), 201);
    aws(&["s3", "rm", "s3://kept/made/f.txt"]);
    assert_eq!(propfind(&server, "kept/made"), 207);
    // MKCOL on an S3-implicit folder still answers 405 and leaves it implicit
    aws(&["s3api", "put-object", "--bucket", "kept", "--key", "imp/f"]);
    assert_eq!(dav(&server, &["-X", "MKCOL", &server.dav("kept/imp")]), 405);
    // an S3 zero-byte marker folder
    aws(&[
        "s3api",
        "put-object",
        "--bucket",
        "kept",
        "--key",
        "marked/",
    ]);
    aws(&[
        "s3api",
        "put-object",
        "--bucket",
        "kept",
        "--key",
        "marked/f",
    ]);
    aws(&[
        "s3api",
        "delete-object",
        "--bucket",
        "kept",
        "--key",
        "marked/f",
    ]);
    assert_eq!(propfind(&server, "kept/marked"), 207);
    // the S3-implicit one goes with its last file
    aws(&[
        "s3api",
        "delete-object",
        "--bucket",
        "kept",
        "--key",
        "imp/f",
    ]);
    assert_eq!(propfind(&server, "kept/imp"), 404);
    fsck_clean(&server);
}

#[test]
fn webdav_delete_or_move_of_the_last_file_removes_an_s3_implicit_folder() {
    require("aws");
    let server = Server::start(false);
    let key = server.s3_key();
    let aws = |args: &[&str]| run(server.aws(&key).args(args));
    aws(&["s3", "mb", "s3://mixed"]);
    aws(&[
        "s3api",
        "put-object",
        "--bucket",
        "mixed",
        "--key",
        "p/q/file",
    ]);
    aws(&[
        "s3api",
        "put-object",
        "--bucket",
        "mixed",
        "--key",
        "m/n/file",
    ]);
    assert_eq!(propfind(&server, "mixed/p/q"), 207);
    assert_eq!(
        dav(&server, &["-X", "DELETE", &server.dav("mixed/p/q/file")]),
        204
    );
    assert_eq!(propfind(&server, "mixed/p/q"), 404);
    assert_eq!(propfind(&server, "mixed/p"), 404);
    // MOVE away empties m/n and m
    let dest = format!("Destination: {}", server.dav("mixed/moved"));
    assert_eq!(
        dav(
            &server,
            &["-X", "MOVE", "-H", &dest, &server.dav("mixed/m/n/file")]
        ),
        201
    );
    assert_eq!(propfind(&server, "mixed/m"), 404);
    assert_eq!(propfind(&server, "mixed/moved"), 207);
    assert!(!server.files_dir().join("mixed/m").exists());
    let listed = text(&aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "mixed",
        "--delimiter",
        "/",
    ]));
    assert!(
        !listed.contains("CommonPrefixes"),
        "stale prefixes: {listed}"
    );
    fsck_clean(&server);
}

/// boto3 with two users: prefixes and delimiter listings after deletes, marker rules, a key
/// `a/b/` with content, `..` keys, a user without rights trying to prune or mark admin's
/// folders, a refused CopyObject, DeleteBucket racing PutObject, and conditional writes
/// (If-None-Match: *, If-Match on PutObject and CompleteMultipartUpload, concurrent writers).
#[test]
fn boto3_prefixes_conditional_writes_and_races() {
    require("python3");
    let server = Server::start(false);
    crate::permissions::add_user(&server, "bob", &["--create-buckets"]);
    let admin = server.s3_key();
    let bob = server.s3_key_for("bob");
    let aws = |args: &[&str]| run(server.aws(&admin).args(args));
    for b in ["pfx", "cond"] {
        aws(&["s3", "mb", &format!("s3://{b}")]);
        run(server.kura().args(["chmod", "700", &format!("/{b}")]));
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/s3_prefixes.py"
    );
    let out = run(Command::new("python3")
        .arg(script)
        .env("KURA_S3_ENDPOINT", server.url(""))
        .env("ADMIN_ID", &admin.id)
        .env("ADMIN_SECRET", &admin.secret)
        .env("BOB_ID", &bob.id)
        .env("BOB_SECRET", &bob.secret)
        .env("AWS_CONFIG_FILE", "/dev/null"));
    println!("{}", text(&out).trim());
    fsck_clean(&server);
}

/// WebDAV `PUT` with `If-Match` is checked again inside the commit (the core's rule, as for
/// S3): of two writers holding the same ETag exactly one wins, the other gets 412.
#[test]
fn webdav_put_if_match_is_a_compare_and_swap() {
    let server = Server::start(false);
    assert_eq!(dav(&server, &["-X", "MKCOL", &server.dav("cas")]), 201);
    let dir = tempfile::tempdir().expect("dir");
    for round in 0..8 {
        let url = server.dav(&format!("cas/f{round}"));
        assert_eq!(server.put(&format!("cas/f{round}"), b"base"), 201);
        let head = String::from_utf8_lossy(&server.curl_admin(&["-sI", &url]).stdout).into_owned();
        let etag = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("etag: ")
                    .or_else(|| l.strip_prefix("ETag: "))
            })
            .expect("etag")
            .trim()
            .to_string();
        let statuses: Vec<(u8, u16)> = std::thread::scope(|s| {
            let handles: Vec<_> = [b'A', b'B']
                .into_iter()
                .map(|tag| {
                    let body = dir.path().join(format!("{round}-{}", tag as char));
                    let mut bytes = vec![tag; 4 * 1024 * 1024];
                    bytes[0] = tag;
                    std::fs::write(&body, bytes).expect("body");
                    let (server, url, etag) = (&server, url.clone(), etag.clone());
                    s.spawn(move || {
                        let cond = format!("If-Match: {etag}");
                        let b = body.to_str().expect("utf8").to_string();
                        (tag, dav(server, &["-H", &cond, "-T", &b, &url]))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("writer"))
                .collect()
        });
        let won: Vec<u8> = statuses
            .iter()
            .filter(|(_, s)| *s == 204)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(won.len(), 1, "exactly one writer wins: {statuses:?}");
        assert!(
            statuses.iter().any(|(_, s)| *s == 412),
            "the other gets 412: {statuses:?}"
        );
        assert_eq!(server.get(&format!("cas/f{round}"))[0], won[0]);
    }
}

/// A CopyObject refused by the destination group's quota makes no folder: the destination's
/// missing parents are recorded in the copy's own commit.
#[test]
fn a_copy_over_quota_leaves_no_folder_behind() {
    require("aws");
    let server = Server::start(false);
    run(server.kura().args(["group", "add", "small"]));
    run(server
        .kura()
        .args(["bucket", "create", "--group", "small", "tiny"]));
    run(server
        .kura()
        .args(["quota", "set", "small", "--bytes", "100"]));
    let key = server.s3_key();
    let aws = |args: &[&str]| server.aws(&key).args(args).output().expect("aws");
    let dir = tempfile::tempdir().expect("dir");
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 1000]).expect("write");
    run(server.aws(&key).args(["s3", "mb", "s3://roomy"]));
    run(server.aws(&key).args([
        "s3",
        "cp",
        "--only-show-errors",
        big.to_str().expect("utf8"),
        "s3://roomy/big",
    ]));
    let refused = aws(&[
        "s3api",
        "copy-object",
        "--bucket",
        "tiny",
        "--key",
        "new/deep/big",
        "--copy-source",
        "roomy/big",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("QuotaExceeded"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(propfind(&server, "tiny/new"), 404);
    assert!(!server.files_dir().join("tiny/new").exists());
    fsck_clean(&server);
}

/// A PutObject whose implicit folder is pruned while its body streams (the prefix's last
/// other key deleted meanwhile) lands all the same, as in S3, and leaves DB and disk in step.
#[test]
fn a_put_lands_when_its_prefix_empties_meanwhile() {
    require("python3");
    let server = Server::start(false);
    let key = server.s3_key();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/s3_prefix_race.py"
    );
    let out = run(Command::new("python3")
        .arg(script)
        .env("KURA_S3_ENDPOINT", server.url(""))
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"));
    println!("{}", text(&out).trim());
    fsck_clean(&server);
}
