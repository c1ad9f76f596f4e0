//! Tree transactions: recording, moving, copying and deleting a file or a whole folder in one
//! transaction that repeats its checks inside, charges quotas and journals for replication,
//! with the storage step run before the commit.

use std::collections::BTreeMap;

use super::DbTx;

use super::audit::record_tx;
use super::blobs::is_blob_key;
use super::entries::{entry_cols, insert_folder_tx, EntryRow};
use super::implicit::{insert_parents_tx, prune_tx, require_empty_tx, NO_PARENT};
use super::marks::mark_tx;
use super::replication_journal::{journal_path_tx, journal_tree_tx};
use super::replication_tombstones::tombstone_tree_tx;
use super::retention::default_retention_tx;
use super::usage::{bucket_of, charge_tx, payer_tx, tree_usage_tx};
use super::versioning::{hide_nulls_tx, state_tx, S3Versioning};
use super::versions::{
    archive_file_tx, batch_rows_tx, charge_versions_tx, drop_row_tx, forget_history_tx, promote_tx,
    require_no_history_tx, trash_tree_tx, untrash_tx, Archive, Purged,
};
use super::{below, map_unique, parent_of, Mark, MetaError, Store};

/// What a copy's transaction checks and makes besides the rows: the (path, etag, mtime) rows
/// copied, the missing parents, its journal mark, what it keeps of a replaced file, and the
/// (copied file's path, new blob) of every copy on an object store.
pub type CopyBasis<'a> = (
    &'a [(String, String, i64)],
    &'a [EntryRow],
    Option<&'a Mark>,
    &'a Archive,
    &'a [(String, String)],
);

/// Why `commit_file` did not record a file.
#[derive(Debug)]
pub enum Committed<E> {
    /// The database refused (over quota, or failed).
    Meta(MetaError),
    /// The storage commit failed.
    Finish(E),
}

impl From<Committed<MetaError>> for MetaError {
    /// A change with no storage step of its own fails only in the database.
    fn from(e: Committed<MetaError>) -> Self {
        match e {
            Committed::Meta(m) | Committed::Finish(m) => m,
        }
    }
}

/// What a file commit requires, checked inside its transaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteRules<'a> {
    /// Nothing may be at the path (If-None-Match: *): `Duplicate` otherwise.
    pub create_new: bool,
    /// The file at the path must still have this ETag (If-Match): `Conflict(ETAG_CHANGED)`
    /// otherwise, a missing file included.
    pub if_match: Option<&'a str>,
    /// Missing folders above the file, outermost first, made implicit in the same commit.
    pub parents: &'a [EntryRow],
    /// The replaced file's tags and description (`x-amz-tagging`, `x-kura-description` in
    /// its headers) are kept over the new headers, as they are when the commit runs.
    pub keep_annotations: bool,
    /// The multipart upload this commit completes: its row is deleted in the commit, and a
    /// commit that finds it gone (another completion or an abort won) records nothing,
    /// `Conflict(UPLOAD_GONE)`.
    pub completes_upload: Option<&'a str>,
}

/// The multipart upload a completion would end was ended meanwhile (completed or aborted).
pub const UPLOAD_GONE: &str = "the multipart upload was completed or aborted meanwhile";

/// What a delete's transaction checks besides the entry still being there.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteRules<'a> {
    /// The node the deletion came from (None: this node), journaled with it.
    pub origin: Option<&'a str>,
    /// Only implicit folders may be below (DeleteBucket): `Conflict(NOT_EMPTY)` otherwise.
    pub if_empty: bool,
    /// The file must still have this ETag (a peer's tombstone deletes only the version it
    /// saw): `Conflict(ETAG_CHANGED)` otherwise.
    pub if_match: Option<&'a str>,
    /// With `if_match`: the file must still have this modification time too (the same bytes
    /// written again are another version): `Conflict(ETAG_CHANGED)` otherwise.
    pub if_mtime: Option<i64>,
}

/// What a move's transaction checks besides the source still being there.
#[derive(Clone, Copy, Debug, Default)]
pub struct MoveRules<'a> {
    /// The source must be a file that still has this ETag: `Conflict(ETAG_CHANGED)` otherwise
    /// (a replication conflict moves aside only the version it judged).
    pub if_match: Option<&'a str>,
    /// Nothing may be at the destination: `Duplicate` otherwise.
    pub create_new: bool,
    /// Every file moved, and every kept version that follows them, must be recorded sealed
    /// and not carry this conversion mark (a move into an encrypted bucket):
    /// `Conflict(NOT_SEALED)` otherwise.
    pub sealed_only: Option<&'a str>,
}

/// Why a move into an encrypted bucket refuses: a file it takes along (or one of their kept
/// versions) was written plain, or is switching form, since the move sealed them.
pub const NOT_SEALED: &str = "a file moved into an encrypted bucket was written plain meanwhile";

/// Why a commit with `WriteRules::if_match` refuses: the file changed since the checks.
pub const ETAG_CHANGED: &str = "the file changed since the write began";

/// Fails unless `parent` is a recorded folder (the root always is), inside the change's
/// transaction: a folder deleted or moved since the checks makes the change fail, not dangle.
async fn require_folder_tx(tx: &mut DbTx, parent: &str) -> Result<(), MetaError> {
    if parent == "/" {
        return Ok(());
    }
    let is_dir: Option<i64> = sqlx::query_scalar("SELECT is_dir FROM entries WHERE path = $1")
        .bind(parent)
        .fetch_optional(&mut **tx)
        .await?;
    match is_dir {
        Some(1) => Ok(()),
        _ => Err(MetaError::Conflict(NO_PARENT)),
    }
}

/// Whether `path` is recorded, and as a folder, inside the change's transaction.
async fn kind_tx(tx: &mut DbTx, path: &str) -> Result<Option<bool>, MetaError> {
    let is_dir: Option<i64> = sqlx::query_scalar("SELECT is_dir FROM entries WHERE path = $1")
        .bind(path)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(is_dir.map(|d| d != 0))
}

/// The checks of a move or copy repeated inside its transaction: the source is still there,
/// the destination's folder too, and nothing but a file replaced by a file is in the way.
async fn transfer_checks_tx(
    tx: &mut DbTx,
    from: &str,
    to: &str,
    to_parent: &str,
) -> Result<(), MetaError> {
    let src = kind_tx(tx, from).await?.ok_or(MetaError::Gone)?;
    require_folder_tx(tx, to_parent).await?;
    match kind_tx(tx, to).await? {
        Some(dst) if dst || src => Err(MetaError::Duplicate),
        _ => Ok(()),
    }
}

async fn delete_tree_tx(tx: &mut DbTx, path: &str, origin: Option<&str>) -> Result<u64, MetaError> {
    journal_tree_tx(tx, path, origin).await?;
    let (lo, hi) = below(path);
    let (bytes, files) = tree_usage_tx(tx, path).await?;
    let payer = payer_tx(tx, path).await?;
    charge_tx(tx, payer.as_deref(), -bytes, -files).await?;
    forget_history_tx(tx, path).await?;
    let n = sqlx::query("DELETE FROM entries WHERE path = $1 OR (path >= $2 AND path < $3)")
        .bind(path)
        .bind(&lo)
        .bind(&hi)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM dead_props WHERE path = $1 OR (path >= $2 AND path < $3)")
        .bind(path)
        .bind(&lo)
        .bind(&hi)
        .execute(&mut **tx)
        .await?;
    Ok(n)
}

/// Moves an entry and everything below it (rows and properties) in one transaction,
/// replacing whatever was at the destination.
/// `regroup` gives the moved rows a new group (a move into another bucket).
async fn move_tree_tx(
    tx: &mut DbTx,

    from: &str,
    to: &str,
    to_parent: &str,
    regroup: Option<Option<&str>>,
    archive: &Archive,
) -> Result<(), MetaError> {
    if let Some(key) = &archive.key {
        archive_file_tx(&mut *tx, to, key, super::now_ms()).await?;
    }
    delete_tree_tx(&mut *tx, to, None).await?;
    journal_tree_tx(&mut *tx, from, None).await?;
    tombstone_tree_tx(&mut *tx, from, None).await?;
    // a move into another bucket is paid by the destination's group, credited to the source's
    let from_payer = payer_tx(&mut *tx, from).await?;
    // a folder that becomes a bucket is paid by the group it ends up with
    let to_payer = if bucket_of(to) == Some(to) {
        match regroup {
            Some(g) => g.map(str::to_string),
            None => {
                sqlx::query_scalar::<_, Option<String>>("SELECT grp FROM entries WHERE path = $1")
                    .bind(from)
                    .fetch_optional(&mut **tx)
                    .await?
                    .flatten()
            }
        }
    } else {
        payer_tx(&mut *tx, to).await?
    };
    if from_payer != to_payer {
        let (bytes, files) = tree_usage_tx(&mut *tx, from).await?;
        charge_tx(&mut *tx, to_payer.as_deref(), bytes, files).await?;
        charge_tx(&mut *tx, from_payer.as_deref(), -bytes, -files).await?;
    }
    let (lo, hi) = below(from);
    let cut = i32::try_from(from.chars().count() + 1).unwrap_or(i32::MAX);
    sqlx::query("UPDATE entries SET path = $1, parent = $2, origin = NULL WHERE path = $3")
        .bind(to)
        .bind(to_parent)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE entries SET path = $1 || substr(path, $2), parent = $3 || substr(parent, $4),
               origin = NULL WHERE path >= $5 AND path < $6",
    )
    .bind(to)
    .bind(cut)
    .bind(to)
    .bind(cut)
    .bind(&lo)
    .bind(&hi)
    .execute(&mut **tx)
    .await?;
    if let Some(grp) = regroup {
        let (nlo, nhi) = below(to);
        sqlx::query("UPDATE entries SET grp = $1 WHERE path = $2 OR (path >= $3 AND path < $4)")
            .bind(grp)
            .bind(to)
            .bind(&nlo)
            .bind(&nhi)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
            "UPDATE dead_props SET path = $1 || substr(path, $2) WHERE path = $3 OR (path >= $4 AND path < $5)",
        )
        .bind(to)
        .bind(cut)
        .bind(from)
        .bind(&lo)
        .bind(&hi)
        .execute(&mut **tx)
        .await?;
    // a renamed file keeps its history: its noncurrent versions follow it (the trash stays
    // where the deletes happened)
    sqlx::query(
        "UPDATE versions SET path = $1 || substr(path, $2), bucket = $6
         WHERE batch IS NULL AND (path = $3 OR (path >= $4 AND path < $5))",
    )
    .bind(to)
    .bind(cut)
    .bind(from)
    .bind(&lo)
    .bind(&hi)
    .bind(bucket_of(to).unwrap_or(""))
    .execute(&mut **tx)
    .await?;
    journal_tree_tx(&mut *tx, to, None).await?;
    Ok(())
}

/// Copies an entry, everything below it and their dead properties to `to` in one
/// transaction, replacing what was there; copies get `owner`, group `grp` (modes are kept)
/// and the time `now_ms`.
async fn copy_tree_tx(
    tx: &mut DbTx,

    from: &str,
    to: &str,
    to_parent: &str,
    (owner, grp): (&str, Option<&str>),
    now_ms: i64,
    archive: &Archive,
) -> Result<(), MetaError> {
    if let Some(key) = &archive.key {
        archive_file_tx(&mut *tx, to, key, now_ms).await?;
    }
    // copies are new versions: fresh ids in an S3 versioning-enabled bucket, else null ones
    let fresh = state_tx(&mut *tx, to).await? == Some(S3Versioning::Enabled);
    if !fresh {
        hide_nulls_tx(&mut *tx, to).await?;
    }
    delete_tree_tx(&mut *tx, to, None).await?;
    let (bytes, files) = tree_usage_tx(&mut *tx, from).await?;
    let payer = if bucket_of(to) == Some(to) {
        grp.map(str::to_string)
    } else {
        payer_tx(&mut *tx, to).await?
    };
    charge_tx(&mut *tx, payer.as_deref(), bytes, files).await?;
    let (lo, hi) = below(from);
    let cut = i32::try_from(from.chars().count() + 1).unwrap_or(i32::MAX);
    sqlx::query(super::dialect::with_new_id(
            tx,
            "INSERT INTO entries (path, parent, is_dir, size, mtime_ms, etag, content_type, owner, headers, grp, mode, version_id, sealed)
             SELECT $1, $2, is_dir, size, $3, etag, content_type, $4, headers, $5, mode,
                    CASE WHEN is_dir = 0 AND $7 THEN {new_id} END, sealed
             FROM entries WHERE path = $6",
            "$3",
        ))
        .bind(to)
        .bind(to_parent)
        .bind(now_ms)
        .bind(owner)
        .bind(grp)
        .bind(from)
        .bind(fresh)
        .execute(&mut **tx)
        .await?;
    sqlx::query(super::dialect::with_new_id(
            tx,
            "INSERT INTO entries (path, parent, is_dir, size, mtime_ms, etag, content_type, owner, headers, grp, mode, version_id, sealed)
             SELECT $1 || substr(path, $2), $3 || substr(parent, $4), is_dir, size, $5, etag,
                    content_type, $6, headers, $7, mode,
                    CASE WHEN is_dir = 0 AND $10 THEN {new_id} END, sealed
             FROM entries WHERE path >= $8 AND path < $9",
            "$5",
        ))
        .bind(to)
        .bind(cut)
        .bind(to)
        .bind(cut)
        .bind(now_ms)
        .bind(owner)
        .bind(grp)
        .bind(&lo)
        .bind(&hi)
        .bind(fresh)
        .execute(&mut **tx)
        .await?;
    if fresh {
        default_retention_tx(&mut *tx, to, now_ms).await?;
    }
    sqlx::query(
        "INSERT INTO dead_props (path, namespace, name, prefix, xml)
             SELECT $1 || substr(path, $2), namespace, name, prefix, xml FROM dead_props
             WHERE path = $3 OR (path >= $4 AND path < $5)",
    )
    .bind(to)
    .bind(cut)
    .bind(from)
    .bind(&lo)
    .bind(&hi)
    .execute(&mut **tx)
    .await?;
    journal_tree_tx(&mut *tx, to, None).await?;
    Ok(())
}

/// Why a copy's transaction refuses: the source changed while its bytes were copied (the core
/// copies again).
pub const SOURCE_CHANGED: &str = "the source changed during the copy";

/// Whether the entry at `from` and everything below it are still the `copied` (path, etag,
/// mtime) rows, in path order, that a copy's bytes were taken from: the time too, since the
/// same bytes written again (an empty file, say) would hide a change between (ABA).
async fn same_tree_tx(
    tx: &mut DbTx,
    from: &str,
    copied: &[(String, String, i64)],
) -> Result<bool, MetaError> {
    let (lo, hi) = below(from);
    let now: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT path, etag, mtime_ms FROM entries WHERE path = $1 OR (path >= $2 AND path < $3) ORDER BY path",
    )
    .bind(from)
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&mut **tx)
    .await?;
    Ok(now == copied)
}

impl Store {
    /// Inserts or replaces a file row (the commit step of an upload).
    #[cfg(test)]
    pub async fn put_file(&self, e: &EntryRow) -> Result<(), MetaError> {
        self.commit_file(e, WriteRules::default(), None, &Archive::default(), async {
            Ok::<(), MetaError>(())
        })
        .await
        .map_err(MetaError::from)
    }

    /// Records a file (new or replaced) and charges its bucket's group, then runs `finish`
    /// (the storage commit) inside the same transaction: over quota, or if `finish` fails,
    /// nothing is recorded. With `create_new`, an entry already at the path (committed by a
    /// concurrent upload since the checks) refuses with `Duplicate` and nothing is replaced.
    /// A parent folder removed since the checks, or a folder now at the path, refuse too;
    /// `rules` adds the preconditions and the implicit parents to make. `archive` keeps the
    /// replaced file as a noncurrent version (its bytes at `archive.key`).
    pub async fn commit_file<E, F>(
        &self,
        e: &EntryRow,
        rules: WriteRules<'_>,
        mark: Option<&Mark>,
        archive: &Archive,
        finish: F,
    ) -> Result<(), Committed<E>>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        let mut tx = self
            .write_tx()
            .await
            .map_err(|e| Committed::Meta(e.into()))?;
        commit_file_tx(&mut tx, e, rules, mark, archive)
            .await
            .map_err(Committed::Meta)?;
        finish.await.map_err(Committed::Finish)?;
        tx.commit().await.map_err(|e| Committed::Meta(e.into()))?;
        Ok(())
    }

    /// Inserts a folder row with nothing to do in storage (fsck, tests); `Duplicate` if the
    /// path exists.
    pub async fn insert_dir(&self, e: &EntryRow) -> Result<(), MetaError> {
        self.mkdir_with(e, &[], None, async { Ok::<(), MetaError>(()) })
            .await
            .map_err(MetaError::from)
    }

    /// Records a new folder in a folder that still exists, then runs `finish` (making it in
    /// storage) inside the same transaction; `Duplicate` if the path exists. `parents` are
    /// missing folders above it (outermost first), made implicit in the same transaction.
    pub async fn mkdir_with<E, F>(
        &self,
        e: &EntryRow,
        parents: &[EntryRow],
        mark: Option<&Mark>,
        finish: F,
    ) -> Result<(), Committed<E>>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        let meta = |e: MetaError| Committed::Meta(e);
        let mut tx = self
            .write_tx()
            .await
            .map_err(|e| Committed::Meta(e.into()))?;
        insert_parents_tx(&mut tx, parents).await.map_err(meta)?;
        require_folder_tx(&mut tx, &e.parent).await.map_err(meta)?;
        insert_folder_tx(&mut tx, e, false)
            .await
            .map_err(|e| Committed::Meta(map_unique(e)))?;
        mark_tx(&mut tx, mark).await.map_err(meta)?;
        record_tx(&mut tx, "mkdir", Some(&e.path), None)
            .await
            .map_err(meta)?;
        finish.await.map_err(Committed::Finish)?;
        tx.commit().await.map_err(|e| Committed::Meta(e.into()))
    }

    /// Removes an entry, everything below it and their properties, in one transaction;
    /// `origin` is the peer node the deletion came from (None: this node).
    pub async fn delete_tree(&self, path: &str, origin: Option<&str>) -> Result<u64, MetaError> {
        let none = async { Ok::<(), MetaError>(()) };
        let (n, _) = self
            .delete_tree_with(
                path,
                DeleteRules {
                    origin,
                    ..Default::default()
                },
                None,
                None,
                none,
            )
            .await
            .map_err(MetaError::from)?;
        Ok(n)
    }

    /// `delete_tree` that runs `finish` (the storage delete) inside the transaction; `Gone`
    /// when nothing is there any more (a concurrent delete or move won). With `if_empty`,
    /// `Conflict(NOT_EMPTY)` unless only implicit folders are below (DeleteBucket). The
    /// implicit folders above that it leaves empty go too: returns the rows removed and those
    /// folders' paths, deepest first. With `trash` (a delete id, also the key of its bytes),
    /// what is deleted goes into the trash as one delete.
    pub async fn delete_tree_with<E, F>(
        &self,
        path: &str,
        rules: DeleteRules<'_>,
        mark: Option<&Mark>,
        trash: Option<&str>,
        finish: F,
    ) -> Result<(u64, Vec<String>), Committed<E>>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        let meta = |e: MetaError| Committed::Meta(e);
        let mut tx = self
            .write_tx()
            .await
            .map_err(|e| Committed::Meta(e.into()))?;
        let (origin, if_empty) = (rules.origin, rules.if_empty);
        if let Some(want) = rules.if_match {
            let held: Option<(String, i64)> =
                sqlx::query_as("SELECT etag, mtime_ms FROM entries WHERE path = $1 AND is_dir = 0")
                    .bind(path)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| meta(e.into()))?;
            match held {
                None => return Err(Committed::Meta(MetaError::Gone)),
                Some((e, m)) if e != want || rules.if_mtime.is_some_and(|t| t != m) => {
                    return Err(Committed::Meta(MetaError::Conflict(ETAG_CHANGED)))
                }
                Some(_) => {}
            }
        }
        if if_empty {
            require_empty_tx(&mut tx, path).await.map_err(meta)?;
            if bucket_of(path) == Some(path) {
                require_no_history_tx(&mut tx, path).await.map_err(meta)?;
            }
        }
        if let Some(batch) = trash {
            trash_tree_tx(&mut tx, path, batch, super::now_ms())
                .await
                .map_err(meta)?;
        }
        tombstone_tree_tx(&mut tx, path, origin)
            .await
            .map_err(meta)?;
        let n = delete_tree_tx(&mut tx, path, origin).await.map_err(meta)?;
        if n == 0 {
            return Err(Committed::Meta(MetaError::Gone));
        }
        let pruned = prune_tx(&mut tx, parent_of(path)).await.map_err(meta)?;
        super::locks::delete_locks_below_tx(&mut tx, path)
            .await
            .map_err(meta)?;
        mark_tx(&mut tx, mark).await.map_err(meta)?;
        record_tx(&mut tx, "delete", Some(path), None)
            .await
            .map_err(meta)?;
        finish.await.map_err(Committed::Finish)?;
        tx.commit().await.map_err(|e| Committed::Meta(e.into()))?;
        Ok((n, pruned))
    }

    /// Moves an entry and everything below it (rows and properties) in one transaction,
    /// replacing whatever was at the destination.
    /// `regroup` gives the moved rows a new group (a move into another bucket). The implicit
    /// folders the move leaves empty go too: returns their paths, deepest first.
    #[cfg(test)]
    pub async fn move_tree<E, F>(
        &self,

        from: &str,
        to: &str,
        to_parent: &str,
        regroup: Option<Option<&str>>,
        (mark, archive): (Option<&Mark>, &Archive),
        finish: F,
    ) -> Result<Vec<String>, Committed<E>>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        let rules = MoveRules::default();
        self.move_tree_with(from, to, to_parent, regroup, (mark, archive), rules, finish)
            .await
    }

    /// `move_tree` with the preconditions `rules`, checked inside its transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn move_tree_with<E, F>(
        &self,
        from: &str,
        to: &str,
        to_parent: &str,
        regroup: Option<Option<&str>>,
        (mark, archive): (Option<&Mark>, &Archive),
        rules: MoveRules<'_>,
        finish: F,
    ) -> Result<Vec<String>, Committed<E>>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        let mut tx = self
            .write_tx()
            .await
            .map_err(|e| Committed::Meta(e.into()))?;
        transfer_checks_tx(&mut tx, from, to, to_parent)
            .await
            .map_err(Committed::Meta)?;
        if let Some(want) = rules.if_match {
            let etag: Option<String> =
                sqlx::query_scalar("SELECT etag FROM entries WHERE path = $1 AND is_dir = 0")
                    .bind(from)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| Committed::Meta(e.into()))?;
            if etag.as_deref() != Some(want) {
                return Err(Committed::Meta(MetaError::Conflict(ETAG_CHANGED)));
            }
        }
        if rules.create_new
            && kind_tx(&mut tx, to)
                .await
                .map_err(Committed::Meta)?
                .is_some()
        {
            return Err(Committed::Meta(MetaError::Duplicate));
        }
        if let Some(mark) = rules.sealed_only {
            all_sealed_tx(&mut tx, from, mark)
                .await
                .map_err(Committed::Meta)?;
        }
        move_tree_tx(&mut tx, from, to, to_parent, regroup, archive)
            .await
            .map_err(Committed::Meta)?;
        super::locks::delete_locks_below_tx(&mut tx, from)
            .await
            .map_err(Committed::Meta)?;
        let pruned = prune_tx(&mut tx, parent_of(from))
            .await
            .map_err(Committed::Meta)?;
        mark_tx(&mut tx, mark).await.map_err(Committed::Meta)?;
        record_tx(&mut tx, "move", Some(from), Some(to))
            .await
            .map_err(Committed::Meta)?;
        finish.await.map_err(Committed::Finish)?;
        tx.commit().await.map_err(|e| Committed::Meta(e.into()))?;
        Ok(pruned)
    }

    /// Copies an entry, everything below it and their dead properties to `to` in one
    /// transaction, replacing what was there; copies get `owner`, group `grp` (modes are kept)
    /// and the time `now_ms`. `copied` are the (path, etag) rows the bytes were copied from:
    /// if the source changed since, `Conflict(SOURCE_CHANGED)` and nothing is written.
    /// `parents` are missing folders above `to` (outermost first), made implicit in the same
    /// transaction, so a refused copy leaves none behind.
    pub async fn copy_tree<E, F>(
        &self,
        (from, to, to_parent): (&str, &str, &str),
        (owner, grp): (&str, Option<&str>),
        now_ms: i64,
        (copied, parents, mark, archive, blobs): CopyBasis<'_>,
        finish: F,
    ) -> Result<(), Committed<E>>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        let mut tx = self
            .write_tx()
            .await
            .map_err(|e| Committed::Meta(e.into()))?;
        insert_parents_tx(&mut tx, parents)
            .await
            .map_err(Committed::Meta)?;
        transfer_checks_tx(&mut tx, from, to, to_parent)
            .await
            .map_err(Committed::Meta)?;
        if !same_tree_tx(&mut tx, from, copied)
            .await
            .map_err(Committed::Meta)?
        {
            return Err(Committed::Meta(MetaError::Conflict(SOURCE_CHANGED)));
        }
        copy_tree_tx(&mut tx, from, to, to_parent, (owner, grp), now_ms, archive)
            .await
            .map_err(Committed::Meta)?;
        // object stores: every copy names the blob made for it
        let cut = from.len();
        for (path, blob) in blobs {
            let target = format!("{to}{}", path.get(cut..).unwrap_or_default());
            sqlx::query("UPDATE entries SET blob = $1 WHERE path = $2 AND is_dir = 0")
                .bind(blob)
                .bind(&target)
                .execute(&mut *tx)
                .await
                .map_err(|e| Committed::Meta(e.into()))?;
        }
        mark_tx(&mut tx, mark).await.map_err(Committed::Meta)?;
        record_tx(&mut tx, "copy", Some(from), Some(to))
            .await
            .map_err(Committed::Meta)?;
        finish.await.map_err(Committed::Finish)?;
        tx.commit().await.map_err(|e| Committed::Meta(e.into()))
    }

    /// Undeletes a whole delete in one transaction, as it was (ids, times, owners, modes), at
    /// `to` (a new name in the same bucket, `to_parent` existing) and runs `finish` (the
    /// rename of its kept tree back into place) before the COMMIT. `Conflict` when the delete
    /// is no longer whole (a file of it restored or purged since), `Duplicate` when `to` exists.
    pub async fn undelete<E, F>(
        &self,
        batch: &str,
        (to, to_parent): (&str, &str),
        mark: Option<&Mark>,
        finish: F,
    ) -> Result<(), Committed<E>>
    where
        F: std::future::Future<Output = Result<(), E>>,
    {
        let meta = Committed::Meta;
        let mut tx = self
            .write_tx()
            .await
            .map_err(|e| Committed::Meta(e.into()))?;
        let rows = batch_rows_tx(&mut tx, batch)
            .await
            .map_err(|e| Committed::Meta(e))?;
        let Some(root) = rows.iter().find(|r| r.id == batch).cloned() else {
            return Err(meta(MetaError::Gone));
        };
        let files = rows.iter().filter(|r| !r.marker).count();
        let file_markers = rows.iter().filter(|r| r.marker && !r.is_dir).count();
        if files != file_markers {
            return Err(meta(MetaError::Conflict("the delete is no longer whole")));
        }
        let parent: Option<i64> = sqlx::query_scalar("SELECT is_dir FROM entries WHERE path = $1")
            .bind(to_parent)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| Committed::Meta(e.into()))?;
        if to_parent != "/" && parent != Some(1) {
            return Err(meta(MetaError::Conflict(NO_PARENT)));
        }
        let payer = payer_tx(&mut tx, to).await.map_err(meta)?;
        let bytes: i64 = rows.iter().filter(|r| !r.marker).map(|r| r.size).sum();
        let mut credit: BTreeMap<Option<String>, (i64, i64)> = BTreeMap::new();
        let payers: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id, payer FROM versions WHERE batch = $1 AND marker = 0")
                .bind(batch)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| Committed::Meta(e.into()))?;
        let sizes: BTreeMap<&str, i64> = rows.iter().map(|r| (r.id.as_str(), r.size)).collect();
        for (id, p) in payers {
            let c = credit.entry(p).or_default();
            c.0 += sizes.get(id.as_str()).copied().unwrap_or(0);
            c.1 += 1;
        }
        // the kept bytes are credited first: coming back where they are charged, they cost
        // the quota nothing more
        for (p, (b, f)) in credit {
            charge_versions_tx(&mut tx, p.as_deref(), -b, -f)
                .await
                .map_err(meta)?;
        }
        charge_tx(&mut tx, payer.as_deref(), bytes, files as i64)
            .await
            .map_err(meta)?;
        let now = super::now_ms();
        let cut = root.path.len();
        for r in rows.iter().filter(|r| r.is_dir || !r.marker) {
            let path = format!("{to}{}", r.path.get(cut..).unwrap_or_default());
            let parent = if path == to {
                to_parent.to_string()
            } else {
                path.rsplit_once('/').map_or("/", |(p, _)| p).to_string()
            };
            sqlx::query(
                "INSERT INTO entries (path, parent, is_dir, size, mtime_ms, etag, content_type,
                   owner, headers, grp, mode, version_id, sealed, blob)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&path)
            .bind(&parent)
            .bind(i64::from(r.is_dir))
            .bind(r.size)
            .bind(if r.is_dir { now } else { r.mtime_ms })
            .bind(if r.is_dir {
                format!("d{now:x}")
            } else {
                r.etag.clone()
            })
            .bind(&r.content_type)
            .bind(&r.owner)
            .bind(&r.headers)
            .bind(&r.grp)
            .bind(r.mode)
            .bind((!r.is_dir && !r.null_version).then_some(&r.id))
            .bind(&r.sealed)
            // a trashed file's blob comes back with it (object stores)
            .bind(r.key.as_deref().filter(|k| is_blob_key(k)))
            .execute(&mut *tx)
            .await
            .map_err(|e| Committed::Meta(map_unique(e)))?;
        }
        sqlx::query("DELETE FROM versions WHERE batch = $1")
            .bind(batch)
            .execute(&mut *tx)
            .await
            .map_err(|e| Committed::Meta(e.into()))?;
        journal_tree_tx(&mut tx, to, None).await.map_err(meta)?;
        mark_tx(&mut tx, mark).await.map_err(meta)?;
        record_tx(&mut tx, "restore", Some(to), None)
            .await
            .map_err(meta)?;
        finish.await.map_err(Committed::Finish)?;
        tx.commit().await.map_err(|e| Committed::Meta(e.into()))
    }
}

/// The headers of a file written over one whose tags and description it keeps: `new` with
/// the `x-amz-tagging` and `x-kura-description` of `old` (unreadable headers keep nothing).
fn keep_annotations(new: Option<&str>, old: &str) -> Option<String> {
    type Object = serde_json::Map<String, serde_json::Value>;
    let Ok(old) = serde_json::from_str::<Object>(old) else {
        return new.map(str::to_string);
    };
    let mut merged: Object = new
        .and_then(|n| serde_json::from_str(n).ok())
        .unwrap_or_default();
    let mut kept = false;
    for key in ["x-amz-tagging", "x-kura-description"] {
        if let Some(v) = old.get(key) {
            merged.insert(key.to_string(), v.clone());
            kept = true;
        }
    }
    if !kept {
        return new.map(str::to_string);
    }
    serde_json::to_string(&merged).ok()
}

/// Fails with `Conflict(NOT_SEALED)` when a current file at or below `root`, or a kept version
/// that follows them, is recorded plain or with the conversion mark `mark` (either form).
async fn all_sealed_tx(tx: &mut DbTx, root: &str, mark: &str) -> Result<(), MetaError> {
    let (lo, hi) = below(root);
    let plain: i64 = sqlx::query_scalar(
        "SELECT CAST(EXISTS(SELECT 1 FROM entries
                WHERE (path = $1 OR (path >= $2 AND path < $3)) AND is_dir = 0
                  AND (sealed IS NULL OR substr(sealed, length(sealed) - length($4) + 1) = $4))
             OR EXISTS(SELECT 1 FROM versions
                WHERE (path = $1 OR (path >= $2 AND path < $3)) AND batch IS NULL
                  AND marker = 0 AND key IS NOT NULL
                  AND (sealed IS NULL OR substr(sealed, length(sealed) - length($4) + 1) = $4)) AS INTEGER)",
    )
    .bind(root)
    .bind(&lo)
    .bind(&hi)
    .bind(mark)
    .fetch_one(&mut **tx)
    .await?;
    if plain != 0 {
        return Err(MetaError::Conflict(NOT_SEALED));
    }
    Ok(())
}

/// The statements of `Store::commit_file`, inside the caller's transaction `tx` (a group
/// commit's savepoint, or a transaction of its own): everything but the storage step and the
/// COMMIT.
pub(crate) async fn commit_file_tx(
    tx: &mut DbTx,
    e: &EntryRow,
    rules: WriteRules<'_>,
    mark: Option<&Mark>,
    archive: &Archive,
) -> Result<(), MetaError> {
    if let Some(id) = rules.completes_upload {
        // claimed first: of racing completions one commits, the others find no row; parts
        // sent meanwhile fail their foreign key
        let gone = sqlx::query("DELETE FROM multipart_uploads WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Err(MetaError::Conflict(UPLOAD_GONE));
        }
    }
    insert_parents_tx(tx, rules.parents).await?;
    // the replaced entry, the paying group, the parent folder, the bucket's S3 versioning
    // and whether S3 sees a null version of the path, in one round trip
    type Found = (
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let (old_dir, old, payer, parent, old_etag, old_headers, versioning, nulls): Found =
        sqlx::query_as(
            "SELECT (SELECT is_dir FROM entries WHERE path = $1),
                    (SELECT size FROM entries WHERE path = $1 AND is_dir = 0),
                    (SELECT grp FROM entries WHERE path = $2 AND is_dir = 1),
                    (SELECT is_dir FROM entries WHERE path = $3),
                    (SELECT etag FROM entries WHERE path = $1 AND is_dir = 0),
                    (SELECT headers FROM entries WHERE path = $1 AND is_dir = 0),
                    (SELECT value FROM bucket_settings WHERE bucket = $2 AND name = $4),
                    (SELECT 1 FROM versions
                      WHERE path = $1 AND null_version = 1 AND s3 = 1 LIMIT 1)",
        )
        .bind(&e.path)
        .bind(bucket_of(&e.path).unwrap_or(""))
        .bind(&e.parent)
        .bind(super::versioning::S3_SETTING)
        .fetch_one(&mut **tx)
        .await?;
    if old_dir == Some(1) {
        return Err(MetaError::Conflict("a folder is in the way"));
    }
    if e.parent != "/" && parent != Some(1) {
        return Err(MetaError::Conflict(NO_PARENT));
    }
    if rules.create_new && old.is_some() {
        return Err(MetaError::Duplicate);
    }
    if rules
        .if_match
        .is_some_and(|want| old_etag.as_deref() != Some(want))
    {
        return Err(MetaError::Conflict(ETAG_CHANGED));
    }
    let now = super::now_ms();
    let archive_key = archive.key.as_ref().filter(|_| old.is_some());
    if let Some(key) = archive_key {
        archive_file_tx(tx, &e.path, key, now).await?;
    }
    // the new file's version id: a fresh one in an S3 versioning-enabled bucket, else the
    // null version, which replaces S3's previous null version of the path (the one just
    // archived, or one found above)
    let state = versioning.as_deref().and_then(S3Versioning::from_json);
    let fresh = state == Some(S3Versioning::Enabled);
    if !fresh && archive.promote.is_none() && (archive_key.is_some() || nulls.is_some()) {
        hide_nulls_tx(tx, &e.path).await?;
    }
    if let Some((path, batch)) = &archive.untrash {
        untrash_tx(tx, path, batch).await?;
    }
    let files = i64::from(old.is_none());
    charge_tx(tx, payer.as_deref(), e.size - old.unwrap_or(0), files).await?;
    let headers = match (rules.keep_annotations, old_headers) {
        (true, Some(old)) => keep_annotations(e.headers.as_deref(), &old),
        _ => e.headers.clone(),
    };
    sqlx::query(concat!(
        "INSERT INTO entries (",
        entry_cols!(),
        ", version_id) VALUES ($1, $2, 0, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14, $13)
         ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms,
           etag = excluded.etag, content_type = excluded.content_type,
           headers = excluded.headers, origin = excluded.origin, sealed = excluded.sealed,
           blob = excluded.blob, version_id = excluded.version_id
         WHERE entries.is_dir = 0"
    ))
    .bind(&e.path)
    .bind(&e.parent)
    .bind(e.size)
    .bind(e.mtime_ms)
    .bind(&e.etag)
    .bind(&e.content_type)
    .bind(&e.owner)
    .bind(&headers)
    .bind(&e.grp)
    .bind(e.mode)
    .bind(&e.origin)
    .bind(&e.sealed)
    .bind(fresh.then(|| super::dialect::new_id_now(now)))
    .bind(&e.blob)
    .execute(&mut **tx)
    .await?;
    journal_path_tx(tx, &e.path, e.origin.as_deref()).await?;
    mark_tx(tx, mark).await?;
    let mut dropped = Purged::default();
    if let Some(id) = &archive.drop {
        drop_row_tx(tx, id, &mut dropped).await?;
    }
    if let Some(id) = &archive.promote {
        promote_tx(tx, &e.path, id, &mut dropped).await?;
    } else if fresh {
        default_retention_tx(tx, &e.path, now).await?;
    }
    let action = match (&archive.untrash, old) {
        _ if archive.promote.is_some() => "version_delete",
        (Some(_), _) => "restore",
        (None, Some(_)) => "overwrite",
        (None, None) => "create",
    };
    record_tx(tx, action, Some(&e.path), None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DeadProp;

    fn dir(path: &str, parent: &str) -> EntryRow {
        EntryRow {
            path: path.into(),
            parent: parent.into(),
            is_dir: true,
            size: 0,
            mtime_ms: 1,
            etag: "d".into(),
            content_type: None,
            owner: None,
            headers: None,
            grp: None,
            mode: 0o775,
            origin: None,
            sealed: None,
            blob: None,
        }
    }

    fn file(path: &str, parent: &str, size: i64) -> EntryRow {
        EntryRow {
            is_dir: false,
            size,
            etag: "f".into(),
            ..dir(path, parent)
        }
    }

    /// CPU of small commits and lookups (`cargo test --bin kura store_cpu -- --ignored
    /// --nocapture`): what a change of the store's driver costs per operation.
    #[tokio::test]
    #[ignore]
    async fn store_cpu_per_small_operation() {
        fn cpu() -> std::time::Duration {
            let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
            // SAFETY: getrusage fills the struct it is given
            let u = unsafe {
                libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
                u.assume_init()
            };
            let t = |v: libc::timeval| {
                std::time::Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000)
            };
            t(u.ru_utime) + t(u.ru_stime)
        }
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&dir("/b", "/")).await.unwrap();
        let n = 2000;
        let (c0, w0) = (cpu(), std::time::Instant::now());
        for i in 0..n {
            s.put_file(&file(&format!("/b/f{i}"), "/b", 10))
                .await
                .unwrap();
        }
        let (c1, w1) = (cpu(), std::time::Instant::now());
        for i in 0..n {
            assert!(s.entry(&format!("/b/f{i}")).await.unwrap().is_some());
        }
        let (c2, w2) = (cpu(), std::time::Instant::now());
        println!(
            "{n} commits: cpu {:?}/op wall {:?}/op; {n} lookups: cpu {:?}/op wall {:?}/op",
            (c1 - c0) / n,
            (w1 - w0) / n,
            (c2 - c1) / n,
            (w2 - w1) / n
        );
    }

    #[tokio::test]
    async fn a_move_that_must_bring_sealed_files_refuses_a_plain_or_marked_one() {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&dir("/a", "/")).await.unwrap();
        s.insert_dir(&dir("/a/d", "/a")).await.unwrap();
        s.insert_dir(&dir("/z", "/")).await.unwrap();
        s.put_file(&EntryRow {
            sealed: Some("v1:k:sealed".into()),
            ..file("/a/d/x", "/a/d", 3)
        })
        .await
        .unwrap();
        s.put_file(&file("/a/d/y", "/a/d", 3)).await.unwrap();
        // a plain file beside the folder, with a name it is a prefix of, is not moved along
        s.put_file(&file("/a/d0", "/a", 3)).await.unwrap();
        let rules = MoveRules {
            sealed_only: Some("~either"),
            ..Default::default()
        };
        let none = Archive::default();
        let mv = |rules| {
            s.move_tree_with("/a/d", "/z/d", "/z", None, (None, &none), rules, async {
                Ok::<(), ()>(())
            })
        };
        assert!(matches!(
            mv(rules).await,
            Err(Committed::Meta(MetaError::Conflict(NOT_SEALED)))
        ));
        // marked (switching form): still refused; nothing moved
        s.put_file(&EntryRow {
            sealed: Some("v1:k:y~either".into()),
            ..file("/a/d/y", "/a/d", 3)
        })
        .await
        .unwrap();
        assert!(matches!(
            mv(rules).await,
            Err(Committed::Meta(MetaError::Conflict(NOT_SEALED)))
        ));
        assert!(s.entry("/a/d/x").await.unwrap().is_some());
        s.put_file(&EntryRow {
            sealed: Some("v1:k:y".into()),
            ..file("/a/d/y", "/a/d", 3)
        })
        .await
        .unwrap();
        mv(rules).await.unwrap();
        assert!(s.entry("/z/d/y").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn move_tree_rewrites_rows_and_props_below() {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&dir("/a", "/")).await.unwrap();
        s.insert_dir(&dir("/a/b", "/a")).await.unwrap();
        s.put_file(&file("/a/b/c", "/a/b", 3)).await.unwrap();
        s.put_file(&file("/ab", "/", 5)).await.unwrap();
        let p = DeadProp {
            namespace: "urn:x".into(),
            name: "p".into(),
            prefix: None,
            xml: Some("<p/>".into()),
        };
        s.patch_props("/a/b/c", &[(true, p.clone())]).await.unwrap();

        s.move_tree("/a", "/z", "/", None, (None, &Archive::default()), async {
            Ok::<(), ()>(())
        })
        .await
        .unwrap();
        assert!(s.entry("/a").await.unwrap().is_none());
        let c = s.entry("/z/b/c").await.unwrap().unwrap();
        assert_eq!(c.parent, "/z/b");
        assert_eq!(s.children("/z").await.unwrap().len(), 1);
        assert_eq!(s.props("/z/b/c").await.unwrap(), vec![p]);
        assert!(
            s.entry("/ab").await.unwrap().is_some(),
            "sibling with common prefix moved"
        );
        assert_eq!(s.used_bytes().await.unwrap(), 8);

        let mut copied = Vec::new();
        for p in ["/z", "/z/b", "/z/b/c"] {
            let r = s.entry(p).await.unwrap().unwrap();
            copied.push((r.path, r.etag, r.mtime_ms));
        }
        // the same bytes written again since the snapshot (same ETag, a later time): the
        // bytes copied may be those of a write between, so the copy is refused
        let mut again = copied.clone();
        again[2].2 -= 1;
        let refused = s
            .copy_tree(
                ("/z", "/ab2", "/"),
                ("bob", Some("g")),
                7,
                (&again, &[], None, &Archive::default(), &[]),
                async { Ok::<(), ()>(()) },
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(Committed::Meta(MetaError::Conflict(SOURCE_CHANGED)))
            ),
            "{refused:?}"
        );
        assert!(s.entry("/ab2").await.unwrap().is_none());
        s.copy_tree(
            ("/z", "/ab2", "/"),
            ("bob", Some("g")),
            7,
            (&copied, &[], None, &Archive::default(), &[]),
            async { Ok::<(), ()>(()) },
        )
        .await
        .unwrap();
        let copied = s.entry("/ab2/b/c").await.unwrap().unwrap();
        assert_eq!(
            (
                copied.parent.as_str(),
                copied.owner.as_deref(),
                copied.mtime_ms
            ),
            ("/ab2/b", Some("bob"), 7)
        );
        assert_eq!(s.props("/ab2/b/c").await.unwrap().len(), 1);
        assert_eq!(s.subtree("/ab2").await.unwrap().len(), 2);
        assert_eq!(s.delete_tree("/ab2", None).await.unwrap(), 3);

        assert_eq!(s.delete_tree("/z", None).await.unwrap(), 3);
        assert!(s.props("/z/b/c").await.unwrap().is_empty());
        assert_eq!(s.used_bytes().await.unwrap(), 5);
    }

    #[tokio::test]
    async fn put_file_never_turns_a_folder_into_a_file() {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&dir("/a", "/")).await.unwrap();
        assert!(matches!(
            s.put_file(&file("/a", "/", 9)).await,
            Err(MetaError::Conflict(_))
        ));
        assert!(s.entry("/a").await.unwrap().unwrap().is_dir);
        // nor records a file in a folder that is not there (deleted since the checks)
        assert!(matches!(
            s.put_file(&file("/gone/x", "/gone", 1)).await,
            Err(MetaError::Conflict(_))
        ));
        assert!(matches!(
            s.insert_dir(&dir("/a", "/")).await,
            Err(MetaError::Duplicate)
        ));
    }
}
