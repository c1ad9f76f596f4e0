//! Whether the database answers (`/healthz`), and background jobs run by one gateway at a time.

use std::time::Duration;

use super::{MetaError, Store};

/// A periodic job that one gateway at a time runs (its advisory lock key on PostgreSQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Trash and version purging, then the buckets' lifecycle rules.
    VersionPurge = 1,
    /// Abandoned multipart and resumable uploads.
    UploadExpiry = 2,
    /// Expired browser sessions.
    SessionPurge = 3,
    /// Audit rows past their retention.
    AuditPurge = 4,
    /// Notification queueing and delivery.
    Notify = 5,
    /// Closed throttle windows.
    ThrottlePurge = 6,
    /// Replication's journal, chunk list and tombstone trims.
    ReplicationTrim = 7,
}

impl Job {
    /// The advisory lock key: "kura" in ASCII, shifted, plus the job's number (apart from the
    /// write lock's key).
    fn key(self) -> i64 {
        (0x6b75_7261_i64 << 8) + self as i64
    }
}

/// How long `/healthz` waits for the database's `SELECT 1`.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

impl Store {
    /// `SELECT 1` within `PING_TIMEOUT`; an error when the database does not answer in time.
    pub async fn ping(&self) -> Result<(), MetaError> {
        let query = sqlx::query("SELECT 1").execute(&self.pool);
        match tokio::time::timeout(PING_TIMEOUT, query).await {
            Ok(done) => done.map(drop).map_err(MetaError::from),
            Err(_) => Err(MetaError::Db(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Runs `run` unless another gateway on the database runs `job` now (PostgreSQL:
    /// `pg_try_advisory_xact_lock` of the job's key in a transaction held open while it runs,
    /// so a gateway that stops mid-run frees it). SQLite has one process: it always runs.
    /// `None` when skipped.
    pub async fn once<F, T>(&self, job: Job, run: F) -> Result<Option<T>, MetaError>
    where
        F: std::future::Future<Output = T>,
    {
        if !self.on_postgres() {
            return Ok(Some(run.await));
        }
        let mut tx = self.pool.begin().await?;
        let got: i64 = sqlx::query_scalar("SELECT CAST(pg_try_advisory_xact_lock($1) AS INTEGER)")
            .bind(job.key())
            .fetch_one(&mut *tx)
            .await?;
        if got == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let out = run.await;
        tx.rollback().await?;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two handles on one database (two gateways): while one runs a job, the other skips it,
    /// and runs it once the first is done; another job is not held up.
    #[tokio::test]
    async fn a_job_runs_on_one_handle_at_a_time() {
        let a = Store::in_memory().await.unwrap();
        let b = Store::connect(&a.url_for_tests(), false).await.unwrap();
        let (started, go) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
        let first = a.once(Job::VersionPurge, async {
            started.notify_one();
            go.notified().await;
            1
        });
        let second = async {
            started.notified().await;
            let skipped = b.once(Job::VersionPurge, async { 2 }).await.unwrap();
            let other = b.once(Job::Notify, async { 3 }).await.unwrap();
            go.notify_one();
            (skipped, other)
        };
        let (first, (skipped, other)) = tokio::join!(first, second);
        assert_eq!(first.unwrap(), Some(1));
        assert_eq!(other, Some(3), "another job was held up");
        if a.on_postgres() {
            assert_eq!(skipped, None, "the job ran on both handles at once");
        } else {
            assert_eq!(skipped, Some(2));
        }
        assert_eq!(
            b.once(Job::VersionPurge, async { 4 }).await.unwrap(),
            Some(4)
        );
    }
}
