//! Replication metadata: the node id, peers, rules, the change journal and replica marks.

use super::DbRow;
use sqlx::Row;

use super::{map_unique, now_ms, MetaError, Store};

/// A peer node (or any S3 store) that buckets are mirrored to.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerRow {
    /// Local name of the peer.
    pub name: String,
    /// Base URL of its S3 endpoint.
    pub endpoint: String,
    /// Access key id on the peer.
    pub access_key: String,
    /// Secret, sealed with the server key.
    pub secret_enc: String,
    /// Pinned SHA-256 of the peer's certificate (`AB:CD:..`), if any.
    pub ca_fingerprint: Option<String>,
    /// The peer's own node id once learnt (None for plain S3 stores).
    pub node_id: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// This node cannot be reached by the peer: besides pushing, it pulls the peer's
    /// changes over connections it opens itself (`kura peer add ... --pull`).
    pub pull: bool,
}

impl PeerRow {
    /// A peer with no address: it reaches this node (pushes and pulls), never the reverse.
    pub fn unreachable(&self) -> bool {
        self.endpoint.is_empty()
    }
}

/// A bucket mirrored to a peer, with its shipping position and health.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleRow {
    /// Bucket name (no slashes).
    pub bucket: String,
    /// Peer name.
    pub peer: String,
    /// Only keys starting with this are mirrored ("" for all).
    pub prefix: String,
    /// The peer writes too: reconcile merges instead of mirroring.
    pub bidirectional: bool,
    /// Last journal seq shipped.
    pub position: i64,
    /// Changes shipped so far.
    pub shipped: i64,
    /// Last failure, cleared by the next success.
    pub last_error: Option<String>,
    /// Last successful shipment, ms since the epoch.
    pub last_ok_ms: Option<i64>,
    /// Shipments skipped after the peer kept refusing them.
    pub skipped: i64,
    /// The last skipped path and why (kept until the next skip: a skip is not healed by
    /// later successes, only by a resync).
    pub last_skipped: Option<String>,
    /// Pull: the last seq of the peer's journal applied here (0: none yet).
    pub pulled: i64,
}

/// One journaled change: the path changed or went away.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalRow {
    /// Order of commit.
    pub seq: i64,
    /// Full path (`/bucket/key`).
    pub path: String,
    /// Node the change came from (None: this node).
    pub origin: Option<String>,
    /// When it was committed, ms since the epoch.
    pub created_ms: i64,
}

/// What `kura peer status` shows for one rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleHealth {
    /// The rule.
    pub rule: RuleRow,
    /// Journal entries not yet shipped.
    pub backlog: i64,
    /// Commit time of the oldest unshipped entry.
    pub oldest_ms: Option<i64>,
}

fn row_to_peer(r: DbRow) -> PeerRow {
    PeerRow {
        name: r.get(0),
        endpoint: r.get(1),
        access_key: r.get(2),
        secret_enc: r.get(3),
        ca_fingerprint: r.get(4),
        node_id: r.get(5),
        created_ms: r.get(6),
        pull: r.get::<i64, _>(7) != 0,
    }
}

fn row_to_rule(r: DbRow) -> RuleRow {
    RuleRow {
        bucket: r.get(0),
        peer: r.get(1),
        prefix: r.get(2),
        bidirectional: r.get::<i64, _>(3) != 0,
        position: r.get(4),
        shipped: r.get(5),
        last_error: r.get(6),
        last_ok_ms: r.get(7),
        skipped: r.get(8),
        last_skipped: r.get(9),
        pulled: r.get(10),
    }
}

const PEER_COLS: &str =
    "name, endpoint, access_key, secret_enc, ca_fingerprint, node_id, created_ms, pull";

impl Store {
    /// This node's id, created on first use.
    pub async fn node_id(&self) -> Result<String, MetaError> {
        if let Some(id) = sqlx::query_scalar("SELECT id FROM node LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(id);
        }
        let id = format!("kura-{}", uuid::Uuid::new_v4().simple());
        let mut tx = self.write_tx().await?;
        let existing: Option<String> = sqlx::query_scalar("SELECT id FROM node LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(e) = existing {
            return Ok(e);
        }
        sqlx::query("INSERT INTO node (id, created_ms) VALUES ($1, $2)")
            .bind(&id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records a new peer; `Duplicate` if the name is taken.
    pub async fn insert_peer(&self, p: &PeerRow) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO peers (name, endpoint, access_key, secret_enc, ca_fingerprint, node_id, created_ms, pull)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&p.name)
        .bind(&p.endpoint)
        .bind(&p.access_key)
        .bind(&p.secret_enc)
        .bind(&p.ca_fingerprint)
        .bind(&p.node_id)
        .bind(p.created_ms)
        .bind(i64::from(p.pull))
        .execute(&self.pool)
        .await
        .map_err(map_unique)?;
        Ok(())
    }

    /// Every peer, by name.
    pub async fn peers(&self) -> Result<Vec<PeerRow>, MetaError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PEER_COLS} FROM peers ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(row_to_peer).collect())
    }

    /// One peer by name.
    pub async fn peer(&self, name: &str) -> Result<Option<PeerRow>, MetaError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PEER_COLS} FROM peers WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(row_to_peer))
    }

    /// Removes a peer and its rules; false if there was none.
    pub async fn delete_peer(&self, name: &str) -> Result<bool, MetaError> {
        let n = sqlx::query("DELETE FROM peers WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Remembers the node id a peer answered with.
    pub async fn set_peer_node_id(&self, name: &str, node_id: &str) -> Result<(), MetaError> {
        sqlx::query("UPDATE peers SET node_id = $1 WHERE name = $2")
            .bind(node_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds a rule or updates its prefix and direction. A new rule starts at the journal's
    /// end: what is already stored reaches the peer by resync.
    pub async fn upsert_rule(
        &self,
        bucket: &str,
        peer: &str,
        prefix: &str,
        bidirectional: bool,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO replications (bucket, peer, prefix, bidirectional, position, created_ms)
             VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(seq), 0) FROM journal), $5)
             ON CONFLICT (bucket, peer) DO UPDATE SET prefix = excluded.prefix,
               bidirectional = excluded.bidirectional",
        )
        .bind(bucket)
        .bind(peer)
        .bind(prefix)
        .bind(i64::from(bidirectional))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a rule; false if there was none.
    pub async fn delete_rule(&self, bucket: &str, peer: &str) -> Result<bool, MetaError> {
        let n = sqlx::query("DELETE FROM replications WHERE bucket = $1 AND peer = $2")
            .bind(bucket)
            .bind(peer)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Every rule, by peer then bucket.
    pub async fn rules(&self) -> Result<Vec<RuleRow>, MetaError> {
        let rows = sqlx::query(
            "SELECT bucket, peer, prefix, bidirectional, position, shipped, last_error, last_ok_ms,
               skipped, last_skipped, pulled
             FROM replications ORDER BY peer, bucket",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(row_to_rule).collect())
    }

    /// Every rule with its backlog and the age of its oldest unshipped change.
    pub async fn rule_health(&self) -> Result<Vec<RuleHealth>, MetaError> {
        let mut out = Vec::new();
        for rule in self.rules().await? {
            let (backlog, oldest_ms): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(created_ms) FROM journal WHERE bucket = $1 AND seq > $2",
            )
            .bind(&rule.bucket)
            .bind(rule.position)
            .fetch_one(&self.pool)
            .await?;
            out.push(RuleHealth {
                rule,
                backlog,
                oldest_ms,
            });
        }
        Ok(out)
    }

    /// Journal entries of `bucket` after `seq`, oldest first, at most `limit`.
    pub async fn journal_after(
        &self,
        bucket: &str,
        seq: i64,
        limit: i64,
    ) -> Result<Vec<JournalRow>, MetaError> {
        let rows = sqlx::query(
            "SELECT seq, path, origin, created_ms FROM journal
             WHERE bucket = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(bucket)
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| JournalRow {
                seq: r.get(0),
                path: r.get(1),
                origin: r.get(2),
                created_ms: r.get(3),
            })
            .collect())
    }

    /// Journals `path` outside a change of its own (a node keeping its version over a
    /// peer's, so that the peer gets the winner).
    pub async fn journal_path(&self, path: &str) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        super::replication_journal::journal_path_tx(&mut tx, path, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves a rule past `seq` (durably) after a shipment; `shipped` counts real sends.
    pub async fn advance_rule(
        &self,
        bucket: &str,
        peer: &str,
        seq: i64,
        shipped: i64,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "UPDATE replications SET position = (CASE WHEN position > $1 THEN position ELSE $1 END), shipped = shipped + $2,
               last_error = NULL, last_ok_ms = $3 WHERE bucket = $4 AND peer = $5",
        )
        .bind(seq)
        .bind(shipped)
        .bind(now_ms())
        .bind(bucket)
        .bind(peer)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves a pulling rule's cursor in the peer's journal past `seq` (durably), once the
    /// entries up to it are applied here.
    pub async fn set_pulled(&self, bucket: &str, peer: &str, seq: i64) -> Result<(), MetaError> {
        sqlx::query(
            "UPDATE replications SET pulled = (CASE WHEN pulled > $1 THEN pulled ELSE $1 END), last_error = NULL, last_ok_ms = $2
             WHERE bucket = $3 AND peer = $4",
        )
        .bind(seq)
        .bind(now_ms())
        .bind(bucket)
        .bind(peer)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The peer answered again after a failure: the rule's last error is gone.
    pub async fn clear_rule_error(&self, bucket: &str, peer: &str) -> Result<(), MetaError> {
        sqlx::query(
            "UPDATE replications SET last_error = NULL, last_ok_ms = $1
             WHERE bucket = $2 AND peer = $3",
        )
        .bind(now_ms())
        .bind(bucket)
        .bind(peer)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how long the server remembers deletions (`tombstone_days`), at its start.
    pub async fn record_tombstone_keep(&self, keep_ms: i64) -> Result<(), MetaError> {
        self.node_id().await?;
        sqlx::query("UPDATE node SET tombstone_keep_ms = $1")
            .bind(keep_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How long the server last started here remembers deletions (None: never recorded).
    pub async fn recorded_tombstone_keep(&self) -> Result<Option<i64>, MetaError> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT tombstone_keep_ms FROM node LIMIT 1")
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// Records why a rule could not ship.
    pub async fn set_rule_error(
        &self,
        bucket: &str,
        peer: &str,
        error: &str,
    ) -> Result<(), MetaError> {
        // the first error after a success is an event (notifications: replication failing)
        let q = sqlx::query(
            "UPDATE replications SET last_error = $1
             WHERE bucket = $2 AND peer = $3 AND last_error IS NULL",
        )
        .bind(error)
        .bind(bucket)
        .bind(peer);
        let path = format!("/{bucket}");
        if self
            .audited(q, "replication_failing", Some(&path), Some(peer))
            .await?
            == 0
        {
            sqlx::query("UPDATE replications SET last_error = $1 WHERE bucket = $2 AND peer = $3")
                .bind(error)
                .bind(bucket)
                .bind(peer)
                .execute(&self.writer)
                .await?;
        }
        Ok(())
    }

    /// Binds an access key to a peer: requests signed with it are that peer's shipments.
    pub async fn bind_peer_key(&self, key_id: &str, peer: &str) -> Result<(), MetaError> {
        sqlx::query("INSERT INTO peer_keys (key_id, peer, created_ms) VALUES ($1, $2, $3)")
            .bind(key_id)
            .bind(peer)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(map_unique)?;
        Ok(())
    }

    /// The peer an access key is bound to (None: an ordinary user's key).
    pub async fn peer_of_key(&self, key_id: &str) -> Result<Option<String>, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT peer FROM peer_keys WHERE key_id = $1")
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The user the peer `peer` acts as here (owner of its newest peer key), if it has one.
    pub async fn peer_key_user(&self, peer: &str) -> Result<Option<String>, MetaError> {
        Ok(sqlx::query_scalar(
            "SELECT k.owner FROM peer_keys p JOIN access_keys k ON k.id = p.key_id
             WHERE p.peer = $1 ORDER BY p.created_ms DESC, p.key_id LIMIT 1",
        )
        .bind(peer)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Drops journal entries every rule of their bucket has shipped (and those of buckets no
    /// longer replicated).
    pub async fn trim_journal(&self) -> Result<u64, MetaError> {
        let n = sqlx::query(
            "DELETE FROM journal WHERE seq <= COALESCE(
               (SELECT MIN(position) FROM replications r WHERE r.bucket = journal.bucket), seq)",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// The version `node` is known to hold at `path`.
    pub async fn mark(&self, node: &str, path: &str) -> Result<Option<String>, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT etag FROM replica_marks WHERE node = $1 AND path = $2")
                .bind(node)
                .bind(path)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records that `node` holds `etag` at `path` (None: holds nothing there).
    pub async fn set_mark(
        &self,
        node: &str,
        path: &str,
        etag: Option<&str>,
    ) -> Result<(), MetaError> {
        match etag {
            Some(etag) => {
                sqlx::query(
                    "INSERT INTO replica_marks (node, path, etag) VALUES ($1, $2, $3)
                     ON CONFLICT (node, path) DO UPDATE SET etag = excluded.etag",
                )
                .bind(node)
                .bind(path)
                .bind(etag)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query("DELETE FROM replica_marks WHERE node = $1 AND path = $2")
                    .bind(node)
                    .bind(path)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EntryRow;

    fn file(path: &str) -> EntryRow {
        EntryRow {
            path: path.into(),
            parent: path.rsplit_once('/').map_or("/", |p| p.0).into(),
            is_dir: false,
            size: 1,
            mtime_ms: 1,
            etag: "e".into(),
            content_type: None,
            owner: None,
            headers: None,
            grp: None,
            mode: 0o664,
            origin: None,
            sealed: None,
            blob: None,
        }
    }

    #[tokio::test]
    async fn changes_of_replicated_buckets_are_journaled_with_the_change() {
        let s = Store::in_memory().await.unwrap();
        for b in ["/photos", "/other"] {
            s.insert_dir(&EntryRow {
                path: b.into(),
                parent: "/".into(),
                is_dir: true,
                ..file(b)
            })
            .await
            .unwrap();
        }
        s.put_file(&file("/other/x")).await.unwrap();
        s.insert_peer(&PeerRow {
            name: "b".into(),
            endpoint: "https://b".into(),
            access_key: "k".into(),
            secret_enc: "s".into(),
            ca_fingerprint: None,
            node_id: None,
            created_ms: 0,
            pull: false,
        })
        .await
        .unwrap();
        s.upsert_rule("photos", "b", "", false).await.unwrap();
        s.put_file(&file("/photos/a")).await.unwrap();
        s.put_file(&file("/other/y")).await.unwrap();
        s.move_tree(
            "/photos/a",
            "/photos/b",
            "/photos",
            None,
            (None, &Default::default()),
            async { Ok::<(), ()>(()) },
        )
        .await
        .unwrap();
        s.delete_tree("/photos/b", Some("kura-peer")).await.unwrap();
        let j = s.journal_after("photos", 0, 100).await.unwrap();
        let got: Vec<_> = j
            .iter()
            .map(|r| (r.path.as_str(), r.origin.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("/photos/a", None),
                ("/photos/a", None),
                ("/photos/b", None),
                ("/photos/b", Some("kura-peer"))
            ]
        );
        assert!(s.journal_after("other", 0, 100).await.unwrap().is_empty());
        let h = s.rule_health().await.unwrap();
        assert_eq!(h[0].backlog, 4);
        s.advance_rule("photos", "b", j[3].seq, 1).await.unwrap();
        assert_eq!(s.rule_health().await.unwrap()[0].backlog, 0);
        assert_eq!(s.trim_journal().await.unwrap(), 4);
    }
}
