//! `kura share create|list|revoke`: argument parsing and printing; the work is the admin
//! service's, shared with the REST API.

use clap::Subcommand;

use super::{read_password, CliError};
use crate::admin::NewShare;
use crate::config::Config;

/// `kura share ...`
#[derive(Subcommand, Debug)]
pub enum ShareCmd {
    /// Share a file or folder by link; prints the URL once (the token is not kept; `reissue`
    /// prints a new one).
    Create {
        /// Path in the namespace, e.g. /photos/2024.
        path: String,
        /// Protect the link with a password read from the first line of standard input.
        #[arg(long)]
        password: bool,
        /// The link ends after this long: 7d, 12h, 30m, 90s, 2w.
        #[arg(long)]
        expires: Option<String>,
        /// Most downloads (whole-file GETs and zips) the link serves.
        #[arg(long)]
        max_downloads: Option<u64>,
        /// A drop box: visitors may only add new files to the folder.
        #[arg(long)]
        upload_only: bool,
        /// The user the link acts as (default: admin); it must be able to read the path,
        /// or to write it for a drop box.
        #[arg(long = "as", value_name = "USER")]
        user: Option<String>,
        /// Print JSON ({"share": ..., "token": ..., "url": ...}).
        #[arg(long)]
        json: bool,
    },
    /// List share links (never their tokens).
    List {
        /// Only the links of this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Print a new link for a share whose link was lost (the old link stops working).
    Reissue {
        /// Share id (from `kura share list`).
        id: String,
        /// Print JSON ({"share": ..., "token": ..., "url": ...}).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a share link; it answers 404 from the next request on.
    Revoke {
        /// Share id (from `kura share list`).
        id: String,
    },
}

/// A time in ms since the epoch as RFC 3339, or "never".
pub(super) fn when(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "never".into())
}

fn print_created(created: &crate::admin::CreatedShareView, json: bool) {
    if json {
        println!("{}", serde_json::to_string(created).unwrap_or_default());
    } else {
        println!("share {} of {}", created.share.id, created.share.path);
        println!("url: {}", created.url);
        println!(
            "(the link is not shown again; `kura share reissue {}` makes a new one)",
            created.share.id
        );
    }
}

/// Runs a `kura share ...` command against the configured data dir.
pub async fn share(cfg: &Config, cmd: ShareCmd) -> Result<(), CliError> {
    let admin = super::admin::open_admin(cfg).await?;
    match cmd {
        ShareCmd::Create {
            path,
            password,
            expires,
            max_downloads,
            upload_only,
            user,
            json,
        } => {
            let created = admin
                .add_share(NewShare {
                    path,
                    user: user.unwrap_or_else(|| "admin".into()),
                    password: read_password(password)?,
                    expires,
                    max_downloads,
                    upload_only: Some(upload_only),
                })
                .await?;
            print_created(&created, json);
        }
        ShareCmd::Reissue { id, json } => {
            let created = admin.reissue_share(&id).await?;
            print_created(&created, json);
        }
        ShareCmd::List { user } => {
            let rows = admin.shares(user.as_deref()).await?.into_iter().map(|s| {
                vec![
                    s.id,
                    s.user,
                    s.path,
                    if s.upload_only { "drop-box" } else { "read" }.to_string(),
                    when(s.expires_ms),
                    format!(
                        "{}/{}",
                        s.downloads,
                        s.max_downloads
                            .map_or_else(|| "unlimited".to_string(), |m| m.to_string())
                    ),
                    if s.password { "yes" } else { "no" }.to_string(),
                ]
            });
            super::table::print(
                &[
                    "ID",
                    "USER",
                    "PATH",
                    "KIND",
                    "EXPIRES",
                    "DOWNLOADS",
                    "PASSWORD",
                ],
                rows,
            )?;
            eprintln!("(links are not kept; `kura share reissue ID` prints a new one for a share)");
        }
        ShareCmd::Revoke { id } => {
            admin.revoke_share(&id).await?;
            println!("revoked share {id}");
        }
    }
    Ok(())
}
