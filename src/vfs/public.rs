//! Anonymous reads: a request without identity (an unsigned S3 GET or HEAD) may read a file
//! that a public-read ACL (on the file or on its bucket) or the bucket's public policy covers,
//! where the mode lets "other" read the file and pass the folders above it, unless the
//! bucket's public access block says otherwise. Nothing else: no folder, no listing, no write.

use serde::{Deserialize, Serialize};

use super::perm::R;
use super::{Caller, Entry, VPath, Vfs, VfsError};

/// The bucket setting holding its public access block.
const BLOCK: &str = "public.block";
/// The bucket setting holding its public policy.
const POLICY: &str = "public.policy";

/// Why an anonymous caller is refused (the same for a missing file: nothing is revealed).
const NOT_PUBLIC: &str = "anonymous callers read only public files";

/// A bucket's public access block (S3 PutPublicAccessBlock), each switch as AWS defines it.
#[derive(Serialize, Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicBlock {
    /// Setting a public-read ACL is refused.
    pub block_public_acls: bool,
    /// Public-read ACLs are ignored (anonymous reads they allow are refused).
    pub ignore_public_acls: bool,
    /// Setting a public policy is refused.
    pub block_public_policy: bool,
    /// The public policy is ignored.
    pub restrict_public_buckets: bool,
}

/// A bucket's public policy: the key prefixes anyone may read (`""`: every key), with the
/// document as its owner gave it (S3 GetBucketPolicy returns it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PublicPolicy {
    /// Key prefixes anyone may read.
    pub prefixes: Vec<String>,
    /// The policy document as given.
    pub document: String,
}

/// The bucket of a path below one, and the key of the path in it.
fn bucket_and_key(p: &VPath) -> Option<(VPath, &str)> {
    let (bucket, key) = p.as_str().strip_prefix('/')?.split_once('/')?;
    Some((VPath::from_segments([bucket]).ok()?, key))
}

fn no() -> VfsError {
    VfsError::Forbidden(NOT_PUBLIC)
}

impl Vfs {
    /// `stat` for an anonymous caller: a public file, or `Forbidden` (missing ones too).
    pub(super) async fn stat_anonymous(&self, c: &Caller, path: &VPath) -> Result<Entry, VfsError> {
        let e = match self.resolve(c, path).await {
            Ok(Some(e)) => e,
            Ok(None) | Err(VfsError::NotFound | VfsError::Forbidden(_) | VfsError::Conflict(_)) => {
                return Err(no())
            }
            Err(e) => return Err(e),
        };
        self.anonymous_may_read(&e).await?;
        Ok(e)
    }

    /// Fails unless an anonymous caller may read the file `e` (see the module's rule).
    pub(super) async fn anonymous_may_read(&self, e: &Entry) -> Result<(), VfsError> {
        if e.is_dir || e.mode & R != R {
            return Err(no());
        }
        let (bucket, key) = bucket_and_key(&e.path).ok_or_else(no)?;
        let (block, policy) = self.public_settings(&bucket).await?;
        let by_policy = !block.restrict_public_buckets
            && policy.is_some_and(|p| p.prefixes.iter().any(|x| key.starts_with(x.as_str())));
        if by_policy {
            return Ok(());
        }
        let by_acl = !block.ignore_public_acls
            && self
                .store
                .public_read(bucket.as_str(), e.path.as_str())
                .await?;
        if by_acl {
            Ok(())
        } else {
            Err(no())
        }
    }

    async fn public_settings(
        &self,
        bucket: &VPath,
    ) -> Result<(PublicBlock, Option<PublicPolicy>), VfsError> {
        let s = self.store.bucket_settings(bucket.as_str()).await?;
        let block = s
            .get(BLOCK)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        let policy = s.get(POLICY).and_then(|v| serde_json::from_str(v).ok());
        Ok((block, policy))
    }

    /// Whether anonymous callers may read anything in the bucket through its policy or its
    /// own ACL, as its block leaves them (S3 GetBucketPolicyStatus): its owner or an admin.
    pub async fn bucket_is_public(&self, c: &Caller, bucket: &VPath) -> Result<bool, VfsError> {
        let block = self.public_block(c, bucket).await?.unwrap_or_default();
        let policy = self.public_policy(c, bucket).await?;
        let acl = self
            .store
            .public_read(bucket.as_str(), bucket.as_str())
            .await?;
        Ok((policy.is_some() && !block.restrict_public_buckets)
            || (acl && !block.ignore_public_acls))
    }

    /// The bucket's public access block, if it has one: its owner or an administrator.
    pub async fn public_block(
        &self,
        c: &Caller,
        bucket: &VPath,
    ) -> Result<Option<PublicBlock>, VfsError> {
        let v = self.bucket_setting(c, bucket, BLOCK).await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Sets or removes the bucket's public access block: its owner or an administrator.
    pub async fn set_public_block(
        &self,
        c: &Caller,
        bucket: &VPath,
        block: Option<PublicBlock>,
    ) -> Result<(), VfsError> {
        let json = block.map(|b| serde_json::to_string(&b).unwrap_or_default());
        self.set_bucket_setting(c, bucket, BLOCK, json.as_deref())
            .await
    }

    /// The bucket's public policy, if it has one: its owner or an administrator.
    pub async fn public_policy(
        &self,
        c: &Caller,
        bucket: &VPath,
    ) -> Result<Option<PublicPolicy>, VfsError> {
        let v = self.bucket_setting(c, bucket, POLICY).await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Sets or removes the bucket's public policy: its owner or an administrator, and a
    /// policy only when the bucket's block does not forbid public policies.
    pub async fn set_public_policy(
        &self,
        c: &Caller,
        bucket: &VPath,
        policy: Option<PublicPolicy>,
    ) -> Result<(), VfsError> {
        if policy.is_some()
            && self
                .public_block(c, bucket)
                .await?
                .unwrap_or_default()
                .block_public_policy
        {
            return Err(VfsError::Forbidden(
                "the bucket's public access block forbids public policies",
            ));
        }
        let json = policy.map(|p| serde_json::to_string(&p).unwrap_or_default());
        self.set_bucket_setting(c, bucket, POLICY, json.as_deref())
            .await
    }

    /// Whether an entry's ACL is public-read (for the ACL views); any caller that may see it.
    pub async fn is_public_read(&self, c: &Caller, path: &VPath) -> Result<bool, VfsError> {
        self.stat(c, path).await?;
        Ok(self.store.public_read(path.as_str(), path.as_str()).await?)
    }

    /// Sets the mode and, with `public`, whether the entry's ACL is public-read (S3 Put*Acl):
    /// the rule of `chmod` (the owner or an administrator), and public only when the bucket's
    /// block does not forbid public ACLs.
    pub async fn set_acl(
        &self,
        c: &Caller,
        path: &VPath,
        mode: u32,
        public: Option<bool>,
    ) -> Result<(), VfsError> {
        let what = "only the owner or an administrator changes the mode";
        let e = self.stat(c, path).await?;
        if path.is_root() {
            return Err(VfsError::Forbidden(what));
        }
        e.require_owner(c, what)?;
        if public == Some(true) {
            let bucket = match bucket_and_key(path) {
                Some((b, _)) => b,
                None => path.clone(),
            };
            let block = self.store.bucket_settings(bucket.as_str()).await?;
            let block: PublicBlock = block
                .get(BLOCK)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default();
            if block.block_public_acls {
                return Err(VfsError::Forbidden(
                    "the bucket's public access block forbids public ACLs",
                ));
            }
        }
        if mode > 0o777 {
            return Err(VfsError::InvalidArgument("mode is octal, 000 to 777"));
        }
        self.check_unlocked(c, vec![(path.clone(), false)]).await?;
        let mode = i64::from(mode);
        match public {
            None => {
                self.store
                    .set_mode(path.as_str(), mode, crate::store::AttrChange::Here)
                    .await?
            }
            Some(p) => self.store.set_mode_public(path.as_str(), mode, p).await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_split_from_their_bucket() {
        let p = VPath::from_segments(["b", "a", "k"]).unwrap();
        let (b, k) = bucket_and_key(&p).unwrap();
        assert_eq!((b.as_str(), k), ("/b", "a/k"));
        assert!(bucket_and_key(&VPath::from_segments(["b"]).unwrap()).is_none());
        assert!(bucket_and_key(&VPath::root()).is_none());
    }
}
