//! The JSON shapes of the admin API (also its OpenAPI schemas).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub name: String,
    pub admin: bool,
    pub primary_group: Option<String>,
    pub create_buckets: bool,
    pub groups: Vec<String>,
}

/// A user to create; without `password` one is generated and returned once.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub password: Option<String>,
    pub admin: Option<bool>,
    pub group: Option<String>,
    pub create_buckets: Option<bool>,
}

/// A created user and, when it was generated, its password.
#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    pub user: UserView,
    pub password: Option<String>,
}

/// Changes to a user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub password: Option<String>,
    /// Grant or withdraw the administrator flag (the last administrator keeps it: 409).
    pub admin: Option<bool>,
    pub group: Option<String>,
    pub create_buckets: Option<bool>,
}

/// A group with its members, quota and usage.
#[derive(Serialize, ToSchema)]
pub struct GroupView {
    pub name: String,
    pub members: Vec<String>,
    pub quota_bytes: Option<i64>,
    pub quota_objects: Option<i64>,
    pub used_bytes: i64,
    pub used_objects: i64,
    /// Bytes of noncurrent versions and trash, counted against the quota beside `used_bytes`.
    pub version_bytes: i64,
    /// Noncurrent versions and trashed files, counted against the file quota.
    pub version_objects: i64,
}

/// A group to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
}

/// A group's limits; `null` lifts one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaUpdate {
    pub bytes: Option<i64>,
    pub objects: Option<i64>,
}

/// A bucket.
#[derive(Serialize, ToSchema)]
pub struct BucketView {
    pub name: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: String,
}

/// A bucket to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBucket {
    pub name: String,
    pub group: String,
    pub owner: Option<String>,
    /// Seal the bucket's files at rest (docs/encryption.md); default: `[encryption] default`.
    #[serde(default)]
    pub encrypt: Option<bool>,
}

/// An access key (without its secret).
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub user: String,
    pub created_ms: i64,
}

/// A key to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub user: String,
}

/// A created key: the only time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct NewKeyView {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub user: String,
}

/// Owner, group and mode of a path.
#[derive(Serialize, ToSchema)]
pub struct PermView {
    pub path: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: String,
}

/// Changes to a path's owner, group or mode (octal string).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermUpdate {
    pub path: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
}

/// A created API token: the only time it is shown.
#[derive(Serialize, ToSchema)]
pub struct NewTokenView {
    pub id: String,
    pub token: String,
}

/// A share link (never its token or password).
#[derive(Serialize, ToSchema)]
pub struct ShareView {
    pub id: String,
    /// The user the share acts as.
    pub user: String,
    pub path: String,
    /// Whether visitors need a password.
    pub password: bool,
    pub expires_ms: Option<i64>,
    pub max_downloads: Option<i64>,
    pub downloads: i64,
    pub upload_only: bool,
    pub created_ms: i64,
}

/// A share to create: `expires` like `7d`, `12h`, `30m` or seconds.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    pub path: String,
    /// The user the share acts as; it must be able to read the path (write, for a drop box).
    pub user: String,
    pub password: Option<String>,
    pub expires: Option<String>,
    pub max_downloads: Option<u64>,
    pub upload_only: Option<bool>,
}

/// A created share: the only time its token and URL are shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedShareView {
    pub share: ShareView,
    pub token: String,
    pub url: String,
}

/// Every error of the API.
#[derive(Serialize, ToSchema)]
pub struct ErrorView {
    /// Stable code: not_found, conflict, invalid, forbidden, unauthorized, internal.
    pub code: String,
    pub message: String,
}
