//! `kura status`: which installation the commands act on and whether a server runs on it.

use super::CliError;
use crate::config::Config;
use crate::install::{existing_data_dir, running_server, server_running, shown};

/// Prints data dir, database, listen address, TLS fingerprint and server state; fails when
/// there is no data dir, so scripts can tell.
pub async fn status(cfg: &Config) -> Result<(), CliError> {
    println!("data dir:     {}", shown(&cfg.data_dir).display());
    let dir = match existing_data_dir(cfg) {
        Ok(d) => d,
        Err(e) => {
            println!("database:     none");
            return Err(e.into());
        }
    };
    let store = crate::store::Store::connect(&cfg.database_url(), false).await?;
    let admins = store.users().await?.iter().filter(|u| u.is_admin).count();
    let users = store.user_count().await?;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let database = if cfg.database_is_postgres() {
        // the URL without its password: status output is pasted into support questions
        match url::Url::parse(&cfg.database_url()) {
            Ok(u) => format!("PostgreSQL {}{}", u.host_str().unwrap_or("?"), u.path()),
            Err(_) => "PostgreSQL".into(),
        }
    } else {
        shown(&cfg.db_path()).display().to_string()
    };
    println!(
        "database:     {} ({}, {})",
        database,
        plural(users as usize, "user", "users"),
        plural(admins, "administrator", "administrators")
    );
    match (server_running(&dir), running_server(&dir)) {
        (true, Some(r)) => {
            println!("server:       running (pid {})", r.pid);
            println!("listening on: {}", r.listen);
            println!("URL:          {}", r.url);
        }
        (true, None) => println!("server:       running (it recorded no address)"),
        (false, _) => {
            println!("server:       not running");
            println!(
                "listen:       {} (configured; used at the next start)",
                cfg.listen
            );
        }
    }
    // a running server's certificate may have been swapped since it started
    let live = crate::tls::in_use(&dir).filter(|_| server_running(&dir));
    match running_server(&dir).and_then(|r| live.or(r.tls_fingerprint)) {
        Some(fp) => println!("TLS:          on, fingerprint {fp}"),
        None if !cfg.tls => println!("TLS:          off"),
        None => match crate::tls::current_fingerprint(&cfg.tls_settings()) {
            Ok((fp, path)) => println!(
                "TLS:          on, fingerprint {fp} ({})",
                shown(&path).display()
            ),
            Err(e) => println!("TLS:          on, {e}"),
        },
    }
    Ok(())
}
