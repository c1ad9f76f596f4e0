//! Files moved or copied into an encrypted bucket (docs/encryption.md, "Moving files in"):
//! whatever way they come (WebDAV MOVE of a file or a folder with its kept versions, the
//! browser app's rename and move, S3 CopyObject and UploadPartCopy), their bytes on disk hold
//! no run of the plaintext once the request answers, they read back byte-equal through WebDAV
//! and S3 with the plaintext's MD5 as ETag, and a server killed in the middle of a large
//! folder's move loses nothing and leaves nothing unreadable.

use std::process::Stdio;

use crate::common::{fsck_clean, require, S3Key, Server};
use crate::encryption::{
    contains, get_urls, kept_ids, md5_of, pattern, plaintext_files, s3, sealed_len,
    server_with_buckets, usage, version_url, walk,
};

/// A known-pattern body that says which file it is.
fn body(name: &str, len: usize) -> Vec<u8> {
    let mut b = format!("{name} ").into_bytes();
    b.extend(pattern(len));
    b
}

/// The stored bytes of `path` (below `files/`) are sealed: the header, the sealed length of
/// `plain`, no run of the pattern.
fn assert_sealed(s: &Server, path: &str, plain: &[u8]) {
    let disk = std::fs::read(s.files_dir().join(path)).unwrap_or_default();
    assert!(disk.starts_with(b"KURASEAL"), "{path}: not sealed on disk");
    assert_eq!(disk.len(), sealed_len(plain.len()), "{path}: stored length");
    assert!(!contains(&disk, b"KNOWN-PATTERN"), "{path}: plaintext");
}

/// The MD5 (hex) S3 gives as `key`'s ETag in `bucket`, and its bytes through S3.
fn s3_etag_and_body(s: &Server, key: &S3Key, bucket: &str, k: &str) -> (String, Vec<u8>) {
    let head = s3(
        s,
        key,
        &["s3api", "head-object", "--bucket", bucket, "--key", k],
    );
    assert!(head.status.success(), "{head:?}");
    let v: serde_json::Value = serde_json::from_slice(&head.stdout).unwrap();
    let etag = v["ETag"].as_str().unwrap().trim_matches('"').to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got");
    let get = s3(
        s,
        key,
        &[
            "s3api",
            "get-object",
            "--bucket",
            bucket,
            "--key",
            k,
            out.to_str().unwrap(),
        ],
    );
    assert!(get.status.success(), "{get:?}");
    (etag, std::fs::read(out).unwrap())
}

fn md5_hex(b: &[u8]) -> String {
    format!("{:032x}", md5_of(b))
}

/// WebDAV MOVE as admin: the status.
fn dav_move(s: &Server, from: &str, to: &str) -> u16 {
    let dest = format!("Destination: {}", s.dav(to));
    s.status(&["-X", "MOVE", "-H", &dest, &s.dav(from)])
}

/// A WebDAV MOVE as admin, left running: the curl process.
fn spawn_move(s: &Server, from: &str, to: &str) -> std::process::Child {
    let dest = format!("Destination: {}", s.dav(to));
    std::process::Command::new("curl")
        .args(["-sS", "-u", &format!("admin:{}", crate::common::ADMIN_PW)])
        .args(["-X", "MOVE", "-H", &dest, &s.dav(from)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run curl")
}

/// A POST of JSON to the user API as admin: the status.
fn api_post(s: &Server, path: &str, json: &str) -> u16 {
    s.status(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        json,
        &s.url(&format!("/api/user/v1/{path}")),
    ])
}

#[test]
fn files_and_folders_moved_into_an_encrypted_bucket_leave_no_plaintext_on_disk() {
    require("curl");
    require("aws");
    let s = server_with_buckets();
    let key = s.s3_key();
    let seg = 64 * 1024;
    let report = body("report", 3 * seg + 100);
    let a_old = body("a-old", seg + 7);
    let a = body("a", 2 * seg + 5);
    let b = body("b", 10);
    let app = body("app", seg);
    let moved = body("moved", 5000);
    for dir in ["pub/dir", "pub/dir/sub"] {
        assert_eq!(s.status(&["-X", "MKCOL", &s.dav(dir)]), 201);
    }
    for (path, data) in [
        ("pub/report.txt", &report),
        ("pub/dir/a", &a_old),
        ("pub/dir/a", &a), // the first bytes stay as a kept version, which moves along
        ("pub/dir/sub/b", &b),
        ("pub/app.txt", &app),
        ("pub/moved.txt", &moved),
    ] {
        assert!(matches!(s.put(path, data), 201 | 204), "PUT {path}");
    }
    let kept = kept_ids(&s, "/pub/dir/a");
    assert_eq!(kept.len(), 1, "one kept version of /pub/dir/a");
    let used = usage(&s);
    // the attacks: each way into the encrypted bucket
    assert_eq!(dav_move(&s, "pub/report.txt", "sec/report.txt"), 201);
    assert_eq!(dav_move(&s, "pub/dir", "sec/dir"), 201);
    assert_eq!(
        api_post(
            &s,
            "rename",
            r#"{"path":"/pub/app.txt","to":"/sec/app.txt"}"#
        ),
        200
    );
    assert_eq!(
        api_post(&s, "move", r#"{"sources":["/pub/moved.txt"],"to":"/sec"}"#),
        200
    );
    // no run of any plaintext anywhere under the data dir (files, kept versions, tmp)
    assert_eq!(plaintext_files(&s), Vec::<std::path::PathBuf>::new());
    for (path, data) in [
        ("sec/report.txt", &report),
        ("sec/dir/a", &a),
        ("sec/dir/sub/b", &b),
        ("sec/app.txt", &app),
        ("sec/moved.txt", &moved),
    ] {
        assert_sealed(&s, path, data);
        assert!(s.get(path) == *data, "{path} through WebDAV");
        let (bucket, k) = path.split_once('/').unwrap();
        let (etag, got) = s3_etag_and_body(&s, &key, bucket, k);
        assert!(got == *data, "{path} through S3");
        assert_eq!(
            etag,
            md5_hex(data),
            "{path}: the ETag is the plaintext's MD5"
        );
    }
    // the kept version moved with its file, sealed, and reads back
    assert_eq!(kept_ids(&s, "/sec/dir/a"), kept);
    let old = get_urls(&s, &[version_url(&s, "/sec/dir/a", &kept[0])]);
    assert!(old[0] == a_old, "the kept version after the move");
    assert_eq!(
        usage(&s),
        used,
        "a move between buckets of one group changes no usage"
    );
    fsck_clean(&s);
    // and back out: the bytes stay sealed in the plain bucket, readable
    assert_eq!(dav_move(&s, "sec/report.txt", "pub/back.txt"), 201);
    assert_sealed(&s, "pub/back.txt", &report);
    assert!(s.get("pub/back.txt") == report);
    fsck_clean(&s);
}

#[test]
fn a_folder_copied_into_an_encrypted_bucket_is_sealed_and_its_source_stays() {
    require("curl");
    let s = server_with_buckets();
    let (a, b) = (body("a", 2 * 64 * 1024 + 5), body("b", 10));
    for dir in ["pub/tree", "pub/tree/sub"] {
        assert_eq!(s.status(&["-X", "MKCOL", &s.dav(dir)]), 201);
    }
    assert_eq!(s.put("pub/tree/a", &a), 201);
    assert_eq!(s.put("pub/tree/sub/b", &b), 201);
    let used = usage(&s);
    // the attack: a WebDAV COPY of a whole folder of plain files into the encrypted bucket
    let dest = format!("Destination: {}", s.dav("sec/tree"));
    assert_eq!(
        s.status(&["-X", "COPY", "-H", &dest, &s.dav("pub/tree")]),
        201
    );
    let plain_in_sec: Vec<_> = walk(&s.files_dir().join("sec"))
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|d| contains(&d, b"KNOWN-PATTERN")))
        .collect();
    assert_eq!(plain_in_sec, Vec::<std::path::PathBuf>::new());
    for (path, data) in [("sec/tree/a", &a), ("sec/tree/sub/b", &b)] {
        assert_sealed(&s, path, data);
        assert!(s.get(path) == *data, "{path} through WebDAV");
    }
    // the source is untouched, plain as its bucket keeps files
    assert_eq!(std::fs::read(s.files_dir().join("pub/tree/a")).unwrap(), a);
    assert_ne!(usage(&s), used, "the copy is charged");
    // a second copy onto the first is refused (a folder is not replaced) and changes nothing
    assert_ne!(
        s.status(&[
            "-X",
            "COPY",
            "-H",
            &dest,
            "-H",
            "Overwrite: F",
            &s.dav("pub/tree")
        ]),
        201
    );
    assert!(s.get("sec/tree/a") == a);
    fsck_clean(&s);
}

#[test]
fn s3_copies_into_an_encrypted_bucket_are_sealed() {
    require("aws");
    let s = server_with_buckets();
    let key = s.s3_key();
    // a first part of 5 MiB (the least S3 takes), a second of its first 100 bytes
    let data = body("copied", 5 * 1024 * 1024);
    assert_eq!(s.put("pub/src.bin", &data), 201);
    let cp = s3(
        &s,
        &key,
        &[
            "s3api",
            "copy-object",
            "--copy-source",
            "pub/src.bin",
            "--bucket",
            "sec",
            "--key",
            "copy.bin",
        ],
    );
    assert!(cp.status.success(), "{cp:?}");
    // UploadPartCopy: two parts copied from the plain source
    let up = s3(
        &s,
        &key,
        &[
            "s3api",
            "create-multipart-upload",
            "--bucket",
            "sec",
            "--key",
            "parts.bin",
        ],
    );
    assert!(up.status.success(), "{up:?}");
    let v: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let id = v["UploadId"].as_str().unwrap().to_string();
    let mut etags = Vec::new();
    for (n, range) in [(1, None), (2, Some("bytes=0-99"))] {
        let num = n.to_string();
        let mut args = vec![
            "s3api",
            "upload-part-copy",
            "--bucket",
            "sec",
            "--key",
            "parts.bin",
            "--upload-id",
            &id,
            "--part-number",
            &num,
            "--copy-source",
            "pub/src.bin",
        ];
        if let Some(r) = range {
            args.extend(["--copy-source-range", r]);
        }
        let part = s3(&s, &key, &args);
        assert!(part.status.success(), "{part:?}");
        let v: serde_json::Value = serde_json::from_slice(&part.stdout).unwrap();
        etags.push(v["CopyPartResult"]["ETag"].as_str().unwrap().to_string());
    }
    // the waiting parts are sealed too
    let waiting: Vec<_> = walk(&s.data_dir().join("multipart"))
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| contains(&b, b"KNOWN-PATTERN")))
        .collect();
    assert!(waiting.is_empty(), "plain parts: {waiting:?}");
    let parts = serde_json::json!({"Parts": [
        {"PartNumber": 1, "ETag": etags[0]},
        {"PartNumber": 2, "ETag": etags[1]},
    ]})
    .to_string();
    let done = s3(
        &s,
        &key,
        &[
            "s3api",
            "complete-multipart-upload",
            "--bucket",
            "sec",
            "--key",
            "parts.bin",
            "--upload-id",
            &id,
            "--multipart-upload",
            &parts,
        ],
    );
    assert!(done.status.success(), "{done:?}");
    let twice = [&data[..], &data[..100]].concat();
    assert_sealed(&s, "sec/copy.bin", &data);
    assert_sealed(&s, "sec/parts.bin", &twice);
    let (etag, got) = s3_etag_and_body(&s, &key, "sec", "copy.bin");
    assert!(got == data);
    assert_eq!(etag, md5_hex(&data));
    assert!(s.get("sec/parts.bin") == twice);
    // the plain source is the only plaintext left
    assert_eq!(plaintext_files(&s), vec![s.files_dir().join("pub/src.bin")]);
}

/// The body of file `i` of the large folder: distinct, 1 to 2 segments long.
fn big_body(i: usize) -> Vec<u8> {
    body(&format!("big {i:04}"), 64 * 1024 + i * 97)
}

/// How many files of the large folder hold their sealed length in `dir` (below `files/`).
fn sealed_in(s: &Server, dir: &str, n: usize) -> usize {
    (0..n)
        .filter(|&i| {
            let len = std::fs::metadata(s.files_dir().join(format!("{dir}/f{i:04}")))
                .map(|m| m.len() as usize)
                .unwrap_or(0);
            len == sealed_len(big_body(i).len())
        })
        .count()
}

/// The files of the large folder in `dir`, fetched as admin in one curl run.
fn get_big(s: &Server, dir: &str, n: usize) -> Vec<Vec<u8>> {
    let urls: Vec<String> = (0..n).map(|i| s.dav(&format!("{dir}/f{i:04}"))).collect();
    get_urls(s, &urls)
}

#[test]
fn a_server_killed_while_it_moves_a_large_folder_in_loses_nothing() {
    require("curl");
    let mut s = server_with_buckets();
    const N: usize = 300;
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("pub/big")]), 201);
    for i in 0..N {
        assert_eq!(s.put(&format!("pub/big/f{i:04}"), &big_body(i)), 201);
    }
    let used = usage(&s);
    // the MOVE, with the server killed (kill -9) about a third of the way through its sealing
    let mut mv = spawn_move(&s, "pub/big", "sec/big");
    let start = std::time::Instant::now();
    while sealed_in(&s, "pub/big", N) < N / 3 {
        assert!(
            start.elapsed().as_secs() < 120,
            "the sealing does not advance"
        );
        assert!(
            mv.try_wait().unwrap().is_none(),
            "the MOVE ended before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    s.kill9();
    let _ = mv.wait();
    let half = sealed_in(&s, "pub/big", N);
    assert!(half > 0 && half < N, "killed half way: {half} sealed");
    s.start_again();
    // nothing lost, nothing unreadable: the MOVE did not happen, every file reads as it was
    for (i, got) in get_big(&s, "pub/big", N).into_iter().enumerate() {
        assert!(got == big_body(i), "pub/big/f{i:04} after the kill");
    }
    assert_eq!(usage(&s), used);
    fsck_clean(&s);
    // the client tries again: every file arrives sealed, byte-equal
    assert_eq!(dav_move(&s, "pub/big", "sec/big"), 201);
    for (i, got) in get_big(&s, "sec/big", N).into_iter().enumerate() {
        assert!(got == big_body(i), "sec/big/f{i:04} after the move");
        assert_sealed(&s, &format!("sec/big/f{i:04}"), &got);
    }
    assert_eq!(plaintext_files(&s), Vec::<std::path::PathBuf>::new());
    assert_eq!(usage(&s), used);
    fsck_clean(&s);
    let left: Vec<_> = walk(&s.data_dir().join("tmp"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("moveseal-"))
        .collect();
    assert!(left.is_empty(), "leftover temporary files: {left:?}");
}

/// Outside red team: a MOVE into an encrypted bucket whose client went away mid-sealing left
/// its temporary file in `tmp/` until the next start (a user could fill the disk by
/// repeating it). The request's end now removes it; every file reads as it was.
#[test]
fn a_move_whose_client_goes_away_leaves_no_temporary_file() {
    require("curl");
    let s = server_with_buckets();
    const N: usize = 40;
    let big = |i: usize| body(&format!("gone {i:04}"), 2 * 1024 * 1024 + i);
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("pub/gone")]), 201);
    for i in 0..N {
        assert_eq!(s.put(&format!("pub/gone/f{i:04}"), &big(i)), 201);
    }
    let temps = || {
        walk(&s.data_dir().join("tmp"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("moveseal-"))
            .count()
    };
    for _ in 0..3 {
        // the client gives up while a file is being sealed
        let mut mv = spawn_move(&s, "pub/gone", "sec/gone");
        let start = std::time::Instant::now();
        while temps() == 0 && start.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = mv.kill();
        let _ = mv.wait();
    }
    let start = std::time::Instant::now();
    while temps() > 0 {
        assert!(
            start.elapsed().as_secs() < 15,
            "{} temporary files left after the clients went away",
            temps()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dir = if s.status(&["-I", &s.dav("pub/gone/f0000")]) == 200 {
        "pub/gone"
    } else {
        "sec/gone"
    };
    let urls: Vec<String> = (0..N).map(|i| s.dav(&format!("{dir}/f{i:04}"))).collect();
    for (i, got) in get_urls(&s, &urls).into_iter().enumerate() {
        assert!(got == big(i), "{dir}/f{i:04} after the abandoned moves");
    }
    fsck_clean(&s);
}
