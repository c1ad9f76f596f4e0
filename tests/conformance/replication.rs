//! Peer replication between real nodes (TLS, pinned certificates) on 127.0.0.1: mirrors,
//! two-way edits, crashes, an unreachable peer, conflicts and a chain. Every test ends by
//! comparing the full listing and the SHA-256 of every file of the bucket on all nodes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::common::{require, run, S3Key, Server};

const BUCKET: &str = "photos";

/// One node: a server with the bucket, a user `repl` who may write it, and that user's key.
struct Node {
    name: &'static str,
    server: Server,
    key: S3Key,
    fingerprint: String,
}

impl Node {
    fn start(name: &'static str) -> Node {
        Node::start_reconciling(name, 0)
    }

    /// A node that also reconciles every `seconds` (0: never).
    fn start_reconciling(name: &'static str, seconds: u32) -> Node {
        let seconds = seconds.to_string();
        let server = Server::start_with(
            true,
            &[
                ("KURA_REPLICATION__RETRY_MAX_SECONDS", "2"),
                ("KURA_REPLICATION__RECONCILE_SECONDS", &seconds),
            ],
        );
        run(server.kura().args(["group", "add", "family"]));
        run(server
            .kura()
            .args(["user", "add", "repl", "--group", "family"]));
        run(server
            .kura()
            .args(["bucket", "create", BUCKET, "--group", "family"]));
        let key = server.s3_key_for("repl");
        let out = run(server.kura().arg("fingerprint"));
        let fingerprint = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(fingerprint.starts_with("sha256:"), "{fingerprint}");
        Node {
            name,
            server,
            key,
            fingerprint,
        }
    }

    /// Adds `to` as a peer and replicates the bucket to it.
    fn replicate_to(&self, to: &Node, two_way: bool) {
        run(self.server.kura().args([
            "peer",
            "add",
            to.name,
            "--endpoint",
            &to.server.url(""),
            "--access-key",
            &to.key.id,
            "--secret-key",
            &to.key.secret,
            "--ca-fingerprint",
            &to.fingerprint,
        ]));
        let mut c = self.server.kura();
        c.args(["replicate", BUCKET, "--to", to.name]);
        if two_way {
            c.arg("--bidirectional");
        }
        run(&mut c);
    }

    /// `aws` as `repl` against this node.
    fn aws(&self) -> Command {
        self.server.aws(&self.key)
    }

    fn put(&self, key: &str, body: &[u8]) {
        let f = self.server.root.path().join("body.tmp");
        std::fs::write(&f, body).expect("write body");
        run(self.aws().args([
            "s3api",
            "put-object",
            "--bucket",
            BUCKET,
            "--key",
            key,
            "--body",
            f.to_str().expect("utf8"),
        ]));
    }

    fn delete(&self, key: &str) {
        run(self
            .aws()
            .args(["s3api", "delete-object", "--bucket", BUCKET, "--key", key]));
    }

    /// Every rule's status (`kura peer status --json`).
    fn status(&self) -> Vec<serde_json::Value> {
        let out = run(self.server.kura().args(["peer", "status", "--json"]));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    fn backlog(&self) -> i64 {
        self.status()
            .iter()
            .map(|r| r["backlog"].as_i64().expect("backlog"))
            .sum()
    }

    /// Relative path -> SHA-256 of every file of the bucket, read from disk.
    fn snapshot(&self) -> BTreeMap<String, String> {
        let root = self.server.files_dir().join(BUCKET);
        super::common::tree(&root)
            .into_iter()
            .map(|rel| {
                let sum = sha256(&root.join(&rel));
                (rel, sum)
            })
            .collect()
    }

    fn read(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.server.files_dir().join(BUCKET).join(key)).unwrap_or_default()
    }
}

fn sha256(path: &Path) -> String {
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Waits until every node holds the same files with the same bytes and no rule has a
/// backlog; returns the time it took and the number of files compared.
fn converge(nodes: &[&Node], what: &str, limit: Duration) -> (Duration, usize) {
    let start = Instant::now();
    loop {
        let snaps: Vec<_> = nodes.iter().map(|n| n.snapshot()).collect();
        let same = snaps.windows(2).all(|w| w[0] == w[1]);
        if same && nodes.iter().all(|n| n.backlog() == 0) {
            let took = start.elapsed();
            println!(
                "{what}: converged in {:.1} s, {} files identical (listing and SHA-256) on {} nodes",
                took.as_secs_f64(),
                snaps[0].len(),
                nodes.len()
            );
            return (took, snaps[0].len());
        }
        if start.elapsed() > limit {
            let mut report = String::new();
            for (n, s) in nodes.iter().zip(&snaps) {
                report.push_str(&format!(
                    "\n{}: {} files, status {:?}",
                    n.name,
                    s.len(),
                    n.status()
                ));
            }
            for w in snaps.windows(2) {
                let only_a: Vec<_> = w[0]
                    .iter()
                    .filter(|(k, v)| w[1].get(*k) != Some(v))
                    .take(5)
                    .collect();
                let only_b: Vec<_> = w[1]
                    .iter()
                    .filter(|(k, v)| w[0].get(*k) != Some(v))
                    .take(5)
                    .collect();
                report.push_str(&format!("\ndiffers: {only_a:?} vs {only_b:?}"));
            }
            panic!("{what}: no convergence after {limit:?}:{report}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Files (relative paths) in a folder of `n` files `f0000.txt`, ... with distinct bodies.
fn many_files(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..n {
        std::fs::write(
            dir.join(format!("f{i:04}.txt")),
            format!("file {i}\n").repeat(i % 7 + 1),
        )
        .expect("write");
    }
}

/// A file of `mib` MiB of pseudo-random bytes.
fn big_file(path: &Path, mib: usize) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut f = std::fs::File::create(path).expect("create");
    for _ in 0..mib {
        for b in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b.copy_from_slice(&state.to_le_bytes()[..b.len()]);
        }
        std::io::Write::write_all(&mut f, &buf).expect("write");
    }
}

fn upload_dir(n: &Node, dir: &Path, prefix: &str) {
    run(n.aws().args([
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        dir.to_str().expect("utf8"),
        &format!("s3://{BUCKET}/{prefix}"),
    ]));
}

/// Bytes left in a node's temporary upload folder.
fn temp_files(s: &Server) -> usize {
    std::fs::read_dir(s.data_dir().join("tmp"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

#[test]
fn one_way_mirror_of_a_thousand_objects_and_a_multipart_one() {
    require("aws");
    let (a, b) = (Node::start("a"), Node::start("b"));
    a.replicate_to(&b, false);
    let work = tempfile::tempdir().expect("tempdir");
    many_files(&work.path().join("many"), 1000);
    let big = work.path().join("big.bin");
    big_file(&big, 200);
    upload_dir(&a, &work.path().join("many"), "many/");
    run(a.aws().args([
        "s3",
        "cp",
        "--only-show-errors",
        "--content-type",
        "application/x-kura-test",
        "--metadata",
        "colour=blue,taken=2024",
        big.to_str().expect("utf8"),
        &format!("s3://{BUCKET}/big.bin"),
    ]));
    let (_, n) = converge(&[&a, &b], "one-way mirror", Duration::from_secs(240));
    assert_eq!(n, 1001);
    assert_eq!(b.snapshot()["big.bin"], sha256(&big));
    // type and user metadata arrived; the replication keys did not stay
    let head = run(b.aws().args([
        "s3api",
        "head-object",
        "--bucket",
        BUCKET,
        "--key",
        "big.bin",
    ]));
    let head: serde_json::Value = serde_json::from_slice(&head.stdout).expect("head JSON");
    assert_eq!(head["ContentType"], "application/x-kura-test");
    assert_eq!(head["Metadata"]["colour"], "blue");
    assert_eq!(head["Metadata"]["taken"], "2024");
    assert_eq!(
        head["Metadata"].as_object().map(|m| m.len()),
        Some(2),
        "{head}"
    );
    // a one-way rule's receiver ships nothing back
    assert!(b.status().is_empty());
    let st = &a.status()[0];
    assert_eq!(st["bucket"], BUCKET);
    assert!(st["shipped"].as_i64().unwrap_or(0) >= 1001, "{st}");
    assert!(st["last_error"].is_null(), "{st}");
    // the admin API shows the same rule
    let api = a
        .server
        .curl_admin(&["-f", &a.server.url("/api/v1/replication")]);
    let api: serde_json::Value = serde_json::from_slice(&api.stdout).expect("API JSON");
    assert_eq!(api[0]["peer"], "b");
}

#[test]
fn edits_on_both_sides_of_a_two_way_rule_meet() {
    require("aws");
    let (a, b) = (Node::start("a"), Node::start("b"));
    a.replicate_to(&b, true);
    b.replicate_to(&a, true);
    let work = tempfile::tempdir().expect("tempdir");
    many_files(&work.path().join("x"), 20);
    many_files(&work.path().join("y"), 20);
    upload_dir(&a, &work.path().join("x"), "x/");
    upload_dir(&b, &work.path().join("y"), "y/");
    converge(&[&a, &b], "two-way, creations", Duration::from_secs(120));
    // edits of different files on each side: overwrite, delete, rename (WebDAV), copy (S3)
    b.put("x/f0001.txt", b"changed on b");
    a.delete("y/f0002.txt");
    let moved = b.server.status(&[
        "-X",
        "MOVE",
        "-H",
        &format!("Destination: {}", b.server.dav("photos/x/renamed.txt")),
        &b.server.dav("photos/x/f0003.txt"),
    ]);
    assert_eq!(moved, 201);
    run(a.aws().args([
        "s3",
        "cp",
        "--only-show-errors",
        &format!("s3://{BUCKET}/y/f0004.txt"),
        &format!("s3://{BUCKET}/y/copy.txt"),
    ]));
    let (_, n) = converge(&[&a, &b], "two-way, edits", Duration::from_secs(120));
    assert_eq!(n, 40);
    for node in [&a, &b] {
        let s = node.snapshot();
        assert_eq!(node.read("x/f0001.txt"), b"changed on b");
        assert!(!s.contains_key("y/f0002.txt"));
        assert!(!s.contains_key("x/f0003.txt"));
        assert!(s.contains_key("x/renamed.txt"));
        assert_eq!(s["y/copy.txt"], s["y/f0004.txt"]);
        assert!(s.keys().all(|k| !k.contains(".conflict")), "{s:?}");
    }
}

#[test]
fn receiver_killed_in_the_middle_of_a_large_transfer_catches_up() {
    require("aws");
    let (a, mut b) = (Node::start("a"), Node::start("b"));
    a.replicate_to(&b, false);
    let work = tempfile::tempdir().expect("tempdir");
    let big = work.path().join("big.bin");
    big_file(&big, 200);
    run(a.aws().args([
        "s3",
        "cp",
        "--only-show-errors",
        big.to_str().expect("utf8"),
        &format!("s3://{BUCKET}/big.bin"),
    ]));
    // wait until parts are arriving at b, then kill it
    let staged = b.server.data_dir().join("multipart");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir_has_bytes(&staged) {
        assert!(Instant::now() < deadline, "no transfer to b started");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.server.kill9();
    assert!(
        !b.snapshot().contains_key("big.bin"),
        "nothing partial is visible"
    );
    std::thread::sleep(Duration::from_secs(2));
    b.server.start_again();
    converge(&[&a, &b], "receiver killed", Duration::from_secs(180));
    assert_eq!(b.snapshot()["big.bin"], sha256(&big));
    assert_eq!(temp_files(&b.server), 0, "no temporary leftovers on b");
}

fn dir_has_bytes(dir: &Path) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.len() > 0 => return true,
                _ => {}
            }
        }
    }
    false
}

#[test]
fn sender_killed_with_a_backlog_resumes_after_restart() {
    require("aws");
    let (mut a, mut b) = (Node::start("a"), Node::start("b"));
    a.replicate_to(&b, false);
    b.server.kill9();
    let work = tempfile::tempdir().expect("tempdir");
    many_files(&work.path().join("batch"), 200);
    upload_dir(&a, &work.path().join("batch"), "batch/");
    assert!(a.backlog() >= 200, "{:?}", a.status());
    a.server.kill9();
    a.server.start_again();
    b.server.start_again();
    let (_, n) = converge(&[&a, &b], "sender killed", Duration::from_secs(120));
    assert_eq!(n, 200);
}

#[test]
fn an_unreachable_peer_shows_its_backlog_and_catches_up() {
    require("aws");
    let (a, mut b) = (Node::start("a"), Node::start("b"));
    a.replicate_to(&b, false);
    a.put("keep.txt", b"kept");
    a.put("gone.txt", b"to be deleted");
    converge(&[&a, &b], "before the outage", Duration::from_secs(60));
    b.server.kill9();
    for i in 0..30 {
        a.put(
            &format!("during/{i}.txt"),
            format!("written while b was down {i}").as_bytes(),
        );
    }
    a.delete("gone.txt");
    a.put("keep.txt", b"kept, changed while b was down");
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        let st = a.status().remove(0);
        if !st["last_error"].is_null() {
            break st;
        }
        assert!(Instant::now() < deadline, "no error shown: {st}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(st["backlog"].as_i64().unwrap_or(0) > 0, "{st}");
    assert!(st["lag_seconds"].as_f64().is_some(), "{st}");
    println!("while b was down: {st}");
    std::thread::sleep(Duration::from_secs(3));
    b.server.start_again();
    let (_, n) = converge(&[&a, &b], "after the outage", Duration::from_secs(120));
    assert_eq!(n, 31);
    assert!(!b.snapshot().contains_key("gone.txt"));
    assert_eq!(b.read("keep.txt"), b"kept, changed while b was down");
    assert!(a.status()[0]["last_error"].is_null());
}

/// Two-way nodes where `k` was last agreed as `base`.
fn two_way_pair(k: &str, base: &[u8]) -> (Node, Node) {
    let (a, b) = (Node::start("a"), Node::start("b"));
    a.replicate_to(&b, true);
    b.replicate_to(&a, true);
    a.put(k, base);
    converge(&[&a, &b], "agreed base", Duration::from_secs(60));
    (a, b)
}

#[test]
fn a_conflict_on_one_key_keeps_both_versions_the_same_way_on_both_nodes() {
    require("aws");
    let (mut a, mut b) = two_way_pair("doc.txt", b"v0");
    // each side changes the file while the other is away
    b.server.kill9();
    a.put("doc.txt", b"version written on a");
    std::thread::sleep(Duration::from_millis(300));
    a.server.kill9();
    b.server.start_again();
    std::thread::sleep(Duration::from_millis(50));
    b.put("doc.txt", b"version written on b, later");
    a.server.start_again();
    let (_, n) = converge(&[&a, &b], "conflict", Duration::from_secs(90));
    assert_eq!(n, 2);
    for node in [&a, &b] {
        assert_eq!(node.read("doc.txt"), b"version written on b, later");
        assert_eq!(node.read("doc.txt.conflict1"), b"version written on a");
        let names: Vec<_> = node.snapshot().into_keys().collect();
        assert_eq!(names, ["doc.txt", "doc.txt.conflict1"]);
    }
}

#[test]
fn delete_versus_update_keeps_the_update_on_both_nodes() {
    require("aws");
    let (mut a, mut b) = two_way_pair("note.txt", b"v0");
    b.server.kill9();
    a.delete("note.txt");
    std::thread::sleep(Duration::from_millis(300));
    a.server.kill9();
    b.server.start_again();
    b.put("note.txt", b"updated on b");
    a.server.start_again();
    let (_, n) = converge(&[&a, &b], "delete versus update", Duration::from_secs(90));
    assert_eq!(n, 1);
    assert_eq!(a.read("note.txt"), b"updated on b");
    assert_eq!(b.read("note.txt"), b"updated on b");
}

#[test]
fn a_chain_a_to_b_to_c_carries_changes_to_the_end() {
    require("aws");
    let (a, b, c) = (Node::start("a"), Node::start("b"), Node::start("c"));
    a.replicate_to(&b, false);
    b.replicate_to(&c, false);
    let work = tempfile::tempdir().expect("tempdir");
    many_files(&work.path().join("chain"), 50);
    upload_dir(&a, &work.path().join("chain"), "chain/");
    converge(&[&a, &b, &c], "chain", Duration::from_secs(120));
    a.delete("chain/f0007.txt");
    a.put("chain/f0008.txt", b"changed at the head of the chain");
    let (_, n) = converge(&[&a, &b, &c], "chain, edits", Duration::from_secs(120));
    assert_eq!(n, 49);
    assert_eq!(
        c.read("chain/f0008.txt"),
        b"changed at the head of the chain"
    );
}

#[test]
fn resync_copies_what_was_there_before_the_rule_and_mirrors_deletions() {
    require("aws");
    let (a, b) = (Node::start("a"), Node::start("b"));
    for i in 0..10 {
        a.put(
            &format!("old/{i}.txt"),
            format!("from before the rule {i}").as_bytes(),
        );
    }
    b.put("stray.txt", b"only on b");
    a.replicate_to(&b, false);
    let out = run(a
        .server
        .kura()
        .args(["replicate", BUCKET, "--resync"])
        .stdin(Stdio::null()));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        text.contains("compared 11, shipped 10, deleted 1, pulled 0"),
        "{text}"
    );
    let (_, n) = converge(&[&a, &b], "resync", Duration::from_secs(60));
    assert_eq!(n, 10);
}

#[test]
fn the_periodic_reconcile_repairs_what_the_journal_never_saw() {
    require("aws");
    let (a, b) = (Node::start_reconciling("a", 3), Node::start("b"));
    // written before the rule existed: no journal entry will ever ship it
    a.put("early.txt", b"before the rule");
    b.put("extra.txt", b"only on the mirror");
    a.replicate_to(&b, false);
    let (_, n) = converge(&[&a, &b], "periodic reconcile", Duration::from_secs(30));
    assert_eq!(n, 1);
    assert_eq!(b.read("early.txt"), b"before the rule");
}

#[test]
fn a_two_way_resync_merges_both_sides_and_keeps_the_older_of_two_versions() {
    require("aws");
    let (a, b) = (Node::start("a"), Node::start("b"));
    a.put("only-a.txt", b"from a");
    a.put("both.txt", b"older, on a");
    std::thread::sleep(Duration::from_millis(50));
    b.put("only-b.txt", b"from b");
    b.put("both.txt", b"newer, on b");
    a.replicate_to(&b, true);
    b.replicate_to(&a, true);
    let out = run(a.server.kura().args(["replicate", BUCKET, "--resync"]));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        text.contains("compared 3, shipped 1, deleted 0, pulled 2"),
        "{text}"
    );
    let (_, n) = converge(&[&a, &b], "two-way resync", Duration::from_secs(60));
    assert_eq!(n, 4);
    for node in [&a, &b] {
        assert_eq!(node.read("both.txt"), b"newer, on b");
        assert_eq!(node.read("both.txt.conflict1"), b"older, on a");
        assert_eq!(node.read("only-b.txt"), b"from b");
    }
}
