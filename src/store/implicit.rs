//! Implicit folders: the parents an S3 key brought into being, made inside the write's
//! transaction and removed inside the transaction that takes their last entry away, so an
//! emptied prefix vanishes as it does in S3. Folders made on purpose are never removed here.

use super::DbTx;

use super::entries::{insert_folder_tx, EntryRow};
use super::usage::bucket_of;
use super::{below, MetaError, Store};

/// Why a conditional delete refuses: something other than empty implicit folders is below.
pub const NOT_EMPTY: &str = "the folder is not empty";

/// Why a write refuses: the folder it goes into is gone (an implicit one maybe pruned since
/// the write's checks, which the writer may make again).
pub const NO_PARENT: &str = "parent folder does not exist";

/// Records the missing folders `parents` (outermost first) as implicit, inside a write's
/// transaction: one already there as a folder is fine, a file in the way refuses, and the
/// outermost must hang from a folder that still exists.
pub(super) async fn insert_parents_tx(
    tx: &mut DbTx,
    parents: &[EntryRow],
) -> Result<(), MetaError> {
    for p in parents {
        let kind: Option<i64> = sqlx::query_scalar("SELECT is_dir FROM entries WHERE path = $1")
            .bind(&p.path)
            .fetch_optional(&mut **tx)
            .await?;
        match kind {
            Some(1) => continue,
            Some(_) => return Err(MetaError::Conflict("a file is in the way of a folder")),
            None => {}
        }
        if bucket_of(&p.path) == Some(p.path.as_str()) {
            // a bucket is never made implicitly
            return Err(MetaError::Gone);
        }
        let up: Option<i64> = sqlx::query_scalar("SELECT is_dir FROM entries WHERE path = $1")
            .bind(&p.parent)
            .fetch_optional(&mut **tx)
            .await?;
        if up != Some(1) {
            return Err(MetaError::Conflict(NO_PARENT));
        }
        insert_folder_tx(tx, p, true).await?;
    }
    Ok(())
}

/// Removes `dir` and the folders above it while each is implicit and empty, stopping at the
/// bucket (never removed here) or at a folder that is locked or whose parent is, inside the
/// transaction that emptied it; returns the removed
/// paths, deepest first, for storage to follow.
pub(super) async fn prune_tx(tx: &mut DbTx, dir: &str) -> Result<Vec<String>, MetaError> {
    let mut pruned = Vec::new();
    let mut dir = dir.to_string();
    while dir != "/" && bucket_of(&dir) != Some(dir.as_str()) {
        // a WebDAV lock on the folder, or on its parent (whose members it protects), keeps it:
        // pruning never takes away what a lock holder relies on
        let up = super::parent_of(&dir).to_string();
        let gone = sqlx::query(
            "DELETE FROM entries WHERE path = $1 AND is_dir = 1 AND implicit = 1
               AND NOT EXISTS (SELECT 1 FROM entries WHERE parent = $1)
               AND NOT EXISTS (SELECT 1 FROM locks WHERE path IN ($1, $2))",
        )
        .bind(&dir)
        .bind(&up)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if gone == 0 {
            break;
        }
        sqlx::query("DELETE FROM dead_props WHERE path = $1")
            .bind(&dir)
            .execute(&mut **tx)
            .await?;
        pruned.push(std::mem::replace(&mut dir, up));
    }
    Ok(pruned)
}

/// Fails with `Conflict(NOT_EMPTY)` unless everything below `path` is an implicit folder
/// (which S3 does not show, so a bucket holding only those is empty).
pub(super) async fn require_empty_tx(tx: &mut DbTx, path: &str) -> Result<(), MetaError> {
    let (lo, hi) = below(path);
    let other: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM entries WHERE path >= $1 AND path < $2
           AND NOT (is_dir = 1 AND implicit = 1) LIMIT 1",
    )
    .bind(&lo)
    .bind(&hi)
    .fetch_optional(&mut **tx)
    .await?;
    match other {
        Some(_) => Err(MetaError::Conflict(NOT_EMPTY)),
        None => Ok(()),
    }
}

impl Store {
    /// Makes a folder explicit (or implicit again): an S3 `dir/` marker written onto a
    /// prefix, or deleted while the prefix still holds keys. Returns whether a folder was there.
    pub async fn set_implicit(&self, path: &str, implicit: bool) -> Result<bool, MetaError> {
        let n = sqlx::query("UPDATE entries SET implicit = $1 WHERE path = $2 AND is_dir = 1")
            .bind(i64::from(implicit))
            .bind(path)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Makes an implicit folder explicit (an S3 `dir/` marker written onto a prefix); false
    /// when it is not there or explicit already, so of two such writes one wins.
    pub async fn make_explicit(&self, path: &str) -> Result<bool, MetaError> {
        let n = sqlx::query(
            "UPDATE entries SET implicit = 0 WHERE path = $1 AND is_dir = 1 AND implicit = 1",
        )
        .bind(path)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Whether `path` is a folder made only as the parent of a key.
    pub async fn is_implicit(&self, path: &str) -> Result<bool, MetaError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT implicit FROM entries WHERE path = $1")
            .bind(path)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v == Some(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Committed, WriteRules};

    fn row(path: &str, is_dir: bool) -> EntryRow {
        let parent = super::super::parent_of(path).to_string();
        EntryRow {
            path: path.into(),
            parent,
            is_dir,
            size: if is_dir { 0 } else { 1 },
            mtime_ms: 1,
            etag: "e".into(),
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

    async fn put(s: &Store, path: &str, parents: &[&str]) -> Result<(), MetaError> {
        let parents: Vec<EntryRow> = parents.iter().map(|p| row(p, true)).collect();
        let rules = WriteRules {
            parents: &parents,
            ..Default::default()
        };
        s.commit_file(&row(path, false), rules, None, &Default::default(), async {
            Ok::<(), MetaError>(())
        })
        .await
        .map_err(MetaError::from)
    }

    #[tokio::test]
    async fn implicit_parents_go_with_their_last_entry_and_explicit_ones_stay() {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&row("/b", true)).await.unwrap();
        put(&s, "/b/x/y/f", &["/b/x", "/b/x/y"]).await.unwrap();
        put(&s, "/b/x/g", &[]).await.unwrap();
        assert!(s.is_implicit("/b/x/y").await.unwrap());
        let none = async { Ok::<(), MetaError>(()) };
        let (_, pruned) = s
            .delete_tree_with("/b/x/y/f", Default::default(), None, None, none)
            .await
            .map_err(MetaError::from)
            .unwrap();
        // /b/x still holds g
        assert_eq!(pruned, vec!["/b/x/y".to_string()]);
        assert!(s.entry("/b/x").await.unwrap().is_some());
        // a folder made on purpose stops the pruning; the bucket never goes
        s.insert_dir(&row("/b/x/kept", true)).await.unwrap();
        put(&s, "/b/x/kept/f", &[]).await.unwrap();
        s.delete_tree("/b/x/kept/f", None).await.unwrap();
        assert!(s.entry("/b/x/kept").await.unwrap().is_some());
        s.delete_tree("/b/x/kept", None).await.unwrap();
        s.delete_tree("/b/x/g", None).await.unwrap();
        assert!(s.entry("/b/x").await.unwrap().is_none());
        assert!(s.entry("/b").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_move_prunes_its_source_and_a_refused_write_makes_no_parent() {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&row("/b", true)).await.unwrap();
        put(&s, "/b/m/n/f", &["/b/m", "/b/m/n"]).await.unwrap();
        let pruned = s
            .move_tree(
                "/b/m/n/f",
                "/b/f",
                "/b",
                None,
                (None, &Default::default()),
                async { Ok::<(), MetaError>(()) },
            )
            .await
            .map_err(MetaError::from)
            .unwrap();
        assert_eq!(pruned, vec!["/b/m/n".to_string(), "/b/m".to_string()]);
        // create_new refused: the parents it would have made are not there either
        let parents = [row("/b/p", true)];
        s.insert_dir(&row("/b/q", true)).await.unwrap();
        let mut f = row("/b/p/f", false);
        f.parent = "/b/p".into();
        s.put_file(&row("/b/f2", false)).await.unwrap();
        let rules = WriteRules {
            if_match: Some("not-the-etag"),
            parents: &parents,
            ..Default::default()
        };
        let r = s
            .commit_file(&f, rules, None, &Default::default(), async {
                Ok::<(), MetaError>(())
            })
            .await;
        assert!(matches!(
            r,
            Err(Committed::Meta(MetaError::Conflict(
                crate::store::ETAG_CHANGED
            )))
        ));
        assert!(s.entry("/b/p").await.unwrap().is_none());
        // a parent that is a file refuses; a bucket is never made implicitly
        assert!(matches!(
            put(&s, "/b/f2/x", &["/b/f2"]).await,
            Err(MetaError::Conflict(_))
        ));
        assert!(matches!(
            put(&s, "/nob/x", &["/nob"]).await,
            Err(MetaError::Gone)
        ));
    }

    #[tokio::test]
    async fn a_bucket_is_deleted_only_when_nothing_but_implicit_folders_remain() {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&row("/b", true)).await.unwrap();
        s.insert_dir(&row("/b/made", true)).await.unwrap();
        let only_if_empty = |s: Store| async move {
            let rules = crate::store::DeleteRules {
                if_empty: true,
                ..Default::default()
            };
            s.delete_tree_with("/b", rules, None, None, async { Ok::<(), MetaError>(()) })
                .await
                .map_err(MetaError::from)
        };
        assert!(matches!(
            only_if_empty(s.clone()).await,
            Err(MetaError::Conflict(NOT_EMPTY))
        ));
        s.set_implicit("/b/made", true).await.unwrap();
        only_if_empty(s.clone()).await.unwrap();
        assert!(s.entry("/b").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_locked_folder_or_one_in_a_locked_folder_is_not_pruned() {
        let s = Store::in_memory().await.unwrap();
        s.insert_dir(&row("/b", true)).await.unwrap();
        put(&s, "/b/l/m/f", &["/b/l", "/b/l/m"]).await.unwrap();
        sqlx::query(
            "INSERT INTO locks (token, path, collection, shared, deep, created_ms)
             VALUES ('urn:uuid:t', '/b/l', 1, 0, 0, 1)",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        s.delete_tree("/b/l/m/f", None).await.unwrap();
        // m is a member of the locked l, so it stays; l itself is locked
        assert!(s.entry("/b/l/m").await.unwrap().is_some());
        assert!(s.entry("/b/l").await.unwrap().is_some());
    }
}
