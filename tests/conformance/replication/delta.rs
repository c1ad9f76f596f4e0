//! Delta transfer of large files (docs/replication.md, "Delta transfer") between real nodes:
//! an edit in the middle and an append ship a few percent of the file (bytes counted by the
//! sender's own counters), both by push and by pull; kill -9 of either side in the middle of
//! a delta, then byte-identical files; and hostile deltas (no peer key, copies out of range,
//! a wrong hash, an oversize head, trailing bytes) refused with nothing committed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

/// Size of the test file in MiB (64 by default; `KURA_DELTA_TEST_MIB=1024` measures 1 GiB).
fn big_mib() -> u64 {
    std::env::var("KURA_DELTA_TEST_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// Deterministic noise: the same seed, the same bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Writes `body` to `path` and uploads it to `key` on `node` (aws-cli, multipart above 8 MiB).
fn put_file(node: &Node, path: &Path, key: &str, body: &[u8]) {
    std::fs::write(path, body).expect("file");
    run(node
        .s3()
        .args(["s3", "cp", "--only-show-errors"])
        .arg(path)
        .arg(format!("s3://{BUCKET}/{key}")));
}

/// `put_file`, recorded in `want`.
fn upload(node: &Node, want: &mut Objects, path: &Path, key: &str, body: &[u8]) {
    put_file(node, path, key, body);
    want.insert(key.to_string(), sha(body));
}

/// `kura_replication_bytes_total` of `node` for `direction` and `kind`, summed over peers.
fn moved(node: &Node, direction: &str, kind: &str) -> u64 {
    let out = node.server.curl(&[&node.server.url("/metrics")]);
    let text = stdout(&out);
    let want = format!("direction=\"{direction}\",kind=\"{kind}\"");
    text.lines()
        .filter(|l| l.starts_with("kura_replication_bytes_total{") && l.contains(&want))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// What `node` moved so far: (whole, delta, lists) in `direction`.
fn counters(node: &Node, direction: &str) -> (u64, u64, u64) {
    (
        moved(node, direction, "whole"),
        moved(node, direction, "delta"),
        moved(node, direction, "lists"),
    )
}

/// Changes `len` bytes at `at` (XOR, so every byte differs).
fn scribble(body: &mut [u8], at: usize, len: usize, seed: u64) {
    for (b, n) in body[at..at + len].iter_mut().zip(noise(len, seed)) {
        *b ^= n | 1;
    }
}

/// The bytes `counter` moved in `direction` (whole, delta + lists) while `key` on `writer`
/// became `body` and the cluster converged on `want` (which gets the new version).
#[allow(clippy::too_many_arguments)]
fn measure(
    c: &Cluster,
    writer: usize,
    counter: usize,
    direction: &str,
    want: &mut Objects,
    key: &str,
    body: &[u8],
) -> (u64, u64) {
    let before = counters(&c[counter], direction);
    let file = c.scratch.path().join(key);
    upload(&c[writer], want, &file, key, body);
    c.converge(want);
    let after = counters(&c[counter], direction);
    (
        after.0 - before.0,
        (after.1 - before.1) + (after.2 - before.2),
    )
}

/// One edit and one append of a large file written on `writer`: each reaches the other node
/// as a few percent of the file by `counter`'s count in `direction`, never whole.
fn edit_and_append(c: &Cluster, writer: usize, counter: usize, direction: &str, tag: &str) {
    let mib = big_mib();
    let size = (mib << 20) as usize;
    let key = format!("{tag}.bin");
    let mut want = wait_converged(&c.all(), CONVERGE);
    let mut body = noise(size, mib);
    let (whole, _) = measure(c, writer, counter, direction, &mut want, &key, &body);
    assert!(
        whole >= size as u64,
        "the first version of {key} did not travel whole ({whole} bytes)"
    );

    // 1 MiB changed in the middle of 1 GiB (in proportion)
    let edit = size / 1024;
    scribble(&mut body, size / 2, edit, 7);
    let (whole, sent) = measure(c, writer, counter, direction, &mut want, &key, &body);
    let ratio = sent as f64 / size as f64;
    println!(
        "delta {direction}: {} KiB changed in the middle of {mib} MiB: {sent} bytes on the wire, {:.2}% of the file",
        edit >> 10,
        ratio * 100.0
    );
    assert_eq!(whole, 0, "the edited file travelled whole");
    assert!(
        ratio < 0.05,
        "an edit shipped {:.2}% of the file",
        ratio * 100.0
    );

    // 10 MiB appended to 1 GiB (in proportion)
    let extra = size / 1024 * 10;
    body.extend_from_slice(&noise(extra, 11));
    let (whole, sent) = measure(c, writer, counter, direction, &mut want, &key, &body);
    let ratio = sent as f64 / size as f64;
    println!(
        "delta {direction}: {} KiB appended to {mib} MiB: {sent} bytes on the wire, {:.2}% of the file",
        extra >> 10,
        ratio * 100.0
    );
    assert_eq!(whole, 0, "the appended file travelled whole");
    assert!(
        ratio < 0.02,
        "an append shipped {:.2}% of the file",
        ratio * 100.0
    );
    for n in [A, B] {
        assert_eq!(
            sha_file(&c[n].dir().join(&key)).as_deref(),
            Some(sha(&body).as_str()),
            "{key} on {}",
            c[n].name
        );
    }
    assert_eq!(
        perms(&c[A], &key),
        perms(&c[B], &key),
        "owner, group, mode of {key}"
    );
}

/// Push: an edit and an append of a large file on node-a reach node-b as deltas.
#[test]
fn a_large_file_s_edit_ships_only_its_changed_chunks() {
    let mut c = Cluster::start(2);
    c.two_way(A, B);
    c.wait_wired();
    edit_and_append(&c, A, A, "push", "push");
    // and back: node-b's edit of the same kind of file reaches node-a as a delta too
    edit_and_append(&c, B, B, "push", "back");
    let want = wait_converged(&c.all(), CONVERGE);
    c.settle(&want);
}

/// Pull: node-a cannot be reached; node-b's edits reach it as deltas it fetches by range,
/// and its own edits reach node-b as pushed deltas.
#[test]
fn an_outbound_only_node_pulls_and_pushes_deltas() {
    let mut c = Cluster::start(2);
    c.pull_pair(A, B);
    c.wait_wired();
    edit_and_append(&c, B, A, "pull", "pulled");
    edit_and_append(&c, A, A, "push", "pushed");
    let want = wait_converged(&c.all(), CONVERGE);
    c.settle(&want);
}

/// A large file on both nodes and an edit that changes every other MiB of it (a delta of
/// half the file, long enough to kill a node in the middle of it); returns its key, body and
/// file.
fn half_changed(c: &Cluster, want: &mut Objects, attempt: u32) -> (String, Vec<u8>, String) {
    let size = 128usize << 20;
    let key = format!("kill-{attempt}.bin");
    let file = c.scratch.path().join(&key);
    let mut body = noise(size, u64::from(attempt) + 100);
    upload(&c[A], want, &file, &key, &body);
    c.converge(want);
    let old = sha(&body);
    for i in (0..size >> 20).step_by(2) {
        scribble(
            &mut body,
            i << 20,
            1 << 20,
            u64::from(attempt) * 1000 + i as u64,
        );
    }
    (key, body, old)
}

/// Kills `victim` once node-b holds part of the rebuilt version of `key` (its temporary
/// file) and before it is committed; false when the delta was done before the kill landed.
fn kill_mid_delta(c: &mut Cluster, victim: usize, key: &str, body: &[u8]) -> bool {
    let arrived = c[B].dir().join(key);
    let inode = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).ok();
    let old = inode(&arrived);
    put_file(&c[A], &c.scratch.path().join(key), key, body);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // the rebuilt version is renamed into place: a new inode
        if inode(&arrived) != old {
            return false;
        }
        let staged = dir_bytes(&c[B].server.data_dir().join("tmp"));
        if staged >= 16 << 20 {
            c[victim].kill9();
            println!(
                "delta kill: {} killed with {} MiB of {key} rebuilt on node-b",
                c[victim].name,
                staged >> 20
            );
            return true;
        }
        assert!(
            Instant::now() < deadline,
            "the delta of {key} did not start on node-b: {:?}",
            c[A].status()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn killed_mid_delta(victim: usize) {
    let mut c = Cluster::start(2);
    c.one_way(A, B);
    c.wait_wired();
    let mut want = Objects::new();
    let mut caught = false;
    for attempt in 1..=3 {
        let (key, body, old_sha) = half_changed(&c, &mut want, attempt);
        let before = moved(&c[A], "push", "delta");
        want.insert(key.clone(), sha(&body));
        if kill_mid_delta(&mut c, victim, &key, &body) {
            // never a partial version on node-b: the old one, or the new one whole
            let old = c[B].dir().join(&key);
            let held = sha_file(&old).unwrap_or_default();
            assert!(
                held == old_sha || held == sha(&body),
                "a partial version of {key} on node-b"
            );
            std::thread::sleep(Duration::from_secs(2));
            c[victim].start_again();
            c.converge(&want);
            let after = moved(&c[A], "push", "delta");
            if victim == B {
                assert!(after > before, "the retry after the kill was not a delta");
            }
            let log = c[A].server.log();
            assert!(
                log.lines()
                    .any(|l| l.contains("shipped a delta") && l.contains(&key)),
                "node-a shipped no delta of {key}:\n{}",
                tail(&log, 30)
            );
            caught = true;
            break;
        }
        c.converge(&want);
        println!("delta kill: the delta of {key} was done before the kill; again");
    }
    assert!(caught, "could not kill a node in the middle of a delta");
    let got = c.converge(&want);
    for k in got.keys() {
        assert_eq!(
            perms(&c[A], k),
            perms(&c[B], k),
            "owner, group, mode of {k}"
        );
    }
}

/// kill -9 of the receiver in the middle of a delta: nothing partial, then convergence.
#[test]
fn receiver_killed_mid_delta() {
    killed_mid_delta(B);
}

/// kill -9 of the sender in the middle of a delta: nothing partial, then convergence.
#[test]
fn sender_killed_mid_delta() {
    killed_mid_delta(A);
}

/// A signed request to a delta endpoint by botocore's SigV4 with `key`'s credentials: the
/// body (for a PUT) is read from `body`; returns status and answer.
fn signed(
    node: &Node,
    key: &S3Key,
    method: &str,
    query: &str,
    body: Option<&Path>,
) -> (u16, String) {
    let path = if method == "PUT" {
        "/api/replication/v1/delta"
    } else {
        "/api/replication/v1/chunks"
    };
    let url = node.server.url(&format!("{path}?{query}"));
    let script = "import sys, requests\n\
from botocore.auth import S3SigV4Auth\n\
from botocore.awsrequest import AWSRequest\n\
from botocore.credentials import Credentials\n\
method, url, ak, sk, ca, body = sys.argv[1:7]\n\
data = open(body, 'rb').read() if body else None\n\
r = AWSRequest(method=method, url=url, data=data)\n\
S3SigV4Auth(Credentials(ak, sk), 's3', 'us-east-1').add_auth(r)\n\
resp = requests.request(method, url, headers=dict(r.headers), data=data, verify=ca)\n\
print(resp.text)\n\
print(resp.status_code)\n";
    let body = body.map(|p| p.display().to_string()).unwrap_or_default();
    let out = run(Command::new("python3")
        .args(["-c", script, method, &url, &key.id, &key.secret])
        .arg(node.server.cert())
        .arg(&body));
    let text = stdout(&out);
    let (answer, status) = text
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", text.trim()));
    (status.trim().parse().expect("status"), answer.to_string())
}

/// A delta body: magic, head, ops.
fn delta_body(head: &serde_json::Value, ops: &[u8], head_len: Option<u32>) -> Vec<u8> {
    let head = serde_json::to_vec(head).expect("head");
    let mut out = b"KURADLT1".to_vec();
    out.extend_from_slice(&head_len.unwrap_or(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(ops);
    out
}

fn copy_op(first: u32, count: u32) -> Vec<u8> {
    let mut op = vec![b'C'];
    op.extend_from_slice(&first.to_le_bytes());
    op.extend_from_slice(&count.to_le_bytes());
    op
}

fn data_op(bytes: &[u8]) -> Vec<u8> {
    let mut op = vec![b'D'];
    op.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    op.extend_from_slice(bytes);
    op
}

/// The delta endpoints answer a peer key only, and refuse every malformed delta with
/// nothing committed; a well-formed one (crafted here, not by a node) goes through.
#[test]
fn hostile_deltas_are_refused_and_change_nothing() {
    require("python3");
    let c = Cluster::start(2);
    let b = &c[B];
    let peer = b.repl(NAMES[A]);
    let mut want = Objects::new();
    let size = 9usize << 20;
    let old = noise(size, 1);
    let new = noise(size, 2);
    let scratch = c.scratch.path();
    upload(b, &mut want, &scratch.join("t"), "target.bin", &old);
    // another file whose list tells the BLAKE3 of `new`
    upload(b, &mut want, &scratch.join("n"), "new.bin", &new);

    let q = |k: &str| format!("bucket={BUCKET}&key={k}");
    let (s, list) = signed(b, peer, "GET", &q("target.bin"), None);
    assert_eq!(s, 200, "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).expect("list");
    let chunks = base64::engine::general_purpose::STANDARD
        .decode(list["chunks"].as_str().expect("chunks"))
        .expect("base64")
        .len()
        / 36;
    assert!(chunks > 50, "{chunks} chunks in 9 MiB");
    let (s, new_list) = signed(b, peer, "GET", &q("new.bin"), None);
    assert_eq!(s, 200, "{new_list}");
    let new_list: serde_json::Value = serde_json::from_str(&new_list).expect("list");
    // the list is a peer key's only, and only of what its user may read
    let (s, _) = signed(b, &b.key, "GET", &q("target.bin"), None);
    assert_eq!(s, 403, "admin's (non-peer) key read a chunk list");
    let forged = S3Key {
        id: peer.id.clone(),
        secret: "not-the-secret".into(),
    };
    assert_eq!(signed(b, &forged, "GET", &q("target.bin"), None).0, 403);
    b.kura(&["chmod", "600", &format!("/{BUCKET}/target.bin")]);
    let (s, body) = signed(b, peer, "GET", &q("target.bin"), None);
    assert_eq!(
        s, 403,
        "a user who may not read the file got its chunk list: {body}"
    );
    b.kura(&["chmod", "666", &format!("/{BUCKET}/target.bin")]);
    for bad in [
        "bucket=..&key=x",
        "key=target.bin",
        "bucket=mirror",
        "bucket=mirror&key=target.bin&avg=3",
        "bucket=mirror&key=target.bin&x=1",
    ] {
        assert_eq!(signed(b, peer, "GET", bad, None).0, 400, "{bad}");
    }

    let head = |blake3: &str| {
        serde_json::json!({
            "of": list["etag"],
            "avg": list["avg"],
            "size": size,
            "blake3": blake3,
            "content_type": "application/octet-stream",
            "headers": {
                "x-amz-meta-kura-origin": c[A].id,
                "x-amz-meta-kura-from": c[A].id,
                "x-amz-meta-kura-mtime": "1700000000000",
                "x-amz-meta-kura-mode": "mirror",
            },
        })
    };
    let right = new_list["blake3"].as_str().expect("blake3").to_string();
    let end = [b'E'];
    let whole_new = [
        data_op(&new[..size / 2]),
        data_op(&new[size / 2..]),
        end.to_vec(),
    ]
    .concat();
    let file = scratch.join("delta.bin");
    let attempt = |name: &str, key: &S3Key, body: &[u8], status: u16| {
        std::fs::write(&file, body).expect("delta");
        let (s, answer) = signed(b, key, "PUT", &q("target.bin"), Some(&file));
        assert_eq!(s, status, "{name}: {answer}");
        let held = sha_file(&b.dir().join("target.bin"));
        assert_eq!(
            held.as_deref(),
            Some(sha(&old).as_str()),
            "{name} changed the file"
        );
        assert!(
            tree(&b.server.data_dir().join("tmp")).is_empty(),
            "{name} left a temporary file"
        );
        answer
    };
    // refusals that come before the body is read get a short one (the server closes the
    // connection rather than read what it refused)
    let short = [copy_op(0, 1), end.to_vec()].concat();
    // not a peer key; a forged signature
    attempt(
        "admin's key",
        &b.key,
        &delta_body(&head(&right), &short, None),
        403,
    );
    attempt(
        "forged",
        &forged,
        &delta_body(&head(&right), &short, None),
        403,
    );
    // copies out of range, of no chunk, past the end of the list
    let n = chunks as u32;
    for ops in [
        copy_op(n, 1),
        copy_op(0, 0),
        copy_op(n - 1, 2),
        copy_op(u32::MAX, 2),
    ] {
        attempt(
            "out of range",
            peer,
            &delta_body(&head(&right), &[ops, end.to_vec()].concat(), None),
            400,
        );
    }
    // the right bytes with a wrong hash; the wrong bytes with the right hash
    let wrong = "00".repeat(32);
    let answer = attempt(
        "wrong hash",
        peer,
        &delta_body(&head(&wrong), &whole_new, None),
        400,
    );
    assert!(answer.contains("BadDigest"), "{answer}");
    let copy_all = [copy_op(0, n), end.to_vec()].concat();
    attempt(
        "old bytes, new hash",
        peer,
        &delta_body(&head(&right), &copy_all, None),
        400,
    );
    // an oversize head, new bytes longer than a chunk may be, bytes after the end, no end
    attempt(
        "oversize head",
        peer,
        &delta_body(&head(&right), &short, Some(1 << 30)),
        400,
    );
    let mut long = vec![b'D'];
    long.extend_from_slice(&(64u32 << 20).to_le_bytes());
    attempt(
        "oversize op",
        peer,
        &delta_body(&head(&right), &long, None),
        400,
    );
    let trailing = [whole_new.clone(), b"more".to_vec()].concat();
    attempt(
        "trailing bytes",
        peer,
        &delta_body(&head(&right), &trailing, None),
        400,
    );
    attempt(
        "no end",
        peer,
        &delta_body(&head(&right), &whole_new[..whole_new.len() - 1], None),
        400,
    );
    attempt("not a delta", peer, b"PUT this please", 400);
    // a delta against a version node-b no longer holds
    let mut stale = head(&right);
    stale["of"] = serde_json::json!("0123456789abcdef0123456789abcdef");
    attempt("stale base", peer, &delta_body(&stale, &short, None), 412);
    // unsigned
    std::fs::write(&file, delta_body(&head(&right), &short, None)).expect("delta");
    let out = b.server.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PUT",
        "--data-binary",
        &format!("@{}", file.display()),
        &b.server
            .url(&format!("/api/replication/v1/delta?{}", q("target.bin"))),
    ]);
    assert_ne!(stdout(&out), "200", "an unsigned delta was taken");
    assert_eq!(
        sha_file(&b.dir().join("target.bin")).as_deref(),
        Some(sha(&old).as_str())
    );

    // the same endpoint takes a well-formed delta: the checks above are what refused
    std::fs::write(&file, delta_body(&head(&right), &whole_new, None)).expect("delta");
    let (s, answer) = signed(b, peer, "PUT", &q("target.bin"), Some(&file));
    assert_eq!(s, 200, "a well-formed delta: {answer}");
    assert_eq!(
        sha_file(&b.dir().join("target.bin")).as_deref(),
        Some(sha(&new).as_str())
    );
    want.insert("target.bin".into(), sha(&new));
    b.check_consistent(&want);
}
