//! Group commit of uploads to the local disk: uploads committing at the same time share one
//! transaction, one journal, one fsync of the folders their renames touch and one of SQLite's
//! log, instead of one of each per upload (docs/architecture.md, "Group commit").
//!
//! The shared transaction is a baton passed from member to member (a fair mutex). A member
//! takes it, runs its statements (the first member of a batch directly in the transaction,
//! the others each inside a savepoint, so a refused member is undone alone), adds its renames
//! to the batch's journal and passes the baton on. Then it queues for the baton again: the
//! uploads that were waiting meanwhile join the batch first, and when its turn comes back the
//! batch is still open, so it commits it: the journal and the renames (`Pending::run`), the
//! commit mark, the COMMIT. Every member learns the outcome and answers only then, so an
//! acknowledged upload is as durable as before. A member dropped while holding the baton (a
//! cancelled task) is undone at the next turn, and the batch is committed by a task of its
//! own, so no batch is left open.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use super::journal::{Journal, Pending, Step};
use super::storage::io_err;
use super::VfsError;
use crate::store::{self, Committed, DbTx, Store};

/// A batch's outcome, once it is resolved: committed, or why not.
type Outcome = Option<Result<(), Arc<str>>>;

/// The group commit of one process's journal; cheap to clone.
#[derive(Clone)]
pub(super) struct Group(Arc<Inner>);

struct Inner {
    /// The open batch, if any: whoever holds the lock has the turn.
    slot: Arc<Mutex<Option<Open>>>,
    ids: AtomicU64,
    journal: Journal,
    store: Store,
    /// The files are on a local disk's file system: `check` looks on the calling thread.
    inline: bool,
}

/// Where the member holding the turn is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Nobody is inside.
    Free,
    /// A member is opening its savepoint.
    Opening,
    /// A member's statements are running (in its savepoint, or directly when it is the first).
    Inside { first: bool },
    /// A member's savepoint is being released, its steps and new file already the batch's
    /// (beyond the first `steps` and `temps`): undone if the savepoint is still open.
    Releasing { steps: usize, temps: usize },
    /// A refused member's savepoint is being rolled back.
    Undoing,
}

/// A batch being gathered: its transaction, its journal (holding the journal's gate) and
/// how its members learn the outcome.
struct Open {
    id: u64,
    tx: DbTx,
    pending: Arc<Pending>,
    done: watch::Sender<Outcome>,
    /// Members whose statements are kept.
    kept: usize,
    /// Their new files in `tmp/`, handed over to the batch: removed if it fails.
    temps: Vec<PathBuf>,
    turn: Turn,
    /// Why the transaction cannot commit (a member's statements could be neither kept nor
    /// undone alone): it is rolled back whole.
    broken: Option<String>,
}

/// One member's turn in a batch: the transaction its statements run in.
pub(super) struct Seat {
    group: Group,
    guard: Option<OwnedMutexGuard<Option<Open>>>,
    id: u64,
    rx: watch::Receiver<Outcome>,
}

impl Group {
    /// The group commit of `journal`'s commits into `store`.
    pub(super) fn new(journal: Journal, store: Store, inline: bool) -> Group {
        Group(Arc::new(Inner {
            slot: Arc::new(Mutex::new(None)),
            ids: AtomicU64::new(1),
            journal,
            store,
            inline,
        }))
    }

    /// Whether an upload's `steps` can run as things stand on disk, checked in its turn (a
    /// few `lstat`s; on the calling thread on a local disk): one that cannot (a name past
    /// the system's limits below the data dir) is refused alone, instead of failing the
    /// batch and every upload in it when its renames run.
    pub(super) async fn check(&self, steps: &[Step]) -> Result<(), Committed<VfsError>> {
        let res = match self.0.inline {
            true => self.0.journal.check(steps),
            false => {
                let (journal, steps) = (self.0.journal.clone(), steps.to_vec());
                tokio::task::spawn_blocking(move || journal.check(&steps))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            }
        };
        res.map_err(|e| Committed::Finish(io_err(e)))
    }

    /// Waits for the turn and joins the open batch, or opens one (the journal's gate, then a
    /// write transaction).
    pub(super) async fn join(&self) -> Result<Seat, VfsError> {
        let mut guard = self.0.slot.clone().lock_owned().await;
        if let Some(open) = guard.as_mut() {
            heal(open).await;
            if open.broken.is_some() {
                if let Some(open) = guard.take() {
                    settle(open).await;
                }
            }
        }
        let first = guard.is_none();
        if first {
            let pending = self.0.journal.begin(Vec::new()).await;
            let tx = self
                .0
                .store
                .write_tx()
                .await
                .map_err(|e| VfsError::from(store::MetaError::from(e)))?;
            let (done, _) = watch::channel(None);
            *guard = Some(Open {
                id: self.0.ids.fetch_add(1, Ordering::Relaxed),
                tx,
                pending,
                done,
                kept: 0,
                temps: Vec::new(),
                turn: Turn::Free,
                broken: None,
            });
        }
        let Some(open) = guard.as_mut() else {
            unreachable!("a batch was just opened")
        };
        let (id, rx) = (open.id, open.done.subscribe());
        let mut seat = Seat {
            group: self.clone(),
            guard: None,
            id,
            rx,
        };
        if !first {
            open.turn = Turn::Opening;
            if let Err(e) = store::savepoint_tx(&mut open.tx).await {
                // the transaction's state is unknown (on PostgreSQL a failed statement aborts
                // it): the batch is rolled back whole
                open.turn = Turn::Free;
                open.broken = Some(format!("a savepoint could not be opened: {e}"));
                return Err(e.into());
            }
        }
        open.turn = Turn::Inside { first };
        seat.guard = Some(guard);
        Ok(seat)
    }

    fn resolve_later(&self, id: u64) -> tokio::task::JoinHandle<()> {
        let group = self.clone();
        tokio::spawn(async move { group.resolve(id).await })
    }

    /// Commits the batch `id` if it is still open (waiting for the turn first, so that the
    /// members queued meanwhile are in it); its outcome goes to every member.
    async fn resolve(&self, id: u64) {
        let mut guard = self.0.slot.clone().lock_owned().await;
        if guard.as_ref().map(|o| o.id) != Some(id) {
            return;
        }
        if let Some(mut open) = guard.take() {
            heal(&mut open).await;
            settle(open).await;
        }
        // the next batch opens once this one is resolved
        drop(guard);
    }
}

/// Ends a batch taken out of the slot: committed when it holds kept members and nothing
/// broke it, rolled back otherwise; its members learn the outcome.
async fn settle(open: Open) {
    let Open {
        tx,
        pending,
        done,
        kept,
        temps,
        broken,
        ..
    } = open;
    let outcome = match broken {
        // dropping the transaction rolls it back
        Some(why) => Err(why),
        None if kept == 0 => Err("nothing to commit".to_string()),
        None => commit(tx, &pending).await,
    };
    match &outcome {
        Ok(()) => pending.committed().await,
        Err(_) => {
            // the renames that ran are undone; the new files go
            pending.failed().await;
            if !temps.is_empty() {
                tokio::task::spawn_blocking(move || {
                    temps.iter().for_each(|t| drop(std::fs::remove_file(t)))
                });
            }
        }
    }
    match &outcome {
        Err(e) if kept > 0 => {
            tracing::error!(uploads = kept, error = %e, "a group commit failed")
        }
        _ => tracing::debug!(uploads = kept, "group commit"),
    }
    done.send_replace(Some(outcome.map_err(Arc::from)));
}

/// The storage steps of every member, the commit mark, the COMMIT.
async fn commit(mut tx: DbTx, pending: &Arc<Pending>) -> Result<(), String> {
    pending.run().await.map_err(|e| e.to_string())?;
    store::mark_tx(&mut tx, Some(&pending.mark()))
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// Undoes what a member dropped while holding the turn left: its savepoint is rolled back;
/// when that is impossible (it was the first member, whose statements are the transaction's
/// only ones), the whole batch is.
async fn heal(open: &mut Open) {
    let turn = std::mem::replace(&mut open.turn, Turn::Free);
    let cancelled = || Some("an upload was cancelled inside the commit".to_string());
    match turn {
        Turn::Free => {}
        // the savepoint may or may not have been opened, or already rolled back
        Turn::Opening | Turn::Undoing => {
            if store::rollback_if_open_tx(&mut open.tx).await.is_err() {
                open.broken = cancelled();
            }
        }
        Turn::Inside { first: true } => open.broken = cancelled(),
        Turn::Inside { first: false } => {
            if store::rollback_to_tx(&mut open.tx).await.is_err() {
                open.broken = cancelled();
            }
        }
        Turn::Releasing { steps, temps } => {
            // released: the member's statements, steps and file commit with the batch; not
            // released: all three go
            let undone = store::rollback_if_open_tx(&mut open.tx).await;
            if undone.is_err() {
                open.broken = cancelled();
            }
            if undone.is_ok_and(|u| u) {
                open.pending.truncate(steps);
                let gone = open.temps.split_off(temps);
                tokio::task::spawn_blocking(move || {
                    gone.iter().for_each(|t| drop(std::fs::remove_file(t)))
                });
                open.kept -= 1;
            }
        }
    }
}

impl Seat {
    /// The batch's transaction, for this member's statements.
    pub(super) fn tx(&mut self) -> &mut DbTx {
        match self.guard.as_mut().and_then(|g| g.as_mut()) {
            Some(open) => &mut open.tx,
            None => unreachable!("a seat holds the turn until it finishes"),
        }
    }

    /// Ends the member's turn with the outcome `res` of its statements and checks: kept, its
    /// `steps` to run with the batch, or undone. When `res` is `Ok`, the new files the steps
    /// rename are the batch's from the call on (the caller lets go of them first): committed
    /// with it, or removed.
    pub(super) async fn finish(
        mut self,
        res: Result<(), Committed<VfsError>>,
        steps: Vec<Step>,
    ) -> Result<Kept, Committed<VfsError>> {
        let first = self.open().turn == Turn::Inside { first: true };
        let open = self.open();
        if res.is_ok() {
            let turn = Turn::Releasing {
                steps: open.pending.steps_len(),
                temps: open.temps.len(),
            };
            for s in &steps {
                if let Step::Put { from, .. } = s {
                    open.temps.push(from.clone());
                }
            }
            open.pending.add(steps);
            open.kept += 1;
            open.turn = turn;
        } else {
            open.turn = Turn::Undoing;
        }
        // cancelled from here on, the member is healed by the next turn (`Drop`)
        let res = match res {
            Ok(()) if first => Ok(()),
            Ok(()) => match store::release_tx(self.tx()).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    self.open().broken = Some(format!("an upload's savepoint stayed open: {e}"));
                    Err(Committed::Meta(e))
                }
            },
            Err(e) if first => Err(e),
            Err(e) => {
                if let Err(r) = store::rollback_to_tx(self.tx()).await {
                    self.open().broken = Some(format!("a refused upload was not undone: {r}"));
                }
                Err(e)
            }
        };
        self.open().turn = Turn::Free;
        if res.is_err() && first {
            // nothing else is in the first member's transaction: it goes whole, before the
            // turn passes, so that the next member opens a batch of its own
            if let Some(open) = self.guard.as_mut().and_then(|g| g.take()) {
                settle(open).await;
            }
        }
        // the turn passes
        let guard = self.guard.take();
        drop(guard);
        res?;
        Ok(Kept {
            group: self.group.clone(),
            id: self.id,
            rx: self.rx.clone(),
        })
    }

    fn open(&mut self) -> &mut Open {
        match self.guard.as_mut().and_then(|g| g.as_mut()) {
            Some(open) => open,
            None => unreachable!("a seat holds the turn until it finishes"),
        }
    }
}

/// A kept member, waiting for its batch's outcome.
pub(super) struct Kept {
    group: Group,
    id: u64,
    rx: watch::Receiver<Outcome>,
}

impl Kept {
    /// The batch's outcome, once the members queued meanwhile are in it and it is resolved
    /// (by a task of its own, which no cancellation stops; most often the batch is this
    /// member's to commit, its turn coming back first).
    pub(super) async fn outcome(self) -> Result<(), Committed<VfsError>> {
        let _ = self.group.resolve_later(self.id).await;
        let outcome = self.rx.borrow().clone();
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(why)) => Err(Committed::Finish(io_err(std::io::Error::other(
                why.to_string(),
            )))),
            None => Err(Committed::Finish(io_err(std::io::Error::other(
                "the group commit was abandoned",
            )))),
        }
    }
}

impl Drop for Seat {
    /// A member dropped with the turn (its task cancelled): the next turn undoes what it
    /// did, and the batch is resolved by a task of its own.
    fn drop(&mut self) {
        if self.guard.take().is_some() {
            drop(self.group.resolve_later(self.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::super::tests::{ann, fs_vfs, p};
    use super::super::{UploadOptions, Vfs, VfsError};

    async fn put(v: &Vfs, path: &str, body: &[u8], opts: UploadOptions) -> Result<(), VfsError> {
        let mut up = v.upload(&ann(), &p(path), opts).await?;
        up.write(Bytes::copy_from_slice(body)).await?;
        up.commit().await.map(|_| ())
    }

    async fn read(v: &Vfs, path: &str) -> Option<Vec<u8>> {
        let (e, dl) = v.open_read(&ann(), &p(path)).await.ok()?;
        Some(dl.read_at(0, e.size as usize + 1).await.unwrap().to_vec())
    }

    /// Uploads committing at the same time share commits, and one refused inside the shared
    /// transaction (its If-Match no longer holds) is undone alone: the others commit, its
    /// name keeps the bytes it had, and nothing is left in storage.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_upload_is_undone_alone_and_the_others_commit_together() {
        let (dir, v) = fs_vfs().await;
        v.mkdir(&ann(), &p("/k")).await.unwrap();
        put(&v, "/k/target", b"one", UploadOptions::default())
            .await
            .unwrap();
        let etag = v.stat(&ann(), &p("/k/target")).await.unwrap().etag;
        let opts = UploadOptions {
            if_match: Some(etag),
            ..Default::default()
        };
        let mut stale = v.upload(&ann(), &p("/k/target"), opts).await.unwrap();
        stale.write(Bytes::from_static(b"stale")).await.unwrap();
        put(&v, "/k/target", b"two", UploadOptions::default())
            .await
            .unwrap();
        let before = v.journal.as_ref().unwrap().commits_begun();
        let mut tasks = Vec::new();
        for i in 0..24 {
            let v = v.clone();
            tasks.push(tokio::spawn(async move {
                let body = format!("file {i}");
                put(&v, &format!("/k/f{i}"), body.as_bytes(), Default::default()).await
            }));
        }
        let refused = stale.commit().await;
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(matches!(refused, Err(VfsError::Changed(_))), "{refused:?}");
        let commits = v.journal.as_ref().unwrap().commits_begun() - before;
        assert!(commits < 24, "25 uploads took {commits} commits");
        assert_eq!(read(&v, "/k/target").await.unwrap(), b"two");
        for i in 0..24 {
            let want = format!("file {i}");
            assert_eq!(
                read(&v, &format!("/k/f{i}")).await.unwrap(),
                want.as_bytes()
            );
        }
        assert!(v.fsck(false).await.unwrap().is_clean());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "tmp/ holds {left:?}");
    }

    /// Uploads whose tasks are cancelled at any instant of their commit (the replication
    /// receiver's commits run in the caller's task) either committed whole or left nothing,
    /// never a batch held open: the uploads after them commit, and fsck finds no drift.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_cancelled_inside_their_commit_leave_no_batch_open() {
        let (_dir, v) = fs_vfs().await;
        v.mkdir(&ann(), &p("/k")).await.unwrap();
        for round in 0..6u64 {
            let mut tasks = Vec::new();
            for i in 0..16u64 {
                let v = v.clone();
                let task = tokio::spawn(async move {
                    let path = format!("/k/r{round}-{i}");
                    let mut up = v.upload(&ann(), &p(&path), Default::default()).await?;
                    up.write(Bytes::from(path.clone().into_bytes())).await?;
                    let (md5, size) = up.seal().await?;
                    up.record(md5, size, 1, None, None).await.map(|_| ())
                });
                tasks.push(task);
            }
            // half are cancelled a few hundred microseconds to a few milliseconds in
            for (i, t) in tasks.iter().enumerate() {
                if i % 2 == 1 {
                    tokio::time::sleep(Duration::from_micros(150 * (i as u64 + round))).await;
                    t.abort();
                }
            }
            for (i, t) in tasks.into_iter().enumerate() {
                match t.await {
                    Ok(r) => r.unwrap(),
                    Err(e) => assert!(e.is_cancelled() && i % 2 == 1, "{e}"),
                }
            }
            for i in 0..16u64 {
                let path = format!("/k/r{round}-{i}");
                match read(&v, &path).await {
                    Some(bytes) => assert_eq!(bytes, path.as_bytes()),
                    None => assert!(i % 2 == 1, "{path} was acknowledged"),
                }
            }
            let after = tokio::time::timeout(
                Duration::from_secs(10),
                put(&v, "/k/after", b"after", Default::default()),
            )
            .await;
            assert!(matches!(after, Ok(Ok(()))), "round {round}: {after:?}");
        }
        assert!(v.fsck(false).await.unwrap().is_clean());
    }
}
