//! Configuration: embedded defaults, then the TOML file, then `KURA_*` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod encryption;
mod limits;
mod metrics;
mod replication;
mod smtp;
mod storage;
mod tls;
/// Unknown keys in the file and unknown `KURA_*` variables: named, with the closest known key.
mod unknown;

pub use encryption::EncryptionSettings;
pub use limits::LimitsConfig;
pub use metrics::MetricsConfig;
pub use replication::ReplicationConfig;
pub use smtp::{SmtpConfig, SmtpSecurity};
pub use storage::{MacosMetadata, StorageConfig};
pub use tls::TlsSettings;

/// Live locks one user may hold unless configured (`lock_max_per_user`).
pub const DEFAULT_LOCKS_PER_USER: usize = 100;

/// Unfinished uploads (S3 multipart and tus) one user may have unless configured
/// (`uploads_max_per_user`).
pub const DEFAULT_UPLOADS_PER_USER: usize = 100;

/// Let's Encrypt's production directory, the default of `tls_acme_directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named config file does not exist.
    #[error("config file {0} not found")]
    Missing(PathBuf),
    /// A value is out of its range.
    #[error("invalid configuration: {0}")]
    BadValue(String),
    /// A value has the wrong type or form.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

/// Every setting of the server; see docs/configuration.md.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Folder holding the database, the TLS certificate, temporary uploads and (for `fs`) the files.
    pub data_dir: PathBuf,
    /// The metadata database: unset for `<data_dir>/kura.db` (SQLite), or `postgres://...`.
    pub database_url: Option<String>,
    /// This gateway's name among several on one database (logs, `/healthz`); unset: a stable
    /// id kept in `<data_dir>/node-id`.
    pub node_id: Option<String>,
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Serve HTTPS (true) or plain HTTP behind a reverse proxy (false).
    pub tls: bool,
    /// PEM certificate chain; a self-signed one is generated in the data dir when unset.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Extra host names and IP addresses for the generated certificate (e.g. "nas.local", "192.168.1.5").
    pub tls_names: Vec<String>,
    /// Names to get a certificate for by ACME (Let's Encrypt); empty: no ACME.
    pub tls_acme_domains: Vec<String>,
    /// Contact address given to the ACME CA (expiry warnings).
    pub tls_acme_email: Option<String>,
    /// ACME directory URL; Let's Encrypt production by default.
    pub tls_acme_directory: String,
    /// PEM root certificate to trust for the ACME directory's own HTTPS (test CAs only).
    pub tls_acme_ca: Option<PathBuf>,
    /// Plain-HTTP listener (e.g. "0.0.0.0:80") for http-01 and redirects; unset: tls-alpn-01.
    pub tls_acme_http_listen: Option<SocketAddr>,
    /// Password of the first `admin` user, used only when the database is empty.
    pub admin_password: Option<String>,
    /// Largest XML request body (PROPFIND, PROPPATCH, LOCK) in bytes; larger ones get 413.
    pub max_xml_body: u64,
    /// Allow PROPFIND with `Depth: infinity` (off: 403 with `propfind-finite-depth`).
    pub propfind_depth_infinity: bool,
    /// How long a successful password check is remembered, in seconds (0 disables the cache).
    pub auth_cache_seconds: u64,
    /// Audit rows older than this many days are removed (0: kept for ever).
    pub audit_retention_days: u64,
    /// Also write each audit row as a JSON line: a file path, or "-" for standard output.
    pub audit_log: Option<PathBuf>,
    /// A browser session unused for this many minutes ends (the app signs in again).
    pub session_idle_minutes: u64,
    /// A browser session ends this many hours after sign-in, used or not.
    pub session_max_hours: u64,
    /// Most bytes of previews (thumbnails, PDF pages) cached on disk under the data dir; the
    /// least recently used go first past it (0: previews are not cached).
    pub preview_cache_bytes: u64,
    /// Base domain for virtual-host-style S3 (`<bucket>.<base>`); path-style always works.
    pub s3_base_domain: Option<String>,
    /// Multipart uploads not completed within this many hours are removed (0: never).
    pub multipart_expiry_hours: u64,
    /// Octal umask for new files (0666) and folders (0777); the default 002 keeps group spaces
    /// group-writable.
    pub umask: String,
    /// Longest lock timeout granted, in seconds; `Infinite` requests get it (0: no cap).
    pub lock_timeout_max_seconds: u64,
    /// Live locks one user may hold at once; a LOCK beyond it gets 507.
    pub lock_max_per_user: usize,
    /// Unfinished uploads (S3 multipart and tus together) one user may have open; one more
    /// is refused (S3 `TooManyUploads`, tus `403 too_many_uploads`).
    pub uploads_max_per_user: usize,
    /// Octal umask for what Kura creates on disk (the data dir, kura.db, stored files and
    /// folders); the default 077 keeps everything private to the server's account.
    pub disk_umask: String,
    /// Acknowledged writes survive a power cut, not only a kill: the bytes, the folders of the
    /// renames, each commit's journal and the SQLite log are fsynced before the reply; false
    /// fsyncs none of them (docs/architecture.md, "Durability").
    pub durable_commits: bool,
    /// macOS `._*` and `.DS_Store` files: "keep", "hide" (from listings) or "refuse".
    pub macos_metadata: MacosMetadata,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` wins when set.
    pub log: String,
    /// Log lines as text for people ("text") or as one JSON object each ("json").
    pub log_format: LogFormat,
    /// Where file contents are stored.
    pub storage: StorageConfig,
    /// Base of share links (`https://files.example.org`); default: this host and port.
    pub public_url: Option<String>,
    /// Rate limits and failed-authentication throttling.
    pub limits: LimitsConfig,
    /// Peer replication timings.
    pub replication: ReplicationConfig,
    /// The mail server of e-mail notifications.
    pub smtp: SmtpConfig,
    /// Who may read the Prometheus metrics at `/metrics`.
    pub metrics: MetricsConfig,
    /// Encrypted buckets: the master key and the default for new buckets.
    pub encryption: EncryptionSettings,
    /// What `load` found suspicious (unknown keys and variables), for the caller to log.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./kura-data"),
            database_url: None,
            node_id: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            tls: true,
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            tls_acme_domains: Vec::new(),
            tls_acme_email: None,
            tls_acme_directory: LETS_ENCRYPT.into(),
            tls_acme_ca: None,
            tls_acme_http_listen: None,
            admin_password: None,
            max_xml_body: 64 * 1024,
            propfind_depth_infinity: false,
            auth_cache_seconds: 300,
            audit_retention_days: 365,
            audit_log: None,
            session_idle_minutes: 720,
            session_max_hours: 168,
            preview_cache_bytes: 1 << 30,
            s3_base_domain: None,
            multipart_expiry_hours: 168,
            umask: "002".into(),
            lock_timeout_max_seconds: 3600,
            lock_max_per_user: DEFAULT_LOCKS_PER_USER,
            uploads_max_per_user: DEFAULT_UPLOADS_PER_USER,
            durable_commits: true,
            disk_umask: "077".into(),
            macos_metadata: MacosMetadata::Keep,
            log: "info".into(),
            log_format: LogFormat::Text,
            storage: StorageConfig::default(),
            public_url: None,
            limits: LimitsConfig::default(),
            replication: Default::default(),
            smtp: Default::default(),
            metrics: MetricsConfig::default(),
            encryption: EncryptionSettings::default(),
            warnings: Vec::new(),
        }
    }
}

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event, for people.
    Text,
    /// One JSON object per line, for log shippers (journald, Loki, Elasticsearch...).
    Json,
}

/// Keys whose environment values are text, never numbers or booleans.
const STRING_KEYS: &[&str] = &[
    "data_dir",
    "database_url",
    "node_id",
    "tls_cert",
    "tls_key",
    "tls_acme_email",
    "tls_acme_directory",
    "tls_acme_ca",
    "admin_password",
    "log",
    "log_format",
    "metrics.token",
    "s3_base_domain",
    "umask",
    "disk_umask",
    "macos_metadata",
    "storage.backend",
    "storage.root",
    "public_url",
    "encryption.key_file",
    "encryption.key_command",
];

/// Keys of the storage service's options, which are text too (`KURA_STORAGE__OPTIONS__*`).
const OPTIONS_PREFIX: &str = "storage.options.";

impl Config {
    /// Loads defaults, the optional file, then `KURA_*` variables (`__` separates nested keys).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let mut warnings = Vec::new();
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Missing(f.to_path_buf()));
            }
            warnings.extend(unknown::in_file(f));
            fig = fig.merge(Toml::file(f));
        }
        warnings.extend(unknown::in_env(std::env::vars()));
        fig = fig.merge(Env::prefixed("KURA_").split("__").filter(|k| {
            k != "config"
                && !STRING_KEYS.contains(&k.as_str())
                && !k.as_str().starts_with(OPTIONS_PREFIX)
        }));
        // Text settings are taken as they are: figment would read "123456" as a number.
        for key in STRING_KEYS {
            let var = format!("KURA_{}", key.replace('.', "__").to_uppercase());
            if let Ok(v) = std::env::var(var) {
                fig = fig.merge(Serialized::default(key, v));
            }
        }
        // so are the storage service's options (a secret of digits, `true`)
        for (var, v) in std::env::vars() {
            if let Some(name) = var.strip_prefix("KURA_STORAGE__OPTIONS__") {
                let key = format!("{OPTIONS_PREFIX}{}", name.to_lowercase());
                fig = fig.merge(Serialized::default(&key, v));
            }
        }
        let mut cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        cfg.warnings = warnings;
        for (key, mask, like) in [
            ("umask", &cfg.umask, "002"),
            ("disk_umask", &cfg.disk_umask, "077"),
        ] {
            if u32::from_str_radix(mask.trim(), 8).map_or(true, |m| m > 0o777) {
                return Err(ConfigError::BadValue(format!(
                    "{key} {mask:?} is not an octal mask like {like}"
                )));
            }
        }
        let days = cfg.replication.tombstone_days;
        if !(days.is_finite() && days * 86_400.0 >= 1.0) {
            return Err(ConfigError::BadValue(format!(
                "replication.tombstone_days {days} is not a positive number of days (at least a second)"
            )));
        }
        Ok(cfg)
    }

    /// Where share links point: `public_url`, or this machine's name and the listening port.
    pub fn share_base_url(&self) -> String {
        self.base_url_for(self.listen)
    }

    /// The base URL clients use for a server listening on `addr`: `public_url`, or the
    /// address (this machine's name when it listens on every address).
    pub fn base_url_for(&self, addr: SocketAddr) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let scheme = if self.tls { "https" } else { "http" };
        let ip = addr.ip();
        let host = if ip.is_unspecified() {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into())
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        format!("{scheme}://{host}:{}", addr.port())
    }

    /// The umask as bits (validated by `load`).
    pub fn umask_bits(&self) -> u32 {
        u32::from_str_radix(self.umask.trim(), 8).unwrap_or(0o002) & 0o777
    }

    /// The bits `disk_umask` removes from 0666 (files) and 0777 (folders) on disk (validated by
    /// `load`).
    pub fn disk_umask_bits(&self) -> u32 {
        u32::from_str_radix(self.disk_umask.trim(), 8).unwrap_or(0o077) & 0o777
    }

    /// This gateway's node id: `node_id`, else the one kept in `<data_dir>/node-id` (made
    /// on the first start: `gw-` and 12 random hex digits).
    pub fn gateway_id(&self) -> std::io::Result<String> {
        if let Some(id) = self
            .node_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            return Ok(id.to_string());
        }
        let file = self.data_dir.join("node-id");
        match std::fs::read_to_string(&file) {
            Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
            Ok(_) => Self::new_gateway_id(&file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::new_gateway_id(&file),
            Err(e) => Err(e),
        }
    }

    fn new_gateway_id(file: &Path) -> std::io::Result<String> {
        let id = format!("gw-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        std::fs::write(file, format!("{id}\n"))?;
        Ok(id)
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("kura.db")
    }

    /// Whether `database_url` names PostgreSQL (else the store is the SQLite file).
    pub fn database_is_postgres(&self) -> bool {
        let url = self.database_url();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// The metadata database `Store::connect` opens: `database_url`, else the SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.trim().to_string(),
            _ => self.db_path().to_string_lossy().into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn example_config_parses_and_env_overrides_it() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KURA_LISTEN", "127.0.0.1:9000");
            jail.set_env("KURA_TLS", "false");
            jail.set_env("KURA_STORAGE__BACKEND", "memory");
            jail.set_env("KURA_STORAGE__ROOT", "/srv/001");
            jail.set_env("KURA_ADMIN_PASSWORD", "123456");
            jail.set_env("KURA_LIMITS__SHARE_BURST", "7");
            jail.set_env("KURA_LIMITS__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]");
            let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kura.toml");
            let c = Config::load(Some(&example)).expect("example config loads");
            assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
            assert!(!c.tls);
            assert_eq!(c.storage.backend, "memory");
            assert_eq!(c.storage.root, Some(PathBuf::from("/srv/001")));
            assert_eq!(c.admin_password.as_deref(), Some("123456"));
            assert_eq!(c.data_dir, PathBuf::from("./kura-data"));
            assert_eq!(c.limits.share_burst, 7);
            assert_eq!(c.limits.share_requests_per_second, 20);
            assert_eq!(c.limits.trusted_proxies, ["10.0.0.0/8"]);
            Ok(())
        });
    }

    /// Storage options from the environment are text as given: a secret of digits, `true`.
    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn storage_options_from_the_environment_are_text() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KURA_STORAGE__BACKEND", "s3");
            jail.set_env("KURA_STORAGE__OPTIONS__SECRET_ACCESS_KEY", "0123456789");
            jail.set_env("KURA_STORAGE__OPTIONS__DISABLE_CONFIG_LOAD", "true");
            jail.set_env("KURA_STORAGE__OPTIONS__ENDPOINT", "http://127.0.0.1:3900");
            let c = Config::load(None).expect("loads");
            let o = &c.storage.options;
            assert_eq!(o["secret_access_key"], "0123456789");
            assert_eq!(o["disable_config_load"], "true");
            assert_eq!(o["endpoint"], "http://127.0.0.1:3900");
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        assert!(matches!(
            Config::load(Some(Path::new("/nonexistent/kura.toml"))),
            Err(ConfigError::Missing(_))
        ));
    }

    /// A gateway's node id: the configured one, else made once and kept in the data dir.
    #[test]
    fn the_node_id_is_configured_or_kept_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let made = c.gateway_id().unwrap();
        assert!(made.starts_with("gw-") && made.len() == 15, "{made}");
        assert_eq!(c.gateway_id().unwrap(), made, "not kept");
        c.node_id = Some(" gw-east-1 ".into());
        assert_eq!(c.gateway_id().unwrap(), "gw-east-1");
    }
}
