//! `kura lock list|break`: argument parsing and printing; the work is the admin service's,
//! shared with the REST API.

use clap::Subcommand;

use super::CliError;
use crate::config::Config;

/// `kura lock ...`
#[derive(Subcommand, Debug)]
pub enum LockCmd {
    /// List live WebDAV locks with their tokens and holders.
    List {
        /// Print JSON (an array of locks).
        #[arg(long)]
        json: bool,
    },
    /// Remove a lock, whoever holds it (from the next request on, writes pass).
    Break {
        /// The lock's token (`urn:uuid:...`, from `kura lock list`).
        token: String,
    },
}

/// Runs a `kura lock ...` command against the configured data dir.
pub async fn lock(cfg: &Config, cmd: LockCmd) -> Result<(), CliError> {
    let admin = super::admin::open_admin(cfg).await?;
    match cmd {
        LockCmd::List { json } => {
            let locks = admin.locks().await?;
            if json {
                println!("{}", serde_json::to_string(&locks).unwrap_or_default());
                return Ok(());
            }
            let rows = locks.into_iter().map(|l| {
                vec![
                    l.token,
                    l.path,
                    l.user.unwrap_or_default(),
                    l.scope,
                    l.depth,
                    super::share::when(l.expires_ms),
                ]
            });
            super::table::print(
                &["TOKEN", "PATH", "USER", "SCOPE", "DEPTH", "EXPIRES"],
                rows,
            )?;
        }
        LockCmd::Break { token } => {
            let l = admin.break_lock(&token).await?;
            println!("broke the lock {} on {}", l.token, l.path);
        }
    }
    Ok(())
}
