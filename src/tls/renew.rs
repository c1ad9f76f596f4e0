//! When to order: at once without a fitting certificate, then when a third of its lifetime is
//! left; after a failure again with a doubling pause, the current certificate serving meanwhile.

use std::sync::Arc;
use std::time::Duration;

use super::acme::{obtain, AcmeSettings, Http01Tokens};
use super::certs::{CertInfo, Source};
use super::resolver::CertResolver;
use super::store::{now, rfc3339, Attempt, CertStore};

/// First pause after a failed attempt; doubled after each further failure.
const FIRST_RETRY: Duration = Duration::from_secs(60);
/// Longest pause between two failed attempts.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// Least time between two orders, whatever lifetimes a CA hands out.
const MIN_GAP: i64 = 5;
/// One attempt is abandoned after this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// When a certificate should be renewed: once a third of its lifetime is left.
pub fn renew_at(info: &CertInfo) -> i64 {
    info.not_after - (info.not_after - info.not_before) / 3
}

/// Runs the order/renew loop for the life of the server.
pub fn spawn(
    s: AcmeSettings,
    store: Arc<CertStore>,
    resolver: Arc<CertResolver>,
    tokens: Http01Tokens,
) {
    tokio::spawn(async move {
        let mut failures: u32 = 0;
        let mut hup = super::reload::sighup();
        loop {
            let current = store.current();
            let fits = current.info.source == Source::Acme && current.info.covers(&s.domains);
            let due = if failures > 0 {
                now() + retry_pause(failures).as_secs() as i64
            } else if fits {
                renew_at(&current.info).max(now() + MIN_GAP)
            } else {
                now()
            };
            store.acme_status(|a| a.next_attempt = Some(due));
            let wait = Duration::from_secs(due.saturating_sub(now()).max(0) as u64);
            if !wait.is_zero() {
                if fits && failures == 0 {
                    tracing::info!(at = %rfc3339(due), "next ACME renewal planned");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    // SIGHUP: try now (after fixing DNS or port forwarding, say)
                    _ = super::reload::recv(&mut hup) => tracing::info!("SIGHUP: ACME attempt now"),
                }
            }
            let started = now();
            let result = tokio::time::timeout(ATTEMPT_TIMEOUT, obtain(&s, &resolver, &tokens))
                .await
                .unwrap_or_else(|_| {
                    Err(super::acme::AcmeError::Order(
                        "timed out after 300 s".into(),
                    ))
                });
            match result {
                Ok(next) => {
                    failures = 0;
                    tracing::info!(
                        domains = ?s.domains,
                        issuer = %next.info.issuer,
                        not_after = %rfc3339(next.info.not_after),
                        renew_at = %rfc3339(renew_at(&next.info)),
                        "ACME certificate obtained"
                    );
                    store.install(next);
                    store.acme_status(|a| {
                        a.failures = 0;
                        a.last_attempt = Some(Attempt {
                            at: started,
                            ok: true,
                            error: None,
                        });
                    });
                }
                Err(e) => {
                    // with its causes: "client error (Connect)" alone says not what to fix
                    let e = crate::causes::chain(&e);
                    failures = failures.saturating_add(1);
                    let pause = retry_pause(failures);
                    let kept = store.current();
                    tracing::warn!(
                        error = %e,
                        directory = %s.directory,
                        failures,
                        retry_in_seconds = pause.as_secs(),
                        serving = %kept.info.source,
                        serving_expires = %rfc3339(kept.info.not_after),
                        "ACME renewal failed; the current certificate keeps serving"
                    );
                    let error = e.to_string();
                    store.acme_status(|a| {
                        a.failures = failures;
                        a.last_attempt = Some(Attempt {
                            at: started,
                            ok: false,
                            error: Some(error),
                        });
                    });
                }
            }
        }
    });
}

/// The pause after `failures` failed attempts in a row.
fn retry_pause(failures: u32) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_with_a_third_of_the_lifetime_left_and_failures_back_off() {
        let mut info = super::super::certs::CertInfo {
            names: vec![],
            subject: String::new(),
            issuer: String::new(),
            not_before: 0,
            not_after: 90 * 86_400,
            serial: String::new(),
            fingerprint: String::new(),
            source: Source::Acme,
        };
        assert_eq!(renew_at(&info), 60 * 86_400);
        info.not_after = 6 * 86_400;
        assert_eq!(renew_at(&info), 4 * 86_400);
        assert_eq!(retry_pause(1), Duration::from_secs(60));
        assert_eq!(retry_pause(2), Duration::from_secs(120));
        assert_eq!(retry_pause(40), MAX_RETRY);
    }
}
