//! `kura versions`, `kura trash`, `kura restore` and `kura bucket set`: argument parsing and
//! printing only; the work is the admin service's, shared with the REST API.

use clap::{Args, Subcommand};

use super::CliError;
use crate::admin::{PolicyView, RestoreRequest};
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

/// `kura bucket set B ...` options.
#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// Bucket name.
    pub name: String,
    /// How long deleted files stay in the trash: days, or a duration like 12h, 90s; 0: off.
    #[arg(long)]
    pub trash_days: Option<String>,
    /// Noncurrent versions kept per file, or none (no count limit); 0: overwrites destroy.
    #[arg(long)]
    pub keep_versions: Option<String>,
    /// How long noncurrent versions are kept: days, a duration like 12h, or none; 0: off.
    #[arg(long)]
    pub keep_days: Option<String>,
    /// Purge the oldest versions and trash first when a write would exceed the quota.
    #[arg(long)]
    pub purge_first: Option<bool>,
}

/// Parses a retention: a number of days, or a number with a unit (s, m, h, d); `none` is no
/// limit.
pub fn parse_retention(s: &str) -> Result<Option<i64>, CliError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| CliError::Usage(format!("{s} is not a number of days or a duration")))?;
    let mult = match unit {
        "" | "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(CliError::Usage(format!("{s}: unknown unit (s, m, h, d)"))),
    };
    Ok(Some(n.saturating_mul(mult)))
}

fn secs(s: Option<i64>) -> String {
    match s {
        None => "unlimited".into(),
        Some(s) if s % 86_400 == 0 => format!("{} days", s / 86_400),
        Some(s) => format!("{s} seconds"),
    }
}

/// Runs `kura versions ...`.
pub async fn versions(cfg: &Config, cmd: VersionsCmd) -> Result<(), CliError> {
    let admin = super::access::open_admin(cfg).await?;
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

/// Runs `kura trash ...`.
pub async fn trash(cfg: &Config, cmd: TrashCmd) -> Result<(), CliError> {
    let admin = super::access::open_admin(cfg).await?;
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
    let admin = super::access::open_admin(cfg).await?;
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

/// Runs `kura bucket set ...`: changes only the options given.
pub async fn set_policy(cfg: &Config, a: PolicyArgs) -> Result<(), CliError> {
    let admin = super::access::open_admin(cfg).await?;
    let mut p: PolicyView = admin.policy(&a.name).await?;
    if let Some(t) = &a.trash_days {
        p.trash_secs = parse_retention(t)?.unwrap_or(0);
    }
    if let Some(k) = &a.keep_versions {
        p.keep_versions = match k.trim() {
            n if n.eq_ignore_ascii_case("none") => None,
            n => Some(
                n.parse()
                    .map_err(|_| CliError::Usage(format!("{k} is not a count")))?,
            ),
        };
    }
    if let Some(d) = &a.keep_days {
        p.keep_secs = parse_retention(d)?;
    }
    if let Some(f) = a.purge_first {
        p.purge_first = f;
    }
    let p = admin.set_policy(&a.name, p).await?;
    println!(
        "bucket {}: trash {}, versions kept {} (at most {} per file), purge first when full: {}",
        a.name,
        secs(Some(p.trash_secs)),
        secs(p.keep_secs),
        p.keep_versions
            .map_or_else(|| "unlimited".into(), |n| n.to_string()),
        if p.purge_first { "yes" } else { "no" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_retention;

    #[test]
    fn retentions() {
        assert_eq!(parse_retention("30").unwrap(), Some(30 * 86_400));
        assert_eq!(parse_retention("2s").unwrap(), Some(2));
        assert_eq!(parse_retention("12h").unwrap(), Some(12 * 3_600));
        assert_eq!(parse_retention("none").unwrap(), None);
        assert!(parse_retention("-1").is_err());
        assert!(parse_retention("3 weeks").is_err());
    }
}
