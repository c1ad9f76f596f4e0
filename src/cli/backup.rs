//! `kura backup`: argument parsing and printing; the work is `crate::backup`'s.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::CliError;
use crate::backup::{self, TakeOptions};
use crate::config::Config;

/// `kura backup DEST` or `kura backup verify|restore|list DEST`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    cmd: Option<BackupCmd>,
    /// The backup repository (a folder; made when missing). A new snapshot copies only the
    /// files that changed since the previous one.
    dest: Option<PathBuf>,
    /// Leave the files out: metadata, keys, TLS material and configuration only.
    #[arg(long)]
    no_files: bool,
}

/// `kura backup ...` subcommands.
#[derive(Subcommand, Debug)]
pub enum BackupCmd {
    /// Hash every file of a snapshot again and compare (exit 1 on any damage).
    Verify {
        /// The backup repository.
        dest: PathBuf,
        /// The snapshot (default: the newest).
        #[arg(long, conflicts_with = "all")]
        snapshot: Option<String>,
        /// Every snapshot.
        #[arg(long)]
        all: bool,
    },
    /// Restore a snapshot into an empty data dir (the one the configuration names).
    Restore {
        /// The backup repository.
        dest: PathBuf,
        /// The snapshot (default: the newest).
        #[arg(long)]
        snapshot: Option<String>,
    },
    /// List the snapshots of a repository.
    List {
        /// The backup repository.
        dest: PathBuf,
    },
}

/// Runs `kura backup ...`.
pub async fn backup(
    cfg: &Config,
    config_file: Option<&Path>,
    a: BackupArgs,
) -> Result<(), CliError> {
    match (a.cmd, a.dest) {
        (
            Some(BackupCmd::Verify {
                dest,
                snapshot,
                all,
            }),
            _,
        ) => {
            let v = tokio::task::spawn_blocking(move || {
                backup::verify(&dest, snapshot.as_deref(), all)
            })
            .await
            .map_err(|e| CliError::Usage(e.to_string()))??;
            println!(
                "verified {}: {} objects, {} bytes, every hash matches",
                v.snapshots.join(", "),
                v.objects,
                v.bytes
            );
            Ok(())
        }
        (Some(BackupCmd::Restore { dest, snapshot }), _) => {
            restore(cfg, &dest, snapshot.as_deref()).await
        }
        (Some(BackupCmd::List { dest }), _) => {
            for id in backup::snapshots(&dest)? {
                println!("{id}");
            }
            Ok(())
        }
        (None, Some(dest)) => {
            let opts = TakeOptions {
                no_files: a.no_files,
                config_file: config_file.map(Path::to_path_buf),
            };
            let m = backup::take(cfg, &dest, &opts).await?;
            let c = &m.counts;
            println!(
                "snapshot {} in {}: {} files, {} kept versions, {} bytes; copied {} objects ({} bytes), the rest was there already",
                m.id,
                dest.display(),
                c.files,
                c.kept,
                c.bytes,
                c.copied,
                c.copied_bytes
            );
            if c.amended > 0 {
                println!(
                    "{} files changed or went while the backup ran; the snapshot holds what was read",
                    c.amended
                );
            }
            Ok(())
        }
        (None, None) => Err(CliError::Usage(
            "give a backup folder: kura backup DEST (or kura backup verify|restore|list DEST)"
                .into(),
        )),
    }
}

/// Runs `kura backup restore DEST` (also reached as `kura restore DEST`).
pub async fn restore(cfg: &Config, dest: &Path, snapshot: Option<&str>) -> Result<(), CliError> {
    let r = backup::restore(cfg, dest, snapshot).await?;
    println!(
        "restored snapshot {} into {}: {} folders, {} files and versions, {} bytes",
        r.snapshot,
        cfg.data_dir.display(),
        r.folders,
        r.files,
        r.bytes
    );
    if !r.files_included {
        println!(
            "the snapshot holds no files (taken with --no-files): put the files back, then run kura fsck --repair"
        );
    }
    if let Some(c) = r.config {
        println!(
            "the backed-up configuration is {} (not installed: the restore used the current one)",
            c.display()
        );
    }
    Ok(())
}
