//! Shipping one changed path to a peer: its current version (bytes, type, headers, user
//! metadata, owner, mode, tags and description), streamed, or a tombstone.

use std::collections::BTreeMap;

use super::remote::Remote;
use super::ReplError;
use crate::store::{EntryRow, RuleRow, Store};
use crate::vfs::replica::{is_replica_key, ReplicaMeta, Version};
use crate::vfs::{VPath, Vfs};

/// Bytes per S3 request when shipping: larger files travel as multipart uploads, so memory
/// per transfer stays bounded (part size x parts in flight, whatever the file size).
const PART: usize = 8 * 1024 * 1024;

/// Bytes read from local storage at a time.
const READ: u64 = 1024 * 1024;

/// A rule with everything needed to ship along it.
pub struct Link {
    /// The rule (bucket, prefix, direction).
    pub rule: RuleRow,
    /// The peer's bucket.
    pub remote: Remote,
    /// The peer's node id (Kura peers), or None for plain S3 stores.
    pub peer_node: Option<String>,
    /// This node's id.
    pub own: String,
    /// This node also pulls the peer's changes (`kura peer add --pull`).
    pub pull: bool,
    /// Our secret on the peer (for its journal feed).
    pub secret: String,
}

impl Link {
    /// The name replica marks are kept under for this peer.
    pub fn mark_node(&self) -> String {
        self.peer_node
            .clone()
            .unwrap_or_else(|| format!("s3:{}", self.rule.peer))
    }

    /// The object key of a local path in this rule's bucket, if the rule covers it.
    pub fn key_of<'a>(&self, path: &'a str) -> Option<&'a str> {
        let key = path
            .strip_prefix('/')?
            .strip_prefix(self.rule.bucket.as_str())?
            .strip_prefix('/')?;
        key.starts_with(self.rule.prefix.as_str()).then_some(key)
    }
}

/// Ships what `path` holds now (a journaled change, `origin` being where it came from).
/// Returns whether anything was sent.
pub async fn ship(
    vfs: &Vfs,
    store: &Store,
    link: &Link,
    path: &str,
    origin: Option<&str>,
) -> Result<bool, ReplError> {
    let Some(key) = link.key_of(path) else {
        return Ok(false);
    };
    // a change never goes back to the node it came from
    if origin.is_some() && origin == link.peer_node.as_deref() {
        return Ok(false);
    }
    // one shipment of a path to a peer at a time (the worker, a reconcile, a resync): each
    // reads the version and the base, ships and records the mark before the next reads them
    let _held = ship_lock(&link.mark_node(), path).lock_owned().await;
    let mut tries = 0;
    loop {
        tries += 1;
        return match store.entry(path).await? {
            Some(e) if e.is_dir => Ok(false),
            Some(e) if e.origin.is_some() && e.origin == link.peer_node => Ok(false),
            Some(e) if !can_ship(&e, &link.rule.peer) => Ok(false),
            Some(e) => {
                let base = store.mark(&link.mark_node(), path).await?;
                match put(vfs, link, key, &e, base).await {
                    // overwritten since its row was read: ship the newer version instead
                    Err(ReplError::Vfs(crate::vfs::VfsError::Changed(_))) if tries < 5 => continue,
                    r => r?,
                }
                store
                    .set_mark(&link.mark_node(), path, Some(&e.etag))
                    .await?;
                Ok(true)
            }
            None => {
                let base = store.mark(&link.mark_node(), path).await?;
                let origin = origin.map_or_else(|| link.own.clone(), str::to_string);
                let deleted = deleted_version(vfs, path).await?;
                tombstone(link, key, base, origin, deleted).await?;
                store.set_mark(&link.mark_node(), path, None).await?;
                Ok(true)
            }
        };
    }
}

/// The lock that serialises the shipments of `path` to the peer `node` in this process:
/// paths share a fixed number of stripes, so memory stays constant.
fn ship_lock(node: &str, path: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::hash::{Hash, Hasher};
    const STRIPES: usize = 61;
    static LOCKS: std::sync::OnceLock<Vec<std::sync::Arc<tokio::sync::Mutex<()>>>> =
        std::sync::OnceLock::new();
    let locks = LOCKS.get_or_init(|| {
        (0..STRIPES)
            .map(|_| std::sync::Arc::new(tokio::sync::Mutex::new(())))
            .collect()
    });
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (node, path).hash(&mut h);
    locks[(h.finish() % STRIPES as u64) as usize].clone()
}

/// Whether the file `e` can travel to `peer`: an SSE-C file opens only with its S3 client's
/// key, which this node never holds, so it is passed over (never retried) with a warning
/// naming it.
pub fn can_ship(e: &EntryRow, peer: &str) -> bool {
    if !crate::vfs::needs_customer_key(e.sealed.as_deref()) {
        return true;
    }
    tracing::warn!(path = %e.path, %peer, "not replicated: the file is encrypted with its S3 client's own key (SSE-C), which this server does not keep");
    false
}

/// What a peer is told about a version of ours (`own`: this node's id; `mirror`: a one-way
/// rule).
fn meta_for(own: &str, mirror: bool, e: &EntryRow, base: Option<String>) -> ReplicaMeta {
    ReplicaMeta {
        origin: e.origin.clone().unwrap_or_else(|| own.to_string()),
        from: own.to_string(),
        mtime_ms: e.mtime_ms,
        base,
        etag: Some(e.etag.clone()),
        tombstone: false,
        mirror,
        owner: e.owner.clone(),
        group: e.grp.clone(),
        perm: u32::try_from(e.mode & 0o777).ok(),
        deleted: None,
    }
}

/// Streams a file's bytes, type, headers and user metadata to the peer: a large file a Kura
/// peer holds an older version of as a delta (`delta_send::push`), anything else whole.
pub async fn put(
    vfs: &Vfs,
    link: &Link,
    key: &str,
    e: &EntryRow,
    base: Option<String>,
) -> Result<(), ReplError> {
    if link.peer_node.is_some() && super::delta::eligible(e.size.max(0) as u64) {
        // a large file the peer may hold an older version of: only the changed chunks
        let mut h = shipment_headers(&link.own, !link.rule.bidirectional, e);
        for (k, v) in meta_for(&link.own, !link.rule.bidirectional, e, base.clone()).user_metadata()
        {
            h.insert(format!("x-amz-meta-{k}"), v);
        }
        let path = VPath::parse(&e.path)?;
        let (peer, bucket, ct) = (&link.rule.peer, &link.rule.bucket, e.content_type.clone());
        if super::delta_send::push(vfs, &link.remote, peer, bucket, key, &path, &e.etag, ct, h)
            .await?
        {
            return Ok(());
        }
    }
    let headers: BTreeMap<String, String> = e
        .headers
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    let mut user: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("x-amz-meta-")?.to_string(), v.clone())))
        .filter(|(k, _)| !is_replica_key(k))
        .collect();
    if link.peer_node.is_some() {
        user.extend(meta_for(&link.own, !link.rule.bidirectional, e, base).user_metadata());
        // tags and description travel to Kura peers (a plain S3 store gets the bytes only)
        user.extend(crate::vfs::replica::annotation_metadata(&headers));
    }
    let mut w = link
        .remote
        .op
        .writer_with(key)
        .chunk(PART)
        .concurrent(2)
        .user_metadata(user);
    if let Some(ct) = &e.content_type {
        w = w.content_type(ct);
    }
    if let Some(v) = headers.get("content-disposition") {
        w = w.content_disposition(v);
    }
    if let Some(v) = headers.get("cache-control") {
        w = w.cache_control(v);
    }
    if let Some(v) = headers.get("content-encoding") {
        w = w.content_encoding(v);
    }
    // the bytes of exactly the version described (Changed: a newer one is there now)
    let reader = vfs.stored_reader(e).await?;
    let mut w = w.await?;
    let size = e.size.max(0) as u64;
    let mut at = 0u64;
    while at < size {
        let end = (at + READ).min(size);
        let buf = match reader.read_at(at, (end - at) as usize).await {
            Ok(b) => b,
            Err(err) => {
                let _ = w.abort().await;
                return Err(err.into());
            }
        };
        if buf.is_empty() {
            let _ = w.abort().await;
            return Err(ReplError::Invalid(format!(
                "{} shrank while shipping",
                e.path
            )));
        }
        at += buf.len() as u64;
        if let Err(err) = w.write(buf).await {
            let _ = w.abort().await;
            return Err(err.into());
        }
    }
    w.close().await?;
    crate::metrics::get().replication_bytes(&link.rule.peer, "push", "whole", size);
    Ok(())
}

/// The headers a Kura peer's PutObject of `e` would carry (user metadata with the replication
/// keys, tags and description, Content-Disposition, Cache-Control, Content-Encoding), for a
/// peer that pulls instead: it applies them as if they had been pushed.
pub fn shipment_headers(own: &str, mirror: bool, e: &EntryRow) -> BTreeMap<String, String> {
    let stored: BTreeMap<String, String> = e
        .headers
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    let mut out: BTreeMap<String, String> = stored
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("x-amz-meta-")
                .is_some_and(|m| !is_replica_key(m))
                || matches!(
                    k.as_str(),
                    "content-disposition" | "cache-control" | "content-encoding"
                )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let meta = meta_for(own, mirror, e, None).user_metadata();
    for (k, v) in meta
        .into_iter()
        .chain(crate::vfs::replica::annotation_metadata(&stored))
    {
        out.insert(format!("x-amz-meta-{k}"), v);
    }
    out
}

/// The version deleted at `path` here (its tombstone), which a tombstone names so that the
/// same bytes written again on the peer since (a later version) are not deleted with it.
pub async fn deleted_version(vfs: &Vfs, path: &str) -> Result<Option<Version>, ReplError> {
    Ok(vfs
        .tombstone(&VPath::parse(path)?)
        .await?
        .map(|t| Version::from(&t)))
}

/// The headers of a tombstone for a peer that pulls (see `shipment_headers`); `deleted`: the
/// version deleted here (`deleted_version`).
pub fn tombstone_headers(
    own: &str,
    mirror: bool,
    origin: String,
    deleted: Option<Version>,
) -> BTreeMap<String, String> {
    tombstone_meta(own, mirror, None, origin, deleted)
        .user_metadata()
        .into_iter()
        .map(|(k, v)| (format!("x-amz-meta-{k}"), v))
        .collect()
}

fn tombstone_meta(
    own: &str,
    mirror: bool,
    base: Option<String>,
    origin: String,
    deleted: Option<Version>,
) -> ReplicaMeta {
    ReplicaMeta {
        origin,
        from: own.to_string(),
        mtime_ms: crate::store::now_ms(),
        base,
        etag: None,
        tombstone: true,
        mirror,
        owner: None,
        group: None,
        perm: None,
        deleted,
    }
}

/// Tells the peer a file is gone (`base`: the version it is known to hold; `deleted`: the
/// version deleted here): a tombstone for Kura peers (so a newer update there survives, the
/// same bytes written again included), a plain DELETE for other S3 stores.
pub async fn tombstone(
    link: &Link,
    key: &str,
    base: Option<String>,
    origin: String,
    deleted: Option<Version>,
) -> Result<(), ReplError> {
    if link.peer_node.is_none() {
        link.remote.op.delete(key).await?;
        return Ok(());
    }
    let meta = tombstone_meta(&link.own, !link.rule.bidirectional, base, origin, deleted);
    link.remote
        .op
        .write_with(key, Vec::<u8>::new())
        .user_metadata(meta.user_metadata())
        .await?;
    Ok(())
}
