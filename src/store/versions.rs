//! Noncurrent versions, delete markers and the per-bucket policy that keeps them: the rows
//! pointing at bytes kept outside the visible tree (docs/versions.md). Rows are written in the
//! same transaction as the tree change that made them noncurrent.

use std::collections::BTreeMap;

use super::DbRow;
use super::DbTx;
use sqlx::Row;

use super::retention::locked_sql;
use super::usage::{bucket_of, payer_tx, tree_usage_tx};
use super::versioning::{state_tx, S3Versioning};
use super::{below, MetaError, Store};

use super::dialect::with_new_id;

const DAY_SECS: i64 = 24 * 3600;

/// The bucket setting (`bucket_settings.name`) holding a bucket's `Policy`.
const POLICY_SETTING: &str = "versions";

/// A bucket's rules for what it keeps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Seconds a deleted file stays in the trash; 0: deletes destroy at once.
    pub trash_secs: i64,
    /// Noncurrent versions kept per file (`None`: no count limit; 0: overwrites destroy).
    pub keep_versions: Option<i64>,
    /// Seconds a noncurrent version is kept (`None`: no age limit; 0: overwrites destroy).
    pub keep_secs: Option<i64>,
    /// A write that would exceed the quota first purges the oldest versions and trash.
    pub purge_first: bool,
}

impl Default for Policy {
    /// Trash 30 days, noncurrent versions 30 days, no count limit, no purge on a full quota.
    fn default() -> Self {
        Policy {
            trash_secs: 30 * DAY_SECS,
            keep_versions: None,
            keep_secs: Some(30 * DAY_SECS),
            purge_first: false,
        }
    }
}

impl Policy {
    /// Whether an overwrite keeps the replaced bytes.
    pub fn keeps_versions(&self) -> bool {
        self.keep_versions != Some(0) && self.keep_secs != Some(0)
    }

    /// Whether a delete keeps what it deletes.
    pub fn keeps_trash(&self) -> bool {
        self.trash_secs > 0
    }
}

/// One noncurrent version or delete marker.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionRow {
    /// Version id (S3's versionId).
    pub id: String,
    /// The path it was current at.
    pub path: String,
    /// Its bucket (`/b`).
    pub bucket: String,
    /// A delete marker (no bytes).
    pub marker: bool,
    /// The marker of a deleted folder.
    pub is_dir: bool,
    /// The file had no version id (S3's null version).
    pub null_version: bool,
    /// Bytes.
    pub size: i64,
    /// ETag the bytes had.
    pub etag: String,
    /// MIME type.
    pub content_type: Option<String>,
    /// Owner when it was current.
    pub owner: Option<String>,
    /// Stored headers (JSON).
    pub headers: Option<String>,
    /// Group when it was current.
    pub grp: Option<String>,
    /// Mode bits when it was current.
    pub mode: i64,
    /// When the bytes were written, ms since the epoch.
    pub mtime_ms: i64,
    /// When they stopped being current.
    pub archived_ms: i64,
    /// The delete it came from (`None`: an overwrite).
    pub batch: Option<String>,
    /// Where the bytes are in the versions store.
    pub key: Option<String>,
    /// The wrapped data key of sealed bytes (`None`: plain).
    pub sealed: Option<String>,
    /// The folders above it when it was made (`parse_above` reads them; for a row of a folder
    /// delete, those above the deleted path); `None`: kept before they were recorded.
    pub above: Option<String>,
}

/// The owner, group and mode of a folder as a kept row recorded it.
pub type FolderBits = (Option<String>, Option<String>, i64);

/// The folders a kept row's `above` records, from its bucket down (`None` in the list: a
/// folder that had no row); `None` when the text is not such a list.
pub fn parse_above(text: &str) -> Option<Vec<Option<FolderBits>>> {
    serde_json::from_str(text).ok()
}

macro_rules! version_cols {
    () => {
        "id, path, bucket, marker, is_dir, null_version, size, etag, content_type, owner, headers, grp, mode, mtime_ms, archived_ms, batch, key, sealed, above"
    };
}

fn version_row(r: DbRow) -> VersionRow {
    VersionRow {
        id: r.get(0),
        path: r.get(1),
        bucket: r.get(2),
        marker: r.get::<i64, _>(3) != 0,
        is_dir: r.get::<i64, _>(4) != 0,
        null_version: r.get::<i64, _>(5) != 0,
        size: r.get(6),
        etag: r.get(7),
        content_type: r.get(8),
        owner: r.get(9),
        headers: r.get(10),
        grp: r.get(11),
        mode: r.get(12),
        mtime_ms: r.get(13),
        archived_ms: r.get(14),
        batch: r.get(15),
        key: r.get(16),
        sealed: r.get(17),
        above: r.get(18),
    }
}

/// One delete in the trash: the path deleted, when, and what of it is still there.
#[derive(Clone, Debug, PartialEq)]
pub struct TrashRow {
    /// The delete's id (`kura restore --version` takes it for a whole folder).
    pub batch: String,
    /// The path deleted.
    pub path: String,
    /// A folder (restored whole).
    pub is_dir: bool,
    /// When, ms since the epoch.
    pub deleted_ms: i64,
    /// Files still restorable.
    pub files: i64,
    /// Their bytes.
    pub bytes: i64,
}

/// What a transaction does with bytes it replaces or deletes.
#[derive(Clone, Debug, Default)]
pub struct Archive {
    /// Key in the versions store the replaced (or deleted) bytes move to; `None`: destroyed.
    pub key: Option<String>,
    /// A restore from the trash: (path, delete id) whose markers go and whose bytes become a
    /// plain noncurrent version.
    pub untrash: Option<(String, String)>,
    /// S3 DeleteObject by version id: a kept row (a delete marker) dropped for good in the
    /// same commit.
    pub drop: Option<String>,
    /// S3 DeleteObject by version id: the kept row whose bytes this commit puts back becomes
    /// the current version again, with its own version id.
    pub promote: Option<String>,
}

/// Bytes purged from the database, for the caller to remove from storage after the COMMIT.
#[derive(Debug, Default)]
pub struct Purged {
    /// Keys in the versions store.
    pub keys: Vec<String>,
    /// Rows removed (versions and markers).
    pub rows: u64,
    /// Bytes freed.
    pub bytes: i64,
}

/// Adds to a group's noncurrent usage; never refused (the bytes were counted already, as
/// current ones, when they were written).
pub(super) async fn charge_versions_tx(
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
    sqlx::query(
        "UPDATE groups SET version_bytes = version_bytes + $1, version_objects = version_objects + $2
         WHERE name = $3",
    )
    .bind(bytes)
    .bind(files)
    .bind(group)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The folders above `path` as they are now, from its bucket down to the folder holding it,
/// as a kept row records them (`above`): JSON `[[owner, grp, mode], ...]`, `null` for a
/// folder without a row.
async fn folders_above_tx(tx: &mut DbTx, path: &str) -> Result<String, MetaError> {
    let mut dirs = Vec::new();
    let mut p = path;
    while let Some((parent, _)) = p.rsplit_once('/') {
        if parent.is_empty() {
            break;
        }
        dirs.push(parent);
        p = parent;
    }
    dirs.reverse();
    let list =
        serde_json::to_string(&dirs).map_err(|e| MetaError::Db(sqlx::Error::Decode(e.into())))?;
    let each = super::dialect::json_each_text(super::dialect::is_pg(tx), "$1");
    let rows: Vec<(String, Option<String>, Option<String>, i64)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT path, owner, grp, mode FROM entries
             WHERE is_dir = 1 AND path IN (SELECT value FROM {each})"
        )))
        .bind(&list)
        .fetch_all(&mut **tx)
        .await?;
    let mut found: BTreeMap<String, FolderBits> = rows
        .into_iter()
        .map(|(p, owner, grp, mode)| (p, (owner, grp, mode)))
        .collect();
    let chain: Vec<Option<FolderBits>> = dirs.iter().map(|d| found.remove(*d)).collect();
    serde_json::to_string(&chain).map_err(|e| MetaError::Db(sqlx::Error::Decode(e.into())))
}

/// Keeps the file at `path` (if one is recorded) as a noncurrent version whose bytes are at
/// `key` (or at the file's blob, which the version takes over), before its row is replaced
/// or removed; its bucket's group pays for it.
pub(super) async fn archive_file_tx(
    tx: &mut DbTx,
    path: &str,
    key: &str,
    now: i64,
) -> Result<(), MetaError> {
    let Some(bucket) = bucket_of(path) else {
        return Ok(());
    };
    let payer = payer_tx(tx, path).await?;
    // S3 sees it once the bucket is versioned (a null one only until a newer null replaces it)
    let s3 = i64::from(state_tx(tx, path).await?.is_some());
    let above = folders_above_tx(tx, path).await?;
    let size: Option<i64> = sqlx::query_scalar(with_new_id(
        tx,
        "INSERT INTO versions (id, path, bucket, null_version, size, etag, content_type, owner,
           headers, grp, mode, mtime_ms, archived_ms, key, payer, s3, sealed, above)
         SELECT CASE WHEN version_id IS NULL OR EXISTS (SELECT 1 FROM versions v WHERE v.id = version_id)
                THEN {new_id} ELSE version_id END, path, $4,
           CASE WHEN version_id IS NULL THEN 1 ELSE 0 END, size, etag, content_type, owner,
           headers, grp, mode, mtime_ms, $3, COALESCE(blob, $2), $5, $6, sealed, $7
         FROM entries WHERE path = $1 AND is_dir = 0 RETURNING size",
        "$3",
    ))
    .bind(path)
    .bind(key)
    .bind(now)
    .bind(bucket)
    .bind(&payer)
    .bind(s3)
    .bind(&above)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(size) = size {
        charge_versions_tx(tx, payer.as_deref(), size, 1).await?;
    }
    Ok(())
}

/// Moves the entry at `path` and everything below it into the trash as one delete `batch`:
/// its files become noncurrent versions at `batch[/relative path]` (or at their blobs), and
/// every entry gets a delete marker (the deleted path's own marker has the id `batch`).
pub(super) async fn trash_tree_tx(
    tx: &mut DbTx,
    path: &str,
    batch: &str,
    now: i64,
) -> Result<(), MetaError> {
    let Some(bucket) = bucket_of(path) else {
        return Ok(());
    };
    let payer = payer_tx(tx, path).await?;
    let (bytes, files) = tree_usage_tx(tx, path).await?;
    let (lo, hi) = below(path);
    let cut = i32::try_from(path.chars().count() + 1).unwrap_or(i32::MAX);
    // S3's view: in a versioned bucket the files' rows and markers are S3 versions; a
    // suspended bucket's marker is the new null version (replacing a null file deleted here)
    let state = state_tx(tx, path).await?;
    let suspended = i64::from(state == Some(S3Versioning::Suspended));
    if suspended == 1 {
        sqlx::query(
            "UPDATE versions SET s3 = 0 WHERE null_version = 1 AND s3 = 1
               AND (path = $1 OR (path >= $2 AND path < $3))",
        )
        .bind(path)
        .bind(&lo)
        .bind(&hi)
        .execute(&mut **tx)
        .await?;
    }
    let s3 = i64::from(state.is_some());
    // every row of the delete records the folders above the deleted path; those inside it
    // are its own folder markers
    let above = folders_above_tx(tx, path).await?;
    sqlx::query(with_new_id(
        tx,
        "INSERT INTO versions (id, path, bucket, null_version, size, etag, content_type, owner,
           headers, grp, mode, mtime_ms, archived_ms, key, payer, batch, s3, sealed, above)
         SELECT CASE WHEN version_id IS NULL OR EXISTS (SELECT 1 FROM versions v WHERE v.id = version_id)
                THEN {new_id} ELSE version_id END, path, $4,
           CASE WHEN version_id IS NULL THEN 1 ELSE 0 END, size, etag, content_type, owner,
           headers, grp, mode, mtime_ms, $3, COALESCE(blob, $5 || substr(path, $6)), $7, $5,
           CASE WHEN $9 = 1 AND NOT ($10 = 1 AND version_id IS NULL) THEN 1 ELSE 0 END, sealed, $11
         FROM entries WHERE is_dir = 0 AND (path = $1 OR (path >= $8 AND path < $2))",
        "$3",
    ))
    .bind(path)
    .bind(&hi)
    .bind(now)
    .bind(bucket)
    .bind(batch)
    .bind(cut)
    .bind(&payer)
    .bind(&lo)
    .bind(s3)
    .bind(suspended)
    .bind(&above)
    .execute(&mut **tx)
    .await?;
    sqlx::query(with_new_id(
        tx,
        "INSERT INTO versions (id, path, bucket, marker, is_dir, owner, grp, mode, mtime_ms,
           archived_ms, payer, batch, s3, null_version, above)
         SELECT CASE WHEN path = $1 THEN $5 ELSE {new_id} END, path, $4, 1, is_dir, owner, grp,
           mode, $3, $3, $6, $5, CASE WHEN $8 = 1 AND is_dir = 0 THEN 1 ELSE 0 END,
           CASE WHEN $9 = 1 AND is_dir = 0 THEN 1 ELSE 0 END, $10
         FROM entries WHERE path = $1 OR (path >= $7 AND path < $2)",
        "$3",
    ))
    .bind(path)
    .bind(&hi)
    .bind(now)
    .bind(bucket)
    .bind(batch)
    .bind(&payer)
    .bind(&lo)
    .bind(s3)
    .bind(suspended)
    .bind(&above)
    .execute(&mut **tx)
    .await?;
    charge_versions_tx(tx, payer.as_deref(), bytes, files).await
}

/// Fails with `Conflict(NOT_EMPTY)` while bucket `path` holds versions or delete markers S3
/// clients see, or a locked version: an S3 DeleteBucket of a versioned bucket waits until each
/// is deleted by id (AWS's BucketNotEmpty), and a lock bucket keeps its configuration.
pub(super) async fn require_no_history_tx(tx: &mut DbTx, path: &str) -> Result<(), MetaError> {
    let held: Option<i64> = sqlx::query_scalar(concat!(
        "SELECT 1 FROM versions WHERE bucket = $1 AND (s3 = 1 OR ",
        locked_sql!("versions.id", "$2"),
        ") LIMIT 1"
    ))
    .bind(path)
    .bind(super::now_ms())
    .fetch_optional(&mut **tx)
    .await?;
    match held {
        Some(_) => Err(MetaError::Conflict(super::NOT_EMPTY)),
        None => Ok(()),
    }
}

/// A deleted bucket's kept rows become Kura's own (the administrators' trash and versions,
/// purged by the default policy): S3 never shows them to the next bucket of that name, which
/// may belong to someone else.
pub(super) async fn forget_history_tx(tx: &mut DbTx, path: &str) -> Result<(), MetaError> {
    if bucket_of(path) == Some(path) {
        sqlx::query("UPDATE versions SET s3 = 0 WHERE bucket = $1 AND s3 = 1")
            .bind(path)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A restore from the trash: the markers of `path` in delete `batch` go and its bytes become a
/// plain noncurrent version (no longer in the trash).
pub(super) async fn untrash_tx(tx: &mut DbTx, path: &str, batch: &str) -> Result<(), MetaError> {
    for sql in [
        "DELETE FROM versions WHERE batch = $2 AND marker = 1 AND path = $1",
        "UPDATE versions SET batch = NULL WHERE batch = $2 AND path = $1",
    ] {
        sqlx::query(sql)
            .bind(path)
            .bind(batch)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Counts the deleted rows (`key, size, marker, payer` of each) into `out` and credits their
/// payers.
pub(super) async fn purge_rows_tx(
    tx: &mut DbTx,
    rows: Vec<DbRow>,
    out: &mut Purged,
) -> Result<(), MetaError> {
    let mut credit: BTreeMap<Option<String>, (i64, i64)> = BTreeMap::new();
    for r in rows {
        let (key, size, marker, payer): (Option<String>, i64, i64, Option<String>) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        out.rows += 1;
        if marker == 0 {
            let c = credit.entry(payer).or_default();
            c.0 += size;
            c.1 += 1;
            out.bytes += size;
        }
        out.keys.extend(key);
    }
    for (payer, (bytes, files)) in credit {
        charge_versions_tx(tx, payer.as_deref(), -bytes, -files).await?;
    }
    Ok(())
}

/// The rows of one delete, in path order, inside a transaction.
pub(super) async fn batch_rows_tx(
    tx: &mut DbTx,
    batch: &str,
) -> Result<Vec<VersionRow>, MetaError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        version_cols!(),
        " FROM versions WHERE batch = $1 ORDER BY path"
    ))
    .bind(batch)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(version_row).collect())
}

/// Drops the kept row `id` for good (S3 DeleteObject with its versionId), crediting its payer;
/// a delete's own marker takes the delete out of the trash (its other rows stay as plain
/// versions).
pub(super) async fn drop_row_tx(
    tx: &mut DbTx,
    id: &str,
    out: &mut Purged,
) -> Result<(), MetaError> {
    let rows = sqlx::query("DELETE FROM versions WHERE id = $1 RETURNING key, size, marker, payer")
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    if rows.is_empty() {
        return Err(MetaError::Gone);
    }
    purge_rows_tx(tx, rows, out).await?;
    sqlx::query("UPDATE versions SET batch = NULL WHERE batch = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The kept row `id` becomes the current version of `path` again, keeping its version id
/// (its bytes were put in place by the same commit): the row goes, its payer is credited.
pub(super) async fn promote_tx(
    tx: &mut DbTx,
    path: &str,
    id: &str,
    out: &mut Purged,
) -> Result<(), MetaError> {
    let n = sqlx::query(
        "UPDATE entries SET version_id = (SELECT CASE WHEN null_version = 1 THEN NULL ELSE id END
           FROM versions WHERE id = $2 AND path = $1 AND marker = 0)
         WHERE path = $1 AND is_dir = 0 AND EXISTS (SELECT 1 FROM versions WHERE id = $2)",
    )
    .bind(path)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(MetaError::Gone);
    }
    drop_row_tx(tx, id, out).await
}

impl Store {
    /// The S3-visible kept versions and delete markers of `path`, newest first.
    pub async fn s3_versions_of(&self, path: &str) -> Result<Vec<VersionRow>, MetaError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM versions WHERE path = $1 AND s3 = 1 AND is_dir = 0
              ORDER BY archived_ms DESC, id DESC"
        ))
        .bind(path)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(version_row).collect())
    }

    /// Drops the kept row `id` for good, crediting its payer; returns the bytes to remove.
    pub async fn drop_version(&self, id: &str) -> Result<Purged, MetaError> {
        let mut tx = self.write_tx().await?;
        let mut out = Purged::default();
        let path: Option<String> = sqlx::query_scalar("SELECT path FROM versions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        drop_row_tx(&mut tx, id, &mut out).await?;
        super::audit::record_tx(&mut tx, "version_delete", path.as_deref(), Some(id)).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The policy of bucket `bucket` (`/b`), the defaults when none was set: the bucket
    /// setting `versions` (it follows a renamed bucket and goes with a deleted one).
    pub async fn policy(&self, bucket: &str) -> Result<Policy, MetaError> {
        Ok(self
            .bucket_setting(bucket, POLICY_SETTING)
            .await?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
    }

    /// Sets the policy of bucket `bucket` (`/b`); `Gone` when the bucket is not there.
    pub async fn set_policy(&self, bucket: &str, p: &Policy) -> Result<(), MetaError> {
        let v =
            serde_json::to_string(p).map_err(|e| MetaError::Db(sqlx::Error::Decode(e.into())))?;
        self.set_bucket_setting(bucket, POLICY_SETTING, Some(&v))
            .await
    }

    /// The noncurrent versions and delete markers of `path`, newest first.
    pub async fn versions_of(&self, path: &str) -> Result<Vec<VersionRow>, MetaError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM versions WHERE path = $1 ORDER BY archived_ms DESC, id DESC"
        ))
        .bind(path)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(version_row).collect())
    }

    /// One version or marker by id.
    pub async fn version(&self, id: &str) -> Result<Option<VersionRow>, MetaError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM versions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(version_row))
    }

    /// The rows of one delete still in the trash, folders first (path order).
    pub async fn batch(&self, batch: &str) -> Result<Vec<VersionRow>, MetaError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM versions WHERE batch = $1 ORDER BY path, marker DESC"
        ))
        .bind(batch)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(version_row).collect())
    }

    /// The deletes in the trash (of one bucket `/b`, or all), newest first.
    pub async fn trash(&self, bucket: Option<&str>) -> Result<Vec<TrashRow>, MetaError> {
        let rows = sqlx::query(
            "SELECT m.batch, m.path, m.is_dir, m.archived_ms,
                    (SELECT COUNT(*) FROM versions f WHERE f.batch = m.batch AND f.marker = 0),
                    (SELECT COALESCE(CAST(SUM(size) AS BIGINT), 0) FROM versions f WHERE f.batch = m.batch AND f.marker = 0)
             FROM versions m WHERE m.marker = 1 AND m.id = m.batch AND ($1 IS NULL OR m.bucket = $1)
             ORDER BY m.archived_ms DESC, m.id DESC",
        )
        .bind(bucket)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| TrashRow {
                batch: r.get(0),
                path: r.get(1),
                is_dir: r.get::<i64, _>(2) != 0,
                deleted_ms: r.get(3),
                files: r.get(4),
                bytes: r.get(5),
            })
            .collect())
    }

    /// Drops what the buckets' policies no longer keep at `now_ms`: trash past its retention,
    /// noncurrent versions past their age or beyond the count kept per file.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<Purged, MetaError> {
        let mut tx = self.write_tx().await?;
        let buckets: Vec<String> = sqlx::query_scalar("SELECT DISTINCT bucket FROM versions")
            .fetch_all(&mut *tx)
            .await?;
        let mut out = Purged::default();
        for b in buckets {
            let p = self.policy(&b).await?;
            let trash_cut = now_ms - p.trash_secs.saturating_mul(1000);
            // a delete holding a locked version stays whole (its marker says it was deleted)
            let rows = sqlx::query(concat!(
                "DELETE FROM versions WHERE bucket = $1 AND batch IS NOT NULL AND archived_ms <= $2
                 AND NOT EXISTS (SELECT 1 FROM versions v2 WHERE v2.batch = versions.batch AND ",
                locked_sql!("v2.id", "$3"),
                ") RETURNING key, size, marker, payer"
            ))
            .bind(&b)
            .bind(trash_cut)
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            purge_rows_tx(&mut tx, rows, &mut out).await?;
            if let Some(secs) = p.keep_secs {
                let rows = sqlx::query(concat!(
                    "DELETE FROM versions WHERE bucket = $1 AND batch IS NULL AND archived_ms <= $2
                     AND NOT ",
                    locked_sql!("versions.id", "$3"),
                    " RETURNING key, size, marker, payer"
                ))
                .bind(&b)
                .bind(now_ms - secs.saturating_mul(1000))
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?;
                purge_rows_tx(&mut tx, rows, &mut out).await?;
            }
            if let Some(n) = p.keep_versions {
                let rows = sqlx::query(concat!(
                    "DELETE FROM versions WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER()
                       OVER (PARTITION BY path ORDER BY archived_ms DESC, id DESC) AS n
                       FROM versions WHERE bucket = $1 AND batch IS NULL AND marker = 0) AS r WHERE n > $2)
                     AND NOT ",
                    locked_sql!("versions.id", "$3"),
                    " RETURNING key, size, marker, payer"
                ))
                .bind(&b)
                .bind(n)
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?;
                purge_rows_tx(&mut tx, rows, &mut out).await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Empties the trash (of one bucket `/b`, or all) at once, whatever the retention.
    pub async fn empty_trash(&self, bucket: Option<&str>) -> Result<Purged, MetaError> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(concat!(
            "DELETE FROM versions WHERE batch IS NOT NULL AND ($1 IS NULL OR bucket = $1)
             AND NOT EXISTS (SELECT 1 FROM versions v2 WHERE v2.batch = versions.batch AND ",
            locked_sql!("v2.id", "$2"),
            ") RETURNING key, size, marker, payer"
        ))
        .bind(bucket)
        .bind(super::now_ms())
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Purged::default();
        purge_rows_tx(&mut tx, rows, &mut out).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Drops the oldest noncurrent bytes (versions and trash) paid by `group` until at least
    /// `need` bytes are freed; drops nothing when all of them would not free `need` (a write
    /// that cannot fit anyway must not cost the group its history).
    pub async fn purge_oldest(&self, group: &str, need: i64) -> Result<Purged, MetaError> {
        let mut tx = self.write_tx().await?;
        let candidates: Vec<(String, i64)> = sqlx::query_as(concat!(
            "SELECT id, size FROM versions WHERE payer = $1 AND marker = 0 AND NOT ",
            locked_sql!("versions.id", "$2"),
            " ORDER BY archived_ms, id"
        ))
        .bind(group)
        .bind(super::now_ms())
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Purged::default();
        if candidates.iter().map(|(_, size)| *size).sum::<i64>() < need {
            return Ok(out);
        }
        let mut freed = 0;
        for (id, size) in candidates {
            if freed >= need {
                break;
            }
            let rows = sqlx::query(
                "DELETE FROM versions WHERE id = $1 RETURNING key, size, marker, payer",
            )
            .bind(&id)
            .fetch_all(&mut *tx)
            .await?;
            purge_rows_tx(&mut tx, rows, &mut out).await?;
            freed += size;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// A restored delete leaves the trash: its remaining markers go, its bytes stay as plain
    /// noncurrent versions.
    pub async fn untrash_batch(&self, batch: &str) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        for sql in [
            "DELETE FROM versions WHERE batch = $1 AND marker = 1",
            "UPDATE versions SET batch = NULL WHERE batch = $1",
        ] {
            sqlx::query(sql).bind(batch).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Noncurrent bytes (no markers) kept for paths in `[from, to)` of `bucket`, newest first
    /// per path: what lifecycle rules look at.
    pub async fn noncurrent_in_range(
        &self,
        bucket: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<VersionRow>, MetaError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM versions WHERE bucket = $1 AND path >= $2 AND path < $3 AND marker = 0
              ORDER BY path, archived_ms DESC, id DESC"
        ))
        .bind(bucket)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(version_row).collect())
    }

    /// Drops the versions with these ids (a lifecycle rule expired them), crediting payers;
    /// a version under object lock stays.
    pub async fn drop_versions(&self, ids: &[String]) -> Result<Purged, MetaError> {
        let mut tx = self.write_tx().await?;
        let mut out = Purged::default();
        let now = super::now_ms();
        for id in ids {
            let rows = sqlx::query(concat!(
                "DELETE FROM versions WHERE id = $1 AND marker = 0 AND NOT ",
                locked_sql!("versions.id", "$2"),
                " RETURNING key, size, marker, payer"
            ))
            .bind(id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            purge_rows_tx(&mut tx, rows, &mut out).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Drops the delete markers of paths in `[from, to)` of `bucket` that hide nothing: no
    /// current entry and no kept bytes at their path (S3's expired object delete markers).
    pub async fn drop_lone_markers(
        &self,
        bucket: &str,
        from: &str,
        to: &str,
    ) -> Result<Purged, MetaError> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "DELETE FROM versions WHERE bucket = $1 AND path >= $2 AND path < $3 AND marker = 1
               AND NOT EXISTS (SELECT 1 FROM versions w WHERE w.path = versions.path AND w.marker = 0)
               AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.path = versions.path)
             RETURNING key, size, marker, payer",
        )
        .bind(bucket)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Purged::default();
        purge_rows_tx(&mut tx, rows, &mut out).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Every key the versions store should hold, with the plaintext size and the form
    /// (wrapped key, `None`: plain) of its bytes (fsck).
    pub async fn version_keys(&self) -> Result<Vec<(String, i64, Option<String>)>, MetaError> {
        Ok(sqlx::query_as(
            "SELECT key, size, sealed FROM versions WHERE key IS NOT NULL ORDER BY key",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets versions whose bytes are gone (fsck --repair), crediting their payers.
    pub async fn drop_version_keys(&self, keys: &[String]) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        let mut out = Purged::default();
        for k in keys {
            let rows = sqlx::query(
                "DELETE FROM versions WHERE key = $1 RETURNING key, size, marker, payer",
            )
            .bind(k)
            .fetch_all(&mut *tx)
            .await?;
            purge_rows_tx(&mut tx, rows, &mut out).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
