//! Backup and restore (docs/operations.md): a live server backed up under writes, a second,
//! incremental snapshot, verification that finds a flipped byte, and a restore into a fresh
//! data dir that serves the same bytes, users, keys, shares, versions and quotas.

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common::{require, run, tagged_body as body, Server};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kura usage g`'s line for group g (used, quota, versions columns).
fn usage_line(server: &Server) -> String {
    let out = run(server.kura().args(["usage", "g"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("g\t"))
        .expect("usage line")
        .to_string()
}

/// The stable files of the test: path and bytes.
fn stable() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            (
                format!("bak/docs/file-{i}.txt"),
                body(&format!("doc {i} "), 1000 + i * 997),
            )
        })
        .collect();
    v.push((
        "bak/big.bin".into(),
        (0..3_000_000u32).map(|i| (i % 251) as u8).collect(),
    ));
    v.push(("bak/report.docx".into(), b"second draft".to_vec()));
    v
}

fn fingerprint(server: &Server) -> String {
    let out = run(server.kura().arg("fingerprint"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_live_server_backed_up_under_writes_restores_into_a_fresh_data_dir() {
    require("curl");
    require("aws");
    let server = Server::start(true);
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "bak", "--group", "g"]));
    run(server.kura().args(["quota", "set", "g", "--bytes", "1G"]));
    server.add_user("alice", "alice-password-1", &["--group", "g"]);
    let key = server.s3_key_for("alice");
    let ls = server
        .aws(&key)
        .args(["s3", "ls", "s3://bak/"])
        .output()
        .expect("aws");
    assert!(ls.status.success(), "{}", text(&ls));
    for folder in ["bak/docs/", "bak/live/"] {
        assert_eq!(server.status(&["-X", "MKCOL", &server.dav(folder)]), 201);
    }
    // a version: the first draft is kept when the second replaces it
    assert_eq!(server.put("bak/report.docx", b"first draft"), 201);
    for (path, bytes) in stable() {
        assert!([201, 204].contains(&server.put(&path, &bytes)), "{path}");
    }
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("bak/empty-folder/")]),
        201
    );
    let share = {
        let out = run(server
            .kura()
            .args(["share", "create", "/bak/docs/file-3.txt", "--json"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("share json");
        v["token"].as_str().expect("token").to_string()
    };

    // a writer keeps overwriting and adding files while the backup runs
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, port, cert) = (stop.clone(), server.port, server.cert());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 400 {
                let tmp = tempfile::NamedTempFile::new().expect("tmp");
                let bytes = body(&format!("live {n} "), 5000 + n * 13);
                std::fs::write(tmp.path(), &bytes).expect("write");
                let _ = std::process::Command::new("curl")
                    .args(["-sS", "-o", "/dev/null", "--cacert"])
                    .arg(&cert)
                    .args(["-u", &format!("admin:{}", crate::common::ADMIN_PW), "-T"])
                    .arg(tmp.path())
                    .arg(format!("https://127.0.0.1:{port}/bak/live/f-{}.txt", n % 7))
                    .status();
                n += 1;
            }
        })
    };
    let repo = tempfile::tempdir().expect("repo");
    let dest = repo.path().join("backups");
    let dest_s = dest.to_str().expect("utf8");
    let first = run(server.kura().args(["backup", dest_s]));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let first = text(&first);
    assert!(first.contains("snapshot "), "{first}");

    // a second snapshot copies only what changed (the live files), not the 3 MB file again
    assert_eq!(
        server.put("bak/docs/file-0.txt", b"changed after the first backup"),
        204
    );
    let second = text(&run(server.kura().args(["backup", dest_s])));
    let copied: u64 = second
        .split("copied ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("copied count");
    assert!(
        copied <= 20,
        "an incremental backup copied {copied} objects: {second}"
    );
    let copied_bytes: u64 = second
        .split(" objects (")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("copied bytes");
    assert!(copied_bytes < 1_000_000, "{second}");
    let listed = text(&run(server.kura().args(["backup", "list", dest_s])));
    assert_eq!(listed.lines().count(), 2, "{listed}");

    // verification passes, then finds one flipped byte in the big file's object
    let ok = text(&run(server
        .kura()
        .args(["backup", "verify", dest_s, "--all"])));
    assert!(ok.contains("every hash matches"), "{ok}");
    let big = crate::common::sha256_file(&server.files_dir().join("bak/big.bin"));
    let object = dest.join("objects").join(&big[..2]).join(&big);
    let mut bytes = std::fs::read(&object).expect("object");
    bytes[1_234_567] ^= 0x20;
    std::fs::write(&object, &bytes).expect("flip");
    let bad = server
        .kura()
        .args(["backup", "verify", dest_s])
        .output()
        .expect("verify");
    assert!(!bad.status.success(), "a flipped byte passed verification");
    assert!(text(&bad).contains("content differs"), "{}", text(&bad));
    // a restore refuses a damaged backup and leaves the new data dir empty
    let target = Server::in_folder(&[]);
    let refused = target
        .kura()
        .args(["backup", "restore", dest_s])
        .output()
        .expect("restore");
    assert!(!refused.status.success());
    assert!(!target.data_dir().join("kura.db").exists());
    bytes[1_234_567] ^= 0x20;
    std::fs::write(&object, &bytes).expect("unflip");

    // restore (as `kura restore DEST`) into the fresh data dir and serve it
    let _ = std::fs::remove_dir_all(target.data_dir());
    let restored = text(&run(target.kura().args(["restore", dest_s])));
    assert!(restored.contains("restored snapshot"), "{restored}");
    let mut target = target;
    target.start_again();
    for (path, bytes) in stable() {
        let want = if path == "bak/docs/file-0.txt" {
            b"changed after the first backup".to_vec()
        } else {
            bytes
        };
        assert_eq!(target.get(&path), want, "{path}");
    }
    // the live files hold one whole write each, never a mix
    for i in 0..7 {
        let out = target.curl_admin(&["-f", &target.dav(&format!("bak/live/f-{i}.txt"))]);
        if !out.status.success() {
            continue; // not yet written when the snapshot was taken
        }
        let got = String::from_utf8_lossy(&out.stdout).into_owned();
        let tag: String = got.split(' ').take(2).collect::<Vec<_>>().join(" ") + " ";
        assert_eq!(
            got.as_bytes(),
            &body(&tag, got.len())[..],
            "bak/live/f-{i}.txt"
        );
    }
    assert_eq!(
        target.status(&[
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
            &target.dav("bak/empty-folder/")
        ]),
        207
    );
    // the user's password, the S3 key, the share link, the kept version, the quota and the
    // certificate are the same
    let alice = target.status_as(
        "alice:alice-password-1",
        &[&target.dav("bak/docs/file-1.txt")],
    );
    assert_eq!(alice, 200);
    let ls = run(target.aws(&key).args(["s3", "ls", "s3://bak/docs/"]));
    assert!(text(&ls).contains("file-19.txt"), "{}", text(&ls));
    let shared = target.curl(&["-f", &target.url(&format!("/s/{share}"))]);
    assert!(shared.status.success(), "{}", text(&shared));
    assert_eq!(shared.stdout, body("doc 3 ", 1000 + 3 * 997));
    let v = run(target
        .kura()
        .args(["versions", "list", "/bak/report.docx", "--json"]));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&v.stdout).expect("versions");
    assert!(v.iter().any(|x| x["size"] == 11), "{v:?}");
    run(target.kura().args(["restore", "/bak/report.docx"]));
    assert_eq!(target.get("bak/report.docx"), b"first draft");
    let quota = |s: &Server| usage_line(s).split('\t').nth(2).map(str::to_string);
    assert_eq!(quota(&target), quota(&server));
    assert_ne!(quota(&target).as_deref(), Some("-"));
    assert_eq!(fingerprint(&target), fingerprint(&server));
    let fsck = text(&run(target.kura().arg("fsck")));
    assert!(fsck.contains("usage: no drift"), "{fsck}");

    // a second restore into the now used data dir is refused
    let again = target
        .kura()
        .args(["backup", "restore", dest_s])
        .output()
        .expect("restore");
    assert!(!again.status.success());
    assert!(text(&again).contains("not empty"), "{}", text(&again));
}

/// A server with bucket `bak` holding `a.txt` ("hello"), backed up into `<repo>/r`.
fn one_file_backed_up() -> (Server, tempfile::TempDir) {
    let server = Server::plain();
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "bak", "--group", "g"]));
    assert_eq!(server.put("bak/a.txt", b"hello"), 201);
    let repo = tempfile::tempdir().expect("repo");
    run(server.kura().arg("backup").arg(repo.path().join("r")));
    (server, repo)
}

#[test]
fn a_tampered_object_list_cannot_write_outside_the_storage() {
    let (_server, repo) = one_file_backed_up();
    let dest = repo.path().join("r");
    let dest_s = dest.to_str().expect("utf8");
    // rewrite the object list with a traversal and fix the manifest's hashes to match, as an
    // attacker who can write the backup folder would
    let snaps = dest.join("snapshots");
    let id = std::fs::read_dir(&snaps)
        .expect("snapshots")
        .next()
        .expect("one")
        .expect("entry")
        .file_name();
    let snap = snaps.join(id);
    let list = snap.join("objects.jsonl");
    let evil = std::fs::read_to_string(&list)
        .expect("list")
        .replace("\"/bak/a.txt\"", "\"/bak/../../../escaped.txt\"");
    std::fs::write(&list, &evil).expect("tamper");
    let manifest_path = snap.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest")).expect("json");
    m["objects"]["sha256"] = crate::common::sha256_file(&list).into();
    m["objects"]["size"] = evil.len().into();
    std::fs::write(&manifest_path, serde_json::to_vec(&m).expect("json")).expect("manifest");
    let target = Server::in_folder(&[]);
    let out = target
        .kura()
        .args(["backup", "restore", dest_s])
        .output()
        .expect("restore");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("not a stored object name"),
        "{}",
        text(&out)
    );
    for p in [
        target.data_dir().join("escaped.txt"),
        target
            .data_dir()
            .parent()
            .expect("root")
            .join("escaped.txt"),
        Path::new("/escaped.txt").to_path_buf(),
    ] {
        assert!(!p.exists(), "{} was written", p.display());
    }
    // nothing half restored is left to serve
    let left = crate::common::tree(&target.data_dir());
    assert!(left.is_empty(), "a failed restore left {left:?}");
}

#[test]
fn a_folder_moved_back_and_forth_during_a_backup_keeps_every_file() {
    // red team: a file renamed between the metadata copy and the read of its bytes was
    // dropped from the snapshot as if deleted, though it never stopped existing
    require("curl");
    let server = Server::plain();
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "bak", "--group", "g"]));
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("bak/a/")]), 201);
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                format!("f-{i}.bin"),
                body(&format!("moved {i} "), 300_000 + i),
            )
        })
        .collect();
    for (name, bytes) in &files {
        assert_eq!(server.put(&format!("bak/a/{name}"), bytes), 201, "{name}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let (stop, a, b) = (stop.clone(), server.dav("bak/a"), server.dav("bak/b"));
        let pw = crate::common::ADMIN_PW;
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 5000 {
                let (from, to) = if n.is_multiple_of(2) {
                    (&a, &b)
                } else {
                    (&b, &a)
                };
                let _ = std::process::Command::new("curl")
                    .args(["-sS", "-o", "/dev/null", "-X", "MOVE", "-u"])
                    .arg(format!("admin:{pw}"))
                    .args(["-H", &format!("Destination: {to}"), from])
                    .status();
                n += 1;
            }
        })
    };
    let repo = tempfile::tempdir().expect("repo");
    let dest = repo.path().join("r");
    let dest_s = dest.to_str().expect("utf8");
    let out = text(&run(server.kura().args(["backup", dest_s])));
    stop.store(true, Ordering::Relaxed);
    mover.join().expect("mover");
    let mut target = Server::in_folder(&[]);
    run(target.kura().args(["backup", "restore", dest_s]));
    target.start_again();
    let folder = ["a", "b"]
        .into_iter()
        .find(|f| {
            target.status(&[
                "-X",
                "PROPFIND",
                "-H",
                "Depth: 0",
                &target.dav(&format!("bak/{f}/")),
            ]) == 207
        })
        .expect("the folder under one of its names");
    for (name, bytes) in &files {
        let got = target.curl_admin(&["-f", &target.dav(&format!("bak/{folder}/{name}"))]);
        assert!(
            got.status.success() && got.stdout == *bytes,
            "bak/{folder}/{name} missing from the restore; backup said: {out}"
        );
    }
    let fsck = text(&run(target.kura().arg("fsck")));
    assert!(fsck.contains("usage: no drift"), "{fsck}");
}

#[test]
fn a_refused_restore_leaves_the_data_dir_as_it_found_it() {
    // red team: a restore refused for a storage root that holds files had already put the
    // database and the secret key in the data dir: a server started on it served a
    // metadata copy with no bytes, and a second restore was refused as "not empty"
    let (_server, repo) = one_file_backed_up();
    let dest = repo.path().join("r");
    let dest_s = dest.to_str().expect("utf8");
    let storage = tempfile::tempdir().expect("storage");
    let stray = storage.path().join("someone-elses.txt");
    std::fs::write(&stray, b"not Kura's").expect("stray");
    let root = storage.path().to_str().expect("utf8");
    let mut target = Server::in_folder(&[("KURA_STORAGE__ROOT", root)]);
    let out = target
        .kura()
        .args(["backup", "restore", dest_s])
        .output()
        .expect("restore");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already holds files"), "{}", text(&out));
    assert_eq!(std::fs::read(&stray).expect("stray kept"), b"not Kura's");
    let left: Vec<String> = crate::common::tree(&target.data_dir());
    assert!(left.is_empty(), "a refused restore left {left:?}");
    // once the storage is emptied the same restore goes through and serves the file
    std::fs::remove_file(&stray).expect("rm");
    run(target.kura().args(["backup", "restore", dest_s]));
    target.start_again();
    assert_eq!(target.get("bak/a.txt"), b"hello");
}

#[test]
fn every_file_of_a_backup_repository_is_private() {
    // red team: the metadata copy (password hashes, sealed keys, share tokens) was written
    // by VACUUM INTO with the umask's mode (0644), though docs/backup.md promises 0600
    use std::os::unix::fs::PermissionsExt;
    let (_server, repo) = one_file_backed_up();
    let dest = repo.path().join("r");
    for rel in crate::common::tree(&dest) {
        let mode = std::fs::metadata(dest.join(&rel))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{rel} is {mode:o}");
    }
}
