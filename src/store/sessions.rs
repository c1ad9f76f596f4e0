//! Browser sessions and TOTP settings (migration 0021): rows keyed by the SHA-256 of the
//! cookie's token, with the user read in the same query.

use super::users::{to_user, USER_COLS};
use super::{MetaError, Store, UserRow};

/// A live session and its user.
#[derive(Clone, Debug)]
pub struct SessionRow {
    /// The signed-in user, with memberships.
    pub user: UserRow,
    /// The token state-changing requests must echo.
    pub csrf: String,
}

/// A session as its user sees it in the list of their sessions.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// A short public id (a prefix of the token's hash), to name one for sign-out.
    pub id: String,
    /// Opened and last used, ms since the epoch.
    pub created_ms: i64,
    /// Last use.
    pub seen_ms: i64,
    /// Address and browser it was opened from.
    pub client: Option<String>,
    /// The browser's User-Agent.
    pub agent: Option<String>,
}

/// How long the public id of a session is (hex digits of the hash).
const PUBLIC_ID: usize = 16;

impl Store {
    /// Records a new session.
    pub async fn create_session(
        &self,
        id_hash: &str,
        user: &str,
        csrf: &str,
        now_ms: i64,
        client: &str,
        agent: Option<&str>,
    ) -> Result<(), MetaError> {
        let q = sqlx::query(
            "INSERT INTO sessions (id_hash, user_name, csrf, created_ms, seen_ms, client, agent)
             VALUES ($1, $2, $3, $4, $4, $5, $6)",
        )
        .bind(id_hash)
        .bind(user)
        .bind(csrf)
        .bind(now_ms)
        .bind(client)
        .bind(agent);
        self.audited(q, "sign_in", Some(user), None).await?;
        Ok(())
    }

    /// The session with this token hash, if it is still within both lifetimes; an expired
    /// one is removed. `seen_ms` is refreshed when older than a minute.
    pub async fn session(
        &self,
        id_hash: &str,
        now_ms: i64,
        idle_ms: i64,
        max_ms: i64,
    ) -> Result<Option<SessionRow>, MetaError> {
        let sql = format!(
            "SELECT s.csrf, s.created_ms, s.seen_ms, {USER_COLS}
             FROM sessions s JOIN users ON users.name = s.user_name WHERE s.id_hash = $1"
        );
        let Some(r) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        use sqlx::Row;
        let (csrf, created_ms, seen_ms): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        if now_ms - seen_ms > idle_ms || now_ms - created_ms > max_ms {
            self.delete_session(id_hash).await?;
            return Ok(None);
        }
        if now_ms - seen_ms > 60_000 {
            sqlx::query("UPDATE sessions SET seen_ms = $2 WHERE id_hash = $1")
                .bind(id_hash)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(SessionRow {
            user: to_user(r, 3),
            csrf,
        }))
    }

    /// Ends one session.
    pub async fn delete_session(&self, id_hash: &str) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of a user (sign-out everywhere, a password or 2FA reset); returns
    /// how many.
    pub async fn delete_sessions_of(&self, user: &str) -> Result<u64, MetaError> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// A user's sessions, newest first.
    pub async fn sessions_of(&self, user: &str) -> Result<Vec<SessionInfo>, MetaError> {
        type Row = (String, i64, i64, Option<String>, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id_hash, created_ms, seen_ms, client, agent FROM sessions
             WHERE user_name = $1 ORDER BY created_ms DESC",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(h, created_ms, seen_ms, client, agent)| SessionInfo {
                id: h.chars().take(PUBLIC_ID).collect(),
                created_ms,
                seen_ms,
                client,
                agent,
            })
            .collect())
    }

    /// Removes sessions past either lifetime (the background sweep).
    pub async fn purge_sessions(
        &self,
        now_ms: i64,
        idle_ms: i64,
        max_ms: i64,
    ) -> Result<u64, MetaError> {
        let r = sqlx::query("DELETE FROM sessions WHERE seen_ms < $1 OR created_ms < $2")
            .bind(now_ms - idle_ms)
            .bind(now_ms - max_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// A user's sealed TOTP secret and recovery-code hashes (JSON), if two-factor is on.
    pub async fn totp(&self, user: &str) -> Result<Option<(String, String)>, MetaError> {
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT totp_sealed, totp_recovery FROM users WHERE name = $1")
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some((Some(s), r)) => Some((s, r.unwrap_or_else(|| "[]".into()))),
            _ => None,
        })
    }

    /// Turns two-factor on, if it is off: a sealed secret and recovery-code hashes; the user's
    /// other sessions (opened with the password alone) end but `keep`, in one transaction.
    /// False when the user does not exist or has it on already.
    pub async fn set_totp(
        &self,
        user: &str,
        sealed: &str,
        recovery: &str,
        keep: &str,
    ) -> Result<bool, MetaError> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query(
            "UPDATE users SET totp_sealed = $2, totp_recovery = $3, totp_step = NULL
             WHERE name = $1 AND totp_sealed IS NULL",
        )
        .bind(user)
        .bind(sealed)
        .bind(recovery)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM sessions WHERE user_name = $1 AND id_hash <> $2")
            .bind(user)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Turns two-factor off and ends the user's sessions, in one transaction; false when the
    /// user does not exist.
    pub async fn clear_totp(&self, user: &str) -> Result<bool, MetaError> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query(
            "UPDATE users SET totp_sealed = NULL, totp_recovery = NULL, totp_step = NULL
             WHERE name = $1",
        )
        .bind(user)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Uses up one recovery code (by its hash) if it is unused: true when it was.
    pub async fn take_recovery_code(&self, user: &str, code_hash: &str) -> Result<bool, MetaError> {
        let mut tx = self.write_tx().await?;
        let json: Option<Option<String>> =
            sqlx::query_scalar("SELECT totp_recovery FROM users WHERE name = $1")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        let mut codes: Vec<String> = json
            .flatten()
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        let Some(i) = codes.iter().position(|c| c == code_hash) else {
            return Ok(false);
        };
        codes.remove(i);
        sqlx::query("UPDATE users SET totp_recovery = $2 WHERE name = $1")
            .bind(user)
            .bind(serde_json::to_string(&codes).unwrap_or_else(|_| "[]".into()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Accepts a TOTP code's time step once: true unless a code of this or a later step was
    /// accepted already (a code seen by someone else cannot be replayed).
    pub async fn use_totp_step(&self, user: &str, step: i64) -> Result<bool, MetaError> {
        let r = sqlx::query(
            "UPDATE users SET totp_step = $2 WHERE name = $1 AND (totp_step IS NULL OR totp_step < $2)",
        )
        .bind(user)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replaces the recovery-code hashes (JSON) of a user with two-factor on: false when it
    /// is off (or the user does not exist).
    pub async fn set_recovery_codes(&self, user: &str, recovery: &str) -> Result<bool, MetaError> {
        let r = sqlx::query(
            "UPDATE users SET totp_recovery = $2 WHERE name = $1 AND totp_sealed IS NOT NULL",
        )
        .bind(user)
        .bind(recovery)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_end_after_either_lifetime_and_with_their_user() {
        let s = Store::in_memory().await.unwrap();
        s.create_user("ann", "x", false).await.unwrap();
        let (idle, max) = (60_000 * 30, 60_000 * 60 * 24);
        s.create_session("h1", "ann", "c", 0, "127.0.0.1", None)
            .await
            .unwrap();
        // used every 20 minutes: alive until the absolute lifetime
        let mut t = 0;
        while t + 20 * 60_000 < max {
            t += 20 * 60_000;
            assert!(
                s.session("h1", t, idle, max).await.unwrap().is_some(),
                "{t}"
            );
        }
        assert!(s.session("h1", max + 1, idle, max).await.unwrap().is_none());
        // idle too long: gone, and the row with it
        s.create_session("h2", "ann", "c", 0, "127.0.0.1", None)
            .await
            .unwrap();
        assert!(s
            .session("h2", idle + 1, idle, max)
            .await
            .unwrap()
            .is_none());
        assert!(s.session("h2", 1, idle, max).await.unwrap().is_none());
        // a removed user's sessions go with the user
        s.create_session("h3", "ann", "c", 0, "127.0.0.1", None)
            .await
            .unwrap();
        assert!(s.delete_user("ann").await.unwrap().is_some());
        assert!(s.session("h3", 1, idle, max).await.unwrap().is_none());
        assert_eq!(s.purge_sessions(1, idle, max).await.unwrap(), 0);
    }
}
