//! Admin commands for groups, buckets, quotas, tokens and ownership: argument parsing and
//! printing only; the work is the admin service's, shared with the REST API.

use clap::{Args, Subcommand};

use super::CliError;
use crate::admin::{Admin, NewBucket, PermUpdate, PolicyView, QuotaUpdate, UserUpdate};
use crate::config::Config;
use crate::store::Store;

/// `kura group ...`
#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Add a group.
    Add {
        /// Group name.
        name: String,
    },
    /// List groups with their members.
    List,
    /// Remove a group that owns no bucket (give its buckets another group first).
    Remove {
        /// Group name.
        name: String,
    },
    /// Make a user a member of a group.
    AddUser {
        /// Group name.
        group: String,
        /// User name.
        user: String,
    },
    /// Remove a user from a group.
    RemoveUser {
        /// Group name.
        group: String,
        /// User name.
        user: String,
    },
}

/// `kura bucket ...`
#[derive(Subcommand, Debug)]
pub enum BucketCmd {
    /// Create a bucket owned by a group.
    Create {
        /// Bucket name (a top-level folder).
        name: String,
        /// Owning group; its members share the bucket and its quota pays for it.
        #[arg(long)]
        group: String,
        /// Owning user (default: the administrator running the command, shown as `admin`).
        #[arg(long)]
        owner: Option<String>,
        /// Encrypt the bucket's files at rest (docs/encryption.md).
        #[arg(long, conflicts_with = "no_encrypt")]
        encrypt: bool,
        /// Do not encrypt, whatever `[encryption] default` says.
        #[arg(long)]
        no_encrypt: bool,
    },
    /// Set a bucket's trash and versioning policy (only the options given change).
    Set(PolicyArgs),
    /// List buckets with their owner, group and mode.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `kura token ...`
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create an admin API token (shown once).
    Create {
        /// A note saying what the token is for.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (ids and names, never the tokens).
    List,
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// `kura quota ...`
#[derive(Subcommand, Debug)]
pub enum QuotaCmd {
    /// Limit the total size and/or file count of a group's buckets ("none" lifts a limit).
    Set {
        /// Group name.
        group: String,
        /// Size such as 500MB, 10GiB, 1T, or none.
        #[arg(long)]
        bytes: Option<String>,
        /// Number of files, or none.
        #[arg(long)]
        objects: Option<String>,
    },
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

/// Parses sizes like `10GiB`, `500MB`, `1T`, `1234`; `none` is no limit.
pub fn parse_size(s: &str) -> Result<Option<i64>, CliError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| CliError::Usage(format!("{s} is not a size")))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(CliError::Usage(format!("{s}: unknown unit"))),
    };
    Ok(Some((n * mult).round() as i64))
}

fn show(n: Option<i64>) -> String {
    n.map_or_else(|| "unlimited".to_string(), |v| v.to_string())
}

/// Opens the admin service on the configured data dir (the server may be running); creates
/// nothing: a missing data dir or database is an error naming where it looked.
pub async fn open_admin(cfg: &Config) -> Result<Admin, CliError> {
    let dir = crate::install::existing_data_dir(cfg)?;
    crate::install::announce(cfg);
    // Share links point where the running server really listens unless public_url says otherwise.
    let public_url = match (&cfg.public_url, crate::install::running_server(&dir)) {
        (None, Some(r)) => r.url,
        _ => cfg.share_base_url(),
    };
    let store = Store::connect(&cfg.database_url(), false).await?;
    let vfs = crate::setup::build_vfs(cfg, store.clone())?;
    let vault = crate::vault::Vault::open(&cfg.data_dir, &store).await?;
    Ok(Admin {
        store,
        vfs,
        vault,
        public_url,
    })
}

/// Runs `kura quota ...`.
pub async fn quota(cfg: &Config, cmd: QuotaCmd) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    match cmd {
        QuotaCmd::Set {
            group,
            bytes,
            objects,
        } => {
            let g = admin.group(&group).await?;
            let bytes = match bytes {
                Some(b) => parse_size(&b)?,
                None => g.quota_bytes,
            };
            let objects = match objects {
                Some(o) if o.eq_ignore_ascii_case("none") => None,
                Some(o) => Some(
                    o.parse::<i64>()
                        .map_err(|_| CliError::Usage(format!("{o} is not a count")))?,
                ),
                None => g.quota_objects,
            };
            let g = admin
                .set_quota(&group, QuotaUpdate { bytes, objects })
                .await?;
            println!(
                "quota of {group}: {} bytes, {} files",
                show(g.quota_bytes),
                show(g.quota_objects)
            );
        }
    }
    Ok(())
}

/// Runs `kura usage [GROUP]`.
pub async fn usage(cfg: &Config, group: Option<&str>) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    let groups = match group {
        Some(g) => vec![admin.group(g).await?],
        None => admin.groups().await?,
    };
    println!(
        "group\tused_bytes\tquota_bytes\tused_files\tquota_files\tversion_bytes\tversion_files"
    );
    for g in groups {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            g.name,
            g.used_bytes,
            show(g.quota_bytes),
            g.used_objects,
            show(g.quota_objects),
            g.version_bytes,
            g.version_objects
        );
    }
    Ok(())
}

/// Sets a user's primary group and bucket right (for `kura user add|modify`).
pub async fn set_primary(
    cfg: &Config,
    user: &str,
    group: Option<&str>,
    create_buckets: Option<bool>,
) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    admin
        .update_user(
            user,
            UserUpdate {
                password: None,
                admin: None,
                group: group.map(str::to_string),
                create_buckets,
            },
        )
        .await?;
    Ok(())
}

/// Runs `kura group ...`.
pub async fn group(cfg: &Config, cmd: GroupCmd) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    match cmd {
        GroupCmd::Add { name } => {
            admin.add_group(&name).await?;
            println!("added group {name}");
        }
        GroupCmd::List => {
            let rows = admin.groups().await?.into_iter().map(|g| {
                vec![
                    g.name,
                    if g.members.is_empty() {
                        "-".into()
                    } else {
                        g.members.join(",")
                    },
                ]
            });
            super::table::print(&["GROUP", "MEMBERS"], rows)?;
        }
        GroupCmd::Remove { name } => {
            admin.remove_group(&name).await?;
            println!("removed group {name}");
        }
        GroupCmd::AddUser { group, user } => {
            admin.add_member(&group, &user).await?;
            println!("{user} is a member of {group}");
        }
        GroupCmd::RemoveUser { group, user } => {
            admin.remove_member(&group, &user).await?;
            println!("{user} left {group}");
        }
    }
    Ok(())
}

/// Runs `kura bucket ...`.
pub async fn bucket(cfg: &Config, cmd: BucketCmd) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    match cmd {
        BucketCmd::Create {
            name,
            group,
            owner,
            encrypt,
            no_encrypt,
        } => {
            let encrypt = (encrypt || no_encrypt).then_some(encrypt);
            let b = admin
                .add_bucket(NewBucket {
                    name,
                    group,
                    owner,
                    encrypt,
                })
                .await?;
            println!(
                "created bucket {} (owner {}, group {})",
                b.name,
                b.owner.unwrap_or_default(),
                b.group.unwrap_or_default()
            );
        }
        BucketCmd::Set(a) => set_policy(&admin, a).await?,
        BucketCmd::List { json } => {
            let buckets = admin.buckets().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&buckets).unwrap_or_default()
                );
                return Ok(());
            }
            let rows = buckets.into_iter().map(|b| {
                vec![
                    b.name,
                    b.owner.unwrap_or_else(|| "-".into()),
                    b.group.unwrap_or_else(|| "-".into()),
                    b.mode,
                ]
            });
            super::table::print(&["BUCKET", "OWNER", "GROUP", "MODE"], rows)?;
        }
    }
    Ok(())
}

/// Runs `kura bucket set ...`: changes only the options given.
async fn set_policy(admin: &Admin, a: PolicyArgs) -> Result<(), CliError> {
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

/// Runs `kura token ...`.
pub async fn token(cfg: &Config, cmd: TokenCmd) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    match cmd {
        TokenCmd::Create { name } => {
            let t = admin.add_token(name.as_deref()).await?;
            println!("token id: {}", t.id);
            println!("token:    {}", t.token);
            println!("(use it as: Authorization: Bearer <token>; it is not shown again)");
        }
        TokenCmd::List => {
            for (id, name) in admin.store.tokens().await? {
                println!("{id}\t{}", name.unwrap_or_default());
            }
        }
        TokenCmd::Revoke { id } => {
            if !admin.store.delete_token(&id).await? {
                return Err(CliError::Usage(format!("no token {id}")));
            }
            println!("revoked token {id}");
        }
    }
    Ok(())
}

/// Runs `kura chmod MODE PATH...`.
pub async fn chmod(cfg: &Config, mode: &str, paths: &[String]) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    for path in paths {
        let p = admin
            .set_permissions(PermUpdate {
                path: path.clone(),
                owner: None,
                group: None,
                mode: Some(mode.to_string()),
            })
            .await?;
        println!("mode of {} is {}", p.path, p.mode);
    }
    Ok(())
}

/// Runs `kura chown [USER][:GROUP] PATH`.
pub async fn chown(cfg: &Config, spec: &str, path: &str) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    let (user, group) = spec.split_once(':').unwrap_or((spec, ""));
    let owner = (!user.is_empty()).then(|| user.to_string());
    let group = (!group.is_empty()).then(|| group.to_string());
    if owner.is_none() && group.is_none() {
        return Err(CliError::Usage("give USER, USER:GROUP or :GROUP".into()));
    }
    let p = admin
        .set_permissions(PermUpdate {
            path: path.to_string(),
            owner,
            group,
            mode: None,
        })
        .await?;
    println!(
        "{}: owner {}, group {}",
        p.path,
        p.owner.unwrap_or_default(),
        p.group.unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_retention, parse_size};

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10GiB").unwrap(), Some(10 << 30));
        assert_eq!(parse_size("500MB").unwrap(), Some(500_000_000));
        assert_eq!(parse_size("1234").unwrap(), Some(1234));
        assert_eq!(parse_size("1.5k").unwrap(), Some(1536));
        assert_eq!(parse_size("none").unwrap(), None);
        assert!(parse_size("10 parsecs").is_err());
    }

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
