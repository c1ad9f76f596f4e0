//! Throttle windows shared by the gateways on one PostgreSQL (docs/scale-out.md, "Shared
//! throttles"): one atomic upsert per count, timed by the database's clock so the gateways'
//! clocks need not agree. SQLite keeps its throttles in memory (`limits`): not called there.

use std::time::Duration;

use super::{MetaError, Store};

/// The database's clock in milliseconds, one value per statement.
pub(super) const NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)";

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn left(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Store {
    /// Counts one event of `key` in its window of `window` (a closed window starts over);
    /// returns the count and the time left in the window.
    pub async fn throttle_count(
        &self,
        key: &str,
        window: Duration,
    ) -> Result<(i64, Duration), MetaError> {
        let sql = format!(
            "INSERT INTO throttle_windows AS w (key, n, until_ms) VALUES ($1, 1, {NOW_MS} + $2)
             ON CONFLICT (key) DO UPDATE SET
               n = CASE WHEN w.until_ms <= {NOW_MS} THEN 1 ELSE w.n + 1 END,
               until_ms = CASE WHEN w.until_ms <= {NOW_MS} THEN EXCLUDED.until_ms ELSE w.until_ms END
             RETURNING n, until_ms - {NOW_MS}"
        );
        let (n, rest): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(ms(window))
            .fetch_one(&self.pool)
            .await?;
        Ok((n, left(rest)))
    }

    /// Takes back one event counted in `key`'s open window (an attempt that did not fail).
    pub async fn throttle_uncount(&self, key: &str) -> Result<(), MetaError> {
        let sql = format!(
            "UPDATE throttle_windows SET n = n - 1 WHERE key = $1 AND n > 0 AND until_ms > {NOW_MS}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The count of `key`'s open window and the time left in it (0 when none is open).
    pub async fn throttle_read(&self, key: &str) -> Result<(i64, Duration), MetaError> {
        let sql = format!(
            "SELECT n, until_ms - {NOW_MS} FROM throttle_windows WHERE key = $1 AND until_ms > {NOW_MS}"
        );
        let row: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or((0, Duration::ZERO), |(n, rest)| (n, left(rest))))
    }

    /// A request of `key` against a budget of one per `interval` with bursts of `burst`
    /// (GCRA, the algorithm of `governor`: `until_ms` is the theoretical arrival time): `Ok`
    /// when admitted (and counted), else how long to wait.
    pub async fn throttle_admit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Result<(), Duration>, MetaError> {
        let (t, room) = (ms(interval), ms(interval).saturating_mul(i64::from(burst)));
        let sql = format!(
            "INSERT INTO throttle_windows AS w (key, n, until_ms) VALUES ($1, 1, {NOW_MS} + $2)
             ON CONFLICT (key) DO UPDATE SET n = w.n + 1,
               until_ms = (CASE WHEN w.until_ms > {NOW_MS} THEN w.until_ms ELSE {NOW_MS} END) + $2
             WHERE (CASE WHEN w.until_ms > {NOW_MS} THEN w.until_ms ELSE {NOW_MS} END) + $2 - {NOW_MS} <= $3
             RETURNING n"
        );
        let admitted: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(t)
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        if admitted.is_some() {
            return Ok(Ok(()));
        }
        let (_, ahead) = self.throttle_read(key).await?;
        Ok(Err(left(ms(ahead) + t - room)))
    }

    /// Forgets the failed-authentication windows of an address (its budget key), an account,
    /// both (their pair), or (both `None`) everyone's, as `limits::FailedAuth::clear` does.
    pub async fn throttle_forget(
        &self,
        ip: Option<&str>,
        account: Option<&str>,
    ) -> Result<u64, MetaError> {
        // keys: auth:pair:IP|ACCOUNT, auth:fail:IP|ACCOUNT (no address holds a `|`),
        // auth:ip:IP, auth:acct:ACCOUNT
        let n = sqlx::query(
            "DELETE FROM throttle_windows WHERE
               (substr(key, 1, 10) IN ('auth:pair:', 'auth:fail:')
                 AND ($1::text IS NULL OR substr(key, 11, strpos(key, '|') - 11) = $1)
                 AND ($2::text IS NULL OR substr(key, strpos(key, '|') + 1) = $2))
            OR (substr(key, 1, 8) = 'auth:ip:' AND $2::text IS NULL
                 AND ($1::text IS NULL OR substr(key, 9) = $1))
            OR (substr(key, 1, 10) = 'auth:acct:' AND $1::text IS NULL
                 AND ($2::text IS NULL OR substr(key, 11) = $2))",
        )
        .bind(ip)
        .bind(account)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// Forgets the windows closed (and budgets full again) for a minute; how many.
    pub async fn purge_throttle(&self) -> Result<u64, MetaError> {
        if !self.on_postgres() {
            return Ok(0);
        }
        let sql = format!("DELETE FROM throttle_windows WHERE until_ms < {NOW_MS} - 60000");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two handles (two gateways) count into one window; a budget is shared the same way.
    #[tokio::test]
    async fn windows_are_counted_across_handles() {
        let a = Store::in_memory().await.unwrap();
        if !a.on_postgres() {
            return; // SQLite keeps its throttles in memory
        }
        let b = Store::connect(&a.url_for_tests(), false).await.unwrap();
        let w = Duration::from_secs(60);
        assert_eq!(a.throttle_count("pair:x", w).await.unwrap().0, 1);
        assert_eq!(b.throttle_count("pair:x", w).await.unwrap().0, 2);
        b.throttle_uncount("pair:x").await.unwrap();
        let (n, rest) = a.throttle_read("pair:x").await.unwrap();
        assert_eq!(n, 1);
        assert!(rest > Duration::from_secs(58) && rest <= w, "{rest:?}");
        let second = Duration::from_secs(1);
        for h in [&a, &b, &a] {
            assert_eq!(
                h.throttle_admit("share:y", second, 3).await.unwrap(),
                Ok(())
            );
        }
        let wait = b
            .throttle_admit("share:y", second, 3)
            .await
            .unwrap()
            .unwrap_err();
        assert!(wait > Duration::ZERO && wait <= second, "{wait:?}");
        assert_eq!(a.purge_throttle().await.unwrap(), 0);
        for k in [
            "auth:pair:10.0.0.1|ann",
            "auth:fail:10.0.0.1|ann",
            "auth:ip:10.0.0.1",
        ] {
            a.throttle_count(k, w).await.unwrap();
        }
        a.throttle_count("auth:pair:10.0.0.2|ann", w).await.unwrap();
        a.throttle_count("auth:acct:ann", w).await.unwrap();
        let forgot = a.throttle_forget(Some("10.0.0.1"), None).await.unwrap();
        assert_eq!(forgot, 3);
        assert_eq!(a.throttle_forget(None, Some("ann")).await.unwrap(), 2);
        assert_eq!(a.throttle_forget(None, None).await.unwrap(), 0);
        assert_eq!(
            a.throttle_read("share:y").await.unwrap().0,
            3,
            "a share budget went"
        );
    }
}
