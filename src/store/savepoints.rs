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

/// Undoes and closes the writer's savepoint if one is open: true if it was, false if none was
/// (it was released or rolled back already). The probe runs inside a savepoint of its own, so
/// that on PostgreSQL, where a failed statement aborts the whole transaction, the error of a
/// missing savepoint is undone with it instead of ruining the transaction for the others.
pub(crate) async fn rollback_if_open_tx(tx: &mut DbTx) -> Result<bool, MetaError> {
    sqlx::query("SAVEPOINT probe").execute(&mut **tx).await?;
    match sqlx::query("ROLLBACK TO SAVEPOINT writer")
        .execute(&mut **tx)
        .await
    {
        // the probe, opened after the writer's savepoint, went with it
        Ok(_) => release_tx(tx).await.map(|()| true),
        Err(_) => {
            sqlx::query("ROLLBACK TO SAVEPOINT probe")
                .execute(&mut **tx)
                .await?;
            sqlx::query("RELEASE SAVEPOINT probe")
                .execute(&mut **tx)
                .await?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Probing the writer's savepoint after it was released (a member cancelled while its
    /// RELEASE ran) leaves the transaction usable for the members after it, on PostgreSQL
    /// too, where a bare `ROLLBACK TO` of a missing savepoint aborts the whole transaction.
    #[tokio::test]
    async fn probing_a_closed_savepoint_leaves_the_transaction_usable() {
        let store = Store::in_memory().await.unwrap();
        let mut tx = store.write_tx().await.unwrap();
        savepoint_tx(&mut tx).await.unwrap();
        release_tx(&mut tx).await.unwrap();
        assert!(!rollback_if_open_tx(&mut tx).await.unwrap());
        savepoint_tx(&mut tx).await.unwrap();
        assert!(rollback_if_open_tx(&mut tx).await.unwrap());
        // none open: a second probe finds none
        assert!(!rollback_if_open_tx(&mut tx).await.unwrap());
        // the next member opens its savepoint and runs its statements
        savepoint_tx(&mut tx).await.unwrap();
        sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
        release_tx(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
    }
}
