//! `kura encryption rotate`: a new master key, every data key rewrapped by it, the old key
//! removed once nothing needs it; `kura encryption enable|disable BUCKET`: a bucket's files
//! converted in place, online (docs/encryption.md).

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
    /// Encrypt a bucket and seal its existing files in place (online: the server may run;
    /// run again to finish after an interruption).
    Enable {
        /// The bucket.
        bucket: String,
    },
    /// Stop encrypting a bucket and write its sealed files back plain (online, resumable).
    Disable {
        /// The bucket.
        bucket: String,
    },
}

/// Runs `kura encryption ...`.
pub async fn encryption(cfg: &Config, cmd: EncryptionCmd) -> Result<(), CliError> {
    match cmd {
        EncryptionCmd::Enable { bucket } => convert(cfg, &bucket, true).await?,
        EncryptionCmd::Disable { bucket } => convert(cfg, &bucket, false).await?,
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

/// Converts `bucket` to sealed (`seal`) or plain files, with a progress bar.
async fn convert(cfg: &Config, bucket: &str, seal: bool) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    let path = crate::vfs::VPath::parse(&format!("/{}", bucket.trim_matches('/')))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} files and versions ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(if seal { "sealing" } else { "unsealing" });
    let caller = crate::vfs::Caller::admin("admin");
    let r = admin
        .vfs
        .convert_bucket(&caller, &path, seal, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await?;
    bar.finish_and_clear();
    let form = if seal { "sealed" } else { "plain" };
    println!("{bucket}: {} files written {form}", r.converted);
    println!(
        "{bucket}: {} kept versions and trashed files written {form}",
        r.kept
    );
    if r.settled > 0 {
        println!(
            "settled {} files an interrupted run was switching",
            r.settled
        );
    }
    if r.skipped > 0 {
        println!(
            "{} files changed while being converted (a new write takes the bucket's form; \
             run again to convert any left)",
            r.skipped
        );
    }
    if r.parts_left > 0 {
        let other = if seal { "plain" } else { "sealed" };
        println!(
            "{} parts of unfinished uploads wait {other}: they are not converted, and leave \
             the disk when their upload completes (the object takes the bucket's form), is \
             aborted or expires",
            r.parts_left
        );
    }
    Ok(())
}
