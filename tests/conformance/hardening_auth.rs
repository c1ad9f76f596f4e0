//! Issue 13, the attacks on login throttling: concurrent guesses racing the check, a stale
//! device next to a household's correct logins, credential stuffing over 100 accounts, forged
//! forwarding headers and address hopping, and clearing a lock-out through the admin API.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{code, require, Server};

fn st(server: &Server, args: &[&str]) -> u16 {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    code(&server.curl(&all))
}

/// Runs curl commands at once; their status codes.
fn concurrently(args: Vec<Vec<String>>) -> Vec<u16> {
    let handles: Vec<_> = args
        .into_iter()
        .map(|a| {
            let mut c = Command::new("curl");
            c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(a);
            std::thread::spawn(move || code(&c.output().expect("curl")))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("join"))
        .collect()
}

/// A WebDAV login (PROPFIND of /dav/, depth 0) as `user:password`, with extra curl arguments.
fn login(server: &Server, user_pw: &str, extra: &[&str]) -> u16 {
    let dav = server.dav("");
    let mut a = vec!["-u", user_pw, "-X", "PROPFIND", "-H", "Depth: 0"];
    a.extend_from_slice(extra);
    a.push(&dav);
    st(server, &a)
}

#[test]
fn concurrent_guesses_cannot_race_the_check() {
    require("curl");
    let server = Server::plain();
    let dav = server.dav("");
    let args = (0..60)
        .map(|_| vec!["-u".to_string(), "admin:wrong".to_string(), dav.clone()])
        .collect();
    let codes = concurrently(args);
    let checked = codes.iter().filter(|c| **c == 401).count();
    println!(
        "60 concurrent wrong passwords: {checked} checked, the rest {:?}",
        codes
            .iter()
            .filter(|c| **c != 401)
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(checked <= 5, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 401 || *c == 429), "{codes:?}");
}

#[test]
fn stuffing_is_held_to_the_rate_and_households_keep_working() {
    require("curl");
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__AUTH_FAILURES", "5"),
            ("KURA_LIMITS__AUTH_FAILURES_PER_IP", "10"),
            ("KURA_LIMITS__AUTH_DELAY_MAX_MS", "300"),
            ("KURA_LIMITS__AUTH_FAILURE_WINDOW_SECONDS", "300"),
        ],
    );
    server.add_user("home", "home-pw", &[]);
    server.add_user("fresh", "fresh-pw", &[]);
    let dav = server.dav("");
    // the household's usual account has logged in from here before
    assert_eq!(login(&server, "home:home-pw", &[]), 207);
    // an old tablet retries three stale accounts
    for account in ["stale1", "stale2", "stale3"] {
        let codes: Vec<u16> = (0..8)
            .map(|_| st(&server, &["-u", &format!("{account}:old"), &dav]))
            .collect();
        assert_eq!(&codes[..5], &[401; 5], "{account}: {codes:?}");
        assert_eq!(&codes[5..], &[429; 3], "{account}: {codes:?}");
    }
    let t = Instant::now();
    assert_eq!(login(&server, "home:home-pw", &[]), 207);
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "a proven account is not slowed"
    );
    // an account new at this address is slowed (the address is over its budget), not refused
    let t = Instant::now();
    assert_eq!(login(&server, "fresh:fresh-pw", &[]), 207);
    println!(
        "new account after the stale device: admitted in {:?}",
        t.elapsed()
    );

    // credential stuffing: 100 accounts, 10 at a time
    let t = Instant::now();
    let args = (0..100)
        .map(|i| vec!["-u".to_string(), format!("victim{i}:guess"), dav.clone()])
        .collect::<Vec<_>>();
    let mut codes = Vec::new();
    for batch in args.chunks(10) {
        codes.extend(concurrently(batch.to_vec()));
    }
    let took = t.elapsed();
    let checked = codes.iter().filter(|c| **c == 401).count();
    let refused = codes.iter().filter(|c| **c == 429).count();
    println!(
        "stuffing over 100 accounts: {checked} guesses checked, {refused} refused, in {took:?}"
    );
    assert_eq!(checked + refused, 100, "{codes:?}");
    // at most one guess per 250 ms (the first delay) once over the budget, plus one per batch
    let allowed = (took.as_secs_f64() / 0.25) as usize + 10;
    assert!(checked <= allowed, "{checked} guesses in {took:?}");
    assert!(
        checked >= 1,
        "delays, not a ban: some guesses are still checked"
    );
    // and the household is still served, at once
    let t = Instant::now();
    assert_eq!(login(&server, "home:home-pw", &[]), 207);
    assert!(t.elapsed() < Duration::from_millis(250));
}

#[test]
fn forged_forwarding_headers_and_address_hopping_buy_no_guesses() {
    require("curl");
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
            ("KURA_LIMITS__AUTH_FAILURES_PER_ACCOUNT", "10"),
            ("KURA_LIMITS__AUTH_FAILURES_PER_IP", "1000"),
        ],
    );
    server.add_user("bob", "bob-pw", &[]);
    // the proxy overwrites X-Forwarded-For; a client's own Forwarded header is not believed
    for i in 0..5 {
        let fwd = format!("Forwarded: for=192.0.2.{i}");
        assert_eq!(login(&server, "bob:wrong", &["-H", &fwd]), 401);
    }
    assert_eq!(
        login(&server, "bob:bob-pw", &["-H", "Forwarded: for=192.0.2.99"]),
        429,
        "the proxy's own address is throttled for bob"
    );

    // ann logs in from home, then someone guesses her password from ever new addresses
    server.add_user("ann", "ann-pw", &[]);
    let home = ["-H", "X-Forwarded-For: 198.51.100.1"];
    let elsewhere = ["-H", "X-Forwarded-For: 203.0.113.200"];
    assert_eq!(login(&server, "ann:ann-pw", &home), 207);
    let codes: Vec<u16> = (0..30)
        .map(|i| {
            let xff = format!("X-Forwarded-For: 203.0.113.{i}");
            login(&server, "ann:guess", &["-H", &xff])
        })
        .collect();
    println!("30 guesses on ann from 30 addresses: {codes:?}");
    assert_eq!(&codes[..10], &[401; 10]);
    assert!(codes[10..].iter().all(|c| *c == 429), "{codes:?}");
    // the right password from a new address is refused too; from home it still works
    assert_eq!(login(&server, "ann:ann-pw", &elsewhere), 429);
    assert_eq!(login(&server, "ann:ann-pw", &home), 207);

    // the administrator lists and clears the lock-out
    let bearer = format!("Authorization: Bearer {}", server.api_token());
    let out = server.curl(&["-H", &bearer, &server.url("/api/v1/throttle")]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listed.contains("\"account\":\"user:ann\""), "{listed}");
    let clear = server.url("/api/v1/throttle?account=user:ann");
    let out = server.curl(&[
        "-H",
        &bearer,
        "-X",
        "DELETE",
        "-w",
        "\n%{http_code}",
        &clear,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.ends_with("\n200") && text.contains("\"cleared\""),
        "{text}"
    );
    assert_eq!(login(&server, "ann:ann-pw", &elsewhere), 207);
}

/// Guesses from many addresses at once (a botnet, or one IPv6 client hopping addresses) pass
/// every per-address budget, each on another account; each costs an argon2 hash of about
/// 19 MiB. They are hashed a few at a time, so the server's memory does not grow by one
/// hash per guess in flight, and a user who knows her password still gets in.
#[test]
fn guesses_from_many_addresses_at_once_are_hashed_a_few_at_a_time() {
    require("curl");
    let server = Server::start_with(
        false,
        &[("KURA_LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]")],
    );
    server.add_user("ann", "ann-pw", &[]);
    let before = server.vm_hwm_kib();
    let dav = server.dav("");
    let n = 160;
    let started = Instant::now();
    let guesses: Vec<_> = (0..n)
        .map(|i| {
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-X",
                    "PROPFIND",
                ])
                .args(["-H", "Depth: 0", "-u", &format!("nobody{i}:guess{i}")])
                .args([
                    "-H",
                    &format!("X-Forwarded-For: 10.9.{}.{}", i / 200, i % 200 + 1),
                ])
                .arg(&dav)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("curl")
        })
        .collect();
    // meanwhile ann logs in from her own address
    let ann = login(
        &server,
        "ann:ann-pw",
        &["-H", "X-Forwarded-For: 198.51.100.7"],
    );
    let codes: Vec<u16> = guesses
        .into_iter()
        .map(|c| code(&c.wait_with_output().expect("curl")))
        .collect();
    let after = server.vm_hwm_kib();
    println!(
        "{n} guesses from {n} addresses in {:?}: peak RSS {before} -> {after} KiB; ann: {ann}",
        started.elapsed()
    );
    assert!(codes.iter().all(|c| *c == 401), "{codes:?}");
    assert_eq!(ann, 207);
    assert!(
        after - before < 300 * 1024,
        "peak RSS grew from {before} to {after} KiB for {n} guesses in flight"
    );
}
