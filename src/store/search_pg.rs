//! The search index's check and rebuild on PostgreSQL, through the functions its triggers use
//! (`kura_search_name`, `kura_json`, `kura_search_tags` of migrations_postgres/0016, 0041),
//! and the text part of a search: FTS5's trigram `MATCH` becomes `LIKE` over the folded text,
//! which the pg_trgm indexes serve. Candidates only: the core checks each one exactly.

use super::{DbPool, DbTx, MetaError};

/// The quoted strings of the FTS5 expression the core builds (`{name descr} : "w" AND ...`),
/// each a word every candidate must contain.
pub(super) fn words(fts: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = fts;
    while let Some(start) = rest.find('"') {
        let mut word = String::new();
        let mut chars = rest[start + 1..].char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                // a doubled quote is a quote of the word
                if rest[start + 1 + i + 1..].starts_with('"') {
                    word.push('"');
                    chars.next();
                    continue;
                }
                end = start + 1 + i + 1;
                break;
            }
            word.push(c);
        }
        out.push(word);
        rest = &rest[end..];
    }
    out
}

/// The condition that the name or the description of the `search_text` row `s` contains
/// the word bound as `param`, folded as the index folds (a `%` or `_` in the word only widens
/// the candidates).
pub(super) fn contains(param: &str) -> String {
    format!(
        "(kura_fold(s.name) LIKE '%' || kura_fold({param}) || '%' \
          OR kura_fold(s.descr) LIKE '%' || kura_fold({param}) || '%')"
    )
}

/// `Store::search_index_drift` on PostgreSQL.
pub(super) async fn drift(pool: &DbPool) -> Result<i64, MetaError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM entries AS e LEFT JOIN search_text AS s ON s.rowid = e.rowid
                 WHERE s.rowid IS NULL
                    OR s.name IS DISTINCT FROM kura_search_name(e.path, e.parent)
                    OR s.descr IS DISTINCT FROM kura_json(e.headers) ->> 'x-kura-description')
              + (SELECT count(*) FROM search_text AS s
                 WHERE NOT EXISTS (SELECT 1 FROM entries AS e WHERE e.rowid = s.rowid))
              + (SELECT count(*) FROM search_tags AS t
                 WHERE NOT EXISTS (SELECT 1 FROM entries AS e WHERE e.rowid = t.entry))
              + (SELECT count(*) FROM search_tags AS t JOIN entries AS e ON e.rowid = t.entry
                 WHERE NOT EXISTS (SELECT 1 FROM kura_search_tags(e.headers) AS j
                    WHERE j.tag_key = t.tag_key AND j.tag_value = t.tag_value))
              + (SELECT count(*) FROM entries AS e, kura_search_tags(e.headers) AS j
                 WHERE NOT EXISTS (SELECT 1 FROM search_tags AS t WHERE t.entry = e.rowid
                    AND t.tag_key = j.tag_key AND t.tag_value = j.tag_value))",
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

/// `Store::rebuild_search_index` on PostgreSQL, in the caller's transaction.
pub(super) async fn rebuild(tx: &mut DbTx) -> Result<(), MetaError> {
    for sql in [
        "DELETE FROM search_text",
        "DELETE FROM search_tags",
        "INSERT INTO search_text (rowid, name, descr)
         SELECT rowid, kura_search_name(path, parent), kura_json(headers) ->> 'x-kura-description'
         FROM entries",
        "INSERT INTO search_tags (tag_key, tag_value, entry)
         SELECT t.tag_key, t.tag_value, e.rowid FROM entries AS e, kura_search_tags(e.headers) AS t
         ON CONFLICT DO NOTHING",
    ] {
        sqlx::query(sql).execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_words_of_an_fts_expression_come_back_unquoted() {
        assert_eq!(
            super::words(r#"{name descr} : "a""b OR NEAR(" AND {name descr} : "x*y""#),
            ["a\"b OR NEAR(", "x*y"]
        );
    }
}
