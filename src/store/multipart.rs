//! Multipart upload rows: the upload (target path, owner, headers) and its received parts.

use sqlx::Row;

use super::{now_ms, MetaError, Store};

/// An upload in progress.
#[derive(Clone, Debug)]
pub struct UploadRow {
    /// Upload id given to the client.
    pub id: String,
    /// Canonical path the object will have.
    pub path: String,
    /// User who started it.
    pub owner: String,
    /// Headers to store with the object, as JSON.
    pub headers: Option<String>,
    /// Start time, ms since the epoch.
    pub created_ms: i64,
    /// The salted fingerprint of the SSE-C key its parts must come with; `None`: no such key.
    pub customer_key: Option<String>,
    /// The id of the user who started it, then (`None`: no user row had that name).
    pub owner_uid: Option<String>,
    /// The id of the user named `owner` now (`None`: none): another than `owner_uid` when
    /// the user was removed and the name given again.
    pub owner_uid_now: Option<String>,
}

/// The columns `to_upload` reads.
const UPLOAD_COLS: &str = "id, path, owner, headers, created_ms, customer_key, owner_uid,
    (SELECT uid FROM users WHERE users.name = multipart_uploads.owner)";

/// The open uploads (S3 multipart and tus) of the user named `$3` now, as `insert_upload`
/// and `insert_resumable` count them against their cap (`$7`).
pub(super) const UNDER_CAP: &str = "(SELECT COUNT(*) FROM multipart_uploads
    WHERE owner = $3 AND owner_uid IS NOT DISTINCT FROM (SELECT uid FROM users WHERE name = $3)) < $7";

/// A received part.
#[derive(Clone, Debug, PartialEq)]
pub struct PartRow {
    /// 1..=10000.
    pub number: i64,
    /// Bytes.
    pub size: i64,
    /// Hex MD5 of the part.
    pub etag: String,
    /// Upload time, ms since the epoch.
    pub mtime_ms: i64,
    /// Flexible checksums computed as it arrived (`x-amz-checksum-*` -> base64), as JSON.
    pub checksums: Option<String>,
    /// The wrapped data key of a part stored sealed (encrypted bucket); `None`: plain.
    pub sealed: Option<String>,
}

fn to_upload(r: super::DbRow) -> UploadRow {
    UploadRow {
        id: r.get(0),
        path: r.get(1),
        owner: r.get(2),
        headers: r.get(3),
        created_ms: r.get(4),
        customer_key: r.get(5),
        owner_uid: r.get(6),
        owner_uid_now: r.get(7),
    }
}

impl Store {
    /// Records a new multipart upload.
    /// `owner` has fewer than `max` open uploads (S3 multipart and tus together), else
    /// nothing is recorded and the answer is false.
    pub async fn insert_upload(
        &self,
        id: &str,
        path: &str,
        (owner, max): (&str, usize),
        (headers, customer_key): (Option<&str>, Option<&str>),
    ) -> Result<bool, MetaError> {
        let sql = format!(
            "INSERT INTO multipart_uploads (id, path, owner, headers, created_ms, customer_key, owner_uid)
             SELECT $1, $2, $3, $4, $5, $6, (SELECT uid FROM users WHERE name = $3) WHERE {UNDER_CAP}"
        );
        // the count and the insert under the write lock: two uploads started at once cannot
        // both pass the cap (PostgreSQL runs statements side by side)
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(path)
            .bind(owner)
            .bind(headers)
            .bind(now_ms())
            .bind(customer_key)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// One upload by id.
    pub async fn upload_row(&self, id: &str) -> Result<Option<UploadRow>, MetaError> {
        let sql = format!("SELECT {UPLOAD_COLS} FROM multipart_uploads WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(to_upload))
    }

    /// At most `limit` S3 uploads (not resumable ones) whose target lies in `[from, to)`, by
    /// path, start time and id, after the upload `after` = (path, start time, id) in that order: a page.
    pub async fn uploads_in_range(
        &self,
        from: &str,
        to: &str,
        after: (&str, i64, &str),
        limit: i64,
    ) -> Result<Vec<UploadRow>, MetaError> {
        let (after_path, after_ms, after_id) = after;
        let sql = format!(
            "SELECT {UPLOAD_COLS} FROM multipart_uploads
             WHERE path >= $1 AND path < $2
               AND id NOT IN (SELECT id FROM resumable_uploads)
               AND (path > $3 OR (path = $3 AND (created_ms > $4 OR (created_ms = $4 AND id > $5))))
             ORDER BY path, created_ms, id LIMIT $6",
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(after_path)
            .bind(after_ms)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(to_upload).collect())
    }

    /// Uploads started before `before_ms` (for the stale sweep); resumable ones expire by
    /// their last use instead.
    pub async fn uploads_older_than(&self, before_ms: i64) -> Result<Vec<UploadRow>, MetaError> {
        let sql = format!("SELECT {UPLOAD_COLS} FROM multipart_uploads WHERE created_ms < $1 AND id NOT IN (SELECT id FROM resumable_uploads)");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before_ms)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(to_upload).collect())
    }

    /// Records (or replaces) a part.
    pub async fn put_part(&self, upload: &str, p: &PartRow) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO multipart_parts (upload_id, part_number, size, etag, mtime_ms, checksums, sealed)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (upload_id, part_number) DO UPDATE SET size = excluded.size, etag = excluded.etag,
               mtime_ms = excluded.mtime_ms, checksums = excluded.checksums, sealed = excluded.sealed",
        )
        .bind(upload)
        .bind(p.number)
        .bind(p.size)
        .bind(&p.etag)
        .bind(p.mtime_ms)
        .bind(&p.checksums)
        .bind(&p.sealed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Bytes staged in the parts of unfinished uploads into buckets paid by `group`: they count
    /// against its quota before they become an object.
    pub async fn staged_bytes(&self, group: &str) -> Result<i64, MetaError> {
        let row = sqlx::query(
            "SELECT COALESCE(CAST(SUM(p.size) AS BIGINT), 0) FROM multipart_parts p
             JOIN multipart_uploads u ON u.id = p.upload_id
             JOIN entries e ON e.is_dir = 1
               AND e.parent = '/' AND substr(u.path, 1, length(e.path) + 1) = e.path || '/'
             WHERE e.grp = $1",
        )
        .bind(group)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    /// Parts of an upload, by number.
    pub async fn parts(&self, upload: &str) -> Result<Vec<PartRow>, MetaError> {
        let rows = sqlx::query(
            "SELECT part_number, size, etag, mtime_ms, checksums, sealed FROM multipart_parts WHERE upload_id = $1 ORDER BY part_number",
        )
        .bind(upload)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PartRow {
                number: r.get(0),
                size: r.get(1),
                etag: r.get(2),
                mtime_ms: r.get(3),
                checksums: r.get(4),
                sealed: r.get(5),
            })
            .collect())
    }

    /// Forgets an upload and its parts; false when it was already gone.
    pub async fn delete_upload(&self, id: &str) -> Result<bool, MetaError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM multipart_parts WHERE upload_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM multipart_uploads WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
}
