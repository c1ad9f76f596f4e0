//! The few SQL fragments that differ between SQLite and PostgreSQL (docs/scale-out.md, "The
//! metadata interface"); every other statement is one string for both engines.

use sqlx::{AnyConnection, AssertSqlSafe};

/// Whether the connection is to PostgreSQL.
pub(super) fn is_pg(conn: &AnyConnection) -> bool {
    conn.backend_name() == "PostgreSQL"
}

/// A fresh version id computed in SQL from the milliseconds `t` (an expression): 13 hex
/// digits of the time then 16 random ones, so ids sort by creation time and never repeat.
pub(super) fn new_id(pg: bool, t: &str) -> String {
    if pg {
        format!(
            "(lpad(to_hex(CAST({t} AS BIGINT)), 13, '0') \
             || substr(replace(CAST(gen_random_uuid() AS TEXT), '-', ''), 1, 16))"
        )
    } else {
        format!("(printf('%013x', {t}) || lower(hex(randomblob(8))))")
    }
}

/// `sql` with `{new_id}` replaced by `new_id` of the time expression `t`, for the engine of
/// `conn`.
pub(super) fn with_new_id(conn: &AnyConnection, sql: &str, t: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(sql.replace("{new_id}", &new_id(is_pg(conn), t)))
}

/// The same id made in Rust, for a single row.
pub(super) fn new_id_now(now_ms: i64) -> String {
    let r: u64 = rand::random();
    format!("{now_ms:013x}{r:016x}")
}

/// The text at `key` of the JSON object in the text column `col` (NULL when absent or not
/// JSON on PostgreSQL; SQLite's `json_extract` fails on text that is not JSON).
pub(super) fn json_text(pg: bool, col: &str, key: &str) -> String {
    if pg {
        format!("(kura_json({col}) ->> '{key}')")
    } else {
        format!("json_extract({col}, '$.{key}')")
    }
}

/// A table of the elements of the JSON array of text bound as `param` (column `value`).
pub(super) fn json_each_text(pg: bool, param: &str) -> String {
    if pg {
        format!("jsonb_array_elements_text(CAST({param} AS JSONB))")
    } else {
        format!("json_each({param})")
    }
}
