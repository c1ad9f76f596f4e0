//! Leases of replication rules: which gateway on the database ships a rule now
//! (docs/scale-out.md, "Replication on several gateways"). Timed by the database's clock.
//! SQLite has one process: it always holds every lease.

use std::time::Duration;

use super::throttle::NOW_MS;
use super::{MetaError, Store};

impl Store {
    /// Takes or renews the lease of the rule (`bucket`, `peer`) for `holder` until `lease`
    /// from now: true when `holder` has it (it was free, expired, or already its own).
    pub async fn take_lease(
        &self,
        bucket: &str,
        peer: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, MetaError> {
        if !self.on_postgres() {
            return Ok(true);
        }
        let sql = format!(
            "INSERT INTO replication_leases AS l (bucket, peer, holder, until_ms)
             VALUES ($1, $2, $3, {NOW_MS} + $4)
             ON CONFLICT (bucket, peer) DO UPDATE SET holder = EXCLUDED.holder, until_ms = EXCLUDED.until_ms
             WHERE l.until_ms < {NOW_MS} OR l.holder = EXCLUDED.holder
             RETURNING holder"
        );
        let got: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(bucket)
            .bind(peer)
            .bind(holder)
            .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
            .fetch_optional(&self.pool)
            .await?;
        Ok(got.is_some())
    }

    /// Whether `holder` holds the rule's lease now (always on SQLite).
    pub async fn holds_lease(
        &self,
        bucket: &str,
        peer: &str,
        holder: &str,
    ) -> Result<bool, MetaError> {
        if !self.on_postgres() {
            return Ok(true);
        }
        let sql = format!(
            "SELECT COUNT(*) FROM replication_leases
             WHERE bucket = $1 AND peer = $2 AND holder = $3 AND until_ms >= {NOW_MS}"
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(bucket)
            .bind(peer)
            .bind(holder)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Of two handles, one holds a rule's lease; the other gets it once it expires.
    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_expires() {
        let a = Store::in_memory().await.unwrap();
        if !a.on_postgres() {
            return; // one process: always the holder
        }
        let b = Store::connect(&a.url_for_tests(), false).await.unwrap();
        a.insert_peer(&crate::store::PeerRow {
            name: "pr".into(),
            endpoint: "https://pr".into(),
            access_key: "k".into(),
            secret_enc: "s".into(),
            ca_fingerprint: None,
            node_id: None,
            created_ms: 0,
            pull: false,
        })
        .await
        .unwrap();
        a.upsert_rule("bk", "pr", "", false).await.unwrap();
        let short = Duration::from_millis(300);
        assert!(a.take_lease("bk", "pr", "gw-a", short).await.unwrap());
        assert!(!b.take_lease("bk", "pr", "gw-b", short).await.unwrap());
        assert!(a.take_lease("bk", "pr", "gw-a", short).await.unwrap());
        assert!(b.holds_lease("bk", "pr", "gw-a").await.unwrap());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(b.take_lease("bk", "pr", "gw-b", short).await.unwrap());
        assert!(!a.take_lease("bk", "pr", "gw-a", short).await.unwrap());
        assert!(!a.holds_lease("bk", "pr", "gw-a").await.unwrap());
    }
}
