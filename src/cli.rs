//! Command line: `kura serve` and the admin commands that act on the data dir directly.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::auth::{hash_password, random_password};
use crate::config::Config;
use crate::store::{MetaError, Store};

/// Kura: WebDAV (and soon S3) over one namespace, on one TLS port.
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
            println!("added user {name}{}", if admin { " (admin)" } else { "" });
            if generated {
                println!("password: {pw}");
            }
        }
        UserCmd::List => {
            for u in store.users().await? {
                println!("{}{}", u.name, if u.is_admin { "\tadmin" } else { "" });
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
