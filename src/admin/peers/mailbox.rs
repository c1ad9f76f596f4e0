//! Peers reached through an S3 mailbox (`kura peer add NAME --mailbox s3://bucket/prefix`):
//! the peer row holds the mailbox server's endpoint and credentials, the mailbox row the
//! bucket, the prefix and the secret shared with the peer.

use base64::Engine;
use rand::RngCore;

use super::{check_endpoint, checked_pin, peer_view, probe, NewPeer, PeerView, ResyncView};
use crate::admin::{Admin, AdminError};
use crate::replication::mailbox::secret_id;
use crate::replication::seal_id;
use crate::store::{now_ms, MailboxRow, MetaError, PeerRow, RuleRow};

/// The shortest shared secret taken (a made one is 43 characters: 32 random bytes).
const MIN_SECRET: usize = 32;

/// A mailbox as given to `peer add`: `s3://bucket/prefix`.
pub(super) fn url(m: &MailboxRow) -> String {
    format!("s3://{}/{}", m.bucket, m.prefix)
}

/// The bucket and the prefix ("" or ending in `/`) of `s3://bucket[/prefix]`.
fn parse(raw: &str) -> Result<(String, String), AdminError> {
    let bad = |why: &str| {
        AdminError::Invalid(format!(
            "bad mailbox {raw:?}: {why} (expected s3://bucket/prefix)"
        ))
    };
    let rest = raw
        .trim()
        .strip_prefix("s3://")
        .ok_or_else(|| bad("it must start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if !s3s::path::check_bucket_name(bucket) {
        return Err(bad("not an S3 bucket name"));
    }
    let prefix = prefix.trim_matches('/');
    let safe = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && (prefix.is_empty()
            || prefix
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."));
    if !safe {
        return Err(bad(
            "the prefix may hold letters, digits, - _ . and / between names",
        ));
    }
    let prefix = match prefix {
        "" => String::new(),
        p => format!("{p}/"),
    };
    Ok((bucket.to_string(), prefix))
}

/// A new shared secret: 32 random bytes, base64url.
fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Admin {
    /// Adds a peer reached through a mailbox. The test request lists the mailbox's bucket
    /// with the given key; the shared secret is made here when none is given, and returned
    /// once (the peer's `peer add` needs the same).
    pub(super) async fn add_mailbox_peer(&self, n: NewPeer) -> Result<PeerView, AdminError> {
        let invalid = |m: &str| Err(AdminError::Invalid(m.to_string()));
        let Some(raw) = n.mailbox.as_deref() else {
            return invalid("a mailbox secret goes with a mailbox (--mailbox s3://bucket/prefix)");
        };
        let (bucket, prefix) = parse(raw)?;
        if n.endpoint.is_empty() || n.access_key.trim().is_empty() || n.secret_key.is_empty() {
            return invalid(
                "a mailbox needs the endpoint of its S3 server and an access key and secret there",
            );
        }
        if n.pull == Some(true) {
            return invalid(
                "a peer reached through a mailbox is never contacted: it takes no pull",
            );
        }
        let endpoint = check_endpoint(&n.endpoint)?;
        let fingerprint = checked_pin(&endpoint, n.ca_fingerprint.as_deref())?;
        let (shared, made) = match n.mailbox_secret {
            Some(s) if s.chars().count() >= MIN_SECRET => (s, false),
            Some(_) => {
                return Err(AdminError::Invalid(format!(
                    "the mailbox secret must be at least {MIN_SECRET} characters: leave it out on the first node to have one made, and give that one to the peer"
                )))
            }
            None => (new_secret(), true),
        };
        let row = PeerRow {
            secret_enc: self.vault.seal(&seal_id(&n.name), &n.secret_key),
            name: n.name,
            endpoint,
            access_key: n.access_key,
            ca_fingerprint: fingerprint,
            node_id: None,
            created_ms: now_ms(),
            pull: false,
        };
        if n.check.unwrap_or(true) {
            probe(&row, &n.secret_key, Some(&bucket)).await?;
        }
        self.store.insert_peer(&row).await.map_err(|e| match e {
            MetaError::Duplicate => AdminError::Conflict(format!("peer {}", row.name)),
            e => e.into(),
        })?;
        let mb = MailboxRow {
            secret_enc: self.vault.seal(&secret_id(&row.name), &shared),
            peer: row.name.clone(),
            bucket,
            prefix,
        };
        if let Err(e) = self.store.insert_mailbox(&mb).await {
            let _ = self.store.delete_peer(&row.name).await;
            return Err(e.into());
        }
        Ok(PeerView {
            mailbox: Some(url(&mb)),
            mailbox_secret: made.then_some(shared),
            ..peer_view(row)
        })
    }

    /// A resync through a mailbox, which cannot be listed like the peer's bucket: a manifest
    /// of the rule's files goes to the peer as a letter, which judges each key as a resync
    /// does and answers with its own (replication/mailbox/manifest.rs). Returns how many
    /// files the manifest lists; what travels is told in each node's log.
    pub(super) async fn resend_through_mailbox(
        &self,
        rule: &RuleRow,
    ) -> Result<ResyncView, AdminError> {
        self.store
            .want_manifest(&rule.bucket, &rule.peer, false)
            .await?;
        let n = self.store.count_files(&rule.bucket, &rule.prefix).await?;
        Ok(ResyncView {
            peer: rule.peer.clone(),
            bucket: rule.bucket.clone(),
            compared: n,
            shipped: 0,
            deleted: 0,
            pulled: 0,
            refused: 0,
            // the hellos tell when the peer was last there, as shipments do for a direct peer
            away: self
                .store
                .presence()
                .await?
                .iter()
                .find(|p| p.peer == rule.peer)
                .and_then(|p| {
                    crate::replication::away::warning(p, self.vfs.tombstone_keep(), now_ms())
                }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_urls_are_a_bucket_and_a_safe_prefix() {
        let ok = |s: &str| parse(s).ok();
        assert_eq!(ok("s3://mbox"), Some(("mbox".into(), String::new())));
        assert_eq!(ok("s3://mbox/a/b/"), Some(("mbox".into(), "a/b/".into())));
        for bad in [
            "mbox/a",
            "s3://Bad_Bucket/a",
            "s3://mbox/../x",
            "s3://mbox/a//b",
            "s3://mbox/a b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
