//! `kura versions`, `kura trash` and `kura restore`: argument parsing and
//! printing only; the work is the admin service's, shared with the REST API.

use clap::{Args, Subcommand};

use super::CliError;
use crate::admin::RestoreRequest;
use crate::config::Config;

/// `kura versions ...`
#[derive(Subcommand, Debug)]
pub enum VersionsCmd {
    /// List the noncurrent versions and delete markers of a file, newest first.
    List {
        /// Path in the namespace, e.g. /docs/report.docx.
        path: String,
        /// Print JSON (an array of versions).
        #[arg(long)]
        json: bool,
    },
    /// Apply every bucket's policy now: drop expired trash and versions beyond their limits.
    Prune,
}

/// `kura lifecycle ...`
#[derive(Subcommand, Debug)]
pub enum LifecycleCmd {
    /// Run every bucket's S3 lifecycle rules now (the server also runs them every ten minutes).
    Run {
        /// Run them as if this many days had passed (to see what a rule will do, and in tests).
        #[arg(long, default_value_t = 0)]
        days_ahead: u32,
    },
}

/// `kura trash ...`
#[derive(Subcommand, Debug)]
pub enum TrashCmd {
    /// List the deletes in the trash, newest first.
    List {
        /// Only this bucket's.
        #[arg(long)]
        bucket: Option<String>,
        /// Print JSON (an array of deletes).
        #[arg(long)]
        json: bool,
    },
    /// Empty the trash now, whatever its retention.
    Empty {
        /// Only this bucket's.
        #[arg(long)]
        bucket: Option<String>,
    },
}

/// `kura restore PATH [--version ID] [--to PATH]`
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The path the version was current at (a deleted folder restores whole).
    pub path: String,
    /// A version id (`kura versions list`) or a delete id (`kura trash list`); default: the
    /// newest kept bytes, or the whole folder when the path was a folder deleted last.
    #[arg(long)]
    pub version: Option<String>,
    /// Restore there instead of where it was.
    #[arg(long)]
    pub to: Option<String>,
}

/// Runs `kura versions ...`.
pub async fn versions(cfg: &Config, cmd: VersionsCmd) -> Result<(), CliError> {
    let admin = super::admin::open_admin(cfg).await?;
    match cmd {
        VersionsCmd::List { path, json } => {
            let v = admin.versions(&path).await?;
            if json {
                println!("{}", serde_json::to_string(&v).unwrap_or_default());
                return Ok(());
            }
            let rows = v.into_iter().map(|v| {
                vec![
                    v.id,
                    if v.delete_marker {
                        "deleted".into()
                    } else {
                        v.size.to_string()
                    },
                    super::share::when(Some(v.modified_ms)),
                    super::share::when(Some(v.noncurrent_ms)),
                    v.trash.map_or("-".into(), |_| "trash".into()),
                ]
            });
            super::table::print(&["VERSION", "SIZE", "WRITTEN", "REPLACED", "IN"], rows)?;
        }
        VersionsCmd::Prune => {
            let p = admin.prune().await?;
            println!(
                "pruned {} versions and markers, {} bytes",
                p.removed, p.bytes
            );
        }
    }
    Ok(())
}

/// Runs `kura lifecycle ...`.
pub async fn lifecycle(cfg: &Config, cmd: LifecycleCmd) -> Result<(), CliError> {
    let admin = super::admin::open_admin(cfg).await?;
    match cmd {
        LifecycleCmd::Run { days_ahead } => {
            let r = admin.run_lifecycle(days_ahead).await?;
            println!(
                "lifecycle: {} objects expired, {} noncurrent versions and {} delete markers dropped, {} multipart uploads aborted",
                r.expired, r.noncurrent, r.markers, r.aborted
            );
        }
    }
    Ok(())
}

/// Runs `kura trash ...`.
pub async fn trash(cfg: &Config, cmd: TrashCmd) -> Result<(), CliError> {
    let admin = super::admin::open_admin(cfg).await?;
    match cmd {
        TrashCmd::List { bucket, json } => {
            let t = admin.trash(bucket.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&t).unwrap_or_default());
                return Ok(());
            }
            let rows = t.into_iter().map(|t| {
                vec![
                    t.id,
                    if t.folder {
                        format!("{}/", t.path)
                    } else {
                        t.path
                    },
                    super::share::when(Some(t.deleted_ms)),
                    t.files.to_string(),
                    t.bytes.to_string(),
                ]
            });
            super::table::print(&["ID", "PATH", "DELETED", "FILES", "BYTES"], rows)?;
        }
        TrashCmd::Empty { bucket } => {
            let p = admin.empty_trash(bucket.as_deref()).await?;
            println!(
                "emptied the trash: {} entries, {} bytes",
                p.removed, p.bytes
            );
        }
    }
    Ok(())
}

/// Runs `kura restore ...`.
pub async fn restore(cfg: &Config, a: RestoreArgs) -> Result<(), CliError> {
    let admin = super::admin::open_admin(cfg).await?;
    let path = a.path.clone();
    let done = admin
        .restore(RestoreRequest {
            path: a.path,
            version: a.version,
            to: a.to,
        })
        .await?;
    println!(
        "restored {path}: {} files, {} folders",
        done.files, done.folders
    );
    Ok(())
}
