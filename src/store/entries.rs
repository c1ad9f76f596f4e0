//! Entry rows: one per file and folder, and the queries that read or edit one row.
//!
//! Descendants of `/a` are selected with the range `'/a/' <= path < '/a0'` ('0' follows '/'),
//! which is index-friendly and portable (PostgreSQL needs the column in the "C" collation).

use super::DbRow;
use super::DbTx;

use super::inline::{Arg, Columns};
use super::replication_journal::journal_path_tx;
use super::usage::{bucket_of, charge_tx, payer_tx, tree_usage_tx};
use super::{below, MetaError, Store};

/// The part of a row fsck compares with what is stored.
#[derive(Clone, Debug)]
pub struct CheckedRow {
    /// `/bucket/key`.
    pub path: String,
    /// A folder.
    pub is_dir: bool,
    /// Plaintext size in bytes.
    pub size: i64,
    /// The sealing of an encrypted file (its stored length follows from it).
    pub sealed: Option<String>,
    /// The blob holding the bytes (object stores), `None`: at the path.
    pub blob: Option<String>,
}

/// Metadata of one file or folder.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryRow {
    /// Canonical path with a leading slash.
    pub path: String,
    /// Canonical path of the containing folder.
    pub parent: String,
    /// Folder or file.
    pub is_dir: bool,
    /// Bytes of content (0 for folders).
    pub size: i64,
    /// Last modification, ms since the epoch.
    pub mtime_ms: i64,
    /// Hex MD5 of the content for files; a version tag for folders.
    pub etag: String,
    /// MIME type given at upload or derived from the name.
    pub content_type: Option<String>,
    /// User who created it.
    pub owner: Option<String>,
    /// Stored object headers (S3 user metadata, Content-Disposition, ...), as JSON.
    pub headers: Option<String>,
    /// Owning group (permissions; a bucket's group pays its quota).
    pub grp: Option<String>,
    /// POSIX permission bits (rwx for owner, group, other).
    pub mode: i64,
    /// Node this version was written on, when it came from a replication peer.
    pub origin: Option<String>,
    /// The data key of sealed bytes, wrapped by a master key (`crate::seal`); `None`: plain.
    pub sealed: Option<String>,
    /// The object key of the bytes on a service other than `fs` (`None`: at the path).
    pub blob: Option<String>,
}

/// The entry columns in `row_to_entry` order, as a literal so queries stay static strings.
macro_rules! entry_cols {
    () => {
        "path, parent, is_dir, size, mtime_ms, etag, content_type, owner, headers, grp, mode, origin, sealed, blob"
    };
}
pub(super) use entry_cols;

/// One page of a folder in S3 key order from its first key (see `Store::children_in_range`).
macro_rules! children_in_range_sql {
    () => {
        concat!(
            "SELECT ",
            entry_cols!(),
            " FROM entries WHERE parent = $1 AND path >= $2 AND path < $3",
            " AND (CASE WHEN is_dir = 1 THEN path || '/' ELSE path END) >= $4",
            " AND (CASE WHEN is_dir = 1 THEN path || '/' ELSE path END) < $3",
            " AND (CASE WHEN is_dir = 1 THEN path || '/' ELSE path END) <> $5",
            " ORDER BY (CASE WHEN is_dir = 1 THEN path || '/' ELSE path END) LIMIT $6"
        )
    };
}

/// A row of `entry_cols!()` as an entry (`None`: a column of another type).
pub(super) fn entry_of(r: &dyn Columns) -> Option<EntryRow> {
    Some(EntryRow {
        path: r.text(0)?,
        parent: r.text(1)?,
        is_dir: r.int(2)? != 0,
        size: r.int(3)?,
        mtime_ms: r.int(4)?,
        etag: r.text(5)?,
        content_type: r.maybe(6)?,
        owner: r.maybe(7)?,
        headers: r.maybe(8)?,
        grp: r.maybe(9)?,
        mode: r.int(10)?,
        origin: r.maybe(11)?,
        sealed: r.maybe(12)?,
        blob: r.maybe(13)?,
    })
}

/// A row of `entry_cols!()` as an entry; panics on a column of another type, as sqlx's
/// `Row::get` did (the schema rules it out).
pub(super) fn row_to_entry(r: DbRow) -> EntryRow {
    entry_of(&r).expect("an entries row of the schema's column types")
}

/// Inserts a folder row in the change's transaction; `implicit` marks a folder made only as
/// the parent of a write (removed again with its last entry).
pub(super) async fn insert_folder_tx(
    tx: &mut DbTx,
    e: &EntryRow,
    implicit: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO entries (",
        entry_cols!(),
        ", implicit) VALUES ($1, $2, 1, 0, $3, $4, NULL, $5, NULL, $6, $7, NULL, NULL, NULL, $8)"
    ))
    .bind(&e.path)
    .bind(&e.parent)
    .bind(e.mtime_ms)
    .bind(&e.etag)
    .bind(&e.owner)
    .bind(&e.grp)
    .bind(e.mode)
    .bind(i64::from(implicit))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Who changed an entry's owner, group or mode: a change made here is journaled for
/// replication (a file's only: folders' attributes do not travel); one a replicated write
/// brought from a peer is not, or it would travel back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrChange {
    /// A user or the admin, on this node.
    Here,
    /// A shipment from a peer (or a restore that journals itself).
    Applied,
}

/// Journals `path` in `tx` when `change` was made here and `path` is a file.
pub(super) async fn journal_attrs_tx(
    tx: &mut DbTx,
    path: &str,
    change: AttrChange,
) -> Result<(), MetaError> {
    if change == AttrChange::Applied {
        return Ok(());
    }
    let is_dir: Option<i64> = sqlx::query_scalar("SELECT is_dir FROM entries WHERE path = $1")
        .bind(path)
        .fetch_optional(&mut **tx)
        .await?;
    if is_dir == Some(0) {
        journal_path_tx(tx, path, None).await?;
    }
    Ok(())
}

impl Store {
    /// The row of one path, if any.
    pub async fn entry(&self, path: &str) -> Result<Option<EntryRow>, MetaError> {
        let sql = concat!("SELECT ", entry_cols!(), " FROM entries WHERE path = $1");
        let rows = self.read(sql, &[Arg::Text(path)], entry_of).await?;
        Ok(rows.into_iter().next())
    }

    /// The rows of several paths in one query (a path and its ancestors).
    pub async fn entries_in(&self, paths: &[&str]) -> Result<Vec<EntryRow>, MetaError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let marks = (1..=paths.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            concat!("SELECT ", entry_cols!(), " FROM entries WHERE path IN ({})"),
            marks
        );
        // only numbered placeholders are spliced in; the paths are bound
        let args: Vec<Arg> = paths.iter().map(|p| Arg::Text(p)).collect();
        self.read(&sql, &args, entry_of).await
    }

    /// Every row, in path order (for a backup's restore).
    pub async fn all_entries(&self) -> Result<Vec<EntryRow>, MetaError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            entry_cols!(),
            " FROM entries ORDER BY path"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(row_to_entry).collect())
    }

    /// What fsck compares of every row, streamed in path order (the unique index on `path`
    /// gives the order; nothing is sorted or held: millions of rows in bounded memory).
    pub fn entries_to_check(
        &self,
    ) -> impl futures_util::Stream<Item = Result<CheckedRow, MetaError>> + Send + '_ {
        use futures_util::TryStreamExt;
        sqlx::query_as::<_, (String, i64, i64, Option<String>, Option<String>)>(
            "SELECT path, is_dir, size, sealed, blob FROM entries ORDER BY path",
        )
        .fetch(&self.pool)
        .map_ok(|(path, is_dir, size, sealed, blob)| CheckedRow {
            path,
            is_dir: is_dir != 0,
            size,
            sealed,
            blob,
        })
        .map_err(MetaError::from)
    }

    /// Records a file row without charging a quota (fsck: the bytes exist already; usage is
    /// recounted afterwards).
    pub async fn record_file_unchecked(&self, e: &EntryRow) -> Result<(), MetaError> {
        sqlx::query(concat!(
            "INSERT INTO entries (",
            entry_cols!(),
            ") VALUES ($1, $2, 0, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12)
             ON CONFLICT (path) DO UPDATE SET size = excluded.size, etag = excluded.etag, mtime_ms = excluded.mtime_ms, sealed = excluded.sealed, blob = excluded.blob"
        ))
        .bind(&e.path)
        .bind(&e.parent)
        .bind(e.size)
        .bind(e.mtime_ms)
        .bind(&e.etag)
        .bind(&e.content_type)
        .bind(&e.owner)
        .bind(&e.headers)
        .bind(&e.grp)
        .bind(e.mode)
        .bind(&e.sealed)
        .bind(&e.blob)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Direct children of a folder, in path order, in one query.
    pub async fn children(&self, parent: &str) -> Result<Vec<EntryRow>, MetaError> {
        let sql = concat!(
            "SELECT ",
            entry_cols!(),
            " FROM entries WHERE parent = $1 ORDER BY path"
        );
        // every child at once: through the pool (see `read_pooled`)
        self.read_pooled(sql, &[Arg::Text(parent)], entry_of).await
    }

    /// At most `limit` children of a folder whose path is after `after`, in path order, each
    /// with whether it has dead properties, in one query (a listing read page by page).
    pub async fn children_page(
        &self,
        parent: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(EntryRow, bool)>, MetaError> {
        let sql = concat!(
            "SELECT ",
            entry_cols!(),
            ", CAST(EXISTS (SELECT 1 FROM dead_props d WHERE d.path = entries.path) AS INTEGER) AS has_props",
            " FROM entries WHERE parent = $1 AND path > $2 ORDER BY path LIMIT $3"
        );
        let args = [Arg::Text(parent), Arg::Text(after), Arg::Int(limit)];
        self.read(sql, &args, |r| Some((entry_of(r)?, r.int(14)? != 0)))
            .await
    }

    /// Replaces the stored type and headers of a file (S3 CopyObject onto itself with REPLACE).
    pub async fn set_headers(
        &self,
        path: &str,
        content_type: Option<&str>,
        headers: Option<&str>,
        mtime_ms: i64,
    ) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE entries SET content_type = $1, headers = $2, mtime_ms = $3, origin = NULL WHERE path = $4 AND is_dir = 0")
            .bind(content_type)
            .bind(headers)
            .bind(mtime_ms)
            .bind(path)
            .execute(&mut *tx)
            .await?;
        journal_path_tx(&mut tx, path, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Rewrites the stored headers of a file or folder with `change` (the current JSON in, the
    /// new one out) inside one transaction, keeping its bytes and times (tags, description);
    /// `Gone` when nothing is at `path`.
    pub async fn update_headers<F>(&self, path: &str, change: F) -> Result<(), MetaError>
    where
        F: FnOnce(Option<&str>) -> Option<String>,
    {
        let mut tx = self.write_tx().await?;
        let old: Option<Option<String>> =
            sqlx::query_scalar("SELECT headers FROM entries WHERE path = $1")
                .bind(path)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(old) = old else {
            return Err(MetaError::Gone);
        };
        let new = change(old.as_deref());
        if new == old {
            return Ok(());
        }
        sqlx::query("UPDATE entries SET headers = $1, origin = NULL WHERE path = $2")
            .bind(&new)
            .bind(path)
            .execute(&mut *tx)
            .await?;
        journal_path_tx(&mut tx, path, None).await?;
        super::audit::record_tx(&mut tx, "annotate", Some(path), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets the mode bits of one entry (a file's change is journaled for replication when
    /// `change` says it was made here).
    pub async fn set_mode(
        &self,
        path: &str,
        mode: i64,
        change: AttrChange,
    ) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("UPDATE entries SET mode = $1 WHERE path = $2")
            .bind(mode)
            .bind(path)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            journal_attrs_tx(&mut tx, path, change).await?;
            super::audit::record_tx(&mut tx, "chmod", Some(path), None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets the owner user and/or group of one entry.
    pub async fn set_ownership(
        &self,
        path: &str,
        owner: Option<&str>,
        grp: Option<&str>,
        change: AttrChange,
    ) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        // a bucket that changes group moves its usage to the new group (within its quota)
        if let (Some(new), Some(b)) = (grp, bucket_of(path).filter(|b| *b == path)) {
            let old = payer_tx(&mut tx, b).await?;
            if old.as_deref() != Some(new) {
                let (bytes, files) = tree_usage_tx(&mut tx, b).await?;
                charge_tx(&mut tx, Some(new), bytes, files).await?;
                charge_tx(&mut tx, old.as_deref(), -bytes, -files).await?;
            }
        }
        sqlx::query("UPDATE entries SET owner = COALESCE($1, owner), grp = COALESCE($2, grp) WHERE path = $3")
            .bind(owner)
            .bind(grp)
            .bind(path)
            .execute(&mut *tx)
            .await?;
        journal_attrs_tx(&mut tx, path, change).await?;
        super::audit::record_tx(&mut tx, "chown", Some(path), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Children of `parent` whose path lies in `[from, to)`, in S3 key order (a folder sorts
    /// as its path plus `/`), after `after` in that order, at most `limit`: one page of a
    /// delimited listing. The index `entries_parent_key` (migration 0027) holds that order, so
    /// the page is read from its first key on, whatever the folder holds: the range starts at
    /// the larger of `from` and `after` and leaves out `after` itself. A key lies in
    /// `[from, to)` whenever its path does (`to` is `from` plus the last char), so the key
    /// bounds only narrow the scan; the path bounds still decide.
    pub async fn children_in_range(
        &self,
        parent: &str,
        from: &str,
        to: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<EntryRow>, MetaError> {
        let start = if after > from { after } else { from };
        let args = [
            Arg::Text(parent),
            Arg::Text(from),
            Arg::Text(to),
            Arg::Text(start),
            Arg::Text(after),
            Arg::Int(limit),
        ];
        self.read(children_in_range_sql!(), &args, entry_of).await
    }

    /// Files whose path lies in `[from, to)` and after `after`, in path order, at most `limit`
    /// (the recursive form of S3 ListObjects). One lower bound only: given two, SQLite seeks
    /// the index to the first and filters the rows up to the other one by one, so a page deep
    /// into a large bucket cost in proportion to its position (6x at 1,000,000 keys).
    pub async fn files_in_range(
        &self,
        from: &str,
        to: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<EntryRow>, MetaError> {
        let (sql, start) = if after >= from {
            (
                concat!(
                    "SELECT ",
                    entry_cols!(),
                    " FROM entries WHERE path > $1 AND path < $2 AND is_dir = 0 ORDER BY path LIMIT $3"
                ),
                after,
            )
        } else {
            (
                concat!(
                    "SELECT ",
                    entry_cols!(),
                    " FROM entries WHERE path >= $1 AND path < $2 AND is_dir = 0 ORDER BY path LIMIT $3"
                ),
                from,
            )
        };
        let args = [Arg::Text(start), Arg::Text(to), Arg::Int(limit)];
        self.read(sql, &args, entry_of).await
    }

    /// Every row strictly below `path`, in path order (parents before children).
    pub async fn subtree(&self, path: &str) -> Result<Vec<EntryRow>, MetaError> {
        let (lo, hi) = below(path);
        let rows = sqlx::query(concat!(
            "SELECT ",
            entry_cols!(),
            " FROM entries WHERE path >= $1 AND path < $2 ORDER BY path"
        ))
        .bind(&lo)
        .bind(&hi)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(row_to_entry).collect())
    }

    /// Sum of all file sizes: the space Kura uses.
    pub async fn used_bytes(&self) -> Result<i64, MetaError> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT CAST(SUM(size) AS BIGINT) FROM entries WHERE is_dir = 0")
                .fetch_one(&self.pool)
                .await?;
        Ok(n.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    fn row(path: &str, is_dir: bool) -> EntryRow {
        EntryRow {
            path: path.into(),
            parent: super::super::parent_of(path).to_string(),
            is_dir,
            size: 0,
            mtime_ms: 1,
            etag: "e".into(),
            content_type: None,
            owner: None,
            headers: None,
            grp: None,
            mode: 0o775,
            origin: None,
            sealed: None,
            blob: None,
        }
    }

    /// Every page of `/b` with `prefix`, `limit` rows at a time, each continuing after the key of
    /// the last row (as `Vfs::list_page` does): the keys in order.
    async fn pages(s: &Store, prefix: &str, limit: i64) -> Vec<String> {
        let lo = format!("/b/{prefix}");
        let hi = format!("{lo}{}", char::MAX);
        let (mut cursor, mut out) = (String::from("/b/"), Vec::new());
        loop {
            let rows = s
                .children_in_range("/b", &lo, &hi, &cursor, limit)
                .await
                .unwrap();
            let n = rows.len() as i64;
            for r in rows {
                cursor = if r.is_dir {
                    format!("{}/", r.path)
                } else {
                    r.path
                };
                out.push(cursor.trim_start_matches("/b/").to_string());
            }
            if n < limit {
                return out;
            }
        }
    }

    /// A long read on the calling thread (a page of a big listing) yields after it, as a read
    /// through the pool did: the tasks queued behind it (small GETs) run before the caller
    /// goes on, rather than after the whole listing.
    #[tokio::test]
    async fn a_long_read_lets_the_tasks_queued_behind_it_run() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&row("/b", true)).await.unwrap();
        for i in 0..3000 {
            s.put_file(&row(&format!("/b/f{i:05}"), false))
                .await
                .unwrap();
        }
        let ran = std::sync::Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        tokio::spawn(async move { r.store(true, Ordering::SeqCst) });
        let page = s.children_page("/b", "", 3000).await.unwrap();
        assert_eq!(page.len(), 3000);
        assert!(
            ran.load(Ordering::SeqCst),
            "a task queued behind a 3000-row page waited for the caller's next await"
        );
    }

    #[tokio::test]
    async fn pages_of_a_folder_follow_s3_key_order_across_continuations() {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&row("/b", true)).await.unwrap();
        // `a-b` and `a.c` sort before the folder `a/` in key order, after it in path order
        for (p, d) in [
            ("/b/a", true),
            ("/b/a-b", false),
            ("/b/a.c", false),
            ("/b/a0", false),
            ("/b/ab", true),
            ("/b/b", false),
            ("/b/ba", true),
            ("/b/c", false),
        ] {
            if d {
                s.insert_dir(&row(p, true)).await.unwrap();
            } else {
                s.put_file(&row(p, false)).await.unwrap();
            }
        }
        s.put_file(&row("/b/a/inside", false)).await.unwrap();
        let all = ["a-b", "a.c", "a/", "a0", "ab/", "b", "ba/", "c"];
        for limit in [1, 2, 3, 100] {
            assert_eq!(pages(&s, "", limit).await, all, "pages of {limit}");
        }
        assert_eq!(pages(&s, "a", 2).await, ["a-b", "a.c", "a/", "a0", "ab/"]);
        assert_eq!(pages(&s, "a-", 1).await, ["a-b"]);
        assert_eq!(pages(&s, "b", 1).await, ["b", "ba/"]);
        assert!(pages(&s, "d", 5).await.is_empty());
        // a cursor past the prefix's range ends the listing; one before it starts at the range
        let rows = s
            .children_in_range("/b", "/b/b", "/b/b\u{10FFFF}", "/b/ba/", 5)
            .await
            .unwrap();
        assert!(rows.is_empty());
        let rows = s
            .children_in_range("/b", "/b/b", "/b/b\u{10FFFF}", "/b/a", 5)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
    }

    #[tokio::test]
    async fn a_page_reads_from_its_first_key_in_the_index_and_sorts_nothing() {
        // a page whose cost grew with the folder is what fell over at 100,000 entries
        let s = Store::in_memory().await.unwrap();
        let mut conn = s.pool.acquire().await.unwrap();
        let pg = crate::store::dialect::is_pg(&conn);
        if pg {
            // an empty table is read whole by choice: ask which index it would use
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let explain = if pg {
            "EXPLAIN "
        } else {
            "EXPLAIN QUERY PLAN "
        };
        let plan = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{explain}{}",
            children_in_range_sql!()
        )))
        .bind("/b")
        .bind("/b/")
        .bind("/b/\u{10FFFF}")
        .bind("/b/x")
        .bind("/b/x")
        .bind(10)
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(if pg { 0 } else { 3 }))
        .collect::<Vec<_>>()
        .join("; ");
        if pg {
            assert!(plan.contains("entries_parent_key"), "{plan}");
            assert!(!plan.contains("Sort"), "{plan}");
        } else {
            assert!(plan.contains("USING INDEX entries_parent_key"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}
