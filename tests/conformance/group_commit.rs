//! Attacks on the group commit of uploads to the local disk (src/vfs/group.rs): uploads that
//! commit at the same time share one transaction, each refused one undone alone. Many
//! concurrent PUTs, some refused inside the shared transaction (quota, create-only races,
//! stale If-Match, a folder in the way, a lock taken during the body), others cut off by
//! their clients: every acknowledged write reads back with its bytes, every refused one
//! changed nothing, usage is exact, `tmp/` is empty and fsck finds no drift.

use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{code, fsck_clean, group_bucket, require, run, tagged_body, usage, Server};
use crate::common::{S3Key, ADMIN_PW};

/// PUT of `body` to the WebDAV `path` as admin with extra curl `args`: the status.
fn put_with(server: &Server, path: &str, body: &[u8], args: &[&str]) -> u16 {
    let f = server
        .root
        .path()
        .join(format!("body-{}", path.replace('/', "_")));
    std::fs::write(&f, body).expect("write body");
    let mut all: Vec<&str> = args.to_vec();
    let file = f.to_str().expect("utf8").to_string();
    let url = server.dav(path);
    all.extend(["-T", &file, &url]);
    let s = server.status(&all);
    let _ = std::fs::remove_file(&f);
    s
}

/// An S3 request with curl's SigV4 signing: the output (`-w %{http_code}` last).
fn s3(server: &Server, key: &S3Key, args: &[&str], path: &str) -> Output {
    let user = format!("{}:{}", key.id, key.secret);
    Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--user", &user, "--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(args)
        .arg(server.url(path))
        .output()
        .expect("curl")
}

/// The regular files left in the server's `tmp/`.
fn tmp_files(server: &Server) -> Vec<String> {
    std::fs::read_dir(server.data_dir().join("tmp"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Nothing is left in `tmp/`: every new file was committed or removed.
fn no_temp_left(server: &Server) {
    let left = tmp_files(server);
    assert!(left.is_empty(), "tmp/: {left:?}");
}

/// The WebDAV GET of `path` as admin: status and body.
fn get(server: &Server, path: &str) -> (u16, Vec<u8>) {
    let out = server.curl_admin(&["-w", "\n%{http_code}", &server.dav(path)]);
    let mut body = out.stdout;
    let pos = body.iter().rposition(|b| *b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&body[pos + 1..])
        .trim()
        .parse()
        .expect("status");
    body.truncate(pos);
    (status, body)
}

/// 64 writers at once into a bucket whose quota holds 20 of their files, beside 16 create-only
/// PUTs of one name, 8 PUTs with a stale If-Match and 8 onto folders: the refusals happen
/// inside shared transactions (the quota and the conditions are checked there), each undone
/// alone; what was acknowledged is there with its bytes, and nothing else.
#[test]
fn refusals_inside_shared_batches_are_undone_alone() {
    require("curl");
    let server = Server::start_with(false, &[("RUST_LOG", "info,kura::vfs::group=debug")]);
    group_bucket(&server, "g", "gb", Some("20000"));
    run(server.kura().args([
        "bucket",
        "set",
        "gb",
        "--trash-days",
        "0",
        "--keep-days",
        "0",
    ]));
    assert_eq!(server.put("gb/target", &tagged_body("orig", 100)), 201);
    let stale = {
        let out = server.curl_admin(&["-sI", &server.dav("gb/target")]);
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        head.lines()
            .find_map(|l| l.strip_prefix("etag: ").or(l.strip_prefix("ETag: ")))
            .expect("etag")
            .trim()
            .to_string()
    };
    assert_eq!(server.put("gb/target", &tagged_body("second", 100)), 204);
    for i in 0..8 {
        let st = server.status(&["-X", "MKCOL", &server.dav(&format!("gb/dir{i}"))]);
        assert_eq!(st, 201);
    }
    let mut won_once = 0;
    for round in 0..3 {
        let mut threads = Vec::new();
        for i in 0..96usize {
            let port = server.port;
            let root = server.root.path().to_path_buf();
            let stale = stale.clone();
            threads.push(thread::spawn(move || {
                let url = |p: &str| format!("http://127.0.0.1:{port}/dav/{p}");
                let (path, body, extra): (String, Vec<u8>, Vec<String>) = match i % 12 {
                    // create-only racers on one name per round
                    0 | 1 => (
                        format!("gb/once{round}"),
                        tagged_body(&format!("once{i}-"), 300),
                        vec!["-H".into(), "If-None-Match: *".into()],
                    ),
                    2 => (
                        "gb/target".into(),
                        tagged_body(&format!("stale{i}-"), 50),
                        vec!["-H".into(), format!("If-Match: {stale}")],
                    ),
                    3 => (
                        format!("gb/dir{}", i % 8),
                        tagged_body("folder", 10),
                        Vec::new(),
                    ),
                    _ => (
                        format!("gb/r{round}-f{i}"),
                        tagged_body(&format!("r{round}-f{i}-"), 900),
                        Vec::new(),
                    ),
                };
                let f = root.join(format!("b-{round}-{i}"));
                std::fs::write(&f, &body).expect("body");
                let out = Command::new("curl")
                    .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                    .args(["-u", &format!("admin:{ADMIN_PW}")])
                    .args(&extra)
                    .arg("-T")
                    .arg(&f)
                    .arg(url(&path))
                    .output()
                    .expect("curl");
                let _ = std::fs::remove_file(&f);
                (i % 12, path, body, code(&out))
            }));
        }
        let results: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let mut once_won = Vec::new();
        for (kind, path, body, status) in &results {
            match kind {
                0 | 1 => match status {
                    201 => once_won.push(body.clone()),
                    // 507: the quota filled before any create-only PUT committed
                    412 | 507 => {}
                    s => panic!("create-only PUT of {path}: {s}"),
                },
                2 => assert_eq!(*status, 412, "stale If-Match on {path}"),
                3 => assert!(
                    (400..500).contains(status),
                    "PUT onto folder {path}: {status}"
                ),
                _ => match status {
                    201 => assert_eq!(get(&server, path), (200, body.clone()), "{path}"),
                    507 => assert_eq!(get(&server, path).0, 404, "refused {path} is there"),
                    s => panic!("PUT {path}: {s}"),
                },
            }
        }
        assert!(once_won.len() <= 1, "round {round}: create-only winners");
        let once = get(&server, &format!("gb/once{round}"));
        match once_won.first() {
            Some(body) => assert_eq!(once, (200, body.clone())),
            None => assert_eq!(once.0, 404, "nobody won once{round}"),
        }
        won_once += once_won.len() as i64;
        assert_eq!(get(&server, "gb/target"), (200, tagged_body("second", 100)));
        for i in 0..8 {
            let st = server.status(&[
                "-X",
                "PROPFIND",
                "-H",
                "Depth: 0",
                &server.dav(&format!("gb/dir{i}")),
            ]);
            assert_eq!(st, 207, "dir{i} is still a folder");
        }
        no_temp_left(&server);
        fsck_clean(&server);
        // free the room for the next round: usage comes back to what stays
        for (kind, path, _, status) in &results {
            if *kind >= 4 && *status == 201 {
                assert_eq!(server.status(&["-X", "DELETE", &server.dav(path)]), 204);
            }
        }
    }
    // what stays: the target and one create-only file a round
    assert_eq!(usage(&server, "g"), (100 + won_once * 300, 1 + won_once));
    // the attack ran against shared batches: some commit held several uploads
    let log = server.log();
    let most = log
        .lines()
        .filter_map(|l| l.split("group commit uploads=").nth(1))
        .filter_map(|n| n.trim().parse::<u32>().ok())
        .max();
    assert!(most.is_some_and(|n| n >= 2), "largest batch: {most:?}");
    fsck_clean(&server);
}

/// 48 S3 PutObjects at once under prefixes nobody made yet (several writers per new prefix,
/// so one batch makes a prefix's implicit folders for many members) plus 16 create-only
/// PutObjects of one key: every 200 reads back, exactly one create-only write wins.
#[test]
fn s3_puts_under_new_prefixes_in_one_batch() {
    require("curl");
    let server = Server::plain();
    let key = server.s3_key();
    assert_eq!(code(&s3(&server, &key, &["-X", "PUT"], "/pbk")), 200);
    let mut threads = Vec::new();
    for i in 0..64usize {
        let port = server.port;
        let key = S3Key {
            id: key.id.clone(),
            secret: key.secret.clone(),
        };
        let root = server.root.path().to_path_buf();
        threads.push(thread::spawn(move || {
            let (obj, extra): (String, Vec<&str>) = if i < 48 {
                (format!("/pbk/p{}/deep/er/k{i}", i % 6), Vec::new())
            } else {
                ("/pbk/only/once".into(), vec!["-H", "If-None-Match: *"])
            };
            let body = tagged_body(&format!("s3-{i}-"), 700 + i);
            let f = root.join(format!("s3-{i}"));
            std::fs::write(&f, &body).expect("body");
            let user = format!("{}:{}", key.id, key.secret);
            let out = Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(["--user", &user, "--aws-sigv4", "aws:amz:us-east-1:s3"])
                .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
                .args(&extra)
                .arg("-T")
                .arg(&f)
                .arg(format!("http://127.0.0.1:{port}{obj}"))
                .output()
                .expect("curl");
            let _ = std::fs::remove_file(&f);
            (i, obj, body, code(&out))
        }));
    }
    let mut winners = Vec::new();
    for t in threads {
        let (i, obj, body, status) = t.join().expect("thread");
        if i < 48 {
            assert_eq!(status, 200, "PutObject {obj}");
            assert_eq!(
                get(&server, obj.trim_start_matches('/')),
                (200, body),
                "{obj}"
            );
        } else {
            match status {
                200 => winners.push(body),
                // AWS: 412, or 409 for a conditional write racing another
                409 | 412 => {}
                s => panic!("create-only PutObject: {s}"),
            }
        }
    }
    assert_eq!(winners.len(), 1, "create-only winners");
    assert_eq!(get(&server, "pbk/only/once"), (200, winners.remove(0)));
    no_temp_left(&server);
    fsck_clean(&server);
}

/// A WebDAV LOCK taken while uploads are still sending their bodies: those that commit after
/// it are refused inside the shared transaction and leave the old bytes, while the
/// uploads beside them, unlocked, commit.
#[test]
fn a_lock_taken_during_the_bodies_refuses_inside_the_batch() {
    require("curl");
    let server = Server::plain();
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("lk")]), 201);
    assert_eq!(server.put("lk/locked", b"before"), 201);
    let mut threads = Vec::new();
    for i in 0..24usize {
        let port = server.port;
        let root = server.root.path().to_path_buf();
        threads.push(thread::spawn(move || {
            let path = if i % 4 == 0 {
                "lk/locked".to_string()
            } else {
                format!("lk/free{i}")
            };
            let body = tagged_body(&format!("lock{i}-"), 3_000_000);
            let f = root.join(format!("lk-{i}"));
            std::fs::write(&f, &body).expect("body");
            // the body takes about three seconds: the lock comes meanwhile
            let out = Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(["-u", &format!("admin:{ADMIN_PW}"), "--limit-rate", "1M"])
                .arg("-T")
                .arg(&f)
                .arg(format!("http://127.0.0.1:{port}/dav/{path}"))
                .output()
                .expect("curl");
            let _ = std::fs::remove_file(&f);
            (path, body, code(&out), Instant::now())
        }));
    }
    thread::sleep(Duration::from_millis(800));
    let (status, token) = crate::locks::lock_as(
        &server,
        &format!("admin:{ADMIN_PW}"),
        "lk/locked",
        "0",
        r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>x</D:owner></D:lockinfo>"#,
    );
    let locked_at = Instant::now();
    // a refusal inside the transaction has no FsError of its own: dav-server answers 403
    // (src/dav/errors.rs), 423 only when its own check at the start sees the lock
    assert_eq!(status, 200, "LOCK");
    assert!(token.is_some());
    let results: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let locked: Vec<_> = results
        .iter()
        .filter(|r| r.0 == "lk/locked")
        .map(|r| (r.2, r.3 > locked_at))
        .collect();
    assert!(
        locked
            .iter()
            .all(|(s, after)| [403, 423].contains(s) && *after),
        "uploads under the lock (status, ended after LOCK): {locked:?}"
    );
    for (path, body, status, _) in results {
        if path != "lk/locked" {
            assert_eq!(status, 201, "{path}");
            assert_eq!(get(&server, &path), (200, body));
        }
    }
    assert_eq!(get(&server, "lk/locked"), (200, b"before".to_vec()));
    no_temp_left(&server);
    fsck_clean(&server);
}

/// Clients that hang up as their upload commits (curl cut off after the body, at random
/// instants) beside clients that wait: the server never keeps a batch open (the uploads after
/// them commit within seconds), what was acknowledged reads back, and nothing is left over.
#[test]
fn clients_hanging_up_mid_commit_leave_no_batch_open() {
    require("curl");
    let server = Server::plain();
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("hu")]), 201);
    for round in 0..4 {
        let mut threads = Vec::new();
        for i in 0..48usize {
            let port = server.port;
            let root = server.root.path().to_path_buf();
            threads.push(thread::spawn(move || {
                let path = format!("hu/r{round}-{i}");
                let body = tagged_body(&format!("{path}-"), 2000 + 37 * i);
                let f = root.join(format!("hu-{round}-{i}"));
                std::fs::write(&f, &body).expect("body");
                let mut cmd = Command::new("curl");
                cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                    .args(["-u", &format!("admin:{ADMIN_PW}"), "-H", "Expect:"]);
                if i % 2 == 1 {
                    // cut off somewhere between 5 and 50 ms in
                    let t = format!("0.0{:02}", 5 + (i * 7 + round) % 45);
                    cmd.args(["--max-time", &t]);
                }
                let out = cmd
                    .arg("-T")
                    .arg(&f)
                    .arg(format!("http://127.0.0.1:{port}/dav/{path}"))
                    .output()
                    .expect("curl");
                let _ = std::fs::remove_file(&f);
                (i, path, body, code(&out))
            }));
        }
        for t in threads {
            let (i, path, body, status) = t.join().expect("thread");
            match status {
                201 => assert_eq!(get(&server, &path), (200, body), "{path}"),
                _ if i % 2 == 1 => {
                    // hung up: committed whole or not at all
                    let (s, got) = get(&server, &path);
                    assert!(s == 404 || (s == 200 && got == body), "{path}: {s}");
                }
                s => panic!("PUT {path}: {s}"),
            }
        }
        let t0 = Instant::now();
        assert_eq!(
            put_with(
                &server,
                &format!("hu/after{round}"),
                b"after",
                &["--max-time", "10"]
            ),
            201
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "a PUT after took {:?}",
            t0.elapsed()
        );
    }
    // the commits of hung-up uploads run to the end on their own
    thread::sleep(Duration::from_millis(500));
    no_temp_left(&server);
    fsck_clean(&server);
}

/// An upload whose rename cannot happen (a path of 4,090 bytes, which the namespace accepts,
/// but which on disk, below the data dir, passes the system's PATH_MAX) fails, but alone: the
/// uploads of other clients committing at the same time, in the same batch, still commit.
#[test]
fn an_upload_whose_rename_fails_fails_alone() {
    require("curl");
    let server = Server::plain();
    // folders as deep as the disk allows: 15 names of 250 bytes and one of 100 (3,870 bytes)
    let mut folder = "lng".to_string();
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav(&folder)]), 201);
    let names: Vec<String> = (0..15)
        .map(|i| format!("{i:x}").repeat(250))
        .chain(["z".repeat(100)])
        .collect();
    for n in names {
        folder = format!("{folder}/{n}");
        assert_eq!(server.status(&["-X", "MKCOL", &server.dav(&folder)]), 201);
    }
    // a name taking the path to 4,090 bytes: within the namespace's 4,096, not on disk
    let doomed = format!("{folder}/{}", "d".repeat(4090 - folder.len() - 2));
    let on_disk = server.files_dir().join(&doomed);
    assert!(on_disk.as_os_str().len() > 4095 && doomed.len() < 4096);
    let mut threads = Vec::new();
    for i in 0..36usize {
        let port = server.port;
        let root = server.root.path().to_path_buf();
        let doomed = doomed.clone();
        threads.push(thread::spawn(move || {
            let mut seen = Vec::new();
            for n in 0..6 {
                let path = if i < 6 {
                    doomed.clone()
                } else {
                    format!("lng/k{i}-{n}")
                };
                let body = tagged_body(&format!("{i}-{n}-"), 500);
                let f = root.join(format!("lng-{i}"));
                std::fs::write(&f, &body).expect("body");
                let out = Command::new("curl")
                    .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                    .args(["-u", &format!("admin:{ADMIN_PW}")])
                    .arg("-T")
                    .arg(&f)
                    .arg(format!("http://127.0.0.1:{port}/dav/{path}"))
                    .output()
                    .expect("curl");
                seen.push((i, path, body, code(&out)));
            }
            seen
        }));
    }
    let mut failed = Vec::new();
    for t in threads {
        for (i, path, body, status) in t.join().expect("thread") {
            if i < 6 {
                assert_ne!(status, 201, "the doomed path was written");
                continue;
            }
            if status != 201 {
                failed.push((path, status));
            } else {
                assert_eq!(get(&server, &path), (200, body));
            }
        }
    }
    assert!(failed.is_empty(), "innocent uploads failed: {failed:?}");
    no_temp_left(&server);
    fsck_clean(&server);
}
