//! User rows: name, argon2 hash, admin flag.

use sqlx::Row;

use super::{now_ms, MetaError, Store};

/// A user as stored.
#[derive(Clone, Debug)]
pub struct UserRow {
    /// Login name, unique.
    pub name: String,
    /// PHC-format argon2id hash.
    pub password_hash: String,
    /// Administrators bypass permission checks and manage others.
    pub is_admin: bool,
    /// Group that owns the buckets this user creates.
    pub primary_group: Option<String>,
    /// May create buckets (top-level folders).
    pub can_create_buckets: bool,
    /// Groups the user belongs to, by name (read with the row: one query per request).
    pub groups: Vec<String>,
}

/// The user columns plus the sorted group names, newline-joined.
pub(super) const USER_COLS: &str =
    "name, password_hash, is_admin, primary_group, can_create_buckets,
    (SELECT string_agg(group_name, '
' ORDER BY group_name) FROM memberships
        WHERE user_name = users.name)";

/// The user of a row whose `USER_COLS` start at column `at`.
pub(super) fn to_user(r: super::DbRow, at: usize) -> UserRow {
    let groups: Option<String> = r.get(at + 5);
    UserRow {
        name: r.get(at),
        password_hash: r.get(at + 1),
        is_admin: r.get::<i64, _>(at + 2) != 0,
        primary_group: r.get(at + 3),
        can_create_buckets: r.get::<i64, _>(at + 4) != 0,
        groups: groups
            .map(|g| g.split('\n').map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

impl Store {
    /// Adds a user; `Duplicate` when the name is taken.
    pub async fn create_user(
        &self,
        name: &str,
        hash: &str,
        is_admin: bool,
    ) -> Result<(), MetaError> {
        let q = sqlx::query(
            "INSERT INTO users (name, password_hash, is_admin, created_ms, uid) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(hash)
        .bind(is_admin as i64)
        .bind(now_ms())
        // who this user is, whatever their name later holds (an upload records it)
        .bind(hex::encode(rand::random::<[u8; 16]>()));
        self.audited(q, "user_add", Some(name), None).await?;
        Ok(())
    }

    /// Looks a user up by name.
    pub async fn user(&self, name: &str) -> Result<Option<UserRow>, MetaError> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| to_user(r, 0)))
    }

    /// A user by name and the identity generation of the same snapshot (`generations.rs`), in
    /// one statement: what an identity cache remembers and the counter that says how long.
    pub async fn user_and_generation(
        &self,
        name: &str,
    ) -> Result<(Option<UserRow>, i64), MetaError> {
        let sql = format!(
            "SELECT g.n, {USER_COLS} FROM (SELECT n FROM generations WHERE name = 'identity') g
             LEFT JOIN users ON users.name = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        let generation: i64 = row.get(0);
        let found = row.get::<Option<String>, _>(1).is_some();
        Ok((found.then(|| to_user(row, 1)), generation))
    }

    /// `key_and_owner` with the identity generation of the same snapshot, in one statement.
    pub async fn key_and_owner_and_generation(
        &self,
        key_id: &str,
    ) -> Result<(Option<(super::keys::KeyRow, UserRow)>, i64), MetaError> {
        let sql = format!(
            "SELECT g.n, {USER_COLS}, k.id, k.owner, k.secret_enc, k.created_ms
             FROM (SELECT n FROM generations WHERE name = 'identity') g
             LEFT JOIN access_keys k ON k.id = $1
             LEFT JOIN users ON users.name = k.owner"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key_id)
            .fetch_one(&self.pool)
            .await?;
        let generation: i64 = row.get(0);
        if row.get::<Option<String>, _>(1).is_none() {
            return Ok((None, generation));
        }
        let key = super::keys::KeyRow {
            id: row.get(7),
            owner: row.get(8),
            secret_enc: row.get(9),
            created_ms: row.get(10),
        };
        Ok((Some((key, to_user(row, 1))), generation))
    }

    /// All users, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, MetaError> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| to_user(r, 0)).collect())
    }

    /// Number of users; zero means a fresh database that needs its first admin.
    pub async fn user_count(&self) -> Result<i64, MetaError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Replaces a password hash and ends the user's browser sessions (whoever knew the old
    /// password is signed out); false when the user does not exist.
    pub async fn set_password(&self, name: &str, hash: &str) -> Result<bool, MetaError> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(hash)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 1 {
            super::audit::record_tx(&mut tx, "password", Some(name), None).await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Grants or withdraws the administrator flag; false when the user does not exist. The
    /// last administrator keeps it (`InUse`), checked in the same transaction as the change.
    pub async fn set_admin(&self, name: &str, is_admin: bool) -> Result<bool, MetaError> {
        let mut tx = self.write_tx().await?;
        if !is_admin {
            let others: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE is_admin = 1 AND name <> $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
            if others == 0 {
                return Err(MetaError::InUse(format!(
                    "{name} is the last administrator; make another user an administrator first"
                )));
            }
        }
        let r = sqlx::query("UPDATE users SET is_admin = $1 WHERE name = $2")
            .bind(is_admin as i64)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 1 {
            let action = if is_admin {
                "admin_grant"
            } else {
                "admin_revoke"
            };
            super::audit::record_tx(&mut tx, action, Some(name), None).await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Sets the primary group and/or the bucket-creation right; false when the user does not exist.
    pub async fn modify_user(
        &self,
        name: &str,
        primary_group: Option<&str>,
        can_create_buckets: Option<bool>,
    ) -> Result<bool, MetaError> {
        let q = sqlx::query(
            "UPDATE users SET primary_group = COALESCE($1, primary_group),
               can_create_buckets = COALESCE($2, can_create_buckets) WHERE name = $3",
        )
        .bind(primary_group)
        .bind(can_create_buckets.map(i64::from))
        .bind(name);
        Ok(self.audited(q, "user_modify", Some(name), None).await? == 1)
    }

    /// Deletes a user, the locks it held and its unfinished uploads (S3 multipart and tus);
    /// `None` when the user does not exist, else the ids of the uploads dropped (their staged
    /// parts are the caller's to remove).
    pub async fn delete_user(&self, name: &str) -> Result<Option<Vec<String>>, MetaError> {
        // under the write lock: no upload of the user's is made between the read and the
        // deletes
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        // a user added later under the same name is someone else: the uploads go now, and
        // with them the quota their staged parts held
        let uploads: Vec<String> =
            sqlx::query_scalar("SELECT id FROM multipart_uploads WHERE owner = $1")
                .bind(name)
                .fetch_all(&mut *tx)
                .await?;
        for id in &uploads {
            sqlx::query("DELETE FROM multipart_parts WHERE upload_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM multipart_uploads WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        // a removed user's locks go too: they would block every other writer until they
        // expire, and a user added later under the same name would hold them
        sqlx::query("DELETE FROM locks WHERE principal = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 1 {
            super::audit::record_tx(&mut tx, "user_remove", Some(name), None).await?;
        }
        tx.commit().await?;
        Ok((r.rows_affected() == 1).then_some(uploads))
    }
}
