//! Replication peers and rules, for the CLI and the REST API alike.

mod mailbox;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Admin, AdminError};
use crate::replication::remote::{describe, describe_s3, s3_field, Remote};
use crate::replication::{away, open_link, pin, resync, seal_id, ReplError};
use crate::store::{now_ms, PeerRow};

/// How long the test request of `peer add` and `replicate` may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The start of a bucket name no one uses: `peer add` lists such a bucket to see whether
/// the key is accepted (a random suffix, as S3 bucket names are global on some stores).
const PROBE_BUCKET: &str = "kura-peer-check-";

/// A peer (its secret is never shown).
#[derive(Serialize, ToSchema)]
pub struct PeerView {
    pub name: String,
    pub endpoint: String,
    pub access_key: String,
    pub ca_fingerprint: Option<String>,
    pub node_id: Option<String>,
    /// This node pulls the peer's changes (it cannot be reached by the peer).
    pub pull: bool,
    /// The mailbox the peer is reached through (`s3://bucket/prefix` on `endpoint`).
    pub mailbox: Option<String>,
    /// The secret shared with the peer, when this node just made it (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox_secret: Option<String>,
}

/// A peer to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPeer {
    pub name: String,
    /// Empty: a peer this node cannot reach; it pushes here and pulls from here.
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub access_key: String,
    #[serde(default)]
    pub secret_key: String,
    pub ca_fingerprint: Option<String>,
    /// Send a test request first (default true); false adds a peer that is down for now.
    pub check: Option<bool>,
    /// This node cannot be reached by the peer: pull its changes too (default false).
    pub pull: Option<bool>,
    /// Neither node can reach the other: exchange changes through this bucket
    /// (`s3://bucket/prefix`) on `endpoint`, with `access_key` and `secret_key` there.
    pub mailbox: Option<String>,
    /// The secret shared with the peer (at least 32 characters); none: one is made and
    /// returned once, to give to the peer.
    pub mailbox_secret: Option<String>,
}

/// A bucket to mirror to a peer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub bucket: String,
    pub peer: String,
    pub bidirectional: Option<bool>,
    pub prefix: Option<String>,
    /// Check first that the peer has the bucket and lets the key in (default true).
    pub check: Option<bool>,
}

/// One rule's health: what is waiting, since when, and the last failure.
#[derive(Serialize, ToSchema)]
pub struct RuleView {
    pub peer: String,
    pub bucket: String,
    pub prefix: String,
    pub bidirectional: bool,
    pub backlog: i64,
    pub lag_seconds: Option<f64>,
    pub last_error: Option<String>,
    pub shipped: i64,
    pub peer_node_id: Option<String>,
    /// Keys set aside after the other side refused that key alone (a lock, a quota, a
    /// permission), retried later; never dropped.
    pub waiting: i64,
    /// The oldest of them, with its direction, tries and the last refusal.
    pub waiting_on: Option<String>,
    /// Owners and groups the peer named that this node lacks, and who stands in for them.
    pub unmapped: Vec<String>,
    /// The peer is, or was lately, away longer than deletions are remembered
    /// (`tombstone_days`): what that means.
    pub away: Option<String>,
    /// Files of the rule that replication passes over, by reason, counted as they are now.
    pub skipped: Vec<SkipView>,
}

/// Files of a rule that never travel, for one reason.
#[derive(Serialize, ToSchema)]
pub struct SkipView {
    /// `sse-c`: sealed under an S3 client's own key, which this node does not keep.
    pub reason: String,
    /// How many current files of the rule.
    pub files: u64,
    /// Why, in words.
    pub why: String,
}

/// Why SSE-C files are skipped (`SkipView::why`).
pub const SSE_C_SKIPPED: &str = "encrypted with the S3 client's own key (SSE-C), which this server does not keep: the peer never gets them";

/// What a resync of one rule found and did.
#[derive(Serialize, ToSchema)]
pub struct ResyncView {
    pub peer: String,
    pub bucket: String,
    pub compared: u64,
    pub shipped: u64,
    pub deleted: u64,
    pub pulled: u64,
    /// Versions of the peer's that this node's rules refused (permissions, locks, quota).
    pub refused: u64,
    /// The peer is, or was lately, away longer than deletions are remembered: what that
    /// means for this resync.
    pub away: Option<String>,
}

/// An access key bound to a peer: requests signed with it are that peer's shipments.
#[derive(Serialize, ToSchema)]
pub struct PeerKeyView {
    pub peer: String,
    pub user: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// One owner or group a peer named that this node lacks, for `kura peer status`.
fn unmapped_line(u: &crate::store::UnmappedRow) -> String {
    format!(
        "{} {} is unknown here; {} stands in ({} files, last {})",
        u.kind, u.name, u.mapped_to, u.count, u.last_path
    )
}

fn peer_view(p: PeerRow) -> PeerView {
    PeerView {
        name: p.name,
        endpoint: p.endpoint,
        access_key: p.access_key,
        ca_fingerprint: p.ca_fingerprint,
        node_id: p.node_id,
        pull: p.pull,
        mailbox: None,
        mailbox_secret: None,
    }
}

/// The peer's base URL: http(s), a host, no path (S3 is served at the root, not at `/dav/`).
fn check_endpoint(raw: &str) -> Result<String, AdminError> {
    let bad = |why: &str| AdminError::Invalid(format!("bad endpoint {raw:?}: {why}"));
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("it must start with https:// (or http://)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials go in --access-key and --secret-key, not in the URL",
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "give the server's base URL such as https://host:8443 (S3 is served at the root, not below a path like /dav/)",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// The stored form of a certificate pin for `endpoint` (https only).
fn checked_pin(endpoint: &str, fp: Option<&str>) -> Result<Option<String>, AdminError> {
    let fingerprint = fp.map(pin::normalize).transpose()?;
    if fingerprint.is_some() && endpoint.starts_with("http://") {
        return Err(AdminError::Invalid(format!(
            "--ca-fingerprint pins a TLS certificate, but {endpoint} is plain http: use https:// or drop the fingerprint"
        )));
    }
    Ok(fingerprint)
}

/// One test request to the peer: reachable (and the pinned certificate right), the key
/// accepted, and, with `bucket`, the bucket there and readable by the key.
async fn probe(peer: &PeerRow, secret: &str, bucket: Option<&str>) -> Result<(), AdminError> {
    let who = format!("peer {} ({})", peer.name, peer.endpoint);
    let probe_bucket = format!(
        "{PROBE_BUCKET}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let remote = Remote::new(peer, secret, bucket.unwrap_or(&probe_bucket))?;
    let timed_out = || {
        AdminError::Invalid(format!(
            "{who} did not answer within {}s",
            PROBE_TIMEOUT.as_secs()
        ))
    };
    tokio::time::timeout(PROBE_TIMEOUT, remote.node_id())
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| AdminError::Invalid(format!("cannot reach {who}: {}", describe(&e))))?;
    // a listing (of a bucket no one has, for `peer add`): its error body names the cause
    let answer = tokio::time::timeout(PROBE_TIMEOUT, remote.op.list_with("").limit(1))
        .await
        .map_err(|_| timed_out())?
        .map(|_| ());
    let Err(e) = answer else { return Ok(()) };
    let why = describe_s3(&e);
    let code = s3_field(&e, "code").unwrap_or_default();
    // for the probe bucket, "no such bucket" or "not yours" both mean the signature passed
    let missing = e.kind() == opendal::ErrorKind::NotFound
        || code == "NoSuchBucket"
        || (bucket.is_none() && code == "AccessDenied");
    let kind = if missing {
        opendal::ErrorKind::NotFound
    } else {
        e.kind()
    };
    match (kind, bucket) {
        (opendal::ErrorKind::NotFound, None) => Ok(()),
        (opendal::ErrorKind::NotFound, Some(b)) => Err(AdminError::Invalid(format!(
            "{who} has no bucket {b}: create it there first ({why})"
        ))),
        (opendal::ErrorKind::PermissionDenied, None) => Err(AdminError::Invalid(format!(
            "{who} refused the access key or secret: {why}"
        ))),
        (opendal::ErrorKind::PermissionDenied, Some(b)) => Err(AdminError::Invalid(format!(
            "{who} refused access to bucket {b} with key {}: {why}",
            peer.access_key
        ))),
        _ => Err(AdminError::Invalid(format!(
            "{who} failed the test request: {why}"
        ))),
    }
}

impl From<ReplError> for AdminError {
    fn from(e: ReplError) -> Self {
        match e {
            ReplError::Invalid(m) => AdminError::Invalid(m),
            ReplError::Meta(m) => m.into(),
            e => AdminError::Internal(e.to_string()),
        }
    }
}

impl Admin {
    /// Adds a peer; its secret is stored sealed with the server key.
    pub async fn add_peer(&self, n: NewPeer) -> Result<PeerView, AdminError> {
        if !super::valid_group_name(&n.name) {
            return Err(AdminError::Invalid(format!("bad peer name {:?}", n.name)));
        }
        if n.mailbox.is_some() || n.mailbox_secret.is_some() {
            return self.add_mailbox_peer(n).await;
        }
        if n.endpoint.is_empty() {
            return self.add_unreachable_peer(n).await;
        }
        let endpoint = check_endpoint(&n.endpoint)?;
        let fingerprint = checked_pin(&endpoint, n.ca_fingerprint.as_deref())?;
        if n.access_key.trim().is_empty() || n.secret_key.is_empty() {
            return Err(AdminError::Invalid(
                "the access key and the secret must not be empty".into(),
            ));
        }
        let row = PeerRow {
            secret_enc: self.vault.seal(&seal_id(&n.name), &n.secret_key),
            name: n.name,
            endpoint,
            access_key: n.access_key,
            ca_fingerprint: fingerprint,
            node_id: None,
            created_ms: now_ms(),
            pull: n.pull.unwrap_or(false),
        };
        if n.check.unwrap_or(true) {
            probe(&row, &n.secret_key, None).await?;
        }
        self.store.insert_peer(&row).await.map_err(|e| match e {
            crate::store::MetaError::Duplicate => {
                AdminError::Conflict(format!("peer {}", row.name))
            }
            e => e.into(),
        })?;
        Ok(peer_view(row))
    }

    /// Adds a peer without an address: a node behind NAT that pushes here and pulls from
    /// here (with a peer key of this node), never contacted by this one.
    async fn add_unreachable_peer(&self, n: NewPeer) -> Result<PeerView, AdminError> {
        if !n.access_key.is_empty()
            || !n.secret_key.is_empty()
            || n.ca_fingerprint.is_some()
            || n.pull == Some(true)
        {
            return Err(AdminError::Invalid(
                "a peer without an endpoint is never contacted: it takes no access key, secret, fingerprint or pull".into(),
            ));
        }
        let row = PeerRow {
            secret_enc: String::new(),
            name: n.name,
            endpoint: String::new(),
            access_key: String::new(),
            ca_fingerprint: None,
            node_id: None,
            created_ms: now_ms(),
            pull: false,
        };
        self.store.insert_peer(&row).await.map_err(|e| match e {
            crate::store::MetaError::Duplicate => {
                AdminError::Conflict(format!("peer {}", row.name))
            }
            e => e.into(),
        })?;
        Ok(peer_view(row))
    }

    /// Every peer.
    pub async fn peers(&self) -> Result<Vec<PeerView>, AdminError> {
        let mut out = Vec::new();
        for p in self.store.peers().await? {
            let mailbox = self.store.mailbox(&p.name).await?;
            out.push(PeerView {
                mailbox: mailbox.map(|m| mailbox::url(&m)),
                ..peer_view(p)
            });
        }
        Ok(out)
    }

    /// Removes a peer and its rules.
    pub async fn remove_peer(&self, name: &str) -> Result<(), AdminError> {
        if !self.store.delete_peer(name).await? {
            return Err(AdminError::NotFound(format!("peer {name}")));
        }
        Ok(())
    }

    /// Mirrors a local bucket to a peer (or updates the rule's prefix and direction).
    pub async fn add_rule(&self, r: NewRule) -> Result<RuleView, AdminError> {
        let bucket = r.bucket.trim_matches('/').to_string();
        if !s3s::path::check_bucket_name(&bucket) {
            return Err(AdminError::Invalid(format!(
                "{:?} cannot be replicated: S3 bucket names are 3-63 of a-z 0-9 . - (starting and ending with a letter or digit)",
                r.bucket
            )));
        }
        match self.store.entry(&format!("/{bucket}")).await? {
            Some(e) if e.is_dir => {}
            _ => return Err(AdminError::NotFound(format!("bucket {bucket}"))),
        }
        let Some(peer) = self.store.peer(&r.peer).await? else {
            return Err(AdminError::NotFound(format!("peer {}", r.peer)));
        };
        if r.check.unwrap_or(true) && !peer.unreachable() {
            let secret = self.vault.unseal(&seal_id(&peer.name), &peer.secret_enc)?;
            // through a mailbox, the bucket to reach is the mailbox's
            let far = match self.store.mailbox(&peer.name).await? {
                Some(m) => m.bucket,
                None => bucket.clone(),
            };
            probe(&peer, &secret, Some(&far)).await?;
        }
        let prefix = r.prefix.unwrap_or_default();
        self.store
            .upsert_rule(&bucket, &r.peer, &prefix, r.bidirectional.unwrap_or(false))
            .await?;
        self.replication()
            .await?
            .into_iter()
            .find(|v| v.bucket == bucket && v.peer == r.peer)
            .ok_or_else(|| AdminError::Internal("rule vanished".into()))
    }

    /// Stops mirroring a bucket to a peer.
    pub async fn remove_rule(&self, bucket: &str, peer: &str) -> Result<(), AdminError> {
        if !self.store.delete_rule(bucket, peer).await? {
            return Err(AdminError::NotFound(format!("rule {bucket} -> {peer}")));
        }
        Ok(())
    }

    /// Every rule with its backlog, lag and last error.
    pub async fn replication(&self) -> Result<Vec<RuleView>, AdminError> {
        let peers = self.store.peers().await?;
        let now = now_ms();
        let unmapped = self.store.unmapped().await?;
        let presence = self.store.presence().await?;
        let keep = self.vfs.tombstone_keep();
        let mut out = Vec::new();
        for h in self.store.rule_health().await? {
            let away = presence
                .iter()
                .find(|p| p.peer == h.rule.peer)
                .and_then(|p| away::warning(p, keep, now));
            let (waiting, waiting_on) = self.store.waiting_of(&h.rule.bucket, &h.rule.peer).await?;
            let unmapped = unmapped
                .iter()
                .filter(|u| u.peer == h.rule.peer)
                .map(unmapped_line)
                .collect();
            let sse_c = self
                .store
                .customer_keyed_files(&h.rule.bucket, &h.rule.prefix)
                .await?;
            let skipped = if sse_c > 0 {
                vec![SkipView {
                    reason: "sse-c".into(),
                    files: sse_c,
                    why: SSE_C_SKIPPED.into(),
                }]
            } else {
                Vec::new()
            };
            out.push(RuleView {
                peer_node_id: peers
                    .iter()
                    .find(|p| p.name == h.rule.peer)
                    .and_then(|p| p.node_id.clone()),
                peer: h.rule.peer,
                bucket: h.rule.bucket,
                prefix: h.rule.prefix,
                bidirectional: h.rule.bidirectional,
                backlog: h.backlog,
                lag_seconds: h.oldest_ms.map(|t| (now - t).max(0) as f64 / 1000.0),
                last_error: h.rule.last_error,
                shipped: h.rule.shipped,
                waiting,
                waiting_on,
                unmapped,
                away,
                skipped,
            });
        }
        Ok(out)
    }

    /// A line for each peer away, or lately back from being away, longer than deletions are
    /// remembered (`tombstone_days`), also peers without a rule now.
    pub async fn away_warnings(&self) -> Result<Vec<String>, AdminError> {
        let keep = self.vfs.tombstone_keep();
        Ok(self
            .store
            .presence()
            .await?
            .iter()
            .filter_map(|p| away::warning(p, keep, now_ms()))
            .collect())
    }

    /// Every owner and group a peer's shipments named that this node lacks (also those of
    /// peers this node has no rule for: the sender of a one-way mirror), one line each.
    pub async fn unmapped_owners(&self) -> Result<Vec<String>, AdminError> {
        Ok(self
            .store
            .unmapped()
            .await?
            .iter()
            .map(|u| format!("{}: {}", u.peer, unmapped_line(u)))
            .collect())
    }

    /// Creates an access key for `user` bound to the peer `peer` (the name this node knows
    /// it by): the only key whose requests are received as that peer's shipments, and the
    /// user a resync acts as when it fetches from that peer.
    pub async fn add_peer_key(&self, peer: &str, user: &str) -> Result<PeerKeyView, AdminError> {
        if !super::valid_group_name(peer) {
            return Err(AdminError::Invalid(format!("bad peer name {peer:?}")));
        }
        self.user(user).await?;
        let k = self.vault.create(&self.store, user).await?;
        if let Err(e) = self.store.bind_peer_key(&k.id, peer).await {
            // never leave an unbound key behind: it would be an ordinary user's key
            let _ = self.store.delete_key(&k.id).await;
            return Err(e.into());
        }
        Ok(PeerKeyView {
            peer: peer.to_string(),
            user: user.to_string(),
            access_key_id: k.id,
            secret_access_key: k.secret,
        })
    }

    /// Compares `bucket` with each of its peers (or just `peer`) and repairs differences.
    pub async fn resync(
        &self,
        bucket: &str,
        peer: Option<&str>,
        progress: bool,
    ) -> Result<Vec<ResyncView>, AdminError> {
        let rules: Vec<_> = self
            .store
            .rules()
            .await?
            .into_iter()
            .filter(|r| r.bucket == bucket && peer.is_none_or(|p| p == r.peer))
            .collect();
        if rules.is_empty() {
            return Err(AdminError::NotFound(format!(
                "replication rule for {bucket}"
            )));
        }
        let mut out = Vec::new();
        for rule in rules {
            let p = self
                .store
                .peer(&rule.peer)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("peer {}", rule.peer)))?;
            if p.unreachable() {
                return Err(AdminError::Invalid(format!(
                    "peer {} has no address: run the resync on that node (it reaches this one)",
                    p.name
                )));
            }
            if self.store.mailbox(&p.name).await?.is_some() {
                out.push(self.resend_through_mailbox(&rule).await?);
                continue;
            }
            let link = open_link(&self.store, &self.vault, &p, rule).await?;
            let bar = progress.then(|| {
                let b = indicatif::ProgressBar::new(0);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:40}] {pos}/{len} keys ({elapsed})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b.set_message(format!("{bucket} -> {}", link.rule.peer));
                b
            });
            let s = resync::resync(&self.vfs, &self.store, &link, bar.as_ref()).await?;
            if let Some(b) = bar {
                b.finish();
            }
            out.push(ResyncView {
                peer: link.rule.peer.clone(),
                bucket: bucket.to_string(),
                compared: s.compared,
                shipped: s.shipped,
                deleted: s.deleted,
                pulled: s.pulled,
                refused: s.refused,
                away: self
                    .store
                    .presence()
                    .await?
                    .iter()
                    .find(|p| p.peer == link.rule.peer)
                    .and_then(|p| away::warning(p, self.vfs.tombstone_keep(), now_ms())),
            });
        }
        Ok(out)
    }
}
