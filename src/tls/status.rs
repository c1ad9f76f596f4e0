//! `kura tls status`: the running server's status record, in words.

use std::fmt::Write;

use super::store::{now, rfc3339, status_path, TlsStatus};
use super::TlsError;
use crate::config::TlsSettings;

/// Prints the certificate in use and the ACME state, as the running server last wrote them.
pub fn print_status(cfg: &TlsSettings) -> Result<(), TlsError> {
    let path = status_path(&cfg.data_dir);
    let bytes = std::fs::read(&path).map_err(|e| {
        TlsError::Status(format!(
            "{}: {e} (has the server run with TLS on this data dir?)",
            path.display()
        ))
    })?;
    let s: TlsStatus = serde_json::from_slice(&bytes)
        .map_err(|e| TlsError::Status(format!("{}: {e}", path.display())))?;
    print!("{}", render(&s, now()));
    Ok(())
}

/// The fingerprint of the certificate the server last put in use, from its status record.
pub fn in_use(data_dir: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(status_path(data_dir)).ok()?;
    let s: TlsStatus = serde_json::from_slice(&bytes).ok()?;
    Some(s.in_use.fingerprint)
}

fn render(s: &TlsStatus, now: i64) -> String {
    let c = &s.in_use;
    let mut out = String::new();
    let _ = writeln!(out, "source:       {}", c.source);
    let _ = writeln!(out, "names:        {}", c.names.join(", "));
    let _ = writeln!(out, "subject:      {}", c.subject);
    let _ = writeln!(out, "issuer:       {}", c.issuer);
    let _ = writeln!(out, "not before:   {}", rfc3339(c.not_before));
    let _ = writeln!(
        out,
        "expires:      {} ({} days left)",
        rfc3339(c.not_after),
        c.days_left(now)
    );
    let _ = writeln!(out, "fingerprint:  sha256 {}", c.fingerprint);
    if let Some(a) = &s.acme {
        let _ = writeln!(out, "acme domains: {}", a.domains.join(", "));
        let _ = writeln!(out, "directory:    {}", a.directory);
        match &a.last_attempt {
            None => {
                let _ = writeln!(out, "last attempt: none yet");
            }
            Some(t) if t.ok => {
                let _ = writeln!(out, "last attempt: {} succeeded", rfc3339(t.at));
            }
            Some(t) => {
                let _ = writeln!(
                    out,
                    "last attempt: {} FAILED ({} in a row): {}",
                    rfc3339(t.at),
                    a.failures,
                    t.error.as_deref().unwrap_or("unknown error")
                );
            }
        }
        if let Some(n) = a.next_attempt {
            let _ = writeln!(out, "next attempt: {}", rfc3339(n));
        }
    }
    let _ = writeln!(out, "as of:        {}", rfc3339(s.updated));
    out
}
