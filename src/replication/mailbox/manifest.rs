//! A resync through the mailbox, which cannot be listed like a peer's bucket: each side
//! sends the other a manifest of its files (key, size, ETag, modification time) as a letter,
//! in order with its changes, and the reader judges every key with the direct transport's
//! rules (`resync::judge`): what it holds that the peer lacks or holds otherwise goes as a
//! letter, a deletion here of the very version the peer holds goes as a tombstone, and
//! nothing is deleted for being absent. `kura replicate --resync` sends a request; the peer
//! answers with its own manifest, so both halves run (each ships what only it has).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::{BodyRef, Letter, Post};
use crate::replication::feed::FeedEntry;
use crate::replication::resync::{self, Far, Verdict};
use crate::replication::{ReplError, Worker};

/// The largest manifest read (about 2.5 million files).
const MAX_MANIFEST: u64 = 512 << 20;

/// Bytes per S3 request when storing a manifest (multipart above it).
const PART: usize = 8 * 1024 * 1024;

/// A manifest, as its letter names it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestRef {
    /// Where its lines are (a body: sealed, named by an HMAC of its bytes).
    pub body: BodyRef,
    /// An answer to the reader's own manifest (not answered again).
    pub answer: bool,
    /// How many files it lists.
    pub files: u64,
}

/// One file of a manifest (a JSON line).
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    /// Its key in the bucket.
    k: String,
    /// Bytes.
    s: u64,
    /// ETag.
    e: String,
    /// Modification time, ms.
    m: i64,
}

/// The path the letter of a manifest is recorded under (the bucket itself: no file).
fn marker(w: &Worker) -> String {
    format!("/{}", w.rule.bucket)
}

/// Whether a letter of ours recorded at `path` was a manifest.
pub(super) fn is_manifest_path(w: &Worker, path: &str) -> bool {
    path == marker(w)
}

/// Writes a manifest of this node's files of the rule as the next letter (`answer`: the
/// answer to the peer's).
pub(super) async fn send(w: &Worker, p: &mut Post, answer: bool) -> Result<(), ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let files = resync::local_files(&w.store, &p.link).await?;
    let mut plain = Vec::new();
    for (key, e) in &files {
        let line = Line {
            k: key.clone(),
            s: e.size.max(0) as u64,
            e: e.etag.clone(),
            m: e.mtime_ms,
        };
        serde_json::to_writer(&mut plain, &line).map_err(|e| ReplError::Invalid(e.to_string()))?;
        plain.push(b'\n');
    }
    let mut name = p.keys.body_name();
    name.update(&plain);
    let body = BodyRef {
        name: name.finish(),
        size: plain.len() as u64,
    };
    let object = p.layout.body(p.own(), &body.name);
    let mut sealer = p.keys.body_sealer(&body.name);
    let mut out = p.link.remote.op.writer_with(&object).chunk(PART).await?;
    for part in plain.chunks(PART) {
        if let Err(e) = out.write(sealer.push(part)).await {
            let _ = out.abort().await;
            return Err(e.into());
        }
    }
    out.write(sealer.finish()).await?;
    out.close().await?;
    let seq = w.store.mailbox_channel(bucket, peer).await?.sent + 1;
    let letter = Letter {
        seq,
        entry: FeedEntry {
            seq: 0,
            key: String::new(),
            headers: BTreeMap::new(),
            content_type: None,
        },
        body: None,
        manifest: Some(ManifestRef {
            files: files.len() as u64,
            body,
            answer,
        }),
    };
    let own = p.own().to_string();
    p.write_sealed(&p.layout.letter(&own, seq), &letter).await?;
    let name = letter.manifest.as_ref().map(|m| m.body.name.as_str());
    w.store
        .record_letter(
            bucket,
            peer,
            &p.link.mark_node(),
            seq,
            p.position,
            &marker(w),
            name,
            None,
        )
        .await?;
    w.store.manifest_sent(bucket, peer, answer).await?;
    tracing::info!(%bucket, %peer, seq, files = files.len(), answer,
        "replication: sent a manifest of this node's files through the mailbox (resync)");
    Ok(())
}

/// What a manifest's reading did.
#[derive(Debug, Default)]
struct Tally {
    compared: u64,
    shipped: u64,
    deleted: u64,
}

/// Reads the peer's manifest `m` and judges every key of both sides: what is to go to the
/// peer is journaled (and so written as letters), an answer is asked for if it was a
/// request. `Tampered` when it fails to open or is not a manifest.
pub(super) async fn apply(w: &Worker, p: &Post, m: &ManifestRef) -> Result<(), ReplError> {
    let (bucket, peer) = (&w.rule.bucket, &w.rule.peer);
    let far = read(p, m).await?;
    let local = resync::local_files(&w.store, &p.link).await?;
    let keys: BTreeSet<&String> = local.keys().chain(far.keys()).collect();
    let mut t = Tally::default();
    let node = p.link.mark_node();
    for key in keys {
        t.compared += 1;
        let path = format!("/{bucket}/{key}");
        let (l, f) = (local.get(key), far.get(key));
        match resync::judge(&w.vfs, &w.store, &p.link, &path, l, f).await? {
            Verdict::InStep => {
                if let Some(l) = l {
                    if w.store.mark(&node, &path).await?.is_none() {
                        w.store.set_mark(&node, &path, Some(&l.etag)).await?;
                    }
                }
            }
            // the peer's half of the resync ships what only it has
            Verdict::Nothing | Verdict::Fetch => {}
            Verdict::Ship => {
                w.store.journal_path(&path).await?;
                t.shipped += 1;
            }
            // absent here: the letter journaled is a tombstone
            Verdict::DeleteThere | Verdict::Remove => {
                w.store.journal_path(&path).await?;
                t.deleted += 1;
            }
        }
    }
    tracing::info!(%bucket, %peer, files = far.len(), compared = t.compared,
        shipped = t.shipped, deleted = t.deleted, answer = m.answer,
        "replication: resynced with the peer's manifest from the mailbox");
    if !m.answer {
        w.store.want_manifest(bucket, peer, true).await?;
    }
    Ok(())
}

/// The files a manifest lists, by key (only keys of the rule).
async fn read(p: &Post, m: &ManifestRef) -> Result<BTreeMap<String, Far>, ReplError> {
    if m.body.size > MAX_MANIFEST {
        return Err(ReplError::Tampered(format!(
            "a manifest of {} bytes is over the {MAX_MANIFEST} read",
            m.body.size
        )));
    }
    let node = p.link.peer_node.clone().unwrap_or_default();
    let object = p.layout.body(&node, &m.body.name);
    let stored = match p.link.remote.op.reader(&object).await {
        Ok(r) => r.into_bytes_stream(..).await?,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
            return Err(ReplError::Tampered(
                "its manifest is missing from the mailbox".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let mut stream = p.keys.open_body(&m.body.name, m.body.size, stored);
    let mut plain = Vec::with_capacity(m.body.size as usize);
    loop {
        match stream.try_next().await {
            Ok(Some(b)) => plain.extend_from_slice(&b),
            Ok(None) => break,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(ReplError::Tampered(format!("its manifest: {e}")))
            }
            Err(e) => return Err(ReplError::Unreachable(format!("reading {object}: {e}"))),
        }
    }
    let bucket = &p.link.rule.bucket;
    let mut out = BTreeMap::new();
    for raw in plain.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line: Line = serde_json::from_slice(raw)
            .map_err(|e| ReplError::Tampered(format!("its manifest has a bad line: {e}")))?;
        // a key outside the rule, or no key at all, is not the peer's to list
        let path = format!("/{bucket}/{}", line.k);
        if crate::vfs::VPath::parse(&path).is_err() || p.link.key_of(&path) != Some(&line.k) {
            tracing::warn!(%bucket, peer = %p.link.rule.peer,
                "replication: a manifest names a key outside the rule; left out");
            continue;
        }
        out.insert(
            line.k,
            Far {
                size: line.s,
                etag: line.e,
                mtime_ms: Some(line.m),
            },
        );
    }
    Ok(out)
}
