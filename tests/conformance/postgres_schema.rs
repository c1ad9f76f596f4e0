//! The two migration sets cannot drift (issue #18, docs/scale-out.md, "Two migration sets"):
//! every SQLite migration in `migrations/` has a PostgreSQL twin of the same name in
//! `migrations_postgres/`; both sets, applied by sqlx's migrator to a fresh SQLite file and
//! to a real PostgreSQL (tests/conformance/postgres.rs), give the same schema: tables,
//! columns (type family, NOT NULL, default, identity), primary keys, unique constraints,
//! foreign keys (columns, target, ON DELETE / ON UPDATE), indexes (columns, unique, partial)
//! and triggers (by table and name), and the same seeded rows. The same statements then give
//! the same rows on both (search index and generation triggers, byte order of paths).
//!
//! Intentional differences, and only these, are accounted for before comparing:
//! - `entries.rowid`: SQLite gives every table an implicit rowid (the search index keys on
//!   it); PostgreSQL has none, so its `entries` has an explicit `rowid` identity column with a
//!   unique constraint. Both are checked, then set aside.
//! - `search_text`: an FTS5 virtual table in SQLite (its shadow tables `search_text_*` are
//!   FTS5's own); a plain table in PostgreSQL keyed by `rowid`, with the pg_trgm GIN indexes
//!   `search_text_name` and `search_text_descr`. Checked, then set aside; the columns `name`
//!   and `descr` are compared as text.
//! - NOT NULL on primary key columns: PostgreSQL implies it; SQLite does not (a legacy quirk)
//!   unless declared. Both are taken as NOT NULL.
//! - Type families: SQLite's INTEGER and BIGINT are both 64-bit integers; every PostgreSQL
//!   integer column must be `bigint`, since the store binds and reads `i64` and sqlx's
//!   PostgreSQL driver decodes `i64` from INT8 only. BLOB is `bytea`.
//! - Collation: SQLite compares text by bytes; every PostgreSQL text column must say
//!   `COLLATE "C"` (checked on its own: listings keep UTF-8 byte order).
//! - Trigger bodies: PL/pgSQL functions against SQLite trigger programs; compared by what
//!   they do on the same statements, not by text.
//! - Defaults are compared without PostgreSQL's casts (`'ok'::text` is `'ok'`).

use super::postgres::Postgres;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    family: String,
    not_null: bool,
    default: Option<String>,
    /// Numbered by the database (SQLite AUTOINCREMENT, PostgreSQL identity or serial).
    auto: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, Column>,
    primary_key: Vec<String>,
    uniques: BTreeSet<Vec<String>>,
    /// "(from) -> table (to) ON DELETE x ON UPDATE y"
    foreign_keys: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    table: String,
    /// Column names in order; an expression is `<expr>`.
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

#[derive(Debug, Default)]
struct Schema {
    tables: BTreeMap<String, Table>,
    indexes: BTreeMap<String, Index>,
    /// "table.trigger"
    triggers: BTreeSet<String>,
}

/// A foreign key being gathered: target table, from columns, to columns, ON DELETE, ON UPDATE.
type Fk = (String, Vec<String>, Vec<String>, String, String);
/// information_schema.columns: name, type, nullable, default, identity, collation.
type PgColumn = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);
/// pg_constraint: kind, columns, target table, target columns, ON DELETE, ON UPDATE.
type PgConstraint = (
    String,
    Vec<String>,
    Option<String>,
    Vec<String>,
    String,
    String,
);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `NNNN_name.sql` files of a migration folder.
fn migration_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| {
            n.ends_with(".sql")
                && n.split('_')
                    .next()
                    .is_some_and(|v| v.parse::<u64>().is_ok())
        })
        .collect()
}

/// Which SQLite migrations have no PostgreSQL twin of the same name, and the other way round.
fn missing_twins() -> Vec<String> {
    let sqlite = migration_files(&root().join("migrations"));
    let postgres = migration_files(&root().join("migrations_postgres"));
    let mut problems = Vec::new();
    for m in sqlite.difference(&postgres) {
        problems.push(format!(
            "migrations/{m} has no PostgreSQL twin: add migrations_postgres/{m}, its translation \
             (BIGINT for integers, TEXT COLLATE \"C\", BYTEA for BLOB, identity for AUTOINCREMENT, \
             triggers as PL/pgSQL; docs/scale-out.md, \"Two migration sets\")"
        ));
    }
    for m in postgres.difference(&sqlite) {
        problems.push(format!(
            "migrations_postgres/{m} has no SQLite original migrations/{m}: the sets are numbered alike"
        ));
    }
    problems
}

fn family(declared: &str) -> String {
    let t = declared.to_ascii_lowercase();
    let f = if t.contains("int") {
        "integer"
    } else if t.contains("char") || t.contains("text") || t.is_empty() {
        "text"
    } else if t.contains("blob") || t == "bytea" {
        "blob"
    } else if t.contains("bool") {
        "boolean"
    } else {
        return format!("other ({declared})");
    };
    f.to_string()
}

/// A default as text without PostgreSQL's cast: `'ok'::text` -> `'ok'`.
fn default_text(d: Option<String>) -> Option<String> {
    d.map(|d| {
        let d = d.trim();
        match d.rfind("::") {
            Some(i)
                if d[i + 2..]
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || b == b' ') =>
            {
                d[..i].to_string()
            }
            _ => d.to_string(),
        }
    })
}

async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Schema {
    let mut s = Schema::default();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table'
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .expect("sqlite tables");
    let virtual_tables: Vec<String> = tables
        .iter()
        .filter(|(_, sql)| sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE"))
        .map(|(n, _)| n.clone())
        .collect();
    for (name, sql) in &tables {
        // FTS5's shadow tables belong to their virtual table
        if virtual_tables.iter().any(|v| {
            name.strip_prefix(v.as_str()).is_some_and(|rest| {
                ["_data", "_idx", "_content", "_docsize", "_config"].contains(&rest)
            })
        }) {
            continue;
        }
        let mut t = Table::default();
        let cols: Vec<(String, String, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(name)
        .fetch_all(pool)
        .await
        .expect("table_info");
        let mut pk: Vec<(i64, String)> = Vec::new();
        for (col, ty, not_null, dflt, pk_at) in cols {
            if pk_at > 0 {
                pk.push((pk_at, col.clone()));
            }
            t.columns.insert(
                col,
                Column {
                    family: family(&ty),
                    not_null: not_null != 0 || pk_at > 0,
                    default: default_text(dflt),
                    auto: pk_at > 0 && sql.to_ascii_uppercase().contains("AUTOINCREMENT"),
                },
            );
        }
        pk.sort();
        t.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        let idx: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT name, \"unique\", origin, partial FROM pragma_index_list($1)")
                .bind(name)
                .fetch_all(pool)
                .await
                .expect("index_list");
        for (iname, unique, origin, partial) in idx {
            let cols: Vec<(Option<String>,)> = sqlx::query_as(
                "SELECT name FROM pragma_index_xinfo($1) WHERE key = 1 ORDER BY seqno",
            )
            .bind(&iname)
            .fetch_all(pool)
            .await
            .expect("index_xinfo");
            let cols: Vec<String> = cols
                .into_iter()
                .map(|(c,)| c.unwrap_or_else(|| "<expr>".into()))
                .collect();
            match origin.as_str() {
                "pk" => {}
                "u" => {
                    t.uniques.insert(cols);
                }
                _ => {
                    s.indexes.insert(
                        iname,
                        Index {
                            table: name.clone(),
                            columns: cols,
                            unique: unique != 0,
                            partial: partial != 0,
                        },
                    );
                }
            }
        }
        let fks: Vec<(i64, String, String, Option<String>, String, String)> = sqlx::query_as(
            "SELECT id, \"table\", \"from\", \"to\", on_delete, on_update
             FROM pragma_foreign_key_list($1) ORDER BY id, seq",
        )
        .bind(name)
        .fetch_all(pool)
        .await
        .expect("foreign_key_list");
        let mut by_id: BTreeMap<i64, Fk> = BTreeMap::new();
        for (id, target, from, to, on_delete, on_update) in fks {
            let e = by_id
                .entry(id)
                .or_insert_with(|| (target, vec![], vec![], on_delete, on_update));
            e.1.push(from);
            e.2.push(to.unwrap_or_default());
        }
        for (target, from, to, on_delete, on_update) in by_id.into_values() {
            t.foreign_keys
                .insert(fk_text(&target, &from, &to, &on_delete, &on_update));
        }
        s.tables.insert(name.clone(), t);
    }
    let triggers: Vec<(String, String)> =
        sqlx::query_as("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
            .fetch_all(pool)
            .await
            .expect("sqlite triggers");
    s.triggers = triggers
        .into_iter()
        .map(|(t, n)| format!("{t}.{n}"))
        .collect();
    s
}

fn fk_text(target: &str, from: &[String], to: &[String], del: &str, upd: &str) -> String {
    format!(
        "({}) -> {target} ({}) ON DELETE {} ON UPDATE {}",
        from.join(", "),
        to.join(", "),
        del.to_ascii_uppercase(),
        upd.to_ascii_uppercase()
    )
}

fn pg_action(code: &str) -> &'static str {
    match code {
        "c" => "CASCADE",
        "r" => "RESTRICT",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "NO ACTION",
    }
}

/// The PostgreSQL schema, and the facts that have no SQLite counterpart: the text columns
/// not collated "C" and the integer columns narrower than bigint.
async fn postgres_schema(pool: &sqlx::PgPool) -> (Schema, Vec<String>) {
    let mut s = Schema::default();
    let mut faults = Vec::new();
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("pg tables");
    for (name,) in tables {
        let mut t = Table::default();
        let cols: Vec<PgColumn> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_nullable::text,
                        column_default::text, is_identity::text, collation_name::text
                 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                 ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .expect("pg columns");
        for (col, ty, nullable, dflt, identity, collation) in cols {
            let fam = family(&ty);
            if fam == "text" && collation.as_deref() != Some("C") {
                faults.push(format!(
                    "{name}.{col} is text collated {collation:?}, not \"C\": listings would leave byte order"
                ));
            }
            if fam == "integer" && ty != "bigint" {
                faults.push(format!(
                    "{name}.{col} is {ty}, not bigint: the store reads i64, which sqlx decodes from INT8 only"
                ));
            }
            let serial = dflt.as_deref().is_some_and(|d| d.starts_with("nextval("));
            t.columns.insert(
                col,
                Column {
                    family: fam,
                    not_null: nullable == "NO",
                    default: if serial { None } else { default_text(dflt) },
                    auto: identity == "YES" || serial,
                },
            );
        }
        let cons: Vec<PgConstraint> =
            sqlx::query_as(
                "SELECT c.contype::text,
                        ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o)
                              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
                        CASE WHEN c.contype = 'f' THEN c.confrelid::regclass::text END,
                        ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(n, o)
                              JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o),
                        c.confdeltype::text, c.confupdtype::text
                 FROM pg_constraint c
                 WHERE c.conrelid = $1::regclass AND c.contype IN ('p', 'u', 'f')",
            )
            .bind(&name)
            .fetch_all(pool)
            .await
            .expect("pg constraints");
        for (kind, cols, target, to, del, upd) in cons {
            match kind.as_str() {
                "p" => t.primary_key = cols,
                "u" => {
                    t.uniques.insert(cols);
                }
                _ => {
                    t.foreign_keys.insert(fk_text(
                        &target.unwrap_or_default(),
                        &cols,
                        &to,
                        pg_action(&del),
                        pg_action(&upd),
                    ));
                }
            }
        }
        s.tables.insert(name, t);
    }
    let idx: Vec<(String, String, bool, bool, Vec<String>)> = sqlx::query_as(
        "SELECT i.relname::text, t.relname::text, x.indisunique, x.indpred IS NOT NULL,
                ARRAY(SELECT CASE WHEN k.n = 0 THEN '<expr>'
                                  ELSE (SELECT a.attname::text FROM pg_attribute a
                                        WHERE a.attrelid = t.oid AND a.attnum = k.n) END
                      FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(n, o) ORDER BY k.o)
         FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_namespace ns ON ns.oid = t.relnamespace
         WHERE ns.nspname = current_schema() AND t.relname <> '_sqlx_migrations'
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(pool)
    .await
    .expect("pg indexes");
    for (iname, table, unique, partial, columns) in idx {
        s.indexes.insert(
            iname,
            Index {
                table,
                columns,
                unique,
                partial,
            },
        );
    }
    let triggers: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, g.tgname::text FROM pg_trigger g
         JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace ns ON ns.oid = c.relnamespace
         WHERE NOT g.tgisinternal AND ns.nspname = current_schema()",
    )
    .fetch_all(pool)
    .await
    .expect("pg triggers");
    s.triggers = triggers
        .into_iter()
        .map(|(t, n)| format!("{t}.{n}"))
        .collect();
    (s, faults)
}

/// Checks the intentional differences (module doc) are as described, then removes them.
fn set_aside_intended(sqlite: &mut Schema, pg: &mut Schema) {
    // entries.rowid: explicit and unique in PostgreSQL, implicit in SQLite
    let entries = pg.tables.get_mut("entries").expect("entries in PostgreSQL");
    let rowid = entries
        .columns
        .remove("rowid")
        .expect("PostgreSQL's entries has an explicit rowid (SQLite's implicit one)");
    assert!(
        rowid.auto && rowid.family == "integer",
        "entries.rowid: {rowid:?}"
    );
    assert!(
        entries.uniques.remove(["rowid".to_string()].as_slice()),
        "entries.rowid is unique in PostgreSQL"
    );
    // search_text: FTS5 in SQLite, a table with trigram indexes in PostgreSQL
    let text = pg
        .tables
        .get_mut("search_text")
        .expect("search_text in PostgreSQL");
    assert_eq!(text.primary_key, ["rowid"], "search_text is keyed by rowid");
    text.columns.remove("rowid");
    text.primary_key.clear();
    for trigram in ["search_text_name", "search_text_descr"] {
        let i = pg
            .indexes
            .remove(trigram)
            .unwrap_or_else(|| panic!("{trigram}: the trigram index of search_text"));
        assert_eq!(i.table, "search_text");
    }
    // FTS5 columns carry no declared type; the index stores text
    if let Some(t) = sqlite.tables.get_mut("search_text") {
        for c in t.columns.values_mut() {
            c.family = "text".into();
        }
    }
}

/// Every difference between the two schemas, one line each.
fn differences(sqlite: &Schema, pg: &Schema) -> Vec<String> {
    let mut d = Vec::new();
    for (name, t) in &sqlite.tables {
        let Some(p) = pg.tables.get(name) else {
            d.push(format!("table {name}: in SQLite, not in PostgreSQL"));
            continue;
        };
        for (col, c) in &t.columns {
            match p.columns.get(col) {
                None => d.push(format!("column {name}.{col}: in SQLite, not in PostgreSQL")),
                Some(pc) if pc != c => d.push(format!(
                    "column {name}.{col}: SQLite {c:?}, PostgreSQL {pc:?}"
                )),
                _ => {}
            }
        }
        for col in p.columns.keys().filter(|c| !t.columns.contains_key(*c)) {
            d.push(format!("column {name}.{col}: in PostgreSQL, not in SQLite"));
        }
        if t.primary_key != p.primary_key {
            d.push(format!(
                "primary key of {name}: SQLite {:?}, PostgreSQL {:?}",
                t.primary_key, p.primary_key
            ));
        }
        if t.uniques != p.uniques {
            d.push(format!(
                "unique constraints of {name}: SQLite {:?}, PostgreSQL {:?}",
                t.uniques, p.uniques
            ));
        }
        if t.foreign_keys != p.foreign_keys {
            d.push(format!(
                "foreign keys of {name}: SQLite {:?}, PostgreSQL {:?}",
                t.foreign_keys, p.foreign_keys
            ));
        }
    }
    for name in pg.tables.keys().filter(|n| !sqlite.tables.contains_key(*n)) {
        d.push(format!("table {name}: in PostgreSQL, not in SQLite"));
    }
    for (name, i) in &sqlite.indexes {
        match pg.indexes.get(name) {
            None => d.push(format!("index {name}: in SQLite, not in PostgreSQL")),
            Some(p) if p != i => d.push(format!("index {name}: SQLite {i:?}, PostgreSQL {p:?}")),
            _ => {}
        }
    }
    for name in pg
        .indexes
        .keys()
        .filter(|n| !sqlite.indexes.contains_key(*n))
    {
        d.push(format!("index {name}: in PostgreSQL, not in SQLite"));
    }
    for t in sqlite.triggers.difference(&pg.triggers) {
        d.push(format!("trigger {t}: in SQLite, not in PostgreSQL"));
    }
    for t in pg.triggers.difference(&sqlite.triggers) {
        d.push(format!("trigger {t}: in PostgreSQL, not in SQLite"));
    }
    d
}

async fn sqlite_rows(pool: &sqlx::SqlitePool, sql: &'static str) -> Vec<Vec<Option<String>>> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("SQLite `{sql}`: {e}"))
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<Option<String>, _>(i))
                .collect()
        })
        .collect()
}

async fn pg_rows(pool: &sqlx::PgPool, sql: &'static str) -> Vec<Vec<Option<String>>> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL `{sql}`: {e}"))
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<Option<String>, _>(i))
                .collect()
        })
        .collect()
}

async fn both_run(sqlite: &sqlx::SqlitePool, pg: &sqlx::PgPool, sql: &'static str) {
    sqlx::query(sql)
        .execute(sqlite)
        .await
        .unwrap_or_else(|e| panic!("SQLite `{sql}`: {e}"));
    sqlx::query(sql)
        .execute(pg)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL `{sql}`: {e}"));
}

async fn both_same(sqlite: &sqlx::SqlitePool, pg: &sqlx::PgPool, sql: &'static str) -> usize {
    let a = sqlite_rows(sqlite, sql).await;
    let b = pg_rows(pg, sql).await;
    assert_eq!(a, b, "`{sql}`: SQLite (left) and PostgreSQL (right) differ");
    a.len()
}

#[test]
fn postgres_migrations_are_twins_of_the_sqlite_ones() {
    // before any engine starts: a migration without its twin is named at once
    let missing = missing_twins();
    assert!(missing.is_empty(), "{}", missing.join("\n"));

    let pg = Postgres::start();
    let url = pg.create_database("twins");
    let dir = tempfile::tempdir().expect("temporary folder");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sqlite = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.path().join("kura.db"))
                    .create_if_missing(true)
                    .foreign_keys(true),
            )
            .await
            .expect("SQLite");
        let postgres = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("PostgreSQL");
        // runtime migrators (not `migrate!`): a migration merged later is read without a rebuild
        let m_sqlite = sqlx::migrate::Migrator::new(root().join("migrations"))
            .await
            .expect("SQLite migrations");
        let m_pg = sqlx::migrate::Migrator::new(root().join("migrations_postgres"))
            .await
            .expect("PostgreSQL migrations");
        m_sqlite.run(&sqlite).await.expect("apply SQLite migrations");
        if let Err(e) = m_pg.run(&postgres).await {
            panic!("applying migrations_postgres/ failed: {e}\n{}", pg.log());
        }
        let versions = |m: &sqlx::migrate::Migrator| -> Vec<i64> {
            m.iter().map(|m| m.version).collect()
        };
        assert_eq!(versions(&m_sqlite), versions(&m_pg));

        let mut a = sqlite_schema(&sqlite).await;
        let (mut b, faults) = postgres_schema(&postgres).await;
        assert!(faults.is_empty(), "PostgreSQL columns:\n{}", faults.join("\n"));
        assert!(a.tables.len() > 30, "only {} tables in SQLite?", a.tables.len());
        set_aside_intended(&mut a, &mut b);
        let d = differences(&a, &b);
        assert!(
            d.is_empty(),
            "the PostgreSQL migrations drifted from the SQLite ones \
             ({} difference(s); fix migrations_postgres/, or list an intended one in \
             tests/conformance/postgres_schema.rs):\n{}",
            d.len(),
            d.join("\n")
        );

        // seeded rows: the generation counters and the notification cursor
        for sql in [
            "SELECT name, CAST(n AS TEXT) FROM generations ORDER BY name",
            "SELECT CAST(one AS TEXT), CAST(audit_id AS TEXT) FROM notify_cursor",
        ] {
            assert!(both_same(&sqlite, &postgres, sql).await > 0, "{sql}: no rows");
        }

        // the same statements, the same rows: triggers, JSON, byte order
        for sql in [
            "INSERT INTO users (name, password_hash, is_admin, created_ms) VALUES ('ann', 'h', 0, 1)",
            "INSERT INTO groups (name, created_ms) VALUES ('staff', 1)",
            "INSERT INTO memberships (user_name, group_name) VALUES ('ann', 'staff')",
            "UPDATE groups SET used_bytes = 5 WHERE name = 'staff'",
            "UPDATE users SET password_hash = 'h2' WHERE name = 'ann'",
            "INSERT INTO entries (path, parent, is_dir, size, mtime_ms, etag, headers) VALUES
                ('/b', '/', 1, 0, 1, 'e', NULL),
                ('/b/B', '/b', 1, 0, 1, 'e', NULL),
                ('/b/a', '/b', 0, 1, 1, 'e', 'not json'),
                ('/b/~', '/b', 0, 1, 1, 'e', '{\"x-amz-tagging\": [[\"k\", 5], [7, \"x\"]]}'),
                ('/b/Été.txt', '/b', 0, 3, 1, 'e',
                 '{\"x-kura-description\": \"Sommer Ferien\", \"x-amz-tagging\": \"[[\\\"k\\\",\\\"v\\\"],[\\\"k2\\\",null],[\\\"k\\\",\\\"v\\\"]]\"}')",
            "INSERT INTO bucket_settings (bucket, name, value) VALUES ('/b', 'cors', '[]')",
            "UPDATE entries SET path = '/b/Herbst.txt' WHERE path = '/b/Été.txt'",
            "UPDATE entries SET headers = '{\"x-kura-description\": \"ok\"}' WHERE path = '/b/a'",
            "DELETE FROM entries WHERE path = '/b/~'",
            "INSERT INTO locks (token, path, collection, shared, deep, created_ms) VALUES ('t', '/b', 1, 0, 1, 1)",
            "DELETE FROM locks",
            "INSERT INTO audit (time_ms, protocol, action) VALUES (1, 'cli', 'mkdir'), (2, 'cli', 'delete')",
        ] {
            both_run(&sqlite, &postgres, sql).await;
        }
        for sql in [
            "SELECT name, CAST(n AS TEXT) FROM generations ORDER BY name",
            "SELECT e.path, s.name, s.descr FROM search_text AS s JOIN entries AS e ON e.rowid = s.rowid ORDER BY e.path",
            "SELECT e.path, t.tag_key, t.tag_value FROM search_tags AS t JOIN entries AS e ON e.rowid = t.entry
             ORDER BY e.path, t.tag_key, t.tag_value",
            "SELECT path FROM entries ORDER BY path",
            "SELECT path FROM entries WHERE parent = '/b'
             ORDER BY (CASE WHEN is_dir = 1 THEN path || '/' ELSE path END)",
            "SELECT CAST(id AS TEXT), action FROM audit ORDER BY id",
            "SELECT bucket, name FROM bucket_settings",
        ] {
            both_same(&sqlite, &postgres, sql).await;
        }
        // the keyset and the search index are what the comparison above saw, not nothing
        let order = pg_rows(&postgres, "SELECT path FROM entries ORDER BY path").await;
        let order: Vec<String> = order.into_iter().filter_map(|r| r[0].clone()).collect();
        assert_eq!(order, ["/b", "/b/B", "/b/Herbst.txt", "/b/a"]);
        let tags = pg_rows(&postgres, "SELECT count(*)::text FROM search_tags").await;
        assert_eq!(tags, [[Some("2".to_string())]], "k=v and k2='' for Herbst.txt");
        let folded = pg_rows(
            &postgres,
            "SELECT e.path FROM search_text AS s JOIN entries AS e ON e.rowid = s.rowid
             WHERE kura_fold(s.descr) LIKE '%' || kura_fold('FÉRIEN') || '%'",
        )
        .await;
        assert_eq!(folded, [[Some("/b/Herbst.txt".to_string())]]);
        sqlite.close().await;
        postgres.close().await;
    });
}
