//! SQL metadata store: users, entries and dead properties behind one small API.

mod audit;
mod chunks;
mod customer_keys;
mod entries;
mod generations;
mod groups;
mod implicit;
mod keys;
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
mod sealed_keys;
mod search;
mod sessions;
mod settings;
mod shares;
mod snapshot;
mod tokens;
mod tree;
mod usage;
mod users;
mod versioning;
mod versions;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub use audit::{AuditQuery, AuditRow};
pub use chunks::ChunkRow;
pub use entries::{AttrChange, CheckedRow, EntryRow};
pub use implicit::{NOT_EMPTY, NO_PARENT};
pub use keys::KeyRow;
pub use locks::{LockChange, LockRow};
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
pub use sealed_keys::{KeptToConvert, ToConvert, WrappedRow};
pub use search::Probe;
pub use sessions::SessionInfo;
pub use shares::ShareRow;
pub use snapshot::{SnapshotObject, Whereabouts};
pub use tree::{
    Committed, DeleteRules, MoveRules, WriteRules, ETAG_CHANGED, NOT_SEALED, SOURCE_CHANGED,
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
}

impl From<sqlx::Error> for MetaError {
    /// Every failed query passes here once: the place it is counted.
    fn from(e: sqlx::Error) -> Self {
        crate::metrics::get().db_error();
        MetaError::Db(e)
    }
}

/// Shared handle to the metadata database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// One connection for write transactions: writers queue here in order instead of
    /// sleeping and retrying on SQLite's busy handler (other processes still meet that).
    writer: SqlitePool,
    /// The generations, read on a connection of its own (`generations.rs`).
    generation: std::sync::Arc<generations::Generation>,
    /// The temporary folder of a unit test's database, removed with the last handle.
    #[cfg(test)]
    _dir: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database and applies pending migrations.
    pub async fn open(db_file: &Path) -> Result<Self, MetaError> {
        Self::open_with(db_file, false).await
    }

    /// `open`; with `durable`, every commit fsyncs the write-ahead log (synchronous FULL), so
    /// a power cut cannot lose an acknowledged transaction (NORMAL: only a kill cannot).
    pub async fn open_with(db_file: &Path, durable: bool) -> Result<Self, MetaError> {
        let sync = if durable {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        };
        let opts = SqliteConnectOptions::from_str("sqlite:")?
            .filename(db_file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        Ok(Store {
            pool,
            writer,
            generation: std::sync::Arc::new(generations::Generation::new(db_file)),
            #[cfg(test)]
            _dir: None,
        })
    }

    /// A throwaway database for unit tests, in a temporary folder and opened as `open` does
    /// (readers beside the one writer: the core reads the locks while a write transaction is
    /// open, which a single in-memory connection would deadlock on).
    #[cfg(test)]
    pub async fn in_memory() -> Result<Self, MetaError> {
        let dir = tempfile::tempdir().map_err(|e| MetaError::Db(sqlx::Error::Io(e)))?;
        let store = Self::open(&dir.path().join("kura.db")).await?;
        Ok(Store {
            _dir: Some(std::sync::Arc::new(dir)),
            ..store
        })
    }

    /// The database file of a unit test's store, for a second handle on it (another process).
    #[cfg(test)]
    pub fn file_for_tests(&self) -> std::path::PathBuf {
        self.generation.file().to_path_buf()
    }
}

impl Store {
    /// A transaction that takes the write lock at once: SQLite cannot upgrade a reading
    /// transaction once another writer has committed, so read-then-write transactions would
    /// fail under concurrency. (On PostgreSQL this is a plain BEGIN; the quota update is a
    /// single conditional UPDATE either way.)
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
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
