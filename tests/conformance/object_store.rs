//! Kura as issue #18 deploys it: metadata in PostgreSQL, bytes in an S3 object store
//! (Garage, `storage.backend = "s3"`; tests/conformance/postgres.rs and garage.rs start both).
//! Litmus, boto3, aws-cli's multipart upload with a ranged GET and rclone pass as on SQLite
//! and `fs`; the bytes are objects of the Garage bucket (read back through Garage's own S3
//! API) and none lies under the data dir; an upload cut mid-body leaves nothing; `/healthz`
//! says 503 within a second or so of Garage going away.

use std::time::{Duration, Instant};

use crate::common::{code, require, run, sha256_file, tree, usage, Server};
use crate::garage::{Garage, BUCKET};
use crate::postgres::Postgres;

/// A server on a fresh database of its own PostgreSQL, its bytes under `root` in Garage's
/// bucket. Fields drop in order: the server before the stores it uses.
struct Rig {
    server: Server,
    garage: Garage,
    _pg: Postgres,
    /// The server's `root` in the bucket (`/<db>/`).
    root: String,
}

fn rig(db: &str) -> Rig {
    let pg = Postgres::start();
    let garage = Garage::start();
    let url = pg.create_database(db);
    let root = format!("/{db}/");
    let mut env = garage.storage_env(&root);
    env.push(("KURA_DATABASE_URL".into(), url));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(false, &env);
    Rig {
        server,
        garage,
        _pg: pg,
        root,
    }
}

impl Rig {
    /// The objects Kura keeps under its root, as (key below the root, size).
    fn objects(&self, below: &str) -> Vec<(String, u64)> {
        let root = self.root.trim_start_matches('/');
        self.garage
            .objects(BUCKET, &format!("{root}{below}"))
            .into_iter()
            .map(|(k, s)| (k.strip_prefix(root).unwrap_or(&k).to_string(), s))
            .collect()
    }

    /// The blobs holding files' bytes (docs/scale-out.md, "Blobs on an object store").
    fn blobs(&self) -> Vec<(String, u64)> {
        self.objects(".kura-blobs/")
    }

    /// Whether a blob holds exactly `bytes`.
    fn blob_holds(&self, bytes: &[u8]) -> bool {
        let root = self.root.trim_start_matches('/');
        self.blobs()
            .into_iter()
            .filter(|(_, size)| *size == bytes.len() as u64)
            .any(|(k, _)| self.garage.get(BUCKET, &format!("{root}{k}")) == bytes)
    }

    /// The data dir holds the server's own files only: no stored file, no upload, no part.
    fn no_file_bytes_on_disk(&self) {
        let own = [
            "kura.db",
            "kura.db-wal",
            "kura.db-shm",
            "kura.lock",
            "node-id",
            "secret.key",
            "server.json",
        ];
        let files = tree(&self.server.data_dir());
        let strays: Vec<&String> = files
            .iter()
            .filter(|f| !own.contains(&f.as_str()))
            .collect();
        assert!(
            strays.is_empty(),
            "file bytes under the data dir: {strays:?}"
        );
    }
}

#[test]
fn litmus_passes_on_postgres_with_the_bytes_in_garage() {
    let rig = rig("kura_os_litmus");
    crate::litmus::check(&rig.server);
    assert_eq!(rig.server.put("after-litmus.txt", b"stored in garage"), 201);
    // the bytes are a blob of Garage, not an object at the file's path
    assert!(rig.blob_holds(b"stored in garage"), "{:?}", rig.blobs());
    assert!(rig.objects("after-litmus.txt").is_empty());
    rig.no_file_bytes_on_disk();
}

#[test]
fn boto3_every_operation_on_postgres_with_the_bytes_in_garage() {
    require("python3");
    let rig = rig("kura_os_boto");
    let key = rig.server.s3_key();
    let out = crate::s3_clients::boto3(&rig.server, &key, false);
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    rig.no_file_bytes_on_disk();
    // an object PUT through Kura's S3 API is a blob of Garage that Kura's row names
    let body = rig.server.root.path().join("body.txt");
    std::fs::write(&body, b"through kura into garage").expect("body");
    let aws = |args: &[&str]| run(rig.server.aws(&key).args(args));
    aws(&["s3", "mb", "s3://after-boto"]);
    aws(&[
        "s3",
        "cp",
        body.to_str().expect("utf8"),
        "s3://after-boto/a/b.txt",
    ]);
    assert!(rig.blob_holds(b"through kura into garage"));
    assert!(rig.objects("after-boto/a/b.txt").is_empty());
    assert!(
        rig.objects("").len() > 10,
        "the script's objects are not in Garage: {:?}",
        rig.objects("")
    );
}

/// aws-cli splits 20 MiB into 8 MiB parts: the parts are staged in the store, assembled into
/// one object, and a ranged GET reads the middle of it.
#[test]
fn aws_cli_multipart_of_20_mib_and_a_ranged_get_through_garage() {
    require("aws");
    let rig = rig("kura_os_multipart");
    let key = rig.server.s3_key();
    let dir = tempfile::tempdir().expect("dir");
    let big = dir.path().join("big.bin");
    let bytes: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &bytes).expect("write");
    let aws = |args: &[&str]| run(rig.server.aws(&key).args(args));
    aws(&["s3", "mb", "s3://big"]);
    let started = Instant::now();
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        big.to_str().expect("utf8"),
        "s3://big/big.bin",
    ]);
    let upload = started.elapsed();
    let part = dir.path().join("part.bin");
    aws(&[
        "s3api",
        "get-object",
        "--bucket",
        "big",
        "--key",
        "big.bin",
        "--range",
        "bytes=10485000-10486999",
        part.to_str().expect("utf8"),
    ]);
    assert_eq!(
        std::fs::read(&part).expect("part"),
        &bytes[10_485_000..10_487_000]
    );
    let back = dir.path().join("back.bin");
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        "s3://big/big.bin",
        back.to_str().expect("utf8"),
    ]);
    assert_eq!(sha256_file(&back), sha256_file(&big));
    // one blob of 20 MiB in Garage, the same bytes; no part left staged
    let objects = rig.objects("");
    assert_eq!(rig.blobs().len(), 1, "{objects:?}");
    assert!(
        objects.iter().all(|(k, _)| !k.contains(".kura-multipart/")),
        "{objects:?}"
    );
    assert!(rig.blob_holds(&bytes), "Garage holds other bytes");
    rig.no_file_bytes_on_disk();
    println!("aws-cli multipart of 20 MiB to Kura on PostgreSQL + Garage: {upload:?}");
}

#[test]
fn rclone_copy_and_sync_through_garage() {
    require("rclone");
    let rig = rig("kura_os_rclone");
    let key = rig.server.s3_key();
    let local = tempfile::tempdir().expect("local");
    for i in 0..40 {
        let d = local.path().join(format!("d{}", i % 4));
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join(format!("f{i}.bin")), vec![i as u8; i * 1000 + 1]).expect("write");
    }
    let src = local.path().to_str().expect("utf8");
    let rclone = |args: &[&str]| crate::s3_clients::rclone(&rig.server, &key, args);
    rclone(&["mkdir", "k3:rcl"]);
    rclone(&["copy", src, "k3:rcl"]);
    rclone(&["check", src, "k3:rcl"]);
    std::fs::write(local.path().join("d0/f0.bin"), b"changed").expect("change");
    std::fs::remove_file(local.path().join("d1/f1.bin")).expect("remove");
    rclone(&["sync", src, "k3:rcl"]);
    rclone(&["check", src, "k3:rcl"]);
    rclone(&["check", "--download", "k3:rcl", "kd:rcl"]);
    // the 39 files are blobs of Garage (with the replaced f0 kept as a version and the
    // removed f1 in the trash: 41), nothing is stored at their paths
    let at_paths: Vec<(String, u64)> = rig
        .objects("rcl/")
        .into_iter()
        .filter(|(k, _)| !k.ends_with('/'))
        .collect();
    assert!(at_paths.is_empty(), "{at_paths:?}");
    let blobs = rig.blobs();
    assert_eq!(blobs.len(), 41, "{blobs:?}");
    assert!(rig.blob_holds(b"changed"), "{blobs:?}");
    rig.no_file_bytes_on_disk();
}

/// A WebDAV MOVE of a folder of 300 files on Garage rewrites rows only (docs/scale-out.md,
/// "Blobs on an object store"): Garage holds the same objects before and after, and the files
/// read back at their new names.
#[test]
fn a_folder_moved_on_garage_moves_no_byte() {
    require("curl");
    let rig = rig("kura_os_move");
    let s = &rig.server;
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("mv/")]), 201);
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("mv/d/")]), 201);
    let body = s.root.path().join("body.bin");
    let bytes: Vec<u8> = (0..64u32 << 10).map(|i| (i % 251) as u8).collect();
    std::fs::write(&body, &bytes).expect("body");
    // one curl for every PUT (a config of url/upload-file pairs)
    let cfg = s.root.path().join("puts.cfg");
    let lines: String = (0..300)
        .map(|i| {
            format!(
                "url = \"{}\"\nupload-file = \"{}\"\n",
                s.dav(&format!("mv/d/f{i:03}")),
                body.display()
            )
        })
        .collect();
    std::fs::write(&cfg, lines).expect("cfg");
    let out = s.curl_admin(&["-f", "-o", "/dev/null", "-K", cfg.to_str().expect("utf8")]);
    assert!(out.status.success(), "{out:?}");
    let before = rig.blobs();
    let started = Instant::now();
    let moved = s.status(&[
        "-X",
        "MOVE",
        "-H",
        &format!("Destination: {}", s.dav("mv/e/")),
        &s.dav("mv/d/"),
    ]);
    let took = started.elapsed();
    println!("MOVE of a folder of 300 files of 64 KiB on PostgreSQL + Garage: {took:?}");
    assert_eq!(moved, 201);
    assert_eq!(s.get("mv/e/f299"), bytes);
    assert_eq!(s.status(&["-I", &s.dav("mv/d/f000")]), 404);
    assert_eq!(before.len(), 300, "the files are not blobs");
    assert_eq!(rig.blobs(), before, "the move wrote or deleted objects");
}

/// A client that stops sending mid-body: no file appears, the group is charged nothing, and
/// Garage holds no object for it.
#[test]
fn an_upload_cut_mid_body_leaves_nothing_in_garage() {
    require("curl");
    let rig = rig("kura_os_cut");
    let s = &rig.server;
    run(s.kura().args(["group", "add", "cut"]));
    run(s
        .kura()
        .args(["bucket", "create", "cutb", "--group", "cut"]));
    let body = s.root.path().join("eight-mib");
    std::fs::write(&body, vec![9u8; 8 << 20]).expect("body");
    // 1 MiB/s for 2 s: about a quarter of the body is sent, then curl gives up
    let out = s.curl_admin(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--limit-rate",
        "1M",
        "--max-time",
        "2",
        "-T",
        body.to_str().expect("utf8"),
        &s.dav("cutb/cut.bin"),
    ]);
    assert!(!out.status.success(), "the upload was not cut: {out:?}");
    // the server notices the closed connection; give it a moment
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(s.status(&["-I", &s.dav("cutb/cut.bin")]), 404);
    assert_eq!(usage(s, "cut"), (0, 0));
    let stored = rig.objects("cutb/");
    assert!(
        stored.iter().all(|(k, _)| k.ends_with('/')),
        "the cut upload left {stored:?} in Garage"
    );
    assert_eq!(rig.blobs(), Vec::new(), "the cut upload left a blob");
    rig.no_file_bytes_on_disk();
    // and a whole upload afterwards is stored
    assert_eq!(s.put("cutb/cut.bin", b"whole"), 201);
    assert_eq!(usage(s, "cut"), (5, 1));
    assert!(rig.blob_holds(b"whole"));
}

/// `/healthz` checks the object store itself: Garage killed, it answers 503 `storage
/// unreachable` within a second or so (the last answer is reused for a second), each request
/// answered within the probe's second.
#[test]
fn healthz_says_storage_unreachable_soon_after_garage_dies() {
    let mut rig = rig("kura_os_health");
    let health = |s: &Server| {
        let t = Instant::now();
        let out = s.curl(&["-s", "-w", "\n%{http_code}", &s.url("/healthz")]);
        (
            code(&out),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            t.elapsed(),
        )
    };
    assert_eq!(health(&rig.server).0, 200);
    let bucket = rig.server.dav("okb");
    assert_eq!(rig.server.status(&["-X", "MKCOL", &bucket]), 201);
    assert_eq!(
        rig.server.put("okb/kept.txt", b"stored before the outage"),
        201
    );
    let key = rig.server.s3_key();
    rig.garage.kill();
    let killed = Instant::now();
    loop {
        let (status, body, took) = health(&rig.server);
        assert!(took < Duration::from_millis(1500), "/healthz took {took:?}");
        if status == 503 {
            assert!(body.contains("storage unreachable"), "{body}");
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "/healthz still says 200 {:?} after Garage died",
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "/healthz: 503 {:?} after Garage was killed",
        killed.elapsed()
    );
    // a PUT meanwhile fails cleanly, with no file left visible
    let put = rig.server.put("okb/down.txt", b"nowhere to go");
    assert_eq!(put, 503, "PUT with Garage down");
    // a GET answers 503 before any header promises bytes (before: 200 and an empty body),
    // over WebDAV, ranged, and over S3
    for args in [vec![], vec!["-r", "0-9"]] {
        let mut a: Vec<&str> = vec!["-s", "-o", "/dev/null", "-w", "%{http_code}"];
        a.extend(args.iter().copied());
        let url = rig.server.dav("okb/kept.txt");
        a.push(&url);
        let out = rig.server.curl_admin(&a);
        assert_eq!(code(&out), 503, "WebDAV GET {args:?} with Garage down");
    }
    let out = rig
        .server
        .aws(&key)
        .args([
            "s3api",
            "get-object",
            "--bucket",
            "okb",
            "--key",
            "kept.txt",
        ])
        .arg(rig.server.root.path().join("got"))
        .output()
        .expect("aws");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ServiceUnavailable") || err.contains("503"),
        "{err}"
    );
}
