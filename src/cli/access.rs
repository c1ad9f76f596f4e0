//! Admin commands for groups, buckets and ownership; they go through the core like any client.

use clap::Subcommand;

use super::CliError;
use crate::config::Config;
use crate::store::{MetaError, Store};
use crate::vfs::{build_operator, build_staging, Caller, VPath, Vfs};

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
    /// Remove a group (its buckets keep their files and lose their group).
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

/// Runs `kura quota ...`.
pub async fn quota(cfg: &Config, cmd: QuotaCmd) -> Result<(), CliError> {
    let store = open_store(cfg).await?;
    match cmd {
        QuotaCmd::Set {
            group,
            bytes,
            objects,
        } => {
            let Some(g) = store.group(&group).await? else {
                return Err(CliError::Usage(format!("no group {group}")));
            };
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
            store.set_quota(&group, bytes, objects).await?;
            println!(
                "quota of {group}: {} bytes, {} files",
                show(bytes),
                show(objects)
            );
        }
    }
    Ok(())
}

/// Runs `kura usage [GROUP]`.
pub async fn usage(cfg: &Config, group: Option<&str>) -> Result<(), CliError> {
    let store = open_store(cfg).await?;
    println!("group\tused_bytes\tquota_bytes\tused_files\tquota_files");
    for g in store.groups().await? {
        if group.is_some_and(|want| want != g.name) {
            continue;
        }
        println!(
            "{}\t{}\t{}\t{}\t{}",
            g.name,
            g.used_bytes,
            show(g.quota_bytes),
            g.used_objects,
            show(g.quota_objects)
        );
    }
    Ok(())
}

/// Runs `kura fsck [--repair]`.
pub async fn fsck(cfg: &Config, repair: bool) -> Result<(), CliError> {
    let store = open_store(cfg).await?;
    let drift = store.check_usage(repair).await?;
    if drift.is_empty() {
        println!("usage: no drift");
    }
    for d in &drift {
        println!(
            "usage of {}: recorded {} bytes / {} files, counted {} bytes / {} files{}",
            d.group,
            d.recorded.0,
            d.recorded.1,
            d.actual.0,
            d.actual.1,
            if repair { " (repaired)" } else { "" }
        );
    }
    if !drift.is_empty() && !repair {
        return Err(CliError::Usage(
            "usage drift found; run kura fsck --repair".into(),
        ));
    }
    Ok(())
}

async fn open_store(cfg: &Config) -> Result<Store, CliError> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    Ok(Store::open(&cfg.db_path()).await?)
}

async fn open_vfs(cfg: &Config) -> Result<(Store, Vfs), CliError> {
    let store = open_store(cfg).await?;
    let (op, root) = build_operator(&cfg.storage, &cfg.data_dir)?;
    let staging = build_staging(&cfg.storage, &cfg.data_dir)?;
    let vfs = Vfs::new(op, staging, store.clone(), root).with_umask(cfg.umask_bits());
    Ok((store, vfs))
}

fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Sets a user's primary group (creating it and the membership as needed) and bucket right.
pub async fn set_primary(
    store: &Store,
    user: &str,
    group: Option<&str>,
    create_buckets: Option<bool>,
) -> Result<(), CliError> {
    if let Some(g) = group {
        if !valid_group_name(g) {
            return Err(CliError::Usage(
                "group names are 1-64 of A-Z a-z 0-9 . _ -".into(),
            ));
        }
        match store.create_group(g).await {
            Ok(()) | Err(MetaError::Duplicate) => {}
            Err(e) => return Err(e.into()),
        }
        store.add_member(user, g).await?;
    }
    if !store.modify_user(user, group, create_buckets).await? {
        return Err(CliError::Usage(format!("no user {user}")));
    }
    Ok(())
}

/// Runs `kura group ...`.
pub async fn group(cfg: &Config, cmd: GroupCmd) -> Result<(), CliError> {
    let store = open_store(cfg).await?;
    match cmd {
        GroupCmd::Add { name } => {
            if !valid_group_name(&name) {
                return Err(CliError::Usage(
                    "group names are 1-64 of A-Z a-z 0-9 . _ -".into(),
                ));
            }
            match store.create_group(&name).await {
                Err(MetaError::Duplicate) => {
                    return Err(CliError::Usage(format!("group {name} already exists")))
                }
                r => r?,
            }
            println!("added group {name}");
        }
        GroupCmd::List => {
            for g in store.groups().await? {
                println!("{}\t{}", g.name, store.members(&g.name).await?.join(","));
            }
        }
        GroupCmd::Remove { name } => {
            if !store.delete_group(&name).await? {
                return Err(CliError::Usage(format!("no group {name}")));
            }
            println!("removed group {name}");
        }
        GroupCmd::AddUser { group, user } => {
            if store.group(&group).await?.is_none() {
                return Err(CliError::Usage(format!("no group {group}")));
            }
            if store.user(&user).await?.is_none() {
                return Err(CliError::Usage(format!("no user {user}")));
            }
            store.add_member(&user, &group).await?;
            println!("{user} is a member of {group}");
        }
        GroupCmd::RemoveUser { group, user } => {
            if !store.remove_member(&user, &group).await? {
                return Err(CliError::Usage(format!(
                    "{user} is not a member of {group}"
                )));
            }
            println!("{user} left {group}");
        }
    }
    Ok(())
}

/// Runs `kura bucket ...`.
pub async fn bucket(cfg: &Config, cmd: BucketCmd) -> Result<(), CliError> {
    let (store, vfs) = open_vfs(cfg).await?;
    match cmd {
        BucketCmd::Create { name, group, owner } => {
            if store.group(&group).await?.is_none() {
                return Err(CliError::Usage(format!("no group {group}")));
            }
            let owner = owner.unwrap_or_else(|| "admin".to_string());
            if store.user(&owner).await?.is_none() {
                return Err(CliError::Usage(format!("no user {owner}")));
            }
            let mut who = Caller::admin(&owner);
            who.primary_group = Some(group.clone());
            let path = VPath::from_segments([name.as_str()])?;
            vfs.mkdir(&who, &path).await?;
            println!("created bucket {name} (owner {owner}, group {group})");
        }
    }
    Ok(())
}

/// Runs `kura chmod MODE PATH...`.
pub async fn chmod(cfg: &Config, mode: &str, paths: &[String]) -> Result<(), CliError> {
    let (_, vfs) = open_vfs(cfg).await?;
    let bits = u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| CliError::Usage(format!("{mode} is not an octal mode like 750")))?;
    for path in paths {
        vfs.chmod(&Caller::admin("admin"), &VPath::parse(path)?, bits)
            .await?;
        println!("mode of {path} is {bits:03o}");
    }
    Ok(())
}

/// Runs `kura chown [USER][:GROUP] PATH`.
pub async fn chown(cfg: &Config, spec: &str, path: &str) -> Result<(), CliError> {
    let (_, vfs) = open_vfs(cfg).await?;
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let user = (!user.is_empty()).then_some(user);
    let group = (!group.is_empty()).then_some(group);
    if user.is_none() && group.is_none() {
        return Err(CliError::Usage("give USER, USER:GROUP or :GROUP".into()));
    }
    vfs.chown(&Caller::admin("admin"), &VPath::parse(path)?, user, group)
        .await?;
    println!("ownership of {path} changed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10GiB").unwrap(), Some(10 << 30));
        assert_eq!(parse_size("500MB").unwrap(), Some(500_000_000));
        assert_eq!(parse_size("1234").unwrap(), Some(1234));
        assert_eq!(parse_size("1.5k").unwrap(), Some(1536));
        assert_eq!(parse_size("none").unwrap(), None);
        assert!(parse_size("10 parsecs").is_err());
    }
}
