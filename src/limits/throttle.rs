//! Failed-authentication throttling, in three layers, each decided and reserved in one locked
//! step (so concurrent attempts cannot all slip past a check before any is recorded):
//!
//! - per (address, account): after `per_pair` failures within the window, that address may not
//!   try that account until the oldest failure leaves the window (429). Attempts in flight count
//!   as failures until they are decided: when they fill the budget, further attempts wait for
//!   them (a burst of parallel requests with the right password waits for the first answer;
//!   60 parallel guesses get 5 checked). A credential that succeeded from that address before
//!   does not wait.
//! - per address: beyond `per_ip` failures within the window, every further attempt from the
//!   address on an account it has not logged in to is delayed, by a delay that doubles with each
//!   failure up to `delay_max` (credential stuffing is held to about one guess per `delay_max`;
//!   a household's correct logins still pass, at worst after one delay).
//! - per account, whatever the address: beyond `per_account` failures within the window, the
//!   account is refused (429) from every address it has not logged in to from recently, so
//!   changing addresses does not buy more guesses.
//!
//! An (address, account) pair that authenticated successfully is *proven* for `PROVEN_FOR`: the
//! address and account layers do not slow it, so an attack on an account or from a shared
//! address does not lock out a device that knows its password.
//!
//! On several gateways (`share_with`), `admit` also counts the three layers in windows every
//! gateway shares (`super::shared`), after this process's own checks: a gateway already over a
//! limit refuses without asking; vouched credentials and proven pairs ask nothing.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::shared::{within, Windows};

/// Keys kept before idle ones are swept at once.
const SWEEP_AT: usize = 100_000;
/// At most one sweep a second past `SWEEP_AT` (but always at `KEYS_MAX`): each walks every
/// key, and a spray of guesses from new addresses on new accounts keeps them live for the
/// whole window.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Keys kept at most: past it a sweep also forgets the keys of one failure and nothing in
/// flight (the noise of a spray, each address and account tried once), so memory is bounded.
const KEYS_MAX: usize = 4 * SWEEP_AT;
/// Longest account name kept in a key.
const MAX_ACCOUNT: usize = 128;
/// How long a successful login keeps its (address, account) pair proven.
const PROVEN_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an attempt waiting for attempts in flight on other gateways waits before it asks
/// the shared windows again (password checks take about as long).
const SHARED_RETRY: Duration = Duration::from_millis(100);
/// The first delay once an address is over its failure budget; it doubles per failure.
const FIRST_DELAY: Duration = Duration::from_millis(250);

/// Failure times within the window, and attempts still being decided.
#[derive(Default)]
struct Counter {
    failures: VecDeque<Instant>,
    pending: usize,
}

impl Counter {
    fn prune(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.failures.pop_front();
        }
    }

    /// How long until fewer than `limit` failures remain in the window.
    fn wait(&self, now: Instant, window: Duration, limit: usize) -> Duration {
        let n = self.failures.len();
        if n < limit {
            return Duration::ZERO;
        }
        window.saturating_sub(now.duration_since(self.failures[n - limit]))
    }

    fn push(&mut self, now: Instant, cap: usize) {
        self.failures.push_back(now);
        while self.failures.len() > cap.max(1) {
            self.failures.pop_front();
        }
    }
}

#[derive(Default)]
struct State {
    pairs: HashMap<(IpAddr, String), Counter>,
    ips: HashMap<IpAddr, (Counter, Instant)>,
    accounts: HashMap<String, Counter>,
    proven: HashMap<(IpAddr, String), Instant>,
    /// (address, credential fingerprint) that succeeded: attempts with it are not guesses.
    vouched: HashMap<(IpAddr, String), Instant>,
    /// When a full table may be swept again.
    next_sweep: Option<Instant>,
}

/// Keys held in the per-key tables.
fn keys(st: &State) -> usize {
    st.pairs.len() + st.ips.len() + st.accounts.len() + st.vouched.len()
}

/// The throttle shared by every entry point (WebDAV, S3, admin API, share passwords).
pub struct FailedAuth {
    per_pair: usize,
    per_ip: usize,
    per_account: usize,
    window: Duration,
    delay_max: Duration,
    state: Arc<Mutex<State>>,
    /// The counts shared with the other gateways on the database, when there are any.
    shared: OnceLock<Arc<dyn Windows>>,
}

/// An attempt admitted by `begin`: wait `delay`, check the credentials, then `finish` it.
pub struct Ticket {
    key: (IpAddr, String),
    credential: Option<String>,
    /// Counted as in flight on its pair.
    reserved: bool,
    /// How long to wait before checking the credentials.
    pub delay: Duration,
    state: Arc<Mutex<State>>,
    limits: (usize, usize, usize),
    done: bool,
    /// What the attempt counts in the shared windows.
    shared: Option<SharedCount>,
}

/// The shared windows an attempt counts in when it ends.
struct SharedCount {
    windows: Arc<dyn Windows>,
    window: Duration,
    /// The pair's window counted the attempt at `admit` (taken back unless it fails).
    pair_counted: bool,
    /// Which layers are on: (pair, address, account).
    layers: (bool, bool, bool),
}

/// The shared windows' keys of an attempt.
struct SharedKeys {
    /// The pair's failures and attempts in flight (the in-memory `failures + pending`).
    pair: String,
    /// The pair's failures alone.
    failed: String,
    address: String,
    account: String,
}

fn shared_keys(key: &(IpAddr, String)) -> SharedKeys {
    SharedKeys {
        pair: format!("auth:pair:{}|{}", key.0, key.1),
        failed: format!("auth:fail:{}|{}", key.0, key.1),
        address: format!("auth:ip:{}", key.0),
        account: format!("auth:acct:{}", key.1),
    }
}

/// Why an attempt is not admitted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures: try again after this long (429).
    Throttled(Duration),
    /// Attempts in flight on this account fill its budget: ask again when one is decided.
    InFlight,
}

/// What a decided attempt was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Wrong credentials.
    Failed,
    /// The credentials were right.
    Succeeded,
    /// Not decided (the store failed, the request was malformed).
    Unknown,
}

/// One throttled key, for `GET /api/v1/throttle`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ThrottleView {
    /// `pair`, `address` or `account`.
    pub kind: String,
    /// The client address, for `pair` and `address`.
    pub address: Option<String>,
    /// The account (`user:NAME`, `key:ID`, `token`, `share:...`), for `pair` and `account`.
    pub account: Option<String>,
    /// Failures within the window.
    pub failures: usize,
}

impl FailedAuth {
    /// `per_pair` failures per (address, account), `per_ip` per address before delays,
    /// `per_account` per account over all addresses, within `window`; zero turns a layer off.
    pub fn new(
        per_pair: u32,
        per_ip: u32,
        per_account: u32,
        window: Duration,
        delay_max: Duration,
    ) -> Self {
        FailedAuth {
            per_pair: per_pair as usize,
            per_ip: per_ip as usize,
            per_account: per_account as usize,
            window,
            delay_max,
            state: Arc::new(Mutex::new(State::default())),
            shared: OnceLock::new(),
        }
    }

    /// Counts failures in `windows` too, shared with every gateway on the database.
    pub fn share_with(&self, windows: Arc<dyn Windows>) {
        let _ = self.shared.set(windows);
    }

    /// `begin`, then, on several gateways, the limits counted across them: the pair's window
    /// counts the attempt at once (one atomic count, so parallel attempts on every gateway
    /// get `per_pair` checks in all), the address's and the account's are read.
    pub async fn admit(
        &self,
        ip: IpAddr,
        account: &str,
        credential: Option<&str>,
    ) -> Result<Ticket, Refusal> {
        let mut t = self.begin(ip, account, credential)?;
        let Some(windows) = self.shared.get().cloned() else {
            return Ok(t);
        };
        let keys = shared_keys(&t.key);
        let mut counted = false;
        if t.reserved {
            if let Some((n, _)) = within("pair", windows.count(&keys.pair, self.window)).await {
                counted = true;
                if n > self.per_pair as i64 {
                    // taken back by the ticket's drop: a refusal is no attempt
                    t.shared = Some(self.shared_count(&windows, true));
                    let failed = within("pair", windows.read(&keys.failed)).await;
                    return Err(match failed {
                        Some((f, left)) if f >= self.per_pair as i64 => {
                            Refusal::Throttled(left.max(FIRST_DELAY))
                        }
                        // attempts in flight on other gateways fill the budget: wait for
                        // them, asking again after `SHARED_RETRY`
                        _ => {
                            tokio::time::sleep(SHARED_RETRY).await;
                            Refusal::InFlight
                        }
                    });
                }
            }
        }
        t.shared = Some(self.shared_count(&windows, counted));
        if t.limits.1 == 0 && self.per_ip > 0 {
            return Ok(t); // a proven pair
        }
        if self.per_account > 0 {
            if let Some((n, left)) = within("account", windows.read(&keys.account)).await {
                if n >= self.per_account as i64 {
                    return Err(Refusal::Throttled(left.max(FIRST_DELAY)));
                }
            }
        }
        if self.per_ip > 0 {
            if let Some((n, _)) = within("address", windows.read(&keys.address)).await {
                if n >= self.per_ip as i64 {
                    let excess = (n - self.per_ip as i64).clamp(0, 16) as u32;
                    let step = FIRST_DELAY
                        .saturating_mul(1u32 << excess)
                        .min(self.delay_max);
                    t.delay = t.delay.max(step);
                }
            }
        }
        Ok(t)
    }

    fn shared_count(&self, windows: &Arc<dyn Windows>, pair_counted: bool) -> SharedCount {
        SharedCount {
            windows: windows.clone(),
            window: self.window,
            pair_counted,
            layers: (self.per_pair > 0, self.per_ip > 0, self.per_account > 0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits an attempt by `ip` on `account` (maybe after a delay), or says how long to wait.
    /// `credential` is a fingerprint of what the request presents (see `crate::http::attempt::credential`).
    pub fn begin(
        &self,
        ip: IpAddr,
        account: &str,
        credential: Option<&str>,
    ) -> Result<Ticket, Refusal> {
        let now = Instant::now();
        let ip = super::ip::budget_key(ip);
        let account: String = account.chars().take(MAX_ACCOUNT).collect();
        let key = (ip, account);
        let credential = credential.map(|c| c.chars().take(MAX_ACCOUNT).collect::<String>());
        let mut st = self.lock();
        let n = keys(&st);
        if n >= KEYS_MAX || (n >= SWEEP_AT && st.next_sweep.is_none_or(|t| now >= t)) {
            self.sweep(&mut st, now);
            st.next_sweep = Some(now + SWEEP_EVERY);
        }
        let w = self.window;
        let vouched = credential.as_ref().is_some_and(|c| {
            st.vouched
                .get(&(ip, c.clone()))
                .is_some_and(|t| now.duration_since(*t) < PROVEN_FOR)
        });
        if self.per_pair > 0 {
            let c = st.pairs.entry(key.clone()).or_default();
            c.prune(now, w);
            if c.failures.len() >= self.per_pair {
                return Err(Refusal::Throttled(c.wait(now, w, self.per_pair)));
            }
            if !vouched && c.failures.len() + c.pending >= self.per_pair {
                return Err(Refusal::InFlight);
            }
        }
        let proven = st
            .proven
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < PROVEN_FOR);
        let mut delay = Duration::ZERO;
        if !proven {
            if self.per_account > 0 {
                if let Some(c) = st.accounts.get_mut(&key.1) {
                    c.prune(now, w);
                    if c.failures.len() >= self.per_account {
                        return Err(Refusal::Throttled(c.wait(now, w, self.per_account)));
                    }
                }
            }
            if self.per_ip > 0 {
                let (c, next) = st
                    .ips
                    .entry(ip)
                    .or_insert_with(|| (Counter::default(), now));
                c.prune(now, w);
                let excess = (c.failures.len() + c.pending).saturating_sub(self.per_ip);
                if c.failures.len() + c.pending >= self.per_ip {
                    // the attempts of one address take turns, each `step` after the one before
                    let step = FIRST_DELAY
                        .saturating_mul(1u32 << excess.min(16))
                        .min(self.delay_max);
                    let slot = (*next).max(now) + step;
                    delay = slot - now;
                    if delay > self.delay_max {
                        return Err(Refusal::Throttled(delay));
                    }
                    *next = slot;
                }
                c.pending += 1;
            }
        }
        let reserved = self.per_pair > 0 && !vouched;
        if reserved {
            st.pairs.entry(key.clone()).or_default().pending += 1;
        }
        Ok(Ticket {
            key,
            credential,
            reserved,
            delay,
            state: self.state.clone(),
            limits: (
                self.per_pair,
                if proven { 0 } else { self.per_ip },
                self.per_account,
            ),
            done: false,
            shared: None,
        })
    }

    fn sweep(&self, st: &mut State, now: Instant) {
        let w = self.window;
        let live = |c: &Counter| {
            c.pending > 0
                || c.failures
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < w)
        };
        st.pairs.retain(|_, c| live(c));
        st.ips.retain(|_, (c, next)| live(c) || *next > now);
        st.accounts.retain(|_, c| live(c));
        st.proven.retain(|_, t| now.duration_since(*t) < PROVEN_FOR);
        st.vouched
            .retain(|_, t| now.duration_since(*t) < PROVEN_FOR);
        if keys(st) >= KEYS_MAX {
            let noise = |c: &Counter| c.pending == 0 && c.failures.len() <= 1;
            st.pairs.retain(|_, c| !noise(c));
            st.ips.retain(|_, (c, next)| !noise(c) || *next > now);
            st.accounts.retain(|_, c| !noise(c));
            tracing::warn!(
                left = keys(st),
                "failed-login table full: keys of a single failure forgotten (a spray from many addresses?)"
            );
        }
    }

    /// Forgets keys whose failures have all left the window.
    pub fn housekeeping(&self) {
        let mut st = self.lock();
        self.sweep(&mut st, Instant::now());
    }

    /// Forgets the failures of an address, an account, or (both `None`) everyone's; returns
    /// how many counters of this gateway were dropped. Proven pairs stay. The shared windows
    /// are forgotten too, in the background; other gateways' own counters are not.
    pub fn clear(&self, ip: Option<IpAddr>, account: Option<&str>) -> usize {
        let ip = ip.map(super::ip::budget_key);
        if let (Some(w), Ok(rt)) = (self.shared.get(), tokio::runtime::Handle::try_current()) {
            let (w, shared_ip) = (w.clone(), ip.map(|i| i.to_string()));
            let account: Option<String> = account.map(|a| a.chars().take(MAX_ACCOUNT).collect());
            rt.spawn(async move {
                within("forget", w.forget(shared_ip, account)).await;
            });
        }
        let mut st = self.lock();
        let before = st.pairs.len() + st.ips.len() + st.accounts.len();
        let ip_ok = |i: &IpAddr| ip.is_none_or(|x| x == *i);
        let acc_ok = |a: &str| account.is_none_or(|x| x == a);
        st.pairs
            .retain(|(i, a), c| c.pending > 0 || !(ip_ok(i) && acc_ok(a)));
        if account.is_none() {
            st.ips.retain(|i, (c, _)| c.pending > 0 || !ip_ok(i));
        }
        if ip.is_none() {
            st.accounts.retain(|a, c| c.pending > 0 || !acc_ok(a));
        }
        before - (st.pairs.len() + st.ips.len() + st.accounts.len())
    }

    /// Every key at or over its limit now.
    pub fn throttled(&self) -> Vec<ThrottleView> {
        let now = Instant::now();
        let w = self.window;
        let st = self.lock();
        let recent = |c: &Counter| {
            c.failures
                .iter()
                .filter(|t| now.duration_since(**t) < w)
                .count()
        };
        let mut out = Vec::new();
        for ((ip, a), c) in &st.pairs {
            let n = recent(c);
            if self.per_pair > 0 && n >= self.per_pair {
                out.push(view("pair", Some(ip), Some(a), n));
            }
        }
        for (ip, (c, _)) in &st.ips {
            let n = recent(c);
            if self.per_ip > 0 && n >= self.per_ip {
                out.push(view("address", Some(ip), None, n));
            }
        }
        for (a, c) in &st.accounts {
            let n = recent(c);
            if self.per_account > 0 && n >= self.per_account {
                out.push(view("account", None, Some(a), n));
            }
        }
        out
    }
}

fn view(
    kind: &str,
    ip: Option<&IpAddr>,
    account: Option<&String>,
    failures: usize,
) -> ThrottleView {
    ThrottleView {
        kind: kind.into(),
        address: ip.map(ToString::to_string),
        account: account.cloned(),
        failures,
    }
}

impl Ticket {
    /// Records how the attempt ended.
    pub fn finish(mut self, outcome: Outcome) {
        self.settle(outcome);
    }

    fn settle(&mut self, outcome: Outcome) {
        if self.done {
            return;
        }
        self.done = true;
        let now = Instant::now();
        let (per_pair, per_ip, per_account) = self.limits;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let failed = outcome == Outcome::Failed;
        if per_pair > 0 {
            if let Some(c) = st.pairs.get_mut(&self.key) {
                if self.reserved {
                    c.pending = c.pending.saturating_sub(1);
                }
                if failed {
                    c.push(now, per_pair);
                }
            }
        }
        if per_ip > 0 {
            if let Some((c, _)) = st.ips.get_mut(&self.key.0) {
                c.pending = c.pending.saturating_sub(1);
                if failed {
                    c.push(now, per_ip + 64);
                }
            }
        } else if failed {
            // a proven pair's failures still count towards its address
            if let Some((c, _)) = st.ips.get_mut(&self.key.0) {
                c.push(now, c.failures.len() + 1);
            }
        }
        if failed && per_account > 0 {
            st.accounts
                .entry(self.key.1.clone())
                .or_default()
                .push(now, per_account);
        }
        if outcome == Outcome::Succeeded {
            st.proven.insert(self.key.clone(), now);
            if let Some(c) = self.credential.take() {
                st.vouched.insert((self.key.0, c), now);
            }
        }
        drop(st);
        if let Some(s) = self.shared.take() {
            s.settle(shared_keys(&self.key), failed);
        }
    }
}

impl SharedCount {
    /// Records the attempt's end in the shared windows, in the background (the answer does
    /// not wait for it).
    fn settle(self, keys: SharedKeys, failed: bool) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let w = &self.windows;
            let (on_pair, on_ip, on_account) = self.layers;
            if !failed {
                if self.pair_counted {
                    within("pair", w.uncount(&keys.pair)).await;
                }
                return;
            }
            if on_pair {
                if !self.pair_counted {
                    within("pair", w.count(&keys.pair, self.window)).await;
                }
                within("pair", w.count(&keys.failed, self.window)).await;
            }
            if on_ip {
                within("address", w.count(&keys.address, self.window)).await;
            }
            if on_account {
                within("account", w.count(&keys.account, self.window)).await;
            }
        });
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.settle(Outcome::Unknown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn fail(f: &FailedAuth, ip: IpAddr, account: &str) {
        f.begin(ip, account, None)
            .expect("admitted")
            .finish(Outcome::Failed);
    }

    #[test]
    fn pairs_are_refused_after_n_failures_and_in_flight_attempts_count() {
        let f = FailedAuth::new(3, 0, 0, MIN, Duration::from_secs(1));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        // three attempts in flight at once fill the budget: a fourth waits for them
        let t: Vec<Ticket> = (0..3)
            .map(|_| f.begin(a, "ann", Some("g")).unwrap())
            .collect();
        assert_eq!(f.begin(a, "ann", Some("g")).err(), Some(Refusal::InFlight));
        t.into_iter().for_each(|t| t.finish(Outcome::Failed));
        let Some(Refusal::Throttled(wait)) = f.begin(a, "ann", None).err() else {
            panic!("throttled")
        };
        assert!(wait > Duration::from_secs(58) && wait <= MIN);
        assert!(f.begin(b, "ann", None).is_ok());
        assert!(f.begin(a, "bob", None).is_ok());
        assert_eq!(f.throttled().len(), 1);
        assert_eq!(f.clear(Some(a), None), 2);
        assert!(f.begin(a, "ann", None).is_ok());
        // a credential that succeeded from here is no guess: its parallel requests all pass
        f.begin(a, "bob", Some("right"))
            .unwrap()
            .finish(Outcome::Succeeded);
        let t: Vec<Ticket> = (0..10)
            .map(|_| f.begin(a, "bob", Some("right")).unwrap())
            .collect();
        assert!(f.begin(a, "bob", Some("wrong")).is_ok());
        drop(t);
    }

    #[test]
    fn an_address_over_budget_is_delayed_but_proven_pairs_pass() {
        let f = FailedAuth::new(5, 4, 0, MIN, Duration::from_millis(800));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        f.begin(a, "home", None).unwrap().finish(Outcome::Succeeded);
        for i in 0..4 {
            let t = f.begin(a, &format!("u{i}"), None).unwrap();
            assert_eq!(t.delay, Duration::ZERO);
            t.finish(Outcome::Failed);
        }
        let t = f.begin(a, "u9", None).unwrap();
        assert!(t.delay >= FIRST_DELAY, "{:?}", t.delay);
        t.finish(Outcome::Failed);
        // delays grow; beyond delay_max the attempt is refused
        let mut refused = false;
        for i in 10..20 {
            match f.begin(a, &format!("u{i}"), None) {
                Ok(t) => t.finish(Outcome::Failed),
                Err(_) => refused = true,
            }
        }
        assert!(refused);
        let t = f.begin(a, "home", None).unwrap();
        assert_eq!(t.delay, Duration::ZERO);
    }

    #[test]
    fn a_spray_from_new_addresses_on_new_accounts_keeps_the_table_bounded() {
        let f = FailedAuth::new(5, 20, 10, MIN, Duration::from_millis(800));
        // a real attack on one account from one address, among the spray
        let home: IpAddr = "198.51.100.9".parse().unwrap();
        for _ in 0..3 {
            f.begin(home, "ann", None).unwrap().finish(Outcome::Failed);
        }
        for i in 0..(KEYS_MAX as u32 / 2) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            f.begin(ip, &format!("k{i}"), None)
                .unwrap()
                .finish(Outcome::Failed);
        }
        let st = f.lock();
        assert!(keys(&st) < KEYS_MAX + SWEEP_AT, "{} keys", keys(&st));
        assert_eq!(st.pairs[&(home, "ann".to_string())].failures.len(), 3);
    }

    #[test]
    fn an_ipv6_client_hopping_addresses_in_its_64_is_one_address() {
        let f = FailedAuth::new(5, 4, 0, MIN, Duration::from_millis(800));
        for i in 0..4 {
            let a: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            let t = f.begin(a, &format!("u{i}"), None).unwrap();
            assert_eq!(t.delay, Duration::ZERO);
            t.finish(Outcome::Failed);
        }
        let hop: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let t = f.begin(hop, "u9", None).unwrap();
        assert!(t.delay >= FIRST_DELAY, "{:?}", t.delay);
        t.finish(Outcome::Failed);
        // the next /64 is someone else
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(f.begin(other, "u1", None).unwrap().delay, Duration::ZERO);
    }

    #[test]
    fn an_account_is_capped_over_all_addresses() {
        let f = FailedAuth::new(5, 0, 10, MIN, Duration::from_secs(1));
        let home: IpAddr = "198.51.100.1".parse().unwrap();
        f.begin(home, "user:ann", None)
            .unwrap()
            .finish(Outcome::Succeeded);
        for i in 0..10u8 {
            fail(&f, IpAddr::from([203, 0, 113, i]), "user:ann");
        }
        assert!(f
            .begin(IpAddr::from([203, 0, 113, 200]), "user:ann", None)
            .is_err());
        assert!(f.begin(home, "user:ann", None).is_ok());
        f.housekeeping();
    }
}
