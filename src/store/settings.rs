//! Per-bucket settings rows (S3 CORS rules...): opaque JSON values the core hands out.

use super::{MetaError, Store};

impl Store {
    /// The value of setting `name` of the bucket at `bucket` (a top-level path), if set.
    pub async fn bucket_setting(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<Option<String>, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM bucket_settings WHERE bucket = $1 AND name = $2")
                .bind(bucket)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Sets (`Some`) or clears (`None`) a bucket's setting; `Gone` when the bucket is not there.
    pub async fn set_bucket_setting(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), MetaError> {
        let q = match value {
            Some(v) => sqlx::query(
                "INSERT INTO bucket_settings (bucket, name, value) VALUES ($1, $2, $3)
                 ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value",
            )
            .bind(bucket)
            .bind(name)
            .bind(v),
            None => sqlx::query("DELETE FROM bucket_settings WHERE bucket = $1 AND name = $2")
                .bind(bucket)
                .bind(name),
        };
        match q.execute(&self.writer).await {
            // the bucket was deleted since the caller's checks (foreign key)
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(MetaError::Gone),
            r => r.map(|_| ()).map_err(MetaError::from),
        }
    }
}
