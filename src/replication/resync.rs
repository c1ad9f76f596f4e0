//! Comparing a bucket with its peer and repairing the differences (resync and reconcile).
//!
//! Absence alone proves nothing: a key only on the peer was never seen here, or was deleted
//! here. A tombstone naming the very version the peer holds (ETag and modification time)
//! tells the second apart: the deletion goes to the peer. Without one the key is fetched
//! (and a key only here is shipped, where the peer's own tombstones decide the same way), so
//! a forgotten deletion can bring a file back, but nothing is ever deleted for being absent.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use indicatif::ProgressBar;

use super::ship::{self, Link};
use super::{feed, ReplError};
use crate::store::{EntryRow, Store};
use crate::vfs::replica::{is_replica_key, Peer, ReplicaMeta};
use crate::vfs::{UploadOptions, VPath, Vfs, VfsError};

/// What a resync found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Keys looked at (on either side).
    pub compared: u64,
    /// Versions sent to the peer.
    pub shipped: u64,
    /// Objects deleted on the peer (one-way mirrors only).
    pub deleted: u64,
    /// Versions fetched from the peer (two-way rules only).
    pub pulled: u64,
    /// Versions of the peer's that this node refused (the peer key's user may not write
    /// there, a lock, the quota): left out, logged, the rest goes on.
    pub refused: u64,
}

/// Size, ETag and modification time of one object on the peer (its bucket's listing, or
/// the manifest it sent through a mailbox).
pub struct Far {
    /// Bytes.
    pub size: u64,
    /// ETag.
    pub etag: String,
    /// Modification time, ms (the listing's, to the second).
    pub mtime_ms: Option<i64>,
}

/// What a resync does about one key, judged from both sides (the same for every transport).
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Same on both: the peer is known to hold this node's version.
    InStep,
    /// Nothing to do: absent on both, or only the peer changed it since they agreed (its
    /// change is on its way here).
    Nothing,
    /// This node's version goes to the peer (the peer's rules decide what it keeps).
    Ship,
    /// Deleted here, the very version the peer holds: the deletion goes there.
    DeleteThere,
    /// Only the peer has it, never seen here: fetched from it.
    Fetch,
    /// Only the peer has it and this node is its mirror's source: deleted there.
    Remove,
}

/// Judges one key (`path`, as this node holds it and as the peer does). Absence alone
/// proves nothing: only a tombstone naming the peer's version deletes there.
pub async fn judge(
    vfs: &Vfs,
    store: &Store,
    link: &Link,
    path: &str,
    local: Option<&EntryRow>,
    far: Option<&Far>,
) -> Result<Verdict, ReplError> {
    Ok(match (local, far) {
        (Some(l), Some(f)) if same(l, f) => Verdict::InStep,
        // differing, and this node still holds the version the peer is known to hold: only
        // the peer changed it, and its change is on its way here (its journal, or its own
        // reconcile): shipping this older version back would make it a conflict there
        (Some(l), Some(_))
            if link.rule.bidirectional
                && store.mark(&link.mark_node(), path).await?.as_deref()
                    == Some(l.etag.as_str()) =>
        {
            Verdict::Nothing
        }
        // differing versions: the peer keeps the later one (mtime, then node id, to the
        // millisecond) and sends it back if it is its own, keeping the other as a copy
        (Some(_), _) => Verdict::Ship,
        (None, Some(f)) if link.rule.bidirectional && deleted_here(vfs, path, f).await? => {
            Verdict::DeleteThere
        }
        (None, Some(_)) if link.rule.bidirectional => Verdict::Fetch,
        (None, Some(_)) => Verdict::Remove,
        (None, None) => Verdict::Nothing,
    })
}

fn same(local: &EntryRow, far: &Far) -> bool {
    if local.size.max(0) as u64 != far.size {
        return false;
    }
    let (a, b) = (local.etag.as_str(), far.etag.as_str());
    // another store's multipart ETags depend on its part sizes: the size has to do
    a.eq_ignore_ascii_case(b) || a.contains('-') || b.contains('-')
}

/// The rule's files on this node, by key.
pub async fn local_files(
    store: &Store,
    link: &Link,
) -> Result<BTreeMap<String, EntryRow>, ReplError> {
    let from = format!("/{}/{}", link.rule.bucket, link.rule.prefix);
    let to = format!("/{}0", link.rule.bucket);
    let mut out = BTreeMap::new();
    let mut after = String::new();
    loop {
        let page = store.files_in_range(&from, &to, &after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.path.clone();
        for e in page {
            if let Some(key) = link.key_of(&e.path) {
                out.insert(key.to_string(), e);
            }
        }
    }
    Ok(out)
}

async fn far_files(link: &Link) -> Result<BTreeMap<String, Far>, ReplError> {
    let mut out = BTreeMap::new();
    let mut lister = link
        .remote
        .op
        .lister_with(&link.rule.prefix)
        .recursive(true)
        .await?;
    while let Some(entry) = lister.try_next().await? {
        let m = entry.metadata();
        if m.is_dir() || entry.path().ends_with('/') {
            continue;
        }
        out.insert(
            entry.path().to_string(),
            Far {
                size: m.content_length(),
                etag: m.etag().unwrap_or_default().trim_matches('"').to_string(),
                mtime_ms: m.last_modified().map(|t| t.into_inner().as_millisecond()),
            },
        );
    }
    Ok(out)
}

/// Compares both sides and repairs every difference; `bar` shows progress.
pub async fn resync(
    vfs: &Vfs,
    store: &Store,
    link: &Link,
    bar: Option<&ProgressBar>,
) -> Result<Summary, ReplError> {
    let local = local_files(store, link).await?;
    let far = far_files(link).await?;
    let keys: BTreeSet<&String> = local.keys().chain(far.keys()).collect();
    if let Some(b) = bar {
        b.set_length(keys.len() as u64);
    }
    let mut sum = Summary::default();
    let bucket = format!("/{}", link.rule.bucket);
    for key in keys {
        sum.compared += 1;
        let path = format!("{bucket}/{key}");
        let (l, f) = (local.get(key), far.get(key));
        match judge(vfs, store, link, &path, l, f).await? {
            Verdict::InStep => {
                // in step: remember what the peer holds, so later changes apply cleanly
                if let Some(l) = l {
                    if store.mark(&link.mark_node(), &path).await?.is_none() {
                        store
                            .set_mark(&link.mark_node(), &path, Some(&l.etag))
                            .await?;
                    }
                }
            }
            Verdict::Nothing => {}
            Verdict::Ship => {
                if ship::ship(vfs, store, link, &path, None).await? {
                    sum.shipped += 1;
                }
            }
            Verdict::DeleteThere => {
                let etag = f.map(|f| f.etag.clone());
                ship::tombstone(link, key, etag, link.own.clone()).await?;
                store.set_mark(&link.mark_node(), &path, None).await?;
                sum.deleted += 1;
            }
            Verdict::Fetch => match fetch(vfs, store, link, key).await {
                Ok(true) => sum.pulled += 1,
                Ok(false) => {}
                Err(ReplError::Vfs(
                    e @ (VfsError::Forbidden(_) | VfsError::Locked(_) | VfsError::QuotaExceeded(_)),
                )) => {
                    tracing::warn!(bucket = %link.rule.bucket, peer = %link.rule.peer, %key,
                        error = %e, "resync: this node refused the peer's version");
                    sum.refused += 1;
                }
                // the peer will not give that object (its owner's mode keeps the peer key's
                // user out, say): the rest goes on
                Err(e) if super::remote::is_object_refusal(&e) => {
                    tracing::warn!(bucket = %link.rule.bucket, peer = %link.rule.peer, %key,
                        error = %super::remote::describe(&e), "resync: the peer refused its version");
                    sum.refused += 1;
                }
                Err(e) => return Err(e),
            },
            Verdict::Remove => {
                link.remote.op.delete(key).await?;
                store.set_mark(&link.mark_node(), &path, None).await?;
                sum.deleted += 1;
            }
        }
        if let Some(b) = bar {
            b.inc(1);
        }
    }
    Ok(sum)
}

/// Whether this node deleted the version `far` holds (ETag, and modification time to the
/// second, as listings give it) within `tombstone_days`.
async fn deleted_here(vfs: &Vfs, path: &str, far: &Far) -> Result<bool, ReplError> {
    let Some(t) = vfs.tombstone(&VPath::parse(path)?).await? else {
        return Ok(false);
    };
    let second = |ms: i64| ms.div_euclid(1000);
    Ok(t.etag.eq_ignore_ascii_case(&far.etag)
        && far
            .mtime_ms
            .is_some_and(|m| second(m) == second(t.mtime_ms)))
}

/// Fetches a key only the peer has: from a Kura peer through its journal feed (the version
/// with its owner, group, mode and times, applied as a shipment), else (a plain S3 store, a
/// peer with no rule back to this node, a version the feed does not send back here) as an
/// object. False when it is gone by now.
async fn fetch(vfs: &Vfs, store: &Store, link: &Link, key: &str) -> Result<bool, ReplError> {
    if link.peer_node.is_some() {
        let path = format!("/{}/{key}", link.rule.bucket);
        match feed::pull_key(vfs, store, link, &link.secret, &path).await {
            Ok(true) => return Ok(true),
            Ok(false) | Err(ReplError::Pull(403 | 404, _)) => {}
            Err(e) => return Err(e),
        }
    }
    pull(vfs, store, link, key).await
}

/// The peer's user metadata, type and modification time of an object. Its `kura-*`
/// metadata is not believed: there it is an ordinary user's, and would choose the version's
/// time and origin here.
async fn far_meta(link: &Link, key: &str) -> Result<(BTreeMap<String, String>, i64), ReplError> {
    let m = link.remote.op.stat(key).await?;
    let mut user = BTreeMap::new();
    if let Some(um) = m.user_metadata() {
        for (k, v) in um {
            let k = k
                .strip_prefix("x-amz-meta-")
                .unwrap_or(k)
                .to_ascii_lowercase();
            if !is_replica_key(&k) {
                user.insert(format!("x-amz-meta-{k}"), v.to_string());
            }
        }
    }
    let modified = m
        .last_modified()
        .map_or(0, |t| t.into_inner().as_millisecond());
    if let Some(ct) = m.content_type() {
        user.insert("content-type".into(), ct.to_string());
    }
    Ok((user, modified))
}

/// Fetches the peer's version of `key` and applies it as a shipment from that peer, written
/// as the user the peer's own shipments are written as here (its peer key's user): a pull
/// has no more rights than a push, and a folder that user may not write refuses it. False
/// when the key was deleted there meanwhile.
async fn pull(vfs: &Vfs, store: &Store, link: &Link, key: &str) -> Result<bool, ReplError> {
    let peer = Peer {
        name: link.rule.peer.clone(),
    };
    let user = match store.peer_key_user(&peer.name).await? {
        Some(name) => crate::auth::caller_named(store, &name).await?,
        None => None,
    };
    let Some(user) = user else {
        return Err(ReplError::Invalid(format!(
            "cannot fetch {key} from peer {}: it has no peer key on this node to act as (kura peer key {} --user USER)",
            peer.name, peer.name
        )));
    };
    let (mut headers, mtime) = match far_meta(link, key).await {
        Ok(m) => m,
        Err(ReplError::Remote(e)) if e.kind() == opendal::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let content_type = headers.remove("content-type");
    let path = VPath::parse(&format!("/{}/{key}", link.rule.bucket))?;
    let meta = ReplicaMeta {
        origin: link.mark_node(),
        from: link.mark_node(),
        mtime_ms: mtime,
        base: store.mark(&link.mark_node(), path.as_str()).await?,
        etag: None,
        tombstone: false,
        mirror: false,
        owner: None,
        group: None,
        perm: None,
    };
    let opts = UploadOptions {
        create_parents: true,
        content_type,
        headers,
        ..Default::default()
    };
    let mut stream = link
        .remote
        .op
        .reader(key)
        .await?
        .into_bytes_stream(..)
        .await?;
    let mut up = vfs
        .receive_shipment(&user, &peer, &path, meta, opts)
        .await?;
    loop {
        match stream.try_next().await {
            Ok(Some(chunk)) => {
                if let Err(e) = up.write(chunk).await {
                    up.abort().await;
                    return Err(e.into());
                }
            }
            Ok(None) => break,
            Err(e) => {
                up.abort().await;
                // deleted there between its stat and its bytes
                if e.kind() == std::io::ErrorKind::NotFound {
                    return Ok(false);
                }
                return Err(feed::read_error(key, e));
            }
        }
    }
    up.commit().await?;
    Ok(true)
}
