//! Comparing a bucket with its peer and repairing the differences (resync and reconcile).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use indicatif::ProgressBar;

use super::ship::{self, Link};
use super::ReplError;
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

/// Size and ETag of one object on the peer.
struct Far {
    size: u64,
    etag: String,
}

fn same(local: &EntryRow, far: &Far) -> bool {
    if local.size.max(0) as u64 != far.size {
        return false;
    }
    let (a, b) = (local.etag.as_str(), far.etag.as_str());
    // another store's multipart ETags depend on its part sizes: the size has to do
    a.eq_ignore_ascii_case(b) || a.contains('-') || b.contains('-')
}

async fn local_files(store: &Store, link: &Link) -> Result<BTreeMap<String, EntryRow>, ReplError> {
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
        match (local.get(key), far.get(key)) {
            (Some(l), Some(f)) if same(l, f) => {
                // in step: remember what the peer holds, so later changes apply cleanly
                if store.mark(&link.mark_node(), &path).await?.is_none() {
                    store
                        .set_mark(&link.mark_node(), &path, Some(&l.etag))
                        .await?;
                }
            }
            // differing versions: the peer keeps the later one (mtime, then node id, to the
            // millisecond) and sends it back if it is its own, keeping the other as a copy
            (Some(_), _) => {
                if ship::ship(vfs, store, link, &path, None).await? {
                    sum.shipped += 1;
                }
            }
            (None, Some(_)) if link.rule.bidirectional => match pull(vfs, store, link, key).await {
                Ok(()) => sum.pulled += 1,
                Err(ReplError::Vfs(
                    e @ (VfsError::Forbidden(_) | VfsError::Locked(_) | VfsError::QuotaExceeded(_)),
                )) => {
                    tracing::warn!(bucket = %link.rule.bucket, peer = %link.rule.peer, %key,
                        error = %e, "resync: this node refused the peer's version");
                    sum.refused += 1;
                }
                Err(e) => return Err(e),
            },
            (None, Some(_)) => {
                link.remote.op.delete(key).await?;
                store.set_mark(&link.mark_node(), &path, None).await?;
                sum.deleted += 1;
            }
            (None, None) => {}
        }
        if let Some(b) = bar {
            b.inc(1);
        }
    }
    Ok(sum)
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
/// has no more rights than a push, and a folder that user may not write refuses it.
async fn pull(vfs: &Vfs, store: &Store, link: &Link, key: &str) -> Result<(), ReplError> {
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
    let (mut headers, mtime) = far_meta(link, key).await?;
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
    let mut up = vfs
        .receive_shipment(&user, &peer, &path, meta, opts)
        .await?;
    let reader = link.remote.op.reader(key).await?;
    let mut stream = reader.into_bytes_stream(..).await?;
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| ReplError::Unreachable(format!("reading {key}: {e}")))?
    {
        up.write(chunk).await?;
    }
    up.commit().await?;
    Ok(())
}
