//! Replication through an S3 mailbox (issue #21, item 2): node-a and node-b know nothing of
//! each other's address; each knows only a bucket on a third Kura, reached with an ordinary
//! user's key there. Changes travel both ways through it, sealed: the mailbox server's data
//! dir holds no run of a known file's bytes and no file name; an altered object is refused
//! and sent again; what both sides applied is removed. Every test ends comparing listings,
//! SHA-256, owners and modes on both nodes.

use std::path::Path;
use std::time::{Duration, Instant};

mod recovery;

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
        // one argument: a secret may begin with '-'
        let given = secret.map(|s| format!("--mailbox-secret={s}"));
        if let Some(s) = &given {
            args.push(s);
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
    pair_with(m, &[])
}

/// `pair`, with more settings for both nodes.
fn pair_with(m: &Mailbox, extra: &[(&str, &str)]) -> Cluster {
    require("curl");
    require("aws");
    let mut env = vec![("KURA_REPLICATION__MAILBOX_POLL_SECONDS", "1")];
    env.extend_from_slice(extra);
    let mut c = Cluster::start_with(2, &env);
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

    // b refuses the body (an authentic letter names it) and ignores the altered last letter
    // (no authentic letter after it: it cannot tell it from a forged name), applies neither,
    // asks for the first again and complains about the second
    c[B].start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = c[B].server.log();
        if log.contains("refused a letter from the mailbox")
            && log.contains("fail to open (not letters of the peer")
        {
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
    let log = c[A].server.log();
    assert!(log.contains("the peer refused a letter of ours"));
    assert!(log.contains("a letter of ours fails to open in the mailbox"));
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
    // a resync through a mailbox sends a manifest of the rule's files (the far side cannot
    // be listed): it lists the one file
    let out = try_add(&["--secret-key", &m.key.secret, "--mailbox", &url]);
    assert!(out.status.success());
    a.kura(&["replicate", BUCKET, "--to", "node-b", "--bidirectional"]);
    a.server.put(&format!("{BUCKET}/x"), b"x");
    let text = a.kura(&["replicate", BUCKET, "--resync"]);
    assert!(text.contains("compared 1,"), "{text}");
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

impl Mailbox {
    /// The channel folder of `node` in the pair's folder (relative to the bucket), once it
    /// wrote a letter there: `pair-ab/node-<id>/<channel>`.
    fn channel_of(&self, node: &Node) -> String {
        let dir = self.dir().join(format!("node-{}", node.id));
        let channel = tree(&dir)
            .into_iter()
            .find_map(|p| p.split_once('/').map(|(c, _)| c.to_string()))
            .expect("a channel folder in the mailbox");
        format!("{PREFIX}/node-{}/{channel}", node.id)
    }

    /// Puts `body` as `key` in the mailbox bucket, as the mailbox's own user (its owner: no
    /// key of the pair).
    fn owner_put(&self, key: &str, body: &[u8]) {
        let f = self.server.root.path().join("owner-put.tmp");
        std::fs::write(&f, body).expect("body");
        run(self
            .server
            .aws(&self.key)
            .args([
                "s3api",
                "put-object",
                "--bucket",
                MAILBOX,
                "--key",
                key,
                "--body",
            ])
            .arg(&f));
    }

    /// Deletes `key` from the mailbox bucket, as its owner.
    fn owner_delete(&self, key: &str) {
        run(self.server.aws(&self.key).args([
            "s3api",
            "delete-object",
            "--bucket",
            MAILBOX,
            "--key",
            key,
        ]));
    }
}

/// Waits until `node`'s `kura peer status` shows an error containing `what`.
fn wait_status_error(node: &Node, what: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(e) = node.status().iter().find_map(|r| r.last_error.clone()) {
            if e.contains(what) {
                return e;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}'s peer status never showed {what:?}: {:?}",
            node.name,
            node.status()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Attack: the mailbox's owner (no key of the pair) puts junk objects named like far-ahead
/// letters in node-a's folder. Before the fix node-b took the gap as "letters removed",
/// moved its cursor to 500 and acknowledged it; node-a then collected its next letters
/// unread and they never reached b (both sides: backlog 0, no error). Now the junk is
/// ignored (shown in b's status), nothing is lost, and a forged huge number costs nothing.
#[test]
fn a_forged_far_ahead_letter_name_loses_nothing() {
    let m = Mailbox::start();
    let c = pair(&m);
    let mut want = Objects::new();
    c[A].put(&mut want, "before.txt", b"before the attack");
    c.converge(&want);
    let channel = m.channel_of(&c[A]);
    m.owner_put(&format!("{channel}/j/{:020}", 500), b"junk!");
    m.owner_put(&format!("{channel}/j/{:020}", 99_999_999_999i64), b"junk!");
    // b has polled the junk before a writes again
    let shown = wait_status_error(&c[B], "ignored 2 object", Duration::from_secs(30));
    assert!(shown.contains("fail to open"), "{shown}");
    for i in 1..=3 {
        c[A].put(
            &mut want,
            &format!("after-jump-{i}.txt"),
            format!("written after the junk, {i}").as_bytes(),
        );
    }
    c[B].put(&mut want, "from-b.txt", b"the other direction too");
    c.converge(&want);
    c.settle(&want);
    same_owners(&c, &want);
    let log = c[B].server.log();
    assert!(
        log.contains("fail to open (not letters of the peer: the cursor stays)"),
        "b did not log the junk"
    );
    // bounded work: no per-seq refusal for the 10^11 gap, no refusal at all (nothing was
    // missing between authentic letters)
    assert!(
        !log.contains("refused a letter from the mailbox")
            && !log.contains("refused letters missing"),
        "b refused letters over forged names:\n{}",
        super::tail(&log, 30)
    );
    assert!(log.len() < 2_000_000, "b's log grew to {} bytes", log.len());
    assert!(!c[A]
        .server
        .log()
        .contains("the peer has read further than this rule wrote"));
    // the status still names the junk while it sits there
    wait_status_error(&c[B], "fail to open", Duration::from_secs(30));
}

/// Attack: the mailbox's owner keeps a copy of an old, validly sealed letter of node-a (and
/// its body); later, once node-b's rule is made again (its cursor reset), deletes b's
/// acknowledgement and puts the old letter back. Before the fix b applied it and its file
/// silently rolled back. Now b refuses it as older than the version of a it holds.
#[test]
fn a_replayed_old_letter_rolls_nothing_back() {
    let m = Mailbox::start();
    let mut c = pair(&m);
    let mut want = Objects::new();
    c[A].put(&mut want, "before.txt", b"before the attack");
    c[A].put(&mut want, "gone.txt", b"deleted later");
    c.converge(&want);

    // b away: a's letter of r.txt (VERSION-ONE) waits in the mailbox, the owner copies it
    c[B].stop();
    c[A].put(&mut want, "r.txt", b"VERSION-ONE");
    let deadline = Instant::now() + Duration::from_secs(30);
    while c[A].backlog() > 0 {
        assert!(Instant::now() < deadline, "node-a did not write its letter");
        std::thread::sleep(Duration::from_millis(200));
    }
    let a_dir = m.dir().join(format!("node-{}", c[A].id));
    let saved: Vec<(String, Vec<u8>)> = tree(&a_dir)
        .into_iter()
        .filter(|p| p.contains("/j/") || p.contains("/b/"))
        .map(|p| {
            let bytes = std::fs::read(a_dir.join(&p)).expect("object");
            (format!("{PREFIX}/node-{}/{p}", c[A].id), bytes)
        })
        .collect();
    assert!(saved.len() >= 2, "{saved:?}");
    c[B].start_again();
    c.converge(&want);
    // newer versions: r.txt overwritten, gone.txt deleted, on a
    c[A].put(&mut want, "r.txt", b"VERSION-TWO-NEWER");
    c[A].delete(&mut want, "gone.txt");
    c.converge(&want);
    wait_collected(&m, Duration::from_secs(30));

    // b's rule made again while it is stopped (its cursor starts over), its ack deleted,
    // the old letter and body put back
    c[B].stop();
    c[B].kura(&["replicate", BUCKET, "--to", NAMES[A], "--stop"]);
    c[B].kura(&["replicate", BUCKET, "--to", NAMES[A], "--bidirectional"]);
    let b_channel = m.channel_of(&c[B]);
    m.owner_delete(&format!("{b_channel}/ack"));
    for (key, bytes) in &saved {
        m.owner_put(key, bytes);
    }
    c[B].start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    // b read the replayed letter: the seqs before it are refused as missing
    while !c[B]
        .server
        .log()
        .contains("refused letters missing from the mailbox")
    {
        assert!(
            Instant::now() < deadline,
            "b never judged the replayed letter:\n{}",
            super::tail(&c[B].server.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        std::fs::read(c[B].dir().join("r.txt")).expect("r.txt on b"),
        b"VERSION-TWO-NEWER",
        "the replayed letter rolled r.txt back on b"
    );
    assert!(c[B]
        .server
        .log()
        .contains("older than what this node holds from the peer"));
    c.converge(&want);
    c.settle(&want);
    same_owners(&c, &want);
}
