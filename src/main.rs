//! Kura: a self-hosted storage gateway serving one namespace over WebDAV (and S3).

mod admin;
mod app;
mod auth;
mod backup;
mod causes;
mod cli;
mod config;
mod dav;
mod delivery;
mod http;
mod install;
mod limits;
mod metrics;
mod notify;
mod replication;
mod s3;
mod seal;
mod serve;
mod sessions;
mod setup;
mod share;
mod share_links;
mod store;
mod tls;
mod user_api;
mod vault;
mod vfs;
mod wire;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use config::Config;

fn main() -> ExitCode {
    // the server starts this binary again to render a PDF page under resource limits
    if let Some(code) = delivery::pdf_page::run_if_child() {
        return code;
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve) {
        // a command piped into `head` ends quietly when the reader goes, as Unix tools do,
        // instead of panicking on the failed write (the server keeps SIGPIPE ignored)
        // SAFETY: at start, before any thread exists; SIG_DFL is a valid disposition
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // Completions and man pages need no configuration, so they work right after installing.
    match &cli.command {
        Command::Completions { shell } => {
            cli::manual::completions(*shell);
            return ExitCode::SUCCESS;
        }
        Command::Man { dir } => {
            return match cli::manual::man(dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kura: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kura: {e}");
            return ExitCode::from(2);
        }
    };
    // the [limits] values are parsed where they are enforced; a bad one stops every command
    if let Err(e) = limits::Limits::new(&cfg.limits) {
        eprintln!("kura: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        // one object per line, the event's fields at the top level beside timestamp and level
        config::LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .finish()
            .with(secret_cap())
            .init(),
        config::LogFormat::Text => logs
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(secret_cap())
            .init(),
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }

    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kura: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_file = cli.config.clone();
    // admin commands are audited as the account that ran them: its name from the effective
    // uid, never from $USER, which whoever runs the command sets
    let ctx = wire::audit::Context {
        actor: Some(format!(
            "cli:{}",
            whoami::username().unwrap_or_else(|_| "?".into())
        )),
        client: None,
        protocol: "cli",
    };
    // the server's own work is audited as `system`, each request as its user
    let ctx = (!matches!(cli.command, Command::Serve)).then_some(ctx);
    let result: Result<(), String> = rt.block_on(wire::audit::scope_if(ctx, async {
        match cli.command {
            Command::Serve => serve::run(cfg).await.map_err(|e| e.to_string()),
            Command::User(cmd) => cli::user(&cfg, cmd).await.map_err(|e| e.to_string()),
            Command::Key(cmd) => cli::key(&cfg, cmd).await.map_err(|e| e.to_string()),
            Command::Share(cmd) => cli::share::share(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Token(cmd) => cli::admin::token(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Quota(cmd) => cli::admin::quota(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Versions(cmd) => cli::versions::versions(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Encryption(cmd) => cli::encryption::encryption(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Trash(cmd) => cli::versions::trash(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Restore(a) if backup::is_repository(std::path::Path::new(&a.path)) => {
                cli::backup::restore(&cfg, std::path::Path::new(&a.path), a.version.as_deref())
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::Restore(a) => cli::versions::restore(&cfg, a)
                .await
                .map_err(|e| e.to_string()),
            Command::Find(a) => cli::find::find(&cfg, a).await.map_err(|e| e.to_string()),
            Command::Db(cmd) => cli::db::db(&cfg, cmd).await.map_err(|e| e.to_string()),
            Command::Notify(cmd) => cli::notify::notify(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Lifecycle(cmd) => cli::versions::lifecycle(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Audit(a) => cli::audit::audit(&cfg, a).await.map_err(|e| e.to_string()),
            Command::Backup(a) => cli::backup::backup(&cfg, config_file.as_deref(), a)
                .await
                .map_err(|e| e.to_string()),
            Command::Usage { group } => cli::admin::usage(&cfg, group.as_deref())
                .await
                .map_err(|e| e.to_string()),
            Command::Fsck { repair } => cli::fsck::fsck(&cfg, repair)
                .await
                .map_err(|e| e.to_string()),
            Command::Group(cmd) => cli::admin::group(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Bucket(cmd) => cli::admin::bucket(&cfg, cmd)
                .await
                .map_err(|e| e.to_string()),
            Command::Chmod { mode, paths } => cli::admin::chmod(&cfg, &mode, &paths)
                .await
                .map_err(|e| e.to_string()),
            Command::Lock(cmd) => cli::lock::lock(&cfg, cmd).await.map_err(|e| e.to_string()),
            Command::Peer(cmd) => cli::peer::peer(&cfg, cmd).await.map_err(|e| e.to_string()),
            Command::Replicate(a) => cli::peer::replicate(&cfg, a)
                .await
                .map_err(|e| e.to_string()),
            Command::Fingerprint => cli::peer::fingerprint(&cfg).map_err(|e| e.to_string()),
            Command::Tls(cli::TlsCmd::Status) => {
                tls::print_status(&cfg.tls_settings()).map_err(|e| e.to_string())
            }
            Command::Status => cli::status::status(&cfg).await.map_err(|e| e.to_string()),
            Command::Completions { .. } | Command::Man { .. } => Ok(()),
            Command::Chown { owner, path } => cli::admin::chown(&cfg, &owner, &path)
                .await
                .map_err(|e| e.to_string()),
        }
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kura: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Libraries whose debug and trace events carry secrets, held at `info` whatever `RUST_LOG`
/// or `log` ask for (docs/operations.md#logs): s3s logs every request with its headers at
/// debug (the `Authorization` signature, an SSE-C client's key, a presigned URL's signature)
/// and the signature it expected on a mismatch; lettre, were its `tracing` feature ever on,
/// logs every SMTP line it writes at debug, the AUTH line with the mail password too; reqsign
/// (opendal's signer, used by replication's S3 client) logs the peer's credentials at debug (the
/// target is a prefix: it holds every `reqsign_*` crate).
/// Applied after the filter, so no directive, however specific, lifts it.
fn secret_cap() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("s3s", LevelFilter::INFO)
        .with_target("lettre", LevelFilter::INFO)
        .with_target("reqsign", LevelFilter::INFO)
}
