//! Hot reload of a certificate pair on disk (the operator's `tls_cert`/`tls_key`, or the
//! generated one): checked every few seconds and on SIGHUP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::certs::{Served, Source};
use super::store::CertStore;

/// How often the files' modification times are compared.
const POLL: Duration = Duration::from_secs(2);

/// Watches the pair and installs it whenever it changes and still fits together.
pub fn spawn_file_watch(store: Arc<CertStore>, cert: PathBuf, key: PathBuf, source: Source) {
    tokio::spawn(async move {
        let mut hup = sighup();
        let mut seen = stamps(&cert, &key);
        loop {
            let forced = tokio::select! {
                _ = tokio::time::sleep(POLL) => false,
                _ = recv(&mut hup) => true,
            };
            let now = stamps(&cert, &key);
            if !forced && now == seen {
                continue;
            }
            // a failed load is kept as seen: the next write of either file retries
            seen = now;
            match Served::from_files(&cert, &key, source) {
                Ok(next) if next.info.fingerprint == store.current().info.fingerprint => {}
                Ok(next) => store.install(next),
                Err(e) => tracing::warn!(
                    error = %e,
                    "the changed certificate files could not be used; the previous certificate keeps serving"
                ),
            }
        }
    });
}

fn stamps(cert: &PathBuf, key: &PathBuf) -> [Option<(SystemTime, u64)>; 2] {
    let stamp = |p: &PathBuf| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    [stamp(cert), stamp(key)]
}

/// SIGHUP, when it can be watched.
pub type Hup = Option<tokio::signal::unix::Signal>;

pub fn sighup() -> Hup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| tracing::warn!(error = %e, "SIGHUP cannot be watched"))
        .ok()
}

pub async fn recv(hup: &mut Hup) {
    match hup {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
