//! Resumable upload rows: the announced length and last use of a tus upload, whose bytes are
//! the parts of the multipart upload of the same id.

use sqlx::Row;

use super::{now_ms, MetaError, PartRow, Store};

/// A resumable upload: its multipart row's id plus what tus adds.
#[derive(Clone, Debug)]
pub struct ResumableRow {
    /// The multipart upload's id.
    pub id: String,
    /// Bytes the file will have (Upload-Length).
    pub length: i64,
    /// Bytes received so far (the sum of its parts).
    pub offset: i64,
    /// Parts so far.
    pub parts: i64,
    /// Last creation or append, ms since the epoch.
    pub touched_ms: i64,
}

impl Store {
    /// Records a multipart upload and its resumable row in one transaction, if `owner` has
    /// fewer than `max` open uploads (else false, nothing recorded).
    pub async fn insert_resumable(
        &self,
        id: &str,
        path: &str,
        (owner, max): (&str, usize),
        headers: Option<&str>,
        length: i64,
    ) -> Result<bool, MetaError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "INSERT INTO multipart_uploads (id, path, owner, headers, created_ms, customer_key, owner_uid)
             SELECT $1, $2, $3, $4, $5, $6, (SELECT uid FROM users WHERE name = $3) WHERE {}",
            super::multipart::UNDER_CAP
        );
        let n = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(path)
            .bind(owner)
            .bind(headers)
            .bind(now)
            .bind(None::<String>)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO resumable_uploads (id, length, touched_ms) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(length)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One resumable upload with its offset, if it exists.
    pub async fn resumable_row(&self, id: &str) -> Result<Option<ResumableRow>, MetaError> {
        let row = sqlx::query(
            "SELECT r.id, r.length, r.touched_ms,
                    (SELECT COALESCE(CAST(SUM(size) AS BIGINT), 0) FROM multipart_parts WHERE upload_id = r.id),
                    (SELECT COUNT(*) FROM multipart_parts WHERE upload_id = r.id)
             FROM resumable_uploads r WHERE r.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| ResumableRow {
            id: r.get(0),
            length: r.get(1),
            touched_ms: r.get(2),
            offset: r.get(3),
            parts: r.get(4),
        }))
    }

    /// Records the next part of a resumable upload, only if it still starts at `offset` (a
    /// concurrent append that won meanwhile makes this one a `Conflict`).
    pub async fn append_resumable(
        &self,
        id: &str,
        offset: i64,
        p: &PartRow,
    ) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        let have: i64 =
            sqlx::query("SELECT COALESCE(CAST(SUM(size) AS BIGINT), 0) FROM multipart_parts WHERE upload_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
        if have != offset {
            return Err(MetaError::Conflict("the upload moved on meanwhile"));
        }
        sqlx::query(
            "INSERT INTO multipart_parts (upload_id, part_number, size, etag, mtime_ms, checksums, sealed)
             VALUES ($1, $2, $3, $4, $5, NULL, $6)",
        )
        .bind(id)
        .bind(p.number)
        .bind(p.size)
        .bind(&p.etag)
        .bind(p.mtime_ms)
        .bind(&p.sealed)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE resumable_uploads SET touched_ms = $2 WHERE id = $1")
            .bind(id)
            .bind(p.mtime_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets one part (the last, when the commit it completed was refused).
    pub async fn drop_part(&self, id: &str, number: i64) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM multipart_parts WHERE upload_id = $1 AND part_number = $2")
            .bind(id)
            .bind(number)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Resumable uploads not used since `before_ms`.
    pub async fn resumable_older_than(&self, before_ms: i64) -> Result<Vec<String>, MetaError> {
        let rows = sqlx::query("SELECT id FROM resumable_uploads WHERE touched_ms < $1")
            .bind(before_ms)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}
