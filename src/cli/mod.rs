//! Command line: `kura serve` and the admin commands that act on the data dir directly.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod admin;
pub mod audit;
pub mod backup;
pub mod db;
pub mod encryption;
pub mod find;
pub mod fsck;
pub mod lock;
pub mod manual;
pub mod notify;
pub mod peer;
pub mod share;
pub mod status;
mod table;
pub mod versions;

use crate::admin::{AdminError, NewUser, UserUpdate};
use crate::auth::random_password;
use crate::config::Config;
use crate::store::MetaError;

/// `kura --version`: the release and the git commit it was built from.
const VERSION: &str = crate::admin::VERSION;

/// Kura: WebDAV and S3 over one namespace, on one TLS port.
#[derive(Parser, Debug)]
#[command(name = "kura", version = VERSION, about)]
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
    /// Share files and folders by link (password, expiry, download limits, drop boxes).
    #[command(subcommand)]
    Share(share::ShareCmd),
    /// Manage admin API tokens.
    #[command(subcommand)]
    Token(admin::TokenCmd),
    /// Manage groups and memberships.
    #[command(subcommand)]
    Group(admin::GroupCmd),
    /// Create and list buckets (top-level folders owned by a group).
    #[command(subcommand)]
    Bucket(admin::BucketCmd),
    /// Set a group's quota.
    #[command(subcommand)]
    Quota(admin::QuotaCmd),
    /// List a file's noncurrent versions, or prune them by policy now.
    #[command(subcommand)]
    Versions(versions::VersionsCmd),
    /// Encryption at rest: rotate the master key, convert a bucket in place.
    #[command(subcommand)]
    Encryption(encryption::EncryptionCmd),
    /// List or empty the trash (deleted files and folders).
    #[command(subcommand)]
    Trash(versions::TrashCmd),
    /// Restore a version, a deleted file or a whole deleted folder as the current version;
    /// given a backup repository folder, restore that backup (as `kura backup restore`).
    Restore(versions::RestoreArgs),
    /// Run the buckets' S3 lifecycle rules now.
    #[command(subcommand)]
    Lifecycle(versions::LifecycleCmd),
    /// Search names, descriptions and tags (tag:KEY=VALUE), newest first.
    Find(find::FindArgs),
    /// Back up the metadata, keys, configuration and files into a repository folder, verify
    /// a backup, or restore one into an empty data dir.
    Backup(backup::BackupArgs),
    /// Move the metadata to PostgreSQL: `kura db migrate --to postgres://...`.
    #[command(subcommand)]
    Db(db::DbCmd),
    /// Event notifications: webhooks and e-mail for a bucket's changes, shares, quota.
    #[command(subcommand)]
    Notify(notify::NotifyCmd),
    /// Show the audit trail: who did what, from where, by which protocol (newest first).
    Audit(audit::AuditArgs),
    /// Show the usage and quota of one group or all.
    Usage {
        /// Group name (all groups when absent).
        group: Option<String>,
    },
    /// Compare stored files with the metadata and recount every group's usage; report drift.
    Fsck {
        /// Fix the drift: record unrecorded files, drop rows of missing ones, correct sizes,
        /// remove leftovers of interrupted copies and write the recounted usage.
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
    /// List live WebDAV locks, or break one (a vanished client's, or one that blocks others).
    #[command(subcommand)]
    Lock(lock::LockCmd),
    /// Manage replication peers and see how far behind they are.
    #[command(subcommand)]
    Peer(peer::PeerCmd),
    /// Mirror a bucket to a peer, stop it, or resync it now.
    Replicate(peer::ReplicateArgs),
    /// Print this node's TLS certificate fingerprint (for pinning by peers); never creates one.
    Fingerprint,
    /// The TLS certificate in use: names, issuer, expiry, source, last ACME attempt.
    #[command(subcommand)]
    Tls(TlsCmd),
    /// Show the data dir, database, listen address, TLS fingerprint and whether a server runs.
    Status,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (kura.1 and one per command) into a folder.
    Man {
        /// Folder for the pages (created if missing).
        dir: PathBuf,
    },
    /// Change the owner and/or group: `USER`, `USER:GROUP` or `:GROUP`.
    Chown {
        /// New owner and/or group.
        owner: String,
        /// Path in the namespace.
        path: String,
    },
}

/// `kura tls ...`
#[derive(Subcommand, Debug)]
pub enum TlsCmd {
    /// Show the certificate the running server uses and its ACME renewal state.
    Status,
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
        /// Primary group (it must exist: `kura group add`; the user becomes a member): owns
        /// the buckets it creates.
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
        /// New primary group (it must exist; the user becomes a member).
        #[arg(long)]
        group: Option<String>,
        /// Allow the user to create buckets.
        #[arg(long, conflicts_with = "no_create_buckets")]
        create_buckets: bool,
        /// Forbid the user to create buckets.
        #[arg(long)]
        no_create_buckets: bool,
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
    /// Remove a user (never the last administrator).
    Remove {
        /// Login name.
        name: String,
    },
    /// Turn a user's two-factor authentication off (a lost phone) and end their sessions.
    #[command(name = "reset-2fa")]
    Reset2fa {
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
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The data dir is missing or unusable.
    #[error(transparent)]
    Install(#[from] crate::install::InstallError),
    /// A backup, its verification or a restore failed.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// Key management failed.
    #[error(transparent)]
    Key(#[from] crate::vault::KeyError),
    /// The core refused an operation.
    #[error(transparent)]
    Vfs(#[from] crate::vfs::VfsError),
    /// The admin service refused.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The request makes no sense (unknown user, bad name, ...).
    #[error("{0}")]
    Usage(String),
}

pub(crate) fn read_password(from_stdin: bool) -> Result<Option<String>, CliError> {
    if !from_stdin {
        return Ok(None);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("reading the password from standard input: {e}")))?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(CliError::Usage("empty password".into()));
    }
    Ok(Some(pw))
}

/// A missing group, with the command that creates it (groups are never made implicitly).
fn group_hint(e: AdminError, group: Option<&str>) -> CliError {
    match (e, group) {
        (AdminError::NotFound(what), Some(g)) if what == format!("group {g}") => CliError::Usage(
            format!("group {g} not found; create it first with `kura group add {g}`"),
        ),
        (e, _) => e.into(),
    }
}

/// Runs a `kura user ...` command against the configured data dir.
pub async fn user(cfg: &Config, cmd: UserCmd) -> Result<(), CliError> {
    let admin = admin::open_admin(cfg).await?;
    match cmd {
        UserCmd::Add {
            name,
            admin: is_admin,
            password_stdin,
            group,
            create_buckets,
        } => {
            let created = admin
                .add_user(NewUser {
                    name: name.clone(),
                    password: read_password(password_stdin)?,
                    admin: Some(is_admin),
                    group: group.clone(),
                    create_buckets: create_buckets.then_some(true),
                })
                .await
                .map_err(|e| group_hint(e, group.as_deref()))?;
            println!(
                "added user {name}{}",
                if is_admin { " (admin)" } else { "" }
            );
            if let Some(pw) = created.password {
                println!("password: {pw}");
            }
        }
        UserCmd::Modify {
            name,
            group,
            create_buckets,
            no_create_buckets,
        } => {
            let right = match (create_buckets, no_create_buckets) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            if group.is_none() && right.is_none() {
                return Err(CliError::Usage(
                    "nothing to change: give --group, --create-buckets or --no-create-buckets"
                        .into(),
                ));
            }
            admin::set_primary(cfg, &name, group.as_deref(), right)
                .await
                .map_err(|e| match e {
                    CliError::Admin(e) => group_hint(e, group.as_deref()),
                    e => e,
                })?;
            println!("modified user {name}");
        }
        UserCmd::List => {
            let rows = admin.users().await?.into_iter().map(|u| {
                vec![
                    u.name,
                    if u.admin { "admin" } else { "user" }.to_string(),
                    u.primary_group.unwrap_or_else(|| "-".into()),
                    if u.groups.is_empty() {
                        "-".into()
                    } else {
                        u.groups.join(",")
                    },
                    if u.create_buckets { "yes" } else { "no" }.to_string(),
                ]
            });
            table::print(
                &["NAME", "ROLE", "PRIMARY", "GROUPS", "CREATE-BUCKETS"],
                rows,
            )?;
        }
        UserCmd::Passwd {
            name,
            password_stdin,
        } => {
            let (pw, generated) = match read_password(password_stdin)? {
                Some(p) => (p, false),
                None => (random_password(), true),
            };
            admin
                .update_user(
                    &name,
                    UserUpdate {
                        password: Some(pw.clone()),
                        admin: None,
                        group: None,
                        create_buckets: None,
                    },
                )
                .await?;
            println!("password of {name} changed");
            if generated {
                println!("password: {pw}");
            }
        }
        UserCmd::Remove { name } => {
            admin.remove_user(&name).await?;
            println!("removed user {name}");
        }
        UserCmd::Reset2fa { name } => {
            admin.reset_two_factor(&name).await?;
            println!("two-factor authentication of {name} is off; their sessions ended");
        }
    }
    Ok(())
}

/// Runs a `kura key ...` command against the configured data dir.
pub async fn key(cfg: &Config, cmd: KeyCmd) -> Result<(), CliError> {
    let admin = admin::open_admin(cfg).await?;
    match cmd {
        KeyCmd::Create { user, json } => {
            let k = admin.add_key(&user).await?;
            if json {
                println!("{}", serde_json::to_string(&k).unwrap_or_default());
            } else {
                println!("access key id:     {}", k.access_key_id);
                println!("secret access key: {}", k.secret_access_key);
                println!("user:              {user}");
                println!("(the secret is not shown again)");
            }
        }
        KeyCmd::List { user } => {
            for k in admin.keys(user.as_deref()).await? {
                let created = time::OffsetDateTime::from_unix_timestamp(k.created_ms / 1000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                println!("{}\t{}\t{created}", k.id, k.user);
            }
        }
        KeyCmd::Revoke { id } => {
            admin.revoke_key(&id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
