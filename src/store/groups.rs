//! Groups, memberships, and the per-group quota and usage counters.

use sqlx::Row;

use super::{now_ms, MetaError, Store};

/// A group as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRow {
    /// Group name, unique.
    pub name: String,
    /// Largest total size of the group's buckets, if limited.
    pub quota_bytes: Option<i64>,
    /// Largest number of files in the group's buckets, if limited.
    pub quota_objects: Option<i64>,
    /// Bytes stored in the group's buckets.
    pub used_bytes: i64,
    /// Files stored in the group's buckets.
    pub used_objects: i64,
    /// Bytes of noncurrent versions and trash the group pays for (counted against its quota).
    pub version_bytes: i64,
    /// Noncurrent versions and trashed files the group pays for.
    pub version_objects: i64,
}

fn to_group(r: super::DbRow) -> GroupRow {
    GroupRow {
        name: r.get(0),
        quota_bytes: r.get(1),
        quota_objects: r.get(2),
        used_bytes: r.get(3),
        used_objects: r.get(4),
        version_bytes: r.get(5),
        version_objects: r.get(6),
    }
}

impl Store {
    /// Adds a group; `Duplicate` if the name is taken.
    pub async fn create_group(&self, name: &str) -> Result<(), MetaError> {
        let q = sqlx::query("INSERT INTO groups (name, created_ms) VALUES ($1, $2)")
            .bind(name)
            .bind(now_ms());
        self.audited(q, "group_add", Some(name), None).await?;
        Ok(())
    }

    /// One group by name.
    pub async fn group(&self, name: &str) -> Result<Option<GroupRow>, MetaError> {
        let row = sqlx::query(
            "SELECT name, quota_bytes, quota_objects, used_bytes, used_objects, version_bytes, version_objects FROM groups WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(to_group))
    }

    /// All groups, by name.
    pub async fn groups(&self) -> Result<Vec<GroupRow>, MetaError> {
        let rows = sqlx::query(
            "SELECT name, quota_bytes, quota_objects, used_bytes, used_objects, version_bytes, version_objects FROM groups ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(to_group).collect())
    }

    /// Deletes a group that owns no bucket (`InUse` otherwise) and clears it as anyone's
    /// primary group; false when it does not exist.
    pub async fn delete_group(&self, name: &str) -> Result<bool, MetaError> {
        let mut tx = self.write_tx().await?;
        let used = sqlx::query(
            "SELECT 1 FROM entries WHERE parent = '/' AND is_dir = 1 AND grp = $1 LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if used {
            return Err(MetaError::InUse(format!("group {name} owns buckets")));
        }
        sqlx::query("UPDATE users SET primary_group = NULL WHERE primary_group = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM groups WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 1 {
            super::audit::record_tx(&mut tx, "group_remove", Some(name), None).await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Makes a user a member of a group (idempotent).
    pub async fn add_member(&self, user: &str, group: &str) -> Result<(), MetaError> {
        let q = sqlx::query(
            "INSERT INTO memberships (user_name, group_name) VALUES ($1, $2)
             ON CONFLICT (user_name, group_name) DO NOTHING",
        )
        .bind(user)
        .bind(group);
        self.audited(q, "member_add", Some(group), Some(user))
            .await?;
        Ok(())
    }

    /// Removes a membership; false when there was none.
    pub async fn remove_member(&self, user: &str, group: &str) -> Result<bool, MetaError> {
        let q = sqlx::query("DELETE FROM memberships WHERE user_name = $1 AND group_name = $2")
            .bind(user)
            .bind(group);
        Ok(self
            .audited(q, "member_remove", Some(group), Some(user))
            .await?
            == 1)
    }

    /// Members of a group, by name.
    pub async fn members(&self, group: &str) -> Result<Vec<String>, MetaError> {
        let rows = sqlx::query(
            "SELECT user_name FROM memberships WHERE group_name = $1 ORDER BY user_name",
        )
        .bind(group)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}
