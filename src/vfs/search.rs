//! Search: names (substring), descriptions (text) and tags (`tag:KEY=VALUE`, `tag:KEY`) below a
//! folder, folded for case and accents (NFC in, diacritics off), showing only what the caller
//! could list and read, newest first, in pages continued by a cursor (docs/search.md).

use std::collections::HashMap;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::perm::{R, X};
use super::tags::description_of;
use super::{Caller, Entry, VPath, Vfs, VfsError};
use crate::store::Probe;

/// Longest query, in bytes.
pub const MAX_QUERY: usize = 1024;
/// Most words and tag terms in one query.
const MAX_TERMS: usize = 16;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;
/// Candidates read from the index per round trip.
const BATCH: i64 = 256;
/// Candidates one request reads at most, and the time it spends reading them: past either the
/// page is returned as it is (perhaps short, even empty) with a cursor to go on, so no request
/// scans without bound.
const BUDGET: usize = 20_000;
const TIME_BUDGET: std::time::Duration = std::time::Duration::from_millis(50);
/// A scope with at most this many entries is read whole instead of through the index (the
/// index yields matches from everywhere, most of them outside a small folder).
const SMALL_SCOPE: i64 = 5_000;
/// A tag on at most this many entries starts the search instead of the words (which are then
/// checked on its entries only).
const RARE_TAG: i64 = 10_000;

/// One page of results.
#[derive(Debug)]
pub struct SearchPage {
    /// Matching entries, newest first.
    pub hits: Vec<Entry>,
    /// Where the next page starts; None when nothing is left.
    pub next: Option<String>,
}

/// A parsed query.
#[derive(Debug, Default, PartialEq)]
struct Query {
    /// Words and phrases, NFC, as given.
    words: Vec<String>,
    /// Tag terms: key, and value when given.
    tags: Vec<(String, Option<String>)>,
}

/// Folds text for matching: NFC, diacritics removed, lower case.
pub fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .nfc()
        .collect()
}

/// Splits a query into words, "quoted phrases" and `tag:` terms (percent-escapes allowed in
/// tag keys and values, for spaces and `=`).
fn parse(q: &str) -> Result<Query, VfsError> {
    if q.len() > MAX_QUERY {
        return Err(VfsError::InvalidArgument("the query is over 1024 bytes"));
    }
    if q.chars().any(char::is_control) {
        return Err(VfsError::InvalidArgument(
            "the query holds control characters",
        ));
    }
    let q: String = q.nfc().collect();
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in q.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                tokens.push(std::mem::take(&mut cur));
            }
            c => cur.push(c),
        }
    }
    tokens.push(cur);
    let mut out = Query::default();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| VfsError::InvalidArgument("a tag term is not UTF-8"))
    };
    for t in tokens.into_iter().filter(|t| !t.trim().is_empty()) {
        match t.strip_prefix("tag:") {
            Some(kv) => {
                let (k, v) = match kv.split_once('=') {
                    Some((k, v)) => (decode(k)?, Some(decode(v)?)),
                    None => (decode(kv)?, None),
                };
                if k.is_empty() {
                    return Err(VfsError::InvalidArgument("tag: needs a key"));
                }
                out.tags.push((k, v));
            }
            None => out.words.push(t),
        }
    }
    if out.words.is_empty() && out.tags.is_empty() {
        return Err(VfsError::InvalidArgument("the query is empty"));
    }
    if out.words.len() + out.tags.len() > MAX_TERMS {
        return Err(VfsError::InvalidArgument("at most 16 terms per query"));
    }
    Ok(out)
}

/// The FTS5 expression for the words the trigram index can look up (3 characters or more),
/// each a quoted string so nothing in it is FTS syntax; None when no word qualifies.
fn fts_expr(words: &[String]) -> Option<String> {
    let parts: Vec<String> = words
        .iter()
        .filter(|w| fold(w).chars().count() >= 3)
        .map(|w| format!("{{name descr}} : \"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// Reads a cursor: the index position a previous page stopped at.
fn parse_cursor(c: &str) -> Result<i64, VfsError> {
    let bad = VfsError::InvalidArgument("the cursor is not one this search gave");
    if c.is_empty() || c.len() > 19 || !c.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    c.parse::<i64>().ok().filter(|n| *n > 0).ok_or(bad)
}

impl Vfs {
    /// One page (at most `limit` entries) of what matches `q` below the folder `scope`, that
    /// `c` may see: as listing would show it (x on every folder above the one holding it, r on
    /// that one) and readable (r). Administrators see everything.
    pub async fn search(
        &self,
        c: &Caller,
        q: &str,
        scope: &VPath,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<SearchPage, VfsError> {
        if c.is_anonymous() {
            return Err(VfsError::Forbidden("search needs a user"));
        }
        let query = parse(q)?;
        let mut before = cursor.map(parse_cursor).transpose()?.unwrap_or(i64::MAX);
        let limit = limit.clamp(1, MAX_LIMIT);
        let dir = self.stat(c, scope).await?;
        if !dir.is_dir {
            return Err(VfsError::WrongKind("the scope is not a folder"));
        }
        if !scope.is_root() {
            dir.require(c, R, "the folder may not be listed")?;
        }
        let started = std::time::Instant::now();
        let words: Vec<String> = query.words.iter().map(|w| fold(w)).collect();
        let by_scope = !scope.is_root()
            && self
                .store
                .count_below(scope.as_str(), SMALL_SCOPE + 1)
                .await?
                <= SMALL_SCOPE;
        let mut tags = query.tags;
        let mut text = fts_expr(&query.words);
        if !by_scope && !tags.is_empty() {
            let mut rarest = (RARE_TAG + 1, 0);
            for (i, (k, v)) in tags.iter().enumerate() {
                let n = self
                    .store
                    .count_tagged(k, v.as_deref(), RARE_TAG + 1)
                    .await?;
                if n < rarest.0 {
                    rarest = (n, i);
                }
            }
            // the rarest tag goes first: it drives when no word does, or when it is rare
            tags.swap(0, rarest.1);
            if rarest.0 <= RARE_TAG {
                text = None;
            }
        }
        let mut probe = Probe {
            text,
            tags,
            scope: (!scope.is_root()).then(|| scope.as_str().to_string()),
            before,
            limit: BATCH,
            by_scope,
        };
        let mut folders: HashMap<String, Option<Entry>> = HashMap::new();
        let mut hits = Vec::new();
        let mut scanned = 0;
        loop {
            probe.before = before;
            let batch = self.store.search_candidates(&probe).await?;
            let full = batch.len() as i64 == BATCH;
            let entries: Vec<(i64, Entry)> = batch
                .into_iter()
                .filter_map(|(pos, row)| Entry::from_row(row).ok().map(|e| (pos, e)))
                .collect();
            if !c.is_admin {
                self.load_folders(&entries, &mut folders).await?;
            }
            for (pos, e) in entries {
                before = pos;
                scanned += 1;
                if matches(&e, &words) && self.may_see(c, &e, &folders) {
                    hits.push(e);
                    if hits.len() == limit {
                        return Ok(SearchPage {
                            hits,
                            next: Some(pos.to_string()),
                        });
                    }
                }
            }
            if !full {
                return Ok(SearchPage { hits, next: None });
            }
            if scanned >= BUDGET || started.elapsed() >= TIME_BUDGET {
                return Ok(SearchPage {
                    hits,
                    next: Some(before.to_string()),
                });
            }
        }
    }

    /// Reads the folders above `entries` that are not known yet, in one query.
    async fn load_folders(
        &self,
        entries: &[(i64, Entry)],
        known: &mut HashMap<String, Option<Entry>>,
    ) -> Result<(), VfsError> {
        let mut want: Vec<String> = Vec::new();
        for (_, e) in entries {
            let mut p = e.path.parent();
            while !p.is_root() && !known.contains_key(p.as_str()) {
                known.insert(p.as_str().to_string(), None);
                want.push(p.as_str().to_string());
                p = p.parent();
            }
        }
        for chunk in want.chunks(500) {
            let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
            for r in self.store.entries_in(&keys).await? {
                if let Ok(e) = Entry::from_row(r) {
                    known.insert(e.path.as_str().to_string(), Some(e));
                }
            }
        }
        Ok(())
    }

    /// Whether listing would show `e` to `c` and `c` may read it (`folders`: those above it).
    fn may_see(&self, c: &Caller, e: &Entry, folders: &HashMap<String, Option<Entry>>) -> bool {
        if self.visible(vec![e.clone()]).is_empty() {
            return false;
        }
        if c.is_admin {
            return true;
        }
        if !e.allows(c, R) {
            return false;
        }
        let parent = e.path.parent();
        if parent.is_root() {
            // the root lists the buckets one may enter
            return !e.is_dir || e.allows(c, X);
        }
        let Some(Some(holder)) = folders.get(parent.as_str()) else {
            return false;
        };
        if !holder.is_dir || !holder.allows(c, R) {
            return false;
        }
        let mut p = parent.parent();
        while !p.is_root() {
            match folders.get(p.as_str()) {
                Some(Some(f)) if f.is_dir && f.allows(c, X) => {}
                _ => return false,
            }
            p = p.parent();
        }
        true
    }
}

/// Whether every word occurs in the entry's name or description, folded.
fn matches(e: &Entry, words: &[String]) -> bool {
    if words.is_empty() {
        return true;
    }
    let name = fold(e.path.name());
    let descr = description_of(&e.headers).map(fold).unwrap_or_default();
    words
        .iter()
        .all(|w| name.contains(w.as_str()) || descr.contains(w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_ignores_case_and_accents() {
        assert_eq!(fold("Élève Ça"), "eleve ca");
        assert_eq!(fold("e\u{301}"), "e");
        assert_eq!(fold("ÅNGSTRÖM"), "angstrom");
    }

    #[test]
    fn queries_split_into_words_phrases_and_tags() {
        let q = parse("report \"big plan\" tag:year=2026 tag:draft tag:a%20b=c%3Dd").unwrap();
        assert_eq!(q.words, vec!["report", "big plan"]);
        assert_eq!(
            q.tags,
            vec![
                ("year".into(), Some("2026".into())),
                ("draft".into(), None),
                ("a b".into(), Some("c=d".into()))
            ]
        );
        assert!(parse("   ").is_err());
        assert!(parse(&"x".repeat(1025)).is_err());
        assert!(parse("tag:").is_err());
        assert!(parse("a\u{0}b").is_err());
    }

    #[test]
    fn fts_syntax_is_always_quoted() {
        let e = fts_expr(&["a\"b OR NEAR(".into(), "x*".into(), "ab".into()]).unwrap();
        assert_eq!(e, "{name descr} : \"a\"\"b OR NEAR(\"");
        assert!(fts_expr(&["ab".into()]).is_none());
    }

    #[test]
    fn cursors_are_positions_only() {
        assert_eq!(parse_cursor("42").unwrap(), 42);
        for bad in ["", "-1", "0", "1e3", "99999999999999999999", "12 OR 1=1"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }

    async fn names(v: &Vfs, c: &Caller, q: &str, scope: &str) -> Vec<String> {
        let page = v
            .search(c, q, &VPath::parse(scope).unwrap(), None, 100)
            .await
            .unwrap();
        page.hits.iter().map(|e| e.path.to_string()).collect()
    }

    /// The index follows uploads, tags, descriptions, moves and deletes in their own
    /// transactions, and shows a user only what she could list and read.
    #[tokio::test]
    async fn the_index_follows_every_change_and_the_rules() {
        use bytes::Bytes;
        let op = opendal::Operator::new(opendal::services::Memory::default()).unwrap();
        let staging = opendal::Operator::new(opendal::services::Memory::default()).unwrap();
        let store = crate::store::Store::in_memory().await.unwrap();
        let v = Vfs::new(op, staging, store, None);
        let admin = Caller::admin("root");
        let path = |s: &str| VPath::parse(s).unwrap();
        v.mkdir(&admin, &path("/b")).await.unwrap();
        v.mkdir(&admin, &path("/b/Dossier")).await.unwrap();
        v.mkdir(&admin, &path("/b/secret")).await.unwrap();
        for f in [
            "/b/Dossier/Élève Report.txt",
            "/b/secret/report-x.txt",
            "/b/ab.txt",
        ] {
            let mut up = v
                .upload(&admin, &path(f), super::super::UploadOptions::default())
                .await
                .unwrap();
            up.write(Bytes::from_static(b"x")).await.unwrap();
            up.commit().await.unwrap();
        }
        assert_eq!(
            names(&v, &admin, "eleve", "/").await,
            vec!["/b/Dossier/Élève Report.txt"]
        );
        assert_eq!(names(&v, &admin, "REPORT", "/").await.len(), 2);
        assert_eq!(names(&v, &admin, "ab", "/").await, vec!["/b/ab.txt"]);
        v.set_tags(
            &admin,
            &path("/b/ab.txt"),
            &[("year".into(), "2026".into())],
        )
        .await
        .unwrap();
        v.set_description(
            &admin,
            &path("/b/secret/report-x.txt"),
            Some("Budget prévu"),
        )
        .await
        .unwrap();
        assert_eq!(
            names(&v, &admin, "tag:year=2026", "/").await,
            vec!["/b/ab.txt"]
        );
        assert_eq!(names(&v, &admin, "tag:year", "/").await, vec!["/b/ab.txt"]);
        assert!(names(&v, &admin, "tag:year=2025", "/").await.is_empty());
        // a rare tag starts the search, the words are checked on its entries
        assert_eq!(
            names(&v, &admin, "ab tag:year", "/").await,
            vec!["/b/ab.txt"]
        );
        assert!(names(&v, &admin, "report tag:year", "/").await.is_empty());
        assert_eq!(
            names(&v, &admin, "budget prevu", "/").await,
            vec!["/b/secret/report-x.txt"]
        );
        v.rename(&admin, &path("/b/Dossier"), &path("/b/Archive"))
            .await
            .unwrap();
        assert_eq!(
            names(&v, &admin, "élève", "/b/Archive").await,
            vec!["/b/Archive/Élève Report.txt"]
        );
        assert!(names(&v, &admin, "élève", "/b/secret").await.is_empty());
        assert_eq!(names(&v, &admin, "archive", "/").await, vec!["/b/Archive"]);
        // eve may list /b and /b/Archive but not /b/secret
        v.chmod(&admin, &path("/b"), 0o755).await.unwrap();
        v.chmod(&admin, &path("/b/secret"), 0o711).await.unwrap();
        let eve = Caller {
            user: "eve".into(),
            is_admin: false,
            groups: vec![],
            primary_group: None,
            can_create_buckets: false,
            lock_tokens: Vec::new(),
        };
        let mut seen = names(&v, &eve, "report", "/").await;
        seen.sort();
        assert_eq!(seen, vec!["/b/Archive/Élève Report.txt"]);
        assert!(matches!(
            v.search(&eve, "report", &path("/b/secret"), None, 10).await,
            Err(VfsError::Forbidden(_))
        ));
        v.delete(&admin, &path("/b/Archive")).await.unwrap();
        assert!(names(&v, &admin, "report", "/b").await == vec!["/b/secret/report-x.txt"]);
        // paging: one at a time, newest first, until the cursor runs out
        let mut cursor = None;
        let mut all = Vec::new();
        loop {
            let page = v
                .search(&admin, "txt", &path("/"), cursor.as_deref(), 1)
                .await
                .unwrap();
            all.extend(page.hits.into_iter().map(|e| e.path.to_string()));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(all, vec!["/b/ab.txt", "/b/secret/report-x.txt"]);
        // an index out of step (here: rows written without the triggers) is found by fsck
        // and rebuilt by its repair
        assert_eq!(v.fsck(false).await.unwrap().search_index, 0);
        v.store.bench_drop_triggers().await.unwrap();
        v.mkdir(&admin, &path("/b/late")).await.unwrap();
        v.set_tags(&admin, &path("/b/ab.txt"), &[]).await.unwrap();
        assert!(names(&v, &admin, "late", "/").await.is_empty());
        assert_eq!(v.fsck(true).await.unwrap().search_index, 2);
        assert_eq!(v.fsck(false).await.unwrap().search_index, 0);
        assert_eq!(names(&v, &admin, "late", "/").await, vec!["/b/late"]);
        assert!(names(&v, &admin, "tag:year", "/").await.is_empty());
    }

    /// The benchmark of docs/search.md (`scripts/bench-search.sh`): fills
    /// `KURA_BENCH_SEARCH_N` files (default 1,000,000) and times the first page of several
    /// queries, as an administrator and as a user who may not read one folder in ten, and
    /// the move of a folder with and without the index's triggers.
    #[tokio::test]
    #[ignore = "a benchmark: run by scripts/bench-search.sh"]
    async fn bench_search() {
        use std::time::Instant;
        let n: i64 = std::env::var("KURA_BENCH_SEARCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let op = opendal::Operator::new(opendal::services::Memory::default()).unwrap();
        let staging = opendal::Operator::new(opendal::services::Memory::default()).unwrap();
        let store = crate::store::Store::in_memory().await.unwrap();
        let t = Instant::now();
        store.bench_fill(n).await.unwrap();
        println!("filled {n} files in {:.1} s", t.elapsed().as_secs_f64());
        let (index, all) = store.bench_sizes().await.unwrap();
        println!(
            "database {} MiB, of which the search index {} MiB ({} bytes per entry)",
            all >> 20,
            index >> 20,
            index / (n + 1001)
        );
        let v = Vfs::new(op, staging, store.clone(), None);
        let admin = Caller::admin("root");
        let eve = Caller {
            user: "eve".into(),
            is_admin: false,
            groups: vec![],
            primary_group: None,
            can_create_buckets: false,
            lock_tokens: Vec::new(),
        };
        let root = VPath::root();
        let d5 = VPath::parse("/bench/d5").unwrap();
        let queries = [
            ("report", &root),
            ("eleve", &root),
            ("-12345.TXT", &root),
            ("quarterly summary", &root),
            ("tag:project=p3", &root),
            ("tag:project", &root),
            ("plan tag:project=p1", &root),
            ("77", &root),
            ("zq", &root),
            ("nothing-like-this", &root),
            ("report", &d5),
        ];
        println!(
            "{:<28} {:>8} {:>6} {:>8} {:>6}",
            "query (scope)", "admin ms", "hits", "user ms", "hits"
        );
        for (q, scope) in queries {
            // one warm-up, then the best of three
            let mut best = [f64::MAX; 2];
            let mut hits = [0usize; 2];
            for (i, c) in [&admin, &eve].into_iter().enumerate() {
                for _ in 0..4 {
                    let t = Instant::now();
                    let page = v.search(c, q, scope, None, 50).await.unwrap();
                    best[i] = best[i].min(t.elapsed().as_secs_f64() * 1000.0);
                    hits[i] = page.hits.len();
                }
            }
            println!(
                "{:<28} {:>8.1} {:>6} {:>8.1} {:>6}",
                format!("{q} ({scope})"),
                best[0],
                hits[0],
                best[1],
                hits[1]
            );
        }
        let t = Instant::now();
        let drift = store.search_index_drift().await.unwrap();
        println!(
            "fsck's index check: {drift} entries out of step, {:.0} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
        let noop = || async { Ok::<(), crate::store::MetaError>(()) };
        let archive = crate::store::Archive::default();
        let rows = n / 1000;
        let t = Instant::now();
        store
            .move_tree(
                "/bench/d7",
                "/bench/moved",
                "/bench",
                None,
                (None, &archive),
                noop(),
            )
            .await
            .unwrap();
        let with = t.elapsed().as_secs_f64() * 1000.0;
        store.bench_drop_triggers().await.unwrap();
        let t = Instant::now();
        store
            .move_tree(
                "/bench/d8",
                "/bench/moved8",
                "/bench",
                None,
                (None, &archive),
                noop(),
            )
            .await
            .unwrap();
        let without = t.elapsed().as_secs_f64() * 1000.0;
        println!("move of a folder of {rows} files: {with:.1} ms with the index, {without:.1} ms without");
    }
}
