//! Peer replication (issue #8) between two and three real nodes on 127.0.0.1, over TLS with
//! pinned certificates: a one-way mirror of 1,000 objects, two-way edits, kill -9 of the
//! receiver and of the sender, a peer offline for a while, conflicts, delete versus update, a
//! chain A→B→C, resync and the periodic reconcile, and a wrong certificate pin.
//!
//! Every test ends in `Cluster::converge`: the full listing and the SHA-256 of every object in
//! the bucket folder of every node are identical and equal to what the test wrote (nothing lost,
//! nothing extra, no conflict copy but the expected ones), every backlog is 0, and on every node
//! the S3 listing matches the stored files, `kura fsck` finds no drift and no temporary file is
//! left. Every wait has a deadline.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::ops::{Index, IndexMut};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::common::{require, run, tree, S3Key, Server};

mod mailbox;
mod races;
mod tombstones;

/// The replicated bucket, created on every node.
const BUCKET: &str = "mirror";
/// The group owning the bucket; `repl`, the user whose key the peers use, is a member.
const GROUP: &str = "replicas";
/// Node names; each node knows the others as peers of the same names.
const NAMES: [&str; 3] = ["node-a", "node-b", "node-c"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
/// How long a cluster may take to converge before the test fails with a diff.
const CONVERGE: Duration = Duration::from_secs(180);
/// The large object: 200 MiB, uploaded by aws-cli in 25 parts of 8 MiB.
const BIG: u64 = 200 << 20;
/// Settings of every node: short backoff, no periodic reconcile.
const SETTINGS: [(&str, &str); 2] = [
    ("KURA_REPLICATION__RETRY_MAX_SECONDS", "2"),
    ("KURA_REPLICATION__RECONCILE_SECONDS", "0"),
];

/// `kura peer key PEER --user USER --json` on `server`: a key whose requests are `PEER`'s
/// shipments.
fn peer_key(server: &Server, peer: &str, user: &str) -> S3Key {
    let out = run(server
        .kura()
        .args(["peer", "key", peer, "--user", user, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("peer key --json");
    let field = |k: &str| v[k].as_str().expect("peer key field").to_string();
    assert_eq!(field("peer"), peer);
    S3Key {
        id: field("access_key_id"),
        secret: field("secret_access_key"),
    }
}

/// Content of a bucket: key -> SHA-256 (hex).
type Objects = BTreeMap<String, String>;
/// Files of a bucket folder: key -> size.
type Sizes = BTreeMap<String, u64>;

/// One element of `kura peer status --json` and `GET /api/v1/replication`.
#[derive(Debug, Clone, Deserialize)]
struct RuleStatus {
    peer: String,
    bucket: String,
    prefix: String,
    bidirectional: bool,
    backlog: i64,
    lag_seconds: Option<f64>,
    last_error: Option<String>,
    shipped: i64,
    peer_node_id: Option<String>,
    /// Keys set aside after a refusal of that key alone, retried later.
    waiting: i64,
    waiting_on: Option<String>,
    /// The peer is or was lately away longer than deletions are remembered.
    #[serde(default)]
    away: Option<String>,
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of a file, streamed; `None` if it vanished.
fn sha_file(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            return Some(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// Sizes of the files below `dir`; `None` if one vanished while looking.
fn sizes(dir: &Path) -> Option<Sizes> {
    tree(dir)
        .into_iter()
        .map(|k| Some((k.clone(), std::fs::metadata(dir.join(&k)).ok()?.len())))
        .collect()
}

/// Total size of the files below `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    sizes(dir).map_or(0, |s| s.values().sum())
}

/// SHA-256 of files, remembered by inode, size and mtime so polling does not re-read 200 MiB.
#[derive(Default)]
struct Hashes(HashMap<(PathBuf, u64, u64, i64, i64), String>);

impl Hashes {
    fn of(&mut self, path: &Path) -> Option<String> {
        let id = |m: &std::fs::Metadata| {
            (
                path.to_path_buf(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
            )
        };
        let before = id(&std::fs::metadata(path).ok()?);
        if let Some(h) = self.0.get(&before) {
            return Some(h.clone());
        }
        let h = sha_file(path)?;
        if id(&std::fs::metadata(path).ok()?) == before {
            self.0.insert(before, h.clone());
        }
        Some(h)
    }

    fn objects(&mut self, dir: &Path) -> Option<Objects> {
        tree(dir)
            .into_iter()
            .map(|k| Some((k.clone(), self.of(&dir.join(&k))?)))
            .collect()
    }
}

/// Writes a local file for an upload, creating its folders.
fn write_local(root: &Path, key: &str, body: &[u8]) {
    let p = root.join(key);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, body).expect("write");
}

/// What a local folder holds, as the bucket should after a sync of it.
fn local_objects(root: &Path) -> Objects {
    tree(root)
        .into_iter()
        .map(|k| {
            let h = sha_file(&root.join(&k)).expect("local file");
            (k, h)
        })
        .collect()
}

/// 200 MiB of random bytes.
fn make_big(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    run(Command::new("sh")
        .arg("-c")
        .arg(format!("head -c {BIG} /dev/urandom > '{}'", path.display())));
}

/// A small body; object 0 is empty.
fn small_body(i: usize) -> Vec<u8> {
    format!("object {i}\n").repeat(i % 37).into_bytes()
}

/// Whether a key is a conflict copy (`KEY.conflictN`).
fn is_conflict_copy(key: &str) -> bool {
    key.rsplit_once(".conflict")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The differences between two maps, at most 40 lines.
fn diff<T: PartialEq + std::fmt::Debug>(
    left: &str,
    l: &BTreeMap<String, T>,
    right: &str,
    r: &BTreeMap<String, T>,
) -> String {
    let mut lines = Vec::new();
    for (k, v) in l {
        match r.get(k) {
            None => lines.push(format!("  only on {left}: {k}")),
            Some(w) if w != v => {
                lines.push(format!("  differs: {k} ({left}: {v:?}, {right}: {w:?})"))
            }
            _ => {}
        }
    }
    for k in r.keys().filter(|k| !l.contains_key(*k)) {
        lines.push(format!("  only on {right}: {k}"));
    }
    let n = lines.len();
    if n > 40 {
        lines.truncate(40);
        lines.push(format!("  ... and {} more", n - 40));
    }
    lines.join("\n")
}

/// The last `n` lines of a server log, leaving out the access log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("kura::access"))
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `AB:CD:...` SHA-256 of the first certificate of a PEM file, computed here from its DER.
fn cert_fingerprint(pem: &Path) -> String {
    let text = std::fs::read_to_string(pem).expect("cert.pem");
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .expect("PEM base64");
    let hex = sha(&der).to_ascii_uppercase();
    let pairs: Vec<&str> = (0..hex.len()).step_by(2).map(|i| &hex[i..i + 2]).collect();
    pairs.join(":")
}

/// The node id from the unauthenticated `GET /.well-known/kura-node`.
fn node_id(server: &Server) -> String {
    let out = server.curl(&["-f", &server.url("/.well-known/kura-node")]);
    assert!(
        out.status.success(),
        "GET /.well-known/kura-node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kura-node is not JSON ({e}): {}", stdout(&out)));
    let id = v["node_id"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "no node_id in {v}");
    id
}

/// A request to the admin API as `admin`: status and body.
fn api(server: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = server.url(&format!("/api/v1{path}"));
    let mut args = vec!["-X", method, "-w", "\n%{http_code}"];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    args.push(&url);
    let text = stdout(&server.curl_admin(&args));
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

/// A Kura server with the replicated bucket, a `repl` user and its key, its certificate
/// fingerprint and node id.
struct Node {
    name: &'static str,
    server: Server,
    /// `admin`'s key, for the writes the tests make.
    key: S3Key,
    /// `repl`'s peer keys (`kura peer key`), one per other node name: given to that peer,
    /// whose shipments here they sign.
    repl: BTreeMap<&'static str, S3Key>,
    fingerprint: String,
    id: String,
}

impl Node {
    fn start(name: &'static str, env: &[(&str, &str)]) -> Node {
        let server = Server::start_with(true, env);
        run(server.kura().args(["group", "add", GROUP]));
        run(server
            .kura()
            .args(["bucket", "create", BUCKET, "--group", GROUP]));
        run(server
            .kura()
            .args(["user", "add", "repl", "--group", GROUP]));
        let repl = NAMES
            .iter()
            .filter(|&&n| n != name)
            .map(|&n| (n, peer_key(&server, n, "repl")))
            .collect();
        let key = server.s3_key();
        let fingerprint = stdout(&run(server.kura().arg("fingerprint")))
            .trim()
            .to_string();
        assert!(
            fingerprint.len() == 95
                && fingerprint.split(':').all(|p| p.len() == 2
                    && p.bytes()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))),
            "kura fingerprint printed {fingerprint:?}, not AB:CD:... as the server logs it"
        );
        assert!(
            server.log().contains(&fingerprint),
            "kura fingerprint differs from the one the server logs"
        );
        assert_eq!(
            fingerprint,
            cert_fingerprint(&server.cert()),
            "kura fingerprint is not the SHA-256 of the certificate's DER"
        );
        let id = node_id(&server);
        Node {
            name,
            server,
            key,
            repl,
            fingerprint,
            id,
        }
    }

    /// The peer key of `repl` this node gave to the peer `peer`.
    fn repl(&self, peer: &str) -> &S3Key {
        &self.repl[peer]
    }

    /// Runs a `kura` command on this node's data dir; its standard output.
    fn kura(&self, args: &[&str]) -> String {
        stdout(&run(self.server.kura().args(args)))
    }

    /// `kura peer status --json`.
    fn status(&self) -> Vec<RuleStatus> {
        let out = self.kura(&["peer", "status", "--json"]);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("peer status --json of {}: {e}\n{out}", self.name))
    }

    /// Journal entries not yet shipped, over all rules.
    fn backlog(&self) -> i64 {
        self.status().iter().map(|r| r.backlog).sum()
    }

    /// The bucket's folder in storage.
    fn dir(&self) -> PathBuf {
        self.server.files_dir().join(BUCKET)
    }

    fn dav(&self, key: &str) -> String {
        self.server.dav(&format!("{BUCKET}/{key}"))
    }

    /// `n` small objects `seed-0`, `seed-1`, ... (WebDAV PUTs), recorded in `want`.
    fn seed(&self, want: &mut Objects, n: usize) {
        for i in 0..n {
            self.put(want, &format!("seed-{i}"), format!("seed {i}").as_bytes());
        }
    }

    /// WebDAV PUT (the parent folder must exist); records the object in `want`.
    fn put(&self, want: &mut Objects, key: &str, body: &[u8]) {
        let s = self.server.put(&format!("{BUCKET}/{key}"), body);
        assert!(
            s == 201 || s == 204,
            "PUT {key} on {} answered {s}",
            self.name
        );
        want.insert(key.to_string(), sha(body));
    }

    /// WebDAV DELETE of a file or folder; forgets it (and what is below it) in `want`.
    fn delete(&self, want: &mut Objects, key: &str) {
        let s = self.server.status(&["-X", "DELETE", &self.dav(key)]);
        assert_eq!(s, 204, "DELETE {key} on {}", self.name);
        let below = format!("{key}/");
        want.retain(|k, _| k != key && !k.starts_with(&below));
    }

    /// WebDAV MKCOL.
    fn mkcol(&self, key: &str) {
        let s = self.server.status(&["-X", "MKCOL", &self.dav(key)]);
        assert_eq!(s, 201, "MKCOL {key} on {}", self.name);
    }

    /// WebDAV MOVE of a file or folder; moves it (and what is below it) in `want`.
    fn mv(&self, want: &mut Objects, from: &str, to: &str) {
        let dest = format!("Destination: {}", self.dav(to));
        let s = self
            .server
            .status(&["-X", "MOVE", "-H", &dest, &self.dav(from)]);
        assert!(
            s == 201 || s == 204,
            "MOVE {from} -> {to} on {} answered {s}",
            self.name
        );
        let below = format!("{from}/");
        let moved: Vec<(String, String)> = want
            .iter()
            .filter(|(k, _)| *k == from || k.starts_with(&below))
            .map(|(k, v)| (format!("{to}{}", &k[from.len()..]), v.clone()))
            .collect();
        want.retain(|k, _| k != from && !k.starts_with(&below));
        want.extend(moved);
    }

    /// An `aws` command with `admin`'s key.
    fn s3(&self) -> Command {
        self.server.aws(&self.key)
    }

    /// `aws s3 sync` of a local folder to the bucket's root.
    fn sync_up(&self, local: &Path) {
        run(self
            .s3()
            .args(["s3", "sync", "--only-show-errors"])
            .arg(local)
            .arg(format!("s3://{BUCKET}/")));
    }

    /// `aws s3 cp` of bytes; records the object in `want`.
    fn s3_put(&self, want: &mut Objects, key: &str, body: &[u8]) {
        let f = self.server.root.path().join("s3-put.tmp");
        std::fs::write(&f, body).expect("body");
        run(self
            .s3()
            .args(["s3", "cp", "--only-show-errors"])
            .arg(&f)
            .arg(format!("s3://{BUCKET}/{key}")));
        want.insert(key.to_string(), sha(body));
    }

    /// `aws s3 rm`; forgets the object in `want`.
    fn s3_rm(&self, want: &mut Objects, key: &str) {
        run(self
            .s3()
            .args(["s3", "rm", "--only-show-errors"])
            .arg(format!("s3://{BUCKET}/{key}")));
        want.remove(key);
    }

    /// `aws s3api head-object` as JSON.
    fn head(&self, key: &str) -> serde_json::Value {
        let out = run(self.s3().args([
            "s3api",
            "head-object",
            "--bucket",
            BUCKET,
            "--key",
            key,
            "--output",
            "json",
        ]));
        serde_json::from_slice(&out.stdout).expect("head-object JSON")
    }

    /// Keys and sizes of a full S3 listing (ListObjectsV2, every page).
    fn s3_sizes(&self) -> Sizes {
        let out = run(self.s3().args([
            "s3api",
            "list-objects-v2",
            "--bucket",
            BUCKET,
            "--output",
            "json",
            "--query",
            "Contents[].[Key, Size]",
        ]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("listing JSON");
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e[0].as_str().expect("key").to_string(),
                            e[1].as_u64().expect("size"),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Metadata and storage agree, usage has no drift and no upload is left half done.
    fn check_consistent(&self, objects: &Objects) {
        let stored = sizes(&self.dir()).expect("stable after convergence");
        let listed = self.s3_sizes();
        assert!(
            listed == stored,
            "{}: the S3 listing does not match the stored files:\n{}",
            self.name,
            diff("S3 listing", &listed, "storage", &stored)
        );
        assert!(stored.keys().eq(objects.keys()));
        let fsck = self.server.kura().arg("fsck").output().expect("fsck");
        let text = stdout(&fsck);
        assert!(
            text.contains("storage: no drift") && text.contains("usage: no drift"),
            "{}: kura fsck after replication:\n{text}",
            self.name
        );
        let tmp = tree(&self.server.data_dir().join("tmp"));
        if !tmp.is_empty() {
            let log = self.server.log();
            let notable: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            panic!(
                "{}: temporary leftovers {tmp:?}\nwarnings in its log:\n{}",
                self.name,
                notable.join("\n")
            );
        }
    }

    fn stop(&mut self) {
        self.server.stop();
    }

    fn kill9(&mut self) {
        self.server.kill9();
    }

    /// Starts the node again; its node id must not change.
    fn start_again(&mut self) {
        self.server.start_again();
        assert_eq!(node_id(&self.server), self.id, "node id changed at restart");
    }
}

/// Polls until every node's bucket folder has the same files with the same SHA-256 and every
/// backlog is 0; fails with a diff after `within`. Returns the common content.
fn wait_converged(nodes: &[&Node], within: Duration) -> Objects {
    let started = Instant::now();
    let mut hashes = Hashes::default();
    loop {
        let backlogs: Vec<i64> = nodes.iter().map(|n| n.backlog()).collect();
        let stored: Vec<Option<Sizes>> = nodes.iter().map(|n| sizes(&n.dir())).collect();
        if backlogs.iter().all(|b| *b == 0) && stored.iter().all(|s| s.is_some() && *s == stored[0])
        {
            let mut objects: Vec<Option<Objects>> =
                nodes.iter().map(|n| hashes.objects(&n.dir())).collect();
            if objects.iter().all(|o| o.is_some() && *o == objects[0]) {
                let objects = objects.swap_remove(0).expect("objects");
                println!(
                    "replication: {} nodes converged in {:.1} s; {} objects compared by listing and SHA-256",
                    nodes.len(),
                    started.elapsed().as_secs_f64(),
                    objects.len()
                );
                return objects;
            }
        }
        if started.elapsed() > within {
            let mut report = format!(
                "no convergence within {} s (backlogs {backlogs:?})\n",
                within.as_secs()
            );
            let first = stored[0].clone().unwrap_or_default();
            for (i, n) in nodes.iter().enumerate() {
                let mine = stored[i].clone().unwrap_or_default();
                report += &format!(
                    "--- {} ({} files) status: {:?}\n",
                    n.name,
                    mine.len(),
                    n.status()
                );
                if i > 0 {
                    let d = diff(nodes[0].name, &first, n.name, &mine);
                    if d.is_empty() {
                        let h0 = hashes.objects(&nodes[0].dir()).unwrap_or_default();
                        let hi = hashes.objects(&n.dir()).unwrap_or_default();
                        report += &diff(nodes[0].name, &h0, n.name, &hi);
                    } else {
                        report += &d;
                    }
                    report += "\n";
                }
            }
            for n in nodes {
                report += &format!("--- {} log:\n{}\n", n.name, tail(&n.server.log(), 30));
            }
            panic!("{report}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Two or three nodes, the rules between them, and a scratch folder for local files.
struct Cluster {
    nodes: Vec<Node>,
    /// (from, to, bidirectional)
    rules: Vec<(usize, usize, bool)>,
    scratch: tempfile::TempDir,
}

impl Index<usize> for Cluster {
    type Output = Node;
    fn index(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
}

impl IndexMut<usize> for Cluster {
    fn index_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }
}

impl Cluster {
    /// Starts `n` TLS nodes with `SETTINGS` overridden by `extra`.
    fn start_with(n: usize, extra: &[(&str, &str)]) -> Cluster {
        require("curl");
        require("aws");
        let mut env: Vec<(&str, &str)> = SETTINGS.to_vec();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k, v));
        }
        let nodes: Vec<Node> = NAMES[..n]
            .iter()
            .map(|&name| Node::start(name, &env))
            .collect();
        for (i, x) in nodes.iter().enumerate() {
            for y in &nodes[i + 1..] {
                assert_ne!(x.id, y.id, "two nodes share a node id");
            }
        }
        Cluster {
            nodes,
            rules: Vec::new(),
            scratch: tempfile::tempdir().expect("scratch"),
        }
    }

    fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    fn all(&self) -> Vec<&Node> {
        self.nodes.iter().collect()
    }

    /// `kura peer add` on `from` for `to`, pinned to `to`'s certificate, with `to`'s `repl` key.
    fn peer(&self, from: usize, to: usize) {
        let t = &self.nodes[to];
        self.nodes[from].kura(&[
            "peer",
            "add",
            t.name,
            "--endpoint",
            &t.server.url(""),
            "--access-key",
            &t.repl(self.nodes[from].name).id,
            "--secret-key",
            &t.repl(self.nodes[from].name).secret,
            "--ca-fingerprint",
            &t.fingerprint,
        ]);
    }

    /// `kura replicate BUCKET --to PEER [--bidirectional]` on `from`.
    fn replicate(&mut self, from: usize, to: usize, bidirectional: bool) {
        let mut args = vec!["replicate", BUCKET, "--to", NAMES[to]];
        if bidirectional {
            args.push("--bidirectional");
        }
        self.nodes[from].kura(&args);
        self.rules.push((from, to, bidirectional));
    }

    /// A one-way mirror `from` → `to`.
    fn one_way(&mut self, from: usize, to: usize) {
        self.peer(from, to);
        self.replicate(from, to, false);
    }

    /// Two-way sync: a bidirectional rule on each node toward the other.
    fn two_way(&mut self, x: usize, y: usize) {
        self.peer(x, y);
        self.peer(y, x);
        self.replicate(x, y, true);
        self.replicate(y, x, true);
    }

    /// Waits until every node shows exactly its rules and each rule's worker has reached its
    /// peer (`peer_node_id` is the peer's node id).
    fn wait_wired(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut pending = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                let st = n.status();
                let mut want: Vec<(String, bool)> = self
                    .rules
                    .iter()
                    .filter(|r| r.0 == i)
                    .map(|r| (NAMES[r.1].to_string(), r.2))
                    .collect();
                let mut got: Vec<(String, bool)> = st
                    .iter()
                    .map(|r| (r.peer.clone(), r.bidirectional))
                    .collect();
                want.sort();
                got.sort();
                assert_eq!(got, want, "rules of {} in peer status: {st:?}", n.name);
                for r in &st {
                    assert_eq!((r.bucket.as_str(), r.prefix.as_str()), (BUCKET, ""));
                    let peer = self.nodes.iter().find(|p| p.name == r.peer).expect("peer");
                    match &r.peer_node_id {
                        Some(id) => assert_eq!(
                            id, &peer.id,
                            "{} sees the wrong node id for {}",
                            n.name, r.peer
                        ),
                        None => pending.push(format!("{} -> {}: {r:?}", n.name, r.peer)),
                    }
                }
            }
            if pending.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replication workers did not reach their peers within 30 s:\n{}",
                pending.join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for convergence of all nodes and checks the result is exactly `want`.
    fn converge(&self, want: &Objects) -> Objects {
        let nodes = self.all();
        let got = wait_converged(&nodes, CONVERGE);
        let stray: Vec<&String> = got
            .keys()
            .filter(|k| is_conflict_copy(k) && !want.contains_key(*k))
            .collect();
        assert!(stray.is_empty(), "stray conflict copies: {stray:?}");
        assert!(
            got == *want,
            "the nodes agree, but not with what the test wrote:\n{}",
            diff("expected", want, "nodes", &got)
        );
        for n in &nodes {
            n.check_consistent(&got);
        }
        got
    }

    /// After convergence: nothing ships any more for a few seconds (no ping-pong) and the
    /// content stays `want`.
    fn settle(&self, want: &Objects) {
        let shipped = |c: &Cluster| -> Vec<i64> {
            c.nodes
                .iter()
                .map(|n| n.status().iter().map(|r| r.shipped).sum())
                .collect()
        };
        let before = shipped(self);
        std::thread::sleep(Duration::from_secs(5));
        let after = shipped(self);
        assert_eq!(
            before, after,
            "changes keep shipping after convergence (a replication loop?)"
        );
        self.converge(want);
    }
}

#[test]
fn one_way_mirror_of_1000_objects() {
    let mut c = Cluster::start(2);
    c.one_way(A, B);
    c.wait_wired();

    // 999 files through aws s3 sync (one empty, names with a space and accents, 200 MiB in
    // 25 parts) and one object with a content type and user metadata: 1,000 objects
    let up = c.scratch.path().join("up");
    for i in 0..996 {
        write_local(&up, &format!("set/d{}/f{i:04}.txt", i % 10), &small_body(i));
    }
    write_local(&up, "set/with space.txt", b"a name with a space");
    write_local(&up, "set/caf\u{e9} \u{fc}.txt", "accents".as_bytes());
    make_big(&up.join("big/big.bin"));
    let started = Instant::now();
    c[A].sync_up(&up);
    let tagged = c.scratch.path().join("tagged.dat");
    std::fs::write(&tagged, b"tagged object").expect("tagged");
    run(c[A]
        .s3()
        .args(["s3api", "put-object", "--bucket", BUCKET])
        .args([
            "--key",
            "meta/tagged.dat",
            "--content-type",
            "application/x-kura-test",
        ])
        .args(["--metadata", "colour=blue,origin=node-a", "--body"])
        .arg(&tagged));
    let mut want = local_objects(&up);
    want.insert("meta/tagged.dat".into(), sha(b"tagged object"));
    assert_eq!(want.len(), 1000);
    println!(
        "one-way mirror: 1,000 objects ({} MiB) written on node-a in {:.1} s",
        dir_bytes(&up) >> 20,
        started.elapsed().as_secs_f64()
    );
    c.converge(&want);
    println!(
        "one-way mirror: node-b identical {:.1} s after the first upload began",
        started.elapsed().as_secs_f64()
    );

    // the big object went multipart on node-a and arrived whole
    let big_a = c[A].head("big/big.bin");
    assert!(
        big_a["ETag"]
            .as_str()
            .unwrap_or_default()
            .ends_with("-25\""),
        "200 MiB in 8 MiB parts should have a 25-part ETag: {big_a}"
    );
    assert_eq!(c[B].head("big/big.bin")["ContentLength"], BIG);
    // content type, user metadata and modification time travel with the bytes
    let (ta, tb) = (c[A].head("meta/tagged.dat"), c[B].head("meta/tagged.dat"));
    assert_eq!(tb["ContentType"], "application/x-kura-test", "{tb}");
    assert_eq!(
        tb["Metadata"],
        serde_json::json!({"colour": "blue", "origin": "node-a"}),
        "{tb}"
    );
    assert_eq!(tb["LastModified"], ta["LastModified"], "mtime not kept");
    let (sa, sb) = (c[A].head("set/d3/f0013.txt"), c[B].head("set/d3/f0013.txt"));
    assert_eq!(sb["ContentType"], sa["ContentType"]);
    assert_eq!(sb["LastModified"], sa["LastModified"], "mtime not kept");

    let st = c[A].status();
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(st[0].backlog, 0);
    assert_eq!(st[0].last_error, None, "{st:?}");
    assert!(st[0].shipped >= 1000, "shipped {} < 1000", st[0].shipped);
    assert_eq!(st[0].peer_node_id.as_deref(), Some(c[B].id.as_str()));
    assert!(c[B].status().is_empty(), "node-b has no rule");
    // both sides stream: neither ever held the 200 MiB object in memory
    for n in [A, B] {
        let kib = c[n].server.vm_hwm_kib();
        println!("one-way mirror: {} peak RSS {} MiB", c[n].name, kib >> 10);
        assert!(kib < 190 << 10, "{} peaked at {kib} KiB", c[n].name);
    }
}

#[test]
fn edits_on_both_sides() {
    let mut c = Cluster::start(2);
    c.two_way(A, B);
    c.wait_wired();
    let mut want = Objects::new();
    for i in 0..20 {
        c[A].put(
            &mut want,
            &format!("seed-{i:02}"),
            format!("seed {i}").as_bytes(),
        );
    }
    c[A].mkcol("docs");
    c[A].mkcol("trash");
    for i in 0..4 {
        c[A].put(
            &mut want,
            &format!("docs/d{i}.txt"),
            format!("doc {i}").as_bytes(),
        );
        c[A].put(
            &mut want,
            &format!("trash/t{i}.txt"),
            format!("junk {i}").as_bytes(),
        );
    }
    c[B].put(&mut want, "from-b.txt", b"written on node-b");
    c.converge(&want);

    // both sides change different things at the same time, through WebDAV and S3
    let (a, b) = (&c[A], &c[B]);
    a.put(&mut want, "a-new.txt", b"created on a");
    b.put(&mut want, "b-new.txt", b"created on b");
    a.put(&mut want, "seed-00", b"seed 0 overwritten on a");
    b.put(&mut want, "seed-10", b"seed 10 overwritten on b");
    a.delete(&mut want, "seed-01");
    b.delete(&mut want, "seed-11");
    a.mv(&mut want, "seed-02", "seed-02-renamed-on-a");
    b.mv(&mut want, "seed-12", "seed-12-renamed-on-b");
    a.delete(&mut want, "trash");
    b.mv(&mut want, "docs", "docs-moved-on-b");
    a.s3_put(&mut want, "s3/from-a.txt", b"s3 put on a");
    b.s3_put(&mut want, "s3/from-b.txt", b"s3 put on b");
    a.s3_rm(&mut want, "seed-03");
    b.s3_rm(&mut want, "seed-13");
    c.converge(&want);

    // what arrived from the peer is edited again and travels back
    let (a, b) = (&c[A], &c[B]);
    b.put(&mut want, "a-new.txt", b"a's file, edited on b");
    a.delete(&mut want, "b-new.txt");
    a.put(
        &mut want,
        "seed-12-renamed-on-b",
        b"b's rename, edited on a",
    );
    b.mv(&mut want, "s3/from-a.txt", "s3/from-a-renamed-on-b.txt");
    c.converge(&want);
    assert!(!want.keys().any(|k| is_conflict_copy(k)));
    c.settle(&want);
}

#[test]
fn receiver_killed_mid_transfer() {
    let mut c = Cluster::start(2);
    c.one_way(A, B);
    c.wait_wired();
    let mut want = Objects::new();
    for i in 0..10 {
        c[A].put(
            &mut want,
            &format!("small-{i}"),
            format!("small {i}").as_bytes(),
        );
    }
    let big = c.scratch.path().join("big.bin");
    make_big(&big);
    let big_sha = sha_file(&big).expect("big");

    // node-a ships 200 MiB; node-b is killed once some of it is on its disk (temporary file or
    // multipart parts) and before it is complete; a transfer too quick to catch is tried again
    let mut caught = None;
    for attempt in 1..=3 {
        let key = format!("big-{attempt}.bin");
        let mut upload = c[A]
            .s3()
            .args(["s3", "cp", "--only-show-errors"])
            .arg(&big)
            .arg(format!("s3://{BUCKET}/{key}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("aws");
        want.insert(key.clone(), big_sha.clone());
        let arrived = c[B].dir().join(&key);
        let deadline = Instant::now() + Duration::from_secs(120);
        let in_flight = loop {
            let data = c[B].server.data_dir();
            let bytes = dir_bytes(&data.join("tmp")) + dir_bytes(&data.join("multipart"));
            if arrived.exists() {
                break None;
            }
            if bytes >= 16 << 20 {
                c[B].kill9();
                break Some(bytes);
            }
            assert!(
                Instant::now() < deadline,
                "{key} did not start to arrive on node-b: {:?}",
                c[A].status()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(upload.wait().expect("aws").success(), "upload to node-a");
        match in_flight {
            Some(bytes) if !arrived.exists() => {
                caught = Some((key, bytes));
                break;
            }
            Some(_) => c[B].start_again(),
            None => {}
        }
        println!("receiver kill: {key} arrived whole before the kill landed; again");
    }
    let (key, bytes) = caught.expect("could not kill node-b in the middle of a 200 MiB transfer");
    println!(
        "receiver kill: node-b killed with {} MiB of {key} in flight",
        bytes >> 20
    );
    let leftovers = !tree(&c[B].server.data_dir().join("tmp")).is_empty();

    // the sender notices and retries
    let deadline = Instant::now() + Duration::from_secs(30);
    while c[A].status()[0].last_error.is_none() {
        assert!(Instant::now() < deadline, "node-a reports no error");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    c[B].start_again();
    if leftovers {
        assert!(
            c[B].server
                .log()
                .contains("removed leftovers of interrupted uploads"),
            "{}",
            c[B].server.log()
        );
    }
    // never a partial object: absent, or complete
    let p = c[B].dir().join(&key);
    if p.exists() {
        assert_eq!(
            sha_file(&p).as_deref(),
            Some(big_sha.as_str()),
            "partial {key}"
        );
    }
    c.converge(&want);
    println!(
        "receiver kill: {} MiB of multipart staging left on node-b after convergence",
        dir_bytes(&c[B].server.data_dir().join("multipart")) >> 20
    );
}

#[test]
fn sender_killed_with_backlog() {
    let mut c = Cluster::start(2);
    c.one_way(A, B);
    c.wait_wired();
    let mut want = Objects::new();
    c[A].seed(&mut want, 5);
    c.converge(&want);

    // node-b is down while 200 objects (about 10 KiB each) are written on node-a, some of them
    // overwritten or deleted again
    c[B].stop();
    let up = c.scratch.path().join("backlog");
    for i in 0..200 {
        let body = format!("backlog object {i}\n").repeat(16 << 10 >> 5);
        write_local(&up, &format!("backlog/o{i:03}"), body.as_bytes());
    }
    c[A].sync_up(&up);
    want.extend(local_objects(&up));
    for i in 0..10 {
        c[A].put(
            &mut want,
            &format!("backlog/o{i:03}"),
            format!("again {i}").as_bytes(),
        );
        c[A].delete(&mut want, &format!("backlog/o{:03}", 100 + i));
    }
    c[A].delete(&mut want, "seed-0");
    let backlog = c[A].backlog();
    assert!(
        backlog >= 200,
        "backlog {backlog} after 200 changes to a stopped peer"
    );

    // kill -9 of the sender: the journal is durable
    c[A].kill9();
    let kept = c[A].backlog();
    println!("sender kill: backlog {backlog} before the kill, {kept} after");
    assert!(kept >= 200, "the journal lost entries in the kill: {kept}");
    c[B].start_again();
    c[A].start_again();

    // and once more while it works through the backlog, if that can be caught
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = c[A].backlog();
        if now > 0 && now < kept {
            c[A].kill9();
            println!("sender kill: killed again with {now} of {kept} entries left to ship");
            c[A].start_again();
            break;
        }
        if now == 0 {
            println!("sender kill: the backlog shipped before a second kill could land");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node-a does not ship: {:?}",
            c[A].status()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.converge(&want);
}

#[test]
fn peer_unreachable_then_catch_up() {
    let mut c = Cluster::start(2);
    c.one_way(A, B);
    c.wait_wired();
    let mut want = Objects::new();
    c[A].seed(&mut want, 6);
    c.converge(&want);

    c[B].stop();
    let down = Instant::now();
    for i in 0..30 {
        c[A].put(
            &mut want,
            &format!("while-down-{i:02}"),
            format!("new {i}").as_bytes(),
        );
    }
    c[A].put(&mut want, "seed-0", b"seed 0 changed while node-b was down");
    c[A].put(&mut want, "seed-1", b"seed 1 changed while node-b was down");
    c[A].delete(&mut want, "seed-2");
    c[A].delete(&mut want, "seed-3");

    // the status shows the backlog, the error and a growing lag
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        let st = c[A].status();
        if st[0].last_error.is_some() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "no last_error with the peer down: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(st[0].backlog >= 34, "backlog after 34 changes: {st:?}");
    std::thread::sleep(Duration::from_secs(6).saturating_sub(down.elapsed()));
    let st = c[A].status();
    println!("peer unreachable: node-a status {st:?}");
    assert!(st[0].backlog >= 34, "{st:?}");
    assert!(st[0].last_error.is_some(), "{st:?}");
    assert!(
        st[0].lag_seconds.is_some_and(|l| l >= 3.0),
        "lag with changes 6 s old: {st:?}"
    );
    // the admin API shows the same
    let (s, body) = api(&c[A].server, "GET", "/replication", None);
    assert_eq!(s, 200, "{body}");
    let rules: Vec<RuleStatus> = serde_json::from_str(&body).expect("replication JSON");
    assert_eq!(rules.len(), 1, "{body}");
    assert_eq!(
        (rules[0].peer.as_str(), rules[0].bucket.as_str()),
        (NAMES[B], BUCKET)
    );
    assert!(
        rules[0].backlog >= 34 && rules[0].last_error.is_some(),
        "{body}"
    );
    let (s, body) = api(&c[A].server, "GET", "/peers", None);
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains(NAMES[B]) && body.contains(&c[B].server.url("")),
        "{body}"
    );
    assert!(
        !body.contains(&c[B].repl(NAMES[A]).secret),
        "the peer's secret is shown: {body}"
    );

    c[B].start_again();
    let back = Instant::now();
    c.converge(&want);
    println!(
        "peer unreachable: down {:.1} s, caught up {:.1} s after it came back",
        (back - down).as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
    // shipped at least 6 s after they were written: the modification time is the writer's
    for key in ["while-down-00", "seed-0"] {
        let (ha, hb) = (c[A].head(key), c[B].head(key));
        assert_eq!(
            hb["LastModified"], ha["LastModified"],
            "mtime of {key} not kept"
        );
    }
    let st = c[A].status();
    assert_eq!(st[0].backlog, 0);
    assert_eq!(
        st[0].last_error, None,
        "error still shown after catching up: {st:?}"
    );
}

#[test]
fn conflict_same_key() {
    let mut c = Cluster::start(2);
    c.two_way(A, B);
    c.wait_wired();
    let mut want = Objects::new();
    c[A].put(&mut want, "doc.txt", b"v0: common ancestor");
    c[B].put(&mut want, "calm.txt", b"nobody touches this");
    c.converge(&want);

    // round 1: node-a writes first, node-b later, neither seeing the other
    c[B].stop();
    c[A].put(&mut want, "doc.txt", b"vA: written on node-a first");
    c[A].put(&mut want, "new.txt", b"nA: created on node-a first");
    c[A].stop();
    c[B].start_again();
    c[B].put(&mut want, "doc.txt", b"vB: written on node-b later");
    c[B].put(&mut want, "new.txt", b"nB: created on node-b later");
    c[A].start_again();
    // the later write wins everywhere; the other is kept as KEY.conflict1
    want.insert(
        "doc.txt.conflict1".into(),
        sha(b"vA: written on node-a first"),
    );
    want.insert(
        "new.txt.conflict1".into(),
        sha(b"nA: created on node-a first"),
    );
    c.converge(&want);

    // round 2, the other way round: node-a's later write wins; the loser takes the next free
    // number
    c[A].stop();
    c[B].put(&mut want, "doc.txt", b"vB2: written on node-b first");
    c[B].stop();
    c[A].start_again();
    c[A].put(&mut want, "doc.txt", b"vA2: written on node-a later");
    c[B].start_again();
    want.insert(
        "doc.txt.conflict2".into(),
        sha(b"vB2: written on node-b first"),
    );
    c.converge(&want);
    c.settle(&want);
}

#[test]
fn delete_versus_update() {
    let mut c = Cluster::start(2);
    c.two_way(A, B);
    c.wait_wired();
    let mut want = Objects::new();
    c[A].put(&mut want, "keep.txt", b"v0");
    c[A].put(&mut want, "other.txt", b"v0");
    c.converge(&want);

    // the delete comes first, the update later
    c[B].stop();
    let mut gone = want.clone();
    c[A].delete(&mut gone, "keep.txt");
    c[A].stop();
    c[B].start_again();
    c[B].put(
        &mut want,
        "keep.txt",
        b"updated on node-b after node-a deleted it",
    );
    c[A].start_again();
    c.converge(&want);

    // the update comes first, the delete later: the update still wins
    c[B].stop();
    c[A].put(
        &mut want,
        "other.txt",
        b"updated on node-a before node-b deleted it",
    );
    c[A].stop();
    c[B].start_again();
    let mut gone = want.clone();
    c[B].delete(&mut gone, "other.txt");
    c[A].start_again();
    c.converge(&want);
    c.settle(&want);
}

#[test]
fn chain_a_b_c() {
    let mut c = Cluster::start(3);
    c.one_way(A, B);
    // node-b → node-c through the admin API
    let (b, t) = (&c[B], &c[C]);
    let peer = serde_json::json!({
        "name": t.name,
        "endpoint": t.server.url(""),
        "access_key": t.repl(b.name).id,
        "secret_key": t.repl(b.name).secret,
        "ca_fingerprint": t.fingerprint,
    });
    let (s, body) = api(&b.server, "POST", "/peers", Some(&peer.to_string()));
    assert_eq!(s, 201, "{body}");
    // a peer that does not answer is refused, unless the caller says it is down for now
    let spare = r#"{"name":"spare","endpoint":"https://127.0.0.1:9","access_key":"x","secret_key":"spare-secret"}"#;
    let (s, body) = api(&b.server, "POST", "/peers", Some(spare));
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("cannot reach peer spare"), "{body}");
    let spare = r#"{"name":"spare","endpoint":"https://127.0.0.1:9","access_key":"x","secret_key":"spare-secret","check":false}"#;
    let (s, body) = api(&b.server, "POST", "/peers", Some(spare));
    assert_eq!(s, 201, "{body}");
    let (s, body) = api(&b.server, "DELETE", "/peers/spare", None);
    assert_eq!(s, 204, "{body}");
    let (s, body) = api(&b.server, "GET", "/peers", None);
    assert_eq!(s, 200, "{body}");
    assert!(body.contains(NAMES[C]) && !body.contains("spare"), "{body}");
    assert!(
        !body.contains(&t.repl(b.name).secret),
        "the peer's secret is shown: {body}"
    );
    let rule = format!(r#"{{"bucket":"{BUCKET}","peer":"{}"}}"#, NAMES[C]);
    let (s, body) = api(&b.server, "POST", "/replication", Some(&rule));
    assert_eq!(s, 201, "{body}");
    c.rules.push((B, C, false));
    c.wait_wired();

    let up = c.scratch.path().join("chain");
    for i in 0..50 {
        write_local(
            &up,
            &format!("chain/sub{}/o{i:02}", i % 3),
            &small_body(i + 1),
        );
    }
    c[A].sync_up(&up);
    let mut want = local_objects(&up);
    c[A].s3_put(&mut want, "top.txt", b"at the top");
    c.converge(&want);

    for i in 0..5 {
        c[A].s3_rm(&mut want, &format!("chain/sub{}/o{i:02}", i % 3));
    }
    for i in 10..13 {
        c[A].s3_put(
            &mut want,
            &format!("chain/sub{}/o{i:02}", i % 3),
            b"changed on a",
        );
    }
    c[A].delete(&mut want, "top.txt");
    c.converge(&want);
    let (ha, hc) = (c[A].head("chain/sub1/o10"), c[C].head("chain/sub1/o10"));
    assert_eq!(
        hc["LastModified"], ha["LastModified"],
        "mtime lost on the way"
    );
    assert_eq!(hc["ContentType"], ha["ContentType"]);
    assert!(c[C].status().is_empty());
}

#[test]
fn resync_and_reconcile_make_the_mirror_an_exact_copy() {
    let mut c = Cluster::start(2);
    // before any rule: node-a has 30 objects; node-b has strays and other bytes for 3 keys
    let mut want = Objects::new();
    let mut junk = Objects::new();
    for i in 0..30 {
        c[A].put(
            &mut want,
            &format!("o{i:02}"),
            format!("from a {i}").as_bytes(),
        );
    }
    for i in 0..3 {
        c[B].put(
            &mut junk,
            &format!("o{i:02}"),
            format!("drifted {i}").as_bytes(),
        );
        c[B].put(&mut junk, &format!("stray-{i}"), b"only on b");
    }
    c.one_way(A, B);
    c.wait_wired();
    let out = c[A].kura(&["replicate", BUCKET, "--resync", "--to", NAMES[B]]);
    println!("resync summary: {}", out.trim());
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1 && lines[0].contains(NAMES[B]),
        "one summary line per peer expected:\n{out}"
    );
    // done when the command returns
    let now = Hashes::default().objects(&c[B].dir()).expect("b");
    assert!(
        now == want,
        "after resync:\n{}",
        diff("node-a", &want, "node-b", &now)
    );
    c.converge(&want);

    // the periodic reconcile repairs drift behind the journal's back
    c[A].server
        .set_env("KURA_REPLICATION__RECONCILE_SECONDS", "3");
    c[A].stop();
    c[A].start_again();
    c[B].put(&mut junk, "stray-late", b"only on b, later");
    c[B].put(&mut junk, "o05", b"drifted later");
    c[B].delete(&mut junk, "o06");
    c.converge(&want);
}

#[test]
fn two_way_resync_merges() {
    let mut c = Cluster::start(2);
    let mut want = Objects::new();
    for i in 0..10 {
        c[A].put(
            &mut want,
            &format!("only-a-{i}"),
            format!("a {i}").as_bytes(),
        );
        c[B].put(
            &mut want,
            &format!("only-b-{i}"),
            format!("b {i}").as_bytes(),
        );
    }
    c[A].put(&mut want, "same.txt", b"the same bytes on both");
    c[B].put(&mut want, "same.txt", b"the same bytes on both");
    // two versions of one key with no known common base: the later wins everywhere (once
    // the peer has sent it back), the other is kept as a conflict copy
    let mut later = Objects::new();
    c[A].put(&mut later, "both.txt", b"older, on a");
    std::thread::sleep(Duration::from_millis(50));
    c[B].put(&mut later, "both.txt", b"newer, on b");
    later.insert("both.txt.conflict1".into(), sha(b"older, on a"));
    c.two_way(A, B);
    c.wait_wired();
    let out = c[A].kura(&["replicate", BUCKET, "--resync"]);
    println!("two-way resync summary: {}", out.trim());
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1 && lines[0].contains(NAMES[B]),
        "one summary line per peer expected:\n{out}"
    );
    let mut hashes = Hashes::default();
    for n in [A, B] {
        let mut now = hashes.objects(&c[n].dir()).expect("dir");
        now.retain(|k, _| !k.starts_with("both.txt"));
        assert!(
            now == want,
            "{} after a two-way resync:\n{}",
            c[n].name,
            diff("expected", &want, c[n].name, &now)
        );
    }
    want.extend(later);
    c.converge(&want);
}

#[test]
fn wrong_fingerprint_ships_nothing() {
    let mut c = Cluster::start(2);
    let (a, b) = (&c[A], &c[B]);
    let mut want = Objects::new();
    // pinned to another certificate (node-a's own), and not pinned (system roots)
    for (name, pin) in [
        ("wrong-pin", Some(a.fingerprint.as_str())),
        ("no-pin", None),
    ] {
        let add = |extra: &[&str]| {
            let mut cmd = a.server.kura();
            cmd.args(["peer", "add", name, "--endpoint", &b.server.url("")])
                .args([
                    "--access-key",
                    &b.repl(a.name).id,
                    "--secret-key",
                    &b.repl(a.name).secret,
                ])
                .args(extra);
            if let Some(fp) = pin {
                cmd.args(["--ca-fingerprint", fp]);
            }
            cmd.output().expect("kura peer add")
        };
        // the test request of `peer add` meets the wrong certificate and refuses the peer
        let out = add(&[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("cannot reach peer")
                && err.contains("certificate"),
            "peer add {name} with an unverifiable certificate: {err}"
        );
        println!("wrong pin: peer add {name} refused: {}", err.trim());
        // added anyway (--no-check), the worker must still ship nothing
        let out = add(&["--no-check"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = a.kura(&["peer", "list", "--json"]);
    assert!(
        listed.contains("wrong-pin") && listed.contains("no-pin"),
        "{listed}"
    );
    assert!(
        !listed.contains(&b.repl(a.name).secret),
        "peer list shows the secret: {listed}"
    );
    let mut rules = Vec::new();
    for name in ["wrong-pin", "no-pin"] {
        let out = a
            .server
            .kura()
            .args(["replicate", BUCKET, "--to", name])
            .output()
            .expect("kura");
        assert!(
            !out.status.success(),
            "replicate --to {name} was not checked"
        );
        a.kura(&["replicate", BUCKET, "--to", name, "--no-check"]);
        rules.push(name);
    }
    a.put(
        &mut want,
        "secret.txt",
        b"must not reach an unverified peer",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = a.status();
        assert_eq!(st.len(), rules.len(), "{st:?}");
        if st.iter().all(|r| r.last_error.is_some()) {
            for r in &st {
                println!("wrong pin: {} -> {:?}", r.peer, r.last_error);
                assert!(r.backlog >= 1 && r.peer_node_id.is_none(), "{r:?}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error for an unverified peer: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        tree(&b.dir()).is_empty(),
        "an object reached a peer whose certificate does not match"
    );
    for name in &rules {
        a.kura(&["replicate", BUCKET, "--to", name, "--stop"]);
    }
    for name in ["wrong-pin", "no-pin"] {
        a.kura(&["peer", "remove", name]);
    }
    let listed = a.kura(&["peer", "list", "--json"]);
    assert!(
        !listed.contains("pin"),
        "removed peers still listed: {listed}"
    );
    assert!(a.status().is_empty());

    // the right pin: resync ships what was written meanwhile, the journal what follows
    c.one_way(A, B);
    c.wait_wired();
    c[A].kura(&["replicate", BUCKET, "--resync", "--to", NAMES[B]]);
    c[A].put(&mut want, "after.txt", b"written once the pin is right");
    c.converge(&want);
}

/// `kura peer add` on node-a for node-b with the given endpoint and credentials; its output.
fn try_peer_add(a: &Node, endpoint: &str, key: &str, secret: &str, pin: Option<&str>) -> Output {
    let mut cmd = a.server.kura();
    cmd.args(["peer", "add", "probe", "--endpoint", endpoint])
        .args(["--access-key", key, "--secret-key", secret]);
    if let Some(fp) = pin {
        cmd.args(["--ca-fingerprint", fp]);
    }
    cmd.output().expect("kura peer add")
}

/// The error of a command that must fail.
fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn peers_and_rules_are_checked_when_added() {
    let mut c = Cluster::start(2);
    let (a, b) = (&c[A], &c[B]);
    let base = b.server.url("");
    let (key, secret, pin) = (
        &b.repl(a.name).id,
        &b.repl(a.name).secret,
        Some(b.fingerprint.as_str()),
    );

    // the WebDAV address instead of the S3 endpoint
    let err = refused(&try_peer_add(a, &format!("{base}/dav/"), key, secret, pin));
    assert!(err.contains("not below a path like /dav/"), "{err}");
    // a fingerprint for plain http
    let http = base.replacen("https://", "http://", 1);
    let err = refused(&try_peer_add(a, &http, key, secret, pin));
    assert!(err.contains("plain http"), "{err}");
    // a wrong secret and an unknown key: the peer's own answer, on one line
    for (k, s, code) in [
        (key.as_str(), "wrong-secret", "SignatureDoesNotMatch"),
        (
            "KURANOSUCHKEY0000000",
            secret.as_str(),
            "InvalidAccessKeyId",
        ),
    ] {
        let err = refused(&try_peer_add(a, &base, k, s, pin));
        assert!(
            err.contains("refused the access key or secret") && err.contains("403"),
            "{err}"
        );
        println!("peer add with a bad key: {}", err.trim());
        let last = err.trim().lines().last().unwrap_or_default();
        assert!(
            last.contains(code) && last.contains("refused the access key or secret"),
            "the reason is not on one line: {err}"
        );
    }
    assert!(
        !a.kura(&["peer", "list"]).contains("probe"),
        "a refused peer was stored"
    );

    // a good peer; rules for a bucket the peer lacks and a name S3 cannot carry are refused
    c.peer(A, B);
    let a = &c[A];
    for bucket in ["lonely", "Bad_Name"] {
        assert_eq!(
            a.server
                .status(&["-X", "MKCOL", &a.server.dav(&format!("{bucket}/"))]),
            201
        );
    }
    let out = a
        .server
        .kura()
        .args(["replicate", "lonely", "--to", NAMES[B]])
        .output()
        .expect("kura");
    let err = refused(&out);
    assert!(err.contains("has no bucket lonely"), "{err}");
    let out = a
        .server
        .kura()
        .args(["replicate", "Bad_Name", "--to", NAMES[B]])
        .output()
        .expect("kura");
    let err = refused(&out);
    assert!(err.contains("S3 bucket names"), "{err}");
    c.replicate(A, B, false);
    c.wait_wired();

    // peer status: a table with a header, one line per rule
    let table = c[A].kura(&["peer", "status"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "PEER",
            "BUCKET",
            "DIRECTION",
            "BACKLOG",
            "LAG",
            "SHIPPED",
            "SKIPPED",
            "WAITING",
            "LAST",
            "ERROR"
        ]
    );
    assert!(
        lines[1].starts_with(NAMES[B]) && lines[1].contains(BUCKET),
        "{table}"
    );
}

#[test]
fn a_refused_key_backs_off_instead_of_hammering_the_peer() {
    let mut c = Cluster::start(2);
    c.one_way(A, B);
    c.wait_wired();
    let mut want = Objects::new();
    c[A].put(&mut want, "before.txt", b"shipped with the right key");
    c.converge(&want);

    // the key is revoked on node-b: every request of node-a is now a failed login there
    let (a, b) = (&c[A], &c[B]);
    b.kura(&["key", "revoke", &b.repl(a.name).id]);
    let refusals = || b.server.log().matches("status=403").count();
    let before = refusals();
    a.server.put(&format!("{BUCKET}/after.txt"), b"refused");
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = loop {
        if let Some(e) = a.status().first().and_then(|r| r.last_error.clone()) {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no error after the key was revoked"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("refused: {err}");
    assert!(
        err.contains("refused our credentials")
            && err.contains("InvalidAccessKeyId")
            && err.contains("next try in 900s")
            && !err.contains('\n'),
        "{err}"
    );
    // with retry_max_seconds = 2 a plain backoff would try 4 more times in these 8 s
    let first = refusals();
    std::thread::sleep(Duration::from_secs(8));
    let later = refusals();
    assert!(
        first - before <= 2 && later == first,
        "node-a kept trying with a refused key: {} refusals, then {} more in 8 s",
        first - before,
        later - first
    );
    let table = a.kura(&["peer", "status"]);
    assert!(
        table.contains("refused our credentials") && table.lines().count() == 2,
        "{table}"
    );
}

/// Rows of `table` in a node's database whose `column` is `value` (read with Python's
/// sqlite3, as the server holds no lock that keeps a reader out).
fn db_rows(node: &Node, table: &str, column: &str, value: &str) -> i64 {
    let db = node.server.data_dir().join("kura.db");
    assert!(db.exists(), "no database at {}", db.display());
    let out = run(Command::new("python3").args([
        "-c",
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
         print(c.execute(f'SELECT COUNT(*) FROM {sys.argv[2]} WHERE {sys.argv[3]} = ?', (sys.argv[4],)).fetchone()[0])",
        db.to_str().expect("utf8"),
        table,
        column,
        value,
    ]));
    stdout(&out).trim().parse().expect("a count")
}

/// `put-object` of bytes with `who`'s credentials (and `metadata`, `k=v,...`, if any).
fn put_as(node: &Node, who: &S3Key, key: &str, body: &[u8], metadata: Option<&str>) {
    let src = node.server.root.path().join("put-as.tmp");
    std::fs::write(&src, body).expect("body");
    let mut cmd = node.server.aws(who);
    cmd.args(["s3api", "put-object", "--bucket", BUCKET, "--key", key])
        .arg("--body")
        .arg(&src);
    if let Some(m) = metadata {
        cmd.args(["--metadata", m]);
    }
    run(&mut cmd);
}

/// Owner, group and mode of a bucket path, from the admin API.
fn perms(node: &Node, key: &str) -> (String, String, String) {
    let (s, body) = api(
        &node.server,
        "GET",
        &format!("/permissions?path=/{BUCKET}/{key}"),
        None,
    );
    assert_eq!(s, 200, "permissions of {key} on {}: {body}", node.name);
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let f = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    (f("owner"), f("group"), f("mode"))
}

#[test]
fn an_ordinary_writer_cannot_forge_a_shipment() {
    require("aws");
    require("python3");
    let n = Node::start(NAMES[B], &SETTINGS);
    // the very user peers ship as, but with an ordinary key: its headers make no shipment
    let plain = n.server.s3_key_for("repl");
    let forged = "kura-origin=kura-evil,kura-from=kura-evil,kura-mtime=4102444800000,\
                  kura-etag=0123456789abcdef0123456789abcdef-7,kura-mode=mirror";
    let put = |who: &S3Key, key: &str| {
        put_as(&n, who, key, b"not from any peer", Some(forged));
    };
    put(&plain, "forged.txt");
    let h = n.head("forged.txt");
    let md5 = hex::encode(<md5::Md5 as Digest>::digest(b"not from any peer"));
    assert_eq!(
        h["ETag"].as_str(),
        Some(format!("\"{md5}\"").as_str()),
        "an ordinary writer chose the ETag: {h}"
    );
    let modified = h["LastModified"].as_str().unwrap_or_default();
    assert!(
        !modified.contains("2100"),
        "an ordinary writer chose the modification time: {h}"
    );
    assert_eq!(
        h["Metadata"]["kura-origin"].as_str(),
        Some("kura-evil"),
        "kept as the user's own metadata: {h}"
    );
    assert_eq!(
        db_rows(&n, "replica_marks", "node", "kura-evil"),
        0,
        "bookkeeping rows for an invented peer"
    );
    assert_eq!(db_rows(&n, "entries", "origin", "kura-evil"), 0);

    // the same request signed with a peer key is a shipment: the test tells them apart
    put(n.repl(NAMES[A]), "shipped.txt");
    let h = n.head("shipped.txt");
    assert_eq!(
        h["ETag"].as_str(),
        Some("\"0123456789abcdef0123456789abcdef-7\""),
        "{h}"
    );
    assert!(
        h["LastModified"]
            .as_str()
            .unwrap_or_default()
            .contains("2100"),
        "{h}"
    );
    assert!(h["Metadata"].get("kura-origin").is_none(), "{h}");
    assert_eq!(db_rows(&n, "replica_marks", "node", "kura-evil"), 1);

    // the admin API makes peer keys too; a bad peer name or an unknown user makes none
    let make_key = |peer: &str, user: &str| {
        let body = format!(r#"{{"user":"{user}"}}"#);
        api(
            &n.server,
            "POST",
            &format!("/peers/{peer}/keys"),
            Some(&body),
        )
    };
    let (s, body) = make_key("node-x", "repl");
    assert_eq!(s, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (v["peer"].as_str(), v["user"].as_str()),
        (Some("node-x"), Some("repl"))
    );
    let id = v["access_key_id"].as_str().expect("id").to_string();
    assert_eq!(db_rows(&n, "peer_keys", "key_id", &id), 1);
    let (s, body) = make_key("no%20such", "repl");
    assert_eq!(s, 400, "{body}");
    let (s, body) = make_key("node-x", "nobody");
    assert_eq!(s, 404, "{body}");
    assert_eq!(
        db_rows(&n, "peer_keys", "peer", "node-x"),
        1,
        "a refused request bound a key"
    );
}

/// The attack: a peer key's user may write another's file (666) in a folder it may not change
/// (755), so it cannot delete, re-create or chmod it; a shipment naming itself as owner with
/// mode 600 took the file over and locked its owner out. The bytes land, the attributes stay.
#[test]
fn a_shipment_cannot_take_over_a_file_its_user_may_only_write() {
    require("aws");
    let n = Node::start(NAMES[B], &SETTINGS);
    n.kura(&["user", "add", "ann", "--group", GROUP]);
    let ann = n.server.s3_key_for("ann");
    put_as(&n, &ann, "anns/notes.txt", b"ann's notes", None);
    n.kura(&["chmod", "755", &format!("/{BUCKET}/anns")]);
    n.kura(&["chmod", "666", &format!("/{BUCKET}/anns/notes.txt")]);
    let etag = n.head("anns/notes.txt")["ETag"]
        .as_str()
        .expect("ETag")
        .trim_matches('"')
        .to_string();
    let meta = format!(
        "kura-origin=kura-evil,kura-from=kura-evil,kura-mtime=4102444800000,\
         kura-base={etag},kura-mode=sync,kura-owner=repl,kura-perm=600"
    );
    put_as(
        &n,
        n.repl(NAMES[A]),
        "anns/notes.txt",
        b"repl's now",
        Some(&meta),
    );
    let h = n.head("anns/notes.txt");
    let md5 = hex::encode(<md5::Md5 as Digest>::digest(b"repl's now"));
    assert_eq!(
        h["ETag"].as_str(),
        Some(format!("\"{md5}\"").as_str()),
        "the shipped bytes (repl may write the file) did not land: {h}"
    );
    assert_eq!(
        perms(&n, "anns/notes.txt"),
        ("ann".into(), GROUP.into(), "666".into()),
        "a shipment gave ann's file the owner and mode its peer key's user chose"
    );
}

#[test]
fn owner_group_and_mode_travel_with_a_shipment() {
    let mut c = Cluster::start(2);
    for n in [A, B] {
        c[n].kura(&["user", "add", "ann", "--group", GROUP]);
    }
    // zed exists on node-a only: on node-b the peer key's user stands in
    c[A].kura(&["user", "add", "zed", "--group", GROUP]);
    let ann = c[A].server.s3_key_for("ann");
    let zed = c[A].server.s3_key_for("zed");
    put_as(&c[A], &ann, "secret.txt", b"ann's eyes only", None);
    put_as(&c[A], &zed, "zed.txt", b"zed's", None);
    c[A].kura(&["chmod", "600", &format!("/{BUCKET}/secret.txt")]);
    c[A].kura(&["chmod", "640", &format!("/{BUCKET}/zed.txt")]);
    c.one_way(A, B);
    c.wait_wired();
    c[A].kura(&["replicate", BUCKET, "--resync"]);
    assert_eq!(
        perms(&c[B], "secret.txt"),
        ("ann".into(), GROUP.into(), "600".into()),
        "a 600 file of ann's on node-a"
    );
    assert_eq!(
        perms(&c[B], "zed.txt"),
        ("repl".into(), GROUP.into(), "640".into()),
        "a user missing on node-b falls back to the peer key's user"
    );
    let table = c[B].kura(&["peer", "status"]);
    assert!(
        table.contains("user zed is unknown here; repl stands in") && table.contains("zed.txt"),
        "node-b's peer status does not report the missing owner:\n{table}"
    );
    // repl may not read it there, as on node-a
    let repl_b = c[B].server.s3_key_for("repl");
    let out = c[B]
        .server
        .aws(&repl_b)
        .args(["s3", "cp", &format!("s3://{BUCKET}/secret.txt"), "-"])
        .output()
        .expect("aws");
    assert!(
        !out.status.success(),
        "node-b lets repl read a 600 file of ann's"
    );
    // an update of ann's file still arrives (replaced through repl's rights on the folder)
    // and keeps owner and mode
    put_as(&c[A], &ann, "secret.txt", b"ann's eyes only, v2", None);
    let mut want = Objects::new();
    want.insert("secret.txt".into(), sha(b"ann's eyes only, v2"));
    want.insert("zed.txt".into(), sha(b"zed's"));
    c.converge(&want);
    assert_eq!(
        perms(&c[B], "secret.txt"),
        ("ann".into(), GROUP.into(), "600".into())
    );
    // a chmod or chown alone (bytes and time unchanged) travels too: it used to be neither
    // journaled nor applied over the same version
    for n in [A, B] {
        c[n].kura(&["user", "add", "bea", "--group", GROUP]);
    }
    c[A].kura(&["chmod", "640", &format!("/{BUCKET}/secret.txt")]);
    c[A].kura(&["chown", "bea", &format!("/{BUCKET}/zed.txt")]);
    let t = Instant::now();
    let want_b = [
        (
            "secret.txt",
            ("ann".to_string(), GROUP.to_string(), "640".to_string()),
        ),
        (
            "zed.txt",
            ("bea".to_string(), GROUP.to_string(), "640".to_string()),
        ),
    ];
    while want_b.iter().any(|(k, p)| perms(&c[B], k) != *p) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "node-b after a chmod and a chown on node-a: {:?} {:?}",
            perms(&c[B], "secret.txt"),
            perms(&c[B], "zed.txt")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    c.converge(&want);
}

/// A WebDAV LOCK (exclusive, an hour) of `key` on `node` as admin; its token.
fn lock(node: &Node, key: &str) -> String {
    let out = node.server.curl_admin(&[
        "-X",
        "LOCK",
        "-H",
        "Depth: 0",
        "-H",
        "Timeout: Second-3600",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "--data-binary",
        r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>editor</D:owner></D:lockinfo>"#,
        &node.dav(key),
    ]);
    let head = stdout(&out);
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    assert_eq!(status, "200", "LOCK {key}: {head}");
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("lock-token")
                .then(|| v.trim().trim_matches(['<', '>']).to_string())
        })
        .expect("Lock-Token")
}

/// Waits until `node`'s bucket holds exactly `want`; fails with a diff after `within`.
fn wait_for(node: &Node, want: &Objects, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let got = local_objects(&node.dir());
        if got == *want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}:\n{}",
            diff("expected", want, node.name, &got)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_locked_file_waits_alone_and_arrives_once_unlocked() {
    let mut c = Cluster::start_with(2, &[("KURA_REPLICATION__RETRY_MAX_SECONDS", "2")]);
    let mut want = Objects::new();
    c.one_way(A, B);
    c.wait_wired();
    c[A].put(&mut want, "locked.txt", b"first version");
    c.converge(&want);
    // someone edits locked.txt on node-b through WebDAV and holds a lock on it
    let token = lock(&c[B], "locked.txt");
    let mut b_now = want.clone();
    c[A].put(&mut want, "locked.txt", b"second version");
    for i in 0..5 {
        c[A].put(&mut b_now, &format!("after-{i}.txt"), &small_body(i));
        want.insert(format!("after-{i}.txt"), sha(&small_body(i)));
    }
    // the rest of the rule arrives at once; the locked file is left alone
    wait_for(
        &c[B],
        &b_now,
        Duration::from_secs(20),
        "the rule stalled behind a locked file",
    );
    assert_eq!(
        std::fs::read(c[B].dir().join("locked.txt")).expect("locked.txt"),
        b"first version",
        "a shipment overwrote a WebDAV-locked file"
    );
    let st = c[A].status();
    assert_eq!(st[0].waiting, 1, "{st:?}");
    let why = st[0].waiting_on.clone().unwrap_or_default();
    assert!(
        why.contains("locked.txt") && why.contains("423"),
        "peer status does not say what waits and why: {why}"
    );
    assert_eq!(st[0].backlog, 0, "the journal is shipped past it: {st:?}");
    let table = c[A].kura(&["peer", "status"]);
    assert!(table.contains("locked.txt"), "{table}");
    // still refused a few retries later, never dropped
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(c[A].status()[0].waiting, 1);
    // the lock goes: the waiting version arrives without any new change or resync
    c[B].kura(&["lock", "break", &token]);
    c.converge(&want);
    let st = c[A].status();
    assert_eq!(
        (st[0].waiting, st[0].waiting_on.clone()),
        (0, None),
        "{st:?}"
    );
}

/// Over quota on the receiver: the file waits (reported), the others pass, and it arrives
/// once there is room; never dropped.
#[test]
fn an_over_quota_change_waits_and_arrives_when_there_is_room() {
    let mut c = Cluster::start_with(2, &[("KURA_REPLICATION__RETRY_MAX_SECONDS", "2")]);
    c.one_way(A, B);
    c.wait_wired();
    c[B].kura(&["quota", "set", GROUP, "--bytes", "1MiB"]);
    let mut want = Objects::new();
    let big = vec![7u8; 3 << 20];
    let mut b_now = Objects::new();
    c[A].put(&mut want, "big.bin", &big);
    for i in 0..3 {
        c[A].put(&mut b_now, &format!("small-{i}.txt"), &small_body(i));
        want.insert(format!("small-{i}.txt"), sha(&small_body(i)));
    }
    wait_for(
        &c[B],
        &b_now,
        Duration::from_secs(20),
        "the rule stalled behind an over-quota file",
    );
    let st = c[A].status();
    assert_eq!(st[0].waiting, 1, "{st:?}");
    let why = st[0].waiting_on.clone().unwrap_or_default();
    assert!(why.contains("big.bin"), "{why}");
    println!("over quota: node-a status {st:?}");
    c[B].kura(&["quota", "set", GROUP, "--bytes", "none"]);
    c.converge(&want);
    assert_eq!(c[A].status()[0].waiting, 0);
}

#[test]
fn a_resync_pull_obeys_the_folder_rules() {
    let mut c = Cluster::start(2);
    c[A].kura(&["user", "add", "ann", "--group", GROUP]);
    // on node-a, ann's private folder; node-b has a file at that place and one elsewhere
    assert_eq!(
        c[A].server.status(&["-X", "MKCOL", &c[A].dav("private")]),
        201
    );
    c[A].kura(&["chown", "ann", &format!("/{BUCKET}/private")]);
    c[A].kura(&["chmod", "700", &format!("/{BUCKET}/private")]);
    let mut on_b = Objects::new();
    c[B].s3_put(&mut on_b, "private/planted.txt", b"planted from node-b");
    c[B].s3_put(&mut on_b, "open/shared.txt", b"for everyone");
    c.two_way(A, B);
    c.wait_wired();
    let out = c[A].kura(&["replicate", BUCKET, "--resync"]);
    assert!(
        out.contains("pulled 1") && out.contains("refused 1"),
        "resync summary: {out}"
    );
    let here = local_objects(&c[A].dir());
    assert!(
        here.contains_key("open/shared.txt"),
        "the allowed pull did not happen: {here:?}"
    );
    assert!(
        !here.contains_key("private/planted.txt"),
        "a resync pull wrote into ann's 700 folder: {here:?}"
    );
}

/// The tags of `key` on `node`, as aws-cli reads them ("k=v", sorted).
fn tags_on(node: &Node, key: &str) -> Vec<String> {
    let out = run(node.s3().args([
        "s3api",
        "get-object-tagging",
        "--bucket",
        BUCKET,
        "--key",
        key,
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tagging JSON");
    let mut t: Vec<String> = v["TagSet"]
        .as_array()
        .expect("TagSet")
        .iter()
        .map(|t| {
            format!(
                "{}={}",
                t["Key"].as_str().unwrap_or(""),
                t["Value"].as_str().unwrap_or("")
            )
        })
        .collect();
    t.sort();
    t
}

/// Tags and a description set on node-a arrive on node-b with the bytes, and a later change
/// of the tags alone ships too.
#[test]
fn tags_and_description_travel_with_a_shipment() {
    let mut c = Cluster::start(2);
    c.one_way(A, B);
    c.wait_wired();
    let src = c[A].server.root.path().join("tagged.tmp");
    std::fs::write(&src, b"tagged bytes").expect("body");
    run(c[A].s3().args([
        "s3api",
        "put-object",
        "--bucket",
        BUCKET,
        "--key",
        "doc.txt",
        "--body",
        src.to_str().expect("utf8"),
        "--tagging",
        "project=kura&note=caf%C3%A9",
    ]));
    let body = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:K="urn:kura:props"><D:set><D:prop><K:description>Relevé trimestriel</K:description></D:prop></D:set></D:propertyupdate>"#;
    let out = c[A].server.curl_admin(&[
        "-X",
        "PROPPATCH",
        "--data-binary",
        body,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &c[A].dav("doc.txt"),
    ]);
    assert_eq!(crate::common::code(&out), 207);
    let mut want = Objects::new();
    want.insert("doc.txt".into(), sha(b"tagged bytes"));
    c.converge(&want);
    let deadline = Instant::now() + Duration::from_secs(60);
    let propfind = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:K="urn:kura:props"><D:prop><K:description/></D:prop></D:propfind>"#;
    loop {
        let out = c[B].server.curl_admin(&[
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
            "--data-binary",
            propfind,
            &c[B].dav("doc.txt"),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if tags_on(&c[B], "doc.txt") == vec!["note=café", "project=kura"]
            && text.contains("Relevé trimestriel")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node-b: {:?} {text}",
            tags_on(&c[B], "doc.txt")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // a change of the tags alone is a change to ship
    run(c[A].s3().args([
        "s3api",
        "put-object-tagging",
        "--bucket",
        BUCKET,
        "--key",
        "doc.txt",
        "--tagging",
        "TagSet=[{Key=status,Value=final}]",
    ]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while tags_on(&c[B], "doc.txt") != vec!["status=final"] {
        assert!(
            Instant::now() < deadline,
            "node-b: {:?}",
            tags_on(&c[B], "doc.txt")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Cluster {
    /// Outbound-only `puller`: it reaches `reachable` (`peer add --pull`), which knows it by
    /// name only (`peer add` without an endpoint: no address, never contacted); a two-way
    /// rule on each side.
    fn pull_pair(&mut self, puller: usize, reachable: usize) {
        let k = self.nodes[reachable].repl(self.nodes[puller].name);
        let key = S3Key {
            id: k.id.clone(),
            secret: k.secret.clone(),
        };
        self.pull_pair_with(puller, reachable, &key);
    }

    /// `pull_pair` with `key`, a peer key the reachable node made for the puller, given to
    /// `peer add` as docs/replication.md says: the secret in a file (`--secret-key-file`),
    /// never on the command line. Returns what `kura replicate` printed on the reachable node.
    fn pull_pair_with(&mut self, puller: usize, reachable: usize, key: &S3Key) -> String {
        let name = self.nodes[puller].name;
        self.nodes[reachable].kura(&["peer", "add", name]);
        let t = &self.nodes[reachable];
        let secret = self.scratch.path().join(format!("secret-{name}.txt"));
        std::fs::write(&secret, format!("{}\n", key.secret)).expect("secret file");
        self.nodes[puller].kura(&[
            "peer",
            "add",
            t.name,
            "--endpoint",
            &t.server.url(""),
            "--access-key",
            &key.id,
            "--secret-key-file",
            secret.to_str().expect("path"),
            "--ca-fingerprint",
            &t.fingerprint,
            "--pull",
        ]);
        self.replicate(puller, reachable, true);
        let said =
            self.nodes[reachable].kura(&["replicate", BUCKET, "--to", name, "--bidirectional"]);
        self.rules.push((reachable, puller, true));
        said
    }
}

/// A GET of the journal feed signed by botocore's SigV4 (`key`'s credentials): status and
/// body.
fn feed_get(node: &Node, key: &S3Key, query: &str) -> (u16, String) {
    let url = node
        .server
        .url(&format!("/api/replication/v1/journal?{query}"));
    let script = "import sys, requests\n\
from botocore.auth import S3SigV4Auth\n\
from botocore.awsrequest import AWSRequest\n\
from botocore.credentials import Credentials\n\
url, ak, sk, ca = sys.argv[1:5]\n\
r = AWSRequest(method='GET', url=url)\n\
S3SigV4Auth(Credentials(ak, sk), 's3', 'us-east-1').add_auth(r)\n\
resp = requests.get(url, headers=dict(r.headers), verify=ca)\n\
print(resp.text)\n\
print(resp.status_code)\n";
    let out = run(Command::new("python3")
        .args(["-c", script, &url, &key.id, &key.secret])
        .arg(node.server.cert()));
    let text = stdout(&out);
    let (body, status) = text.trim_end().rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

/// node-a cannot be reached (node-b has no address for it); it pushes its changes and pulls
/// node-b's over its own connections, and both sides converge: listings, SHA-256, owners
/// and modes, with edits, deletes and a conflict on both sides.
#[test]
fn an_outbound_only_node_pushes_and_pulls() {
    let mut c = Cluster::start(2);
    for n in [A, B] {
        c[n].kura(&["user", "add", "ann", "--group", GROUP]);
    }
    c.pull_pair(A, B);
    c.wait_wired();
    let peers = c[B].kura(&["peer", "list", "--json"]);
    assert!(
        !peers.contains("127.0.0.1"),
        "node-b has an address for node-a: {peers}"
    );
    let mut want = Objects::new();
    c[A].seed(&mut want, 5);
    for i in 0..5 {
        c[B].put(&mut want, &format!("from-b-{i}"), &small_body(i));
    }
    c.converge(&want);

    // edits, deletes, moves and S3 writes on both sides
    let (a, b) = (&c[A], &c[B]);
    a.put(&mut want, "seed-0", b"seed 0 changed on a");
    b.put(&mut want, "seed-1", b"seed 1 changed on b");
    b.delete(&mut want, "seed-2");
    a.delete(&mut want, "from-b-0");
    b.mv(&mut want, "from-b-1", "from-b-1-moved-on-b");
    b.s3_put(&mut want, "s3/from-b.txt", b"s3 put on b");
    a.s3_rm(&mut want, "seed-3");
    c.converge(&want);

    // owner and mode of a version written on the reachable side reach the puller
    let ann = c[B].server.s3_key_for("ann");
    put_as(&c[B], &ann, "ann.txt", b"ann's v1", None);
    c[B].kura(&["chmod", "640", &format!("/{BUCKET}/ann.txt")]);
    put_as(&c[B], &ann, "ann.txt", b"ann's v2", None);
    want.insert("ann.txt".into(), sha(b"ann's v2"));
    c.converge(&want);
    for key in ["ann.txt", "seed-1", "seed-0"] {
        assert_eq!(
            perms(&c[A], key),
            perms(&c[B], key),
            "owner, group and mode of {key} differ"
        );
    }
    assert_eq!(
        perms(&c[A], "ann.txt"),
        ("ann".into(), GROUP.into(), "640".into())
    );

    // the same key changed on both sides: last writer wins, the loser is kept on both
    c[B].put(&mut Objects::new(), "seed-4", b"seed 4, node-b's edit");
    std::thread::sleep(Duration::from_millis(20));
    c[A].put(&mut want, "seed-4", b"seed 4, node-a's later edit");
    let got = wait_converged(&c.all(), CONVERGE);
    assert_eq!(got.get("seed-4"), want.get("seed-4"), "the later edit lost");
    for (k, v) in &got {
        if is_conflict_copy(k) {
            assert_eq!(v, &sha(b"seed 4, node-b's edit"), "conflict copy {k}");
            want.insert(k.clone(), v.clone());
        }
    }
    c.converge(&want);

    // a file locked on the puller: node-b's change of it waits there alone, then arrives
    let token = lock(&c[A], "seed-1");
    let mut a_now = want.clone();
    c[B].put(
        &mut want,
        "seed-1",
        b"seed 1, changed on b while locked on a",
    );
    c[B].put(&mut a_now, "after-lock.txt", b"behind the locked key");
    want.insert("after-lock.txt".into(), sha(b"behind the locked key"));
    wait_for(
        &c[A],
        &a_now,
        Duration::from_secs(20),
        "the pull stalled behind a file locked on the puller",
    );
    let st = c[A].status();
    assert_eq!(st[0].waiting, 1, "{st:?}");
    let why = st[0].waiting_on.clone().unwrap_or_default();
    assert!(why.contains("seed-1") && why.contains("pull"), "{why}");
    c[A].kura(&["lock", "break", &token]);
    c.converge(&want);
    assert_eq!(c[A].status()[0].waiting, 0);
    c.settle(&want);
    let st = c[B].status();
    assert_eq!(
        st[0].backlog, 0,
        "node-b's rule follows node-a's cursor: {st:?}"
    );
    assert!(
        !c[B].server.log().contains("replication: shipping failed"),
        "node-b tried to reach node-a"
    );
}

/// The feed is a peer key's only, for a bucket replicated to that peer; hostile queries
/// change nothing.
#[test]
fn the_journal_feed_refuses_all_but_its_peer() {
    require("python3");
    let mut c = Cluster::start(2);
    c.pull_pair(A, B);
    c.wait_wired();
    let b = &c[B];
    let a_id = c[A].id.clone();
    let ok = format!("bucket={BUCKET}&after=0&node={a_id}");
    let (s, body) = feed_get(b, b.repl(NAMES[A]), &ok);
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("feed JSON");
    assert!(v["entries"].is_array(), "{v}");
    // an ordinary user's key, even admin's
    let (s, body) = feed_get(b, &b.key, &ok);
    assert_eq!(s, 403, "admin's key read the journal: {body}");
    // another peer's key: no rule replicates the bucket to node-c
    let (s, body) = feed_get(b, b.repl(NAMES[C]), &ok);
    assert_eq!(s, 403, "a peer without a rule read the journal: {body}");
    // a forged signature
    let forged = S3Key {
        id: b.repl(NAMES[A]).id.clone(),
        secret: "not-the-secret".into(),
    };
    let (s, body) = feed_get(b, &forged, &ok);
    assert_eq!(s, 403, "a forged signature read the journal: {body}");
    // unsigned
    let out = b.server.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &b.server.url(&format!("/api/replication/v1/journal?{ok}")),
    ]);
    assert_ne!(stdout(&out), "200", "an unsigned request read the journal");
    // bad parameters
    let peer = b.repl(NAMES[A]);
    for q in [
        format!("bucket={BUCKET}&after=-1&node={a_id}"),
        format!("bucket={BUCKET}&node={a_id}"),
        format!("bucket=..&after=0&node={a_id}"),
        format!("bucket={BUCKET}&after=0&node=evil%20node"),
        format!("bucket={BUCKET}&after=0&node={a_id}&limit=100000"),
        format!("bucket={BUCKET}&after=0&node={a_id}&x=1"),
    ] {
        let (s, body) = feed_get(b, peer, &q);
        assert_eq!(s, 400, "{q}: {body}");
    }
    // a wrong node id in a refused request did not stick
    let peers = b.kura(&["peer", "list", "--json"]);
    assert!(peers.contains(&a_id), "{peers}");
}

#[test]
fn an_sse_c_file_is_reported_and_never_shipped() {
    let mut c = Cluster::start(2);
    c.one_way(A, B);
    c.wait_wired();
    // an object under its S3 client's own key (SSE-C), then a plain one after it in the journal
    let key_file = c.scratch.path().join("client.key");
    std::fs::write(&key_file, [9u8; 32]).expect("key");
    let body = c.scratch.path().join("body");
    std::fs::write(&body, b"KNOWN-PATTERN sealed by the client's key").expect("body");
    run(c[A]
        .s3()
        .args([
            "s3api",
            "put-object",
            "--bucket",
            BUCKET,
            "--key",
            "ssec.bin",
        ])
        .args(["--sse-customer-algorithm", "AES256", "--sse-customer-key"])
        .arg(format!("fileb://{}", key_file.display()))
        .arg("--body")
        .arg(&body));
    run(c[A]
        .s3()
        .args([
            "s3api",
            "put-object",
            "--bucket",
            BUCKET,
            "--key",
            "after.txt",
            "--body",
        ])
        .arg(&body));
    // the plain one arrives: the SSE-C one, before it, was passed over, not retried for ever
    let deadline = Instant::now() + CONVERGE;
    while !(c[B].dir().join("after.txt").exists() && c[A].backlog() == 0) {
        assert!(
            Instant::now() < deadline,
            "the journal stalls behind an SSE-C file"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !c[B].dir().join("ssec.bin").exists(),
        "an SSE-C file was shipped"
    );
    let log = c[A].server.log();
    assert!(
        log.contains("not replicated") && log.contains("ssec.bin"),
        "not reported: {}",
        tail(&log, 20)
    );
}

/// Delta transfer of large files (its own file: the same cluster, other tests).
mod delta;

/// Logging at debug (`RUST_LOG=debug`) on both sides of a shipment writes neither the peer
/// key's secret nor a signature: the S3 signer (reqsign) and s3s are held at info.
#[test]
fn nodes_logging_at_debug_log_no_peer_secret() {
    let mut c = Cluster::start_with(2, &[("RUST_LOG", "debug")]);
    c.one_way(A, B);
    c.wait_wired();
    let mut want = Objects::new();
    c[A].put(&mut want, "logged.txt", b"shipped while both log at debug");
    c.converge(&want);
    let secret = c[B].repl(c[A].name).secret.clone();
    for n in [A, B] {
        let log = c[n].server.log();
        assert!(log.contains("DEBUG"), "{} does not log at debug", c[n].name);
        assert!(
            !log.contains(&secret),
            "{} logs the peer key's secret",
            c[n].name
        );
        assert!(
            !log.contains("Signature="),
            "{} logs a request signature",
            c[n].name
        );
    }
}

/// Finding F6: on the reachable node of a pull pair, alice's private (600) file. With an
/// ordinary user's peer key it cannot travel (the peer key's user may not read it there): it
/// waits, and `kura peer status` says why and what to do. With the setup docs/replication.md
/// gives (the reachable node's peer key for the puller belongs to an administrator there) it
/// arrives, with its owner and mode. Also finding F8: the secret goes in a file, and the
/// reachable node's `kura replicate` sends the operator to the puller for the resync.
#[test]
fn a_private_file_travels_by_pull_with_an_administrators_peer_key() {
    for admin in [false, true] {
        let mut c = Cluster::start(2);
        for n in [A, B] {
            c[n].kura(&["user", "add", "alice", "--group", GROUP]);
        }
        let key = if admin {
            c[B].kura(&["user", "add", "peers", "--admin"]);
            peer_key(&c[B].server, NAMES[A], "peers")
        } else {
            let k = c[B].repl(NAMES[A]);
            S3Key {
                id: k.id.clone(),
                secret: k.secret.clone(),
            }
        };
        let said = c.pull_pair_with(A, B, &key);
        assert!(
            said.contains("on node-a") && said.contains("--resync"),
            "the reachable node's advice: {said}"
        );
        c.wait_wired();
        let alice = c[B].server.s3_key_for("alice");
        put_as(&c[B], &alice, "alice600.txt", b"alice v1", None);
        c[B].kura(&["chmod", "600", &format!("/{BUCKET}/alice600.txt")]);
        put_as(&c[B], &alice, "alice600.txt", b"alice's eyes only", None);
        let mut want = Objects::new();
        c[B].put(&mut want, "open.txt", b"anyone may read this");
        if !admin {
            // it waits on node-a, and the status says why and what would let it through
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let st = c[A].status();
                let on = st
                    .iter()
                    .find_map(|r| r.waiting_on.clone())
                    .unwrap_or_default();
                if on.contains("alice600.txt") && on.contains("administrator") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node-a's status does not say why alice600.txt waits: {st:?}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            let table = c[A].kura(&["peer", "status"]);
            assert!(table.contains("may not read this file"), "{table}");
            continue;
        }
        want.insert("alice600.txt".into(), sha(b"alice's eyes only"));
        c.converge(&want);
        assert_eq!(
            perms(&c[A], "alice600.txt"),
            ("alice".into(), GROUP.into(), "600".into()),
            "alice's private file on the puller"
        );
        assert_eq!(perms(&c[A], "alice600.txt"), perms(&c[B], "alice600.txt"));
        assert_eq!(perms(&c[A], "open.txt"), perms(&c[B], "open.txt"));
        for n in [A, B] {
            let st = c[n].status();
            assert!(st.iter().all(|r| r.waiting == 0), "{}: {st:?}", c[n].name);
        }
    }
}

/// Finding F8: the puller's peer goes away, the rule records why, and the peer comes back:
/// the first successful contact (an empty pull) clears the error, with nothing to pull.
#[test]
fn a_peer_back_clears_the_last_error_without_a_change() {
    let mut c = Cluster::start(2);
    c.pull_pair(A, B);
    c.wait_wired();
    c[B].stop();
    let error = |c: &Cluster| c[A].status().iter().find_map(|r| r.last_error.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while error(&c).is_none() {
        assert!(Instant::now() < deadline, "no error while node-b is down");
        std::thread::sleep(Duration::from_millis(300));
    }
    c[B].start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(e) = error(&c) {
        assert!(
            Instant::now() < deadline,
            "node-b is back, idle pulls succeed, and node-a still shows: {e}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
