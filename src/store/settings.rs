//! Per-bucket settings rows (S3 CORS rules, public access...): opaque JSON values the core
//! hands out; and the entries whose ACL is public-read.

use super::inline::Arg;
use super::{MetaError, Store};

impl Store {
    /// The value of setting `name` of the bucket at `bucket` (a top-level path), if set. Kept
    /// in memory while the settings generation holds (`generations.rs`): a write reads several
    /// settings of its bucket, and they seldom change.
    pub async fn bucket_setting(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<Option<String>, MetaError> {
        let at = self.generations().await.map(|g| g.settings);
        let key = (bucket.to_string(), name.to_string());
        if let Some(v) = self.generation.settings.get(at, &key) {
            return Ok(v);
        }
        let v = self
            .read(
                "SELECT value FROM bucket_settings WHERE bucket = $1 AND name = $2",
                &[Arg::Text(bucket), Arg::Text(name)],
                |r| r.maybe(0),
            )
            .await?
            .into_iter()
            .next()
            .flatten();
        if let Some(at) = at {
            self.generation.settings.put(at, key, v.clone());
        }
        Ok(v)
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

    /// Every bucket that has the setting `name`, with its value (background workers).
    pub async fn buckets_with_setting(
        &self,
        name: &str,
    ) -> Result<Vec<(String, String)>, MetaError> {
        Ok(sqlx::query_as(
            "SELECT bucket, value FROM bucket_settings WHERE name = $1 ORDER BY bucket",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every setting of a bucket, by name.
    pub async fn bucket_settings(
        &self,
        bucket: &str,
    ) -> Result<std::collections::HashMap<String, String>, MetaError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, value FROM bucket_settings WHERE bucket = $1")
                .bind(bucket)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Whether `a` or `b` (an entry and its bucket) has a public-read ACL.
    pub async fn public_read(&self, a: &str, b: &str) -> Result<bool, MetaError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM public_reads WHERE path = $1 OR path = $2")
                .bind(a)
                .bind(b)
                .fetch_one(&self.pool)
                .await?;
        Ok(n > 0)
    }

    /// Sets an entry's mode and whether its ACL is public-read, in one transaction; `Gone`
    /// when the entry is not there.
    pub async fn set_mode_public(
        &self,
        path: &str,
        mode: i64,
        public: bool,
    ) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("UPDATE entries SET mode = $1 WHERE path = $2")
            .bind(mode)
            .bind(path)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(MetaError::Gone);
        }
        let q = if public {
            "INSERT INTO public_reads (path) VALUES ($1) ON CONFLICT (path) DO NOTHING"
        } else {
            "DELETE FROM public_reads WHERE path = $1"
        };
        sqlx::query(q).bind(path).execute(&mut *tx).await?;
        super::entries::journal_attrs_tx(&mut tx, path, super::AttrChange::Here).await?;
        // an ACL is a chmod, and opening an object to anyone is the part worth noting
        super::audit::record_detail_tx(
            &mut tx,
            "chmod",
            Some(path),
            None,
            Some(if public { "public" } else { "private" }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
