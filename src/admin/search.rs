//! Search for `kura find`: everything for an administrator, or what one user may see.

use super::{Admin, AdminError};
use crate::user_api::search::{page_view, PageView};
use crate::vfs::{Caller, VPath};

/// Where to search and as whom.
#[derive(Debug, Default)]
pub struct FindRequest {
    /// The query (words, "phrases", tag:KEY=VALUE, tag:KEY).
    pub query: String,
    /// Only this bucket.
    pub bucket: Option<String>,
    /// Only below this folder (inside the bucket when one is named).
    pub path: Option<String>,
    /// Search as this user (their rights); None: as an administrator.
    pub user: Option<String>,
    /// Continue after a previous page.
    pub cursor: Option<String>,
    /// Entries per page.
    pub limit: usize,
}

impl Admin {
    /// One page of search results.
    pub async fn find(&self, r: &FindRequest) -> Result<PageView, AdminError> {
        let caller = match &r.user {
            None => Self::admin_caller(),
            Some(u) => Caller::from_user(
                self.store
                    .user(u)
                    .await?
                    .ok_or_else(|| AdminError::NotFound(format!("user {u}")))?,
            ),
        };
        let scope = match (&r.bucket, &r.path) {
            (Some(b), Some(p)) => format!("/{}/{}", b.trim_matches('/'), p.trim_matches('/')),
            (Some(b), None) => format!("/{}", b.trim_matches('/')),
            (None, Some(p)) => format!("/{}", p.trim_matches('/')),
            (None, None) => "/".into(),
        };
        let scope = VPath::parse(&scope).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let page = self
            .vfs
            .search(&caller, &r.query, &scope, r.cursor.as_deref(), r.limit)
            .await?;
        Ok(page_view(page))
    }
}
