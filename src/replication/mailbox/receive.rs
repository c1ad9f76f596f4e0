//! The reading side of a mailbox: the peer's letters, in order, each applied as a shipment
//! from the peer through the same path as a pull (`feed::apply_entry`); what fails its check
//! is refused and asked for again, what this node's locks, quota or permissions refuse
//! waits aside; and the acknowledgement that lets the peer clean up.

use super::{Ack, Letter, Post};
use crate::replication::feed::{self, FeedEntry};
use crate::replication::{ReplError, Worker};
use crate::vfs::replica::Peer;
use crate::vfs::Caller;

/// The most letters read in one round.
pub(super) const PAGE: usize = 256;

/// Applies the peer's letters after this node's cursor; returns how many it found.
pub(super) async fn receive(w: &Worker, p: &Post) -> Result<usize, ReplError> {
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
        return Ok(0);
    }
    let user = feed::acting_user(&w.store, peer).await?;
    let mut expected = pulled + 1;
    for &seq in &seqs {
        if seq < expected {
            continue;
        }
        // letters are written one after the other: a hole is one removed from the mailbox
        for missing in expected..seq {
            refuse(w, missing, "missing from the mailbox").await?;
        }
        take(w, p, &user, seq, None, 0).await?;
        w.store.set_pulled(bucket, peer, seq).await?;
        expected = seq + 1;
    }
    Ok(seqs.len())
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

/// Reads letter `seq` of the peer and applies it (`only`: for the key waiting on it).
async fn take(
    w: &Worker,
    p: &Post,
    user: &Caller,
    seq: i64,
    only: Option<&str>,
    tries: i64,
) -> Result<(), ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let node = p.link.peer_node.clone().unwrap_or_default();
    let letter = match p.read_sealed::<Letter>(&p.layout.letter(&node, seq)).await {
        Ok(Some(l)) if l.seq == seq && feed::is_tombstone(&l.entry) == l.body.is_none() => l,
        Ok(Some(_)) => return refused(w, seq, "its content does not match its name", only).await,
        Ok(None) => return refused(w, seq, "missing from the mailbox", only).await,
        Err(ReplError::Tampered(why)) => return refused(w, seq, &why, only).await,
        Err(e) => return Err(e),
    };
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
/// cursor, except from the oldest a key still waits on (the peer keeps that one), and the
/// letters refused.
pub(super) async fn acknowledge(w: &Worker, p: &mut Post) -> Result<(), ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let ch = w.store.mailbox_channel(bucket, peer).await?;
    let waiting = w.store.oldest_waiting_letter(bucket, peer).await?;
    let ack = Ack {
        done: waiting.map_or(ch.pulled, |s| ch.pulled.min(s - 1)),
        redo: ch.refused,
    };
    if p.ack.as_ref() == Some(&ack) {
        return Ok(());
    }
    let name = p.layout.ack(p.own());
    p.write_sealed(&name, &ack).await?;
    p.ack = Some(ack);
    Ok(())
}
