//! Locks: the one set of rules for who may write a locked resource, used by WebDAV (through
//! dav-server's lock-system interface) and by S3 writes. Locks live in SQL, so they survive a
//! restart and are shared by every gateway on the database.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{VPath, Vfs, VfsError};
use crate::store::{now_ms, LockChange, LockRow};

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
    /// Who asks.
    pub principal: Option<&'a str>,
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

    /// Takes a lock, or returns the lock in the way; atomic against concurrent LOCKs.
    pub async fn lock(&self, req: LockRequest<'_>) -> Result<Result<Lock, Box<Lock>>, VfsError> {
        let LockRequest {
            path,
            collection,
            principal,
            owner_xml,
            timeout,
            shared,
            deep,
        } = req;
        let principal = principal.map(str::to_string);
        let timeout = self.capped(timeout);
        Ok(self
            .store
            .with_locks(|rows| {
                let locks = live(rows);
                let rules = Rules {
                    principal: None,
                    ignore_principal: true,
                    tokens: &[],
                    shared_ok: shared,
                };
                if let Err(l) = rules.check_to(&locks, path) {
                    return (LockChange::None, Err(l));
                }
                if deep {
                    if let Err(l) = rules.check_below(&locks, path) {
                        return (LockChange::None, Err(l));
                    }
                }
                let (at, secs) = expiry(timeout);
                let row = LockRow {
                    token: uuid::Uuid::new_v4().urn().to_string(),
                    path: path.to_string(),
                    collection,
                    principal,
                    owner_xml,
                    timeout_at_ms: at,
                    timeout_s: secs,
                    shared,
                    deep,
                };
                let lock = from_row(&row);
                match lock {
                    Some(l) => (LockChange::Insert(row), Ok(l)),
                    None => (LockChange::None, Err(Box::new(Lock::placeholder(path)))),
                }
            })
            .await?)
    }

    /// Releases a lock; false when no such lock is on the path.
    pub async fn unlock(&self, path: &VPath, token: &str) -> Result<bool, VfsError> {
        Ok(self
            .store
            .with_locks(|rows| {
                match live(rows)
                    .into_iter()
                    .find(|l| l.token == token && l.path == *path)
                {
                    Some(l) => (LockChange::Remove(l.token), true),
                    None => (LockChange::None, false),
                }
            })
            .await?)
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

    /// Locks on `path` and on the folders above it (for `lockdiscovery`).
    pub async fn discover_locks(&self, path: &VPath) -> Result<Vec<Lock>, VfsError> {
        Ok(live(&self.store.live_locks().await?)
            .into_iter()
            .filter(|l| path.starts_with(&l.path))
            .collect())
    }

    /// Forgets the locks on `path` and below (after it was deleted or moved away).
    pub async fn drop_locks(&self, path: &VPath) -> Result<(), VfsError> {
        Ok(self.store.delete_locks_below(path.as_str()).await?)
    }

    /// S3 writes carry no lock token: a write on a locked resource, or under a depth-infinity
    /// lock, is refused (423) whoever asks.
    pub async fn require_unlocked(&self, path: &VPath) -> Result<(), VfsError> {
        let rules = Rules {
            principal: None,
            ignore_principal: false,
            tokens: &[],
            shared_ok: false,
        };
        match self.check_locks(path, rules, true).await? {
            Ok(()) => Ok(()),
            Err(l) => Err(VfsError::Locked(l.path.to_string())),
        }
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
