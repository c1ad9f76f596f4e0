//! The wrapped data keys of sealed bytes (current files, kept versions and the parts of
//! unfinished uploads), found by the master key that wraps them and rewrapped in place for a
//! master key rotation (docs/encryption.md).

use super::{MetaError, Store};

/// The row a wrapped data key is recorded in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WrappedRow {
    /// A current file's row, by path.
    Entry(String),
    /// A kept version's row, by id.
    Version(String),
    /// A staged part of an unfinished multipart or resumable upload: upload id, part number.
    Part(String, i64),
}

/// One wrapped data key: where it is recorded and its text.
#[derive(Clone, Debug)]
pub struct Wrapped {
    /// The row holding it.
    pub row: WrappedRow,
    /// The wrapped key.
    pub sealed: String,
}

impl Store {
    /// Up to `limit` data keys wrapped by master key `kid`.
    pub async fn wrapped_by(&self, kid: &str, limit: i64) -> Result<Vec<Wrapped>, MetaError> {
        let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT 0, path, 0, sealed FROM entries WHERE sealed IS NOT NULL AND substr(sealed, 4, 16) = $1
             UNION ALL
             SELECT 1, id, 0, sealed FROM versions WHERE sealed IS NOT NULL AND substr(sealed, 4, 16) = $1
             UNION ALL
             SELECT 2, upload_id, part_number, sealed FROM multipart_parts
               WHERE sealed IS NOT NULL AND substr(sealed, 4, 16) = $1
             LIMIT $2",
        )
        .bind(kid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, row, part, sealed)| Wrapped {
                row: match kind {
                    0 => WrappedRow::Entry(row),
                    1 => WrappedRow::Version(row),
                    _ => WrappedRow::Part(row, part),
                },
                sealed,
            })
            .collect())
    }

    /// The id of a master key some recorded data key is wrapped by, if any is.
    pub async fn any_wrapping_key(&self) -> Result<Option<String>, MetaError> {
        Ok(sqlx::query_scalar(
            "SELECT substr(sealed, 4, 16) FROM entries WHERE sealed IS NOT NULL
             UNION ALL SELECT substr(sealed, 4, 16) FROM versions WHERE sealed IS NOT NULL
             UNION ALL SELECT substr(sealed, 4, 16) FROM multipart_parts WHERE sealed IS NOT NULL
             LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Replaces wrapped keys in one transaction, each only if its row still holds the key it
    /// was read with (a file replaced meanwhile keeps its new key). Returns the rows changed.
    pub async fn rewrap(&self, changes: &[(Wrapped, String)]) -> Result<u64, MetaError> {
        let mut tx = self.writer.begin().await?;
        let mut n = 0;
        for (w, new) in changes {
            let q = match &w.row {
                WrappedRow::Entry(path) => {
                    sqlx::query("UPDATE entries SET sealed = $1 WHERE path = $2 AND sealed = $3")
                        .bind(new)
                        .bind(path)
                        .bind(&w.sealed)
                }
                WrappedRow::Version(id) => {
                    sqlx::query("UPDATE versions SET sealed = $1 WHERE id = $2 AND sealed = $3")
                        .bind(new)
                        .bind(id)
                        .bind(&w.sealed)
                }
                WrappedRow::Part(upload, number) => sqlx::query(
                    "UPDATE multipart_parts SET sealed = $1
                     WHERE upload_id = $2 AND sealed = $3 AND part_number = $4",
                )
                .bind(new)
                .bind(upload)
                .bind(&w.sealed)
                .bind(number),
            };
            n += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}
