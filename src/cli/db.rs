//! `kura db migrate --to postgres://...`: the data dir's SQLite database copied into
//! PostgreSQL, with a progress bar and a verification; the work is `store::copy_to_postgres`'s.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;

use super::CliError;
use crate::config::Config;
use crate::store::{CopyEvent, CopyReport};

/// `kura db ...`
#[derive(Subcommand, Debug)]
pub enum DbCmd {
    /// Copy this installation's SQLite database into an empty PostgreSQL database (ids kept,
    /// all or nothing, verified); then set `database_url` and start the server. The files
    /// stay where they are.
    Migrate {
        /// The PostgreSQL database, postgres://USER:PASSWORD@HOST:PORT/DB (it must hold no
        /// Kura rows); KURA_MIGRATE_TO keeps the password off the command line.
        #[arg(long, env = "KURA_MIGRATE_TO", hide_env_values = true)]
        to: String,
        /// The data dir whose `kura.db` is copied (default: the configuration's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Runs `kura db ...`.
pub async fn db(cfg: &Config, cmd: DbCmd) -> Result<(), CliError> {
    match cmd {
        DbCmd::Migrate { to, data_dir } => {
            let mut cfg = cfg.clone();
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            migrate(&cfg, to.trim()).await
        }
    }
}

/// `kura db migrate`: checks the installation, holds its lock, copies, prints the comparison.
async fn migrate(cfg: &Config, to: &str) -> Result<(), CliError> {
    if !crate::store::is_postgres(to) {
        return Err(CliError::Usage(
            "--to takes a PostgreSQL URL: postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
        ));
    }
    let shown_to = redacted(to);
    if cfg.database_is_postgres() {
        return Err(CliError::Usage(
            "this installation already runs on PostgreSQL (database_url); kura db migrate \
             copies an SQLite installation"
                .into(),
        ));
    }
    let dir = crate::install::existing_data_dir(cfg)?;
    // held until the end: a server cannot start on the data dir while the copy runs
    let _lock = hold_lock(&dir)?;
    let started = Instant::now();
    let mut shown = Progress::new();
    let report = crate::store::copy_to_postgres(&cfg.db_path(), to, &mut |e| shown.event(e))
        .await
        .map_err(|e| CliError::Usage(format!("{shown_to}: {}", hide_password(&e, to))))?;
    shown.finish();
    print_report(&report)?;
    if !report.committed {
        return Err(CliError::Usage(format!(
            "the copy does not match the SQLite database (lines marked !=): rolled back, \
             nothing was written to {shown_to}"
        )));
    }
    let root = cfg
        .storage
        .root
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("files"));
    println!(
        "copied {} rows into {shown_to} in {:.1} s; every count matches",
        report.rows,
        started.elapsed().as_secs_f64()
    );
    println!(
        "next: set database_url = \"{shown_to}\" (with its password) in the configuration, or \
         KURA_DATABASE_URL, and start kura serve with the same data dir; the files stay where \
         they are ({}); {} is left as it was",
        crate::install::shown(&root).display(),
        crate::install::shown(&cfg.db_path()).display()
    );
    Ok(())
}

/// The data dir's `kura.lock`, held exclusively, as `kura serve` holds it.
fn hold_lock(dir: &std::path::Path) -> Result<std::fs::File, CliError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(crate::install::LOCK_FILE))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(CliError::Usage(format!(
            "a server is running on {}: stop it first (the copy must see every write); nothing \
             was changed",
            crate::install::shown(dir).display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// The URL with its password replaced by `***`, in the user-info part and in a `password=`
/// query parameter (libpq's other form).
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query_pairs().any(|(k, _)| k == "password") {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "password" {
                            "***".into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "the --to URL (unreadable)".into(),
    }
}

/// The passwords a URL carries (user info, `password=` parameter).
fn passwords(url: &str) -> Vec<String> {
    let Ok(u) = url::Url::parse(url) else {
        return Vec::new();
    };
    let mut out: Vec<String> = u.password().map(str::to_string).into_iter().collect();
    out.extend(
        u.query_pairs()
            .filter(|(k, _)| k == "password")
            .map(|(_, v)| v.into_owned()),
    );
    out.retain(|p| !p.is_empty());
    out
}

/// An error's text with the URL's password, should a driver quote it, replaced by `***`.
fn hide_password(e: &crate::store::MetaError, url: &str) -> String {
    let mut text = e.to_string();
    for p in passwords(url) {
        text = text.replace(&p, "***");
    }
    // the raw URL as a driver may quote it, its password percent-encoded or not
    text.replace(url, &redacted(url))
}

/// The comparison, one line per table and checksum.
fn print_report(r: &CopyReport) -> std::io::Result<()> {
    let rows = r.compared.iter().map(|c| {
        vec![
            c.what.clone(),
            c.source.clone(),
            c.target.clone(),
            if c.source == c.target { "" } else { "!=" }.to_string(),
        ]
    });
    super::table::print(&["TABLE", "SQLITE", "POSTGRESQL", ""], rows)
}

/// One bar over every row on a terminal, one plain line per table otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    terminal: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            bar: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn event(&mut self, e: CopyEvent<'_>) {
        match e {
            CopyEvent::Start { rows } if self.terminal => {
                let b = indicatif::ProgressBar::new(rows);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg:24} [{bar:40}] {pos}/{len} rows ({eta})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                self.bar = Some(b);
            }
            CopyEvent::Start { rows } => println!("copying {rows} rows"),
            CopyEvent::Table { name, .. } if self.terminal => {
                if let Some(b) = &self.bar {
                    b.set_message(name.to_string());
                }
            }
            CopyEvent::Table { name, rows } => println!("copying {name}: {rows} rows"),
            CopyEvent::Rows(n) => {
                if let Some(b) = &self.bar {
                    b.inc(n);
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_form_of_the_password_is_shown() {
        for url in [
            "postgres://kura:S3cretPw@db:5432/kura",
            "postgres://db:5432/kura?user=kura&password=S3cretPw",
            "postgresql://kura:S3cretPw@db/kura?sslmode=require&password=S3cretPw",
        ] {
            let shown = super::redacted(url);
            assert!(!shown.contains("S3cretPw"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
            assert_eq!(
                super::passwords(url).first().map(String::as_str),
                Some("S3cretPw")
            );
        }
    }
}
