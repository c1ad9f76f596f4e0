//! The admin service: one implementation of user, group, bucket, quota, key and permission
//! management, used by the CLI and by the REST API alike.

pub mod api;
mod facts;
mod locks;
mod notify;
mod peers;
mod search;
mod types;
mod versions;

use sha2::{Digest, Sha256};

use crate::auth::{hash_password, random_password};
use crate::share_links::{ShareError, ShareRow, ShareSpec, Shares};
use crate::store::{MetaError, Store};
use crate::vault::Vault;
use crate::vfs::{Caller, VPath, Vfs, VfsError};
pub use facts::{FactsView, Runtime, VERSION};
pub use locks::*;
pub use notify::*;
pub use peers::*;
pub use search::FindRequest;
pub use types::*;
pub use versions::*;

/// Why an admin operation failed; each maps to one stable API error code.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The named user, group, bucket, key or path does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// It exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// It is still needed (a group owning buckets, the last administrator), or the tree is
    /// not as the operation needs.
    #[error("{0}")]
    InUse(String),
    /// The request is malformed or a value is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A group's quota would be exceeded (nothing was changed).
    #[error("{0}")]
    Quota(String),
    /// A server-side failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AdminError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotFound(_) => "not_found",
            AdminError::Conflict(_) | AdminError::InUse(_) => "conflict",
            AdminError::Invalid(_) => "invalid",
            AdminError::Forbidden(_) => "forbidden",
            AdminError::Quota(_) => "quota",
            AdminError::Internal(_) => "internal",
        }
    }
}

impl From<MetaError> for AdminError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Duplicate => AdminError::Conflict("the entity".into()),
            MetaError::InUse(m) => AdminError::InUse(m),
            e => {
                tracing::error!(error = %e, "admin: metadata failure");
                AdminError::Internal(e.to_string())
            }
        }
    }
}

impl From<VfsError> for AdminError {
    fn from(e: VfsError) -> Self {
        match e {
            VfsError::NotFound => AdminError::NotFound("the path".into()),
            VfsError::Exists => AdminError::Conflict("the path".into()),
            VfsError::Forbidden(m) => AdminError::Forbidden(m.into()),
            VfsError::Locked(p) => AdminError::InUse(format!("{p} is locked (see kura lock list)")),
            VfsError::InvalidPath(m) => AdminError::Invalid(m),
            e @ VfsError::QuotaExceeded(_) => AdminError::Quota(e.to_string()),
            // the tree is not as the operation needs (a decoy folder, a parent gone): 409
            VfsError::Conflict(m) => AdminError::InUse(m.into()),
            VfsError::WrongKind(m) | VfsError::InvalidArgument(m) => AdminError::Invalid(m.into()),
            e => AdminError::Internal(e.to_string()),
        }
    }
}

impl From<ShareError> for AdminError {
    fn from(e: ShareError) -> Self {
        match e {
            ShareError::NotFound => AdminError::NotFound("share".into()),
            ShareError::Invalid(m) => AdminError::Invalid(m),
            ShareError::Vfs(v) => v.into(),
            ShareError::Meta(m) => m.into(),
            e => AdminError::Internal(e.to_string()),
        }
    }
}

impl From<crate::vault::KeyError> for AdminError {
    fn from(e: crate::vault::KeyError) -> Self {
        AdminError::Internal(e.to_string())
    }
}

impl From<crate::auth::AuthError> for AdminError {
    fn from(e: crate::auth::AuthError) -> Self {
        AdminError::Internal(e.to_string())
    }
}

/// User names: 1-64 of A-Z a-z 0-9 . _ - @.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Group names: 1-64 of A-Z a-z 0-9 . _ -.
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Parses an octal mode such as `750`.
pub fn parse_mode(s: &str) -> Result<u32, AdminError> {
    u32::from_str_radix(s.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| AdminError::Invalid(format!("{s} is not an octal mode like 750")))
}

/// SHA-256 of an API token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Management operations over the store and the core; `vfs` is needed for buckets and paths.
#[derive(Clone)]
pub struct Admin {
    /// Metadata.
    pub store: Store,
    /// The namespace, for operations on paths.
    pub vfs: Vfs,
    /// Sealing S3 secrets.
    pub vault: Vault,
    /// Base of share links, e.g. `https://nas.local:8443`.
    pub public_url: String,
}

impl Admin {
    /// One user with its memberships.
    pub async fn user(&self, name: &str) -> Result<UserView, AdminError> {
        let u = self
            .store
            .user(name)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user {name}")))?;
        Ok(UserView {
            groups: u.groups,
            name: u.name,
            admin: u.is_admin,
            primary_group: u.primary_group,
            create_buckets: u.can_create_buckets,
        })
    }

    /// All users.
    pub async fn users(&self) -> Result<Vec<UserView>, AdminError> {
        let mut out = Vec::new();
        for u in self.store.users().await? {
            out.push(self.user(&u.name).await?);
        }
        Ok(out)
    }

    /// Adds a user; a password is generated (and returned once) when none is given.
    pub async fn add_user(&self, n: NewUser) -> Result<CreatedUser, AdminError> {
        if !valid_user_name(&n.name) {
            return Err(AdminError::Invalid(
                "user names are 1-64 of A-Z a-z 0-9 . _ - @".into(),
            ));
        }
        let (pw, generated) = match n.password {
            Some(p) if !p.is_empty() => (p, false),
            Some(_) => return Err(AdminError::Invalid("empty password".into())),
            None => (random_password(), true),
        };
        // checked first: a failed add leaves no half-made user behind
        if let Some(g) = &n.group {
            self.existing_group(g).await?;
        }
        let hash = hash_password(&pw)?;
        match self
            .store
            .create_user(&n.name, &hash, n.admin.unwrap_or(false))
            .await
        {
            Err(MetaError::Duplicate) => {
                return Err(AdminError::Conflict(format!("user {}", n.name)))
            }
            r => r?,
        }
        if n.group.is_some() || n.create_buckets.is_some() {
            self.set_primary(&n.name, n.group.as_deref(), n.create_buckets)
                .await?;
        }
        Ok(CreatedUser {
            user: self.user(&n.name).await?,
            password: generated.then_some(pw),
        })
    }

    /// Changes a password, the administrator flag, primary group or bucket right.
    pub async fn update_user(&self, name: &str, u: UserUpdate) -> Result<UserView, AdminError> {
        if self.store.user(name).await?.is_none() {
            return Err(AdminError::NotFound(format!("user {name}")));
        }
        if let Some(pw) = u.password {
            if pw.is_empty() {
                return Err(AdminError::Invalid("empty password".into()));
            }
            self.store.set_password(name, &hash_password(&pw)?).await?;
        }
        if let Some(admin) = u.admin {
            self.store.set_admin(name, admin).await?;
        }
        if u.group.is_some() || u.create_buckets.is_some() {
            self.set_primary(name, u.group.as_deref(), u.create_buckets)
                .await?;
        }
        self.user(name).await
    }

    /// Sets a primary group (which must exist: a typo never creates one; the user becomes a
    /// member) and the bucket right.
    pub async fn set_primary(
        &self,
        user: &str,
        group: Option<&str>,
        create_buckets: Option<bool>,
    ) -> Result<(), AdminError> {
        if let Some(g) = group {
            self.existing_group(g).await?;
            self.store.add_member(user, g).await?;
        }
        if !self.store.modify_user(user, group, create_buckets).await? {
            return Err(AdminError::NotFound(format!("user {user}")));
        }
        Ok(())
    }

    /// A group that must exist, or an error naming it and how to create it.
    async fn existing_group(&self, name: &str) -> Result<(), AdminError> {
        if self.store.group(name).await?.is_none() {
            return Err(AdminError::NotFound(format!("group {name}")));
        }
        Ok(())
    }

    /// Removes a user (its access keys, locks and unfinished uploads go with it); the last
    /// administrator stays.
    pub async fn remove_user(&self, name: &str) -> Result<(), AdminError> {
        let users = self.store.users().await?;
        let admins = users.iter().filter(|u| u.is_admin).count();
        if admins == 1 && users.iter().any(|u| u.is_admin && u.name == name) {
            return Err(AdminError::InUse(format!(
                "{name} is the last administrator; add another with `kura user add NAME --admin` first"
            )));
        }
        let Some(uploads) = self.store.delete_user(name).await? else {
            return Err(AdminError::NotFound(format!("user {name}")));
        };
        self.vfs.discard_staged(&uploads).await;
        Ok(())
    }

    /// The audit trail matching `q`, newest first.
    pub async fn audit(
        &self,
        q: &crate::store::AuditQuery,
    ) -> Result<Vec<crate::store::AuditRow>, AdminError> {
        Ok(self.store.audit(q).await?)
    }

    /// Turns a user's two-factor authentication off and ends their browser sessions (a lost
    /// phone and no recovery code left).
    pub async fn reset_two_factor(&self, name: &str) -> Result<(), AdminError> {
        if !self.store.clear_totp(name).await? {
            return Err(AdminError::NotFound(format!("user {name}")));
        }
        Ok(())
    }

    /// One group with members, quota and usage.
    pub async fn group(&self, name: &str) -> Result<GroupView, AdminError> {
        let g = self
            .store
            .group(name)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("group {name}")))?;
        Ok(GroupView {
            members: self.store.members(&g.name).await?,
            name: g.name,
            quota_bytes: g.quota_bytes,
            quota_objects: g.quota_objects,
            used_bytes: g.used_bytes,
            used_objects: g.used_objects,
            version_bytes: g.version_bytes,
            version_objects: g.version_objects,
        })
    }

    /// All groups.
    pub async fn groups(&self) -> Result<Vec<GroupView>, AdminError> {
        let mut out = Vec::new();
        for g in self.store.groups().await? {
            out.push(self.group(&g.name).await?);
        }
        Ok(out)
    }

    /// Adds a group.
    pub async fn add_group(&self, name: &str) -> Result<GroupView, AdminError> {
        if !valid_group_name(name) {
            return Err(AdminError::Invalid(
                "group names are 1-64 of A-Z a-z 0-9 . _ -".into(),
            ));
        }
        match self.store.create_group(name).await {
            Err(MetaError::Duplicate) => return Err(AdminError::Conflict(format!("group {name}"))),
            r => r?,
        }
        self.group(name).await
    }

    /// Removes a group.
    pub async fn remove_group(&self, name: &str) -> Result<(), AdminError> {
        if !self.store.delete_group(name).await? {
            return Err(AdminError::NotFound(format!("group {name}")));
        }
        Ok(())
    }

    /// Adds a member.
    pub async fn add_member(&self, group: &str, user: &str) -> Result<GroupView, AdminError> {
        self.group(group).await?;
        self.user(user).await?;
        self.store.add_member(user, group).await?;
        self.group(group).await
    }

    /// Removes a member.
    pub async fn remove_member(&self, group: &str, user: &str) -> Result<GroupView, AdminError> {
        self.group(group).await?;
        if !self.store.remove_member(user, group).await? {
            return Err(AdminError::NotFound(format!("member {user} of {group}")));
        }
        self.group(group).await
    }

    /// Sets a group's quota.
    pub async fn set_quota(&self, group: &str, q: QuotaUpdate) -> Result<GroupView, AdminError> {
        if q.bytes.is_some_and(|b| b < 0) || q.objects.is_some_and(|o| o < 0) {
            return Err(AdminError::Invalid("quotas are not negative".into()));
        }
        if !self.store.set_quota(group, q.bytes, q.objects).await? {
            return Err(AdminError::NotFound(format!("group {group}")));
        }
        self.group(group).await
    }

    fn admin_caller() -> Caller {
        Caller::admin("admin")
    }

    /// All buckets with their owners, groups and modes.
    pub async fn buckets(&self) -> Result<Vec<BucketView>, AdminError> {
        Ok(self
            .vfs
            .list(&Self::admin_caller(), &VPath::root())
            .await?
            .into_iter()
            .filter(|e| e.is_dir)
            .map(|e| BucketView {
                name: e.path.name().to_string(),
                owner: e.owner,
                group: e.group,
                mode: format!("{:03o}", e.mode),
            })
            .collect())
    }

    /// Creates a bucket owned by a group.
    pub async fn add_bucket(&self, b: NewBucket) -> Result<BucketView, AdminError> {
        self.group(&b.group).await?;
        let owner = b.owner.unwrap_or_else(|| "admin".into());
        self.user(&owner).await?;
        let mut who = Caller::admin(&owner);
        who.primary_group = Some(b.group.clone());
        let path = VPath::from_segments([b.name.as_str()])?;
        match self.vfs.mkdir(&who, &path).await {
            Err(VfsError::Exists) => {
                return Err(AdminError::Conflict(format!("bucket {}", b.name)))
            }
            r => r?,
        }
        if let Some(on) = b.encrypt {
            self.vfs.set_bucket_encrypted(&who, &path, on).await?;
        }
        let e = self.vfs.stat(&who, &path).await?;
        Ok(BucketView {
            name: b.name,
            owner: e.owner,
            group: e.group,
            mode: format!("{:03o}", e.mode),
        })
    }

    /// Access keys (never their secrets).
    pub async fn keys(&self, user: Option<&str>) -> Result<Vec<KeyView>, AdminError> {
        Ok(self
            .store
            .keys(user)
            .await?
            .into_iter()
            .map(|k| KeyView {
                id: k.id,
                user: k.owner,
                created_ms: k.created_ms,
            })
            .collect())
    }

    /// Creates an access key; the secret is in this answer only.
    pub async fn add_key(&self, user: &str) -> Result<NewKeyView, AdminError> {
        self.user(user).await?;
        let k = self.vault.create(&self.store, user).await?;
        Ok(NewKeyView {
            access_key_id: k.id,
            secret_access_key: k.secret,
            user: user.to_string(),
        })
    }

    /// Revokes an access key.
    pub async fn revoke_key(&self, id: &str) -> Result<(), AdminError> {
        if !self.store.delete_key(id).await? {
            return Err(AdminError::NotFound(format!("access key {id}")));
        }
        Ok(())
    }

    /// Owner, group and mode of a path.
    pub async fn permissions(&self, path: &str) -> Result<PermView, AdminError> {
        let p = VPath::parse(path)?;
        let e = self.vfs.stat(&Self::admin_caller(), &p).await?;
        Ok(PermView {
            path: p.to_string(),
            owner: e.owner,
            group: e.group,
            mode: format!("{:03o}", e.mode),
        })
    }

    /// Changes owner, group and/or mode of a path (as an administrator); each error names
    /// what is missing: the user, the group or the path.
    pub async fn set_permissions(&self, u: PermUpdate) -> Result<PermView, AdminError> {
        let p = VPath::parse(&u.path)?;
        let who = Self::admin_caller();
        if let Some(owner) = &u.owner {
            self.user(owner).await?;
        }
        if let Some(g) = &u.group {
            self.existing_group(g).await?;
        }
        match self.vfs.stat(&who, &p).await {
            Err(VfsError::NotFound) => return Err(AdminError::NotFound(format!("path {p}"))),
            r => r?,
        };
        if let Some(m) = &u.mode {
            self.vfs.chmod(&who, &p, parse_mode(m)?).await?;
        }
        if u.owner.is_some() || u.group.is_some() {
            self.vfs
                .chown(&who, &p, u.owner.as_deref(), u.group.as_deref())
                .await?;
        }
        self.permissions(&u.path).await
    }

    /// Creates an admin API token; the token is in this answer only.
    pub async fn add_token(&self, name: Option<&str>) -> Result<NewTokenView, AdminError> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let token = format!("kura_{}", random_password());
        self.store
            .insert_token(&id, &token_hash(&token), name)
            .await?;
        Ok(NewTokenView { id, token })
    }

    fn share_service(&self) -> Shares {
        Shares::new(self.store.clone(), self.vfs.clone())
    }

    /// Creates a share link acting as `user`; the token and URL are in this answer only.
    pub async fn add_share(&self, n: NewShare) -> Result<CreatedShareView, AdminError> {
        self.user(&n.user).await?;
        let expires = n
            .expires
            .as_deref()
            .map(crate::share_links::parse_duration)
            .transpose()?;
        let (row, token) = self
            .share_service()
            .create(ShareSpec {
                path: n.path,
                owner: n.user,
                password: n.password,
                expires,
                max_downloads: n.max_downloads,
                upload_only: n.upload_only.unwrap_or(false),
            })
            .await?;
        Ok(CreatedShareView {
            url: format!("{}{}{token}", self.public_url, crate::share::PREFIX),
            share: share_view(row),
            token,
        })
    }

    /// A new link for an existing share (the old one stops working); shown in this answer only.
    pub async fn reissue_share(&self, id: &str) -> Result<CreatedShareView, AdminError> {
        let (row, token) = match self.share_service().reissue(id).await {
            Err(ShareError::NotFound) => return Err(AdminError::NotFound(format!("share {id}"))),
            r => r?,
        };
        Ok(CreatedShareView {
            url: format!("{}{}{token}", self.public_url, crate::share::PREFIX),
            share: share_view(row),
            token,
        })
    }

    /// Share links, all or those of one user.
    pub async fn shares(&self, user: Option<&str>) -> Result<Vec<ShareView>, AdminError> {
        Ok(self
            .share_service()
            .list(user)
            .await?
            .into_iter()
            .map(share_view)
            .collect())
    }

    /// Revokes a share link; its URL answers 404 from the next request on.
    pub async fn revoke_share(&self, id: &str) -> Result<(), AdminError> {
        match self.share_service().revoke(id, None).await {
            Err(ShareError::NotFound) => Err(AdminError::NotFound(format!("share {id}"))),
            r => Ok(r?),
        }
    }
}

fn share_view(r: ShareRow) -> ShareView {
    ShareView {
        id: r.id,
        user: r.owner,
        path: r.path,
        password: r.password_hash.is_some(),
        expires_ms: r.expires_ms,
        max_downloads: r.max_downloads,
        downloads: r.downloads,
        upload_only: r.upload_only,
        created_ms: r.created_ms,
    }
}
