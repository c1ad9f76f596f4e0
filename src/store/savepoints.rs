//! The savepoint of one writer's statements inside a transaction shared with others (the
//! group commit of `src/vfs/group.rs`), kept or undone on its own. Writers take turns, so one
//! name serves: at most one such savepoint is open at a time.

use super::{DbTx, MetaError};

/// Opens the writer's savepoint.
pub(crate) async fn savepoint_tx(tx: &mut DbTx) -> Result<(), MetaError> {
    sqlx::query("SAVEPOINT writer").execute(&mut **tx).await?;
    Ok(())
}

/// Keeps what was done since the savepoint, as part of the enclosing transaction.
pub(crate) async fn release_tx(tx: &mut DbTx) -> Result<(), MetaError> {
    sqlx::query("RELEASE SAVEPOINT writer")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Undoes what was done since the savepoint, and closes it; an error when none is open.
pub(crate) async fn rollback_to_tx(tx: &mut DbTx) -> Result<(), MetaError> {
    sqlx::query("ROLLBACK TO SAVEPOINT writer")
        .execute(&mut **tx)
        .await?;
    release_tx(tx).await
}
