//! Issue 13, M2, M5, M6 and M8, written as the attacks: a move that re-groups what its mover
//! could not read, files at the root beyond every quota, recursive listings and HEAD that show
//! what a folder hides, and a data dir the whole machine can read.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::common::{require, run, Server};
use crate::permissions::{add_user, dav, s3, PW};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

/// M2: bob may rename in ann's world-writable folder but not read her 660 file; moving it
/// into his own bucket (whose group is his) would hand it to him.
#[test]
fn a_move_into_another_bucket_needs_read_on_what_moves() {
    require("curl");
    let server = Server::plain();
    add_user(&server, "ann", &["--group", "ga", "--create-buckets"]);
    add_user(&server, "bob", &["--group", "gb", "--create-buckets"]);
    assert_eq!(dav(&server, "ann", &["-X", "MKCOL", &server.dav("a")]), 201);
    assert_eq!(dav(&server, "bob", &["-X", "MKCOL", &server.dav("b")]), 201);
    let body = server.root.path().join("secret");
    std::fs::write(&body, b"ann's secret").expect("body");
    let b = body.to_str().expect("utf8");
    assert_eq!(
        dav(&server, "ann", &["-T", b, &server.dav("a/secret")]),
        201
    );
    run(server.kura().args(["chmod", "660", "/a/secret"]));
    run(server.kura().args(["chmod", "777", "/a"]));
    assert_eq!(dav(&server, "bob", &[&server.dav("a/secret")]), 403);

    let dest = format!("Destination: {}", server.dav("b/secret"));
    let moved = dav(
        &server,
        "bob",
        &["-X", "MOVE", "-H", &dest, &server.dav("a/secret")],
    );
    assert_eq!(
        moved, 403,
        "bob moved a file he cannot read out of ann's bucket"
    );
    assert_eq!(dav(&server, "bob", &[&server.dav("b/secret")]), 404);
    assert_eq!(server.get("a/secret"), b"ann's secret");
    // within the bucket the group does not change, so the rename stays his right
    let dest = format!("Destination: {}", server.dav("a/renamed"));
    assert_eq!(
        dav(
            &server,
            "bob",
            &["-X", "MOVE", "-H", &dest, &server.dav("a/secret")]
        ),
        201
    );
    assert_eq!(dav(&server, "bob", &[&server.dav("a/renamed")]), 403);
    // what he may read he may move out
    assert_eq!(dav(&server, "ann", &["-T", b, &server.dav("a/open")]), 201);
    run(server.kura().args(["chmod", "664", "/a/open"]));
    let dest = format!("Destination: {}", server.dav("b/open"));
    assert_eq!(
        dav(
            &server,
            "bob",
            &["-X", "MOVE", "-H", &dest, &server.dav("a/open")]
        ),
        201
    );
}

/// M5: a user with the bucket right put files at `/dav/` itself, where no group pays.
#[test]
fn files_at_the_root_are_refused_to_users() {
    require("curl");
    let server = Server::plain();
    add_user(&server, "carol", &["--group", "gc", "--create-buckets"]);
    run(server
        .kura()
        .args(["quota", "set", "gc", "--bytes", "1MiB"]));
    let big = server.root.path().join("big");
    std::fs::write(&big, vec![7u8; 3 << 20]).expect("body");
    let b = big.to_str().expect("utf8");
    assert_eq!(dav(&server, "carol", &["-T", b, &server.dav("x.bin")]), 403);
    assert_eq!(dav(&server, "carol", &["-T", b, &server.dav("y.bin")]), 403);
    assert_eq!(server.status(&["-I", &server.dav("x.bin")]), 404);
    // nor moved or copied there
    assert_eq!(
        dav(&server, "carol", &["-X", "MKCOL", &server.dav("cbk")]),
        201
    );
    assert_eq!(
        dav(&server, "carol", &["-T", "/dev/null", &server.dav("cbk/f")]),
        201
    );
    for method in ["MOVE", "COPY"] {
        let dest = format!("Destination: {}", server.dav("f"));
        assert_eq!(
            dav(
                &server,
                "carol",
                &["-X", method, "-H", &dest, &server.dav("cbk/f")]
            ),
            403,
            "{method} to the root"
        );
    }
    // a folder at the root is a bucket, which the right allows
    let dest = format!("Destination: {}", server.dav("cbk2"));
    assert_eq!(
        dav(
            &server,
            "carol",
            &["-X", "COPY", "-H", &dest, &server.dav("cbk")]
        ),
        201
    );
    let usage =
        String::from_utf8_lossy(&run(server.kura().args(["usage", "gc"])).stdout).into_owned();
    assert!(usage.contains("gc\t0\t"), "{usage}");
}

/// M6: a recursive S3 listing showed names, sizes and ETags inside a 700 folder of another
/// user; HEAD showed a 600 file's ETag and metadata.
#[test]
fn listings_and_head_show_only_what_the_caller_may_reach() {
    require("curl");
    let server = Server::plain();
    add_user(&server, "ann", &["--group", "ga", "--create-buckets"]);
    add_user(&server, "eve", &["--group", "ge"]);
    let eve = server.s3_key_for("eve");
    assert_eq!(
        dav(&server, "ann", &["-X", "MKCOL", &server.dav("cbk")]),
        201
    );
    assert_eq!(
        dav(&server, "ann", &["-X", "MKCOL", &server.dav("cbk/private")]),
        201
    );
    let body = server.root.path().join("body");
    std::fs::write(&body, b"hidden bytes").expect("body");
    let b = body.to_str().expect("utf8");
    for f in ["cbk/private/deep.txt", "cbk/open.txt", "cbk/mine600.txt"] {
        assert_eq!(dav(&server, "ann", &["-T", b, &server.dav(f)]), 201);
    }
    run(server.kura().args(["chmod", "755", "/cbk"]));
    run(server.kura().args(["chmod", "700", "/cbk/private"]));
    run(server.kura().args(["chmod", "644", "/cbk/open.txt"]));
    run(server.kura().args(["chmod", "600", "/cbk/mine600.txt"]));

    let list = |key: &crate::common::S3Key, query: &str| -> String {
        let user = format!("{}:{}", key.id, key.secret);
        let out = Command::new("curl")
            .args([
                "-sS",
                "--user",
                &user,
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
            ])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .arg(server.url(&format!("/cbk?{query}")))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for query in ["list-type=2", "list-type=2&prefix=private%2F", ""] {
        let text = list(&eve, query);
        assert!(text.contains("<ListBucketResult"), "{query}: {text}");
        assert!(
            query.contains("prefix") || text.contains("<Key>open.txt</Key>"),
            "{query}: {text}"
        );
        assert!(
            !text.contains("deep.txt"),
            "{query}: a name inside a 700 folder leaked: {text}"
        );
    }
    // every object names its own owner, not the caller (v1 always, v2 with fetch-owner)
    for query in ["", "fetch-owner=true&list-type=2"] {
        let text = list(&eve, query);
        assert!(text.contains("<ID>ann</ID>"), "{query}: {text}");
        assert!(!text.contains("<ID>eve</ID>"), "{query}: {text}");
    }
    let owner = server.s3_key_for("ann");
    assert!(list(&owner, "list-type=2").contains("<Key>private/deep.txt</Key>"));

    let head =
        |key: &crate::common::S3Key, k: &str| s3(key, &["-I", &server.url(&format!("/cbk/{k}"))]);
    assert_eq!(head(&eve, "mine600.txt"), 403, "HEAD showed a 600 file");
    assert_eq!(head(&eve, "open.txt"), 200);
    assert_eq!(head(&owner, "mine600.txt"), 200);
    let _ = PW;
}

/// M8: the data dir was 0755 and kura.db and stored files 0644.
#[test]
fn the_data_dir_is_private_to_the_server() {
    require("curl");
    let server = Server::plain();
    run(server.kura().args(["group", "add", "pg"]));
    run(server
        .kura()
        .args(["bucket", "create", "p", "--group", "pg"]));
    assert_eq!(server.put("p/f.txt", b"private"), 201);
    assert_eq!(mode(&server.data_dir()), 0o700);
    assert_eq!(mode(&server.data_dir().join("kura.db")), 0o600);
    assert_eq!(mode(&server.files_dir().join("p/f.txt")), 0o600);
    assert_eq!(mode(&server.files_dir().join("p")) & 0o077, 0);
    for d in ["files", "tmp", "multipart"] {
        assert_eq!(mode(&server.data_dir().join(d)), 0o700, "{d}/");
    }
    assert_eq!(mode(&server.data_dir().join("kura.lock")), 0o600);

    // an operator who wants group access says so
    let server = Server::start_with(false, &[("KURA_DISK_UMASK", "027")]);
    run(server.kura().args(["group", "add", "qg"]));
    run(server
        .kura()
        .args(["bucket", "create", "q", "--group", "qg"]));
    assert_eq!(server.put("q/f.txt", b"shared with the group"), 201);
    assert_eq!(mode(&server.data_dir()), 0o750);
    assert_eq!(mode(&server.data_dir().join("kura.db")), 0o640);
    assert_eq!(mode(&server.files_dir().join("q/f.txt")), 0o640);
}

/// A `disk_umask` that is no octal mask (a typo, a mask wider than 777) stops every command with
/// a message naming the key, as `umask` does, instead of silently using 077 (or, for 7777,
/// making every file and folder mode 000).
#[test]
fn a_disk_umask_that_is_no_mask_is_refused() {
    let server = Server::plain();
    for bad in ["7777", "0o27", "rwx", "8"] {
        for cmd in [&["status"][..], &["serve"][..]] {
            let out = server
                .kura()
                .env("KURA_LISTEN", "127.0.0.1:0")
                .env("KURA_DISK_UMASK", bad)
                .args(cmd)
                .output()
                .expect("kura");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("disk_umask"),
                "KURA_DISK_UMASK={bad} kura {cmd:?}: {err}"
            );
        }
    }
}
