//! POSIX-style permissions: the one place that decides who may do what, for every protocol.

use super::{Caller, Entry, VPath, Vfs, VfsError};

/// Read: see a file's bytes, list a folder.
pub const R: u32 = 4;
/// Write: change a file; add, remove or rename names in a folder.
pub const W: u32 = 2;
/// Execute: pass through a folder to anything below it.
pub const X: u32 = 1;

impl Entry {
    /// Whether `c` holds all of `want` (R/W/X bits) on this entry; administrators always do.
    pub fn allows(&self, c: &Caller, want: u32) -> bool {
        if c.is_admin {
            return true;
        }
        if c.is_anonymous() {
            // passing through folders "other" may enter, nothing more: what an anonymous
            // caller may read is decided by `Vfs::anonymous_may_read` (vfs/public.rs)
            return want == X && self.is_dir && self.mode & X == X;
        }
        let shift = if self.owned_by(c) {
            6
        } else if self.group.as_ref().is_some_and(|g| c.groups.contains(g)) {
            3
        } else {
            0
        };
        (self.mode >> shift) & want == want
    }

    /// Whether `c` is this entry's owner; the anonymous caller owns nothing.
    pub fn owned_by(&self, c: &Caller) -> bool {
        !c.is_anonymous() && self.owner.as_deref() == Some(c.user.as_str())
    }

    /// Fails unless `c` owns this entry or is an administrator: who may change its mode and
    /// its bucket's settings. The anonymous caller owns nothing.
    pub fn require_owner(&self, c: &Caller, what: &'static str) -> Result<(), VfsError> {
        if c.is_admin || self.owned_by(c) {
            Ok(())
        } else {
            Err(VfsError::Forbidden(what))
        }
    }

    /// `allows`, as an error naming what was refused.
    pub fn require(&self, c: &Caller, want: u32, what: &'static str) -> Result<(), VfsError> {
        if self.allows(c, want) {
            Ok(())
        } else {
            Err(VfsError::Forbidden(what))
        }
    }
}

impl Vfs {
    /// Finds `path` for `c`: every folder above it must exist and grant x. `None` when the
    /// path itself does not exist (its parent does).
    pub(super) async fn resolve(
        &self,
        c: &Caller,
        path: &VPath,
    ) -> Result<Option<Entry>, VfsError> {
        if path.is_root() {
            return self.lookup(path).await;
        }
        Ok(self.resolve_in(c, path).await?.1)
    }

    /// Like `resolve` for a path other than the root, and also returns the folder holding it.
    pub(super) async fn resolve_in(
        &self,
        c: &Caller,
        path: &VPath,
    ) -> Result<(Entry, Option<Entry>), VfsError> {
        // the path and every folder above it, in one query
        let mut chain = Vec::new();
        let mut p = path.clone();
        while !p.is_root() {
            let parent = p.parent();
            chain.push(p);
            p = parent;
        }
        let keys: Vec<&str> = chain.iter().map(VPath::as_str).collect();
        let mut rows: std::collections::HashMap<String, _> = self
            .store
            .entries_in(&keys)
            .await?
            .into_iter()
            .map(|r| (r.path.clone(), r))
            .collect();
        let mut parent = None;
        for a in chain.iter().skip(1).rev() {
            match rows.remove(a.as_str()) {
                None => return Err(VfsError::NotFound),
                Some(r) if !r.is_dir => return Err(VfsError::Conflict("parent is a file")),
                Some(r) => {
                    let e = Entry::from_row(r)?;
                    e.require(c, X, "a folder on the way may not be entered")?;
                    parent = Some(e);
                }
            }
        }
        let parent = self.parent_of(path, parent).await?;
        let entry = rows
            .remove(path.as_str())
            .map(Entry::from_row)
            .transpose()?;
        Ok((parent, entry))
    }

    /// May `c` add `target` to, or remove or rename it in, folder `dir`? At the root (buckets)
    /// that takes the right to create buckets, and for an existing bucket also owning it.
    pub(super) fn require_name_change(
        c: &Caller,
        dir: &Entry,
        target: Option<&Entry>,
    ) -> Result<(), VfsError> {
        if !dir.path.is_root() {
            return dir.require(c, W | X, "the folder may not be changed");
        }
        let owns = target.is_none_or(|t| t.owner.as_deref() == Some(c.user.as_str()));
        if c.is_admin || (c.can_create_buckets && owns) {
            Ok(())
        } else {
            Err(VfsError::Forbidden(
                "only administrators and bucket creators change buckets",
            ))
        }
    }

    /// The group new entries in `dir` get: the folder's group; at the root the creator's
    /// primary group (a bucket belongs to exactly one group).
    pub(super) fn group_for_new(c: &Caller, dir: &Entry) -> Option<String> {
        if dir.path.is_root() {
            c.primary_group.clone()
        } else {
            dir.group.clone()
        }
    }

    /// The top-level folder (bucket) a path lies in.
    pub(super) fn bucket_of(path: &VPath) -> Option<VPath> {
        let mut p = path.clone();
        if p.is_root() {
            return None;
        }
        while !p.parent().is_root() {
            p = p.parent();
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(owner: &str, group: &str, mode: u32) -> Entry {
        Entry {
            path: VPath::parse("/b/f").unwrap(),
            is_dir: false,
            size: 0,
            mtime: std::time::UNIX_EPOCH,
            etag: String::new(),
            content_type: String::new(),
            owner: Some(owner.into()),
            group: Some(group.into()),
            mode,
            headers: BTreeMap::new(),
            has_props: None,
            sealed: None,
            blob: None,
        }
    }

    fn caller(user: &str, groups: &[&str]) -> Caller {
        Caller {
            user: user.into(),
            is_admin: false,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            primary_group: None,
            can_create_buckets: false,
            lock_tokens: Vec::new(),
        }
    }

    #[test]
    fn owner_group_other_classes() {
        let e = entry("ann", "family", 0o640);
        assert!(e.allows(&caller("ann", &[]), R | W));
        assert!(!e.allows(&caller("ann", &[]), X));
        assert!(e.allows(&caller("bob", &["family"]), R));
        assert!(!e.allows(&caller("bob", &["family"]), W));
        assert!(!e.allows(&caller("eve", &["other"]), R));
        // the owner class applies even when the group class would grant more
        let e = entry("ann", "family", 0o070);
        assert!(!e.allows(&caller("ann", &["family"]), R));
        let mut admin = caller("root", &[]);
        admin.is_admin = true;
        assert!(entry("ann", "family", 0).allows(&admin, R | W | X));
    }

    /// The anonymous caller's empty name owns nothing, even an entry whose owner is empty
    /// (no user can be named so, but the rule does not rest on that).
    #[test]
    fn the_anonymous_caller_owns_nothing() {
        let e = entry("", "", 0o777);
        let anon = Caller::anonymous();
        assert!(e.require_owner(&anon, "owner").is_err());
        assert!(!e.allows(&anon, R) && !e.allows(&anon, W));
        assert!(e.require_owner(&caller("ann", &[]), "owner").is_err());
    }
}
