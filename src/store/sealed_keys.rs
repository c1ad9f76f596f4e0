//! The wrapped data keys of sealed bytes (current files, kept versions and the parts of
//! unfinished uploads), found by the master key that wraps them and rewrapped in place for a
//! master key rotation; the rows a bucket's conversion switches between plain and sealed
//! (docs/encryption.md).

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
               AND substr(sealed, 1, 3) = 'v1:'
             UNION ALL
             SELECT 1, id, 0, sealed FROM versions WHERE sealed IS NOT NULL AND substr(sealed, 4, 16) = $1
               AND substr(sealed, 1, 3) = 'v1:'
             UNION ALL
             SELECT 2, upload_id, part_number, sealed FROM multipart_parts
               WHERE sealed IS NOT NULL AND substr(sealed, 4, 16) = $1 AND substr(sealed, 1, 3) = 'v1:'
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

    /// The id of a master key some recorded data key is wrapped by, if any is (keys wrapped by
    /// a client's key, SSE-C's `c1:` forms, name none). Read at start: `sealed IS NOT NULL`
    /// lets it walk the partial indexes of sealed rows, not every entry (2.3 s at 10,000,000).
    pub async fn any_wrapping_key(&self) -> Result<Option<String>, MetaError> {
        Ok(sqlx::query_scalar(
            "SELECT substr(sealed, 4, 16) FROM entries
               WHERE sealed IS NOT NULL AND substr(sealed, 1, 3) = 'v1:'
             UNION ALL SELECT substr(sealed, 4, 16) FROM versions
               WHERE sealed IS NOT NULL AND substr(sealed, 1, 3) = 'v1:'
             UNION ALL SELECT substr(sealed, 4, 16) FROM multipart_parts
               WHERE substr(sealed, 1, 3) = 'v1:'
             LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// One recorded data key per master key that wraps any (files, kept versions, parts of
    /// unfinished uploads): (key id, wrapped key), made at start. Files and versions are
    /// walked through their index on the key id, one seek per key id (plain rows are not in
    /// it, and the many rows of one key are skipped), so the cost grows with the SSE-C rows
    /// (their `c1:` forms name no master key and are passed over), not with the files.
    pub async fn one_wrapped_per_key(&self) -> Result<Vec<(String, String)>, MetaError> {
        let mut found = std::collections::BTreeMap::new();
        for next in [
            "SELECT substr(sealed, 4, 16), sealed FROM entries
             WHERE sealed IS NOT NULL AND substr(sealed, 4, 16) > $1
               AND substr(sealed, 1, 3) = 'v1:'
             ORDER BY substr(sealed, 4, 16) LIMIT 1",
            "SELECT substr(sealed, 4, 16), sealed FROM versions
             WHERE sealed IS NOT NULL AND substr(sealed, 4, 16) > $1
               AND substr(sealed, 1, 3) = 'v1:'
             ORDER BY substr(sealed, 4, 16) LIMIT 1",
        ] {
            let mut after = String::new();
            while let Some((kid, sealed)) = sqlx::query_as::<_, (String, String)>(next)
                .bind(&after)
                .fetch_optional(&self.pool)
                .await?
            {
                after.clone_from(&kid);
                found.entry(kid).or_insert(sealed);
            }
        }
        let parts: Vec<(String, String)> = sqlx::query_as(
            "SELECT substr(sealed, 4, 16), MIN(sealed) FROM multipart_parts
             WHERE substr(sealed, 1, 3) = 'v1:' GROUP BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        for (kid, sealed) in parts {
            found.entry(kid).or_insert(sealed);
        }
        Ok(found.into_iter().collect())
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

/// A file of a bucket being converted (`kura encryption enable`/`disable`), as read before its
/// bytes are rewritten: the switch happens only if the row still matches.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ToConvert {
    /// The file's path.
    pub path: String,
    /// Plaintext size.
    pub size: i64,
    /// ETag when read.
    pub etag: String,
    /// Modification time when read.
    pub mtime_ms: i64,
    /// The wrapped data key when read (`None`: plain).
    pub sealed: Option<String>,
}

impl Store {
    /// Up to `limit` files of `bucket` after `after` (path order) stored plain (`plain`) or
    /// sealed (`!plain`) under the master key: SSE-C files (`c1:`) open only with their
    /// client's key and are never converted.
    pub async fn files_to_convert(
        &self,
        bucket: &str,
        plain: bool,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ToConvert>, MetaError> {
        let (lo, hi) = super::below(bucket);
        let after = if after < lo.as_str() {
            lo.as_str()
        } else {
            after
        };
        Ok(sqlx::query_as(
            "SELECT path, size, etag, mtime_ms, sealed FROM entries
             WHERE path > $1 AND path < $2 AND is_dir = 0 AND (sealed IS NULL) = $3
               AND substr(coalesce(sealed, ''), 1, 3) <> 'c1:'
             ORDER BY path LIMIT $4",
        )
        .bind(after)
        .bind(&hi)
        .bind(plain)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many files of `bucket` are stored plain (`plain`) or sealed.
    pub async fn count_to_convert(&self, bucket: &str, plain: bool) -> Result<u64, MetaError> {
        let (lo, hi) = super::below(bucket);
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM entries
             WHERE path >= $1 AND path < $2 AND is_dir = 0 AND (sealed IS NULL) = $3
               AND substr(coalesce(sealed, ''), 1, 3) <> 'c1:'",
        )
        .bind(&lo)
        .bind(&hi)
        .bind(plain)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// The files of `bucket` (path, form, size) whose recorded form ends with `suffix` (a
    /// conversion in flight).
    pub async fn sealed_ending(
        &self,
        bucket: &str,
        suffix: &str,
    ) -> Result<Vec<(String, String, i64)>, MetaError> {
        let (lo, hi) = super::below(bucket);
        Ok(sqlx::query_as(
            "SELECT path, sealed, size FROM entries
             WHERE path >= $1 AND path < $2 AND is_dir = 0 AND substr(sealed, length(sealed) - length($3) + 1) = $3",
        )
        .bind(&lo)
        .bind(&hi)
        .bind(suffix)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records `marked` as the file's form if the row is still as `f` was read (same ETag,
    /// size, time and form); `false` when a write changed it meanwhile.
    pub async fn mark_converting(&self, f: &ToConvert, marked: &str) -> Result<bool, MetaError> {
        let n = sqlx::query(
            "UPDATE entries SET sealed = $1
             WHERE path = $2 AND is_dir = 0 AND size = $3 AND etag = $4 AND mtime_ms = $5
               AND sealed IS NOT DISTINCT FROM $6",
        )
        .bind(marked)
        .bind(&f.path)
        .bind(f.size)
        .bind(&f.etag)
        .bind(f.mtime_ms)
        .bind(&f.sealed)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// In one write transaction: if the row (a current file's or a kept version's) still
    /// records `marked`, runs `switch` (the rename of the new bytes into place) and records
    /// `form`. `Ok(false)`: a write replaced the file, or the version left, meanwhile (nothing
    /// done). A kill between the switch and the commit leaves `marked` recorded, which reads
    /// either form.
    pub async fn finish_converting<E>(
        &self,
        row: &WrappedRow,
        marked: &str,
        form: Option<&str>,
        switch: impl FnOnce() -> Result<(), E>,
    ) -> Result<bool, super::Committed<E>> {
        use super::Committed;
        let q = match row {
            WrappedRow::Entry(path) => {
                sqlx::query("UPDATE entries SET sealed = $1 WHERE path = $2 AND sealed = $3")
                    .bind(form)
                    .bind(path)
            }
            WrappedRow::Version(id) => {
                sqlx::query("UPDATE versions SET sealed = $1 WHERE id = $2 AND sealed = $3")
                    .bind(form)
                    .bind(id)
            }
            // the staging area's parts are not converted (docs/encryption.md)
            WrappedRow::Part(..) => return Ok(false),
        };
        let mut tx = self
            .write_tx()
            .await
            .map_err(|e| Committed::Meta(e.into()))?;
        let n = q
            .bind(marked)
            .execute(&mut *tx)
            .await
            .map_err(|e| Committed::Meta(e.into()))?
            .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        switch().map_err(Committed::Finish)?;
        tx.commit().await.map_err(|e| Committed::Meta(e.into()))?;
        Ok(true)
    }
}

/// Kept bytes of a bucket being converted (a noncurrent version or a trashed file), as read
/// before they are rewritten: a version's row never changes, it only leaves.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeptToConvert {
    /// The version's id.
    pub id: String,
    /// Where its bytes are in the versions store.
    pub key: String,
    /// Plaintext size.
    pub size: i64,
    /// The wrapped data key when read (`None`: plain).
    pub sealed: Option<String>,
}

impl Store {
    /// Up to `limit` kept versions and trashed files of `bucket` after the id `after`,
    /// holding bytes stored plain (`plain`) or sealed under the master key (never SSE-C).
    pub async fn kept_to_convert(
        &self,
        bucket: &str,
        plain: bool,
        after: &str,
        limit: i64,
    ) -> Result<Vec<KeptToConvert>, MetaError> {
        Ok(sqlx::query_as(
            "SELECT id, key, size, sealed FROM versions
             WHERE bucket = $1 AND id > $2 AND marker = 0 AND key IS NOT NULL
               AND (sealed IS NULL) = $3 AND substr(coalesce(sealed, ''), 1, 3) <> 'c1:'
             ORDER BY id LIMIT $4",
        )
        .bind(bucket)
        .bind(after)
        .bind(plain)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many kept versions and trashed files of `bucket` hold bytes stored plain (`plain`)
    /// or sealed under the master key.
    pub async fn count_kept_to_convert(&self, bucket: &str, plain: bool) -> Result<u64, MetaError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM versions
             WHERE bucket = $1 AND marker = 0 AND key IS NOT NULL
               AND (sealed IS NULL) = $2 AND substr(coalesce(sealed, ''), 1, 3) <> 'c1:'",
        )
        .bind(bucket)
        .bind(plain)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// The kept versions of `bucket` whose recorded form ends with `suffix` (a conversion in
    /// flight, or a file archived while one switched it).
    pub async fn kept_sealed_ending(
        &self,
        bucket: &str,
        suffix: &str,
    ) -> Result<Vec<KeptToConvert>, MetaError> {
        Ok(sqlx::query_as(
            "SELECT id, key, size, sealed FROM versions
             WHERE bucket = $1 AND marker = 0 AND key IS NOT NULL
               AND substr(sealed, length(sealed) - length($2) + 1) = $2",
        )
        .bind(bucket)
        .bind(suffix)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records `marked` as a kept version's form if it still records the form `v` was read
    /// with; `false` when it left meanwhile (restored, purged).
    pub async fn mark_kept_converting(
        &self,
        v: &KeptToConvert,
        marked: &str,
    ) -> Result<bool, MetaError> {
        let n = sqlx::query(
            "UPDATE versions SET sealed = $1 WHERE id = $2 AND key = $3 AND sealed IS NOT DISTINCT FROM $4",
        )
        .bind(marked)
        .bind(&v.id)
        .bind(&v.key)
        .bind(&v.sealed)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The parts of unfinished uploads (multipart and resumable) to `bucket` waiting plain
    /// (`plain`) or sealed under the master key: a conversion leaves them as they are.
    pub async fn parts_in_form(&self, bucket: &str, plain: bool) -> Result<u64, MetaError> {
        let (lo, hi) = super::below(bucket);
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM multipart_parts p JOIN multipart_uploads u ON u.id = p.upload_id
             WHERE u.path >= $1 AND u.path < $2 AND (p.sealed IS NULL) = $3
               AND substr(coalesce(p.sealed, ''), 1, 3) <> 'c1:'",
        )
        .bind(&lo)
        .bind(&hi)
        .bind(plain)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }
}
