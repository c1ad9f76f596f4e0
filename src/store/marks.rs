//! Commit marks: which journaled storage commit of a process was the last to commit.

use super::DbTx;

use super::{MetaError, Store};

/// The journal entry a transaction completes (`src/vfs/journal.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The process that journaled it.
    pub owner: String,
    /// Its number within that process.
    pub seq: String,
}

/// Records `mark` in the transaction that completes it.
pub(crate) async fn mark_tx(tx: &mut DbTx, mark: Option<&Mark>) -> Result<(), MetaError> {
    let Some(m) = mark else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO commit_marks (owner, seq) VALUES ($1, $2)
         ON CONFLICT (owner) DO UPDATE SET seq = excluded.seq",
    )
    .bind(&m.owner)
    .bind(&m.seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The last committed journal number of `owner`.
    pub async fn mark_of(&self, owner: &str) -> Result<Option<String>, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM commit_marks WHERE owner = $1")
                .bind(owner)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Drops every mark once the journals of earlier runs are resolved (start-up).
    pub async fn forget_marks(&self) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM commit_marks")
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
