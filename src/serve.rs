//! `kura serve`: open the data dir, prepare storage and TLS, then listen.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{hash_password, random_password, Authenticator};
use crate::config::Config;
use crate::dav::{DavFront, DavSettings};
use crate::http::App;
use crate::s3::S3Front;
use crate::store::{Job, MetaError, Store};
use crate::vfs::{sweep_temp, Vfs};

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir or listener could not be set up.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Storage could not be configured.
    #[error(transparent)]
    Vfs(#[from] crate::vfs::VfsError),
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The S3 server key could not be opened.
    #[error(transparent)]
    Key(#[from] crate::vault::KeyError),
    /// This gateway's storage is not the one the database's files are in.
    #[error("the storage configured here ({mine}) is not the one this database's files are in ({recorded}): give this gateway the same [storage] settings as the others (docs/scale-out.md)")]
    OtherStorage {
        /// This gateway's storage.
        mine: String,
        /// The database's.
        recorded: String,
    },
    /// Another server already uses the data dir.
    #[error("another kura server is using the data dir {0}")]
    Busy(std::path::PathBuf),
    /// The data dir could not be created or opened.
    #[error("data dir {0}: {1}")]
    DataDir(std::path::PathBuf, std::io::Error),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, std::io::Error),
    /// The first admin could not be created.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The `[limits]` settings are unusable.
    #[error(transparent)]
    Limits(#[from] crate::limits::LimitsError),
    /// The `[metrics]` settings are unusable.
    #[error(transparent)]
    Metrics(#[from] crate::http::metrics::MetricsSetupError),
}

/// The data dir and the database get the modes `disk_umask` allows (0700 and 0600 by
/// default), also when an earlier version made them world-readable.
fn keep_private(cfg: &Config) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let umask = cfg.disk_umask_bits();
    let mode = |m: u32| std::fs::Permissions::from_mode(m & !umask);
    std::fs::set_permissions(&cfg.data_dir, mode(0o777))?;
    let db = cfg.db_path();
    // on PostgreSQL there is no file to make (the data dir holds keys, tmp/ and the journal)
    if !db.exists() && !cfg.database_is_postgres() {
        // SQLite treats an empty file as a new database and keeps the file's mode
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666 & !umask)
            .open(&db)?;
    }
    for f in ["kura.db", "kura.db-wal", "kura.db-shm", "kura.lock"] {
        let p = cfg.data_dir.join(f);
        if p.exists() {
            std::fs::set_permissions(&p, mode(0o666))?;
        }
    }
    // the storage folders (made by the core on the first start), also a storage.root that
    // lies outside the data dir
    let root = cfg
        .storage
        .root
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("files"));
    for d in [
        root,
        cfg.data_dir.join("tmp"),
        cfg.data_dir.join("journal"),
        cfg.data_dir.join("multipart"),
        cfg.data_dir.join("versions"),
    ] {
        if cfg.storage.backend == "fs" && d.is_dir() {
            std::fs::set_permissions(&d, mode(0o777))?;
        }
    }
    Ok(())
}

/// Refuses a start whose storage is not the one the database's files are in (a gateway of a
/// shared database set up with other `[storage]` settings would serve the files as missing
/// and keep its uploads where no other gateway looks); the first start records its own.
async fn same_storage(cfg: &Config, store: &Store) -> Result<(), StartError> {
    let mine = cfg.storage.identity();
    let recorded = match store.install_check(crate::store::STORAGE).await? {
        Some(r) => r,
        None => {
            store
                .record_install_check(crate::store::STORAGE, &mine)
                .await?
        }
    };
    if recorded != mine {
        return Err(StartError::OtherStorage { mine, recorded });
    }
    Ok(())
}

/// Starts the server and runs until interrupted.
pub async fn run(cfg: Config) -> Result<(), StartError> {
    let shown = crate::install::shown(&cfg.data_dir);
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| StartError::DataDir(shown.clone(), e))?;
    // One server per data dir: a second one would sweep the first one's uploads in progress.
    let _lock = lock_data_dir(&cfg.data_dir).map_err(|e| match e {
        StartError::Io(e) => StartError::DataDir(shown.clone(), e),
        e => e,
    })?;
    keep_private(&cfg).map_err(|e| StartError::DataDir(shown.clone(), e))?;
    let store = Store::connect(&cfg.database_url(), cfg.durable_commits).await?;
    same_storage(&cfg, &store).await?;

    let vfs = crate::setup::build_vfs(&cfg, store.clone())?;
    // a lost master key stops the start rather than be replaced by one that opens nothing
    vfs.check_master_key().await?;
    keep_private(&cfg).map_err(|e| StartError::DataDir(shown.clone(), e))?;
    // commits in flight when the last run stopped are finished or undone before tmp/ is swept
    let (finished, undone) = vfs.recover().await?;
    if finished + undone > 0 {
        tracing::warn!(
            finished,
            undone,
            "resolved commits interrupted by the last stop"
        );
    }
    let swept = sweep_temp(&cfg.data_dir)?;
    if swept > 0 {
        tracing::info!(count = swept, "removed leftovers of interrupted uploads");
    }
    let vault = crate::vault::Vault::open(&cfg.data_dir, &store).await?;
    spawn_version_purge(store.clone(), vfs.clone());
    if cfg.multipart_expiry_hours > 0 {
        let max_age = Duration::from_secs(cfg.multipart_expiry_hours * 3600);
        spawn_multipart_expiry(store.clone(), vfs.clone(), max_age);
    }

    // bound before TLS starts: an ACME validation connecting early waits in the backlog
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| StartError::Bind(cfg.listen, e))?;
    let tls = if cfg.tls {
        Some(crate::tls::start(&cfg.tls_settings()).await?)
    } else {
        None
    };
    // the certificate at start; `kura tls status` shows the one in use after a swap
    let fingerprint = tls
        .as_ref()
        .map(|t| t.store.current().info.fingerprint.clone());
    let cert = tls.as_ref().map(|t| t.store.clone());
    let tls = tls.map(|t| t.config);

    let node = store.node_id().await?;
    let gateway = cfg
        .gateway_id()
        .map_err(|e| StartError::DataDir(shown.clone(), e))?;
    tracing::info!(node_id = %gateway, replication_node_id = %node, "node ids");
    crate::replication::Replicator {
        store: store.clone(),
        vfs: vfs.clone(),
        vault: vault.clone(),
        cfg: cfg.replication.clone(),
        holder: format!(
            "{gateway}/{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
    }
    .spawn();

    let limits = Arc::new(crate::limits::Limits::new(&cfg.limits)?);
    limits.spawn_housekeeping();
    if store.on_postgres() {
        // several gateways may share the database: count the throttles there too
        limits.share_with(Arc::new(SharedWindows(store.clone())));
        spawn_throttle_purge(store.clone());
    }
    let shares = crate::share_links::Shares::new(store.clone(), vfs.clone());
    let sessions = crate::sessions::Sessions::new(
        store.clone(),
        vault.clone(),
        Duration::from_secs(cfg.session_idle_minutes.max(1) * 60),
        Duration::from_secs(cfg.session_max_hours.max(1) * 3600),
    );
    spawn_session_purge(store.clone(), sessions.clone());
    spawn_audit(
        store.clone(),
        cfg.audit_retention_days,
        cfg.audit_log.clone(),
    );
    let notifier =
        crate::notify::Notifier::new(store.clone(), vault.clone(), Some(cfg.smtp.clone()))
            .spawn(Duration::from_secs(1));
    let secure_cookies = tls.is_some()
        || cfg
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
    let app = Arc::new(App {
        health: crate::http::health::Health::new(store.clone(), storage_check(&cfg)?, gateway),
        runtime: crate::admin::Runtime {
            started_ms: crate::store::now_ms(),
            backend: cfg.storage.backend.clone(),
            cert: cert.clone(),
        },
        sessions: crate::app::SessionFront::new(sessions, secure_cookies),
        cert,
        metrics: crate::http::metrics::MetricsGate::new(&cfg.metrics)?,
        user: crate::user_api::UserApi {
            vfs: vfs.clone(),
            shares: shares.clone(),
            thumbs: crate::delivery::thumbnail::Thumbnailer::new(
                cfg.data_dir.join("thumbnails"),
                cfg.preview_cache_bytes,
            ),
            session_doc: crate::app::openapi,
        },
        shares: crate::share::http::ShareFront::new(shares, limits.clone(), tls.is_some()),
        limits,
        auth: Authenticator::new(store.clone(), Duration::from_secs(cfg.auth_cache_seconds)),
        s3: S3Front::new(
            vfs.clone(),
            crate::auth::AccessKeys::new(store.clone(), vault.clone()),
            cfg.s3_base_domain.clone(),
            crate::replication::feed::Feed {
                store: store.clone(),
                keep: cfg.replication.tombstone_keep(),
            },
        ),
        admin: crate::admin::Admin {
            store: store.clone(),
            vfs: vfs.clone(),
            vault,
            public_url: cfg.share_base_url(),
        },
        dav: DavFront::new(
            vfs,
            DavSettings {
                max_xml_body: cfg.max_xml_body,
                depth_infinity: cfg.propfind_depth_infinity,
            },
        ),
    });

    let addr = listener.local_addr()?;
    let url = cfg.base_url_for(addr);
    tracing::info!(%addr, "Kura listening: WebDAV at {url}/dav/, S3 at {url}/");
    println!("Kura is listening on {addr}: WebDAV at {url}/dav/, S3 endpoint {url}");
    let record = crate::install::ServerRecord {
        listen: addr.to_string(),
        url,
        tls_fingerprint: fingerprint,
        pid: std::process::id(),
    };
    if let Err(e) = crate::install::record_server(&cfg.data_dir, &record) {
        tracing::warn!(error = %e, "cannot record the listen address in the data dir");
    }
    // Only now, with the port taken: a start that fails earlier shows no password it then loses.
    bootstrap_admin(&store, &cfg).await?;

    tokio::select! {
        _ = crate::http::serve(listener, tls, app) => {}
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    notifier.stop(Duration::from_secs(5)).await;
    Ok(())
}

/// What `/healthz` checks of the storage: the `fs` root folder, or the object store itself
/// (an operator of its own, so the probe shares no connection pool with the requests).
fn storage_check(cfg: &Config) -> Result<crate::http::health::StorageCheck, StartError> {
    use crate::http::health::StorageCheck;
    Ok(match cfg.storage.backend.as_str() {
        "fs" => StorageCheck::Folder(
            cfg.storage
                .root
                .clone()
                .unwrap_or_else(|| cfg.data_dir.join("files")),
        ),
        "memory" => StorageCheck::Nothing,
        _ => StorageCheck::Store(crate::vfs::build_operator(&cfg.storage, &cfg.data_dir)?.0),
    })
}

/// Purges audit rows past their retention hourly and, with `log`, appends every new row as a
/// JSON line to it ("-": standard output), its position kept beside it.
fn spawn_audit(store: Store, retention_days: u64, log: Option<std::path::PathBuf>) {
    if retention_days > 0 {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let before = crate::store::now_ms() - (retention_days * 86_400_000) as i64;
                turn(&store, Job::AuditPurge, async {
                    if let Err(e) = store.purge_audit(before).await {
                        tracing::warn!(error = %e, "purging the audit trail failed");
                    }
                })
                .await;
            }
        });
    }
    let Some(log) = log else { return };
    tokio::spawn(async move {
        let stdout = log.as_os_str() == "-";
        let cursor_file = log.with_extension("cursor");
        let mut cursor: i64 = if stdout {
            store.audit_head().await.unwrap_or(0)
        } else {
            std::fs::read_to_string(&cursor_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let rows = match store.audit_after(cursor, 1000).await {
                Ok(r) if r.is_empty() => continue,
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the audit trail failed");
                    continue;
                }
            };
            let mut text = String::new();
            for r in &rows {
                text.push_str(&serde_json::to_string(r).unwrap_or_default());
                text.push('\n');
            }
            let written = if stdout {
                use std::io::Write;
                std::io::stdout().write_all(text.as_bytes())
            } else {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_data()))
            };
            if let Err(e) = written {
                tracing::warn!(error = %e, file = %log.display(), "writing the audit log failed");
                continue;
            }
            cursor = rows.last().map_or(cursor, |r| r.id);
            if !stdout {
                if let Err(e) = std::fs::write(&cursor_file, cursor.to_string()) {
                    tracing::warn!(error = %e, "saving the audit log position failed");
                }
            }
        }
    });
}

/// Removes expired browser sessions every ten minutes.
fn spawn_session_purge(store: Store, sessions: crate::sessions::Sessions) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            turn(&store, Job::SessionPurge, async {
                if let Err(e) = sessions.purge().await {
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
            })
            .await;
        }
    });
}

/// The throttle windows in the database, for `limits` (docs/scale-out.md, "Shared throttles").
struct SharedWindows(Store);

#[async_trait::async_trait]
impl crate::limits::Windows for SharedWindows {
    async fn count(&self, key: &str, window: Duration) -> Result<(i64, Duration), String> {
        let counted = self.0.throttle_count(key, window).await;
        counted.map_err(|e| e.to_string())
    }

    async fn uncount(&self, key: &str) -> Result<(), String> {
        self.0
            .throttle_uncount(key)
            .await
            .map_err(|e| e.to_string())
    }

    async fn read(&self, key: &str) -> Result<(i64, Duration), String> {
        self.0.throttle_read(key).await.map_err(|e| e.to_string())
    }

    async fn forget(&self, ip: Option<String>, account: Option<String>) -> Result<u64, String> {
        let forgot = self
            .0
            .throttle_forget(ip.as_deref(), account.as_deref())
            .await;
        forgot.map_err(|e| e.to_string())
    }

    async fn admit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Result<(), Duration>, String> {
        let admitted = self.0.throttle_admit(key, interval, burst).await;
        admitted.map_err(|e| e.to_string())
    }
}

/// Removes closed throttle windows every minute.
fn spawn_throttle_purge(store: Store) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            turn(&store, Job::ThrottlePurge, async {
                if let Err(e) = store.purge_throttle().await {
                    tracing::warn!(error = %e, "purging closed throttle windows failed");
                }
            })
            .await;
        }
    });
}

/// Runs one turn of a periodic job unless another gateway on the database runs it now
/// (docs/scale-out.md, "Background jobs").
async fn turn(store: &Store, job: Job, run: impl std::future::Future<Output = ()>) {
    match store.once(job, run).await {
        Ok(Some(())) => {}
        Ok(None) => tracing::debug!(?job, "another gateway runs this job now"),
        Err(e) => tracing::warn!(error = %e, ?job, "cannot take the job's turn"),
    }
}

/// Drops the trash and versions the buckets' policies no longer keep, and runs the buckets'
/// S3 lifecycle rules, now and then every ten minutes (docs/versions.md, docs/s3.md).
fn spawn_version_purge(store: Store, vfs: Vfs) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            turn(&store, Job::VersionPurge, purge_versions(&vfs)).await;
        }
    });
}

/// One turn of the version purge and the lifecycle rules, then the blobs let go of more than
/// the grace ago (object stores).
async fn purge_versions(vfs: &Vfs) {
    purge_expired(vfs).await;
    vfs.sweep_gone_blobs().await;
}

async fn purge_expired(vfs: &Vfs) {
    match vfs.purge_expired().await {
        Ok(p) if p.rows == 0 => {}
        Ok(p) => tracing::info!(
            removed = p.rows,
            bytes = p.bytes,
            "purged expired versions and trash"
        ),
        Err(e) => tracing::warn!(error = %e, "purging versions and trash failed"),
    }
    match vfs.run_lifecycle(0).await {
        Ok(r) if r == Default::default() => {}
        Ok(r) => tracing::info!(
            expired = r.expired,
            noncurrent = r.noncurrent,
            markers = r.markers,
            aborted = r.aborted,
            "ran the buckets' lifecycle rules"
        ),
        Err(e) => tracing::warn!(error = %e, "running lifecycle rules failed"),
    }
}

/// Removes abandoned multipart and resumable uploads now and then every hour.
fn spawn_multipart_expiry(store: Store, vfs: Vfs, max_age: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            turn(&store, Job::UploadExpiry, expire_uploads(&vfs, max_age)).await;
        }
    });
}

/// One turn of the multipart and resumable upload expiry.
async fn expire_uploads(vfs: &Vfs, max_age: Duration) {
    match vfs.multipart_expire(max_age).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "removed stale multipart uploads"),
        Err(e) => tracing::warn!(error = %e, "multipart expiry failed"),
    }
    match vfs.resumable_expire(crate::vfs::resumable::IDLE).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "removed expired resumable uploads"),
        Err(e) => tracing::warn!(error = %e, "resumable upload expiry failed"),
    }
}

fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    let path = dir.join(crate::install::LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::Busy(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// With no administrator yet, creates `admin` with KURA_ADMIN_PASSWORD or a random password
/// shown once (users added before the first start do not prevent it).
async fn bootstrap_admin(store: &Store, cfg: &Config) -> Result<(), StartError> {
    let users = store.users().await?;
    if users.iter().any(|u| u.is_admin) {
        return Ok(());
    }
    if users.iter().any(|u| u.name == "admin") {
        tracing::warn!("there is no administrator and the name admin is taken by a plain user; add one with: kura user add NAME --admin");
        return Ok(());
    }
    let (pw, generated) = match &cfg.admin_password {
        Some(p) if !p.is_empty() => (p.clone(), false),
        _ => (random_password(), true),
    };
    match store.create_user("admin", &hash_password(&pw)?, true).await {
        Ok(()) | Err(MetaError::Duplicate) => {}
        Err(e) => return Err(e.into()),
    }
    if generated {
        // Printed, not logged: the one time this password is shown.
        println!("Created administrator 'admin' with password: {pw}");
        println!("(it is not shown again; change or recover it with: kura user passwd admin)");
    } else {
        println!("Created administrator 'admin' with the configured admin_password (KURA_ADMIN_PASSWORD)");
    }
    Ok(())
}
