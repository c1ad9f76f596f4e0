//! The storage journal of the `fs` backend: the renames a metadata commit depends on are written
//! down before they happen, so a kill at any instant is undone (or finished) at the next start.
//!
//! A commit that changes the tree on disk (an upload or copy replacing a file, a move, a delete,
//! a new folder) runs, holding this process's gate and inside its SQL write transaction:
//!
//! 1. the steps are resolved into operations, each with the inode it expects, and written over
//!    this process's journal file, `journal/<owner>.journal` beside `tmp/` (fsynced when
//!    `durable`; the file and its folder were made durable once, at its first commit, so a
//!    commit costs one fsync of the journal, not a new file and an fsync of its folder);
//! 2. the operations run: a file about to be replaced is first hard-linked aside (`Keep`), then
//!    renames put the new bytes, the moved tree or the deleted tree (into `tmp/`) in place; the
//!    folders they touched are fsynced;
//! 3. the transaction records `<seq>` as this owner's last commit (`commit_marks`) and commits;
//! 4. the journal file is emptied (still holding the gate), then what was kept aside removed.
//!
//! At start, a journal left behind is resolved by the mark: committed, its renames are finished
//! (a power cut may have lost one) and the kept files dropped; not committed, every operation that
//! happened is reversed, checked by inode, so the old bytes are back under the old row. An empty
//! or torn journal names nothing that happened (the operations start only once it is written).
//! Only the journals of commits in flight hold anything, so recovery never scans the tree.
//! Journals of earlier versions (`tmp/<owner>-<seq>.journal`) are resolved the same way.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::storage::io_err;
use super::VfsError;
use crate::store::{Mark, Store};

/// What a commit needs done on disk, in order.
#[derive(Clone, Debug)]
pub(super) enum Step {
    /// `from` becomes `to`; a file at `to` is kept aside until the commit (or for good at
    /// `keep`, a noncurrent version: a hard link, no byte copied), a folder at `to` (not
    /// recorded: the checks refuse recorded ones) is moved into `tmp/`.
    Put {
        from: PathBuf,
        to: PathBuf,
        keep: Option<PathBuf>,
    },
    /// `path` (file or folder) goes into `tmp/` and is removed after the commit, or to `keep`
    /// (the trash) for good.
    Remove {
        path: PathBuf,
        keep: Option<PathBuf>,
    },
    /// A new folder (its parent exists).
    Mkdir { path: PathBuf },
}

/// One operation as journaled, with what recovery needs to check and reverse it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
enum Op {
    /// A hard link of the file `path` (inode `ino`) at `undo`.
    Keep {
        path: PathBuf,
        undo: PathBuf,
        ino: u64,
    },
    /// A rename of `from` (inode `ino`) to `to`.
    Rename {
        from: PathBuf,
        to: PathBuf,
        ino: u64,
    },
    /// A folder created at `path`.
    Mkdir { path: PathBuf },
}

/// The journal file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The commit's sequence number (its mark); absent in the per-commit files of earlier
    /// versions, whose name holds it.
    #[serde(default)]
    seq: Option<u64>,
    ops: Vec<Op>,
    /// Files and folders in `tmp/` to remove once committed.
    garbage: Vec<PathBuf>,
}

/// The journal of one process on one data dir; cheap to clone.
#[derive(Clone)]
pub(super) struct Journal(Arc<Inner>);

struct Inner {
    tmp: PathBuf,
    /// This process's journal file, open once it was first written (only under the gate).
    file: std::sync::Mutex<Option<std::fs::File>>,
    /// This process's row in `commit_marks`.
    owner: String,
    seq: AtomicU64,
    /// One journaled commit at a time: at most one journal per owner is ever unresolved.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// fsync the journal before acting on it (a power cut, not only a kill).
    durable: bool,
    /// Mode of the folders a commit makes.
    dir_mode: u32,
}

impl Drop for Inner {
    /// The journal file goes with the process's last handle (every commit is resolved then).
    fn drop(&mut self) {
        let open = self.file.get_mut().map(|f| f.take()).unwrap_or(None);
        if open.is_some() {
            let _ = std::fs::remove_file(file_of(&self.tmp, &self.owner));
        }
    }
}

/// A commit being made: its journal, while the gate is held.
pub(super) struct Pending {
    journal: Journal,
    seq: u64,
    /// The steps, in order (a group commit adds each member's).
    steps: std::sync::Mutex<Vec<Step>>,
    /// Resolved operations, once they started.
    record: std::sync::Mutex<Option<Record>>,
    ran: AtomicBool,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

impl Journal {
    /// The journal of a process working on the `fs` backend whose temporary folder is `tmp`.
    pub(super) fn new(tmp: PathBuf, durable: bool, dir_mode: u32) -> Journal {
        Journal(Arc::new(Inner {
            tmp,
            file: std::sync::Mutex::new(None),
            owner: uuid::Uuid::new_v4().simple().to_string(),
            seq: AtomicU64::new(1),
            gate: Arc::new(tokio::sync::Mutex::new(())),
            durable,
            dir_mode,
        }))
    }

    /// Whether `steps` can run as things stand on disk (a name past the system's limits, a
    /// file where a folder goes fail here): resolved alone, nothing written.
    pub(super) fn check(&self, steps: &[Step]) -> std::io::Result<()> {
        resolve(steps, &self.0.tmp, &self.0.owner, 0).map(drop)
    }

    /// How many journaled commits this process began (tests: a group commit is one).
    #[cfg(test)]
    pub(super) fn commits_begun(&self) -> u64 {
        self.0.seq.load(Ordering::Relaxed) - 1
    }

    /// Whether commits are fsynced before they act.
    pub(super) fn durable(&self) -> bool {
        self.0.durable
    }

    /// Takes the gate for a commit that will do `steps`; the guard is held until it is resolved.
    pub(super) async fn begin(&self, steps: Vec<Step>) -> Arc<Pending> {
        let guard = self.0.gate.clone().lock_owned().await;
        Arc::new(Pending {
            journal: self.clone(),
            seq: self.0.seq.fetch_add(1, Ordering::Relaxed),
            steps: std::sync::Mutex::new(steps),
            record: std::sync::Mutex::new(None),
            ran: AtomicBool::new(false),
            _gate: guard,
        })
    }

    /// Holds the gate without a commit: no journaled commit runs until the guard drops.
    pub(super) async fn hold(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.0.gate.clone().lock_owned().await
    }

    fn path(&self) -> PathBuf {
        file_of(&self.0.tmp, &self.0.owner)
    }

    /// Writes `record` over this process's journal file (made, with its folder, at the first
    /// commit), fsynced when durable.
    fn write(&self, record: &Record) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        let mut slot = self.0.file.lock().unwrap_or_else(|e| e.into_inner());
        let f = match slot.take() {
            Some(f) => f,
            None => self.create()?,
        };
        let written = f
            .write_all_at(&bytes, 0)
            .and_then(|()| f.set_len(bytes.len() as u64))
            .and_then(|()| {
                if self.0.durable {
                    f.sync_data()
                } else {
                    Ok(())
                }
            });
        *slot = Some(f);
        written
    }

    /// Makes the journal file and its folder, both durable before any commit relies on them.
    fn create(&self) -> std::io::Result<std::fs::File> {
        let dir = folder(&self.0.tmp);
        match super::storage::make_dir(&dir, self.0.dir_mode) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(self.path())?;
        if self.0.durable {
            f.sync_all()?;
            std::fs::File::open(&dir)?.sync_all()?;
            if let Some(up) = dir.parent() {
                std::fs::File::open(up)?.sync_all()?;
            }
        }
        Ok(f)
    }

    /// Empties the journal file once its commit is resolved (no fsync: a committed journal
    /// found again at start is finished again, which changes nothing).
    fn clear(&self) {
        let slot = self.0.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = slot.as_ref() {
            if let Err(e) = f.set_len(0) {
                tracing::error!(journal = %self.path().display(), error = %e, "could not empty a resolved journal");
            }
        }
    }

    /// Resolves what a previous run left in flight (before `tmp/` is swept); returns how many
    /// commits were finished and how many undone.
    pub(super) async fn recover(tmp: &Path, store: &Store) -> Result<(usize, usize), VfsError> {
        // this version's files (`<owner>.journal`), and earlier ones' (`<owner>-<seq>.journal`)
        let mut found = Vec::new();
        for (dir, named_seq) in [(folder(tmp), false), (tmp.to_path_buf(), true)] {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Some(stem) = name.strip_suffix(".journal") else {
                    continue;
                };
                match (named_seq, stem.rsplit_once('-')) {
                    (true, Some((owner, seq))) => {
                        found.push((owner.to_string(), seq.parse().ok(), e.path()))
                    }
                    (true, None) => {}
                    (false, _) => found.push((stem.to_string(), None, e.path())),
                }
            }
        }
        let (mut finished, mut undone) = (0, 0);
        for (owner, named, file) in found {
            let record: Option<Record> = std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let seq = named.or(record.as_ref().and_then(|r| r.seq));
            let mark = store.mark_of(&owner).await?;
            let committed = seq.is_some_and(|n| mark.as_deref() == Some(n.to_string().as_str()));
            if let Some(r) = record {
                let r2 = r;
                let res = tokio::task::spawn_blocking(move || {
                    if committed {
                        finish(&r2.ops);
                    } else {
                        undo(&r2.ops);
                    }
                    (r2, committed)
                })
                .await
                .map_err(|e| io_err(std::io::Error::other(e)))?;
                let (r, committed) = res;
                tracing::warn!(
                    journal = %file.display(),
                    operations = r.ops.len(),
                    committed,
                    "resolved a commit interrupted by a stop: {}",
                    if committed { "finished it" } else { "undid it" }
                );
                if committed {
                    finished += 1;
                } else {
                    undone += 1;
                }
            }
            // an empty or unreadable journal was resolved or written only in part: nothing it
            // names had happened
            let _ = std::fs::remove_file(&file);
        }
        store.forget_marks().await?;
        Ok((finished, undone))
    }
}

impl Pending {
    /// The mark its transaction writes, proving at start that it committed.
    pub(super) fn mark(&self) -> Mark {
        Mark {
            owner: self.journal.0.owner.clone(),
            seq: self.seq.to_string(),
        }
    }

    /// Adds `steps` to run after those already given (a group commit's next member).
    pub(super) fn add(&self, steps: Vec<Step>) {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(steps);
    }

    /// Drops the steps after the first `len` (a group commit's member undone after all).
    pub(super) fn truncate(&self, len: usize) {
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .truncate(len);
    }

    /// How many steps it holds.
    pub(super) fn steps_len(&self) -> usize {
        self.steps.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Journals and runs the steps (inside the transaction, just before its COMMIT).
    pub(super) async fn run(self: &Arc<Self>) -> Result<(), VfsError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.run_blocking())
            .await
            .map_err(|e| io_err(std::io::Error::other(e)))?
            .map_err(io_err)
    }

    fn run_blocking(&self) -> std::io::Result<()> {
        let j = &self.journal.0;
        let steps = std::mem::take(&mut *self.steps.lock().unwrap_or_else(|e| e.into_inner()));
        let record = resolve(&steps, &j.tmp, &j.owner, self.seq)?;
        self.journal.write(&record)?;
        self.ran.store(true, Ordering::SeqCst);
        let ops = record.ops.clone();
        *self.record.lock().unwrap_or_else(|e| e.into_inner()) = Some(record);
        let mut dirs = BTreeSet::new();
        for op in &ops {
            apply(op, j.dir_mode)?;
            match op {
                Op::Rename { from, to, .. } => {
                    dirs.extend(from.parent().map(Path::to_path_buf));
                    dirs.extend(to.parent().map(Path::to_path_buf));
                }
                Op::Mkdir { path } => {
                    dirs.extend(path.parent().map(Path::to_path_buf));
                }
                // a version kept for good is durable with the commit
                Op::Keep { undo, .. } => dirs.extend(undo.parent().map(Path::to_path_buf)),
            }
        }
        // the renames are durable before the commit is acknowledged; tmp/ itself needs no
        // fsync (what appears or vanishes there is swept or recovered at start)
        dirs.remove(&j.tmp);
        for d in dirs.into_iter().filter(|_| j.durable) {
            std::fs::File::open(&d)?.sync_all()?;
        }
        crash_point();
        Ok(())
    }

    /// After the COMMIT: the journal goes (still under the gate), then what was kept aside.
    pub(super) async fn committed(self: Arc<Self>) {
        self.close(true).await
    }

    /// After a refused or failed commit: whatever ran is reversed.
    pub(super) async fn failed(self: Arc<Self>) {
        self.close(false).await
    }

    async fn close(self: Arc<Self>, committed: bool) {
        if !self.ran.load(Ordering::SeqCst) {
            // a journal written in part names operations that never ran
            self.journal.clear();
            return;
        }
        let record = self.record.lock().unwrap_or_else(|e| e.into_inner()).take();
        let res = match record {
            Some(r) if committed => Ok(r.garbage),
            Some(r) => tokio::task::spawn_blocking(move || {
                undo(&r.ops);
                r.garbage
            })
            .await
            .map_err(std::io::Error::other),
            None => Ok(Vec::new()),
        };
        // emptied on this thread: one quick call, no blocking-pool round trip per commit
        self.journal.clear();
        match res {
            // removed off the gate: a large deleted tree does not hold up the next commit
            Ok(garbage) if !garbage.is_empty() => {
                tokio::task::spawn_blocking(move || garbage.iter().for_each(|g| remove_any(g)));
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "resolving a journaled commit failed"),
        }
    }
}

impl Drop for Pending {
    /// A commit dropped after its operations ran and before `close` (its task cancelled as the
    /// runtime stops, or a panic) is resolved only at the next start: its journal is moved
    /// to the per-commit name recovery reads (`tmp/<owner>-<seq>.journal`), so that neither
    /// the process's next commit nor its end (`Inner`'s drop) removes it.
    fn drop(&mut self) {
        let abandoned = self.record.get_mut().map(|r| r.is_some()).unwrap_or(true);
        if !(self.ran.load(Ordering::SeqCst) && abandoned) {
            return;
        }
        let j = &self.journal.0;
        let mut slot = j.file.lock().unwrap_or_else(|e| e.into_inner());
        let kept = j.tmp.join(format!("{}-{}.journal", j.owner, self.seq));
        match std::fs::rename(self.journal.path(), &kept) {
            Ok(()) => {
                // the next commit makes a new journal file
                *slot = None;
                if j.durable {
                    let _ = std::fs::File::open(&j.tmp).and_then(|d| d.sync_all());
                }
                tracing::warn!(journal = %kept.display(), "a commit was abandoned; the next start resolves it");
            }
            Err(e) => {
                tracing::error!(journal = %kept.display(), error = %e, "could not keep the journal of an abandoned commit")
            }
        }
    }
}

/// Test hook: with `KURA_TEST_CRASH_AFTER_STEPS=N` the process dies (as by SIGKILL: nothing is
/// cleaned up) in its Nth journaled commit, after the storage steps and before the COMMIT, the
/// instant a crash is hardest to survive. Read once; unset in normal operation.
fn crash_point() {
    static LEFT: std::sync::OnceLock<Option<AtomicU64>> = std::sync::OnceLock::new();
    let left = LEFT.get_or_init(|| {
        std::env::var("KURA_TEST_CRASH_AFTER_STEPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(AtomicU64::new)
    });
    if let Some(n) = left {
        if n.fetch_sub(1, Ordering::SeqCst) == 1 {
            eprintln!(
                "KURA_TEST_CRASH_AFTER_STEPS: dying between the storage steps and the COMMIT"
            );
            std::process::abort();
        }
    }
}

/// Turns steps into operations against what is on disk now (the gate is held).
fn resolve(steps: &[Step], tmp: &Path, owner: &str, seq: u64) -> std::io::Result<Record> {
    let mut ops = Vec::new();
    let mut garbage = Vec::new();
    let mut n = 0;
    let mut aside = |garbage: &mut Vec<PathBuf>| {
        n += 1;
        let p = tmp.join(format!("{owner}-{seq}.{n}.aside"));
        garbage.push(p.clone());
        p
    };
    for s in steps {
        match s {
            Step::Put { from, to, keep } => {
                let ino = std::fs::symlink_metadata(from)?.ino();
                match std::fs::symlink_metadata(to) {
                    Ok(m) if m.is_dir() => ops.push(Op::Rename {
                        from: to.clone(),
                        to: aside(&mut garbage),
                        ino: m.ino(),
                    }),
                    Ok(m) => ops.push(Op::Keep {
                        path: to.clone(),
                        undo: match keep {
                            Some(k) => k.clone(),
                            None => aside(&mut garbage),
                        },
                        ino: m.ino(),
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        // a folder missing on disk although recorded: made again
                        if let Some(parent) = to.parent() {
                            let mut missing = Vec::new();
                            let mut d = parent.to_path_buf();
                            while !d.exists() {
                                missing.push(d.clone());
                                match d.parent() {
                                    Some(p) => d = p.to_path_buf(),
                                    None => break,
                                }
                            }
                            ops.extend(missing.into_iter().rev().map(|path| Op::Mkdir { path }));
                        }
                    }
                    Err(e) => return Err(e),
                }
                ops.push(Op::Rename {
                    from: from.clone(),
                    to: to.clone(),
                    ino,
                });
            }
            Step::Remove { path, keep } => match std::fs::symlink_metadata(path) {
                Ok(m) => ops.push(Op::Rename {
                    from: path.clone(),
                    to: match keep {
                        Some(k) => k.clone(),
                        None => aside(&mut garbage),
                    },
                    ino: m.ino(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
            Step::Mkdir { path } => {
                if !path.exists() {
                    ops.push(Op::Mkdir { path: path.clone() });
                }
            }
        }
    }
    Ok(Record {
        seq: Some(seq),
        ops,
        garbage,
    })
}

/// The folder of the journal files: `journal/` beside `tmp/`.
fn folder(tmp: &Path) -> PathBuf {
    tmp.with_file_name("journal")
}

/// The journal file of the process `owner`.
fn file_of(tmp: &Path, owner: &str) -> PathBuf {
    folder(tmp).join(format!("{owner}.journal"))
}

fn ino_of(p: &Path) -> Option<u64> {
    std::fs::symlink_metadata(p).ok().map(|m| m.ino())
}

fn apply(op: &Op, dir_mode: u32) -> std::io::Result<()> {
    match op {
        Op::Keep { path, undo, .. } => std::fs::hard_link(path, undo),
        Op::Rename { from, to, .. } => std::fs::rename(from, to),
        Op::Mkdir { path } => match super::storage::make_dir(path, dir_mode) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        },
    }
}

/// Reverses what happened of `ops`, newest first; each reversal checks it undoes this commit.
fn undo(ops: &[Op]) {
    for op in ops.iter().rev() {
        let r = match op {
            Op::Rename { from, to, ino } => {
                if ino_of(to) == Some(*ino) && ino_of(from).is_none() {
                    std::fs::rename(to, from)
                } else {
                    Ok(())
                }
            }
            Op::Keep { path, undo, ino } => match ino_of(undo) {
                Some(u) if u == *ino && ino_of(path) != Some(*ino) => std::fs::rename(undo, path),
                Some(_) => std::fs::remove_file(undo),
                None => Ok(()),
            },
            Op::Mkdir { path } => match std::fs::remove_dir(path) {
                // not empty or gone: not ours to remove
                Err(_) => Ok(()),
                Ok(()) => Ok(()),
            },
        };
        if let Err(e) = r {
            tracing::error!(?op, error = %e, "could not reverse a storage step");
        }
    }
}

/// Completes the renames of a committed journal that a power cut may have lost.
fn finish(ops: &[Op]) {
    for op in ops {
        let r = match op {
            Op::Rename { from, to, ino }
                if ino_of(from) == Some(*ino) && ino_of(to) != Some(*ino) =>
            {
                std::fs::rename(from, to)
            }
            Op::Mkdir { path } if !path.exists() => std::fs::create_dir(path),
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::error!(?op, error = %e, "could not finish a committed storage step");
        }
    }
}

/// Removes a file or a whole folder, logging a failure (leftovers are swept at the next start).
pub(super) fn remove_any(p: &Path) {
    let r = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(_) => Ok(()),
    };
    if let Err(e) = r {
        tracing::warn!(path = %p.display(), error = %e, "could not remove a leftover");
    }
}
