//! Search candidates: rows whose indexed name, description or tags may match a query, newest
//! entry first, read from the index the triggers of `0016_search.sql` keep in each
//! transaction. The core checks each candidate exactly (folding, permissions) and pages.

use super::entries::{entry_cols, entry_of, EntryRow};
use super::inline::Arg;
use super::{below, MetaError, Store};

/// What the index is asked: every part must hold.
#[derive(Debug, Default)]
pub struct Probe {
    /// An FTS5 expression over names and descriptions, built only of quoted strings.
    pub text: Option<String>,
    /// Tags the entry must carry: a key, and the value when given.
    pub tags: Vec<(String, Option<String>)>,
    /// Only entries below this folder (None: everywhere).
    pub scope: Option<String>,
    /// Only entries older than this index position (the previous page's last one).
    pub before: i64,
    /// At most this many candidates.
    pub limit: i64,
    /// Read the entries of the scope itself (a small folder) rather than the index: the words
    /// are then left to the caller's exact check.
    pub by_scope: bool,
}

impl Store {
    /// Candidates of `p`, newest first (each with its index position): the driving part is
    /// the scope's own entries (`by_scope`), else the text index, else the first tag, else the
    /// entries themselves, so a page costs in proportion to what it reads, not to everything
    /// that matches.
    pub async fn search_candidates(&self, p: &Probe) -> Result<Vec<(i64, EntryRow)>, MetaError> {
        let range = p.scope.as_deref().map(below);
        let words = match (&p.text, self.on_postgres()) {
            (Some(text), true) => super::search_pg::words(text),
            _ => Vec::new(),
        };
        let mut args: Vec<Arg> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        let next = |args: &mut Vec<Arg<'_>>| format!("${}", args.len());
        let (from, pos) = if p.by_scope && range.is_some() {
            ("entries AS e", "e.rowid")
        } else if let Some(text) = &p.text {
            if self.on_postgres() {
                for w in &words {
                    args.push(Arg::Text(w));
                    conds.push(super::search_pg::contains(&next(&mut args)));
                }
            } else {
                args.push(Arg::Text(text));
                conds.push(format!("search_text MATCH {}", next(&mut args)));
            }
            (
                "search_text AS s JOIN entries AS e ON e.rowid = s.rowid",
                "s.rowid",
            )
        } else if let Some((key, value)) = p.tags.first() {
            args.push(Arg::Text(key));
            conds.push(format!("t.tag_key = {}", next(&mut args)));
            if let Some(v) = value {
                args.push(Arg::Text(v));
                conds.push(format!("t.tag_value = {}", next(&mut args)));
            }
            (
                "search_tags AS t JOIN entries AS e ON e.rowid = t.entry",
                "t.entry",
            )
        } else {
            ("entries AS e", "e.rowid")
        };
        args.push(Arg::Int(p.before));
        conds.push(format!("{pos} < {}", next(&mut args)));
        let skip = usize::from(from.starts_with("search_tags"));
        for (key, value) in p.tags.iter().skip(skip) {
            args.push(Arg::Text(key));
            let k = next(&mut args);
            let v = match value {
                Some(v) => {
                    args.push(Arg::Text(v));
                    format!(" AND x.tag_value = {}", next(&mut args))
                }
                None => String::new(),
            };
            conds.push(format!(
                "EXISTS (SELECT 1 FROM search_tags AS x WHERE x.entry = e.rowid AND x.tag_key = {k}{v})"
            ));
        }
        if let Some((lo, hi)) = &range {
            args.push(Arg::Text(lo));
            let lo = next(&mut args);
            args.push(Arg::Text(hi));
            conds.push(format!("e.path >= {lo} AND e.path < {}", next(&mut args)));
        }
        args.push(Arg::Int(p.limit));
        let sql = format!(
            concat!(
                "SELECT ",
                entry_cols!(),
                ", {pos} FROM {from} WHERE {conds} ORDER BY {pos} DESC LIMIT {limit}"
            ),
            pos = pos,
            from = from,
            conds = conds.join(" AND "),
            limit = next(&mut args),
        );
        // only placeholders and fixed clauses are spliced in; every value is bound
        self.read(&sql, &args, |r| Some((r.int(14)?, entry_of(r)?)))
            .await
    }
}

/// The name of an entry row, in SQL (the last segment of its path).
macro_rules! name_of {
    ($t:literal) => {
        concat!(
            "CASE WHEN ",
            $t,
            ".parent = '/' THEN substr(",
            $t,
            ".path, 2) ELSE substr(",
            $t,
            ".path, length(",
            $t,
            ".parent) + 2) END"
        )
    };
}

/// The tags of an entry row as a JSON list of pairs (`[]` when none), in SQL.
macro_rules! tags_of {
    ($t:literal) => {
        concat!(
            "CASE WHEN json_valid(",
            $t,
            ".headers) AND json_valid(json_extract(",
            $t,
            ".headers, '$.\"x-amz-tagging\"')) THEN json_extract(",
            $t,
            ".headers, '$.\"x-amz-tagging\"') ELSE '[]' END"
        )
    };
}

/// Whether the `json_each` row `j` of an entry's tags is a [key, value] pair, in SQL: its
/// `type` first (json_each gives a string element as bare text, which json_type() and
/// json_extract() refuse as malformed JSON), as the triggers of 0041_search_tags_robust.sql.
macro_rules! is_pair {
    ($j:literal) => {
        concat!(
            "CASE WHEN ",
            $j,
            ".type = 'array' THEN json_type(",
            $j,
            ".value, '$[0]') = 'text' ELSE 0 END"
        )
    };
}

/// The description of an entry row, in SQL.
macro_rules! descr_of {
    ($t:literal) => {
        concat!(
            "CASE WHEN json_valid(",
            $t,
            ".headers) THEN json_extract(",
            $t,
            ".headers, '$.\"x-kura-description\"') END"
        )
    };
}

impl Store {
    /// How many entries the search index has wrong (a name, a description or a tag row
    /// missing, stale or left over), as `kura fsck` reports it; the triggers of
    /// 0016_search.sql (0041) keep it at 0; stored tags that are not pairs are not counted.
    pub async fn search_index_drift(&self) -> Result<i64, MetaError> {
        if self.on_postgres() {
            return super::search_pg::drift(&self.pool).await;
        }
        let n: i64 = sqlx::query_scalar(concat!(
            "SELECT (SELECT count(*) FROM entries AS e LEFT JOIN search_text AS s ON s.rowid = e.rowid
                     WHERE s.rowid IS NULL OR s.name IS DISTINCT FROM ",
            name_of!("e"),
            " OR s.descr IS DISTINCT FROM ",
            descr_of!("e"),
            ")
             + (SELECT count(*) FROM search_text AS s
                WHERE NOT EXISTS (SELECT 1 FROM entries AS e WHERE e.rowid = s.rowid))
             + (SELECT count(*) FROM search_tags AS t
                WHERE NOT EXISTS (SELECT 1 FROM entries AS e WHERE e.rowid = t.entry))
             + (SELECT count(*) FROM search_tags AS t JOIN entries AS e ON e.rowid = t.entry
                WHERE NOT EXISTS (SELECT 1 FROM json_each(",
            tags_of!("e"),
            ") AS j
                    WHERE CASE WHEN ",
            is_pair!("j"),
            "
                      THEN json_extract(j.value, '$[0]') = t.tag_key
                       AND coalesce(json_extract(j.value, '$[1]'), '') = t.tag_value ELSE 0 END))
             + (SELECT count(*) FROM entries AS e, json_each(",
            tags_of!("e"),
            ") AS j
                WHERE CASE WHEN ",
            is_pair!("j"),
            "
                  THEN NOT EXISTS (SELECT 1 FROM search_tags AS t WHERE t.entry = e.rowid
                      AND t.tag_key = json_extract(j.value, '$[0]')
                      AND t.tag_value = coalesce(json_extract(j.value, '$[1]'), '')) ELSE 0 END)"
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// How many entries lie below `scope`, counted up to `cap` (then `cap`): tells a small
    /// folder, cheaper to read whole than to find in the index.
    pub async fn count_below(&self, scope: &str, cap: i64) -> Result<i64, MetaError> {
        let (lo, hi) = below(scope);
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM entries WHERE path >= $1 AND path < $2 LIMIT $3) AS n",
        )
        .bind(&lo)
        .bind(&hi)
        .bind(cap)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// How many entries carry the tag `key` (with `value`, when given), counted up to `cap`:
    /// tells a rare tag, a better start for a search than a common word.
    pub async fn count_tagged(
        &self,
        key: &str,
        value: Option<&str>,
        cap: i64,
    ) -> Result<i64, MetaError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM search_tags
               WHERE tag_key = $1 AND ($2 IS NULL OR tag_value = $2) LIMIT $3) AS n",
        )
        .bind(key)
        .bind(value)
        .bind(cap)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Rebuilds the search index from the entries, in one transaction (`kura fsck --repair`).
    pub async fn rebuild_search_index(&self) -> Result<(), MetaError> {
        let mut tx = self.write_tx().await?;
        if self.on_postgres() {
            super::search_pg::rebuild(&mut tx).await?;
            tx.commit().await?;
            return Ok(());
        }
        sqlx::query("DELETE FROM search_text")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM search_tags")
            .execute(&mut *tx)
            .await?;
        sqlx::query(concat!(
            "INSERT INTO search_text (rowid, name, descr) SELECT rowid, ",
            name_of!("entries"),
            ", ",
            descr_of!("entries"),
            " FROM entries"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(concat!(
            "INSERT INTO search_tags (tag_key, tag_value, entry)
             SELECT json_extract(t.value, '$[0]'), coalesce(json_extract(t.value, '$[1]'), ''), e.rowid
             FROM entries AS e, json_each(",
            tags_of!("e"),
            ") AS t
             WHERE ",
            is_pair!("t"),
            " ON CONFLICT DO NOTHING"
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Fills the database with `n` files for the search benchmark (`scripts/bench-search.sh`):
    /// one bucket `/bench` of 1,000 folders, names from a small vocabulary, 1 file in 100
    /// tagged and 1 in 20 described, inserted by SQL in one transaction (the triggers index
    /// every row as they would for uploads). Not for a real data dir.
    #[cfg(test)]
    pub async fn bench_fill(&self, n: i64) -> Result<(), MetaError> {
        self.sqlite_only("search (its PostgreSQL side is not written yet)")?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO entries (path, parent, is_dir, size, mtime_ms, etag, owner, grp, mode)
             VALUES ('/bench', '/', 1, 0, 0, 'd', 'root', 'staff', 493)",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 999)
             INSERT INTO entries (path, parent, is_dir, size, mtime_ms, etag, owner, grp, mode)
             SELECT '/bench/d' || i, '/bench', 1, 0, 0, 'd', 'root', 'staff',
                    CASE WHEN i % 10 = 3 THEN 448 ELSE 493 END FROM c",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < $1 - 1),
             w(k, word) AS (VALUES (0, 'report'), (1, 'Élève'), (2, 'invoice'), (3, 'photo'),
                 (4, 'budget'), (5, 'contrat'), (6, 'draft'), (7, 'notes'), (8, 'résumé'),
                 (9, 'scan'), (10, 'holiday'), (11, 'minutes'), (12, 'plan'))
             INSERT INTO entries (path, parent, is_dir, size, mtime_ms, etag, owner, grp, mode,
                                  headers)
             SELECT '/bench/d' || (i % 1000) || '/' || w.word || '-' || i || '.txt',
                    '/bench/d' || (i % 1000), 0, 100, i, 'e', 'root', 'staff', 420,
                    CASE WHEN i % 100 = 0
                         THEN json_object('x-amz-tagging', '[[' || char(34) || 'project' || char(34) || ',' || char(34) || 'p' || (i % 7) || char(34) || ']]')
                         WHEN i % 20 = 1
                         THEN json_object('x-kura-description', 'quarterly summary number ' || i)
                    END
             FROM c JOIN w ON w.k = (i * 7919) % 13",
        )
        .bind(n)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Bytes of the search index (its tables and indexes) and of the whole database, from
    /// SQLite's `dbstat` (the benchmark's storage figure).
    #[cfg(test)]
    pub async fn bench_sizes(&self) -> Result<(i64, i64), MetaError> {
        self.sqlite_only("search (its PostgreSQL side is not written yet)")?;
        let index: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(pgsize), 0) FROM dbstat
             WHERE name LIKE 'search%'",
        )
        .fetch_one(&self.pool)
        .await?;
        let all: i64 = sqlx::query_scalar("SELECT coalesce(sum(pgsize), 0) FROM dbstat")
            .fetch_one(&self.pool)
            .await?;
        Ok((index, all))
    }

    /// Drops the search triggers (the benchmark's baseline for the cost of a move).
    #[cfg(test)]
    pub async fn bench_drop_triggers(&self) -> Result<(), MetaError> {
        let on = if self.on_postgres() {
            " ON entries"
        } else {
            ""
        };
        for t in ["search_insert", "search_update", "search_delete"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {t}{on}")))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, is_dir: bool, headers: Option<&str>) -> EntryRow {
        EntryRow {
            path: path.into(),
            parent: super::super::parent_of(path).to_string(),
            is_dir,
            size: 0,
            mtime_ms: 1,
            etag: "e".into(),
            content_type: None,
            owner: None,
            headers: headers.map(str::to_string),
            grp: None,
            mode: 0o775,
            origin: None,
            sealed: None,
            blob: None,
        }
    }

    /// Attack (red team): stored tags that are not a list of [key, value] pairs (a string
    /// element, a number, an object, a bare string, a nested list). Kura's own writers store
    /// checked pairs only, but a damaged or foreign row did not just go unindexed: the 0016
    /// trigger failed (malformed JSON) every write of it, and fsck and the rebuild with it.
    /// Now such elements are skipped, the pairs beside them indexed, and nothing fails.
    #[tokio::test]
    async fn tags_that_are_not_pairs_never_fail_a_write_or_the_index() {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&row("/b", true, None)).await.unwrap();
        let hostile = [
            r#"{"x-amz-tagging":"[\"abc\",[\"k\",\"v\"]]"}"#,
            r#"{"x-amz-tagging":"\"abc\""}"#,
            r#"{"x-amz-tagging":"[5,{\"a\":1},[1,2],[[\"x\"]],[\"k\",\"v\"]]"}"#,
            r#"{"x-amz-tagging":"[\"[\\\"s\\\",\\\"t\\\"]\",[\"k\",\"v\"]]"}"#,
            r#"{"x-amz-tagging":42}"#,
            r#"{"x-amz-tagging":["abc",["k","v"]]}"#,
            r#"["x-amz-tagging"]"#,
            "not json",
        ];
        for (i, h) in hostile.iter().enumerate() {
            let path = format!("/b/f{i}");
            s.put_file(&row(&path, false, Some(h)))
                .await
                .unwrap_or_else(|e| panic!("insert {h}: {e}"));
            s.set_headers(&path, None, Some(h), 2)
                .await
                .unwrap_or_else(|e| panic!("update {h}: {e}"));
        }
        assert_eq!(s.search_index_drift().await.unwrap(), 0);
        s.rebuild_search_index().await.unwrap();
        assert_eq!(s.search_index_drift().await.unwrap(), 0);
        // the pairs beside them are found; a string that looks like a pair is no tag
        assert_eq!(s.count_tagged("k", Some("v"), 100).await.unwrap(), 4);
        assert_eq!(s.count_tagged("s", None, 100).await.unwrap(), 0);
        assert_eq!(s.count_tagged("abc", None, 100).await.unwrap(), 0);
    }
}
