//! Files stored under an S3 client's own key (SSE-C), counted: replication cannot open them,
//! so `kura peer status` shows how many of a rule's files never travel (docs/replication.md).

use super::{below, MetaError, Store};

impl Store {
    /// How many current files of `bucket` whose key (the path below the bucket) starts with
    /// `prefix` are sealed under an S3 client's own key (SSE-C, recorded as `c1:...`).
    pub async fn customer_keyed_files(&self, bucket: &str, prefix: &str) -> Result<u64, MetaError> {
        let b = format!("/{}", bucket.trim_matches('/'));
        let (lo, hi) = below(&b);
        let start = format!("{lo}{prefix}");
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM entries
             WHERE path >= $1 AND path < $2 AND substr(path, 1, length($3)) = $3
               AND is_dir = 0 AND substr(sealed, 1, 3) = 'c1:'",
        )
        .bind(&start)
        .bind(&hi)
        .bind(&start)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }
}
