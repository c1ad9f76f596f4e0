//! The installation an admin command acts on: its data dir, whether a server runs on it, and
//! what the running server recorded about itself (listen address, URL, TLS fingerprint).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The lock file a running server holds exclusively.
pub const LOCK_FILE: &str = "kura.lock";

/// The running server's record of itself, written once it listens.
pub const SERVER_FILE: &str = "server.json";

/// Why the installation cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// There is no data dir there: a wrong folder, or the server never started.
    #[error(
        "no Kura data dir at {0} (run the command from the folder where `kura serve` runs, \
         pass the same --config or KURA_DATA_DIR, or start `kura serve` once to create it)"
    )]
    NoDataDir(PathBuf),
    /// The path exists but is not a folder.
    #[error("the data dir {0} is not a folder")]
    NotAFolder(PathBuf),
    /// The folder exists but no server ever started on it (no kura.db; on PostgreSQL no
    /// kura.lock).
    #[error("{0} has no Kura database (kura.db); start `kura serve` once to create it")]
    NoDatabase(PathBuf),
    /// Reading the data dir failed.
    #[error("data dir {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// What `kura serve` writes into the data dir when it listens, for `kura status` and share links.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerRecord {
    /// The address the server actually listens on.
    pub listen: String,
    /// Its base URL as reachable from clients (`public_url`, or this host and port).
    pub url: String,
    /// The TLS certificate fingerprint (`AB:CD:...`), when TLS is on.
    pub tls_fingerprint: Option<String>,
    /// The server's process id.
    pub pid: u32,
}

/// The data dir an admin command acts on, checked to exist; nothing is created.
pub fn existing_data_dir(cfg: &Config) -> Result<PathBuf, InstallError> {
    let dir = &cfg.data_dir;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(InstallError::NotAFolder(dir.clone())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(InstallError::NoDataDir(shown(dir)))
        }
        Err(e) => return Err(InstallError::Io(dir.clone(), e)),
    }
    // on PostgreSQL the data dir holds no database file: its first start made `kura.lock`
    let made = if cfg.database_is_postgres() {
        dir.join(LOCK_FILE).is_file()
    } else {
        cfg.db_path().is_file()
    };
    if !made {
        return Err(InstallError::NoDatabase(shown(dir)));
    }
    Ok(dir.clone())
}

/// Whether a server holds the data dir's lock right now.
pub fn server_running(data_dir: &Path) -> bool {
    let Ok(f) = std::fs::File::open(data_dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

/// The running server's record, when a server runs on the data dir and wrote one.
pub fn running_server(data_dir: &Path) -> Option<ServerRecord> {
    if !server_running(data_dir) {
        return None;
    }
    let text = std::fs::read_to_string(data_dir.join(SERVER_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Records the running server (written after it listens; stale once it stops, which the lock tells).
pub fn record_server(data_dir: &Path, rec: &ServerRecord) -> std::io::Result<()> {
    let tmp = data_dir.join(format!("{SERVER_FILE}.tmp"));
    let text = serde_json::to_string_pretty(rec).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, data_dir.join(SERVER_FILE))
}

/// A path as the operator should see it: absolute when it can be made so.
pub fn shown(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Tells the operator which installation a command acts on when it is not the default one.
pub fn announce(cfg: &Config) {
    if cfg.data_dir == Config::default().data_dir {
        return;
    }
    let state = if server_running(&cfg.data_dir) {
        "a server is running on it"
    } else {
        "no server is running on it"
    };
    eprintln!(
        "kura: data dir {} ({state})",
        shown(&cfg.data_dir).display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_data_dir_is_refused_and_not_created() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: tmp.path().join("nope"),
            ..Config::default()
        };
        assert!(matches!(
            existing_data_dir(&cfg),
            Err(InstallError::NoDataDir(_))
        ));
        assert!(!cfg.data_dir.exists());
        std::fs::create_dir(&cfg.data_dir).unwrap();
        assert!(matches!(
            existing_data_dir(&cfg),
            Err(InstallError::NoDatabase(_))
        ));
        let file = Config {
            data_dir: tmp.path().join("file"),
            ..Config::default()
        };
        std::fs::write(&file.data_dir, b"x").unwrap();
        assert!(matches!(
            existing_data_dir(&file),
            Err(InstallError::NotAFolder(_))
        ));
    }

    #[test]
    fn the_lock_tells_whether_a_server_runs() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!server_running(tmp.path()));
        let f = std::fs::File::create(tmp.path().join(LOCK_FILE)).unwrap();
        assert!(!server_running(tmp.path()));
        f.lock().unwrap();
        assert!(server_running(tmp.path()));
    }
}
