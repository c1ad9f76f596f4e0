//! The reading side of a mailbox: the peer's letters, in order, each applied as a shipment
//! from the peer through the same path as a pull (`feed::apply_entry`); what fails its check
//! is refused and asked for again, what this node's locks, quota or permissions refuse
//! waits aside; and the acknowledgement that lets the peer clean up.

use super::{Ack, Letter, Post, COMPLAINTS};
use crate::replication::feed::{self, FeedEntry};
use crate::replication::{ReplError, Worker};
use crate::vfs::replica::Peer;
use crate::vfs::Caller;

/// The most letters read in one round.
pub(super) const PAGE: usize = 256;

/// Applies the peer's letters after this node's cursor; returns how many opened.
///
/// Only a letter that opens (sealed with the pair's key under its own name) moves the
/// cursor. The peer numbers its letters without gaps, so an authentic letter `n` proves the
/// peer wrote every seq before it: those missing or failing to open are refused (and asked
/// for again). An object that fails to open with no authentic letter after it proves
/// nothing (the mailbox's owner can put any name there): it is ignored, logged, shown in
/// `kura peer status` and named in the acknowledgement as a complaint, never a position.
pub(super) async fn receive(w: &Worker, p: &mut Post) -> Result<usize, ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let Some(node) = p.link.peer_node.clone() else {
        return Ok(0);
    };
    let pulled = w.store.mailbox_channel(bucket, peer).await?.pulled;
    let dir = p.layout.letters(&node);
    let mut lister = p
        .link
        .remote
        .op
        .lister_with(&dir)
        .start_after(&p.layout.letter(&node, pulled))
        .await?;
    let mut seqs = Vec::new();
    while let Some(e) = futures_util::TryStreamExt::try_next(&mut lister).await? {
        if let Some(seq) = e
            .path()
            .strip_prefix(&dir)
            .and_then(|s| s.parse::<i64>().ok())
        {
            seqs.push(seq);
        }
        if seqs.len() >= PAGE {
            break;
        }
    }
    seqs.sort_unstable();
    if seqs.is_empty() {
        p.bad.clear();
        return Ok(0);
    }
    let user = feed::acting_user(&w.store, peer).await?;
    let mut expected = pulled + 1;
    let mut opened = 0;
    let mut bad: Vec<(i64, String)> = Vec::new();
    for &seq in &seqs {
        if seq < expected {
            continue;
        }
        let letter = match open_letter(p, &node, seq).await? {
            Opened::Letter(l) => l,
            Opened::Missing => continue,
            Opened::Forged(why) => {
                bad.push((seq, why));
                continue;
            }
        };
        opened += 1;
        if seq > expected {
            // this letter is authentic: the peer wrote every seq before it
            refuse_range(w, expected, seq - 1).await?;
        }
        take_opened(w, p, &user, seq, letter, None, 0).await?;
        w.store.set_pulled(bucket, peer, seq).await?;
        expected = seq + 1;
    }
    // those below an authentic letter were refused with their range
    bad.retain(|(s, _)| *s >= expected);
    p.bad = bad.iter().map(|(s, _)| *s).take(COMPLAINTS).collect();
    if let Some((seq, why)) = bad.first() {
        let fresh: Vec<i64> = bad
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| p.logged.insert(*s))
            .collect();
        if !fresh.is_empty() {
            tracing::warn!(%bucket, %peer, seqs = ?fresh, reason = %why,
                "replication: ignored objects in the peer's folder of the mailbox that fail to open (not letters of the peer: the cursor stays)");
            crate::metrics::get().replication_error(peer);
        }
        let message = format!(
            "ignored {} object(s) in the mailbox that fail to open (not the peer's letters; first: seq {seq}: {why})",
            bad.len()
        );
        w.store.set_rule_error(bucket, peer, &message).await?;
    }
    Ok(opened)
}

/// What the mailbox holds under a letter's name.
enum Opened {
    /// A letter of the peer, opened.
    Letter(Letter),
    /// Nothing (removed).
    Missing,
    /// An object that is not a letter of the peer under this name (why).
    Forged(String),
}

/// Reads and opens the peer's letter `seq`.
async fn open_letter(p: &Post, node: &str, seq: i64) -> Result<Opened, ReplError> {
    Ok(
        match p.read_sealed::<Letter>(&p.layout.letter(node, seq)).await {
            Ok(Some(l))
                if l.seq == seq
                    && match l.manifest {
                        Some(_) => l.body.is_none(),
                        None => feed::is_tombstone(&l.entry) == l.body.is_none(),
                    } =>
            {
                Opened::Letter(l)
            }
            Ok(Some(_)) => Opened::Forged("its content does not match its name".into()),
            Ok(None) => Opened::Missing,
            Err(ReplError::Tampered(why)) => Opened::Forged(why),
            Err(e) => return Err(e),
        },
    )
}

/// Refuses the peer's letters `from..=to` at once (each was written: a later authentic
/// letter proves it; missing or altered here): one log line and one database write whatever
/// the range, so no number, however large, costs more than that.
async fn refuse_range(w: &Worker, from: i64, to: i64) -> Result<(), ReplError> {
    tracing::warn!(bucket = %w.rule.bucket, peer = %w.rule.peer, from, to,
        "replication: refused letters missing from the mailbox or altered there (nothing applied; the peer is asked to send them again)");
    crate::metrics::get().replication_error(&w.rule.peer);
    w.store
        .refuse_letters(&w.rule.bucket, &w.rule.peer, from, to)
        .await?;
    Ok(())
}

/// Tries again the keys whose letters this node refused for a lock, its quota or a
/// permission: each letter is read again from the mailbox (the peer keeps it until then).
pub(super) async fn retry_waiting(w: &Worker, p: &Post) -> Result<(), ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let due = w.store.due_keys(bucket, peer, 16).await?;
    if due.is_empty() {
        return Ok(());
    }
    let user = feed::acting_user(&w.store, peer).await?;
    for k in due {
        match w.store.waiting_letter(bucket, peer, &k.path).await? {
            Some(seq) if k.direction == "pull" => {
                take(w, p, &user, seq, Some(&k.path), k.tries).await?
            }
            _ => w.unwait(&k.path, &k.direction).await,
        }
    }
    Ok(())
}

/// Reads letter `seq` of the peer again and applies it (`only`: for the key waiting on it;
/// the letter was authentic when first read, so what no longer opens is refused).
async fn take(
    w: &Worker,
    p: &Post,
    user: &Caller,
    seq: i64,
    only: Option<&str>,
    tries: i64,
) -> Result<(), ReplError> {
    let node = p.link.peer_node.clone().unwrap_or_default();
    match open_letter(p, &node, seq).await? {
        Opened::Letter(l) => take_opened(w, p, user, seq, l, only, tries).await,
        Opened::Missing => refused(w, seq, "missing from the mailbox", only).await,
        Opened::Forged(why) => refused(w, seq, &why, only).await,
    }
}

/// Applies the peer's opened letter `seq`, unless it is older than what this node holds
/// from the peer (a replay: see `stale`).
#[allow(clippy::too_many_arguments)]
async fn take_opened(
    w: &Worker,
    p: &Post,
    user: &Caller,
    seq: i64,
    letter: Letter,
    only: Option<&str>,
    tries: i64,
) -> Result<(), ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let node = p.link.peer_node.clone().unwrap_or_default();
    if let Some(m) = &letter.manifest {
        if only.is_some() {
            return refused(w, seq, "a manifest never waits on a key", only).await;
        }
        return match super::manifest::apply(w, p, m).await {
            Err(ReplError::Tampered(why)) => refused(w, seq, &why, None).await,
            done => done,
        };
    }
    let path = format!("/{bucket}/{}", letter.entry.key);
    if only.is_some_and(|o| o != path) {
        return refused(
            w,
            seq,
            "it names another key than the one waiting on it",
            only,
        )
        .await;
    }
    if let Some(why) = stale(w, &node, &path, &letter).await? {
        tracing::warn!(%bucket, %peer, seq, path = %path, reason = %why,
            "replication: ignored a letter from the mailbox older than what this node holds from the peer (a replay?)");
        crate::metrics::get().replication_error(peer);
        if only.is_some() {
            w.unwait(&path, "pull").await;
            w.store.unwait_letter(bucket, peer, &path).await?;
        }
        return Ok(());
    }
    let stream = match &letter.body {
        None => None,
        Some(b) => {
            let object = p.layout.body(&node, &b.name);
            let stored = match p.link.remote.op.reader(&object).await {
                Ok(r) => r.into_bytes_stream(..).await?,
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                    return refused(w, seq, "its body is missing from the mailbox", only).await
                }
                Err(e) => return Err(e.into()),
            };
            Some(p.keys.open_body(&b.name, b.size, stored))
        }
    };
    let from = Peer { name: peer.clone() };
    match feed::apply_entry(
        &w.vfs,
        &w.store,
        &p.link,
        user,
        &from,
        &entry(&letter),
        stream,
    )
    .await
    {
        Ok(()) => {
            w.unwait(&path, "pull").await;
            w.store.unwait_letter(bucket, peer, &path).await?;
            Ok(())
        }
        Err(e) if feed::is_local_refusal(&e) => {
            w.set_aside(&path, "pull", None, &e, tries).await;
            w.store.wait_letter(bucket, peer, &path, seq).await?;
            Ok(())
        }
        Err(ReplError::Tampered(why)) => refused(w, seq, &why, only).await,
        Err(e) => Err(e),
    }
}

/// Why letter `l` from the peer `node` is older than what this node holds at `path`, if it
/// is. A letter is valid forever to its key, and the mailbox's owner can keep a copy and put
/// it back once this node's cursor is reset (a rule made again, a database restored): the
/// file itself remembers which version of the peer it holds. Versions of one origin are
/// ordered by their modification time there (taken from the origin's clock at commit):
/// - a file here from the peer, modified there after the letter's version (or, for a
///   tombstone, after the deletion was written), is newer than the letter;
/// - a version here deleted at or after the letter's version's time makes it a resurrection.
async fn stale(
    w: &Worker,
    node: &str,
    path: &str,
    l: &Letter,
) -> Result<Option<String>, ReplError> {
    let mut headers = l.entry.headers.clone();
    let Some(meta) = crate::vfs::replica::ReplicaMeta::take_from(&mut headers) else {
        return Ok(None);
    };
    if let Some(local) = w.store.entry(path).await? {
        if !local.is_dir && local.origin.as_deref() == Some(node) && local.mtime_ms > meta.mtime_ms
        {
            return Ok(Some(format!(
                "this node holds a version of the peer modified at {} ms, the letter's is of {} ms",
                local.mtime_ms, meta.mtime_ms
            )));
        }
        return Ok(None);
    }
    if meta.tombstone || meta.origin != node {
        return Ok(None);
    }
    Ok(w.store
        .tombstone(path, 0)
        .await?
        .filter(|t| t.mtime_ms >= meta.mtime_ms)
        .map(|t| {
            format!(
                "this node deleted a version of {} ms, the letter's is of {} ms",
                t.mtime_ms, meta.mtime_ms
            )
        }))
}

/// `refuse`, and a key that waited on that letter waits no more (the peer sends it again).
async fn refused(w: &Worker, seq: i64, why: &str, only: Option<&str>) -> Result<(), ReplError> {
    if let Some(path) = only {
        w.unwait(path, "pull").await;
        w.store
            .unwait_letter(&w.rule.bucket, &w.rule.peer, path)
            .await?;
    }
    refuse(w, seq, why).await
}

fn entry(l: &Letter) -> FeedEntry {
    FeedEntry {
        seq: l.seq,
        ..l.entry.clone()
    }
}

/// Refuses the peer's letter `seq`: logged, nothing applied, the cursor moves past it and
/// the acknowledgement asks the peer to send its path again.
async fn refuse(w: &Worker, seq: i64, why: &str) -> Result<(), ReplError> {
    tracing::warn!(bucket = %w.rule.bucket, peer = %w.rule.peer, seq, reason = %why,
        "replication: refused a letter from the mailbox (nothing applied; the peer is asked to send it again)");
    crate::metrics::get().replication_error(&w.rule.peer);
    w.store
        .refuse_letter(&w.rule.bucket, &w.rule.peer, seq)
        .await?;
    Ok(())
}

/// Writes this node's acknowledgement when it changed: done with every letter up to the
/// cursor, except from the oldest a key still waits on or this node refused (the peer keeps
/// those, and what follows), and the oldest page of letters refused, which the peer sends
/// again; the peer's own acknowledgement says which it did, and the next page follows.
pub(super) async fn acknowledge(w: &Worker, p: &mut Post) -> Result<(), ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let (mut refused, mut oldest) = w.store.refused_letters(bucket, peer).await?;
    if refused > 0 {
        let node = p.link.peer_node.clone().unwrap_or_default();
        let theirs = p.read_ack(&p.layout.ack(&node)).await?;
        if !theirs.redone.is_empty() {
            let n = w.store.settle_refused(bucket, peer, &theirs.redone).await?;
            if n > 0 {
                tracing::info!(%bucket, %peer, letters = n,
                    "replication: the peer sent again what this node refused");
                (refused, oldest) = w.store.refused_letters(bucket, peer).await?;
            }
        }
    }
    let ch = w.store.mailbox_channel(bucket, peer).await?;
    let waiting = w.store.oldest_waiting_letter(bucket, peer).await?;
    let hold = [waiting, oldest].into_iter().flatten().min();
    let ack = Ack {
        done: hold.map_or(ch.pulled, |s| ch.pulled.min(s - 1)),
        redo: ch.refused,
        redone: p.redone.clone(),
        bad: p.bad.clone(),
    };
    if refused > 0 {
        // told every round while any waits (reading a letter clears the rule's error)
        let message = format!(
            "{refused} letter(s) of the peer refused (missing from the mailbox or altered there): asked for again, {} at a time",
            crate::store::REFUSED_PAGE
        );
        w.store.set_rule_error(bucket, peer, &message).await?;
    }
    if p.ack.as_ref() == Some(&ack) {
        return Ok(());
    }
    let name = p.layout.ack(p.own());
    p.write_sealed(&name, &ack).await?;
    p.ack = Some(ack);
    Ok(())
}
