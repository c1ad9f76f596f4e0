//! SQL metadata store: users, entries and dead properties behind one small API.

mod audit;
mod blobs;
mod chunks;
mod copy;
mod customer_keys;
mod dialect;
mod entries;
mod generations;
mod groups;
mod health;
mod implicit;
mod inline;
mod install_checks;
mod keys;
mod leases;
mod locks;
mod marks;
mod move_seal;
mod multipart;
mod notify;
mod props;
mod replication;
mod replication_journal;
mod replication_mailbox;
mod replication_tombstones;
mod replication_waiting;
mod resumable;
mod retention;
mod savepoints;
#[cfg(test)]
mod scratch;
mod sealed_keys;
mod search;
mod search_pg;
mod sessions;
mod settings;
mod shares;
mod snapshot;
mod throttle;
mod tokens;
mod tree;
mod usage;
mod users;
mod versioning;
mod versions;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{ConnectOptions, Executor};

/// The database type every query names: sqlx's `Any`, SQLite or PostgreSQL by the URL.
pub(crate) type Db = sqlx::Any;
/// A pool of connections to the metadata database.
pub(crate) type DbPool = sqlx::AnyPool;
/// A row read from the metadata database.
pub(crate) type DbRow = sqlx::any::AnyRow;
/// A transaction on the metadata database.
pub(crate) type DbTx = sqlx::Transaction<'static, Db>;

/// The key of the transaction-scoped advisory lock every write transaction takes on
/// PostgreSQL (`write_tx`): "kura" in ASCII.
const WRITE_LOCK: i64 = 0x6b75_7261;

/// Longest wait for a PostgreSQL read connection (a pool's default is 30 s, spent retrying a
/// refused connection): reads of a database that is down fail after this, not half a minute.
const READ_WAIT: Duration = Duration::from_secs(2);

/// Longest wait for the writer connection on PostgreSQL: writers queue for it (each holding
/// it while it waits for the advisory lock), so a busy moment must not fail them.
const WRITE_WAIT: Duration = Duration::from_secs(10);

/// The engine behind a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    /// An SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL server (`postgres://...`).
    Postgres,
}

pub use audit::{AuditQuery, AuditRow};
pub use blobs::{is_blob_key, BLOBS_PREFIX};
pub use chunks::ChunkRow;
pub use copy::{copy_to_postgres, CopyEvent, CopyReport};
pub use entries::{AttrChange, CheckedRow, EntryRow};
pub use health::Job;
pub use implicit::{NOT_EMPTY, NO_PARENT};
pub use install_checks::{SERVER_KEY, STORAGE};
pub use keys::KeyRow;
pub use locks::{LockChange, LockRow};
pub(crate) use marks::mark_tx;
pub use marks::Mark;
pub use multipart::{PartRow, UploadRow};
pub use notify::{QueuedRow, RuleRow as NotifyRule};
pub use props::DeadProp;
pub use replication::{JournalRow, PeerRow, RuleRow};
pub use replication_mailbox::{MailboxRow, REFUSED_PAGE};
pub use replication_tombstones::{Presence, TombstoneRow};
pub use replication_waiting::UnmappedRow;
pub use resumable::ResumableRow;
pub use retention::{Retention, LOCK_SETTING};
pub(crate) use savepoints::{release_tx, rollback_if_open_tx, rollback_to_tx, savepoint_tx};
pub use sealed_keys::{KeptToConvert, ToConvert, WrappedRow};
pub use search::Probe;
pub use sessions::SessionInfo;
pub use shares::ShareRow;
pub use snapshot::{SnapshotObject, Whereabouts};
pub(crate) use tree::commit_file_tx;
pub use tree::{
    Committed, DeleteRules, MoveRules, WriteRules, ETAG_CHANGED, NOT_SEALED, SOURCE_CHANGED,
    UPLOAD_GONE,
};
pub use usage::Drift;
pub use users::UserRow;
pub use versioning::S3Versioning;
pub use versions::{parse_above, Archive, Policy, Purged, TrashRow, VersionRow};

/// Errors of the metadata layer.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database rejected or failed a query.
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// A migration could not be applied at start.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The group paying for the change is over its quota; nothing was changed.
    #[error("quota of group {0} exceeded")]
    QuotaExceeded(String),
    /// The row is still referenced (e.g. a group that owns buckets).
    #[error("{0}")]
    InUse(String),
    /// A row that must be unique already exists.
    #[error("already exists")]
    Duplicate,
    /// A row the change depends on is gone (a concurrent delete or move won the race).
    #[error("not found")]
    Gone,
    /// The tree changed since the checks in a way that forbids the change.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The feature is not written for this database engine yet (e.g. search on PostgreSQL).
    #[error("not available on this database: {0}")]
    Unsupported(&'static str),
    /// The operation was refused before it changed anything (e.g. `kura db migrate` into a
    /// database that is not empty).
    #[error("{0}")]
    Refused(String),
}

impl From<sqlx::Error> for MetaError {
    /// Every failed query passes here once: the place it is counted.
    fn from(e: sqlx::Error) -> Self {
        crate::metrics::get().db_error();
        MetaError::Db(e)
    }
}

impl MetaError {
    /// Whether the database could not be reached (down, restarting, no connection free in
    /// time): a passing state, which protocols answer with 503 so clients retry.
    pub fn is_unavailable(&self) -> bool {
        let MetaError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // PostgreSQL's connection exceptions (08) and shutdown or start-up refusals (57P)
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        }
    }
}

/// Shared handle to the metadata database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: DbPool,
    /// One connection for write transactions: writers queue here in order instead of
    /// sleeping and retrying on SQLite's busy handler (other processes still meet that), or
    /// on PostgreSQL for the advisory lock of `write_tx` (other gateways still meet that).
    writer: DbPool,
    engine: Engine,
    /// What is kept in memory under the generations (`generations.rs`).
    generation: std::sync::Arc<generations::Generation>,
    /// The SQLite file's connections for reads on the calling thread (`inline.rs`).
    inline: std::sync::Arc<inline::Inline>,
    /// The temporary folder or database of a unit test, removed with the last handle.
    #[cfg(test)]
    _scratch: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database and applies pending migrations.
    pub async fn open(db_file: &Path) -> Result<Self, MetaError> {
        Self::open_with(db_file, false).await
    }

    /// `open`; with `durable`, every commit fsyncs the write-ahead log (synchronous FULL), so
    /// a power cut cannot lose an acknowledged transaction (NORMAL: only a kill cannot).
    pub async fn open_with(db_file: &Path, durable: bool) -> Result<Self, MetaError> {
        sqlx::any::install_default_drivers();
        // created, switched to WAL (a property of the file) and migrated through the SQLite
        // driver itself; the store's connections then carry their per-connection PRAGMAs
        let opts = SqliteConnectOptions::from_str("sqlite:")?
            .filename(db_file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let setup = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&setup).await?;
        setup.close().await;
        let url = AnyConnectOptions::from_url(&opts.to_url_lossy())?;
        let pragmas: &'static str = if durable {
            "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL"
        } else {
            "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL"
        };
        let pool_of = |n: u32| {
            AnyPoolOptions::new()
                .max_connections(n)
                .after_connect(move |conn, _| {
                    Box::pin(async move { conn.execute(pragmas).await.map(drop) })
                })
                .connect_with(url.clone())
        };
        let pool = pool_of(8).await?;
        let writer = pool_of(1).await?;
        Ok(Store {
            pool,
            writer,
            engine: Engine::Sqlite,
            generation: Default::default(),
            inline: std::sync::Arc::new(inline::Inline::new(Some(db_file))),
            #[cfg(test)]
            _scratch: None,
        })
    }

    /// Opens the store a `database_url` names: `postgres://...` connects to PostgreSQL and
    /// applies `migrations_postgres/`; anything else is an SQLite file path.
    pub async fn connect(url: &str, durable: bool) -> Result<Self, MetaError> {
        if !is_postgres(url) {
            let file = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            return Self::open_with(Path::new(file), durable).await;
        }
        sqlx::any::install_default_drivers();
        // the server's notices (e.g. the migrator's "already exists, skipping") stay out of
        // the log unless they are warnings
        let mut url = url::Url::parse(url)
            .map_err(|e| MetaError::Db(sqlx::Error::Configuration(e.into())))?;
        if !url.query_pairs().any(|(k, _)| k == "options") {
            url.query_pairs_mut()
                .append_pair("options", "-c client_min_messages=warning");
        }
        let url = url.as_str();
        // a database that does not answer fails a request in seconds rather than hanging it
        let pool_of = |n: u32, wait: Duration| {
            AnyPoolOptions::new()
                .max_connections(n)
                .acquire_timeout(wait)
                .connect(url)
        };
        let pool = pool_of(16, READ_WAIT).await?;
        sqlx::migrate!("./migrations_postgres").run(&pool).await?;
        // writers queue for one connection here, as on SQLite, so that those waiting for the
        // advisory lock never hold the connections a writer's own reads need
        let writer = pool_of(1, WRITE_WAIT).await?;
        Ok(Store {
            writer,
            pool,
            engine: Engine::Postgres,
            generation: Default::default(),
            inline: std::sync::Arc::new(inline::Inline::new(None)),
            #[cfg(test)]
            _scratch: None,
        })
    }
}

/// An SQLite file opened as it is, for reading it whole (`kura db migrate`): never created,
/// never migrated, one connection.
async fn open_as_is(file: &Path) -> Result<DbPool, MetaError> {
    sqlx::any::install_default_drivers();
    let opts = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    let url = AnyConnectOptions::from_url(&opts.to_url_lossy())?;
    Ok(AnyPoolOptions::new()
        .max_connections(1)
        .connect_with(url)
        .await?)
}

/// Whether a `database_url` names a PostgreSQL server.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Store {
    /// A transaction that serialises with every other write transaction. SQLite: `BEGIN
    /// IMMEDIATE` on the one writer connection takes the write lock at once (SQLite cannot
    /// upgrade a reading transaction once another writer has committed). PostgreSQL: `BEGIN`
    /// (READ COMMITTED) and a transaction-scoped advisory lock, one key for every gateway,
    /// released by COMMIT or ROLLBACK (docs/scale-out.md).
    pub(crate) async fn write_tx(&self) -> Result<DbTx, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => {
                let mut tx = self.writer.begin().await?;
                // in FROM: a void result cannot be read through `Any`
                sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }
}

impl Store {
    /// Whether the store runs on PostgreSQL (several gateways may share it).
    pub fn on_postgres(&self) -> bool {
        self.engine == Engine::Postgres
    }

    /// Refuses, with `Unsupported(what)`, on PostgreSQL.
    fn sqlite_only(&self, what: &'static str) -> Result<(), MetaError> {
        match self.engine {
            Engine::Sqlite => Ok(()),
            Engine::Postgres => Err(MetaError::Unsupported(what)),
        }
    }
}

/// Bounds of the half-open range holding every descendant of `path`.
fn below(path: &str) -> (String, String) {
    (format!("{path}/"), format!("{path}0"))
}

/// The folder holding `path` ("/" for a top-level entry).
fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Milliseconds since the Unix epoch, the time unit of every stored timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn map_unique(e: sqlx::Error) -> MetaError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => MetaError::Duplicate,
        _ => e.into(),
    }
}
