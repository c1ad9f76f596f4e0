//! Changes arriving from a replication peer: applied once, never echoed, conflicts kept.
//!
//! Receiving is an explicit call, `Vfs::receive_shipment`, which needs a `Peer`: the adapter
//! makes one only for a request signed with a peer key (never from headers), and the resync
//! pull for the peer key's user. A peer describes the version it ships with `x-amz-meta-kura-*`
//! metadata (see `ReplicaMeta`); from anyone else those names are plain user metadata.
//! The shipment wraps an ordinary upload with the caller's rights and the locks on the key;
//! owner, group and mode travel with the version and are mapped by name. The version
//! applies cleanly when this node still holds what the sender believes it holds (`base`);
//! otherwise both sides changed the file and the later version (mtime, then node id) wins,
//! the other is kept beside it as `NAME.conflictN`. A deletion that meets an update keeps
//! the update. A deleted file is remembered (a tombstone, `tombstone_days`): a peer shipping
//! the very version deleted here gets the deletion back instead of bringing the file back.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::upload::{to_the_end, Keep, Upload};
use super::{Caller, Entry, UploadOptions, VPath, VfsError};
use crate::store::{AttrChange, EntryRow, TombstoneRow};

const ORIGIN: &str = "x-amz-meta-kura-origin";
const FROM: &str = "x-amz-meta-kura-from";
const MTIME: &str = "x-amz-meta-kura-mtime";
const BASE: &str = "x-amz-meta-kura-base";
const ETAG: &str = "x-amz-meta-kura-etag";
const TOMBSTONE: &str = "x-amz-meta-kura-tombstone";
const MODE: &str = "x-amz-meta-kura-mode";
const OWNER: &str = "x-amz-meta-kura-owner";
const GROUP: &str = "x-amz-meta-kura-group";
const PERM: &str = "x-amz-meta-kura-perm";
/// A tombstone's deleted version: its ETag and modification time (ms) at the sender.
const DELETED_ETAG: &str = "x-amz-meta-kura-deleted-etag";
const DELETED_MTIME: &str = "x-amz-meta-kura-deleted-mtime";
/// The shipped version's tags (URL query form) and description (percent-encoded).
const TAGS: &str = "x-amz-meta-kura-tags";
const DESCRIPTION: &str = "x-amz-meta-kura-description";

/// A replication peer, as proven by the key a request was signed with: the capability to
/// call `Vfs::receive_shipment`. Adapters make one only from an authenticated peer key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The name the peer key is bound to on this node.
    pub name: String,
}

/// Suffix of conflict copies, numbered as rclone bisync's `--conflict-loser num` does.
pub const CONFLICT_SUFFIX: &str = ".conflict";

/// What a peer says about the version it ships.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaMeta {
    /// Node the version was written on.
    pub origin: String,
    /// Node sending it (whose knowledge `base` is).
    pub from: String,
    /// Modification time at the origin, ms since the epoch.
    pub mtime_ms: i64,
    /// The version the sender believes this node holds (None: nothing known).
    pub base: Option<String>,
    /// ETag of the version at the origin (kept so multipart ETags compare equal).
    pub etag: Option<String>,
    /// The file was deleted (the body is empty).
    pub tombstone: bool,
    /// One-way mirror: the sender's version always replaces this node's.
    pub mirror: bool,
    /// Owning user at the sender (mapped by name here).
    pub owner: Option<String>,
    /// Owning group at the sender (mapped by name here).
    pub group: Option<String>,
    /// Permission bits at the sender.
    pub perm: Option<u32>,
    /// A tombstone's deleted version at the sender (None: not known, an older sender's).
    pub deleted: Option<Version>,
}

/// One version of a file, as every node names it: its ETag and modification time (a rewrite
/// of the same bytes has the same ETag and a later time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// ETag.
    pub etag: String,
    /// Modification time, ms since the epoch.
    pub mtime_ms: i64,
}

impl From<&TombstoneRow> for Version {
    fn from(t: &TombstoneRow) -> Self {
        Version {
            etag: t.etag.clone(),
            mtime_ms: t.mtime_ms,
        }
    }
}

impl ReplicaMeta {
    /// Takes the replication keys out of an upload's headers; None for an ordinary write.
    pub fn take_from(h: &mut BTreeMap<String, String>) -> Option<Self> {
        if !h.contains_key(ORIGIN) {
            return None;
        }
        take_annotations(h);
        let origin = h.remove(ORIGIN)?;
        let meta = ReplicaMeta {
            from: h.remove(FROM).unwrap_or_else(|| origin.clone()),
            origin,
            mtime_ms: h.remove(MTIME).and_then(|v| v.parse().ok()).unwrap_or(0),
            base: h.remove(BASE).filter(|b| !b.is_empty()),
            etag: h.remove(ETAG).filter(|b| !b.is_empty()),
            tombstone: h.remove(TOMBSTONE).is_some_and(|v| v == "1"),
            mirror: h.remove(MODE).is_some_and(|v| v == "mirror"),
            owner: h.remove(OWNER).filter(|v| !v.is_empty()),
            group: h.remove(GROUP).filter(|v| !v.is_empty()),
            perm: h
                .remove(PERM)
                .and_then(|v| u32::from_str_radix(&v, 8).ok())
                .map(|m| m & 0o777),
            deleted: match (h.remove(DELETED_ETAG), h.remove(DELETED_MTIME)) {
                (Some(etag), Some(m)) if !etag.is_empty() => {
                    m.parse().ok().map(|mtime_ms| Version { etag, mtime_ms })
                }
                _ => None,
            },
        };
        Some(meta)
    }

    /// The S3 user metadata (names without `x-amz-meta-`) that carries it.
    pub fn user_metadata(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (ORIGIN, self.origin.clone()),
            (FROM, self.from.clone()),
            (MTIME, self.mtime_ms.to_string()),
            (BASE, self.base.clone().unwrap_or_default()),
            (ETAG, self.etag.clone().unwrap_or_default()),
            (MODE, if self.mirror { "mirror" } else { "sync" }.into()),
        ];
        if self.tombstone {
            out.push((TOMBSTONE, "1".into()));
        }
        for (k, v) in [(OWNER, &self.owner), (GROUP, &self.group)] {
            if let Some(v) = v {
                out.push((k, v.clone()));
            }
        }
        if let Some(m) = self.perm {
            out.push((PERM, format!("{m:03o}")));
        }
        if let Some(d) = &self.deleted {
            out.push((DELETED_ETAG, d.etag.clone()));
            out.push((DELETED_MTIME, d.mtime_ms.to_string()));
        }
        out.into_iter()
            .map(|(k, v)| (k["x-amz-meta-".len()..].to_string(), v))
            .collect()
    }
}

/// The user metadata (names without `x-amz-meta-`) that carries a version's tags and
/// description to a Kura peer, from its stored headers.
pub fn annotation_metadata(headers: &BTreeMap<String, String>) -> Vec<(String, String)> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let mut out = Vec::new();
    let tags = super::tags::tags_of(headers);
    if !tags.is_empty() {
        out.push((TAGS, super::tags::to_query(&tags)));
    }
    if let Some(d) = super::tags::description_of(headers) {
        out.push((
            DESCRIPTION,
            utf8_percent_encode(d, NON_ALPHANUMERIC).to_string(),
        ));
    }
    out.into_iter()
        .map(|(k, v)| (k["x-amz-meta-".len()..].to_string(), v))
        .collect()
}

/// Turns the shipped tags and description back into the headers they are stored as; what
/// breaks the core's limits is dropped (the bytes still apply).
fn take_annotations(h: &mut BTreeMap<String, String>) {
    if let Some(q) = h.remove(TAGS) {
        match super::tags::parse_query(&q) {
            Ok(t) => super::tags::put_tags(h, &t),
            Err(e) => tracing::warn!(error = %e, "shipped tags dropped"),
        }
    }
    if let Some(d) = h.remove(DESCRIPTION) {
        let d = percent_encoding::percent_decode_str(&d)
            .decode_utf8_lossy()
            .into_owned();
        if super::tags::check_description(&d).is_ok() {
            h.insert(super::tags::DESCRIPTION.to_string(), d);
        }
    }
}

impl super::Vfs {
    /// How long deletions are remembered for peers (`replication.tombstone_days`).
    pub fn tombstone_keep(&self) -> std::time::Duration {
        self.tombstone_keep
    }

    /// The deletion of `path` remembered here, unless older than `tombstone_keep`: an older
    /// one is as good as forgotten, whether pruned yet or not.
    pub async fn tombstone(&self, path: &VPath) -> Result<Option<TombstoneRow>, VfsError> {
        let since = crate::store::now_ms() - self.tombstone_keep.as_millis() as i64;
        Ok(self.store.tombstone(path.as_str(), since).await?)
    }

    /// The bytes of the version `row` of a file as clients see them (plaintext, whatever the
    /// bucket stores), for shipping to a peer (no permission check: the replicator acts for
    /// the node, not for a user); the peer seals them by its own bucket's setting. The row is
    /// read again and the bytes opened under the path's read lock, so they are that version's:
    /// `Changed` when a newer one was committed since `row` was read (the shipment then
    /// describes the newer one), never one version's description over another's bytes.
    pub async fn stored_reader(&self, row: &EntryRow) -> Result<super::Download, VfsError> {
        let path = VPath::parse(&row.path)?;
        let held = self.path_locks.read(path.as_str()).await;
        let entry = self.lookup(&path).await?.ok_or(VfsError::NotFound)?;
        if entry.is_dir {
            return Err(VfsError::WrongKind("is a folder"));
        }
        if entry.etag != row.etag || entry.sealed != row.sealed || entry.size != row.size as u64 {
            return Err(VfsError::Changed("the file changed since its row was read"));
        }
        let opened = self.open_unchecked(&entry, None).await;
        drop(held);
        opened
    }

    /// Starts receiving the version `meta` of `path` from `peer`, written as `c` (the peer
    /// key's user, with that user's rights and quota). A locked file is neither replaced,
    /// moved aside nor deleted: the shipment is refused and the sender retries it later.
    pub async fn receive_shipment(
        &self,
        c: &Caller,
        peer: &Peer,
        path: &VPath,
        meta: ReplicaMeta,
        opts: UploadOptions,
    ) -> Result<Shipment, VfsError> {
        // a shipment carries no lock token: any lock on the file or its conflict copy refuses it
        self.check_unlocked(c, vec![(path.clone(), false)]).await?;
        let planned = plan(self, path, meta, &opts.headers).await?;
        let target = planned.target().clone();
        if &target != path {
            self.check_unlocked(c, vec![(target.clone(), false)])
                .await?;
        }
        tracing::debug!(peer = %peer.name, path = %path, "receiving a shipment");
        let (writer, attrs) = self.shipment_writer(c, &target).await?;
        // a writer who may not delete and re-create the file keeps its owner, group and mode
        let keep = match attrs {
            true => keep_for(self, peer, &target, &c.user, &planned.meta).await?,
            false => Keep::default(),
        };
        let mut up = self.upload(&writer, &target, opts).await?;
        up.keep = keep;
        Ok(Shipment {
            up,
            planned: Some(planned),
            caller: c.clone(),
            peer: peer.clone(),
        })
    }
}

/// A write being received: an ordinary upload, or a peer's shipment.
#[derive(Debug)]
pub enum Incoming {
    /// Anyone's upload (replication metadata from a non-peer is plain user metadata).
    Plain(Box<Upload>),
    /// A version shipped by an authenticated peer.
    Shipped(Box<Shipment>),
}

impl Incoming {
    /// Appends a chunk.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), VfsError> {
        match self {
            Incoming::Plain(u) => u.write(chunk).await,
            Incoming::Shipped(s) => s.write(chunk).await,
        }
    }

    /// Replaces the headers to store.
    pub fn set_headers(&mut self, headers: BTreeMap<String, String>) {
        match self {
            Incoming::Plain(u) => u.set_headers(headers),
            Incoming::Shipped(s) => s.set_headers(headers),
        }
    }

    /// Discards what was written.
    pub async fn abort(&mut self) {
        match self {
            Incoming::Plain(u) => u.abort().await,
            Incoming::Shipped(s) => s.abort().await,
        }
    }

    /// Makes the write visible.
    pub async fn commit(&mut self) -> Result<Entry, VfsError> {
        match self {
            Incoming::Plain(u) => u.commit().await,
            Incoming::Shipped(s) => s.commit().await,
        }
    }
}

impl super::Vfs {
    /// Starts a write of `path` by `c`: a shipment when `peer` (proven by the request's key)
    /// sent replication metadata, an ordinary upload otherwise. Headers alone never make a
    /// shipment.
    pub async fn receive(
        &self,
        c: &Caller,
        peer: Option<&Peer>,
        path: &VPath,
        mut opts: UploadOptions,
    ) -> Result<Incoming, VfsError> {
        if let Some(peer) = peer {
            if let Some(meta) = ReplicaMeta::take_from(&mut opts.headers) {
                let s = self.receive_shipment(c, peer, path, meta, opts).await?;
                return Ok(Incoming::Shipped(Box::new(s)));
            }
        }
        Ok(Incoming::Plain(Box::new(self.upload(c, path, opts).await?)))
    }
}

impl super::Vfs {
    /// Who writes a shipment onto `target`: the peer key's user, with its rights, and whether
    /// the shipped owner, group and mode apply. A file it may not write itself (another
    /// user's 600 file, shipped here earlier with its owner) it may still replace when it may
    /// change names in the file's folder, as it could delete and re-create it there; only
    /// that replacement is let through, after those checks, and nothing else. A file it may
    /// write but neither owns nor could re-create (another's 666 file in a 755 folder) gets
    /// the shipped bytes only: its owner, group and mode stay, as for any write by a
    /// non-owner, so a peer key cannot take a file over.
    async fn shipment_writer(
        &self,
        c: &Caller,
        target: &VPath,
    ) -> Result<(Caller, bool), VfsError> {
        let Some(file) = self.lookup(target).await?.filter(|e| !e.is_dir) else {
            return Ok((c.clone(), true));
        };
        if c.is_admin || file.owned_by(c) {
            return Ok((c.clone(), true));
        }
        let renames = match self.stat(c, &target.parent()).await {
            Ok(folder) => Self::require_name_change(c, &folder, Some(&file)),
            Err(e) => Err(e),
        };
        if file.require(c, super::perm::W, "").is_ok() {
            return Ok((c.clone(), renames.is_ok()));
        }
        renames?;
        Ok((
            Caller {
                is_admin: true,
                ..c.clone()
            },
            true,
        ))
    }
}

/// Owner, group and mode of a shipped version, mapped by name: a user or group this node
/// does not have falls back to the default (the receiving user `me`, the peer key's; the
/// folder's group rule), and is recorded for `kura peer status`.
async fn keep_for(
    vfs: &super::Vfs,
    peer: &Peer,
    path: &VPath,
    me: &str,
    r: &ReplicaMeta,
) -> Result<Keep, VfsError> {
    let owner = match &r.owner {
        Some(u) if vfs.store.user(u).await?.is_some() => Some(u.clone()),
        Some(u) => {
            tracing::warn!(peer = %peer.name, user = %u, %path, stands_in = %me,
                "replication: the peer's owner is not a user here");
            vfs.store
                .note_unmapped(&peer.name, "user", u, me, path.as_str())
                .await?;
            None
        }
        None => None,
    };
    let group = match &r.group {
        Some(g) if vfs.store.group(g).await?.is_some() => Some(g.clone()),
        Some(g) => {
            tracing::warn!(peer = %peer.name, group = %g, %path,
                "replication: the peer's group is not a group here");
            vfs.store
                .note_unmapped(&peer.name, "group", g, "the folder's group", path.as_str())
                .await?;
            None
        }
        None => None,
    };
    Ok(Keep {
        owner,
        group,
        mode: r.perm,
    })
}

/// A shipment being received: its bytes go to an ordinary upload, and its commit applies
/// the replica rules (no-op, clean, conflict, tombstone).
#[derive(Debug)]
pub struct Shipment {
    up: Upload,
    planned: Option<Planned>,
    /// The peer key's user, and the peer: for deciding again at the commit.
    caller: Caller,
    peer: Peer,
}

impl Shipment {
    /// Appends a chunk of the shipped bytes.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), VfsError> {
        self.up.write(chunk).await
    }

    /// Replaces the headers to store (the replication keys never stay among them).
    pub fn set_headers(&mut self, mut headers: BTreeMap<String, String>) {
        ReplicaMeta::take_from(&mut headers);
        self.up.set_headers(headers);
    }

    /// Discards the shipped bytes.
    pub async fn abort(&mut self) {
        self.up.abort().await
    }

    /// Applies the shipped version as planned when the transfer started, provided this node
    /// still holds what the plan was judged against: every write of the plan is conditional
    /// on it inside its own transaction. A local write that landed meanwhile makes the plan
    /// be decided again against it (the conflict rule: the later version wins, the other is
    /// kept as a conflict copy), with the same staged bytes; so neither write is lost.
    pub async fn commit(&mut self) -> Result<Entry, VfsError> {
        let mut up = self.up.detach();
        let planned = self.planned.take();
        let (caller, peer) = (self.caller.clone(), self.peer.clone());
        to_the_end(async move {
            let (md5, size) = up.seal().await?;
            let Some(mut p) = planned else {
                return Err(VfsError::Conflict("the shipment was committed already"));
            };
            up.keep_refused = true;
            let mut tries = 0;
            loop {
                tries += 1;
                pause_point("shipment", &p.key).await;
                match finish(&mut up, &md5, size, &p).await {
                    Err(VfsError::Changed(why)) if tries < DECIDE_AGAIN => {
                        tracing::info!(path = %p.key, why,
                            "replication: the file changed here while a shipment arrived; deciding again");
                        p = match replan(&mut up, &caller, &peer, p).await {
                            Ok(p) => p,
                            Err(e) => {
                                up.abort().await;
                                return Err(e);
                            }
                        };
                    }
                    Err(e) => {
                        up.abort().await;
                        return Err(e);
                    }
                    Ok(entry) => return Ok(entry),
                }
            }
        })
        .await
    }
}

/// How often a shipment is decided again when local writes keep landing under it; then it is
/// refused (`Changed`) and the sender ships it again later.
const DECIDE_AGAIN: u32 = 5;

/// Decides again what the shipment in `up` does, against what this node holds now, and
/// points the staged bytes at the plan's target with its writer, owner, group and mode.
async fn replan(up: &mut Upload, c: &Caller, peer: &Peer, p: Planned) -> Result<Planned, VfsError> {
    let vfs = up.vfs.clone();
    vfs.check_unlocked(c, vec![(p.key.clone(), false)]).await?;
    let planned = plan(&vfs, &p.key, p.meta, up.headers()).await?;
    let target = planned.target().clone();
    let (writer, attrs) = vfs.shipment_writer(c, &target).await?;
    let keep = match attrs {
        true => keep_for(&vfs, peer, &target, &c.user, &planned.meta).await?,
        false => Keep::default(),
    };
    up.retarget(&writer, &target, keep).await?;
    Ok(planned)
}

/// Whether a user metadata name (without `x-amz-meta-`) is one of replication's own.
pub fn is_replica_key(name: &str) -> bool {
    name.starts_with("kura-")
}

/// The ETag a shipped version is recorded with: the origin's, unless the bytes disprove it.
fn version_etag(r: &ReplicaMeta, md5: &str) -> String {
    match &r.etag {
        Some(e) if e.contains('-') => e.clone(),
        _ => md5.to_string(),
    }
}

#[derive(Debug)]
/// What a shipped version will do, decided when its transfer starts (so that the bytes go
/// straight to where they will stay).
pub(super) enum Plan {
    /// This node holds the version already.
    Noop(Box<EntryRow>),
    /// This node holds a later version from the same origin: the shipment arrived late.
    Stale(Box<EntryRow>),
    /// A deletion.
    Tombstone,
    /// Replaces what is here (nothing changed here since the sender last saw it): the
    /// version `local` (None: nothing was here).
    Clean { local: Option<String> },
    /// A conflict the shipped version wins: this node's version `local` moves to `copy`
    /// first (unless that copy `exists` already).
    Wins {
        copy: VPath,
        exists: bool,
        local: String,
    },
    /// A conflict this node's version wins: the shipped one is stored as `copy` (unless
    /// that copy `exists` already), and this node's version goes back to the sender.
    Loses { copy: VPath, exists: bool },
    /// This node deleted exactly this version (a tombstone): it is not brought back, and
    /// the deletion goes to the sender instead.
    Deleted,
}

/// A shipped version with its plan.
#[derive(Debug)]
pub(super) struct Planned {
    meta: ReplicaMeta,
    plan: Plan,
    key: VPath,
}

impl Planned {
    /// Where the bytes are written.
    pub(super) fn target(&self) -> &VPath {
        match &self.plan {
            Plan::Loses { copy, .. } => copy,
            _ => &self.key,
        }
    }
}

/// Whether the stored headers `local` (JSON) hold the tags and description of `shipped`.
fn same_annotations(local: Option<&str>, shipped: &BTreeMap<String, String>) -> bool {
    let local = super::headers_from(local);
    [super::tags::TAGS, super::tags::DESCRIPTION]
        .iter()
        .all(|k| local.get(*k) == shipped.get(*k))
}

/// Decides what the version `r` shipped for `path` (with `headers`) will do.
async fn plan(
    vfs: &super::Vfs,
    path: &VPath,
    r: ReplicaMeta,
    headers: &BTreeMap<String, String>,
) -> Result<Planned, VfsError> {
    let local = vfs.store.entry(path.as_str()).await?.filter(|e| !e.is_dir);
    let plan = if r.tombstone {
        Plan::Tombstone
    } else if let Some(l) = local.as_ref().filter(|l| {
        r.etag.as_deref() == Some(l.etag.as_str())
            && l.mtime_ms == r.mtime_ms
            && same_annotations(l.headers.as_deref(), headers)
    }) {
        // here already: nothing to do, and nothing to journal (this cuts loops)
        Plan::Noop(Box::new(l.clone()))
    } else {
        match local {
            None if !r.mirror && deleted_here(vfs, path, &r).await? => Plan::Deleted,
            None => Plan::Clean { local: None },
            Some(l) if r.mirror || r.base.as_deref() == Some(l.etag.as_str()) => Plan::Clean {
                local: Some(l.etag),
            },
            // this node holds a version written on the sender and has not changed it since
            // (a write here makes the origin its own): the sender's version is an update of
            // it, whatever base the sender believed (its mark is stale when this node fetched
            // that version itself, a resync's pull, say); an older one arriving late is stale
            Some(l) if l.origin.as_deref() == Some(r.from.as_str()) => {
                if l.origin.as_deref() == Some(r.origin.as_str()) && r.mtime_ms < l.mtime_ms {
                    Plan::Stale(Box::new(l))
                } else {
                    Plan::Clean {
                        local: Some(l.etag),
                    }
                }
            }
            Some(l) => {
                // both sides changed the file since they last agreed: the later version wins
                let own = vfs.store.node_id().await?;
                let local_key = (l.mtime_ms, l.origin.clone().unwrap_or(own));
                if (r.mtime_ms, r.origin.clone()) > local_key {
                    let (copy, exists) = conflict_copy(vfs, path, &l.etag).await?;
                    Plan::Wins {
                        copy,
                        exists,
                        local: l.etag,
                    }
                } else {
                    let etag = r.etag.clone().unwrap_or_default();
                    let (copy, exists) = conflict_copy(vfs, path, &etag).await?;
                    Plan::Loses { copy, exists }
                }
            }
        }
    };
    Ok(Planned {
        meta: r,
        plan,
        key: path.clone(),
    })
}

/// Whether this node deleted the very version `r` (same ETag and modification time) within
/// `tombstone_days`.
async fn deleted_here(vfs: &super::Vfs, path: &VPath, r: &ReplicaMeta) -> Result<bool, VfsError> {
    let Some(etag) = r.etag.as_deref() else {
        return Ok(false);
    };
    Ok(vfs
        .tombstone(path)
        .await?
        .is_some_and(|t| t.etag == etag && t.mtime_ms == r.mtime_ms))
}

/// Carries out a plan once the bytes are in `up`, sealed as `md5`/`size`. Each write is
/// conditional on what the plan was judged against (`Changed` when that moved: decide again).
async fn finish(up: &mut Upload, md5: &str, size: u64, p: &Planned) -> Result<Entry, VfsError> {
    let store = up.vfs.store.clone();
    let (r, key) = (&p.meta, &p.key);
    let md5 = md5.to_string();
    let etag = version_etag(r, &md5);
    match &p.plan {
        // a mirror is a copy: what was written on it meanwhile goes too
        Plan::Clean { .. } if r.mirror => up.require(false, None),
        Plan::Clean { local } => up.require(local.is_none(), local.clone()),
        Plan::Wins {
            copy,
            exists,
            local,
        } => {
            tracing::warn!(path = %key, copy = %copy, "replication conflict: the peer's version won");
            if *exists {
                up.require(false, Some(local.clone()));
            } else {
                // this node's version (the one judged, nothing else) steps aside first, onto
                // a free name
                let rules = crate::store::MoveRules {
                    if_match: Some(local),
                    create_new: true,
                    ..Default::default()
                };
                match up.vfs.rename_checked(&up.caller, key, copy, rules).await {
                    Ok(()) => {}
                    Err(VfsError::Exists | VfsError::NotFound) => {
                        return Err(VfsError::Changed("the file or its conflict copy changed"))
                    }
                    Err(e) => return Err(e),
                }
                up.require(true, None);
            }
        }
        // a new name, free when the plan was made
        Plan::Loses { exists: false, .. } => up.require(true, None),
        _ => {}
    }
    let wrote = matches!(
        p.plan,
        Plan::Clean { .. } | Plan::Wins { .. } | Plan::Loses { exists: false, .. }
    );
    let entry = match &p.plan {
        Plan::Noop(l) => {
            up.abort().await;
            // the version held here already, but its owner, group or mode changed there (a
            // chmod or chown travels as its file): only those change, and nothing is journaled
            if up.keep.differs_from(l) {
                keep_attrs(up, &Entry::from_row((**l).clone())?).await?;
                match store.entry(key.as_str()).await? {
                    Some(now) => Entry::from_row(now)?,
                    None => gone(key),
                }
            } else {
                Entry::from_row((**l).clone())?
            }
        }
        Plan::Tombstone => {
            up.abort().await;
            return delete(up, key, r).await;
        }
        Plan::Stale(l) => {
            up.abort().await;
            // nothing learnt of what the sender holds: no mark
            return Entry::from_row((**l).clone());
        }
        Plan::Deleted => {
            up.abort().await;
            tracing::warn!(path = %key, from = %r.from,
                "replication: a peer sent a version deleted here; the deletion goes back to it");
            // the sender holds that version: the tombstone journaled now deletes it there
            store.set_mark(&r.from, key.as_str(), Some(&etag)).await?;
            store.journal_path(key.as_str()).await?;
            return Ok(gone(key));
        }
        Plan::Clean { .. } | Plan::Wins { .. } => {
            up.record(
                md5,
                size,
                r.mtime_ms,
                Some(r.origin.clone()),
                Some(etag.clone()),
            )
            .await?
        }
        Plan::Loses { copy, exists } => {
            tracing::warn!(path = %key, copy = %copy, "replication conflict: this node's version won");
            // the winner goes back to the sender (which may not know it: a resync, say)
            store.journal_path(key.as_str()).await?;
            if *exists {
                up.abort().await;
                match store.entry(key.as_str()).await? {
                    Some(l) => Entry::from_row(l)?,
                    None => gone(key),
                }
            } else {
                // a change of this node's, so that the copy reaches the sender too
                up.record(md5, size, r.mtime_ms, None, Some(etag.clone()))
                    .await?
            }
        }
    };
    if wrote {
        keep_attrs(up, &entry).await?;
    }
    store.set_mark(&r.from, key.as_str(), Some(&etag)).await?;
    Ok(entry)
}

/// Gives a replaced file the shipped owner, group and mode too (a commit over an existing
/// file keeps the old ones).
async fn keep_attrs(up: &Upload, entry: &Entry) -> Result<(), VfsError> {
    let (k, store, path) = (&up.keep, &up.vfs.store, entry.path.as_str());
    if let Some(m) = k.mode {
        store
            .set_mode(path, i64::from(m), AttrChange::Applied)
            .await?;
    }
    if k.owner.is_some() || k.group.is_some() {
        store
            .set_ownership(
                path,
                k.owner.as_deref(),
                k.group.as_deref(),
                AttrChange::Applied,
            )
            .await?;
    }
    Ok(())
}

/// A tombstone: deletes the file unless it changed here since the sender last saw it. The
/// version is checked again inside the delete's transaction, so a write that lands here
/// meanwhile stays (delete versus update: the update wins).
async fn delete(up: &mut Upload, path: &VPath, r: &ReplicaMeta) -> Result<Entry, VfsError> {
    let store = up.vfs.store.clone();
    let local = store.entry(path.as_str()).await?.filter(|e| !e.is_dir);
    let Some(l) = local else {
        store.set_mark(&r.from, path.as_str(), None).await?;
        return Ok(gone(path));
    };
    if r.mirror || seen_by_sender(&l, r) {
        pause_point("tombstone", path).await;
        // a mirror is a copy: what was written on it meanwhile goes too; otherwise only the
        // version judged (ETag and modification time) is deleted
        let seen = (!r.mirror).then_some((l.etag.as_str(), l.mtime_ms));
        match up
            .vfs
            .delete_from(&up.caller, path, Some(&r.origin), seen)
            .await
        {
            Ok(()) | Err(VfsError::NotFound) => {
                store.set_mark(&r.from, path.as_str(), None).await?;
                return Ok(gone(path));
            }
            Err(VfsError::Changed(_)) => {}
            Err(e) => return Err(e),
        }
    }
    // delete versus update: the update stays (and reaches the sender in its own time)
    tracing::warn!(path = %path, "replication: a deletion met a newer update here; the update stays");
    match store.entry(path.as_str()).await? {
        Some(l) if !l.is_dir => Entry::from_row(l),
        _ => Ok(gone(path)),
    }
}

/// Whether the version `l` held here is one the sender of the tombstone `r` had seen, so
/// that its deletion covers it: the very version it deleted (ETag and modification time), or
/// the version it knew this node held (`base`, an ETag) unless that ETag here is a later
/// write than the version deleted (the same bytes written again after it: an update, which
/// wins over the deletion).
fn seen_by_sender(l: &EntryRow, r: &ReplicaMeta) -> bool {
    let deleted = r.deleted.as_ref();
    if deleted.is_some_and(|d| d.etag == l.etag && d.mtime_ms == l.mtime_ms) {
        return true;
    }
    r.base.as_deref() == Some(l.etag.as_str()) && deleted.is_none_or(|d| l.mtime_ms <= d.mtime_ms)
}

/// Test hooks: with `KURA_TEST_TOMBSTONE_PAUSE_MS=N` a tombstone waits N ms between finding
/// the version it deletes and deleting it, with `KURA_TEST_SHIPMENT_PAUSE_MS=N` a shipment
/// between its plan and its commit, and says so in the log, so that a test can land a write
/// in that instant. Unset in normal operation.
async fn pause_point(what: &'static str, path: &VPath) {
    static PAUSES: std::sync::OnceLock<(Option<u64>, Option<u64>)> = std::sync::OnceLock::new();
    let (tombstone, shipment) = PAUSES.get_or_init(|| {
        let ms = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
        (
            ms("KURA_TEST_TOMBSTONE_PAUSE_MS"),
            ms("KURA_TEST_SHIPMENT_PAUSE_MS"),
        )
    });
    let pause = match what {
        "tombstone" => *tombstone,
        _ => *shipment,
    };
    if let Some(ms) = pause {
        tracing::warn!(path = %path, ms, "KURA_TEST_{}_PAUSE_MS: holding a {what}", what.to_uppercase());
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// The answer to a tombstone: an empty file that no longer exists.
fn gone(path: &VPath) -> Entry {
    Entry {
        path: path.clone(),
        is_dir: false,
        size: 0,
        mtime: std::time::SystemTime::now(),
        etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
        content_type: "application/octet-stream".into(),
        owner: None,
        group: None,
        mode: 0,
        headers: BTreeMap::new(),
        has_props: None,
        sealed: None,
        blob: None,
    }
}

/// Where the losing version `etag` of `path` is kept: an existing copy with the same
/// version (true), or the next free `NAME.conflictN` (false).
async fn conflict_copy(
    vfs: &super::Vfs,
    path: &VPath,
    etag: &str,
) -> Result<(VPath, bool), VfsError> {
    for n in 1u32.. {
        let copy = VPath::parse(&format!("{}{CONFLICT_SUFFIX}{n}", path.as_str()))?;
        match vfs.store.entry(copy.as_str()).await? {
            None => return Ok((copy, false)),
            Some(e) if e.etag == etag => return Ok((copy, true)),
            Some(_) => {}
        }
    }
    Err(VfsError::Conflict("no free conflict copy name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tags and a description leave as user metadata and arrive as the headers they are
    /// stored as; from a shipment only (no origin: plain metadata).
    #[test]
    fn tags_and_description_travel_with_a_shipment() {
        let mut stored = BTreeMap::new();
        super::super::tags::put_tags(
            &mut stored,
            &[("k".into(), "v é&=".into()), ("year".into(), "2026".into())],
        );
        stored.insert(
            super::super::tags::DESCRIPTION.into(),
            "Budget prévu\n100%".into(),
        );
        let mut h: BTreeMap<String, String> = annotation_metadata(&stored)
            .into_iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), v))
            .collect();
        assert!(h.values().all(|v| v.is_ascii()), "{h:?}");
        let plain = h.clone();
        h.insert(ORIGIN.into(), "node-a".into());
        assert!(ReplicaMeta::take_from(&mut h).is_some());
        assert_eq!(h, stored);
        let mut p = plain.clone();
        assert!(ReplicaMeta::take_from(&mut p).is_none());
        assert_eq!(p, plain, "without an origin nothing is taken");
    }

    #[test]
    fn meta_round_trips_through_user_metadata() {
        let r = ReplicaMeta {
            origin: "kura-a".into(),
            from: "kura-b".into(),
            mtime_ms: 1_700_000_000_123,
            base: Some("abc".into()),
            etag: Some("def-2".into()),
            tombstone: true,
            mirror: false,
            owner: Some("ann".into()),
            group: Some("family".into()),
            perm: Some(0o600),
            deleted: Some(Version {
                etag: "def-2".into(),
                mtime_ms: 1_600_000_000_456,
            }),
        };
        let mut h: BTreeMap<String, String> = r
            .user_metadata()
            .into_iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), v))
            .collect();
        h.insert("x-amz-meta-colour".into(), "blue".into());
        assert_eq!(ReplicaMeta::take_from(&mut h), Some(r));
        assert_eq!(h.len(), 1, "only the user's own metadata is left");
        assert_eq!(ReplicaMeta::take_from(&mut h), None);
    }

    /// Finding F5: a tombstone covers the version deleted and the base no later than it,
    /// never the same bytes written again after the deletion.
    #[test]
    fn a_tombstone_covers_only_versions_its_sender_saw() {
        let held = |etag: &str, mtime_ms: i64| EntryRow {
            path: "/b/f".into(),
            parent: "/b".into(),
            is_dir: false,
            size: 1,
            mtime_ms,
            etag: etag.into(),
            content_type: None,
            owner: None,
            headers: None,
            grp: None,
            mode: 0o644,
            origin: None,
            sealed: None,
            blob: None,
        };
        let mut r = ReplicaMeta::take_from(&mut BTreeMap::from([(
            ORIGIN.to_string(),
            "kura-a".to_string(),
        )]))
        .unwrap();
        r.tombstone = true;
        r.base = Some("x".into());
        // an older sender: the base's ETag alone
        assert!(seen_by_sender(&held("x", 5_000), &r));
        r.deleted = Some(Version {
            etag: "x".into(),
            mtime_ms: 1_000,
        });
        assert!(seen_by_sender(&held("x", 1_000), &r));
        assert!(
            seen_by_sender(&held("x", 900), &r),
            "an older version of it"
        );
        assert!(
            !seen_by_sender(&held("x", 1_001), &r),
            "the same bytes written again after the deletion"
        );
        assert!(!seen_by_sender(&held("y", 1_000), &r), "other bytes");
        // the version deleted, whatever base the sender believed
        r.base = None;
        assert!(seen_by_sender(&held("x", 1_000), &r));
        assert!(!seen_by_sender(&held("x", 999), &r));
    }

    #[test]
    fn multipart_etags_travel_but_plain_ones_are_the_bytes() {
        let mut r = ReplicaMeta::take_from(&mut BTreeMap::from([(
            ORIGIN.to_string(),
            "kura-a".to_string(),
        )]))
        .unwrap();
        r.etag = Some("aaaa-3".into());
        assert_eq!(version_etag(&r, "bbbb"), "aaaa-3");
        r.etag = Some("cccc".into());
        assert_eq!(version_etag(&r, "bbbb"), "bbbb");
    }
}
