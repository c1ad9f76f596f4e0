//! Failed-authentication throttling: after N failures within a window, per client address and
//! per (address, account or share), further attempts get 429 until the oldest failure leaves
//! the window. Only failures count, and a success resets nothing, so an attacker cannot clear
//! its record by logging in elsewhere and one address's failures never slow another.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept before idle ones are swept at once (each holds at most N instants).
const SWEEP_AT: usize = 100_000;
/// Longest account name kept in a key.
const MAX_ACCOUNT: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    Account(IpAddr, String),
}

/// A sliding-window counter of failures per key.
pub struct FailedAuth {
    per_account: usize,
    per_ip: usize,
    window: Duration,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl FailedAuth {
    /// `per_account` failures per (address, account) and `per_ip` per address within `window`;
    /// zero turns a counter off.
    pub fn new(per_account: u32, per_ip: u32, window: Duration) -> Self {
        FailedAuth {
            per_account: per_account as usize,
            per_ip: per_ip as usize,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, ip: IpAddr, account: &str) -> [(Key, usize); 2] {
        let account: String = account.chars().take(MAX_ACCOUNT).collect();
        [
            (Key::Ip(ip), self.per_ip),
            (Key::Account(ip, account), self.per_account),
        ]
    }

    /// How long `ip` must wait before trying `account` again, if it is throttled.
    pub fn blocked(&self, ip: IpAddr, account: &str) -> Option<Duration> {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        self.keys(ip, account)
            .iter()
            .filter(|(_, limit)| *limit > 0)
            .filter_map(|(key, limit)| {
                let times = map.get(key)?;
                let recent: Vec<&Instant> = times
                    .iter()
                    .filter(|t| now.duration_since(**t) < self.window)
                    .collect();
                // blocked until the oldest of the last `limit` failures leaves the window
                (recent.len() >= *limit)
                    .then(|| self.window - now.duration_since(*recent[recent.len() - limit]))
            })
            .max()
    }

    /// Records one failed attempt by `ip` on `account`.
    pub fn record(&self, ip: IpAddr, account: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            self.sweep(&mut map, now);
        }
        for (key, limit) in self.keys(ip, account) {
            if limit == 0 {
                continue;
            }
            let times = map.entry(key).or_default();
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                times.pop_front();
            }
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    fn sweep(&self, map: &mut HashMap<Key, VecDeque<Instant>>, now: Instant) {
        map.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < self.window)
        });
    }

    /// Forgets keys whose failures have all left the window.
    pub fn housekeeping(&self) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        self.sweep(&mut map, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_n_failures_per_account_and_per_address() {
        let f = FailedAuth::new(3, 5, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(f.blocked(a, "ann").is_none());
            f.record(a, "ann");
        }
        let wait = f.blocked(a, "ann").expect("throttled");
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60));
        // another account from the same address is still allowed, until the address budget ends
        assert!(f.blocked(a, "bob").is_none());
        f.record(a, "bob");
        f.record(a, "bob");
        assert!(f.blocked(a, "carl").is_some());
        // another address is untouched
        assert!(f.blocked(b, "ann").is_none());
    }

    #[test]
    fn failures_leave_the_window() {
        let f = FailedAuth::new(2, 0, Duration::from_millis(50));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        f.record(a, "s");
        f.record(a, "s");
        assert!(f.blocked(a, "s").is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(f.blocked(a, "s").is_none());
        f.housekeeping();
        assert!(f.failures.lock().unwrap().is_empty());
    }
}
