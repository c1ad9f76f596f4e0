//! `kura db migrate`: an SQLite store copied into an empty PostgreSQL database, all or nothing.
//!
//! The tables are read from the SQLite schema, so a table a later migration adds is copied
//! with no change here; what must not be copied is named below. The copy runs in one
//! transaction on PostgreSQL (its migrations included) and in one `BEGIN IMMEDIATE` on SQLite,
//! so no other writer changes the source meanwhile. It is verified before the COMMIT: row
//! counts of every table on both sides and two checksums; on any difference it rolls back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, Row};

use super::{Db, MetaError};

/// A transaction on either side.
type Tx<'c> = sqlx::Transaction<'c, Db>;

/// Tables never copied: sqlx's ledger (the migrator writes the target's own), SQLite's
/// internals (`sqlite_%`), the FTS5 index and its shadow tables, and `search_tags`, which the
/// PostgreSQL triggers fill from `entries` as it is copied (both are compared at the end).
const SKIPPED: &[&str] = &[
    "_sqlx_migrations",
    "search_text",
    "search_text_data",
    "search_text_idx",
    "search_text_content",
    "search_text_docsize",
    "search_text_config",
    "search_tags",
];

/// Tables the PostgreSQL triggers fill as `entries` is copied: counted on both sides.
const DERIVED: &[&str] = &["search_text", "search_tags"];

/// Tables the migrations fill with rows (checked by `postgres_schema`): their rows on the
/// target are replaced by the source's, after every other table (triggers bump `generations`).
const SEEDED: &[&str] = &["generations", "notify_cursor"];

/// Bound values per INSERT (PostgreSQL takes at most 65,535).
const MAX_PARAMS: usize = 30_000;
/// Rows per INSERT at most.
const MAX_ROWS: usize = 500;
/// Bytes of text and blobs per INSERT at most (a large file's chunk list is megabytes): with
/// the row caps, what bounds the copy's memory whatever the database's size.
const MAX_BYTES: usize = 8 << 20;

/// Longest wait for the PostgreSQL server to accept the connection.
const CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the copy reports as it goes.
pub enum CopyEvent<'a> {
    /// The copy begins: `rows` rows in all.
    Start { rows: u64 },
    /// The copy of a table begins; it holds `rows` rows.
    Table { name: &'a str, rows: u64 },
    /// `rows` more rows of the current table are written.
    Rows(u64),
}

/// One line of the verification: a table's rows, or a checksum, on both sides.
#[derive(Debug, Clone)]
pub struct Compared {
    /// The table, or the checksum's name.
    pub what: String,
    /// On SQLite.
    pub source: String,
    /// On PostgreSQL, after the copy.
    pub target: String,
}

/// The outcome: committed when every line matched, rolled back otherwise.
#[derive(Debug)]
pub struct CopyReport {
    /// Every table's count and the checksums.
    pub compared: Vec<Compared>,
    /// Rows written to PostgreSQL.
    pub rows: u64,
    /// Whether the transaction was committed (every line matched).
    pub committed: bool,
}

/// One column of a copied table.
struct Column {
    name: String,
    kind: Kind,
    /// What the SQLite side selects: the column, or the implicit `rowid` of `entries`.
    source: String,
}

/// The value families the two schemas use (docs/scale-out.md, the translation table).
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
    Float,
}

/// One value read from SQLite, bound as its PostgreSQL column's type.
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Float(Option<f64>),
}

/// A refusal: nothing was changed.
fn refused(msg: String) -> MetaError {
    MetaError::Refused(msg)
}

/// Copies the SQLite database `sqlite_file`, whose schema must be the binary's, into the
/// PostgreSQL database `url`, which must hold no Kura rows.
pub async fn copy_to_postgres(
    sqlite_file: &Path,
    url: &str,
    progress: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<CopyReport, MetaError> {
    sqlx::any::install_default_drivers();
    let src = super::open_as_is(sqlite_file).await?;
    // SQLite: the write lock for the whole copy, so no offline command writes meanwhile
    let mut s = src.begin_with("BEGIN IMMEDIATE").await?;
    check_version(&mut s).await?;
    // the migrator's notices ("already exists, skipping") stay out of the output
    let mut url =
        url::Url::parse(url).map_err(|e| MetaError::Db(sqlx::Error::Configuration(e.into())))?;
    if !url.query_pairs().any(|(k, _)| k == "options") {
        url.query_pairs_mut()
            .append_pair("options", "-c client_min_messages=warning");
    }
    // one connection, not a pool: a refused connection or password is told as it is
    let mut dst = tokio::time::timeout(CONNECT_WAIT, sqlx::AnyConnection::connect(url.as_str()))
        .await
        .map_err(|_| refused("the PostgreSQL server did not answer within 10 s".into()))??;
    let mut t = dst.begin().await?;
    check_empty(&mut t).await?;
    sqlx::migrate!("./migrations_postgres").run(&mut *t).await?;
    let tables = tables_in_order(&mut s).await?;
    let mut sizes = Vec::with_capacity(tables.len());
    for table in &tables {
        sizes.push(count(&mut *s, table).await? as u64);
    }
    progress(CopyEvent::Start {
        rows: sizes.iter().sum(),
    });
    let mut rows = 0;
    for (table, n) in tables.iter().zip(sizes) {
        let cols = columns(&mut s, &mut t, table).await?;
        if SEEDED.contains(&table.as_str()) {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM \"{table}\"")))
                .execute(&mut *t)
                .await?;
        }
        progress(CopyEvent::Table {
            name: table,
            rows: n,
        });
        rows += copy_table(&mut s, &mut t, table, &cols, progress).await?;
        set_identities(&mut s, &mut t, table, &cols).await?;
    }
    let compared = verify(&mut s, &mut t, &tables).await?;
    let committed = compared.iter().all(|c| c.source == c.target);
    if committed {
        t.commit().await?;
    } else {
        t.rollback().await?;
    }
    s.rollback().await?;
    src.close().await;
    dst.close().await?;
    Ok(CopyReport {
        compared,
        rows,
        committed,
    })
}

/// Refuses a source whose applied migrations are not exactly the binary's.
async fn check_version(s: &mut Tx<'_>) -> Result<(), MetaError> {
    let applied: BTreeSet<i64> =
        sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(&mut **s)
            .await?
            .iter()
            .map(|r| r.get::<i64, _>(0))
            .collect();
    let known: BTreeSet<i64> = sqlx::migrate!("./migrations")
        .iter()
        .map(|m| m.version)
        .collect();
    if applied == known {
        return Ok(());
    }
    let at = applied.last().copied().unwrap_or(0);
    let ours = known.last().copied().unwrap_or(0);
    Err(refused(if at > ours || !applied.is_subset(&known) {
        format!(
            "the SQLite database is at schema version {at}, written by a newer Kura than this \
             one ({ours}); run the migration with that version"
        )
    } else {
        format!(
            "the SQLite database is at schema version {at}, this Kura's is {ours}: start this \
             version once (kura serve) so that it migrates the database, stop it, then run \
             kura db migrate again"
        )
    }))
}

/// Refuses a target that holds tables other than Kura's, or Kura rows (beyond the seeds).
async fn check_empty(t: &mut Tx<'_>) -> Result<(), MetaError> {
    let names: Vec<String> = sqlx::query(
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&mut **t)
    .await?
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    if names.is_empty() {
        return Ok(());
    }
    if !names.iter().any(|n| n == "_sqlx_migrations") {
        return Err(refused(format!(
            "the target database is not empty: it holds tables that are not Kura's ({}); give \
             an empty database; nothing was changed",
            names.join(", ")
        )));
    }
    let mut full = Vec::new();
    for n in &names {
        if n == "_sqlx_migrations" || SEEDED.contains(&n.as_str()) || DERIVED.contains(&n.as_str())
        {
            continue;
        }
        let c = count(&mut **t, n).await?;
        if c > 0 {
            full.push(format!("{n}: {c}"));
        }
    }
    if full.is_empty() {
        return Ok(());
    }
    Err(refused(format!(
        "the target database already holds Kura rows ({}); kura db migrate copies into an \
         empty database only; nothing was changed",
        full.join(", ")
    )))
}

/// `count(*)` of a table.
async fn count<'c, E>(conn: E, table: &str) -> Result<i64, MetaError>
where
    E: sqlx::Executor<'c, Database = super::Db>,
{
    let sql = format!("SELECT CAST(count(*) AS BIGINT) FROM \"{table}\"");
    Ok(sqlx::query(AssertSqlSafe(sql))
        .fetch_one(conn)
        .await?
        .get::<i64, _>(0))
}

/// The SQLite tables to copy, each after the tables its foreign keys name; the seeded ones
/// last.
async fn tables_in_order(s: &mut Tx<'_>) -> Result<Vec<String>, MetaError> {
    let names: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut **s)
    .await?
    .iter()
    .map(|r| r.get::<String, _>(0))
    .filter(|n| !SKIPPED.contains(&n.as_str()))
    .collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for n in &names {
        let on: BTreeSet<String> =
            sqlx::query("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?)")
                .bind(n.as_str())
                .fetch_all(&mut **s)
                .await?
                .iter()
                .map(|r| r.get::<String, _>(0))
                .filter(|d| d != n)
                .collect();
        deps.insert(n.clone(), on);
    }
    let mut order: Vec<String> = Vec::new();
    let seeded_last = |a: &String| SEEDED.contains(&a.as_str());
    while order.len() < names.len() {
        let ready: Vec<String> = names
            .iter()
            .filter(|n| !order.contains(n))
            .filter(|n| {
                deps[*n]
                    .iter()
                    .all(|d| order.contains(d) || !names.contains(d))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(refused(
                "the foreign keys of the SQLite schema form a cycle; nothing was changed".into(),
            ));
        }
        order.extend(ready);
    }
    order.sort_by_key(seeded_last);
    Ok(order)
}

/// The columns of `table` on PostgreSQL, each matched with its SQLite column.
async fn columns(s: &mut Tx<'_>, t: &mut Tx<'_>, table: &str) -> Result<Vec<Column>, MetaError> {
    let theirs: Vec<(String, String)> = sqlx::query(
        "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut **t)
    .await?
    .iter()
    .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
    .collect();
    if theirs.is_empty() {
        return Err(refused(format!(
            "table {table} has no twin in migrations_postgres/; nothing was changed"
        )));
    }
    let ours: BTreeSet<String> = sqlx::query("SELECT name FROM pragma_table_info(?)")
        .bind(table)
        .fetch_all(&mut **s)
        .await?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let mut cols = Vec::new();
    for (name, ty) in theirs {
        let kind = match ty.as_str() {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "text" | "character varying" => Kind::Text,
            "bytea" => Kind::Bytes,
            "double precision" | "real" => Kind::Float,
            other => {
                return Err(refused(format!(
                    "column {table}.{name} has the type {other}, which the copy does not know"
                )))
            }
        };
        let source = if ours.contains(&name) {
            format!("\"{name}\"")
        } else if name == "rowid" {
            // the implicit rowid of SQLite, an explicit column on PostgreSQL
            "rowid".to_string()
        } else {
            return Err(refused(format!(
                "column {table}.{name} of PostgreSQL is missing on SQLite; nothing was changed"
            )));
        };
        cols.push(Column { name, kind, source });
    }
    if let Some(extra) = ours.iter().find(|o| !cols.iter().any(|c| &c.name == *o)) {
        return Err(refused(format!(
            "column {table}.{extra} of SQLite is missing on PostgreSQL; nothing was changed"
        )));
    }
    Ok(cols)
}

/// Streams `table` from SQLite into PostgreSQL in batches; the rows written.
async fn copy_table(
    s: &mut Tx<'_>,
    t: &mut Tx<'_>,
    table: &str,
    cols: &[Column],
    progress: &mut dyn FnMut(CopyEvent<'_>),
) -> Result<u64, MetaError> {
    let select = cols
        .iter()
        .map(|c| {
            let ty = match c.kind {
                Kind::Int => "INTEGER",
                Kind::Text => "TEXT",
                Kind::Bytes => "BLOB",
                Kind::Float => "REAL",
            };
            format!("CAST({} AS {ty})", c.source)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let per_batch = (MAX_PARAMS / cols.len()).clamp(1, MAX_ROWS);
    let sql = format!("SELECT {select} FROM \"{table}\"");
    let mut stream = sqlx::query(AssertSqlSafe(sql)).fetch(&mut **s);
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_batch);
    let mut bytes = 0;
    let mut written = 0;
    while let Some(row) = stream.try_next().await? {
        let mut values = Vec::with_capacity(cols.len());
        for (i, c) in cols.iter().enumerate() {
            let v = match c.kind {
                Kind::Int => Value::Int(row.try_get(i)?),
                Kind::Text => Value::Text(row.try_get(i)?),
                Kind::Bytes => Value::Bytes(row.try_get(i)?),
                Kind::Float => Value::Float(row.try_get(i)?),
            };
            bytes += match &v {
                Value::Text(Some(x)) => x.len(),
                Value::Bytes(Some(x)) => x.len(),
                _ => 8,
            };
            values.push(v);
        }
        batch.push(values);
        if batch.len() == per_batch || bytes >= MAX_BYTES {
            let n = batch.len() as u64;
            written += insert(t, table, cols, &mut batch).await?;
            progress(CopyEvent::Rows(n));
            bytes = 0;
        }
    }
    let rest = batch.len() as u64;
    written += insert(t, table, cols, &mut batch).await?;
    progress(CopyEvent::Rows(rest));
    Ok(written)
}

/// One multi-row INSERT of the batch, emptied; the rows written.
async fn insert(
    t: &mut Tx<'_>,
    table: &str,
    cols: &[Column],
    batch: &mut Vec<Vec<Value>>,
) -> Result<u64, MetaError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let names = cols
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut n = 0;
    let tuples = batch
        .iter()
        .map(|_| {
            let p = (0..cols.len())
                .map(|_| {
                    n += 1;
                    format!("${n}")
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("({p})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("INSERT INTO \"{table}\" ({names}) VALUES {tuples}");
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for v in batch.drain(..).flatten() {
        q = match v {
            Value::Int(x) => q.bind(x),
            Value::Text(x) => q.bind(x),
            Value::Bytes(x) => q.bind(x),
            Value::Float(x) => q.bind(x),
        };
    }
    Ok(q.execute(&mut **t).await?.rows_affected())
}

/// Moves each identity sequence of `table` past the highest id copied and past the highest
/// SQLite's AUTOINCREMENT ever gave (a deleted row's id is not given again).
async fn set_identities(
    s: &mut Tx<'_>,
    t: &mut Tx<'_>,
    table: &str,
    cols: &[Column],
) -> Result<(), MetaError> {
    let identities: Vec<String> = sqlx::query(
        "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
    )
    .bind(table)
    .fetch_all(&mut **t)
    .await?
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    for col in identities
        .iter()
        .filter(|i| cols.iter().any(|c| &c.name == *i))
    {
        let max: i64 = sqlx::query(AssertSqlSafe(format!(
            "SELECT CAST(COALESCE(MAX(\"{col}\"), 0) AS BIGINT) FROM \"{table}\""
        )))
        .fetch_one(&mut **t)
        .await?
        .get(0);
        let issued = autoincrement_seq(s, table).await?;
        sqlx::query("SELECT setval(pg_get_serial_sequence($1, $2), $3, false)")
            .bind(format!("\"{table}\""))
            .bind(col.as_str())
            .bind(max.max(issued) + 1)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// The highest id SQLite's AUTOINCREMENT gave in `table` (0 when it has none).
async fn autoincrement_seq(s: &mut Tx<'_>, table: &str) -> Result<i64, MetaError> {
    let has: i64 = sqlx::query(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'",
    )
    .fetch_one(&mut **s)
    .await?
    .get(0);
    if has == 0 {
        return Ok(0);
    }
    Ok(
        sqlx::query("SELECT CAST(seq AS INTEGER) FROM sqlite_sequence WHERE name = ?")
            .bind(table)
            .fetch_optional(&mut **s)
            .await?
            .map_or(0, |r| r.get::<i64, _>(0)),
    )
}

/// Row counts of every copied and derived table and two checksums, on both sides.
async fn verify(
    s: &mut Tx<'_>,
    t: &mut Tx<'_>,
    tables: &[String],
) -> Result<Vec<Compared>, MetaError> {
    let mut out = Vec::new();
    for table in tables
        .iter()
        .map(String::as_str)
        .chain(DERIVED.iter().copied())
    {
        out.push(Compared {
            what: table.to_string(),
            source: count(&mut **s, table).await?.to_string(),
            target: count(&mut **t, table).await?.to_string(),
        });
    }
    out.push(Compared {
        what: "sum of entries' sizes".into(),
        source: size_sum(&mut **s).await?.to_string(),
        target: size_sum(&mut **t).await?.to_string(),
    });
    out.push(Compared {
        what: "users' names (sha256)".into(),
        source: names_hash(&mut **s).await?,
        target: names_hash(&mut **t).await?,
    });
    Ok(out)
}

/// The sum of every entry's size.
async fn size_sum<'c, E>(conn: E) -> Result<i64, MetaError>
where
    E: sqlx::Executor<'c, Database = super::Db>,
{
    Ok(
        sqlx::query("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM entries")
            .fetch_one(conn)
            .await?
            .get(0),
    )
}

/// The sha256 of the users' names in byte order, one per line (its first 8 bytes, as hex).
async fn names_hash<'c, E>(conn: E) -> Result<String, MetaError>
where
    E: sqlx::Executor<'c, Database = super::Db>,
{
    let mut h = Sha256::new();
    for r in sqlx::query("SELECT name FROM users ORDER BY name")
        .fetch_all(conn)
        .await?
    {
        h.update(r.get::<String, _>(0).as_bytes());
        h.update(b"\n");
    }
    Ok(hex::encode(&h.finalize()[..8]))
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::super::Store;
    use super::*;

    /// Peak resident memory of this process so far (KiB).
    fn peak_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The copy's time and memory on a large store (KURA_COPY_ROWS entries and audit rows, 200
    /// chunk lists of 1 MB): `scripts/test-store-postgres.sh copy_of_a_large_store --ignored
    /// --nocapture`.
    #[tokio::test]
    #[ignore]
    async fn copy_of_a_large_store() {
        let Ok(server) = std::env::var("KURA_TEST_DATABASE_URL") else {
            return;
        };
        let n: i64 = std::env::var("KURA_COPY_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kura.db");
        let store = Store::open(&file).await.unwrap();
        for sql in [
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
             INSERT INTO entries (path, parent, is_dir, size, mtime_ms, etag, content_type, \
             owner, headers, mode, implicit, version_id, sealed) SELECT '/b/f-' || i, '/b', 0, \
             i, 1, 'e' || i, 'text/plain', 'admin', CASE WHEN i % 100 = 0 THEN \
             '{\"x-amz-tagging\": [[\"k\", \"v\"]]}' END, 420, 0, 'v' || i, 0 FROM n",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
             INSERT INTO audit (time_ms, actor, protocol, action, path) \
             SELECT i, 'admin', 'webdav', 'put', '/b/f-' || i FROM n",
        ] {
            sqlx::query(sql).bind(n).execute(&store.pool).await.unwrap();
        }
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
             INSERT INTO file_chunks (path, avg, etag, size, blake3, list, made_ms) \
             SELECT '/b/f-' || i, 65536, 'e', 1, 'h', randomblob(1000000), 0 FROM n",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        drop(store);
        let name = format!("kura_copy_{}", std::process::id());
        let mut admin = sqlx::AnyConnection::connect(&server).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = format!("{}/{name}", server.rsplit_once('/').unwrap().0);
        let before = peak_kib();
        let started = std::time::Instant::now();
        let r = copy_to_postgres(&file, &url, &mut |_| {}).await.unwrap();
        println!(
            "copied {} rows in {:.1} s; peak RSS {} KiB before, {} KiB after; committed {}",
            r.rows,
            started.elapsed().as_secs_f64(),
            before,
            peak_kib(),
            r.committed
        );
        assert!(r.committed, "{:?}", r.compared);
    }
}
