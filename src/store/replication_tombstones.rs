//! Tombstones: the version each deleted file held, so that a resync after a break tells
//! "deleted here" from "never seen here"; and when each peer was last reached, so that a
//! break longer than tombstones are kept is known.

use super::DbTx;
use sqlx::Row;

use super::{below, MetaError, Store};

/// A file deleted here: the version it held (ETag and modification time name a version on
/// every node), where the deletion came from and when.
#[derive(Clone, Debug, PartialEq)]
pub struct TombstoneRow {
    /// Full path (`/bucket/key`).
    pub path: String,
    /// ETag of the deleted version.
    pub etag: String,
    /// Modification time of the deleted version, ms since the epoch.
    pub mtime_ms: i64,
    /// Node the deletion came from (None: this node).
    pub origin: Option<String>,
    /// When it was deleted, ms since the epoch.
    pub deleted_ms: i64,
}

/// When a peer was last reached, and its last absence longer than tombstones are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Presence {
    /// Peer name.
    pub peer: String,
    /// Last contact, ms since the epoch (None: never).
    pub seen_ms: Option<i64>,
    /// Length of the last absence longer than tombstones are kept, ms.
    pub away_ms: Option<i64>,
    /// When that absence ended, ms since the epoch.
    pub back_ms: Option<i64>,
}

/// Remembers every file at or below `path` as deleted (by `origin`, None for this node), in
/// the deletion's transaction, on a node that has a peer.
pub(super) async fn tombstone_tree_tx(
    tx: &mut DbTx,
    path: &str,
    origin: Option<&str>,
) -> Result<(), MetaError> {
    let (lo, hi) = below(path);
    sqlx::query(
        "INSERT INTO tombstones (path, etag, mtime_ms, origin, deleted_ms)
         SELECT path, etag, mtime_ms, $1, $2 FROM entries
         WHERE (path = $3 OR (path >= $4 AND path < $5)) AND is_dir = 0
           AND EXISTS (SELECT 1 FROM peers)
         ON CONFLICT (path) DO UPDATE SET etag = excluded.etag, mtime_ms = excluded.mtime_ms,
           origin = excluded.origin, deleted_ms = excluded.deleted_ms",
    )
    .bind(origin)
    .bind(super::now_ms())
    .bind(path)
    .bind(&lo)
    .bind(&hi)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The deletion remembered at `path` if it happened at or after `since_ms`.
    pub async fn tombstone(
        &self,
        path: &str,
        since_ms: i64,
    ) -> Result<Option<TombstoneRow>, MetaError> {
        let row: Option<(String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT etag, mtime_ms, origin, deleted_ms FROM tombstones
             WHERE path = $1 AND deleted_ms >= $2",
        )
        .bind(path)
        .bind(since_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(etag, mtime_ms, origin, deleted_ms)| TombstoneRow {
                path: path.to_string(),
                etag,
                mtime_ms,
                origin,
                deleted_ms,
            }),
        )
    }

    /// Forgets deletions older than `before_ms`; returns how many.
    pub async fn prune_tombstones(&self, before_ms: i64) -> Result<u64, MetaError> {
        Ok(sqlx::query("DELETE FROM tombstones WHERE deleted_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Records a contact with `peer` now (at most once per `every_ms`). When it ends an
    /// absence longer than `keep_ms`, that absence is recorded and its length returned.
    pub async fn peer_seen(
        &self,
        peer: &str,
        every_ms: i64,
        keep_ms: i64,
    ) -> Result<Option<i64>, MetaError> {
        let now = super::now_ms();
        // SQLite evaluates every SET expression against the row as it was
        let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
            "UPDATE peers SET
               away_ms = CASE WHEN $1 - seen_ms > $3 THEN $1 - seen_ms ELSE away_ms END,
               back_ms = CASE WHEN $1 - seen_ms > $3 THEN $1 ELSE back_ms END,
               seen_ms = $1
             WHERE name = $2 AND (seen_ms IS NULL OR seen_ms <= $1 - $4)
             RETURNING away_ms, back_ms",
        )
        .bind(now)
        .bind(peer)
        .bind(keep_ms)
        .bind(every_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((Some(away), Some(back))) if back == now => Some(away),
            _ => None,
        })
    }

    /// When each peer was last reached and its last long absence, by name.
    pub async fn presence(&self) -> Result<Vec<Presence>, MetaError> {
        let rows = sqlx::query("SELECT name, seen_ms, away_ms, back_ms FROM peers ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Presence {
                peer: r.get(0),
                seen_ms: r.get(1),
                away_ms: r.get(2),
                back_ms: r.get(3),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EntryRow, PeerRow};

    fn entry(path: &str, is_dir: bool) -> EntryRow {
        EntryRow {
            path: path.into(),
            parent: match path.rsplit_once('/') {
                Some(("", _)) | None => "/".into(),
                Some((p, _)) => p.into(),
            },
            is_dir,
            size: 1,
            mtime_ms: 1234,
            etag: format!("etag-of-{path}"),
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

    async fn peer(s: &Store) {
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
    }

    /// Deletes and moves remember the version each file held, with who deleted it; only on
    /// a node with a peer, and folders are not remembered.
    #[tokio::test]
    async fn deletions_and_moves_leave_tombstones_on_a_node_with_a_peer() {
        let s = Store::in_memory().await.unwrap();
        for d in ["/photos", "/photos/d"] {
            s.insert_dir(&entry(d, true)).await.unwrap();
        }
        for f in ["/photos/lone", "/photos/d/x", "/photos/d/y", "/photos/m"] {
            s.put_file(&entry(f, false)).await.unwrap();
        }
        s.delete_tree("/photos/lone", None).await.unwrap();
        assert_eq!(s.tombstone("/photos/lone", 0).await.unwrap(), None);
        peer(&s).await;
        s.put_file(&entry("/photos/lone", false)).await.unwrap();
        s.delete_tree("/photos/d", Some("kura-b")).await.unwrap();
        s.delete_tree("/photos/lone", None).await.unwrap();
        s.move_tree(
            "/photos/m",
            "/photos/n",
            "/photos",
            None,
            (None, &Default::default()),
            async { Ok::<(), ()>(()) },
        )
        .await
        .unwrap();
        let x = s.tombstone("/photos/d/x", 0).await.unwrap().unwrap();
        assert_eq!(
            (x.etag.as_str(), x.mtime_ms, x.origin.as_deref()),
            ("etag-of-/photos/d/x", 1234, Some("kura-b"))
        );
        assert!(s.tombstone("/photos/d/y", 0).await.unwrap().is_some());
        assert_eq!(s.tombstone("/photos/d", 0).await.unwrap(), None);
        let lone = s.tombstone("/photos/lone", 0).await.unwrap().unwrap();
        assert_eq!(lone.origin, None);
        assert!(s.tombstone("/photos/m", 0).await.unwrap().is_some());
        assert_eq!(s.tombstone("/photos/n", 0).await.unwrap(), None);
        // too old for the asked retention, then pruned
        assert_eq!(
            s.tombstone("/photos/lone", lone.deleted_ms + 1)
                .await
                .unwrap(),
            None
        );
        let later = crate::store::now_ms() + 1;
        assert_eq!(s.prune_tombstones(later).await.unwrap(), 4);
        assert_eq!(s.tombstone("/photos/lone", 0).await.unwrap(), None);
    }

    /// A contact after an absence longer than the retention is recorded once.
    #[tokio::test]
    async fn an_absence_longer_than_the_retention_is_recorded() {
        let s = Store::in_memory().await.unwrap();
        peer(&s).await;
        assert_eq!(s.peer_seen("b", 0, 10_000).await.unwrap(), None);
        assert_eq!(s.peer_seen("nobody", 0, 10_000).await.unwrap(), None);
        sqlx::query("UPDATE peers SET seen_ms = seen_ms - 60000")
            .execute(&s.pool)
            .await
            .unwrap();
        let away = s.peer_seen("b", 0, 10_000).await.unwrap();
        assert!(away.is_some_and(|a| a >= 60_000), "{away:?}");
        // (a contact in the very millisecond of the return would tell it again)
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert_eq!(s.peer_seen("b", 0, 10_000).await.unwrap(), None);
        let p = &s.presence().await.unwrap()[0];
        assert!(p.away_ms.is_some_and(|a| a >= 60_000) && p.back_ms.is_some());
        // within `every_ms` nothing is written
        assert_eq!(s.peer_seen("b", 3_600_000, 0).await.unwrap(), None);
    }
}
