//! The wrapped data keys of sealed files (entries and kept versions), found by the master key
//! that wraps them and rewrapped in place for a master key rotation (docs/encryption.md).

use super::{MetaError, Store};

/// One wrapped data key: where it is recorded and its text.
#[derive(Clone, Debug)]
pub struct Wrapped {
    /// `true`: a kept version's row (by id); `false`: a current file's row (by path).
    pub version: bool,
    /// The row's path or version id.
    pub row: String,
    /// The wrapped key.
    pub sealed: String,
}

impl Store {
    /// Up to `limit` data keys wrapped by master key `kid`.
    pub async fn wrapped_by(&self, kid: &str, limit: i64) -> Result<Vec<Wrapped>, MetaError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT 0, path, sealed FROM entries WHERE sealed IS NOT NULL AND substr(sealed, 4, 16) = $1
             UNION ALL
             SELECT 1, id, sealed FROM versions WHERE sealed IS NOT NULL AND substr(sealed, 4, 16) = $1
             LIMIT $2",
        )
        .bind(kid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(v, row, sealed)| Wrapped {
                version: v != 0,
                row,
                sealed,
            })
            .collect())
    }

    /// Replaces wrapped keys in one transaction, each only if its row still holds the key it
    /// was read with (a file replaced meanwhile keeps its new key). Returns the rows changed.
    pub async fn rewrap(&self, changes: &[(Wrapped, String)]) -> Result<u64, MetaError> {
        let mut tx = self.writer.begin().await?;
        let mut n = 0;
        for (w, new) in changes {
            let q = if w.version {
                "UPDATE versions SET sealed = $1 WHERE id = $2 AND sealed = $3"
            } else {
                "UPDATE entries SET sealed = $1 WHERE path = $2 AND sealed = $3"
            };
            n += sqlx::query(q)
                .bind(new)
                .bind(&w.row)
                .bind(&w.sealed)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}
