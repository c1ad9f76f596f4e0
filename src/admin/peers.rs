//! Replication peers and rules, for the CLI and the REST API alike.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Admin, AdminError};
use crate::replication::{open_link, pin, resync, seal_id, ReplError};
use crate::store::{now_ms, PeerRow};

/// A peer (its secret is never shown).
#[derive(Serialize, ToSchema)]
pub struct PeerView {
    pub name: String,
    pub endpoint: String,
    pub access_key: String,
    pub ca_fingerprint: Option<String>,
    pub node_id: Option<String>,
}

/// A peer to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPeer {
    pub name: String,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub ca_fingerprint: Option<String>,
}

/// A bucket to mirror to a peer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub bucket: String,
    pub peer: String,
    pub bidirectional: Option<bool>,
    pub prefix: Option<String>,
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
}

/// What a resync of one rule found and did.
#[derive(Serialize, ToSchema)]
pub struct ResyncView {
    pub peer: String,
    pub bucket: String,
    pub compared: u64,
    pub shipped: u64,
    pub deleted: u64,
    pub pulled: u64,
}

fn peer_view(p: PeerRow) -> PeerView {
    PeerView {
        name: p.name,
        endpoint: p.endpoint,
        access_key: p.access_key,
        ca_fingerprint: p.ca_fingerprint,
        node_id: p.node_id,
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
        let endpoint = n.endpoint.trim_end_matches('/').to_string();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(AdminError::Invalid(format!(
                "the endpoint must be an http(s) URL: {endpoint}"
            )));
        }
        let fingerprint = n
            .ca_fingerprint
            .as_deref()
            .map(pin::normalize)
            .transpose()?;
        let row = PeerRow {
            secret_enc: self.vault.seal(&seal_id(&n.name), &n.secret_key),
            name: n.name,
            endpoint,
            access_key: n.access_key,
            ca_fingerprint: fingerprint,
            node_id: None,
            created_ms: now_ms(),
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
        Ok(self
            .store
            .peers()
            .await?
            .into_iter()
            .map(peer_view)
            .collect())
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
        if bucket.is_empty() || bucket.contains('/') {
            return Err(AdminError::Invalid(format!(
                "bad bucket name {:?}",
                r.bucket
            )));
        }
        match self.store.entry(&format!("/{bucket}")).await? {
            Some(e) if e.is_dir => {}
            _ => return Err(AdminError::NotFound(format!("bucket {bucket}"))),
        }
        if self.store.peer(&r.peer).await?.is_none() {
            return Err(AdminError::NotFound(format!("peer {}", r.peer)));
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
        Ok(self
            .store
            .rule_health()
            .await?
            .into_iter()
            .map(|h| RuleView {
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
            })
            .collect())
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
            });
        }
        Ok(out)
    }
}
