//! S3's view of versions (the versioning API, docs/versions.md): a bucket's S3 versioning state
//! and which kept rows S3 clients see (`versions.s3`). The tree transactions read the state
//! inside their own transaction, so a write racing PutBucketVersioning follows one state.

use super::DbTx;

use super::usage::bucket_of;
use super::{below, MetaError, Store};

/// The bucket setting holding a bucket's S3 versioning state (absent: never set).
pub const S3_SETTING: &str = "s3_versioning";

/// A bucket's S3 versioning state once PutBucketVersioning set it (never unset again, as on
/// AWS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Versioning {
    /// Every write gets a new version id; deletes leave delete markers.
    Enabled,
    /// Writes and delete markers get the null version id, replacing the previous null version.
    Suspended,
}

impl S3Versioning {
    /// The stored value (JSON, as every bucket setting).
    fn json(self) -> &'static str {
        match self {
            S3Versioning::Enabled => "\"Enabled\"",
            S3Versioning::Suspended => "\"Suspended\"",
        }
    }

    pub(super) fn from_json(v: &str) -> Option<Self> {
        match v {
            "\"Enabled\"" => Some(S3Versioning::Enabled),
            "\"Suspended\"" => Some(S3Versioning::Suspended),
            _ => None,
        }
    }
}

/// The S3 state of the bucket holding `path`, inside a transaction.
pub(super) async fn state_tx(tx: &mut DbTx, path: &str) -> Result<Option<S3Versioning>, MetaError> {
    let Some(bucket) = bucket_of(path) else {
        return Ok(None);
    };
    let v: Option<String> =
        sqlx::query_scalar("SELECT value FROM bucket_settings WHERE bucket = $1 AND name = $2")
            .bind(bucket)
            .bind(S3_SETTING)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(v.as_deref().and_then(S3Versioning::from_json))
}

/// A new null version of `path` is written: the previous one (current or kept) is S3's no
/// more. Kura keeps its bytes by the bucket's policy, outside S3's view.
pub(super) async fn hide_nulls_tx(tx: &mut DbTx, path: &str) -> Result<(), MetaError> {
    sqlx::query("UPDATE versions SET s3 = 0 WHERE path = $1 AND null_version = 1 AND s3 = 1")
        .bind(path)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// The S3 versioning state of bucket `bucket` (`/b`); `None`: never set.
    pub async fn s3_versioning(&self, bucket: &str) -> Result<Option<S3Versioning>, MetaError> {
        Ok(self
            .bucket_setting(bucket, S3_SETTING)
            .await?
            .as_deref()
            .and_then(S3Versioning::from_json))
    }

    /// Sets the S3 versioning state of bucket `bucket`; `Gone` when it is not there. The first
    /// time, the files already there become null versions (written before versioning, as on
    /// AWS).
    pub async fn set_s3_versioning(&self, bucket: &str, v: S3Versioning) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        let before = state_tx(&mut tx, &format!("{bucket}/x")).await?;
        if before.is_none() {
            let (lo, hi) = below(bucket);
            sqlx::query(
                "UPDATE entries SET version_id = NULL WHERE is_dir = 0 AND path >= $1 AND path < $2",
            )
            .bind(&lo)
            .bind(&hi)
            .execute(&mut *tx)
            .await?;
        }
        let res = sqlx::query(
            "INSERT INTO bucket_settings (bucket, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value",
        )
        .bind(bucket)
        .bind(S3_SETTING)
        .bind(v.json())
        .execute(&mut *tx)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(MetaError::Gone)
            }
            r => r?,
        };
        let state = match v {
            S3Versioning::Enabled => "Enabled",
            S3Versioning::Suspended => "Suspended",
        };
        super::audit::record_tx(&mut tx, "versioning", Some(bucket), Some(state)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The version id of the current file at `path`: `None` when there is no file there,
    /// `Some(None)` for a null version.
    pub async fn current_version_id(
        &self,
        path: &str,
    ) -> Result<Option<Option<String>>, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT version_id FROM entries WHERE path = $1 AND is_dir = 0")
                .bind(path)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Up to `limit` paths in `[lo, hi)` after `after` (exclusive) holding a current file or
    /// S3-visible kept rows, in S3's byte order.
    pub async fn s3_paths(
        &self,
        (lo, hi): (&str, &str),
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, MetaError> {
        // one lower bound per table (entries.rs, `files_in_range`: SQLite seeks to the first)
        let (sql, start) = if after >= lo {
            (
                "SELECT path FROM entries WHERE is_dir = 0 AND path > $1 AND path < $2
                 UNION
                 SELECT path FROM versions WHERE s3 = 1 AND is_dir = 0 AND path > $1 AND path < $2
                 ORDER BY path LIMIT $3",
                after,
            )
        } else {
            (
                "SELECT path FROM entries WHERE is_dir = 0 AND path >= $1 AND path < $2
                 UNION
                 SELECT path FROM versions WHERE s3 = 1 AND is_dir = 0 AND path >= $1 AND path < $2
                 ORDER BY path LIMIT $3",
                lo,
            )
        };
        Ok(sqlx::query_scalar(sql)
            .bind(start)
            .bind(hi)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}
