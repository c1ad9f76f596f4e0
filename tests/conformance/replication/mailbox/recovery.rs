//! A mailbox pair recovering from what keeps changes from applying at once (issue #21, items
//! 2, 4 and 5): refusals by the hundred (over quota; letters removed from the mailbox), a
//! node stopped while the other deletes and creates, and a peer away longer than deletions
//! are remembered. Every test ends comparing listings, SHA-256, owners and modes on both
//! nodes.

use std::time::{Duration, Instant};

use super::super::{perms, put_as, sha, stdout, Objects, A, B, BUCKET, GROUP, NAMES};
use super::{pair, pair_with, same_owners, wait_collected, Mailbox, MAILBOX};
use crate::common::{run, tree};

/// Waits until `node`'s backlog is empty (its letters are in the mailbox).
fn wait_written(node: &super::Node) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.backlog() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} did not write its letters",
            node.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Scenario: node-b's group is over quota; node-a writes 90 files, of which b has room for
/// a few: more than 64 wait on b (shown in its status). Once the quota is raised every one
/// arrives, none is dropped.
#[test]
fn over_quota_refusals_by_the_hundred_all_arrive_once_there_is_room() {
    let m = Mailbox::start();
    let c = pair_with(&m, &[("KURA_REPLICATION__RETRY_MAX_SECONDS", "2")]);
    c[B].kura(&["quota", "set", GROUP, "--bytes", "64KiB"]);
    let mut want = Objects::new();
    for i in 0..90 {
        let body = format!("over quota {i} ").repeat(600);
        c[A].put(&mut want, &format!("q-{i:03}.txt"), body.as_bytes());
    }
    // b holds what fits, the rest waits (more than the 64 an acknowledgement once named)
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let st = c[B].status();
        if st[0].waiting > 64 {
            println!("over quota: node-b waits on {} keys", st[0].waiting);
            break;
        }
        assert!(Instant::now() < deadline, "b never set them aside: {st:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    c[B].kura(&["quota", "set", GROUP, "--bytes", "none"]);
    c.converge(&want);
    let deadline = Instant::now() + Duration::from_secs(30);
    while c[B].status()[0].waiting > 0 {
        assert!(Instant::now() < deadline, "{:?}", c[B].status());
        std::thread::sleep(Duration::from_millis(300));
    }
    c.settle(&want);
    same_owners(&c, &want);
    wait_collected(&m, Duration::from_secs(60));
}

/// Attack: while node-b is stopped, the mailbox's owner removes 99 of node-a's 100 waiting
/// letters. b refuses the 99 (the last, authentic letter proves a wrote them) and asks for
/// them again. Before the fix only the latest 64 were asked for and b's acknowledgement
/// passed the rest: a collected them and 35 files never reached b (backlog 0, no error).
/// Now every refusal is asked for, a page at a time, until a says it sent it again.
#[test]
fn more_than_64_letters_removed_from_the_mailbox_all_arrive() {
    let m = Mailbox::start();
    let mut c = pair(&m);
    let mut want = Objects::new();
    c[A].put(&mut want, "before.txt", b"before the attack");
    c.converge(&want);
    c[B].stop();
    for i in 0..100 {
        c[A].put(
            &mut want,
            &format!("r-{i:03}.txt"),
            format!("letter {i}").as_bytes(),
        );
    }
    wait_written(&c[A]);
    let channel = m.channel_of(&c[A]);
    let a_dir = m.server.files_dir().join(MAILBOX).join(&channel).join("j");
    let letters = tree(&a_dir);
    assert!(letters.len() >= 100, "{} letters", letters.len());
    let last = letters.iter().max().expect("a letter").clone();
    run(m.server.aws(&m.key).args([
        "s3",
        "rm",
        &format!("s3://{MAILBOX}/{channel}/j/"),
        "--recursive",
        "--exclude",
        &format!("*{last}"),
    ]));
    assert_eq!(tree(&a_dir), vec![last], "the owner's removal");
    c[B].start_again();
    // b says in its status that it waits for letters it refused (checked once converged:
    // the loss, if any, is what fails first)
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut shown = None;
    while shown.is_none() && Instant::now() < deadline {
        let e = c[B].status()[0].last_error.clone().unwrap_or_default();
        if e.contains("letter(s) of the peer refused") {
            shown = Some(e);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    c.converge(&want);
    c.settle(&want);
    same_owners(&c, &want);
    // a loaded machine may answer every refusal between two looks at the status: b's log
    // then says it
    let logged = c[B]
        .server
        .log()
        .contains("refused letters missing from the mailbox or altered there");
    assert!(
        shown.is_some() || logged,
        "b neither showed nor logged its refusals"
    );
    println!("refused: node-b status said {shown:?}, logged: {logged}");
    let resent = c[A]
        .server
        .log()
        .matches("the peer refused a letter of ours")
        .count();
    assert!(resent >= 99, "node-a sent {resent} refused letters again");
    wait_collected(&m, Duration::from_secs(60));
}

/// `kura replicate BUCKET --resync` on `node`: its summary and warnings.
fn resync(node: &super::Node) -> (String, String) {
    let out = run(node.server.kura().args(["replicate", BUCKET, "--resync"]));
    (
        stdout(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Scenario: node-b is stopped, and node-a's rule too (no journal tells these changes);
/// meanwhile node-a deletes 15 files and creates 15, and ann writes a file of her own with
/// mode 640 there. a's rule is made again (it starts at the end of its journal), b comes
/// back and resyncs at once: its manifest goes to a, a judges each key and answers with its
/// own. Nothing a deleted comes back (a's tombstones name b's versions), nothing a created
/// is lost (never seen on b), and b's own file written before the stop stays. Before the
/// fix a mailbox resync only sent b's files again: a's 16 new files never reached b.
#[test]
fn a_node_back_after_a_stop_resyncs_with_no_resurrection_and_no_loss() {
    let m = Mailbox::start();
    let mut c = pair(&m);
    for n in [A, B] {
        c[n].kura(&["user", "add", "ann", "--group", GROUP]);
    }
    let mut want = Objects::new();
    for i in 0..40 {
        c[A].put(
            &mut want,
            &format!("f{i:02}"),
            format!("file {i}").as_bytes(),
        );
    }
    c[B].put(&mut want, "from-b.txt", b"b's own");
    c.converge(&want);

    c[B].stop();
    c[A].kura(&["replicate", BUCKET, "--to", NAMES[B], "--stop"]);
    for i in 0..15 {
        c[A].delete(&mut want, &format!("f{i:02}"));
        c[A].put(
            &mut want,
            &format!("new-{i:02}"),
            format!("new on a {i}").as_bytes(),
        );
    }
    // ann's own file, 640 (the mode set before the last write: a mode changed alone does
    // not travel, see the report of this test's commit)
    let ann = c[A].server.s3_key_for("ann");
    put_as(&c[A], &ann, "ann.txt", b"ann's first", None);
    c[A].kura(&["chmod", "640", &format!("/{BUCKET}/ann.txt")]);
    put_as(
        &c[A],
        &ann,
        "ann.txt",
        b"ann's, written while b was stopped",
        None,
    );
    want.insert("ann.txt".into(), sha(b"ann's, written while b was stopped"));
    c[A].kura(&["replicate", BUCKET, "--to", NAMES[B], "--bidirectional"]);

    c[B].start_again();
    let (summary, warned) = resync(&c[B]);
    println!("back after a stop: {} {}", summary.trim(), warned.trim());
    c.converge(&want);
    c.settle(&want);
    same_owners(&c, &want);
    assert_eq!(
        perms(&c[B], "ann.txt"),
        ("ann".into(), GROUP.into(), "640".into())
    );
    for i in 0..15 {
        assert!(
            !c[B].dir().join(format!("f{i:02}")).exists(),
            "f{i:02} came back on b"
        );
    }
    assert!(
        !c[B].kura(&["peer", "status"]).contains("WARNING"),
        "a stop shorter than tombstone_days is no absence to warn about"
    );
    wait_collected(&m, Duration::from_secs(60));
}

/// Scenario: deletions are remembered 17 s (`tombstone_days = 0.0002`). node-b is stopped
/// longer than that: node-a's status says b was not reached for longer than deletions are
/// remembered (the peer writes no letter then; its hello, written again every beat, stops).
/// Back, both tell of the absence, a resync does too, and the pair converges. Before the
/// fix a mailbox peer was never counted as reached: no warning at all.
#[test]
fn a_mailbox_peer_away_longer_than_deletions_are_remembered_is_warned_about() {
    let m = Mailbox::start();
    let mut c = pair_with(&m, &[("KURA_REPLICATION__TOMBSTONE_DAYS", "0.0002")]);
    let mut want = Objects::new();
    for i in 0..10 {
        c[A].put(&mut want, &format!("f{i}"), format!("file {i}").as_bytes());
    }
    c.converge(&want);
    // both have heard from the other by now
    std::thread::sleep(Duration::from_secs(6));
    c[B].stop();
    let left = Instant::now();
    let deadline = left + Duration::from_secs(60);
    loop {
        let text = c[A].kura(&["peer", "status"]);
        if text.contains("WARNING") {
            assert!(
                text.contains("not reached for")
                    && text.contains("longer than deletions are remembered"),
                "{text}"
            );
            println!("away: node-a warns after {:?}", left.elapsed());
            break;
        }
        assert!(Instant::now() < deadline, "node-a: no warning: {text}");
        std::thread::sleep(Duration::from_millis(500));
    }
    c[A].delete(&mut want, "f0");
    c[A].put(&mut want, "while-away.txt", b"written while b was away");
    // b last heard from a before it stopped; a warned up to a beat early (12.9 s once): b is
    // kept away until it is surely longer than the 17 s, or its resync has nothing to say
    std::thread::sleep((left + Duration::from_secs(20)).saturating_duration_since(Instant::now()));
    c[B].start_again();
    let (_, warned) = resync(&c[B]);
    assert!(
        warned.contains("longer than deletions are remembered"),
        "the resync says nothing of the long absence: {warned}"
    );
    c.converge(&want);
    for n in [A, B] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let st = c[n].status();
            if st
                .iter()
                .all(|r| r.away.as_deref().is_some_and(|w| w.contains("came back")))
            {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {st:?}", c[n].name);
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(c[n]
            .server
            .log()
            .contains("the peer is back after an absence longer than deletions are remembered"));
    }
    c.settle(&want);
    same_owners(&c, &want);
}
