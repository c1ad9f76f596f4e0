//! Reads on the calling thread: on SQLite, the read-only queries every request makes (a path's
//! row and its ancestors', a folder's listing pages, dead properties) run on connections of
//! their own, synchronously, instead of through sqlx's pool, where each statement is a round
//! trip to the connection's worker thread and each row a conversion to sqlx's `Any` form. On
//! these machines the two thread wake-ups of a round trip cost more than the query itself.
//!
//! The same SQL text and arguments go to either path (`Store::read`), and each row is mapped
//! once, through `Columns`, whichever driver read it. A statement outside a transaction reads
//! the latest commit, as a pool connection's does. Anything unexpected here (a busy or
//! replaced file, a column of another type) falls back to the pool, so errors reach callers
//! as they always did.
//!
//! A runtime thread runs nothing else while a read runs: a read that took long (a listing
//! page) yields after it, and the queries of no bound size (a whole folder, as a share's
//! listing reads it) go through the pool (`read_pooled`), so a big listing does not hold up
//! the small requests queued behind it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sqlx::Row;

use super::{DbRow, MetaError, Store};

/// How long a read waits for a lock before falling back to the pool: a WAL reader waits only
/// for a crash recovery, never for writers.
const BUSY: Duration = Duration::from_millis(50);

/// A read that held the runtime thread longer than this (a listing page) yields after it, as
/// the pool's await did: the tasks queued behind it (small GETs) run before the next page.
const YIELD_AFTER: Duration = Duration::from_micros(100);

/// A bound value of a read.
#[derive(Clone, Copy, Debug)]
pub(super) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

/// A row's columns by index, whichever driver read it; `None`: absent or of another type.
pub(super) trait Columns {
    /// A TEXT column that is never NULL.
    fn text(&self, i: usize) -> Option<String>;
    /// A TEXT column that may be NULL.
    fn maybe(&self, i: usize) -> Option<Option<String>>;
    /// An INTEGER column.
    fn int(&self, i: usize) -> Option<i64>;
}

impl Columns for DbRow {
    fn text(&self, i: usize) -> Option<String> {
        self.try_get(i).ok()
    }
    fn maybe(&self, i: usize) -> Option<Option<String>> {
        self.try_get(i).ok()
    }
    fn int(&self, i: usize) -> Option<i64> {
        self.try_get(i).ok()
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Option<String> {
        self.get(i).ok()
    }
    fn maybe(&self, i: usize) -> Option<Option<String>> {
        self.get(i).ok()
    }
    fn int(&self, i: usize) -> Option<i64> {
        self.get(i).ok()
    }
}

/// The SQLite file's reading connections (none on PostgreSQL or in memory).
pub(super) struct Inline {
    file: Option<PathBuf>,
    idle: Mutex<Vec<Connection>>,
    /// Idle connections kept: two per core, as many threads as may read at once (runtime
    /// and blocking threads), so that a busy server does not open one per read.
    keep: usize,
}

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inline").field("file", &self.file).finish()
    }
}

impl Inline {
    pub(super) fn new(file: Option<&Path>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Inline {
            file: file.map(Path::to_path_buf),
            idle: Mutex::new(Vec::new()),
            keep: (2 * cores).max(4),
        }
    }

    /// The database file.
    #[cfg(test)]
    pub(super) fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn open(file: &Path) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY)?;
        // these connections only ever read
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// Runs `f` on an idle connection (opened if none is); `None` on PostgreSQL, in memory,
    /// or when anything failed (the connection is then dropped: the file may have been
    /// replaced by a restore).
    pub(super) fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let file = self.file.as_deref()?;
        let taken = self.idle.lock().ok()?.pop();
        let conn = match taken {
            Some(c) => c,
            None => match Self::open(file) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "inline reads: cannot open the database");
                    return None;
                }
            },
        };
        match f(&conn) {
            Ok(v) => {
                if let Ok(mut idle) = self.idle.lock() {
                    if idle.len() < self.keep {
                        idle.push(conn);
                    }
                }
                Some(v)
            }
            Err(e) => {
                tracing::debug!(error = %e, "inline read failed; reading through the pool");
                None
            }
        }
    }

    /// The rows of `sql` with `args` (numbered `$1`.. as sqlx binds them), each mapped by
    /// `map`; `None` to read through the pool instead.
    fn rows<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Columns) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.with(|conn| {
            let mut st = conn.prepare_cached(sql)?;
            for i in 1..=st.parameter_count() {
                // `$N` names the Nth argument wherever it appears, as in sqlx's binding
                let n = st
                    .parameter_name(i)
                    .and_then(|name| name.strip_prefix('$'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(i);
                match args.get(n.wrapping_sub(1)) {
                    Some(Arg::Text(s)) => st.raw_bind_parameter(i, s)?,
                    Some(Arg::Int(v)) => st.raw_bind_parameter(i, v)?,
                    None => return Err(rusqlite::Error::InvalidParameterCount(n, args.len())),
                }
            }
            let mut rows = st.raw_query();
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                match map(r) {
                    Some(v) => out.push(v),
                    None => return Err(rusqlite::Error::InvalidQuery),
                }
            }
            Ok(out)
        })
    }
}

impl Store {
    /// The rows of a read-only query whose size is bounded (one path, a page), each mapped
    /// by `map`: on the calling thread on SQLite (see the module), through the pool otherwise.
    pub(super) async fn read<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Columns) -> Option<T>,
    ) -> Result<Vec<T>, MetaError> {
        let started = std::time::Instant::now();
        let rows = match self.inline.rows(sql, args, &map) {
            Some(rows) => rows,
            None => self.read_pooled(sql, args, map).await?,
        };
        // a long read lets the tasks queued behind it run, whichever way it went (a pooled
        // one may have found its answer ready at every poll)
        if started.elapsed() > YIELD_AFTER {
            tokio::task::yield_now().await;
        }
        Ok(rows)
    }

    /// `read` through the pool, never on the calling thread: for a query of no bound size (a
    /// whole folder), which would hold a runtime thread for as long as it runs.
    pub(super) async fn read_pooled<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Columns) -> Option<T>,
    ) -> Result<Vec<T>, MetaError> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = match *a {
                Arg::Text(s) => q.bind(s),
                Arg::Int(v) => q.bind(v),
            };
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                map(r).ok_or_else(|| {
                    MetaError::Db(sqlx::Error::Decode(
                        format!("unexpected column types in: {sql}").into(),
                    ))
                })
            })
            .collect()
    }
}
