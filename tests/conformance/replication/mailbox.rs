//! Replication through an S3 mailbox (issue #21, item 2): node-a and node-b know nothing of
//! each other's address; each knows only a bucket on a third Kura, reached with an ordinary
//! user's key there. Changes travel both ways through it, sealed: the mailbox server's data
//! dir holds no run of a known file's bytes and no file name; an altered object is refused
//! and sent again; what both sides applied is removed. Every test ends comparing listings,
//! SHA-256, owners and modes on both nodes.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{
    lock, perms, put_as, sha, stdout, wait_for, Cluster, Node, Objects, A, B, BUCKET, GROUP, NAMES,
};
use crate::common::{require, run, tree, S3Key, Server};

/// The mailbox bucket on the third server, and the prefix the pair uses in it.
const MAILBOX: &str = "mbox";
const PREFIX: &str = "pair-ab";

/// A file whose bytes are easy to look for: a 48-byte line, repeated.
fn known_pattern() -> Vec<u8> {
    b"KURA-MAILBOX-KNOWN-PATTERN-0123456789-abcdefghij\n".repeat(8_000)
}

/// The third Kura: a bucket `mbox` and a user `courier` (member of its group) whose key the
/// two nodes use; its certificate fingerprint.
struct Mailbox {
    server: Server,
    key: S3Key,
    fingerprint: String,
}

impl Mailbox {
    fn start() -> Mailbox {
        let server = Server::start_with(true, &[]);
        run(server.kura().args(["group", "add", "couriers"]));
        run(server
            .kura()
            .args(["bucket", "create", MAILBOX, "--group", "couriers"]));
        run(server
            .kura()
            .args(["user", "add", "courier", "--group", "couriers"]));
        let key = server.s3_key_for("courier");
        let fingerprint = stdout(&run(server.kura().arg("fingerprint")))
            .trim()
            .to_string();
        Mailbox {
            server,
            key,
            fingerprint,
        }
    }

    /// The pair's folder in the mailbox server's storage.
    fn dir(&self) -> std::path::PathBuf {
        self.server.files_dir().join(MAILBOX).join(PREFIX)
    }

    /// What the pair's folder holds: relative paths.
    fn objects(&self) -> Vec<String> {
        tree(&self.dir())
    }

    /// `kura peer add PEER --mailbox ...` on `node`; the secret it made, if it made one.
    fn add_peer(&self, node: &Node, peer: &str, secret: Option<&str>) -> Option<String> {
        let url = format!("s3://{MAILBOX}/{PREFIX}");
        let endpoint = self.server.url("");
        let mut args = vec![
            "peer",
            "add",
            peer,
            "--endpoint",
            &endpoint,
            "--access-key",
            &self.key.id,
            "--secret-key",
            &self.key.secret,
            "--ca-fingerprint",
            &self.fingerprint,
            "--mailbox",
            &url,
        ];
        if let Some(s) = secret {
            args.extend(["--mailbox-secret", s]);
        }
        let out = node.kura(&args);
        out.lines()
            .find_map(|l| l.strip_prefix("mailbox secret: "))
            .map(str::to_string)
    }
}

/// node-a and node-b, each with a two-way rule toward the other through the mailbox `m`
/// and no address of the other; reads every second.
fn pair(m: &Mailbox) -> Cluster {
    require("curl");
    require("aws");
    let mut c = Cluster::start_with(2, &[("KURA_REPLICATION__MAILBOX_POLL_SECONDS", "1")]);
    let secret = m
        .add_peer(&c[A], NAMES[B], None)
        .expect("the first peer add prints the secret it made");
    assert!(secret.len() >= 43, "a short secret was made: {secret}");
    assert_eq!(m.add_peer(&c[B], NAMES[A], Some(&secret)), None);
    c.replicate(A, B, true);
    c.replicate(B, A, true);
    for (me, other) in [(A, B), (B, A)] {
        let peers = c[me].kura(&["peer", "list", "--json"]);
        let port = format!(":{}", c[other].server.port);
        assert!(
            !peers.contains(&port),
            "{} has an address of {}: {peers}",
            c[me].name,
            c[other].name
        );
        assert!(
            peers.contains(&format!("s3://{MAILBOX}/{PREFIX}/")),
            "{peers}"
        );
    }
    c.wait_wired();
    c
}

/// Whether `hay` holds any 32-byte run of `needle`.
fn holds_run(hay: &[u8], needle: &[u8]) -> bool {
    let runs: std::collections::HashSet<&[u8]> = needle.windows(32).collect();
    hay.windows(32).any(|w| runs.contains(w))
}

/// Every file below `dir` (the mailbox server's data dir and logs): none may hold a run of
/// `pattern` nor any of `names`.
fn assert_nothing_readable(dir: &Path, pattern: &[u8], names: &[&str]) {
    let files = tree(dir);
    assert!(!files.is_empty());
    let mut bytes = 0;
    for f in &files {
        let Ok(b) = std::fs::read(dir.join(f)) else {
            continue;
        };
        bytes += b.len();
        assert!(
            !holds_run(&b, pattern),
            "the mailbox server's {f} holds plaintext of a replicated file"
        );
        for n in names {
            assert!(
                !b.windows(n.len()).any(|w| w == n.as_bytes()),
                "the mailbox server's {f} holds the file name {n}"
            );
        }
    }
    println!(
        "mailbox: {} files, {bytes} bytes on the mailbox server hold no plaintext and no name",
        files.len()
    );
}

/// Owner, group and mode of every key equal on both nodes.
fn same_owners(c: &Cluster, want: &Objects) {
    for key in want.keys() {
        assert_eq!(
            perms(&c[A], key),
            perms(&c[B], key),
            "owner, group and mode of {key} differ"
        );
    }
}

/// Waits until the pair's folder in the mailbox holds nothing but the two hellos and the two
/// acknowledgements: every letter and body both sides applied is removed.
fn wait_collected(m: &Mailbox, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<String> = m
            .objects()
            .into_iter()
            .filter(|o| !o.ends_with("/hello") && !o.ends_with("/ack"))
            .collect();
        if left.is_empty() {
            let all = m.objects();
            assert_eq!(all.len(), 4, "{all:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "letters and bodies left in the mailbox after both sides applied them: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn two_nodes_that_cannot_reach_each_other_sync_through_a_mailbox() {
    let m = Mailbox::start();
    let c = pair(&m);
    for n in [A, B] {
        c[n].kura(&["user", "add", "ann", "--group", GROUP]);
    }
    let mut want = Objects::new();
    let pattern = known_pattern();
    c[A].put(&mut want, "secret-plans-q3.txt", &pattern);
    c[A].seed(&mut want, 5);
    c[A].mkcol("deep");
    c[A].put(&mut want, "deep/holiday-photo.jpg", b"a photo");
    for i in 0..5 {
        c[B].put(
            &mut want,
            &format!("from-b-{i}"),
            format!("b {i}").as_bytes(),
        );
    }
    // the same bytes twice: stored once in the mailbox
    c[B].put(&mut want, "same-as-secret.txt", &pattern);
    c.converge(&want);

    // overwrites, deletes and moves on both sides, S3 writes too
    c[A].put(&mut want, "seed-0", b"seed 0 changed on a");
    c[B].put(&mut want, "seed-1", b"seed 1 changed on b");
    c[B].delete(&mut want, "seed-2");
    c[A].delete(&mut want, "from-b-0");
    c[B].mv(&mut want, "from-b-1", "from-b-1-moved-on-b");
    c[B].s3_put(&mut want, "s3/from-b.txt", b"s3 put on b");
    c[A].s3_rm(&mut want, "seed-3");
    c.converge(&want);

    // owner and mode travel: ann's 640 file written on b
    let ann = c[B].server.s3_key_for("ann");
    put_as(&c[B], &ann, "ann.txt", b"ann's v1", None);
    c[B].kura(&["chmod", "640", &format!("/{BUCKET}/ann.txt")]);
    put_as(&c[B], &ann, "ann.txt", b"ann's v2", None);
    want.insert("ann.txt".into(), sha(b"ann's v2"));
    c.converge(&want);
    assert_eq!(
        perms(&c[A], "ann.txt"),
        ("ann".into(), GROUP.into(), "640".into())
    );

    // a file locked on b: a's change of it waits there alone, the next one arrives
    let token = lock(&c[B], "seed-1");
    let mut b_now = want.clone();
    c[A].put(
        &mut want,
        "seed-1",
        b"seed 1, changed on a while locked on b",
    );
    c[A].put(&mut b_now, "after-lock.txt", b"behind the locked key");
    want.insert("after-lock.txt".into(), sha(b"behind the locked key"));
    wait_for(
        &c[B],
        &b_now,
        Duration::from_secs(30),
        "the mailbox stalled behind a file locked on the reader",
    );
    let st = c[B].status();
    assert_eq!(st[0].waiting, 1, "{st:?}");
    c[B].kura(&["lock", "break", &token]);
    c.converge(&want);
    assert_eq!(c[B].status()[0].waiting, 0);
    c.settle(&want);
    same_owners(&c, &want);

    // what both applied is removed from the mailbox
    wait_collected(&m, Duration::from_secs(30));
    let names = [
        "secret-plans",
        "holiday-photo",
        "from-b-",
        "after-lock",
        "ann.txt",
        BUCKET,
    ];
    assert_nothing_readable(m.server.root.path(), &pattern, &names);
}

/// The last letter (highest seq) below `dir`.
fn last_letter(dir: &Path) -> std::path::PathBuf {
    let letters: Vec<String> = tree(dir)
        .into_iter()
        .filter(|p| p.contains("/j/"))
        .collect();
    dir.join(letters.iter().max().expect("a letter in the mailbox"))
}

/// Flips one byte in the middle of a file on the mailbox server's disk.
fn flip(path: &Path) {
    let mut b = std::fs::read(path).expect("object");
    let at = b.len() / 2;
    b[at] ^= 0x20;
    std::fs::write(path, b).expect("tampered object");
}

#[test]
fn an_altered_mailbox_object_is_refused_and_sent_again() {
    let m = Mailbox::start();
    let mut c = pair(&m);
    let mut want = Objects::new();
    c[A].put(&mut want, "before.txt", b"before the attack");
    c.converge(&want);

    // b is away: a's next letters wait in the mailbox, where its owner alters them
    c[B].stop();
    let pattern = known_pattern();
    c[A].put(&mut want, "body-altered.bin", &pattern);
    c[A].put(&mut want, "letter-altered.txt", b"a small file");
    let deadline = Instant::now() + Duration::from_secs(30);
    while c[A].backlog() > 0 {
        assert!(
            Instant::now() < deadline,
            "node-a did not write its letters"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    c[A].stop();
    let a_dir = m.dir().join(format!("node-{}", c[A].id));
    let body = tree(&a_dir)
        .into_iter()
        .filter(|p| p.contains("/b/"))
        .map(|p| a_dir.join(p))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a body in the mailbox");
    flip(&body);
    flip(&last_letter(&a_dir));

    // b refuses both (logged), applies neither, and asks for them again
    c[B].start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let refusals = c[B]
            .server
            .log()
            .matches("refused a letter from the mailbox")
            .count();
        if refusals >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node-b did not refuse the altered objects:\n{}",
            super::tail(&c[B].server.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = c[B].server.log();
    for why in ["a segment of the body fails to open", "fails to open"] {
        assert!(log.contains(why), "node-b's refusals do not say {why:?}");
    }
    let on_b = tree(&c[B].dir());
    assert!(
        !on_b.contains(&"body-altered.bin".to_string())
            && !on_b.contains(&"letter-altered.txt".to_string()),
        "node-b applied an altered object: {on_b:?}"
    );
    // a comes back, reads the request and sends both again, sealed afresh
    c[A].start_again();
    c.converge(&want);
    same_owners(&c, &want);
    assert!(c[A]
        .server
        .log()
        .contains("the peer refused a letter of ours"));
    wait_collected(&m, Duration::from_secs(30));
}

#[test]
fn a_mailbox_peer_is_checked_when_added() {
    let m = Mailbox::start();
    let c = Cluster::start(1);
    let a = &c[A];
    let url = format!("s3://{MAILBOX}/{PREFIX}");
    let endpoint = m.server.url("");
    let try_add = |extra: &[&str]| {
        let mut args = vec![
            "peer",
            "add",
            "node-b",
            "--endpoint",
            &endpoint,
            "--access-key",
            &m.key.id,
            "--ca-fingerprint",
            &m.fingerprint,
        ];
        args.extend(extra);
        a.server.kura().args(&args).output().expect("kura")
    };
    for (extra, why) in [
        (
            vec!["--secret-key", &m.key.secret, "--mailbox", "mbox/x"],
            "s3://",
        ),
        (
            vec!["--secret-key", &m.key.secret, "--mailbox", "s3://mbox/../x"],
            "prefix",
        ),
        (
            vec![
                "--secret-key",
                &m.key.secret,
                "--mailbox",
                &url,
                "--mailbox-secret",
                "short",
            ],
            "at least 32",
        ),
        (
            vec![
                "--secret-key",
                &m.key.secret,
                "--mailbox",
                "s3://no-such-bucket/x",
            ],
            "no bucket",
        ),
        (vec!["--secret-key", "wrong", "--mailbox", &url], "refused"),
    ] {
        let out = try_add(&extra);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{extra:?} was accepted");
        assert!(err.contains(why), "{extra:?}: {err}");
    }
    assert!(
        !a.kura(&["peer", "list"]).contains("node-b"),
        "a refused peer was recorded"
    );
    // a resync through a mailbox sends every file as a letter (the far side cannot be listed)
    let out = try_add(&["--secret-key", &m.key.secret, "--mailbox", &url]);
    assert!(out.status.success());
    a.kura(&["replicate", BUCKET, "--to", "node-b", "--bidirectional"]);
    a.server.put(&format!("{BUCKET}/x"), b"x");
    let text = a.kura(&["replicate", BUCKET, "--resync"]);
    assert!(text.contains("shipped 1"), "{text}");
    // nothing reaches the mailbox's server in the clear, and no reconcile lists it
    assert!(!a.server.log().contains("reconcile failed"));
}

/// node-a is killed (-9) while it stores a large body in the mailbox: after its restart the
/// change arrives whole, and nothing the crash left behind stays in the mailbox.
#[test]
fn a_node_killed_while_writing_to_the_mailbox_resumes() {
    let m = Mailbox::start();
    let mut c = pair(&m);
    let mut want = Objects::new();
    let big = c.scratch.path().join("big.bin");
    run(std::process::Command::new("sh").arg("-c").arg(format!(
        "head -c {} /dev/urandom > '{}'",
        48 << 20,
        big.display()
    )));
    let body = std::fs::read(&big).expect("big file");
    c[A].put(&mut want, "big.bin", &body);
    // killed once the mailbox server holds parts of the body's multipart upload
    let parts = m.server.data_dir().join("multipart");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tree(&parts).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !tree(&parts).is_empty(),
        "node-a never started storing the body"
    );
    c[A].kill9();
    c[A].start_again();
    c[A].put(&mut want, "after-restart.txt", b"written after the restart");
    c.converge(&want);
    same_owners(&c, &want);
    wait_collected(&m, Duration::from_secs(30));
}
