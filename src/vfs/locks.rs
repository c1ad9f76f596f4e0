//! Locks: the one set of rules for who may lock, unlock and write a locked resource. Every core
//! write checks them with the caller's submitted tokens (`Caller::lock_tokens`), so WebDAV, S3,
//! share drop boxes and replication all obey them. Locks live in SQL, so they survive a
//! restart and are shared by every gateway on the database.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::perm::W;
use super::{Caller, VPath, Vfs, VfsError};
use crate::store::{now_ms, LockChange, LockRow};

/// The live locks as one caller sees them (`Vfs::lock_view`): other users' tokens emptied.
#[derive(Clone, Debug, Default)]
pub struct LockView(Vec<Lock>);

impl LockView {
    /// Whether no lock is live at all (a listing then discovers none on any entry).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The locks on `path` and on the folders above it.
    pub fn on(&self, path: &VPath) -> Vec<Lock> {
        self.0
            .iter()
            .filter(|l| path.starts_with(&l.path))
            .cloned()
            .collect()
    }
}

/// A lock as the protocols see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Lock {
    /// `urn:uuid:` token.
    pub token: String,
    /// The locked path.
    pub path: VPath,
    /// Taken on a collection URL.
    pub collection: bool,
    /// Holder.
    pub principal: Option<String>,
    /// The client's `<owner>` XML.
    pub owner_xml: Option<String>,
    /// Expiry (`None`: never).
    pub timeout_at: Option<SystemTime>,
    /// Granted timeout.
    pub timeout: Option<Duration>,
    /// Shared or exclusive.
    pub shared: bool,
    /// Depth infinity.
    pub deep: bool,
}

/// A lock request.
pub struct LockRequest<'a> {
    /// Path to lock.
    pub path: &'a VPath,
    /// Whether the URL named a collection.
    pub collection: bool,
    /// `<owner>` XML to keep.
    pub owner_xml: Option<String>,
    /// Requested timeout (`None`: infinite, which gets the configured cap).
    pub timeout: Option<Duration>,
    /// Shared lock.
    pub shared: bool,
    /// Depth infinity.
    pub deep: bool,
}

fn from_row(r: &LockRow) -> Option<Lock> {
    Some(Lock {
        token: r.token.clone(),
        path: VPath::parse(&r.path).ok()?,
        collection: r.collection,
        principal: r.principal.clone(),
        owner_xml: r.owner_xml.clone(),
        timeout_at: r
            .timeout_at_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)),
        timeout: r.timeout_s.map(|s| Duration::from_secs(s.max(0) as u64)),
        shared: r.shared,
        deep: r.deep,
    })
}

fn expiry(timeout: Option<Duration>) -> (Option<i64>, Option<i64>) {
    match timeout {
        Some(t) => (
            Some(now_ms() + t.as_millis() as i64),
            Some(t.as_secs() as i64),
        ),
        None => (None, None),
    }
}

/// Whether `lock` bears on `path` from above: on it, or deep on an ancestor.
fn covers(lock: &Lock, path: &VPath) -> bool {
    lock.path == *path || (lock.deep && path.starts_with(&lock.path))
}

/// The rules of RFC 4918 section 7 as dav-server's memory lock system applies them: a
/// conflicting lock is returned as the error.
pub struct Rules<'a> {
    /// Who asks.
    pub principal: Option<&'a str>,
    /// Match tokens to any principal (dav-server passes this for some checks).
    pub ignore_principal: bool,
    /// Tokens submitted in the `If:` header.
    pub tokens: &'a [String],
    /// Shared locks do not conflict (when taking a shared lock).
    pub shared_ok: bool,
}

impl Rules<'_> {
    fn holds(&self, l: &Lock) -> bool {
        self.tokens.contains(&l.token)
            && (self.ignore_principal || self.principal == l.principal.as_deref())
    }

    /// Locks on the path or deep above it.
    pub fn check_to(&self, locks: &[Lock], path: &VPath) -> Result<(), Box<Lock>> {
        let mut holds = false;
        let mut first_shared: Option<&Lock> = None;
        for l in locks.iter().filter(|l| covers(l, path)) {
            if self.holds(l) {
                holds = true;
            } else {
                if !l.shared {
                    return Err(Box::new(l.clone()));
                }
                if !self.shared_ok {
                    first_shared.get_or_insert(l);
                }
            }
        }
        match first_shared {
            Some(l) if !holds => Err(Box::new(l.clone())),
            _ => Ok(()),
        }
    }

    /// Locks on the path or anywhere below it.
    pub fn check_below(&self, locks: &[Lock], path: &VPath) -> Result<(), Box<Lock>> {
        for l in locks.iter().filter(|l| l.path.starts_with(path)) {
            if (!l.shared || !self.shared_ok) && !self.holds(l) {
                return Err(Box::new(l.clone()));
            }
        }
        Ok(())
    }
}

fn live(rows: &[LockRow]) -> Vec<Lock> {
    rows.iter().filter_map(from_row).collect()
}

pub use crate::config::DEFAULT_LOCKS_PER_USER;

/// Largest `<owner>` XML kept with a lock, in bytes; a LOCK body over this size is refused
/// (413) before it is parsed.
pub const LOCK_OWNER_MAX: usize = 4096;

/// The locks a core write must hold, checked inside its transaction (`Vfs::commit_with`).
pub(super) struct Guard {
    store: crate::store::Store,
    principal: String,
    tokens: Vec<String>,
    /// Each path written, and whether everything below it is written too (delete, move).
    targets: Vec<(VPath, bool)>,
}

impl Guard {
    /// Refuses with `Locked` when a lock bears on a target and the caller does not hold it
    /// (its token submitted, and taken by the same user).
    pub(super) async fn check(self) -> Result<(), VfsError> {
        let locks = live(&self.store.live_locks().await?);
        if locks.is_empty() {
            return Ok(());
        }
        let rules = Rules {
            principal: Some(&self.principal),
            ignore_principal: false,
            tokens: &self.tokens,
            shared_ok: false,
        };
        for (path, deep) in &self.targets {
            let mut r = rules.check_to(&locks, path);
            if r.is_ok() && *deep {
                r = rules.check_below(&locks, path);
            }
            if let Err(l) = r {
                return Err(VfsError::Locked(l.path.to_string()));
            }
        }
        Ok(())
    }
}

impl Vfs {
    /// The granted timeout: what was asked, at most the configured cap (`None` asks for infinite).
    /// A zero cap means none: `Infinite` locks are then granted.
    fn capped(&self, asked: Option<Duration>) -> Option<Duration> {
        let max = self.lock_timeout_max;
        if max.is_zero() {
            return asked;
        }
        Some(asked.map_or(max, |t| t.min(max)))
    }

    /// The lock check of a write by `c` on `targets` (path, and whether below it too).
    pub(super) fn guard(&self, c: &Caller, targets: Vec<(VPath, bool)>) -> Guard {
        Guard {
            store: self.store.clone(),
            principal: c.user.clone(),
            tokens: c.lock_tokens.clone(),
            targets,
        }
    }

    /// Fails with `Locked` when `c` may not write `targets` for a lock it does not hold (the
    /// early check of writes that stream a body first; the commit checks again).
    pub(super) async fn check_unlocked(
        &self,
        c: &Caller,
        targets: Vec<(VPath, bool)>,
    ) -> Result<(), VfsError> {
        self.guard(c, targets).check().await
    }

    /// Whether `c` may lock `path`: fewer live locks than the cap, `w` on it (on its folder
    /// when nothing is there yet); the root and buckets only for their owner and
    /// administrators, so no user can freeze writes above what she may write.
    pub async fn may_lock(&self, c: &Caller, path: &VPath) -> Result<(), VfsError> {
        const ROOT: &str = "only administrators lock the root";
        const BUCKET: &str = "only the bucket's owner and administrators lock a bucket";
        let held = live(&self.store.live_locks().await?)
            .iter()
            .filter(|l| l.principal.as_deref() == Some(c.user.as_str()))
            .count();
        if held >= self.lock_max_per_user {
            return Err(VfsError::TooManyLocks(self.lock_max_per_user));
        }
        if c.is_admin {
            return Ok(());
        }
        if path.is_root() {
            return Err(VfsError::Forbidden(ROOT));
        }
        match self.resolve(c, path).await? {
            Some(e) if path.parent().is_root() => {
                if e.owner.as_deref() != Some(c.user.as_str()) {
                    return Err(VfsError::Forbidden(BUCKET));
                }
                e.require(c, W, "the bucket may not be written")
            }
            Some(e) => e.require(c, W, "the resource may not be written"),
            None if path.parent().is_root() => Err(VfsError::Forbidden(BUCKET)),
            None => {
                let dir = self.stat(c, &path.parent()).await?;
                if !dir.is_dir {
                    return Err(VfsError::Conflict("parent folder does not exist"));
                }
                Self::require_name_change(c, &dir, None)
            }
        }
    }

    /// Takes a lock, or returns the lock in the way; atomic against concurrent LOCKs. The
    /// caller needs `may_lock`, an `<owner>` of at most `LOCK_OWNER_MAX` bytes, and fewer live
    /// locks than `lock_max_per_user`.
    pub async fn lock(
        &self,
        c: &Caller,
        req: LockRequest<'_>,
    ) -> Result<Result<Lock, Box<Lock>>, VfsError> {
        let LockRequest {
            path,
            collection,
            owner_xml,
            timeout,
            shared,
            deep,
        } = req;
        self.may_lock(c, path).await?;
        if owner_xml.as_ref().is_some_and(|o| o.len() > LOCK_OWNER_MAX) {
            return Err(VfsError::TooLarge("the lock owner is over 4096 bytes"));
        }
        let principal = c.user.clone();
        let timeout = self.capped(timeout);
        let cap = self.lock_max_per_user;
        self.store
            .with_locks(|rows| {
                let locks = live(rows);
                let held = locks
                    .iter()
                    .filter(|l| l.principal.as_deref() == Some(principal.as_str()))
                    .count();
                if held >= cap {
                    return (LockChange::None, Err(VfsError::TooManyLocks(cap)));
                }
                let rules = Rules {
                    principal: None,
                    ignore_principal: true,
                    tokens: &[],
                    shared_ok: shared,
                };
                if let Err(l) = rules.check_to(&locks, path) {
                    return (LockChange::None, Ok(Err(l)));
                }
                if deep {
                    if let Err(l) = rules.check_below(&locks, path) {
                        return (LockChange::None, Ok(Err(l)));
                    }
                }
                let (at, secs) = expiry(timeout);
                let row = LockRow {
                    token: uuid::Uuid::new_v4().urn().to_string(),
                    path: path.to_string(),
                    collection,
                    principal: Some(principal.clone()),
                    owner_xml,
                    timeout_at_ms: at,
                    timeout_s: secs,
                    shared,
                    deep,
                };
                match from_row(&row) {
                    Some(l) => (LockChange::Insert(row), Ok(Ok(l))),
                    None => (LockChange::None, Ok(Err(Box::new(Lock::placeholder(path))))),
                }
            })
            .await?
    }

    /// Fails with `Forbidden` when `token` names a live lock of another user and `c` is no
    /// administrator (UNLOCK is bound to the lock's principal).
    pub async fn may_unlock(&self, c: &Caller, token: &str) -> Result<(), VfsError> {
        let locks = live(&self.store.live_locks().await?);
        match locks.iter().find(|l| l.token == token) {
            Some(l) if !c.is_admin && l.principal.as_deref() != Some(c.user.as_str()) => Err(
                VfsError::Forbidden("only the lock's holder or an administrator unlocks it"),
            ),
            _ => Ok(()),
        }
    }

    /// Releases a lock held by `c` (any lock, for an administrator); false when no such lock
    /// is on the path.
    pub async fn unlock(&self, c: &Caller, path: &VPath, token: &str) -> Result<bool, VfsError> {
        self.store
            .with_locks(|rows| {
                match live(rows)
                    .into_iter()
                    .find(|l| l.token == token && l.path == *path)
                {
                    Some(l) if !c.is_admin && l.principal.as_deref() != Some(c.user.as_str()) => (
                        LockChange::None,
                        Err(VfsError::Forbidden(
                            "only the lock's holder or an administrator unlocks it",
                        )),
                    ),
                    Some(l) => (LockChange::Remove(l.token), Ok(true)),
                    None => (LockChange::None, Ok(false)),
                }
            })
            .await?
    }

    /// Extends a lock held on `path`.
    pub async fn refresh_lock(
        &self,
        path: &VPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<Lock>, VfsError> {
        let timeout = self.capped(timeout);
        Ok(self
            .store
            .with_locks(|rows| {
                // a refresh may name the lock root or any resource it covers
                match live(rows)
                    .into_iter()
                    .find(|l| l.token == token && covers(l, path))
                {
                    Some(mut l) => {
                        let (at, secs) = expiry(timeout);
                        l.timeout = timeout;
                        l.timeout_at = at.map(|ms| UNIX_EPOCH + Duration::from_millis(ms as u64));
                        (LockChange::Refresh(l.token.clone(), at, secs), Some(l))
                    }
                    None => (LockChange::None, None),
                }
            })
            .await?)
    }

    /// Checks that the caller holds every lock bearing on `path` (and below it when `deep`).
    pub async fn check_locks(
        &self,
        path: &VPath,
        rules: Rules<'_>,
        deep: bool,
    ) -> Result<Result<(), Box<Lock>>, VfsError> {
        let locks = live(&self.store.live_locks().await?);
        let mut r = rules.check_to(&locks, path);
        if r.is_ok() && deep {
            r = rules.check_below(&locks, path);
        }
        Ok(r)
    }

    /// The live locks as `c` sees them in `lockdiscovery`, read in one query, so that a
    /// PROPFIND of a folder discovers the locks of all its entries from one read.
    pub async fn lock_view(&self, c: &Caller) -> Result<LockView, VfsError> {
        Ok(LockView(
            live(&self.store.live_locks().await?)
                .into_iter()
                .map(|mut l| {
                    if !c.is_admin && l.principal.as_deref() != Some(c.user.as_str()) {
                        l.token = String::new();
                    }
                    l
                })
                .collect(),
        ))
    }

    /// For each of `paths`, a live lock bearing on it (on it, or a depth-infinity lock on a
    /// folder above), from one query: what a listing shows. Tokens are hidden as in
    /// `discover_locks`.
    pub async fn locks_bearing_on(
        &self,
        c: &Caller,
        paths: &[VPath],
    ) -> Result<Vec<Option<Lock>>, VfsError> {
        let locks = live(&self.store.live_locks().await?);
        Ok(paths
            .iter()
            .map(|p| {
                locks
                    .iter()
                    .find(|l| l.path == *p || (l.deep && p.starts_with(&l.path)))
                    .cloned()
                    .map(|mut l| {
                        if !c.is_admin && l.principal.as_deref() != Some(c.user.as_str()) {
                            l.token = String::new();
                        }
                        l
                    })
            })
            .collect())
    }

    /// Tokens of the locks `c` holds exactly on `path` (a LOCK on an unmapped URL creates the
    /// resource under the lock it has just taken).
    pub async fn own_locks_on(&self, c: &Caller, path: &VPath) -> Result<Vec<String>, VfsError> {
        Ok(live(&self.store.live_locks().await?)
            .into_iter()
            .filter(|l| l.path == *path && l.principal.as_deref() == Some(c.user.as_str()))
            .map(|l| l.token)
            .collect())
    }

    /// Forgets the locks on `path` and below (after it was deleted or moved away).
    pub async fn drop_locks(&self, path: &VPath) -> Result<(), VfsError> {
        Ok(self.store.delete_locks_below(path.as_str()).await?)
    }

    /// Every live lock, for administrators (`kura lock list`, `GET /api/v1/locks`).
    pub async fn all_locks(&self, c: &Caller) -> Result<Vec<Lock>, VfsError> {
        if !c.is_admin {
            return Err(VfsError::Forbidden("only administrators list every lock"));
        }
        Ok(live(&self.store.live_locks().await?))
    }

    /// Removes any lock by its token (administrators); the lock removed, `None` if none.
    pub async fn break_lock(&self, c: &Caller, token: &str) -> Result<Option<Lock>, VfsError> {
        if !c.is_admin {
            return Err(VfsError::Forbidden("only administrators break locks"));
        }
        Ok(self
            .store
            .with_locks(
                |rows| match live(rows).into_iter().find(|l| l.token == token) {
                    Some(l) => (LockChange::Remove(l.token.clone()), Some(l)),
                    None => (LockChange::None, None),
                },
            )
            .await?)
    }
}

impl Lock {
    fn placeholder(path: &VPath) -> Lock {
        Lock {
            token: String::new(),
            path: path.clone(),
            collection: false,
            principal: None,
            owner_xml: None,
            timeout_at: None,
            timeout: None,
            shared: false,
            deep: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(path: &str, shared: bool, deep: bool, token: &str) -> Lock {
        Lock {
            token: token.into(),
            path: VPath::parse(path).unwrap(),
            collection: false,
            principal: Some("ann".into()),
            owner_xml: None,
            timeout_at: None,
            timeout: None,
            shared,
            deep,
        }
    }

    #[test]
    fn exclusive_deep_locks_cover_below_and_tokens_unlock() {
        let locks = vec![lock("/a", false, true, "t1")];
        let none = Rules {
            principal: Some("ann"),
            ignore_principal: false,
            tokens: &[],
            shared_ok: false,
        };
        let p = VPath::parse("/a/b/c").unwrap();
        assert!(none.check_to(&locks, &p).is_err());
        let tokens = vec!["t1".to_string()];
        let held = Rules {
            principal: Some("ann"),
            ignore_principal: false,
            tokens: &tokens,
            shared_ok: false,
        };
        assert!(held.check_to(&locks, &p).is_ok());
        let other = Rules {
            principal: Some("bob"),
            ignore_principal: false,
            tokens: &tokens,
            shared_ok: false,
        };
        assert!(
            other.check_to(&locks, &p).is_err(),
            "a token is bound to its principal"
        );
        assert!(none.check_to(&locks, &VPath::parse("/ab").unwrap()).is_ok());
        assert!(none.check_below(&locks, &VPath::root()).is_err());
    }

    #[test]
    fn shared_locks_only_block_exclusive_ones() {
        let locks = vec![lock("/f", true, false, "s1")];
        let taking_shared = Rules {
            principal: None,
            ignore_principal: true,
            tokens: &[],
            shared_ok: true,
        };
        assert!(taking_shared
            .check_to(&locks, &VPath::parse("/f").unwrap())
            .is_ok());
        let taking_exclusive = Rules {
            principal: None,
            ignore_principal: true,
            tokens: &[],
            shared_ok: false,
        };
        assert!(taking_exclusive
            .check_to(&locks, &VPath::parse("/f").unwrap())
            .is_err());
    }
}
