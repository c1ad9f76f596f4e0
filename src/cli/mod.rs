//! Command line: `kura serve` and the admin commands that act on the data dir directly.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod access;

use crate::auth::{hash_password, random_password};
use crate::config::Config;
use crate::store::{MetaError, Store};

/// Kura: WebDAV and S3 over one namespace, on one TLS port.
#[derive(Parser, Debug)]
#[command(name = "kura", version, about)]
pub struct Cli {
    /// TOML config file (defaults are built in; KURA_* variables override both).
    #[arg(long, short, global = true, env = "KURA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the server.
    Serve,
    /// Manage users (works whether or not the server runs; changes apply at once).
    #[command(subcommand)]
    User(UserCmd),
    /// Manage S3 access keys (secrets are shown once, at creation).
    #[command(subcommand)]
    Key(KeyCmd),
    /// Manage groups and memberships.
    #[command(subcommand)]
    Group(access::GroupCmd),
    /// Create buckets (top-level folders owned by a group).
    #[command(subcommand)]
    Bucket(access::BucketCmd),
    /// Set a group's quota.
    #[command(subcommand)]
    Quota(access::QuotaCmd),
    /// Show the usage and quota of one group or all.
    Usage {
        /// Group name (all groups when absent).
        group: Option<String>,
    },
    /// Recount every group's usage from the metadata and report drift; --repair fixes it.
    Fsck {
        /// Write the recounted figures.
        #[arg(long)]
        repair: bool,
    },
    /// Change the mode bits of a file or folder (octal, e.g. 750).
    Chmod {
        /// Octal mode.
        mode: String,
        /// Paths in the namespace, e.g. /photos/2024.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change the owner and/or group: `USER`, `USER:GROUP` or `:GROUP`.
    Chown {
        /// New owner and/or group.
        owner: String,
        /// Path in the namespace.
        path: String,
    },
}

/// `kura key ...`
#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Create an access key for a user and print its id and secret once.
    Create {
        /// The user the key acts for.
        #[arg(long)]
        user: String,
        /// Print JSON ({"access_key_id": ..., "secret_access_key": ..., "user": ...}).
        #[arg(long)]
        json: bool,
    },
    /// List access keys (never their secrets).
    List {
        /// Only the keys of this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an access key; requests signed with it fail at once.
    Revoke {
        /// Access key id.
        id: String,
    },
}

/// `kura user ...`
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user; prints a generated password unless --password-stdin is given.
    Add {
        /// Login name.
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Primary group (created if missing; the user becomes a member): owns the buckets it creates.
        #[arg(long)]
        group: Option<String>,
        /// Allow the user to create buckets.
        #[arg(long)]
        create_buckets: bool,
    },
    /// Change a user's primary group or bucket-creation right.
    Modify {
        /// Login name.
        name: String,
        /// New primary group (the user becomes a member).
        #[arg(long)]
        group: Option<String>,
        /// Allow (true) or forbid (false) creating buckets.
        #[arg(long)]
        create_buckets: Option<bool>,
    },
    /// List users.
    List,
    /// Change a password; prints a generated one unless --password-stdin is given.
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Remove {
        /// Login name.
        name: String,
    },
}

/// Errors of admin commands, printed to the operator.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Hashing failed.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// Reading the password failed.
    #[error("reading password: {0}")]
    Io(#[from] std::io::Error),
    /// Key management failed.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The core refused an operation.
    #[error(transparent)]
    Vfs(#[from] crate::vfs::VfsError),
    /// The request makes no sense (unknown user, bad name, ...).
    #[error("{0}")]
    Usage(String),
}

fn read_password(from_stdin: bool) -> Result<(String, bool), CliError> {
    if !from_stdin {
        return Ok((random_password(), true));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(CliError::Usage("empty password".into()));
    }
    Ok((pw, false))
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Runs a `kura user ...` command against the configured data dir.
pub async fn user(cfg: &Config, cmd: UserCmd) -> Result<(), CliError> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let store = Store::open(&cfg.db_path()).await?;
    match cmd {
        UserCmd::Add {
            name,
            admin,
            password_stdin,
            group,
            create_buckets,
        } => {
            if !valid_user_name(&name) {
                return Err(CliError::Usage(
                    "user names are 1-64 of A-Z a-z 0-9 . _ - @".into(),
                ));
            }
            let (pw, generated) = read_password(password_stdin)?;
            match store.create_user(&name, &hash_password(&pw)?, admin).await {
                Err(MetaError::Duplicate) => {
                    return Err(CliError::Usage(format!("user {name} already exists")))
                }
                r => r?,
            }
            if group.is_some() || create_buckets {
                access::set_primary(&store, &name, group.as_deref(), Some(create_buckets)).await?;
            }
            println!("added user {name}{}", if admin { " (admin)" } else { "" });
            if generated {
                println!("password: {pw}");
            }
        }
        UserCmd::Modify {
            name,
            group,
            create_buckets,
        } => {
            access::set_primary(&store, &name, group.as_deref(), create_buckets).await?;
            println!("modified user {name}");
        }
        UserCmd::List => {
            for u in store.users().await? {
                let groups = store.groups_of(&u.name).await?.join(",");
                println!(
                    "{}\t{}\tprimary={}\tgroups={groups}{}",
                    u.name,
                    if u.is_admin { "admin" } else { "user" },
                    u.primary_group.as_deref().unwrap_or("-"),
                    if u.can_create_buckets {
                        "\tcreate-buckets"
                    } else {
                        ""
                    }
                );
            }
        }
        UserCmd::Passwd {
            name,
            password_stdin,
        } => {
            let (pw, generated) = read_password(password_stdin)?;
            if !store.set_password(&name, &hash_password(&pw)?).await? {
                return Err(CliError::Usage(format!("no user {name}")));
            }
            println!("password of {name} changed");
            if generated {
                println!("password: {pw}");
            }
        }
        UserCmd::Remove { name } => {
            if !store.delete_user(&name).await? {
                return Err(CliError::Usage(format!("no user {name}")));
            }
            println!("removed user {name}");
        }
    }
    Ok(())
}

/// Runs a `kura key ...` command against the configured data dir.
pub async fn key(cfg: &Config, cmd: KeyCmd) -> Result<(), CliError> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let store = Store::open(&cfg.db_path()).await?;
    match cmd {
        KeyCmd::Create { user, json } => {
            if store.user(&user).await?.is_none() {
                return Err(CliError::Usage(format!("no user {user}")));
            }
            let vault = crate::keys::Vault::open(&cfg.data_dir, &store).await?;
            let k = vault.create(&store, &user).await?;
            if json {
                let v = serde_json::json!({
                    "access_key_id": k.id,
                    "secret_access_key": k.secret,
                    "user": user,
                });
                println!("{v}");
            } else {
                println!("access key id:     {}", k.id);
                println!("secret access key: {}", k.secret);
                println!("user:              {user}");
                println!("(the secret is not shown again)");
            }
        }
        KeyCmd::List { user } => {
            for k in store.keys(user.as_deref()).await? {
                let created = time::OffsetDateTime::from_unix_timestamp(k.created_ms / 1000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                println!("{}\t{}\t{created}", k.id, k.owner);
            }
        }
        KeyCmd::Revoke { id } => {
            if !store.delete_key(&id).await? {
                return Err(CliError::Usage(format!("no access key {id}")));
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}
