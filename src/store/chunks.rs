//! The chunk lists of file versions (delta transfer): computed by the core, kept here so a
//! version is cut into chunks once.

use sqlx::Row;

use super::{now_ms, MetaError, Store};

/// A stored chunk list of one version of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRow {
    /// The version it was computed for.
    pub etag: String,
    /// Size of that version in bytes.
    pub size: i64,
    /// BLAKE3 of the whole version (hex).
    pub blake3: String,
    /// Per chunk, its length (u32 LE) and BLAKE3 hash (32 bytes), in order.
    pub list: Vec<u8>,
}

impl Store {
    /// The list kept for `path` at average chunk size `avg` (of whatever version it was made).
    pub async fn chunk_row(&self, path: &str, avg: u32) -> Result<Option<ChunkRow>, MetaError> {
        let row = sqlx::query(
            "SELECT etag, size, blake3, list FROM file_chunks WHERE path = $1 AND avg = $2",
        )
        .bind(path)
        .bind(i64::from(avg))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| ChunkRow {
            etag: r.get("etag"),
            size: r.get("size"),
            blake3: r.get("blake3"),
            list: r.get("list"),
        }))
    }

    /// Keeps the list of a version of `path` (replacing the one of an older version).
    pub async fn put_chunk_row(
        &self,
        path: &str,
        avg: u32,
        row: &ChunkRow,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO file_chunks (path, avg, etag, size, blake3, list, made_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (path, avg) DO UPDATE SET etag = excluded.etag, size = excluded.size,
               blake3 = excluded.blake3, list = excluded.list, made_ms = excluded.made_ms",
        )
        .bind(path)
        .bind(i64::from(avg))
        .bind(&row.etag)
        .bind(row.size)
        .bind(&row.blake3)
        .bind(&row.list)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Drops the lists of versions that are no longer current (replaced, moved, deleted);
    /// returns how many went.
    pub async fn prune_chunk_rows(&self) -> Result<u64, MetaError> {
        let done = sqlx::query(
            "DELETE FROM file_chunks WHERE NOT EXISTS (SELECT 1 FROM entries e
               WHERE e.path = file_chunks.path AND e.etag = file_chunks.etag)",
        )
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
