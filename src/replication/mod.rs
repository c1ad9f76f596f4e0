//! Peer replication: a worker per rule ships journaled changes of a bucket to a peer over
//! S3, in commit order, with retries; resync and a periodic reconcile repair what the
//! journal cannot tell (see docs/replication.md). On several gateways sharing a database,
//! the gateway holding a rule's lease ships it (docs/scale-out.md).

pub mod away;
pub mod delta;
pub mod delta_recv;
pub mod delta_send;
pub mod feed;
pub mod mailbox;
pub mod pin;
pub mod remote;
pub mod resync;
pub mod ship;
pub mod sign;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::ReplicationConfig;
use crate::store::{Job, MetaError, PeerRow, RuleRow, Store};
use crate::vault::Vault;
use crate::vfs::{Vfs, VfsError};
use remote::Remote;
use ship::Link;

/// Errors of replication.
#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The core refused or failed.
    #[error(transparent)]
    Vfs(#[from] VfsError),
    /// The peer answered with an error or could not be reached through S3.
    #[error("peer: {0}")]
    Remote(#[from] opendal::Error),
    /// The peer could not be reached at all.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The peer refused a request of its journal feed (status and the start of its answer).
    #[error("peer answered {0} to the journal feed: {1}")]
    Pull(u16, String),
    /// A setting or argument is wrong.
    #[error("{0}")]
    Invalid(String),
    /// Bytes from a peer failed their check (a mailbox object altered, swapped or cut):
    /// refused, nothing applied.
    #[error("refused: {0}")]
    Tampered(String),
    /// The peer's secret could not be opened.
    #[error(transparent)]
    Key(#[from] crate::vault::KeyError),
}

/// The sealing id of a peer's secret (keeps it apart from access keys).
pub fn seal_id(peer: &str) -> String {
    format!("peer:{peer}")
}

/// Everything a rule needs at hand: the peer's bucket and who the peer is.
pub async fn open_link(
    store: &Store,
    vault: &Vault,
    peer: &PeerRow,
    rule: RuleRow,
) -> Result<Link, ReplError> {
    if store.mailbox(&peer.name).await?.is_some() {
        // its endpoint is the mailbox's server: nothing may go there in the clear
        return Err(ReplError::Invalid(format!(
            "peer {} is reached through a mailbox: it is never spoken to directly",
            peer.name
        )));
    }
    let secret = vault.unseal(&seal_id(&peer.name), &peer.secret_enc)?;
    let remote = Remote::new(peer, &secret, &rule.bucket)?;
    let peer_node = match &peer.node_id {
        Some(id) => Some(id.clone()),
        None => {
            let id = remote.node_id().await?;
            if let Some(id) = &id {
                store.set_peer_node_id(&peer.name, id).await?;
            }
            id
        }
    };
    Ok(Link {
        rule,
        remote,
        peer_node,
        own: store.node_id().await?,
        pull: peer.pull,
        secret,
    })
}

/// Runs the workers of every rule, picking up added, changed and removed rules.
pub struct Replicator {
    /// Metadata.
    pub store: Store,
    /// Files.
    pub vfs: Vfs,
    /// Opens peer secrets.
    pub vault: Vault,
    /// Timings.
    pub cfg: ReplicationConfig,
    /// This process's name in the rules' leases (the gateway id and a random suffix).
    pub holder: String,
}

/// How long a rule's lease lasts unless renewed: a gateway that dies is replaced in this time.
pub const LEASE: Duration = Duration::from_secs(10);
/// How often a worker renews its lease, or a waiting one asks for it.
const RENEW: Duration = Duration::from_secs(3);

/// A task aborted when this is dropped (so a worker's shipping ends with the worker).
struct Owned(JoinHandle<()>);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a worker was started with; a change restarts it.
type Signature = (PeerRow, String, bool);

impl Replicator {
    /// Starts the supervisor in the background.
    pub fn spawn(self) {
        tokio::spawn(async move { self.supervise().await });
    }

    async fn supervise(self) {
        // admin commands judge absences by this server's retention, not their own settings
        let keep_ms = self.keep().as_millis() as i64;
        if let Err(e) = self.store.record_tombstone_keep(keep_ms).await {
            tracing::warn!(error = %e, "replication: cannot record tombstone_days");
        }
        let mut workers: HashMap<(String, String), (Signature, JoinHandle<()>)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut last_trim = std::time::Instant::now();
        let mut last_reconcile = std::time::Instant::now();
        loop {
            tick.tick().await;
            let (rules, peers) = match (self.store.rules().await, self.store.peers().await) {
                (Ok(r), Ok(p)) => (r, p),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "replication: cannot read the rules");
                    continue;
                }
            };
            let peers: HashMap<&str, &PeerRow> =
                peers.iter().map(|p| (p.name.as_str(), p)).collect();
            let mut wanted = HashMap::new();
            for rule in rules {
                let Some(peer) = peers.get(rule.peer.as_str()) else {
                    continue;
                };
                if peer.unreachable() {
                    // it pulls from us (the feed serves it): nothing to push, nothing to compare
                    continue;
                }
                let mut peer = (*peer).clone();
                peer.node_id = None;
                let sig: Signature = (peer, rule.prefix.clone(), rule.bidirectional);
                wanted.insert((rule.bucket.clone(), rule.peer.clone()), (sig, rule));
            }
            workers.retain(|k, (sig, handle)| {
                let keep = wanted.get(k).is_some_and(|(s, _)| s == sig) && !handle.is_finished();
                if !keep {
                    handle.abort();
                }
                keep
            });
            // a mailbox cannot be listed like a peer's bucket: no reconcile through it
            let mailboxes = self.store.mailbox_peers().await.unwrap_or_default();
            let reconcile = self.cfg.reconcile_seconds > 0
                && last_reconcile.elapsed() >= Duration::from_secs(self.cfg.reconcile_seconds);
            if reconcile {
                last_reconcile = std::time::Instant::now();
            }
            for (k, (sig, rule)) in wanted {
                if reconcile && !mailboxes.contains(&rule.peer) {
                    self.spawn_reconcile(rule.clone());
                }
                if workers.contains_key(&k) {
                    continue;
                }
                let w = Worker {
                    holder: self.holder.clone(),
                    store: self.store.clone(),
                    vfs: self.vfs.clone(),
                    vault: self.vault.clone(),
                    rule,
                    retry_max: Duration::from_secs(self.cfg.retry_max_seconds.max(1)),
                    refused_wait: Duration::from_secs(self.cfg.refused_retry_seconds.max(1)),
                    keep: self.keep(),
                    mailbox_poll: Duration::from_secs(self.cfg.mailbox_poll_seconds.max(1)),
                    failing: std::sync::atomic::AtomicBool::new(false),
                };
                workers.insert(k, (sig, tokio::spawn(Arc::new(w).run())));
            }
            if last_trim.elapsed() >= Duration::from_secs(60) {
                last_trim = std::time::Instant::now();
                match self.store.once(Job::ReplicationTrim, self.trim()).await {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "replication: cannot take the trim's turn")
                    }
                }
            }
        }
    }

    /// Trims the journal, chunk lists and old tombstones (one gateway at a time).
    async fn trim(&self) {
        if let Err(e) = self.store.trim_journal().await {
            tracing::warn!(error = %e, "replication: journal trim failed");
        }
        if let Err(e) = self.vfs.prune_chunks().await {
            tracing::warn!(error = %e, "replication: pruning chunk lists failed");
        }
        let before = crate::store::now_ms() - self.keep().as_millis() as i64;
        match self.store.prune_tombstones(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                count = n,
                "replication: forgot deletions older than tombstone_days"
            ),
            Err(e) => tracing::warn!(error = %e, "replication: tombstone prune failed"),
        }
    }

    /// How long deletions are remembered (`tombstone_days`).
    fn keep(&self) -> Duration {
        self.cfg.tombstone_keep()
    }

    fn spawn_reconcile(&self, rule: RuleRow) {
        let (store, vfs, vault) = (self.store.clone(), self.vfs.clone(), self.vault.clone());
        let holder = self.holder.clone();
        tokio::spawn(async move {
            let (bucket, peer) = (rule.bucket.clone(), rule.peer.clone());
            // the gateway shipping the rule reconciles it
            if !matches!(store.holds_lease(&bucket, &peer, &holder).await, Ok(true)) {
                return;
            }
            let run = async {
                let p = store
                    .peer(&peer)
                    .await?
                    .ok_or_else(|| ReplError::Invalid(format!("no peer {peer}")))?;
                let link = open_link(&store, &vault, &p, rule).await?;
                resync::resync(&vfs, &store, &link, None).await
            };
            match run.await {
                Ok(s) => tracing::info!(%bucket, %peer, compared = s.compared, shipped = s.shipped,
                    deleted = s.deleted, pulled = s.pulled, "replication: reconciled"),
                Err(e) => {
                    tracing::warn!(%bucket, %peer, error = %e, "replication: reconcile failed")
                }
            }
        });
    }
}

/// How often an idle rule asks a peer it pulls from for new changes.
const PULL_IDLE: Duration = Duration::from_secs(1);

/// Ships one rule's journal, in order, forever (and pulls the peer's, for a pulling peer).
struct Worker {
    /// This process's name in the rule's lease.
    holder: String,
    store: Store,
    vfs: Vfs,
    vault: Vault,
    rule: RuleRow,
    retry_max: Duration,
    refused_wait: Duration,
    /// How long deletions are remembered: a contact with the peer is recorded every
    /// `away::beat` of it.
    keep: Duration,
    /// How often a rule through a mailbox reads it.
    mailbox_poll: Duration,
    /// The rule's last error stands (cleared at the next successful contact).
    failing: std::sync::atomic::AtomicBool,
}

impl Worker {
    /// Ships the rule while this gateway holds its lease, renewing it every `RENEW`; waits
    /// for the lease while another gateway holds it. Losing it (or failing to renew it in
    /// time) stops the shipping at once: the next holder starts from the recorded position.
    async fn run(self: Arc<Self>) {
        let (bucket, peer) = (&self.rule.bucket, &self.rule.peer);
        loop {
            if !self.lease().await {
                tokio::time::sleep(RENEW).await;
                continue;
            }
            tracing::info!(%bucket, %peer, holder = %self.holder, "replication: this gateway ships the rule");
            let me = self.clone();
            let work = Owned(tokio::spawn(async move { me.ship().await }));
            loop {
                tokio::time::sleep(RENEW).await;
                if work.0.is_finished() {
                    return;
                }
                if !self.lease().await {
                    tracing::warn!(%bucket, %peer, holder = %self.holder,
                        "replication: lost the rule's lease, shipping stopped");
                    break;
                }
            }
            drop(work);
        }
    }

    /// Takes or renews the rule's lease within `RENEW`; false when another gateway has it,
    /// the database fails, or the answer is late.
    async fn lease(&self) -> bool {
        let take = self
            .store
            .take_lease(&self.rule.bucket, &self.rule.peer, &self.holder, LEASE);
        match tokio::time::timeout(RENEW, take).await {
            Ok(Ok(held)) => held,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "replication: cannot take the rule's lease");
                false
            }
            Err(_) => false,
        }
    }

    /// The rule's recorded positions (pushed, pulled): another gateway may have moved them.
    async fn positions(&self) -> Result<(i64, i64), MetaError> {
        let rules = self.store.rules().await?;
        Ok(rules
            .iter()
            .find(|r| r.bucket == self.rule.bucket && r.peer == self.rule.peer)
            .map_or((self.rule.position, self.rule.pulled), |r| {
                (r.position, r.pulled)
            }))
    }

    async fn ship(&self) {
        let (bucket, peer) = (self.rule.bucket.clone(), self.rule.peer.clone());
        let mut backoff = Duration::from_secs(1);
        // a peer reached through a mailbox has a worker of its own (mailbox/worker.rs)
        let mailbox = loop {
            match self.store.mailbox(&peer).await {
                Ok(m) => break m,
                Err(e) => self.fail(&e.into(), &mut backoff).await,
            }
        };
        if let Some(mb) = mailbox {
            return self.run_mailbox(mb).await;
        }
        let mut link = None;
        let (mut position, mut pulled) = loop {
            match self.positions().await {
                Ok(p) => break p,
                Err(e) => self.fail(&e.into(), &mut backoff).await,
            }
        };
        let mut last_pull: Option<std::time::Instant> = None;
        let mut contact: Option<std::time::Instant> = None;
        loop {
            if link.is_none() {
                match self.connect().await {
                    Ok(l) => link = Some(l),
                    Err(e) => {
                        self.fail(&e, &mut backoff).await;
                        continue;
                    }
                }
            }
            let Some(l) = link.as_ref() else { continue };
            if let Err(e) = self.retry_waiting(l).await {
                self.fail(&e, &mut backoff).await;
                continue;
            }
            let mut busy = false;
            if l.pull && last_pull.is_none_or(|t| t.elapsed() >= PULL_IDLE) {
                match feed::pull_once(&self.vfs, &self.store, l, &l.secret, pulled).await {
                    Ok((n, next)) => {
                        pulled = next;
                        busy = n > 0;
                        last_pull = (!busy).then(std::time::Instant::now);
                        self.contact(&mut contact).await;
                        self.answered().await;
                        backoff = Duration::from_secs(1);
                    }
                    Err(e) => {
                        self.fail(&e, &mut backoff).await;
                        continue;
                    }
                }
            }
            let rows = match self.store.journal_after(&bucket, position, 256).await {
                Ok(r) => r,
                Err(e) => {
                    self.fail(&e.into(), &mut backoff).await;
                    continue;
                }
            };
            if rows.is_empty() {
                if !busy {
                    if self.due(contact) && l.peer_node.is_some() && self.reached(l).await {
                        self.contact(&mut contact).await;
                        self.answered().await;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                continue;
            }
            // only the last change of a path in the batch needs shipping: it ships the state
            let last: HashMap<&str, i64> = rows.iter().map(|r| (r.path.as_str(), r.seq)).collect();
            for row in &rows {
                if last.get(row.path.as_str()) != Some(&row.seq) {
                    continue;
                }
                loop {
                    let sent = match ship::ship(
                        &self.vfs,
                        &self.store,
                        l,
                        &row.path,
                        row.origin.as_deref(),
                    )
                    .await
                    {
                        Ok(sent) => {
                            self.unwait(&row.path, "push").await;
                            self.contact(&mut contact).await;
                            i64::from(sent)
                        }
                        Err(e) if remote::is_object_refusal(&e) => {
                            // one key the peer will not take now waits aside, the rest goes on
                            self.set_aside(&row.path, "push", row.origin.as_deref(), &e, 0)
                                .await;
                            0
                        }
                        Err(e) => {
                            self.fail(&e, &mut backoff).await;
                            continue;
                        }
                    };
                    if let Err(e) = self.store.advance_rule(&bucket, &peer, row.seq, sent).await {
                        tracing::warn!(error = %e, "replication: cannot record the position");
                    }
                    backoff = Duration::from_secs(1);
                    break;
                }
            }
            position = rows.last().map_or(position, |r| r.seq);
        }
    }

    /// Whether a contact with the peer is due to be recorded.
    fn due(&self, last: Option<std::time::Instant>) -> bool {
        last.is_none_or(|t| t.elapsed() >= away::beat(self.keep))
    }

    /// Records a contact with the peer (at most once per beat).
    async fn contact(&self, last: &mut Option<std::time::Instant>) {
        if self.due(*last) {
            away::seen(&self.store, &self.rule.peer, self.keep).await;
            *last = Some(std::time::Instant::now());
        }
    }

    /// Whether the peer answers as the node it is (an idle rule's check that it is there).
    async fn reached(&self, l: &Link) -> bool {
        matches!(l.remote.node_id().await, Ok(Some(id)) if Some(&id) == l.peer_node.as_ref())
    }

    async fn connect(&self) -> Result<Link, ReplError> {
        let peer = self
            .store
            .peer(&self.rule.peer)
            .await?
            .ok_or_else(|| ReplError::Invalid(format!("no peer {}", self.rule.peer)))?;
        open_link(&self.store, &self.vault, &peer, self.rule.clone()).await
    }

    /// Sets one key aside after the other side refused it (a lock, a quota, a permission):
    /// retried later, shown in `kura peer status`, never dropped, holding up no other key.
    async fn set_aside(
        &self,
        path: &str,
        direction: &str,
        origin: Option<&str>,
        e: &ReplError,
        tries: i64,
    ) {
        // a file the peer will not give us waits longer (up to the wait after a refusal of
        // our key): only a change of rights there, or of the peer key, lets it through
        let (why, cap) = match direction == "pull" && feed::unreadable_there(e) {
            true => (
                feed::waiting_reason(e),
                self.refused_wait.max(self.retry_max),
            ),
            false => (remote::describe(e), self.retry_max),
        };
        let most = if cap > self.retry_max { 10 } else { 6 };
        let wait = Duration::from_secs(1u64 << tries.clamp(0, most)).min(cap);
        tracing::warn!(bucket = %self.rule.bucket, peer = %self.rule.peer, %path, %direction,
            error = %why, retry_in = wait.as_secs(), "replication: a key waits aside");
        let next = crate::store::now_ms() + wait.as_millis() as i64;
        if let Err(e) = self
            .store
            .wait_key(
                &self.rule.bucket,
                &self.rule.peer,
                path,
                direction,
                origin,
                &why,
                next,
            )
            .await
        {
            tracing::warn!(error = %e, "replication: cannot record a waiting key");
        }
    }

    /// The key went through: it waits no more.
    async fn unwait(&self, path: &str, direction: &str) {
        if let Err(e) = self
            .store
            .unwait_key(&self.rule.bucket, &self.rule.peer, path, direction)
            .await
        {
            tracing::warn!(error = %e, "replication: cannot clear a waiting key");
        }
    }

    /// Tries again the keys set aside whose time has come. A refusal of that key sets it
    /// aside again (for longer); any other failure (the peer is down) is the rule's.
    async fn retry_waiting(&self, l: &Link) -> Result<(), ReplError> {
        let due = self
            .store
            .due_keys(&self.rule.bucket, &self.rule.peer, 16)
            .await?;
        for w in due {
            let done = if w.direction == "pull" {
                match l.pull {
                    true => feed::pull_key(&self.vfs, &self.store, l, &l.secret, &w.path)
                        .await
                        .map(drop),
                    false => Ok(()),
                }
            } else {
                ship::ship(&self.vfs, &self.store, l, &w.path, w.origin.as_deref())
                    .await
                    .map(|_| ())
            };
            match done {
                Ok(()) => self.unwait(&w.path, &w.direction).await,
                Err(e) if remote::is_object_refusal(&e) || feed::is_local_refusal(&e) => {
                    self.set_aside(&w.path, &w.direction, w.origin.as_deref(), &e, w.tries)
                        .await
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The peer answered: an error recorded before (the peer was unreachable, say) is no
    /// longer the rule's state, even when nothing was there to ship or pull.
    async fn answered(&self) {
        if self
            .failing
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            if let Err(e) = self
                .store
                .clear_rule_error(&self.rule.bucket, &self.rule.peer)
                .await
            {
                tracing::warn!(error = %e, "replication: cannot clear the last error");
            }
        }
    }

    async fn fail(&self, e: &ReplError, backoff: &mut Duration) {
        self.failing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let refused = remote::is_refused(e);
        if refused {
            // one try per wait, never a burst: the peer counts each refusal as a failed login
            *backoff = self.refused_wait;
        }
        let mut message = remote::describe(e);
        if refused {
            message = format!(
                "the peer refused our credentials: {message}; next try in {}s (check the access key and secret: kura peer remove, then kura peer add)",
                backoff.as_secs()
            );
        }
        tracing::warn!(bucket = %self.rule.bucket, peer = %self.rule.peer, error = %message,
            retry_in = backoff.as_secs(), "replication: shipping failed");
        crate::metrics::get().replication_error(&self.rule.peer);
        if let Err(e) = self
            .store
            .set_rule_error(&self.rule.bucket, &self.rule.peer, &message)
            .await
        {
            tracing::warn!(error = %e, "replication: cannot record the error");
        }
        tokio::time::sleep(*backoff).await;
        if !refused {
            *backoff = (*backoff * 2).min(self.retry_max);
        }
    }
}
