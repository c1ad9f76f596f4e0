//! `kura encryption rotate`: a new master key, every data key rewrapped by it, the old key
//! removed once nothing needs it (docs/encryption.md).

use clap::Subcommand;

use super::admin::open_admin;
use super::CliError;
use crate::config::Config;

/// `kura encryption ...`
#[derive(Subcommand, Debug)]
pub enum EncryptionCmd {
    /// Make a new master key and rewrap every data key with it (stored bytes untouched);
    /// run again to finish after an interruption. Stop the server first.
    Rotate,
}

/// Runs `kura encryption ...`.
pub async fn encryption(cfg: &Config, cmd: EncryptionCmd) -> Result<(), CliError> {
    match cmd {
        EncryptionCmd::Rotate => {
            let dir = crate::install::existing_data_dir(cfg)?;
            if crate::install::server_running(&dir) {
                return Err(CliError::Usage(
                    "a server is running on this data dir: stop it, rotate, start it again \
                     (it would go on wrapping new files with the old key meanwhile)"
                        .into(),
                ));
            }
            let admin = open_admin(cfg).await?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message("rewrapping data keys");
            let r = admin.vfs.rotate_master_key(|n| bar.set_position(n)).await?;
            bar.finish_and_clear();
            println!("new master key {}", r.new_key);
            println!("rewrapped {} data keys", r.rewrapped);
            for k in &r.forgotten {
                println!("removed old master key {k}");
            }
            for k in &r.kept {
                println!("kept old master key {k}: still wraps data keys, run again");
            }
        }
    }
    Ok(())
}
