//! Share links: one row per link, the download counter kept exact by a conditional UPDATE.

use super::DbRow;
use sqlx::Row;

use super::{now_ms, MetaError, Store};

/// A share link as stored (the token itself is never stored, only its SHA-256).
#[derive(Clone, Debug, PartialEq)]
pub struct ShareRow {
    /// Short public id, for listing and revoking.
    pub id: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// The user the share acts as.
    pub owner: String,
    /// Shared file or folder.
    pub path: String,
    /// argon2id hash of the share password, if any.
    pub password_hash: Option<String>,
    /// Expiry, ms since the epoch.
    pub expires_ms: Option<i64>,
    /// Most counted downloads.
    pub max_downloads: Option<i64>,
    /// Counted downloads so far.
    pub downloads: i64,
    /// A drop box: visitors may only add files.
    pub upload_only: bool,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

/// The share columns in `row_to_share` order, as a literal so queries stay static strings.
macro_rules! cols {
    () => {
        "id, token_hash, owner, path, password_hash, expires_ms, max_downloads, downloads, upload_only, created_ms"
    };
}

fn row_to_share(r: DbRow) -> ShareRow {
    ShareRow {
        id: r.get(0),
        token_hash: r.get(1),
        owner: r.get(2),
        path: r.get(3),
        password_hash: r.get(4),
        expires_ms: r.get(5),
        max_downloads: r.get(6),
        downloads: r.get(7),
        upload_only: r.get::<i64, _>(8) != 0,
        created_ms: r.get(9),
    }
}

impl Store {
    /// Records a new share.
    pub async fn insert_share(&self, s: &ShareRow) -> Result<(), MetaError> {
        let q = sqlx::query(
            "INSERT INTO shares (id, token_hash, owner, path, password_hash, expires_ms,
               max_downloads, downloads, upload_only, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
        )
        .bind(&s.id)
        .bind(&s.token_hash)
        .bind(&s.owner)
        .bind(&s.path)
        .bind(&s.password_hash)
        .bind(s.expires_ms)
        .bind(s.max_downloads)
        .bind(i64::from(s.upload_only))
        .bind(now_ms());
        self.audited(q, "share_create", Some(&s.path), Some(&s.id))
            .await?;
        Ok(())
    }

    /// Replaces a share's token hash; false when there is no such share.
    pub async fn set_share_token(&self, id: &str, token_hash: &str) -> Result<bool, MetaError> {
        let r = sqlx::query("UPDATE shares SET token_hash = $1 WHERE id = $2")
            .bind(token_hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The share with this token hash.
    pub async fn share_by_token(&self, token_hash: &str) -> Result<Option<ShareRow>, MetaError> {
        Ok(sqlx::query(concat!(
            "SELECT ",
            cols!(),
            " FROM shares WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .map(row_to_share))
    }

    /// The share with this id.
    pub async fn share(&self, id: &str) -> Result<Option<ShareRow>, MetaError> {
        Ok(
            sqlx::query(concat!("SELECT ", cols!(), " FROM shares WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(row_to_share),
        )
    }

    /// All shares, or those of one owner, oldest first.
    pub async fn shares(&self, owner: Option<&str>) -> Result<Vec<ShareRow>, MetaError> {
        Ok(sqlx::query(concat!(
            "SELECT ",
            cols!(),
            " FROM shares WHERE ($1 IS NULL OR owner = $1) ORDER BY created_ms, id"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(row_to_share)
        .collect())
    }

    /// Deletes a share; false when unknown.
    pub async fn delete_share(&self, id: &str) -> Result<bool, MetaError> {
        let q = sqlx::query("DELETE FROM shares WHERE id = $1").bind(id);
        Ok(self.audited(q, "share_revoke", None, Some(id)).await? == 1)
    }

    /// Counts one download if any are left: one conditional UPDATE, so concurrent downloads
    /// can never exceed the limit. False when the share is gone or exhausted.
    pub async fn count_download(&self, id: &str) -> Result<bool, MetaError> {
        let q = sqlx::query(
            "UPDATE shares SET downloads = downloads + 1
             WHERE id = $1 AND (max_downloads IS NULL OR downloads < max_downloads)",
        )
        .bind(id);
        Ok(self.audited(q, "share_open", None, Some(id)).await? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counter_stops_at_the_limit() {
        let store = Store::in_memory().await.unwrap();
        store.create_user("ann", "x", false).await.unwrap();
        let row = ShareRow {
            id: "s1".into(),
            token_hash: "h1".into(),
            owner: "ann".into(),
            path: "/b/f".into(),
            password_hash: None,
            expires_ms: None,
            max_downloads: Some(2),
            downloads: 0,
            upload_only: false,
            created_ms: 0,
        };
        store.insert_share(&row).await.unwrap();
        assert!(store.count_download("s1").await.unwrap());
        assert!(store.count_download("s1").await.unwrap());
        assert!(!store.count_download("s1").await.unwrap());
        assert_eq!(
            store.share_by_token("h1").await.unwrap().unwrap().downloads,
            2
        );
        assert_eq!(store.shares(Some("ann")).await.unwrap().len(), 1);
        assert!(store.shares(Some("bob")).await.unwrap().is_empty());
        // the owner's removal takes its shares along
        store.delete_user("ann").await.unwrap();
        assert!(store.share("s1").await.unwrap().is_none());
    }
}
