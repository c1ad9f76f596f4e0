//! The writing side of a mailbox: journaled changes become letters (and bodies, each stored
//! once), and what the peer acknowledges is removed again.

use std::collections::HashMap;

use super::{BodyRef, Letter, Post};
use crate::replication::feed::FeedEntry;
use crate::replication::{ship, ReplError, Worker};
use crate::store::{EntryRow, JournalRow};

/// Bytes per S3 request when storing a body (multipart above it), as for shipments.
const PART: usize = 8 * 1024 * 1024;

/// Bytes read from local storage at a time.
const READ: u64 = 1024 * 1024;

/// Writes the rule's next journal entries as letters; returns how many entries it covered.
pub(super) async fn send(w: &Worker, p: &mut Post) -> Result<usize, ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let rows = w.store.journal_after(bucket, p.position, 256).await?;
    if rows.is_empty() {
        // a manifest wanted goes once every change before it is written
        if let Some(answer) = w.store.manifest_wanted(bucket, peer).await? {
            super::manifest::send(w, p, answer).await?;
            return Ok(1);
        }
        return Ok(0);
    }
    // only the last change of a path in the batch needs a letter: it carries the state
    let last: HashMap<&str, i64> = rows.iter().map(|r| (r.path.as_str(), r.seq)).collect();
    for row in &rows {
        if last.get(row.path.as_str()) != Some(&row.seq) {
            continue;
        }
        match letter_for(w, p, row).await? {
            Some((entry, body, mark)) => {
                let seq = w.store.mailbox_channel(bucket, peer).await?.sent + 1;
                let letter = Letter {
                    seq,
                    entry,
                    body,
                    manifest: None,
                };
                let own = p.own().to_string();
                p.write_sealed(&p.layout.letter(&own, seq), &letter).await?;
                let body = letter.body.as_ref().map(|b| b.name.as_str());
                w.store
                    .record_letter(
                        bucket,
                        peer,
                        &p.link.mark_node(),
                        seq,
                        row.seq,
                        &row.path,
                        body,
                        mark.as_deref(),
                    )
                    .await?;
            }
            None => w.store.advance_rule(bucket, peer, row.seq, 0).await?,
        }
        p.position = row.seq;
    }
    p.position = rows.last().map_or(p.position, |r| r.seq);
    Ok(rows.len())
}

/// The letter for what `row.path` holds now (with its body stored), and the version the peer
/// will hold once it reads it; None when nothing goes to the peer (a folder, a change that
/// came from it, a path outside the rule).
async fn letter_for(
    w: &Worker,
    p: &Post,
    row: &JournalRow,
) -> Result<Option<(FeedEntry, Option<BodyRef>, Option<String>)>, ReplError> {
    let Some(key) = p.link.key_of(&row.path) else {
        return Ok(None);
    };
    let peer = p.link.peer_node.as_deref();
    // a change never goes back to the node it came from
    if row.origin.is_some() && row.origin.as_deref() == peer {
        return Ok(None);
    }
    let mirror = !p.link.rule.bidirectional;
    let entry = |headers, content_type| FeedEntry {
        seq: 0,
        key: key.to_string(),
        headers,
        content_type,
    };
    Ok(match w.store.entry(&row.path).await? {
        Some(e) if e.is_dir => None,
        Some(e) if e.origin.is_some() && e.origin.as_deref() == peer => None,
        Some(e) if !ship::can_ship(&e, &p.link.rule.peer) => None,
        Some(e) => {
            let body = store_body(w, p, &e).await?;
            let headers = ship::shipment_headers(p.own(), mirror, &e);
            Some((
                entry(headers, e.content_type.clone()),
                Some(body),
                Some(e.etag),
            ))
        }
        None => {
            let origin = row.origin.clone().unwrap_or_else(|| p.own().to_string());
            let deleted = ship::deleted_version(&w.vfs, &row.path).await?;
            let headers = ship::tombstone_headers(p.own(), mirror, origin, deleted);
            Some((entry(headers, None), None, None))
        }
    })
}

/// Stores the bytes of `e` as a body, unless a letter still waiting names the same content:
/// first its name (an HMAC of the bytes), then, if new, the sealed bytes, streamed.
async fn store_body(w: &Worker, p: &Post, e: &EntryRow) -> Result<BodyRef, ReplError> {
    let reader = w.vfs.stored_reader(e).await?;
    let size = e.size.max(0) as u64;
    let read = |at: u64| reader.read_at(at, (size - at).min(READ) as usize);
    let mut name = p.keys.body_name();
    let mut at = 0u64;
    while at < size {
        let buf = read(at).await?;
        if buf.is_empty() {
            return Err(ReplError::Invalid(format!(
                "{} shrank while sending",
                e.path
            )));
        }
        at += buf.len() as u64;
        name.update(&buf);
    }
    let name = name.finish();
    let body = BodyRef { name, size };
    if w.store
        .mailbox_has_body(&w.rule.bucket, &w.rule.peer, &body.name)
        .await?
    {
        return Ok(body);
    }
    let object = p.layout.body(p.own(), &body.name);
    let mut out = p
        .link
        .remote
        .op
        .writer_with(&object)
        .chunk(PART)
        .concurrent(2)
        .await?;
    let mut sealer = p.keys.body_sealer(&body.name);
    let mut check = p.keys.body_name();
    let mut at = 0u64;
    while at < size {
        let buf = match read(at).await {
            Ok(b) if !b.is_empty() => b,
            Ok(_) => {
                let _ = out.abort().await;
                return Err(ReplError::Invalid(format!(
                    "{} shrank while sending",
                    e.path
                )));
            }
            Err(err) => {
                let _ = out.abort().await;
                return Err(err.into());
            }
        };
        at += buf.len() as u64;
        check.update(&buf);
        let sealed = sealer.push(&buf);
        if let Err(err) = out.write(sealed).await {
            let _ = out.abort().await;
            return Err(err.into());
        }
    }
    if check.finish() != body.name {
        let _ = out.abort().await;
        return Err(ReplError::Invalid(format!(
            "{} changed while sending",
            e.path
        )));
    }
    out.write(sealer.finish()).await?;
    out.close().await?;
    Ok(body)
}

/// Reads the peer's acknowledgement: its refused letters are sent again, and the letters
/// and bodies it is done with leave the mailbox.
pub(super) async fn collect(w: &Worker, p: &mut Post) -> Result<(), ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let ch = w.store.mailbox_channel(bucket, peer).await?;
    let Some(peer_node) = p.link.peer_node.as_deref() else {
        return Ok(());
    };
    if ch.sent <= ch.acked {
        p.redone.clear();
        return Ok(());
    }
    let ack = p.read_ack(&p.layout.ack(peer_node)).await?;
    // the acknowledgement opened (sealed with the pair's key), so one beyond what this rule
    // wrote covers letters this node wrote before the rule was stopped and made again (its
    // counter started over, and the peer had read further than the resume saw). The peer's
    // cursor stands there and it takes letters below it as replays: this rule numbers on
    // from there and writes again, under new numbers, what it wrote since (the letters
    // below the cursor are collected, their paths journaled again). Before, both sides
    // waited on each other for ever.
    let mut forgotten = Vec::new();
    if ack.done > ch.sent {
        tracing::warn!(%bucket, %peer, done = ack.done, sent = ch.sent,
            "replication: the peer has read further than this rule wrote (the rule was made again); numbering on from there and writing its letters again");
        for seq in ch.acked + 1..=ch.sent {
            forgotten.extend(w.store.resend_letter(bucket, peer, seq).await?);
        }
        w.store
            .raise_mailbox_counters(bucket, peer, ack.done, 0)
            .await?;
        p.redone.clear();
    }
    let done = ack.done;
    // every refused letter is sent again (the peer asks a page at a time, the oldest first,
    // and holds its acknowledgement below them, so their rows are still here); once is
    // enough per run: our acknowledgement's `redone` tells the peer to ask for the next page
    let mut redo = ack.redo.clone();
    redo.truncate(crate::store::REFUSED_PAGE);
    redo.sort_unstable();
    redo.dedup();
    for &seq in redo.iter().filter(|s| **s <= ch.sent) {
        if p.redone.contains(&seq) {
            continue;
        }
        tracing::warn!(%bucket, %peer, seq,
            "replication: the peer refused a letter of ours from the mailbox; sending its path again");
        let was = w.store.mailbox_letter(bucket, peer, seq).await?;
        if was.is_some_and(|(path, _)| super::manifest::is_manifest_path(w, &path)) {
            // a manifest: a new one goes (a request: the peer answers it again)
            w.store.want_manifest(bucket, peer, false).await?;
        }
        forgotten.extend(w.store.redo_letter(bucket, peer, seq).await?);
        p.redone.push(seq);
    }
    // what the peer no longer asks for it has heard of
    p.redone.retain(|s| redo.contains(s));
    // letters of ours the peer finds altered past its cursor (it cannot tell them from
    // forged names, so its cursor waits): sent again, once per complaint and run
    let mut bad = ack.bad.clone();
    bad.truncate(super::COMPLAINTS);
    bad.sort_unstable();
    for seq in bad {
        if seq <= ch.acked.max(done) || seq > ch.sent || !p.answered.insert(seq) {
            continue;
        }
        tracing::warn!(%bucket, %peer, seq,
            "replication: a letter of ours fails to open in the mailbox; sending its path again");
        forgotten.extend(w.store.resend_letter(bucket, peer, seq).await?);
    }
    let gone = w.store.acknowledge_letters(bucket, peer, done).await?;
    let own = p.own();
    let objects: Vec<String> = gone
        .letters
        .iter()
        .map(|s| p.layout.letter(own, *s))
        .chain(
            gone.bodies
                .iter()
                .chain(&forgotten)
                .map(|b| p.layout.body(own, b)),
        )
        .collect();
    if !objects.is_empty() {
        tracing::debug!(%bucket, %peer, objects = objects.len(), "replication: mailbox collected");
        p.link.remote.op.delete_iter(objects).await?;
    }
    Ok(())
}
