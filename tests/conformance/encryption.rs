//! Encryption at rest (docs/encryption.md): an encrypted bucket's bytes on disk hold no run
//! of the plaintext, ranged reads across segment edges give the plaintext, a flipped byte or
//! a truncated file is an error and never data, S3 clients set and read the bucket's
//! encryption, and a large upload and download stream with bounded memory.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{fsck_clean, require, run, S3Key, Server};

const SEG: usize = 64 * 1024;

/// A known-pattern body: numbered lines saying what they are, `len` bytes.
pub(super) fn pattern(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while v.len() < len {
        v.extend_from_slice(format!("KNOWN-PATTERN-LINE-{i:010}\n").as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

/// A server with the group `g` and the encrypted bucket `sec` (and the plain bucket `pub`).
pub(super) fn server_with_buckets() -> Server {
    let s = Server::plain();
    run(s.kura().args(["group", "add", "g"]));
    run(s
        .kura()
        .args(["bucket", "create", "sec", "--group", "g", "--encrypt"]));
    run(s.kura().args(["bucket", "create", "pub", "--group", "g"]));
    s
}

/// The stored length of a sealed file of `n` plaintext bytes (docs/encryption.md).
pub(super) fn sealed_len(n: usize) -> usize {
    32 + n.div_ceil(SEG).max(1) * 16 + n
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The body and status of a ranged GET as admin.
fn range(s: &Server, path: &str, r: &str) -> (u16, Vec<u8>) {
    let out = s.curl_admin(&["-r", r, "-w", "\n%{http_code}", &s.dav(path)]);
    let mut body = out.stdout;
    let cut = body.iter().rposition(|&b| b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&body[cut + 1..])
        .trim()
        .parse()
        .expect("status");
    body.truncate(cut);
    (status, body)
}

#[test]
fn an_encrypted_bucket_stores_no_plaintext_and_every_range_reads_back() {
    require("curl");
    let s = server_with_buckets();
    let n = 3 * SEG + 100;
    let data = pattern(n);
    assert_eq!(s.put("sec/report.txt", &data), 201);
    assert_eq!(s.put("pub/report.txt", &data), 201);
    let on_disk = std::fs::read(s.files_dir().join("sec/report.txt")).expect("stored file");
    assert_eq!(on_disk.len(), sealed_len(n));
    assert!(!contains(&on_disk, b"KNOWN-PATTERN"), "plaintext on disk");
    // the plain bucket beside it keeps its bytes as they are (its fast paths stay)
    assert_eq!(
        std::fs::read(s.files_dir().join("pub/report.txt")).unwrap(),
        data
    );
    assert!(s.data_dir().join("encryption.key").exists());
    assert_eq!(s.get("sec/report.txt"), data);
    // sizes shown are plaintext sizes
    let head = s.curl_admin(&["-sI", &s.dav("sec/report.txt")]);
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(head.contains(&format!("content-length: {n}")), "{head}");
    let last = n - 1;
    for (r, want) in [
        ("0-0".to_string(), &data[..1]),
        (format!("{last}-{last}"), &data[last..]),
        (format!("{}-{}", SEG - 1, 2 * SEG), &data[SEG - 1..=2 * SEG]),
        ("-500".to_string(), &data[n - 500..]),
        (format!("{}-", 2 * SEG), &data[2 * SEG..]),
    ] {
        let (status, body) = range(&s, "sec/report.txt", &r);
        assert_eq!(status, 206, "range {r}");
        assert_eq!(body, want, "range {r}");
    }
    // SSE-C over plain HTTP is refused before the body, never stored without the client's key
    let sse_c = s.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PUT",
        "--data-binary",
        "x",
        "-H",
        "x-amz-server-side-encryption-customer-algorithm: AES256",
        &s.url("/sec/ssec"),
    ]);
    assert_eq!(crate::common::code(&sse_c), 400);
    assert!(!s.files_dir().join("sec/ssec").exists());
    // edges: an empty file and an exact multiple of a segment
    assert_eq!(s.put("sec/empty", b""), 201);
    assert_eq!(
        std::fs::metadata(s.files_dir().join("sec/empty"))
            .unwrap()
            .len(),
        48
    );
    assert_eq!(s.get("sec/empty"), b"");
    let two = pattern(2 * SEG);
    assert_eq!(s.put("sec/two", &two), 201);
    assert_eq!(s.get("sec/two"), two);
    // a copy and a move inside the bucket keep the bytes readable
    let dest = format!("Destination: {}", s.dav("sec/copy.txt"));
    assert_eq!(
        s.status(&["-X", "COPY", "-H", &dest, &s.dav("sec/report.txt")]),
        201
    );
    assert_eq!(s.get("sec/copy.txt"), data);
    // an overwrite keeps the old version readable from the trash of versions
    assert_eq!(s.put("sec/report.txt", b"second"), 204);
    assert_eq!(s.get("sec/report.txt"), b"second");
}

#[test]
fn a_flipped_byte_or_a_truncated_file_is_an_error_never_data() {
    require("curl");
    let s = server_with_buckets();
    let data = pattern(3 * SEG);
    assert_eq!(s.put("sec/a.bin", &data), 201);
    assert_eq!(s.put("sec/b.bin", &data), 201);
    let a = s.files_dir().join("sec/a.bin");
    let mut bytes = std::fs::read(&a).unwrap();
    bytes[32 + SEG + 16 + 10] ^= 1; // inside the second segment
    std::fs::write(&a, &bytes).unwrap();
    let out = s.curl_admin(&["-f", &s.dav("sec/a.bin")]);
    assert!(!out.status.success(), "a tampered file was served whole");
    assert!(
        !contains(&out.stdout, &data[SEG..SEG + 64]),
        "bytes of the tampered segment served"
    );
    let (status, body) = range(&s, "sec/a.bin", &format!("{}-{}", SEG, SEG + 10));
    // 500, or the connection cut (WebDAV may have sent its 206 head before the body
    // fails): never the range's bytes
    assert!(matches!(status, 0 | 206 | 500), "tampered range: {status}");
    assert!(
        body.is_empty(),
        "tampered range served {} bytes",
        body.len()
    );
    // the untouched first segment still reads
    assert_eq!(range(&s, "sec/a.bin", "0-9"), (206, data[..10].to_vec()));
    // truncated: the last segment gone
    let b = s.files_dir().join("sec/b.bin");
    let len = std::fs::metadata(&b).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&b).unwrap();
    f.set_len(len - (SEG as u64 + 16)).unwrap();
    drop(f);
    let out = s.curl_admin(&[
        "-f",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &s.dav("sec/b.bin"),
    ]);
    assert!(!out.status.success());
    // swapped: b's bytes under a's name do not open (another file's key and id)
    std::fs::write(
        &a,
        std::fs::read(s.files_dir().join("sec/two")).unwrap_or_default(),
    )
    .ok();
    assert!(s.log().contains("sealed"), "the failure is in the log");
    // fsck sees the truncated sealed file by its sealed length, and leaves it for a person
    let out = s.kura().args(["fsck"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/sec/b.bin"),
        "{out:?}"
    );
}

pub(super) fn s3(s: &Server, key: &S3Key, args: &[&str]) -> std::process::Output {
    s.aws(key).args(args).output().expect("aws")
}

#[test]
fn s3_clients_set_get_and_delete_bucket_encryption() {
    require("aws");
    let s = Server::plain();
    let key = s.s3_key();
    assert!(
        s3(&s, &key, &["s3api", "create-bucket", "--bucket", "vault"])
            .status
            .success()
    );
    let get = s3(
        &s,
        &key,
        &["s3api", "get-bucket-encryption", "--bucket", "vault"],
    );
    assert!(String::from_utf8_lossy(&get.stderr)
        .contains("ServerSideEncryptionConfigurationNotFoundError"));
    let conf = r#"{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}"#;
    let put = s3(
        &s,
        &key,
        &[
            "s3api",
            "put-bucket-encryption",
            "--bucket",
            "vault",
            "--server-side-encryption-configuration",
            conf,
        ],
    );
    assert!(put.status.success(), "{put:?}");
    let get = run(s
        .aws(&key)
        .args(["s3api", "get-bucket-encryption", "--bucket", "vault"]));
    assert!(String::from_utf8_lossy(&get.stdout).contains("AES256"));
    // KMS is refused: there is no KMS
    let kms = r#"{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms"}}]}"#;
    let bad = s3(
        &s,
        &key,
        &[
            "s3api",
            "put-bucket-encryption",
            "--bucket",
            "vault",
            "--server-side-encryption-configuration",
            kms,
        ],
    );
    assert!(!bad.status.success());
    // another user may neither read nor change it
    s.add_user("eve", "evepass-123456", &[]);
    let eve = s.s3_key_for("eve");
    let del = s3(
        &s,
        &eve,
        &["s3api", "delete-bucket-encryption", "--bucket", "vault"],
    );
    assert!(
        String::from_utf8_lossy(&del.stderr).contains("AccessDenied"),
        "{del:?}"
    );
    // objects written now are sealed; multipart objects too
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::write(&small, pattern(100_000)).unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, pattern(20 * 1024 * 1024)).unwrap();
    let up = |src: &std::path::Path, name: &str| {
        run(s.aws(&key).args([
            "s3",
            "cp",
            src.to_str().unwrap(),
            &format!("s3://vault/{name}"),
        ]))
    };
    up(&small, "small");
    up(&big, "big");
    for name in ["small", "big"] {
        let stored = std::fs::read(s.files_dir().join("vault").join(name)).unwrap();
        assert!(
            !contains(&stored[..stored.len().min(1 << 20)], b"KNOWN-PATTERN"),
            "{name}"
        );
        let back = dir.path().join(format!("{name}.back"));
        run(s.aws(&key).args([
            "s3",
            "cp",
            &format!("s3://vault/{name}"),
            back.to_str().unwrap(),
        ]));
        let src = if name == "small" { &small } else { &big };
        assert_eq!(std::fs::read(back).unwrap(), std::fs::read(src).unwrap());
    }
    // a part waiting for its upload's completion is sealed too
    let part = dir.path().join("part");
    std::fs::write(&part, pattern(6 * 1024 * 1024)).unwrap();
    let created = run(s.aws(&key).args([
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "vault",
        "--key",
        "parts",
        "--query",
        "UploadId",
        "--output",
        "text",
    ]));
    let upload_id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let etag = run(s.aws(&key).args([
        "s3api",
        "upload-part",
        "--bucket",
        "vault",
        "--key",
        "parts",
        "--part-number",
        "1",
        "--upload-id",
        &upload_id,
        "--body",
        part.to_str().unwrap(),
        "--query",
        "ETag",
        "--output",
        "text",
    ]));
    let etag = String::from_utf8_lossy(&etag.stdout).trim().to_string();
    let staged: Vec<_> = walk(&s.data_dir().join("multipart"));
    assert!(!staged.is_empty(), "no staged part found");
    for f in &staged {
        let b = std::fs::read(f).unwrap();
        assert!(
            !contains(&b[..b.len().min(1 << 20)], b"KNOWN-PATTERN"),
            "{f:?}"
        );
    }
    let parts = format!(r#"{{"Parts":[{{"PartNumber":1,"ETag":{etag}}}]}}"#);
    run(s.aws(&key).args([
        "s3api",
        "complete-multipart-upload",
        "--bucket",
        "vault",
        "--key",
        "parts",
        "--upload-id",
        &upload_id,
        "--multipart-upload",
        &parts,
    ]));
    let back = dir.path().join("parts.back");
    run(s
        .aws(&key)
        .args(["s3", "cp", "s3://vault/parts", back.to_str().unwrap()]));
    assert_eq!(std::fs::read(back).unwrap(), pattern(6 * 1024 * 1024));
    // the ETag of a single PUT stays the plaintext MD5
    let head = run(s.aws(&key).args([
        "s3api",
        "head-object",
        "--bucket",
        "vault",
        "--key",
        "small",
    ]));
    let md5 = format!("{:x}", md5_of(&pattern(100_000)));
    assert!(String::from_utf8_lossy(&head.stdout).contains(&md5));
    // copied into a plain bucket and back, the bytes stay the same
    run(s
        .aws(&key)
        .args(["s3api", "create-bucket", "--bucket", "plain"]));
    run(s
        .aws(&key)
        .args(["s3", "cp", "s3://vault/small", "s3://plain/small"]));
    let back = dir.path().join("copied");
    run(s
        .aws(&key)
        .args(["s3", "cp", "s3://plain/small", back.to_str().unwrap()]));
    assert_eq!(std::fs::read(back).unwrap(), pattern(100_000));
    // ... and take the target bucket's form: plain there, sealed again when copied back
    assert_eq!(
        std::fs::read(s.files_dir().join("plain/small")).unwrap(),
        pattern(100_000)
    );
    run(s
        .aws(&key)
        .args(["s3", "cp", "s3://plain/small", "s3://vault/again"]));
    let again = std::fs::read(s.files_dir().join("vault/again")).unwrap();
    assert!(!contains(&again, b"KNOWN-PATTERN"));
    // encryption off: new objects are plain, old ones still read
    run(s
        .aws(&key)
        .args(["s3api", "delete-bucket-encryption", "--bucket", "vault"]));
    up(&small, "later");
    assert_eq!(
        std::fs::read(s.files_dir().join("vault/later")).unwrap(),
        pattern(100_000)
    );
    let back = dir.path().join("small.again");
    run(s
        .aws(&key)
        .args(["s3", "cp", "s3://vault/small", back.to_str().unwrap()]));
    assert_eq!(std::fs::read(back).unwrap(), pattern(100_000));
}

/// Every file below `dir`.
pub(super) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub(super) fn md5_of(b: &[u8]) -> u128 {
    let out = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .expect("md5sum");
    u128::from_str_radix(
        String::from_utf8_lossy(&out.stdout)
            .split(' ')
            .next()
            .unwrap(),
        16,
    )
    .unwrap()
}

/// The slow one: 2 GiB through an encrypted bucket, generated on the fly, with the
/// server's peak memory bounded.
#[test]
fn two_gib_through_an_encrypted_bucket_stream_with_bounded_memory() {
    require("curl");
    let s = server_with_buckets();
    const TOTAL: u64 = 2 << 30;
    let block: Vec<u8> = pattern(1 << 20);
    let mut put = Command::new("curl")
        .args([
            "-sS",
            "-f",
            "-u",
            &format!("admin:{}", crate::common::ADMIN_PW),
            "-T",
            "-",
        ])
        .arg(s.dav("sec/big.bin"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("curl");
    let mut w = put.stdin.take().unwrap();
    for _ in 0..(TOTAL >> 20) {
        w.write_all(&block).unwrap();
    }
    drop(w);
    assert!(put.wait().unwrap().success(), "upload");
    let stored = std::fs::metadata(s.files_dir().join("sec/big.bin"))
        .unwrap()
        .len();
    assert_eq!(stored as usize, sealed_len(TOTAL as usize));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "curl -sS -f -u admin:{} {} | wc -c",
            crate::common::ADMIN_PW,
            s.dav("sec/big.bin")
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        TOTAL.to_string()
    );
    // a slice in the middle is the pattern at that place
    let at = TOTAL / 2 + 12345;
    let (status, body) = range(&s, "sec/big.bin", &format!("{at}-{}", at + 99));
    assert_eq!(status, 206);
    let off = (at % (1 << 20)) as usize;
    assert_eq!(body, block[off..off + 100]);
    let hwm = s.vm_hwm_kib();
    assert!(hwm < 150 * 1024, "server peak memory {hwm} KiB");
}

#[test]
fn master_key_rotation_rewraps_every_data_key_and_the_files_still_read() {
    require("curl");
    let mut s = server_with_buckets();
    let data = pattern(2 * SEG + 7);
    for i in 0..5 {
        assert_eq!(s.put(&format!("sec/f{i}"), &data), 201);
    }
    // an overwrite keeps a version whose data key must be rewrapped too
    assert_eq!(s.put("sec/f0", b"newer"), 204);
    let stored_before = std::fs::read(s.files_dir().join("sec/f1")).unwrap();
    let key_before = std::fs::read(s.data_dir().join("encryption.key")).unwrap();
    // refused while the server runs (it would go on wrapping with the old key)
    let busy = s.kura().args(["encryption", "rotate"]).output().unwrap();
    assert!(!busy.status.success());
    s.stop();
    let out = run(s.kura().args(["encryption", "rotate"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("rewrapped 6 data keys"), "{text}");
    assert!(text.contains("removed old master key"), "{text}");
    assert_ne!(
        std::fs::read(s.data_dir().join("encryption.key")).unwrap(),
        key_before
    );
    // the bytes were not touched, and the old key is gone
    assert_eq!(
        std::fs::read(s.files_dir().join("sec/f1")).unwrap(),
        stored_before
    );
    let retired = std::fs::read_dir(s.data_dir().join("encryption-keys"))
        .unwrap()
        .count();
    assert_eq!(retired, 0);
    s.start_again();
    for i in 1..5 {
        assert_eq!(s.get(&format!("sec/f{i}")), data, "f{i}");
    }
    assert_eq!(s.get("sec/f0"), b"newer");
    // the replaced version reads too (the versions API), through kura restore
    run(s.kura().args(["restore", "/sec/f0"]));
    assert_eq!(s.get("sec/f0"), data);
}

/// `kura serve` on this server's data dir, expected to refuse to start: its exit and log.
fn serve_refused(s: &Server) -> (bool, String) {
    let mut child = s
        .kura()
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kura serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().expect("output");
            let log = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            return (!status.success(), log);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    (false, "still running after 20 s".into())
}

#[test]
fn a_missing_master_key_is_an_error_at_start_never_a_new_key() {
    require("curl");
    let mut s = server_with_buckets();
    let data = pattern(SEG + 3);
    assert_eq!(s.put("sec/a.txt", &data), 201);
    s.stop();
    let key = s.data_dir().join("encryption.key");
    let saved = std::fs::read(&key).unwrap();
    // the key is lost (a restore without it, a moved file): the server must not start with a
    // new key that opens nothing, nor may a command make one
    std::fs::remove_file(&key).unwrap();
    let (refused, log) = serve_refused(&s);
    assert!(refused, "{log}");
    assert!(log.contains("encryption.key"), "{log}");
    let made = s
        .kura()
        .args(["bucket", "create", "sec2", "--group", "g", "--encrypt"])
        .output()
        .unwrap();
    assert!(!made.status.success(), "{made:?}");
    assert!(!key.exists(), "a new master key was made");
    // put back, everything reads
    std::fs::write(&key, &saved).unwrap();
    s.start_again();
    assert_eq!(s.get("sec/a.txt"), data);
}

#[test]
fn a_wrong_or_truncated_master_key_refuses_the_start_and_the_right_one_reads() {
    require("curl");
    require("python3");
    let mut s = server_with_buckets();
    let data = pattern(SEG + 3);
    assert_eq!(s.put("sec/a.txt", &data), 201);
    assert_eq!(s.put("sec/b.txt", b"second file"), 201);
    s.stop();
    let key = s.data_dir().join("encryption.key");
    let saved = std::fs::read(&key).unwrap();
    assert_eq!(saved.len(), 32);
    // truncated (a copy cut short): refused, saying which file and why
    std::fs::write(&key, &saved[..31]).unwrap();
    let (refused, log) = serve_refused(&s);
    assert!(refused, "{log}");
    assert!(
        log.contains("encryption.key") && log.contains("31 bytes"),
        "{log}"
    );
    // a key of the right length that is not the one (another installation's, a changed
    // byte): refused at once, not started to fail on every read
    for wrong in [
        [7u8; 32].to_vec(),
        saved
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 0 { b ^ 1 } else { *b })
            .collect(),
        hex::encode([9u8; 32]).into_bytes(), // as 64 hex digits
    ] {
        std::fs::write(&key, &wrong).unwrap();
        let (refused, log) = serve_refused(&s);
        assert!(refused, "{log}");
        assert!(
            log.contains("not the key files are sealed with") && log.contains("encryption.key"),
            "{log}"
        );
        // nor does a rotation take the wrong key for the old one
        let rot = s.kura().args(["encryption", "rotate"]).output().unwrap();
        assert!(!rot.status.success(), "{rot:?}");
        assert_eq!(
            std::fs::read(&key).unwrap(),
            wrong,
            "the key file was changed"
        );
    }
    // the right key back: everything reads
    std::fs::write(&key, &saved).unwrap();
    s.start_again();
    assert_eq!(s.get("sec/a.txt"), data);
    assert_eq!(s.get("sec/b.txt"), b"second file");
    s.stop();
    // a damaged record is no wrong key: with b.txt's wrapped key altered the server starts,
    // a.txt reads, and b.txt alone fails (an error, never bytes)
    let db = s.data_dir().join("kura.db");
    run(Command::new("python3").args([
        "-c",
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
         w = c.execute('SELECT sealed FROM entries WHERE path = ?', ('/sec/b.txt',)).fetchone()[0]; \
         last = w[-1]; w = w[:-1] + ('0' if last != '0' else '1'); \
         c.execute('UPDATE entries SET sealed = ? WHERE path = ?', (w, '/sec/b.txt')); c.commit()",
        db.to_str().unwrap(),
    ]));
    s.start_again();
    assert_eq!(s.get("sec/a.txt"), data);
    let got = s.curl_admin(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &s.dav("sec/b.txt"),
    ]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), "500");
}

#[test]
fn rotation_rewraps_the_parts_of_unfinished_uploads_too() {
    require("aws");
    let mut s = server_with_buckets();
    let key = s.s3_key();
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("part");
    let data = pattern(100_000);
    std::fs::write(&part, &data).unwrap();
    let out = run(s.aws(&key).args([
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "sec",
        "--key",
        "late.bin",
        "--query",
        "UploadId",
        "--output",
        "text",
    ]));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = run(s.aws(&key).args([
        "s3api",
        "upload-part",
        "--bucket",
        "sec",
        "--key",
        "late.bin",
        "--upload-id",
        &id,
        "--part-number",
        "1",
        "--body",
        part.to_str().unwrap(),
        "--query",
        "ETag",
        "--output",
        "text",
    ]));
    let etag = String::from_utf8_lossy(&out.stdout).trim().to_string();
    s.stop();
    let out = run(s.kura().args(["encryption", "rotate"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("rewrapped 1 data keys"), "{text}");
    s.start_again();
    let parts = format!(r#"{{"Parts":[{{"PartNumber":1,"ETag":{etag}}}]}}"#);
    let done = s3(
        &s,
        &key,
        &[
            "s3api",
            "complete-multipart-upload",
            "--bucket",
            "sec",
            "--key",
            "late.bin",
            "--upload-id",
            &id,
            "--multipart-upload",
            &parts,
        ],
    );
    assert!(done.status.success(), "{done:?}");
    assert_eq!(s.get("sec/late.bin"), data);
}

#[test]
fn any_sse_c_header_is_refused_not_only_the_algorithm() {
    require("curl");
    let s = server_with_buckets();
    let key = s.s3_key();
    let user = format!("{}:{}", key.id, key.secret);
    // a signed PUT carrying the client's key without the algorithm header: AWS refuses it,
    // and storing the body without that key would be a silent lie
    let put = |headers: &[&str], name: &str| {
        let mut args = vec![
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--user",
            &user,
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "-X",
            "PUT",
            "--data-binary",
            "secret body",
        ];
        for h in headers {
            args.extend(["-H", h]);
        }
        let url = s.url(&format!("/sec/{name}"));
        args.push(&url);
        crate::common::code(&s.curl(&args))
    };
    let k =
        "x-amz-server-side-encryption-customer-key: MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let md5 = "x-amz-server-side-encryption-customer-key-md5: 3v1ZhRQRnYJqVBFnpOGsDw==";
    let copy = "x-amz-copy-source-server-side-encryption-customer-key: MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    assert_eq!(put(&[], "plain"), 200);
    // over plain HTTP any of them is refused (encryption_ssec.rs tries them over TLS)
    for (i, h) in [vec![k], vec![md5], vec![copy]].iter().enumerate() {
        let code = put(h, &format!("c{i}"));
        assert_eq!(code, 400, "{h:?}");
        assert!(!s.files_dir().join(format!("sec/c{i}")).exists());
    }
}

#[test]
fn a_backup_of_an_encrypted_bucket_restores_its_files_and_versions() {
    require("curl");
    let s = server_with_buckets();
    let first = pattern(2 * SEG + 11);
    let second = pattern(SEG + 5);
    assert_eq!(s.put("sec/doc.txt", &first), 201);
    assert_eq!(s.put("sec/doc.txt", &second), 204);
    let dest = tempfile::tempdir().unwrap();
    let dest_s = dest.path().join("repo");
    let dest_s = dest_s.to_str().unwrap();
    let out = run(s.kura().args(["backup", dest_s]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // sealed bytes are not "different bytes" than the row records
    assert!(!text.contains("amended"), "{text}");
    let mut target = Server::in_folder(&[]);
    run(target.kura().args(["restore", dest_s]));
    // the master key is not in a backup: put it back as docs/encryption.md says
    std::fs::copy(
        s.data_dir().join("encryption.key"),
        target.data_dir().join("encryption.key"),
    )
    .unwrap();
    target.start_again();
    assert_eq!(target.get("sec/doc.txt"), second);
    let head = target.curl_admin(&["-sI", &target.dav("sec/doc.txt")]);
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", second.len())),
        "{head}"
    );
    run(target.kura().args(["restore", "/sec/doc.txt"]));
    assert_eq!(target.get("sec/doc.txt"), first);
}

#[test]
fn a_file_under_an_unknown_master_key_does_not_run_key_command_again() {
    require("curl");
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("runs");
    let a = "11".repeat(32);
    let b = "22".repeat(32);
    let cmd = |hex: &str| format!("echo run >> {}; echo {hex}", count.display());
    let mut s = Server::start_with(false, &[("KURA_ENCRYPTION__KEY_COMMAND", &cmd(&a))]);
    run(s.kura().args(["group", "add", "g"]));
    run(s
        .kura()
        .args(["bucket", "create", "sec", "--group", "g", "--encrypt"]));
    assert_eq!(s.put("sec/a", b"sealed with key a"), 201);
    s.stop();
    // the operator's command now prints another key (the old one is not held): the start is
    // refused, naming the command
    s.set_env("KURA_ENCRYPTION__KEY_COMMAND", &cmd(&b));
    let (refused, log) = serve_refused(&s);
    assert!(refused, "{log}");
    assert!(
        log.contains("key_command") && log.contains("not the key files are sealed with"),
        "{log}"
    );
    // with the right key it starts; then the file's record comes to name a master key the
    // server does not hold (written beside it, as a restore or another tool could)
    s.set_env("KURA_ENCRYPTION__KEY_COMMAND", &cmd(&a));
    s.start_again();
    require("python3");
    run(Command::new("python3").args([
        "-c",
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
         w = c.execute('SELECT sealed FROM entries WHERE path = ?', ('/sec/a',)).fetchone()[0]; \
         c.execute('UPDATE entries SET sealed = ? WHERE path = ?', \
                   (w[:3] + 'f' * 16 + w[19:], '/sec/a')); c.commit()",
        s.data_dir().join("kura.db").to_str().unwrap(),
    ]));
    std::fs::write(&count, "").unwrap();
    for _ in 0..3 {
        let out = s.curl_admin(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &s.dav("sec/a"),
        ]);
        assert_eq!(crate::common::code(&out), 500);
    }
    // each read of such a file ran the operator's command (a password manager's prompt, a
    // hanging command holding every sealed read and write behind it): it runs at start only
    let runs = std::fs::read_to_string(&count).unwrap();
    assert_eq!(runs.lines().count(), 0, "key_command ran again: {runs:?}");
}

/// The body of file `i` of the conversion test: distinct, 1 to 3 segments long.
fn conv_body(i: usize) -> Vec<u8> {
    let mut b = format!("file {i:04} ").into_bytes();
    b.extend(pattern(SEG + i * 211));
    b
}

/// The length of `conv_body(i)`.
fn conv_len(i: usize) -> usize {
    10 + SEG + i * 211
}

/// Every file `pub/f0000`.. as served, fetched in one curl run.
fn get_all(s: &Server, n: usize) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["-s".to_string(), "-f".to_string()];
    for i in 0..n {
        args.push(s.dav(&format!("pub/f{i:04}")));
        args.push("-o".into());
        args.push(dir.path().join(format!("{i}")).to_string_lossy().into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.curl_admin(&args);
    assert!(out.status.success(), "GET failed: {out:?}");
    (0..n)
        .map(|i| std::fs::read(dir.path().join(format!("{i}"))).unwrap_or_default())
        .collect()
}

/// How many of the files hold their sealed length on disk.
fn sealed_on_disk(s: &Server, n: usize) -> usize {
    (0..n)
        .filter(|&i| {
            let len = std::fs::metadata(s.files_dir().join(format!("pub/f{i:04}")))
                .map(|m| m.len() as usize)
                .unwrap_or(0);
            len == sealed_len(conv_len(i))
        })
        .count()
}

/// `kura usage g` without the header.
pub(super) fn usage(s: &Server) -> String {
    let out = run(s.kura().args(["usage", "g"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or("")
        .to_string()
}

/// Kills `conv` with SIGKILL once `done()` reaches `at` (failing if it stalls for two minutes
/// or ends first); answers `done()` after the kill.
fn kill_once(conv: &mut std::process::Child, at: usize, done: impl Fn() -> usize) -> usize {
    let start = std::time::Instant::now();
    while done() < at {
        assert!(
            start.elapsed().as_secs() < 120,
            "the conversion does not advance"
        );
        assert!(
            conv.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    conv.kill().unwrap(); // SIGKILL
    conv.wait().unwrap();
    done()
}

#[test]
fn a_bucket_converted_online_survives_a_kill_and_every_file_reads_throughout() {
    require("curl");
    let s = server_with_buckets();
    const N: usize = 500;
    for i in 0..N {
        assert_eq!(s.put(&format!("pub/f{i:04}"), &conv_body(i)), 201);
    }
    let used = usage(&s);
    // the conversion runs beside the server, killed with kill -9 about half way
    let mut conv = s
        .kura()
        .args(["encryption", "enable", "pub"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let half = kill_once(&mut conv, N / 3, || sealed_on_disk(&s, N));
    assert!(half > 0 && half < N, "killed half way: {half} sealed");
    assert_eq!(usage(&s), used, "a conversion changes no usage");
    // every file reads back at that point
    for (i, got) in get_all(&s, N).into_iter().enumerate() {
        assert!(got == conv_body(i), "f{i:04} after the kill");
    }
    // a write during the second run is not lost; a new file is sealed by the setting
    let conv = s
        .kura()
        .args(["encryption", "enable", "pub"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(s.put("pub/f0499", b"written meanwhile"), 204);
    assert_eq!(s.put("pub/new", b"a new file"), 201);
    // and reads while it runs get the plaintext
    for i in (0..N - 1).rev().step_by(20) {
        assert!(
            s.get(&format!("pub/f{i:04}")) == conv_body(i),
            "f{i:04} during"
        );
    }
    let out = conv.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(s.get("pub/f0499"), b"written meanwhile");
    assert_eq!(s.get("pub/new"), b"a new file");
    assert_eq!(
        std::fs::metadata(s.files_dir().join("pub/new"))
            .unwrap()
            .len() as usize,
        sealed_len(10)
    );
    // a third run finds nothing left (the rewrite of f0499 took the bucket's form)
    let used = usage(&s);
    let out = run(s.kura().args(["encryption", "enable", "pub"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 files written sealed"),
        "{out:?}"
    );
    assert_eq!(usage(&s), used, "a conversion changes no usage");
    assert_eq!(s.put("pub/f0499", &conv_body(499)), 204);
    for (i, got) in get_all(&s, N).into_iter().enumerate() {
        assert!(got == conv_body(i), "f{i:04} after the conversion");
        let disk = std::fs::read(s.files_dir().join(format!("pub/f{i:04}"))).unwrap();
        assert_eq!(disk.len(), sealed_len(got.len()), "f{i:04} sealed");
        assert!(
            !contains(&disk, b"KNOWN-PATTERN"),
            "f{i:04}: plaintext on disk"
        );
    }
    let tmp: Vec<_> = walk(&s.data_dir().join("tmp"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("convert-"))
        .collect();
    assert!(tmp.is_empty(), "leftover temporary files: {tmp:?}");
    fsck_clean(&s);
    let used = usage(&s);
    // disable writes every file back plain
    run(s.kura().args(["encryption", "disable", "pub"]));
    for (i, got) in get_all(&s, N).into_iter().enumerate() {
        assert!(got == conv_body(i), "f{i:04} after disable");
        let disk = std::fs::read(s.files_dir().join(format!("pub/f{i:04}"))).unwrap();
        assert!(disk == conv_body(i), "f{i:04} plain on disk");
    }
    assert_eq!(usage(&s), used);
}

/// Version `j` of the document `i` of the version tests: distinct, 2 to 3 segments long.
fn ver_body(i: usize, j: usize) -> Vec<u8> {
    let mut b = format!("doc {i} version {j} ").into_bytes();
    b.extend(pattern(2 * SEG + 97 * j + 13 * i));
    b
}

/// The bodies of `urls`, fetched as admin in one curl run (failing on any error status).
pub(super) fn get_urls(s: &Server, urls: &[String]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["-s".to_string(), "-f".to_string()];
    for (i, u) in urls.iter().enumerate() {
        args.push(u.clone());
        args.push("-o".into());
        args.push(dir.path().join(format!("{i}")).to_string_lossy().into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.curl_admin(&args);
    assert!(out.status.success(), "GET failed: {out:?}");
    (0..urls.len())
        .map(|i| std::fs::read(dir.path().join(format!("{i}"))).unwrap_or_default())
        .collect()
}

/// The ids of the kept bytes (noncurrent versions and trashed files, no markers) of `path`.
pub(super) fn kept_ids(s: &Server, path: &str) -> Vec<String> {
    let out = run(s.kura().args(["versions", "list", path, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["delete_marker"] != true)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The user API's download of a kept version of `path`.
pub(super) fn version_url(s: &Server, path: &str, id: &str) -> String {
    s.url(&format!("/api/user/v1/download?path={path}&version={id}"))
}

/// Every file below the data dir holding a run of the known pattern.
pub(super) fn plaintext_files(s: &Server) -> Vec<std::path::PathBuf> {
    walk(&s.data_dir())
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| contains(&b, b"KNOWN-PATTERN")))
        .collect()
}

#[test]
fn a_converted_bucket_seals_its_kept_versions_and_trash_and_disable_opens_them() {
    require("curl");
    let s = server_with_buckets();
    // `pub` keeps versions and a trash (the default policy): four documents of four versions
    for i in 0..4 {
        for j in 0..4 {
            assert!([201, 204].contains(&s.put(&format!("pub/doc{i}"), &ver_body(i, j))));
        }
    }
    // a restored version: the current file and the kept bytes are one file on disk (a link)
    let oldest = kept_ids(&s, "/pub/doc0").pop().unwrap();
    run(s
        .kura()
        .args(["restore", "/pub/doc0", "--version", &oldest]));
    assert_eq!(s.get("pub/doc0"), ver_body(0, 0));
    // a folder and a file in the trash
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("pub/gone")]), 201);
    assert_eq!(s.put("pub/gone/a", &pattern(3 * SEG + 1)), 201);
    assert_eq!(s.put("pub/gone/b", &pattern(70)), 201);
    assert_eq!(s.put("pub/single", &pattern(SEG)), 201);
    assert_eq!(s.status(&["-X", "DELETE", &s.dav("pub/gone")]), 204);
    assert_eq!(s.status(&["-X", "DELETE", &s.dav("pub/single")]), 204);
    // what each kept id holds
    let mut kept: Vec<(String, String, Vec<u8>)> = Vec::new();
    for i in 0..4 {
        let path = format!("/pub/doc{i}");
        let ids = kept_ids(&s, &path);
        // newest first; doc0 also keeps the version its restore replaced (and the restored
        // one stays kept too)
        let bodies: Vec<Vec<u8>> = (0..if i == 0 { 4 } else { 3 })
            .rev()
            .map(|j| ver_body(i, j))
            .collect();
        assert_eq!(ids.len(), bodies.len(), "{path}: {ids:?}");
        kept.extend(
            ids.into_iter()
                .zip(bodies)
                .map(|(id, b)| (path.clone(), id, b)),
        );
    }
    for (path, body) in [
        ("/pub/gone/a", pattern(3 * SEG + 1)),
        ("/pub/gone/b", pattern(70)),
        ("/pub/single", pattern(SEG)),
    ] {
        let ids = kept_ids(&s, path);
        assert_eq!(ids.len(), 1, "{path}: {ids:?}");
        kept.push((path.to_string(), ids[0].clone(), body));
    }
    let urls: Vec<String> = kept
        .iter()
        .map(|(p, id, _)| version_url(&s, p, id))
        .collect();
    let check_kept = |when: &str| {
        for ((p, id, want), got) in kept.iter().zip(get_urls(&s, &urls)) {
            assert!(&got == want, "{p} version {id} {when}");
        }
    };
    check_kept("before");
    assert!(
        !plaintext_files(&s).is_empty(),
        "the test's pattern is on disk"
    );
    let used = usage(&s);

    let out = run(s.kura().args(["encryption", "enable", "pub"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("pub: 4 files written sealed"), "{text}");
    assert!(
        text.contains("pub: 16 kept versions and trashed files written sealed"),
        "{text}"
    );
    // nothing under the data dir holds the plaintext any more: files, versions, trash
    let left = plaintext_files(&s);
    assert!(left.is_empty(), "plaintext left on disk: {left:?}");
    check_kept("after enable");
    for i in 0..4 {
        let want = if i == 0 {
            ver_body(0, 0)
        } else {
            ver_body(i, 3)
        };
        assert!(s.get(&format!("pub/doc{i}")) == want, "doc{i}");
    }
    assert_eq!(usage(&s), used, "a conversion changes no usage");
    fsck_clean(&s);
    // a second run finds nothing left
    let out = run(s.kura().args(["encryption", "enable", "pub"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("pub: 0 files written sealed")
            && text.contains("pub: 0 kept versions and trashed files written sealed"),
        "{text}"
    );

    // disable writes everything back plain, and everything still reads
    let out = run(s.kura().args(["encryption", "disable", "pub"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("pub: 16 kept versions and trashed files written plain"),
        "{text}"
    );
    check_kept("after disable");
    let sealed: Vec<_> = walk(&s.data_dir().join("versions"))
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().starts_with(b"KURASEAL"))
        .collect();
    assert!(sealed.is_empty(), "kept bytes still sealed: {sealed:?}");
    assert_eq!(usage(&s), used);
    fsck_clean(&s);
    // and what the trash holds comes back whole
    run(s.kura().args(["restore", "/pub/gone"]));
    run(s.kura().args(["restore", "/pub/single"]));
    assert_eq!(s.get("pub/gone/a"), pattern(3 * SEG + 1));
    assert_eq!(s.get("pub/gone/b"), pattern(70));
    assert_eq!(s.get("pub/single"), pattern(SEG));
    fsck_clean(&s);
}

/// How many of the kept files on disk are sealed.
fn sealed_kept_on_disk(s: &Server) -> usize {
    walk(&s.data_dir().join("versions"))
        .into_iter()
        .filter(|p| {
            let mut head = [0u8; 8];
            std::fs::File::open(p)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .is_ok_and(|_| &head == b"KURASEAL")
        })
        .count()
}

#[test]
fn a_conversion_killed_among_the_kept_versions_loses_nothing() {
    require("curl");
    let s = server_with_buckets();
    const N: usize = 200;
    // each file has one kept version (its first body) and a short current one
    for i in 0..N {
        let path = format!("pub/f{i:04}");
        assert_eq!(s.put(&path, &conv_body(i)), 201);
        assert_eq!(s.put(&path, format!("now {i}").as_bytes()), 204);
    }
    let ids: Vec<String> = (0..N)
        .map(|i| {
            let ids = kept_ids(&s, &format!("/pub/f{i:04}"));
            assert_eq!(ids.len(), 1);
            ids[0].clone()
        })
        .collect();
    let urls: Vec<String> = (0..N)
        .map(|i| version_url(&s, &format!("/pub/f{i:04}"), &ids[i]))
        .collect();
    let check = |when: &str| {
        for (i, got) in get_urls(&s, &urls).into_iter().enumerate() {
            assert!(got == conv_body(i), "f{i:04}'s version {when}");
        }
        for (i, got) in get_all(&s, N).into_iter().enumerate() {
            assert_eq!(got, format!("now {i}").as_bytes(), "f{i:04} {when}");
        }
    };
    let used = usage(&s);
    let mut conv = s
        .kura()
        .args(["encryption", "enable", "pub"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // the current files go first; killed a third of the way through the kept ones
    let half = kill_once(&mut conv, N / 3, || sealed_kept_on_disk(&s));
    assert!(half > 0 && half < N, "killed half way: {half} sealed");
    assert_eq!(usage(&s), used, "a conversion changes no usage");
    check("after the kill");
    // run again, reading the versions while it runs
    let conv = s
        .kura()
        .args(["encryption", "enable", "pub"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for i in (0..N).rev().step_by(10) {
        let got = get_urls(&s, &urls[i..i + 1]).pop().unwrap();
        assert!(got == conv_body(i), "f{i:04}'s version during the run");
    }
    let out = conv.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(sealed_kept_on_disk(&s), N);
    check("after the second run");
    let left = plaintext_files(&s);
    assert!(left.is_empty(), "plaintext left on disk: {left:?}");
    let tmp: Vec<_> = walk(&s.data_dir().join("tmp"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("convert-"))
        .collect();
    assert!(tmp.is_empty(), "leftover temporary files: {tmp:?}");
    assert_eq!(usage(&s), used, "a conversion changes no usage");
    fsck_clean(&s);
}
