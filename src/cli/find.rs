//! `kura find`: argument parsing and printing only; the search is the core's, through the
//! admin service.

use clap::Args;

use super::CliError;
use crate::admin::FindRequest;
use crate::config::Config;

/// `kura find QUERY [--bucket B] [--path P] [--user U]`
#[derive(Args, Debug)]
pub struct FindArgs {
    /// Words (substrings of names or descriptions, case and accents ignored), "quoted
    /// phrases", tag:KEY=VALUE and tag:KEY; every term must match.
    pub query: String,
    /// Only in this bucket.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Only below this folder (inside --bucket when given).
    #[arg(long)]
    pub path: Option<String>,
    /// Show only what this user may see (default: everything, as an administrator).
    #[arg(long)]
    pub user: Option<String>,
    /// Entries per page.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Continue after a previous page (the cursor it printed).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print JSON (the page, as the user API returns it).
    #[arg(long)]
    pub json: bool,
}

/// Runs `kura find`.
pub async fn find(cfg: &Config, a: FindArgs) -> Result<(), CliError> {
    let admin = super::admin::open_admin(cfg).await?;
    let page = admin
        .find(&FindRequest {
            query: a.query,
            bucket: a.bucket,
            path: a.path,
            user: a.user,
            cursor: a.cursor,
            limit: a.limit,
        })
        .await?;
    if a.json {
        println!("{}", serde_json::to_string(&page).unwrap_or_default());
        return Ok(());
    }
    let rows = page.items.into_iter().map(|h| {
        vec![
            if h.is_dir {
                format!("{}/", h.path)
            } else {
                h.path
            },
            if h.is_dir {
                "-".into()
            } else {
                h.size.to_string()
            },
            crate::vfs::tags::to_query(&h.tags),
            super::table::one_line(h.description.as_deref().unwrap_or("")),
        ]
    });
    super::table::print(&["PATH", "SIZE", "TAGS", "DESCRIPTION"], rows)?;
    if let Some(c) = page.next_cursor {
        eprintln!("more: kura find ... --cursor {c}");
    }
    Ok(())
}
