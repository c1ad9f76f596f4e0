//! The certificate in use, swapped atomically, and the status record `kura tls status` reads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::certs::{CertInfo, Served};

/// One ACME attempt (first order or renewal).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attempt {
    /// When it started, Unix seconds.
    pub at: i64,
    /// Whether a certificate came back.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// ACME state shown by `kura tls status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AcmeStatus {
    /// Names ordered.
    pub domains: Vec<String>,
    /// Directory URL.
    pub directory: String,
    /// The latest attempt.
    pub last_attempt: Option<Attempt>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// When the next attempt is planned, Unix seconds.
    pub next_attempt: Option<i64>,
}

/// What the running server writes to `<data_dir>/tls/status.json` whenever something changes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TlsStatus {
    /// The certificate new connections get.
    pub in_use: CertInfo,
    /// Present when ACME is configured.
    pub acme: Option<AcmeStatus>,
    /// When the record was written, Unix seconds.
    pub updated: i64,
}

/// Path of the status record.
pub fn status_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("status.json")
}

/// Current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Holds the certificate handed to new TLS connections; open connections keep theirs.
pub struct CertStore {
    current: ArcSwap<Served>,
    status: Mutex<TlsStatus>,
    path: PathBuf,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").finish_non_exhaustive()
    }
}

impl CertStore {
    /// Starts with `first` in use and writes the first status record.
    pub fn new(first: Served, acme: Option<AcmeStatus>, data_dir: &Path) -> CertStore {
        let status = TlsStatus {
            in_use: first.info.clone(),
            acme,
            updated: now(),
        };
        let path = status_path(data_dir);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let store = CertStore {
            current: ArcSwap::from_pointee(first),
            status: Mutex::new(status),
            path,
        };
        store.update(|_| {});
        store
    }

    /// The certificate in use now.
    pub fn current(&self) -> Arc<Served> {
        self.current.load_full()
    }

    /// Puts `next` in use for every connection accepted from now on.
    pub fn install(&self, next: Served) {
        let info = next.info.clone();
        self.current.store(Arc::new(next));
        tracing::info!(
            source = %info.source,
            names = ?info.names,
            issuer = %info.issuer,
            not_after = %rfc3339(info.not_after),
            fingerprint = %info.fingerprint,
            "TLS certificate in use for new connections"
        );
        self.update(|s| s.in_use = info);
    }

    /// Changes the ACME part of the status record and writes it.
    pub fn acme_status(&self, f: impl FnOnce(&mut AcmeStatus)) {
        self.update(|s| f(s.acme.get_or_insert_with(AcmeStatus::default)));
    }

    /// Days until the certificate in use expires.
    pub fn days_left(&self) -> i64 {
        self.current.load().info.days_left(now())
    }

    fn update(&self, f: impl FnOnce(&mut TlsStatus)) {
        let Ok(mut s) = self.status.lock() else {
            return;
        };
        f(&mut s);
        s.updated = now();
        let write = serde_json::to_vec_pretty(&*s)
            .map_err(std::io::Error::other)
            .and_then(|json| {
                let tmp = self.path.with_extension("tmp");
                std::fs::write(&tmp, json)?;
                std::fs::rename(&tmp, &self.path)
            });
        if let Err(e) = write {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the TLS status");
        }
    }
}

/// A Unix time as RFC 3339 (UTC), for logs and `kura tls status`.
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}
