//! Pull replication for a node its peer cannot reach (`kura peer add ... --pull`): the
//! reachable node serves its journal after a cursor (`GET /api/replication/v1/journal`,
//! signed with a peer key, next to S3), and the puller applies each entry as a shipment
//! from that peer, fetching the bytes with an ordinary S3 GET over the connection it opened.
//!
//! The cursor is a `journal.seq` of the serving node. Sequence numbers are given inside the
//! change's write transaction, and SQLite has one writer at a time (`BEGIN IMMEDIATE`), so
//! seq order is commit order: no entry can appear below a cursor after the cursor passed
//! it. The puller stores its cursor after each applied entry, so a restart resumes there.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::ship::{self, Link};
use super::ReplError;
use crate::store::Store;
use crate::vfs::replica::{Peer, ReplicaMeta};
use crate::vfs::{UploadOptions, VPath, Vfs};

/// Where the feed is served (below the reserved `/api/` prefix: never a bucket).
pub const PATH: &str = "/api/replication/v1/journal";

/// Most entries one page may ask for.
pub const MAX_PAGE: i64 = 256;

/// One change of the serving node, as the puller applies it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FeedEntry {
    /// Its journal seq on the serving node.
    pub seq: i64,
    /// Object key in the bucket.
    pub key: String,
    /// The headers a push of this change would carry (`x-amz-meta-kura-*` included).
    pub headers: BTreeMap<String, String>,
    /// Content type of the version (none for a tombstone).
    pub content_type: Option<String>,
}

/// A page of the feed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FeedPage {
    /// Changes to apply, in commit order (one per key: its latest state).
    pub entries: Vec<FeedEntry>,
    /// The cursor to ask from next (the last seq this page covered).
    pub next: i64,
}

/// The serving side, held by the S3 adapter.
#[derive(Clone)]
pub struct Feed {
    /// Metadata.
    pub store: Store,
    /// How long deletions are remembered (a request of the feed is a contact with its peer).
    pub keep: Duration,
}

impl Feed {
    /// The changes of `bucket` after `after` for `peer` (proven by its key), whose node id is
    /// `node`. Needs a rule of this bucket towards that peer (which keeps the bucket
    /// journaled); for a peer without an address here, the rule's position follows the
    /// puller's cursor, so the journal is trimmed behind it and `kura peer status` shows
    /// its backlog.
    /// With `key`, the page holds that key's current state alone (a retry of a change the
    /// puller set aside), at seq `after`.
    pub async fn page(
        &self,
        peer: &Peer,
        node: &str,
        bucket: &str,
        after: i64,
        limit: i64,
        key: Option<&str>,
    ) -> Result<FeedPage, ReplError> {
        let rule = self
            .store
            .rules()
            .await?
            .into_iter()
            .find(|r| r.bucket == bucket && r.peer == peer.name)
            .ok_or_else(|| {
                ReplError::Invalid(format!("no rule replicates {bucket} to {}", peer.name))
            })?;
        let row = self.store.peer(&peer.name).await?;
        super::away::seen(&self.store, &peer.name, self.keep).await;
        if row.as_ref().is_some_and(|p| p.node_id.is_none()) {
            self.store.set_peer_node_id(&peer.name, node).await?;
        }
        if row.as_ref().is_some_and(|p| p.unreachable()) && after > rule.position {
            self.store
                .advance_rule(bucket, &peer.name, after, 0)
                .await?;
        }
        let own = self.store.node_id().await?;
        let rows = match key {
            Some(k) => vec![crate::store::JournalRow {
                seq: after,
                path: format!("/{bucket}/{k}"),
                origin: None,
                created_ms: 0,
            }],
            None => {
                self.store
                    .journal_after(bucket, after.max(0), limit.clamp(1, MAX_PAGE))
                    .await?
            }
        };
        let next = rows.last().map_or(after, |r| r.seq);
        let last: HashMap<&str, i64> = rows.iter().map(|r| (r.path.as_str(), r.seq)).collect();
        let mirror = !rule.bidirectional;
        let mut entries = Vec::new();
        for row in &rows {
            if last.get(row.path.as_str()) != Some(&row.seq) || row.origin.as_deref() == Some(node)
            {
                continue;
            }
            let Some(key) = key_of(bucket, &rule.prefix, &row.path) else {
                continue;
            };
            let (headers, content_type) = match self.store.entry(&row.path).await? {
                Some(e) if e.is_dir => continue,
                // a change never goes back to the node it came from
                Some(e) if e.origin.as_deref() == Some(node) => continue,
                Some(e) if !ship::can_ship(&e, &peer.name) => continue,
                Some(e) => (ship::shipment_headers(&own, mirror, &e), e.content_type),
                None => {
                    let origin = row.origin.clone().unwrap_or_else(|| own.clone());
                    let since = crate::store::now_ms() - self.keep.as_millis() as i64;
                    let deleted = self.store.tombstone(&row.path, since).await?;
                    let deleted = deleted.as_ref().map(crate::vfs::replica::Version::from);
                    (ship::tombstone_headers(&own, mirror, origin, deleted), None)
                }
            };
            entries.push(FeedEntry {
                seq: row.seq,
                key: key.to_string(),
                headers,
                content_type,
            });
        }
        Ok(FeedPage { entries, next })
    }
}

fn key_of<'a>(bucket: &str, prefix: &str, path: &'a str) -> Option<&'a str> {
    let key = path
        .strip_prefix('/')?
        .strip_prefix(bucket)?
        .strip_prefix('/')?;
    key.starts_with(prefix).then_some(key)
}

/// The user this node writes a peer's changes as: the user of that peer's peer key here
/// (a pull has no more rights than a push).
pub async fn acting_user(store: &Store, peer: &str) -> Result<crate::vfs::Caller, ReplError> {
    let user = match store.peer_key_user(peer).await? {
        Some(name) => crate::auth::caller_named(store, &name).await?,
        None => None,
    };
    user.ok_or_else(|| {
        ReplError::Invalid(format!(
            "cannot apply changes from peer {peer}: it has no peer key on this node to act as (kura peer key {peer} --user USER)"
        ))
    })
}

/// Asks the peer for the page after `after` (or for `key`'s current state).
async fn fetch(
    link: &Link,
    secret: &str,
    after: i64,
    key: Option<&str>,
) -> Result<FeedPage, ReplError> {
    let base = link.remote.endpoint();
    let url = reqwest::Url::parse(&format!("{base}{PATH}"))
        .map_err(|e| ReplError::Invalid(format!("bad endpoint {base}: {e}")))?;
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let mut query = vec![
        ("after", after.to_string()),
        ("bucket", link.rule.bucket.clone()),
        ("limit", MAX_PAGE.to_string()),
        ("node", link.own.clone()),
    ];
    if let Some(k) = key {
        query.push(("key", k.to_string()));
    }
    let headers = super::sign::sign_get(
        &host,
        PATH,
        &query,
        link.remote.access_key(),
        secret,
        time::OffsetDateTime::now_utc(),
    );
    let qs = query
        .iter()
        .map(|(k, v)| format!("{k}={}", super::sign::encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut req = link
        .remote
        .client()
        .get(format!("{base}{PATH}?{qs}"))
        .timeout(Duration::from_secs(60));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ReplError::Unreachable(format!("{url}: {}", crate::causes::chain(&e))))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ReplError::Unreachable(format!("{url}: {e}")))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(512)]).to_string();
        return Err(ReplError::Pull(status.as_u16(), text));
    }
    serde_json::from_slice(&body)
        .map_err(|e| ReplError::Invalid(format!("the peer's journal feed is unreadable: {e}")))
}

/// Applies one page of the peer's journal after the rule's stored cursor; returns how many
/// entries the page held (0: caught up).
pub async fn pull_once(
    vfs: &Vfs,
    store: &Store,
    link: &Link,
    secret: &str,
    after: i64,
) -> Result<(usize, i64), ReplError> {
    let page = fetch(link, secret, after, None).await?;
    if page.next <= after {
        return Ok((0, after));
    }
    let peer = Peer {
        name: link.rule.peer.clone(),
    };
    let user = acting_user(store, &peer.name).await?;
    let bucket = &link.rule.bucket;
    for e in &page.entries {
        let path = format!("/{bucket}/{}", e.key);
        match apply(vfs, store, link, &user, &peer, e).await {
            Ok(()) => store.unwait_key(bucket, &peer.name, &path, "pull").await?,
            // this node will not take it now (a lock, the quota, a permission), or the peer
            // will not give that object: the key waits aside and is asked for again later,
            // the others go on
            Err(err) if is_local_refusal(&err) || super::remote::is_object_refusal(&err) => {
                tracing::warn!(%bucket, peer = %peer.name, %path, error = %err,
                    "replication: a pulled change waits aside");
                let next = crate::store::now_ms() + 1000;
                let why = waiting_reason(&err);
                store
                    .wait_key(bucket, &peer.name, &path, "pull", None, &why, next)
                    .await?;
            }
            Err(err) => return Err(err),
        }
        store.set_pulled(bucket, &peer.name, e.seq).await?;
    }
    store.set_pulled(bucket, &peer.name, page.next).await?;
    Ok((page.entries.len().max(1), page.next))
}

/// A failure reading a peer's object: its answer when it gave one (a `403` for an object the
/// peer key's user may not read is about that key alone), else the connection's.
pub fn read_error(key: &str, err: std::io::Error) -> ReplError {
    match err.into_inner().map(|e| e.downcast::<opendal::Error>()) {
        Some(Ok(e)) => ReplError::Remote(*e),
        Some(Err(e)) => ReplError::Unreachable(format!("reading {key}: {e}")),
        None => ReplError::Unreachable(format!("reading {key}")),
    }
}

/// Whether the peer will not give a file to the user its peer key for this node acts as
/// there (`403 AccessDenied` on the GET: another user's private file, say): only a peer key
/// of an administrator there reads every file.
pub fn unreadable_there(e: &ReplError) -> bool {
    matches!(e, ReplError::Remote(o) if o.kind() == opendal::ErrorKind::PermissionDenied)
        && super::remote::is_object_refusal(e)
}

/// Why a pulled key waits, as `kura peer status` shows it: the peer's or this node's answer,
/// and for a file the peer will not give, what would let it travel.
pub fn waiting_reason(e: &ReplError) -> String {
    let why = super::remote::describe(e);
    if !unreadable_there(e) {
        return why;
    }
    format!(
        "{why}: the peer's key for this node acts there as a user who may not read this file \
         (another user's private file); retried less and less often. Private files travel only \
         with a peer key of an administrator there (docs/replication.md, \"Private files in pull \
         mode\")"
    )
}

/// Whether this node refused a peer's change for that key alone (a lock, its quota, a
/// permission): worth retrying later, not worth holding up the rule.
pub fn is_local_refusal(e: &ReplError) -> bool {
    matches!(
        e,
        ReplError::Vfs(
            crate::vfs::VfsError::Locked(_)
                | crate::vfs::VfsError::QuotaExceeded(_)
                | crate::vfs::VfsError::Forbidden(_)
        )
    )
}

/// Asks the peer for the current state of `path` (set aside earlier, or only there at a
/// resync) and applies it; false when the peer's feed has none to give (a version that came
/// from here: the feed never sends a change back where it came from).
pub async fn pull_key(
    vfs: &Vfs,
    store: &Store,
    link: &Link,
    secret: &str,
    path: &str,
) -> Result<bool, ReplError> {
    let Some(key) = link.key_of(path) else {
        return Ok(false);
    };
    let page = fetch(link, secret, 0, Some(key)).await?;
    let peer = Peer {
        name: link.rule.peer.clone(),
    };
    let user = acting_user(store, &peer.name).await?;
    for e in &page.entries {
        apply(vfs, store, link, &user, &peer, e).await?;
    }
    Ok(!page.entries.is_empty())
}

/// Applies one entry of the peer's feed as a shipment from it, its bytes fetched with an S3
/// GET of the same key.
async fn apply(
    vfs: &Vfs,
    store: &Store,
    link: &Link,
    user: &crate::vfs::Caller,
    peer: &Peer,
    e: &FeedEntry,
) -> Result<(), ReplError> {
    if link
        .key_of(&format!("/{}/{}", link.rule.bucket, e.key))
        .is_none()
    {
        return Ok(());
    }
    let stream = if is_tombstone(e) {
        None
    } else {
        // a large file this node holds an older version of: only the chunks it lacks
        let (path, meta, opts) = shipment_of(store, link, e).await?;
        if super::delta_send::pull(vfs, &link.remote, user, peer, &path, &e.key, &meta, &opts)
            .await?
        {
            return Ok(());
        }
        // the bytes of the very version the entry describes: a newer one (overwritten since
        // the page was made) is a later entry of the feed, or came from here
        let mut reader = link.remote.op.reader_with(&e.key);
        if let Some(etag) = &meta.etag {
            reader = reader.if_match(&format!("\"{etag}\""));
        }
        let opened = match reader.await {
            Ok(r) => r.into_bytes_stream(..).await,
            Err(err) => Err(err),
        };
        match opened {
            Ok(s) => Some(s),
            // gone since the page was made: its deletion is a later entry of the feed
            Err(err) if superseded(err.kind()) => return Ok(()),
            Err(err) => return Err(err.into()),
        }
    };
    match apply_entry(vfs, store, link, user, peer, e, stream).await {
        Err(ReplError::Remote(err)) if superseded(err.kind()) => Ok(()),
        r => r,
    }
}

/// Whether reading a feed entry's object failed because the entry is stale: the object is
/// gone or holds another version now (a later entry, or a version from here).
fn superseded(kind: opendal::ErrorKind) -> bool {
    matches!(
        kind,
        opendal::ErrorKind::NotFound | opendal::ErrorKind::ConditionNotMatch
    )
}

/// What applying `e` as a shipment takes: its path, its replica metadata with the base this
/// node knows the peer holds, and the upload's options.
async fn shipment_of(
    store: &Store,
    link: &Link,
    e: &FeedEntry,
) -> Result<(VPath, ReplicaMeta, UploadOptions), ReplError> {
    let path = VPath::parse(&format!("/{}/{}", link.rule.bucket, e.key))?;
    let mut headers = e.headers.clone();
    let Some(mut meta) = ReplicaMeta::take_from(&mut headers) else {
        return Err(ReplError::Invalid(format!(
            "the peer's feed entry for {} has no origin",
            e.key
        )));
    };
    // what this node knows the peer holds: the base the peer would have sent
    meta.base = store.mark(&link.mark_node(), path.as_str()).await?;
    meta.from = link.mark_node();
    // a state the page was made from before our newer version reached the peer: the peer
    // holds ours (the mark), so this is a concurrent edit, not an update of ours
    if let (Some(l), Some(base)) = (store.entry(path.as_str()).await?, meta.base.as_deref()) {
        if !meta.tombstone
            && l.etag == base
            && l.mtime_ms > meta.mtime_ms
            && l.origin.as_deref() != Some(link.mark_node().as_str())
        {
            meta.base = None;
        }
    }
    let opts = UploadOptions {
        create_parents: true,
        content_type: e.content_type.clone(),
        headers,
        ..Default::default()
    };
    Ok((path, meta, opts))
}

/// Whether an entry is a deletion (it carries no bytes).
pub fn is_tombstone(e: &FeedEntry) -> bool {
    ReplicaMeta::take_from(&mut e.headers.clone()).is_some_and(|m| m.tombstone)
}

/// Applies one change of the peer's (from its feed or its mailbox) as a shipment from it,
/// with the version's bytes from `stream` (None for a tombstone): the same plan (clean,
/// conflict, tombstone, no-op), locks, rights and quota as a push. A stream that ends in
/// `InvalidData` (bytes that fail their check) is refused as `Tampered`, nothing applied.
pub async fn apply_entry<S>(
    vfs: &Vfs,
    store: &Store,
    link: &Link,
    user: &crate::vfs::Caller,
    peer: &Peer,
    e: &FeedEntry,
    stream: Option<S>,
) -> Result<(), ReplError>
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    if link
        .key_of(&format!("/{}/{}", link.rule.bucket, e.key))
        .is_none()
    {
        return Ok(());
    }
    let (path, meta, opts) = shipment_of(store, link, e).await?;
    let mut up = vfs.receive_shipment(user, peer, &path, meta, opts).await?;
    if let Some(mut stream) = stream {
        loop {
            match stream.try_next().await {
                Ok(Some(chunk)) => {
                    let n = chunk.len() as u64;
                    crate::metrics::get().replication_bytes(&peer.name, "pull", "whole", n);
                    if let Err(err) = up.write(chunk).await {
                        up.abort().await;
                        return Err(err.into());
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    up.abort().await;
                    return Err(match err.kind() {
                        std::io::ErrorKind::NotFound => return Ok(()),
                        std::io::ErrorKind::InvalidData => {
                            ReplError::Tampered(format!("{}: {err}", e.key))
                        }
                        _ => read_error(&e.key, err),
                    });
                }
            }
        }
    }
    up.commit().await?;
    Ok(())
}
