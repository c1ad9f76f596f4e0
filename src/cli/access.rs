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
