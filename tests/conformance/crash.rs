//! Crash safety: kill -9 in the middle of large uploads leaves no partial file and no drift.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{fsck_clean, group_bucket, require, run, tree, Server, ADMIN_PW};

const GIB: u64 = 1 << 30;

fn hrefs(server: &Server) -> Vec<String> {
    let out = server
        .curl_admin(&["-X", "PROPFIND", "-H", "Depth: 1", &server.dav("cb/")])
        .stdout;
    let text = String::from_utf8_lossy(&out);
    let mut v: Vec<String> = text
        .split("<D:href>")
        .skip(1)
        .filter_map(|s| s.split("</D:href>").next())
        .filter(|h| *h != "/dav/cb/")
        .map(|h| h.trim_start_matches("/dav/cb/").to_string())
        .collect();
    v.sort();
    v
}

fn etag(server: &Server, path: &str) -> String {
    let out = server.curl_admin(&["-I", &server.dav(path)]).stdout;
    String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("etag:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn temp_bytes(server: &Server) -> Vec<u64> {
    std::fs::read_dir(server.data_dir().join("tmp"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_during_uploads_leaves_no_partial_file_and_no_leftovers() {
    require("curl");
    let mut server = Server::plain();
    // a bucket whose group has a quota, so the usage counters are exercised too
    run(server.kura().args(["group", "add", "cg"]));
    run(server
        .kura()
        .args(["bucket", "create", "cb", "--group", "cg"]));
    run(server
        .kura()
        .args(["quota", "set", "cg", "--bytes", "5GiB"]));
    assert_eq!(server.put("cb/doc.txt", b"old version"), 201);
    let old_etag = etag(&server, "cb/doc.txt");

    // a new 1 GiB file and a 1 GiB overwrite, both slowed so the kill lands mid-transfer
    let uploads: Vec<_> = ["cb/new.bin", "cb/doc.txt"]
        .iter()
        .map(|name| {
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "head -c {GIB} /dev/zero | curl -sS --limit-rate 40M -u admin:{ADMIN_PW} -T - '{}'",
                    server.dav(name)
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("upload")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sizes = temp_bytes(&server);
        if sizes.len() == 2 && sizes.iter().all(|s| *s > 100 << 20) {
            println!(
                "crash: killing the server with uploads at {:?} bytes",
                sizes
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "uploads did not progress: {sizes:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill9();
    for mut u in uploads {
        let status = u.wait().expect("curl");
        assert!(
            !status.success(),
            "an upload claimed success although the server died"
        );
    }
    assert_eq!(
        temp_bytes(&server).len(),
        2,
        "the kill left no temporary files to sweep?"
    );

    server.start_again();
    assert!(
        temp_bytes(&server).is_empty(),
        "temporary leftovers after start"
    );
    assert!(
        server
            .log()
            .contains("removed leftovers of interrupted uploads"),
        "{}",
        server.log()
    );
    assert_eq!(
        server.status(&["-I", &server.dav("cb/new.bin")]),
        404,
        "partial new file visible"
    );
    assert_eq!(
        server.get("cb/doc.txt"),
        b"old version",
        "overwrite damaged the old version"
    );
    assert_eq!(etag(&server, "cb/doc.txt"), old_etag);
    let stored = tree(&server.files_dir().join("cb"));
    assert_eq!(stored, vec!["doc.txt".to_string()]);
    assert_eq!(hrefs(&server), stored, "metadata rows do not match storage");
    let fsck = run(server.kura().arg("fsck"));
    assert!(
        String::from_utf8_lossy(&fsck.stdout).contains("no drift"),
        "usage drift after the crash"
    );
    let usage =
        String::from_utf8_lossy(&run(server.kura().args(["usage", "cg"])).stdout).into_owned();
    assert!(usage.contains("cg\t11\t"), "usage after the crash: {usage}");
}

/// A small deterministic generator, seeded per run (the seed is printed to replay a failure).
pub struct Lcg(pub u64);

impl Lcg {
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A seed from the clock unless `KURA_TEST_SEED` names one.
pub fn seed() -> u64 {
    std::env::var("KURA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// A server with the bucket `crash` and `crash_writers.py`'s log of acknowledged writes: the
/// harness of the two tests below.
struct Writers {
    server: Server,
    log: String,
}

const WRITERS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/conformance/crash_writers.py"
);

impl Writers {
    fn new() -> Writers {
        Writers::with_env(&[])
    }

    /// The harness on a server started with `env`.
    fn with_env(env: &[(&str, &str)]) -> Writers {
        require("python3");
        let server = Server::start_with(false, env);
        group_bucket(&server, "kg", "crash", None);
        let log = server.root.path().join("writes.jsonl");
        let log = log.to_str().expect("utf8").to_string();
        Writers { server, log }
    }

    /// Sixteen clients writing for `seconds` in round `round`.
    fn start(&self, seed: u64, round: usize, seconds: &str) -> std::process::Child {
        let port = self.server.port.to_string();
        Command::new("python3")
            .args([
                WRITERS,
                "--port",
                &port,
                "--log",
                &self.log,
                "--seconds",
                seconds,
            ])
            .args([
                "--seed",
                &format!("{seed}-{round}"),
                "--round",
                &round.to_string(),
            ])
            .spawn()
            .expect("writers")
    }

    /// After a restart: how many interrupted commits the start resolved, once every name's
    /// bytes, length and ETag are checked against the acknowledged writes and `kura fsck`
    /// finds no drift; `label` names the round in messages.
    fn check(&self, round: usize, label: &str) -> usize {
        let server = &self.server;
        let log_text = server.log();
        let hit = log_text
            .matches("resolved a commit interrupted by a stop")
            .count();
        let port = server.port.to_string();
        let out = Command::new("python3")
            .args([WRITERS, "--verify", "--port", &port, "--log", &self.log])
            .output()
            .expect("verify");
        let report = String::from_utf8_lossy(&out.stdout);
        println!(
            "round {round} ({label}): journals resolved at start {hit}; {}",
            report.trim()
        );
        assert!(
            out.status.success(),
            "round {round}: clients see rows and bytes that disagree: {report}\n{}\n{log_text}",
            String::from_utf8_lossy(&out.stderr)
        );
        fsck_clean(server);
        hit
    }
}

/// Issue 25: sixteen clients overwrite, move onto and copy onto the same few names while the
/// server dies, over many rounds: by SIGKILL at a random instant, or by the test hook in the
/// window between the storage step and the COMMIT. After every restart each name's bytes,
/// length and ETag agree, hold a body that was sent, and are never older than an acknowledged
/// write; tmp/ is empty and `kura fsck` is clean.
#[test]
fn kill_at_any_instant_keeps_rows_and_bytes_together() {
    kill_rounds(Writers::new(), 12);
}

/// With `durable_commits = false` nothing is fsynced (a power cut may lose writes), but a kill
/// of the process loses nothing: the page cache outlives it, so the same rounds hold.
#[test]
fn kills_without_fsync_keep_rows_and_bytes_together() {
    kill_rounds(Writers::with_env(&[("KURA_DURABLE_COMMITS", "false")]), 6);
}

/// `rounds` kills of `w`'s server under writers, half of them by the hook in the commit window.
fn kill_rounds(mut w: Writers, rounds: usize) {
    let seed = seed();
    println!("crash consistency: seed {seed} (KURA_TEST_SEED={seed} replays the kill instants)");
    let mut rng = Lcg(seed);
    let (mut resolved, mut hooked) = (0, 0);
    for round in 0..rounds {
        let hook = round % 2 == 1;
        if hook {
            // the server dies in its Nth journaled commit, right before the COMMIT
            w.server.stop();
            let n = 5 + rng.below(40);
            w.server
                .set_env("KURA_TEST_CRASH_AFTER_STEPS", &n.to_string());
            w.server.start_again();
        }
        let mut writers = w.start(seed, round, "8");
        if hook {
            assert!(
                w.server.exits_within(Duration::from_secs(30)),
                "the crash hook never fired:\n{}",
                w.server.log()
            );
            hooked += 1;
        } else {
            std::thread::sleep(Duration::from_millis(800 + rng.below(2000)));
            w.server.kill9();
        }
        assert!(writers.wait().expect("writers").success());
        w.server.set_env("KURA_TEST_CRASH_AFTER_STEPS", "");
        w.server.start_again();
        let left: Vec<_> = std::fs::read_dir(w.server.data_dir().join("tmp"))
            .expect("tmp")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        resolved += w.check(round, if hook { "hook" } else { "SIGKILL" });
        assert!(left.is_empty(), "round {round}: tmp/ holds {left:?}");
    }
    println!(
        "crash consistency: {rounds} rounds, {hooked} kills in the commit window by the hook, \
         {resolved} interrupted commits resolved at start"
    );
    assert!(
        resolved >= hooked,
        "every hooked kill leaves a journal to resolve"
    );
}

/// A clean stop (SIGTERM) while many writes commit: the commit in flight, whose storage steps
/// ran when the runtime stopped, is undone at the next start, so clients see rows and bytes
/// that agree and `kura fsck` finds no drift (its journal once went with the process).
#[test]
fn a_stop_while_writes_commit_keeps_rows_and_bytes_together() {
    let seed = seed();
    println!("stop consistency: seed {seed} (KURA_TEST_SEED={seed} replays the stop instants)");
    let mut rng = Lcg(seed);
    let mut w = Writers::new();
    let mut resolved = 0;
    for round in 0..8 {
        let mut writers = w.start(seed, round, "6");
        std::thread::sleep(Duration::from_millis(800 + rng.below(2000)));
        w.server.stop();
        assert!(writers.wait().expect("writers").success());
        w.server.start_again();
        resolved += w.check(round, "SIGTERM");
    }
    println!("stop consistency: 8 stops, {resolved} interrupted commits resolved at start");
}
