//! Quota accounting: the group owning a bucket pays for everything in it. Counters change in
//! the same transaction as the rows they count, so usage never drifts from what is recorded.

use super::DbTx;
use sqlx::Row;

use super::{MetaError, Store};

/// The bucket (top-level folder) of a path: `/a/b/c` -> `/a`.
pub(super) fn bucket_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return None;
    }
    let end = rest.find('/').map_or(path.len(), |i| i + 1);
    Some(&path[..end])
}

/// The group paying for `path`: the group of its bucket (a folder at the root). Files stored
/// directly at the root belong to no bucket and are never charged or credited.
pub(super) async fn payer_tx(tx: &mut DbTx, path: &str) -> Result<Option<String>, MetaError> {
    let Some(bucket) = bucket_of(path) else {
        return Ok(None);
    };
    let row = sqlx::query("SELECT grp FROM entries WHERE path = $1 AND is_dir = 1")
        .bind(bucket)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
}

/// Bytes and files of an entry and everything below it.
pub(super) async fn tree_usage_tx(tx: &mut DbTx, path: &str) -> Result<(i64, i64), MetaError> {
    let (lo, hi) = (format!("{path}/"), format!("{path}0"));
    let row = sqlx::query(
        "SELECT COALESCE(CAST(SUM(size) AS BIGINT), 0), COUNT(*) FROM entries
         WHERE is_dir = 0 AND (path = $1 OR (path >= $2 AND path < $3))",
    )
    .bind(path)
    .bind(&lo)
    .bind(&hi)
    .fetch_one(&mut **tx)
    .await?;
    Ok((row.get(0), row.get(1)))
}

/// Adds to a group's usage; growth beyond a quota fails with `QuotaExceeded` and changes
/// nothing. Shrinking is never refused. `None` (no group) pays nothing.
pub(super) async fn charge_tx(
    tx: &mut DbTx,
    group: Option<&str>,
    bytes: i64,
    files: i64,
) -> Result<(), MetaError> {
    let Some(group) = group else {
        return Ok(());
    };
    if bytes == 0 && files == 0 {
        return Ok(());
    }
    let grows = bytes > 0 || files > 0;
    let r = sqlx::query(
        "UPDATE groups SET used_bytes = used_bytes + $1, used_objects = used_objects + $2
         WHERE name = $3 AND ($4 = 0
           OR ((quota_bytes IS NULL OR $5 <= 0 OR used_bytes + version_bytes + $6 <= quota_bytes)
           AND (quota_objects IS NULL OR $7 <= 0
                OR used_objects + version_objects + $8 <= quota_objects)))",
    )
    .bind(bytes)
    .bind(files)
    .bind(group)
    .bind(i64::from(grows))
    .bind(bytes)
    .bind(bytes)
    .bind(files)
    .bind(files)
    .execute(&mut **tx)
    .await?;
    if r.rows_affected() == 0 {
        let exists = sqlx::query("SELECT 1 FROM groups WHERE name = $1")
            .bind(group)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
        if exists {
            return Err(MetaError::QuotaExceeded(group.to_string()));
        }
    }
    Ok(())
}

/// A group's recorded usage against what its buckets hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// Group name.
    pub group: String,
    /// Recorded bytes and files.
    pub recorded: (i64, i64),
    /// Bytes and files counted from the rows of its buckets.
    pub actual: (i64, i64),
    /// Recorded bytes and files of noncurrent versions and trash.
    pub recorded_versions: (i64, i64),
    /// Bytes and files of noncurrent versions and trash counted from their rows.
    pub actual_versions: (i64, i64),
}

impl Store {
    /// The paying group and the bytes it may still add; `None` when unlimited (or no group pays).
    pub async fn bytes_left(&self, path: &str) -> Result<Option<(String, i64)>, MetaError> {
        let Some(bucket) = bucket_of(path) else {
            return Ok(None);
        };
        // one query: the bucket's group and what its quota leaves (no row: unlimited or unpaid)
        let rows = self
            .read(
                "SELECT g.name, g.quota_bytes - g.used_bytes - g.version_bytes FROM entries e
             JOIN groups g ON g.name = e.grp
             WHERE e.path = $1 AND e.is_dir = 1 AND g.quota_bytes IS NOT NULL",
                &[super::inline::Arg::Text(bucket)],
                |r| Some((r.text(0)?, r.int(1)?)),
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Fails with `QuotaExceeded` unless the group paying for `path` may grow by `bytes` and
    /// `files` now: the charge every commit makes (`charge_tx`), made and rolled back.
    pub async fn check_charge(&self, path: &str, bytes: i64, files: i64) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        let payer = payer_tx(&mut tx, path).await?;
        // dropped uncommitted: nothing is charged
        charge_tx(&mut tx, payer.as_deref(), bytes, files).await
    }

    /// Sets a group's limits (`None`: unlimited).
    pub async fn set_quota(
        &self,
        group: &str,
        bytes: Option<i64>,
        objects: Option<i64>,
    ) -> Result<bool, MetaError> {
        let q =
            sqlx::query("UPDATE groups SET quota_bytes = $1, quota_objects = $2 WHERE name = $3")
                .bind(bytes)
                .bind(objects)
                .bind(group);
        Ok(self.audited(q, "quota", Some(group), None).await? == 1)
    }

    /// The group paying for a path and its (quota bytes, used bytes), for RFC 4331 properties.
    pub async fn quota_of(&self, path: &str) -> Result<Option<(Option<i64>, i64)>, MetaError> {
        Ok(self
            .meter_of(path)
            .await?
            .map(|(_, quota, used)| (quota, used)))
    }

    /// The group paying for a path with its quota (None: no limit) and used bytes, for quota
    /// meters.
    pub async fn meter_of(
        &self,
        path: &str,
    ) -> Result<Option<(String, Option<i64>, i64)>, MetaError> {
        let mut tx = self.pool.begin().await?;
        let Some(group) = payer_tx(&mut tx, path).await? else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT quota_bytes, used_bytes + version_bytes FROM groups WHERE name = $1",
        )
        .bind(&group)
        .fetch_optional(&mut *tx)
        .await?;
        Ok(row.map(|r| (group, r.get(0), r.get(1))))
    }

    /// Recomputes every group's usage from the rows of its buckets; with `repair`, writes the
    /// counted figures. Returns the groups whose counters were wrong.
    pub async fn check_usage(&self, repair: bool) -> Result<Vec<Drift>, MetaError> {
        let mut tx = self.write_tx().await?;
        let groups: Vec<(String, i64, i64, (i64, i64))> = sqlx::query(
            "SELECT name, used_bytes, used_objects, version_bytes, version_objects FROM groups
             ORDER BY name",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), (r.get(3), r.get(4))))
        .collect();
        let mut drift = Vec::new();
        for (name, bytes, files, versions) in groups {
            let kept: (i64, i64) = sqlx::query_as(
                "SELECT COALESCE(CAST(SUM(size) AS BIGINT), 0), COUNT(*) FROM versions WHERE payer = $1 AND marker = 0",
            )
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
            let buckets: Vec<String> = sqlx::query(
                "SELECT path FROM entries WHERE parent = '/' AND is_dir = 1 AND grp = $1",
            )
            .bind(&name)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
            let mut actual = (0, 0);
            for b in buckets {
                let (sb, sf) = tree_usage_tx(&mut tx, &b).await?;
                actual = (actual.0 + sb, actual.1 + sf);
            }
            if actual != (bytes, files) || kept != versions {
                if repair {
                    sqlx::query(
                        "UPDATE groups SET used_bytes = $1, used_objects = $2, version_bytes = $4,
                           version_objects = $5 WHERE name = $3",
                    )
                    .bind(actual.0)
                    .bind(actual.1)
                    .bind(&name)
                    .bind(kept.0)
                    .bind(kept.1)
                    .execute(&mut *tx)
                    .await?;
                }
                drift.push(Drift {
                    group: name,
                    recorded: (bytes, files),
                    actual,
                    recorded_versions: versions,
                    actual_versions: kept,
                });
            }
        }
        tx.commit().await?;
        Ok(drift)
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_of;

    #[test]
    fn buckets_of_paths() {
        assert_eq!(bucket_of("/a/b/c"), Some("/a"));
        assert_eq!(bucket_of("/a"), Some("/a"));
        assert_eq!(bucket_of("/"), None);
    }
}
