//! Keys a replication rule set aside after the other side refused that key alone (a lock,
//! a quota, a permission), to retry later without holding up the rule; and the owners and
//! groups a peer named that this node lacks.

use super::{now_ms, MetaError, Store};

/// A key waiting to be retried.
#[derive(Clone, Debug, PartialEq)]
pub struct WaitingRow {
    /// Full path (`/bucket/key`).
    pub path: String,
    /// `push` (the peer refused our shipment) or `pull` (we refused the peer's change).
    pub direction: String,
    /// Node the change came from (None: this node), for a pushed tombstone.
    pub origin: Option<String>,
    /// The last refusal.
    pub reason: String,
    /// Tries so far.
    pub tries: i64,
}

/// An owner or group a peer named that this node does not have.
#[derive(Clone, Debug, PartialEq)]
pub struct UnmappedRow {
    /// Peer name.
    pub peer: String,
    /// `user` or `group`.
    pub kind: String,
    /// The name the peer sent.
    pub name: String,
    /// Who stands in for it here.
    pub mapped_to: String,
    /// The last file it happened to.
    pub last_path: String,
    /// How many shipments named it.
    pub count: i64,
}

impl Store {
    /// Sets a key aside (or records another refusal of it): retried at `next_ms`.
    #[allow(clippy::too_many_arguments)]
    pub async fn wait_key(
        &self,
        bucket: &str,
        peer: &str,
        path: &str,
        direction: &str,
        origin: Option<&str>,
        reason: &str,
        next_ms: i64,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO replication_waiting
               (bucket, peer, path, direction, origin, reason, tries, since_ms, next_ms)
             SELECT $1, $2, $3, $4, $5, $6, 1, $7, $8
             WHERE EXISTS (SELECT 1 FROM replications WHERE bucket = $1 AND peer = $2)
             ON CONFLICT (bucket, peer, path, direction) DO UPDATE SET
               reason = excluded.reason, origin = excluded.origin, tries = tries + 1,
               next_ms = excluded.next_ms",
        )
        .bind(bucket)
        .bind(peer)
        .bind(path)
        .bind(direction)
        .bind(origin)
        .bind(reason)
        .bind(now_ms())
        .bind(next_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The key went through (or has nothing left to do): it waits no more.
    pub async fn unwait_key(
        &self,
        bucket: &str,
        peer: &str,
        path: &str,
        direction: &str,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "DELETE FROM replication_waiting
             WHERE bucket = $1 AND peer = $2 AND path = $3 AND direction = $4",
        )
        .bind(bucket)
        .bind(peer)
        .bind(path)
        .bind(direction)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keys of a rule due for another try, oldest first.
    pub async fn due_keys(
        &self,
        bucket: &str,
        peer: &str,
        limit: i64,
    ) -> Result<Vec<WaitingRow>, MetaError> {
        let rows: Vec<(String, String, Option<String>, String, i64)> = sqlx::query_as(
            "SELECT path, direction, origin, reason, tries FROM replication_waiting
             WHERE bucket = $1 AND peer = $2 AND next_ms <= $3 ORDER BY next_ms LIMIT $4",
        )
        .bind(bucket)
        .bind(peer)
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(path, direction, origin, reason, tries)| WaitingRow {
                path,
                direction,
                origin,
                reason,
                tries,
            })
            .collect())
    }

    /// How many keys a rule has set aside, and the oldest with its last refusal.
    pub async fn waiting_of(
        &self,
        bucket: &str,
        peer: &str,
    ) -> Result<(i64, Option<String>), MetaError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM replication_waiting WHERE bucket = $1 AND peer = $2",
        )
        .bind(bucket)
        .bind(peer)
        .fetch_one(&self.pool)
        .await?;
        let first: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT path, direction, reason, tries FROM replication_waiting
             WHERE bucket = $1 AND peer = $2 ORDER BY since_ms, path LIMIT 1",
        )
        .bind(bucket)
        .bind(peer)
        .fetch_optional(&self.pool)
        .await?;
        Ok((
            n,
            first.map(|(p, d, r, t)| format!("{p} ({d}, {t} tries): {r}")),
        ))
    }

    /// Records that a shipment from `peer` named a user or group this node lacks.
    pub async fn note_unmapped(
        &self,
        peer: &str,
        kind: &str,
        name: &str,
        mapped_to: &str,
        path: &str,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO replication_unmapped
               (peer, kind, name, mapped_to, last_path, count, last_ms)
             VALUES ($1, $2, $3, $4, $5, 1, $6)
             ON CONFLICT (peer, kind, name) DO UPDATE SET mapped_to = excluded.mapped_to,
               last_path = excluded.last_path, count = count + 1, last_ms = excluded.last_ms",
        )
        .bind(peer)
        .bind(kind)
        .bind(name)
        .bind(mapped_to)
        .bind(path)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every owner and group peers named that this node lacks.
    pub async fn unmapped(&self) -> Result<Vec<UnmappedRow>, MetaError> {
        let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT peer, kind, name, mapped_to, last_path, count FROM replication_unmapped
             ORDER BY peer, kind, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(peer, kind, name, mapped_to, last_path, count)| UnmappedRow {
                    peer,
                    kind,
                    name,
                    mapped_to,
                    last_path,
                    count,
                },
            )
            .collect())
    }
}
