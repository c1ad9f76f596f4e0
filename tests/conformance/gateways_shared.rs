//! State the gateways on one PostgreSQL share (issue #18, docs/scale-out.md): failed-login
//! throttling and the share-link budget counted once across three gateways, and replication
//! from the cluster to a single home node shipped by one gateway at a time, taken over by
//! another when that one is killed.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{code, group_bucket, require, run, Server};
use crate::gateways::{count, spawn_curl, statuses, Gateways};

/// Settings that keep the per-address delay out of the failed-login counts.
const AUTH: [(&str, &str); 2] = [
    ("KURA_LIMITS__AUTH_FAILURES", "5"),
    ("KURA_LIMITS__AUTH_FAILURES_PER_IP", "1000"),
];

/// A wrong-password PROPFIND on `server` from `from` (a loopback address); its status.
fn guess(server: &Server, account: &str, from: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args([
            "--interface",
            from,
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
            "-u",
        ])
        .arg(format!("{account}:wrong"))
        .arg(server.dav(""))
        .output()
        .expect("curl");
    code(&out)
}

#[test]
fn gateways_shared_failed_logins_are_counted_once_across_three_gateways() {
    require("curl");
    let gw = Gateways::start_with(3, "kura_gws_auth", &AUTH);
    // one gateway: 5 guesses checked, then 429
    let one: Vec<u16> = (0..9)
        .map(|_| guess(&gw.servers[0], "ann", "127.0.0.2"))
        .collect();
    // round robin over three: the same
    let spread: Vec<u16> = (0..9)
        .map(|i| guess(gw.of(i), "bob", "127.0.0.1"))
        .collect();
    println!("9 wrong passwords: one gateway {one:?}; round robin over three {spread:?}");
    assert_eq!(&one[..5], &[401; 5], "{one:?}");
    assert!(one[5..].iter().all(|c| *c == 429), "{one:?}");
    assert_eq!(spread, one, "three gateways allowed more guesses than one");
    // the administrator's clear on one gateway forgets the shared count
    let clear = gw.servers[0].status(&[
        "-X",
        "DELETE",
        &gw.servers[0].url("/api/v1/throttle?account=user:bob"),
    ]);
    assert_eq!(clear, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        guess(&gw.servers[1], "bob", "127.0.0.1"),
        401,
        "still throttled"
    );
    // 60 guesses at once, 20 on each gateway: at most 5 are checked in all
    let children = (0..60)
        .map(|i| {
            Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(["-X", "PROPFIND", "-H", "Depth: 0", "-u", "carl:wrong"])
                .arg(gw.of(i).dav(""))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("curl")
        })
        .collect();
    let codes = statuses(children);
    let checked = count(&codes, 401);
    println!(
        "60 concurrent guesses over three gateways: {checked} checked, {} refused",
        count(&codes, 429)
    );
    assert!(checked <= 5, "{codes:?}");
    assert_eq!(checked + count(&codes, 429), 60, "{codes:?}");
    // the right password of another account is not held up
    for i in 0..3 {
        assert_eq!(
            gw.of(i)
                .status(&["-X", "PROPFIND", "-H", "Depth: 0", &gw.of(i).dav("")]),
            207
        );
    }
    let rows = gw.pg.psql(&gw.db, "SELECT count(*) FROM throttle_windows");
    assert!(rows.trim() != "0", "no shared window was counted");
}

/// GETs of a share link from `from`, one after the other: (admitted, refused, seconds).
fn share_gets(servers: &[&Server], token: &str, n: usize, from: &str) -> (usize, usize, f64) {
    let t = Instant::now();
    let codes: Vec<u16> = (0..n)
        .map(|i| {
            let s = servers[i % servers.len()];
            let out = Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(["--interface", from])
                .arg(s.url(&format!("/s/{token}/f.txt")))
                .output()
                .expect("curl");
            code(&out)
        })
        .collect();
    let (ok, refused) = (count(&codes, 200), count(&codes, 429));
    assert_eq!(ok + refused, n, "{codes:?}");
    (ok, refused, t.elapsed().as_secs_f64())
}

#[test]
fn gateways_shared_share_link_budget_is_counted_once_across_three_gateways() {
    require("curl");
    let gw = Gateways::start_with(
        3,
        "kura_gws_share",
        &[
            ("KURA_LIMITS__SHARE_REQUESTS_PER_SECOND", "1"),
            ("KURA_LIMITS__SHARE_BURST", "10"),
        ],
    );
    let first = &gw.servers[0];
    group_bucket(first, "g", "b", None);
    assert_eq!(first.status(&["-X", "MKCOL", &first.dav("b/d")]), 201);
    assert_eq!(first.put("b/d/f.txt", b"hello"), 201);
    let out = run(first.kura().args(["share", "create", "/b/d", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("share json");
    let token = v["token"].as_str().expect("token").to_string();
    let (one_ok, one_no, one_s) = share_gets(&[first], &token, 30, "127.0.0.2");
    let all: Vec<&Server> = gw.servers.iter().collect();
    let (ok, no, s) = share_gets(&all, &token, 30, "127.0.0.1");
    println!(
        "share link, budget 10 + 1/s: one gateway {one_ok} admitted, {one_no} refused in {one_s:.2} s; round robin over three {ok} admitted, {no} refused in {s:.2} s"
    );
    assert!(
        one_ok <= 10 + one_s.ceil() as usize,
        "one gateway: {one_ok}"
    );
    assert!(ok <= 10 + s.ceil() as usize, "three gateways admitted {ok}");
    assert!(ok >= 10, "the budget was not given: {ok}");
}

/// The replicated bucket on both sides.
const BUCKET: &str = "mirror";
/// Replication settings of every node: short backoff, no periodic reconcile.
const REPL: [(&str, &str); 2] = [
    ("KURA_REPLICATION__RETRY_MAX_SECONDS", "2"),
    ("KURA_REPLICATION__RECONCILE_SECONDS", "0"),
];

/// One number from psql.
fn number(gw: &Gateways, sql: &str) -> i64 {
    let out = gw.pg.psql(&gw.db, sql);
    out.trim().parse().unwrap_or(0)
}

/// Writes `n` bodies of `size` bytes at once, round robin over the gateways `through`;
/// the curls and the bodies.
fn write_all(
    gw: &Gateways,
    through: &[usize],
    prefix: &str,
    n: usize,
    size: usize,
) -> (Vec<std::process::Child>, BTreeMap<String, Vec<u8>>) {
    let mut want = BTreeMap::new();
    let mut children = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}-{i:03}");
        let body: Vec<u8> = (0..size).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
        let f = gw.shared.path().join(format!("body-{key}"));
        std::fs::write(&f, &body).expect("body");
        children.push(spawn_curl(
            &["-T", f.to_str().expect("utf-8")],
            &gw.servers[through[i % through.len()]].dav(&format!("{BUCKET}/{key}")),
        ));
        want.insert(key, body);
    }
    (children, want)
}

/// Waits for the writers; every one stored its object.
fn stored(children: Vec<std::process::Child>) {
    let codes = statuses(children);
    assert_eq!(count(&codes, 201), codes.len(), "{codes:?}");
}

/// Waits until the home node holds every object of `want` with its bytes.
fn wait_arrived(home: &Server, want: &BTreeMap<String, Vec<u8>>, within: Duration) {
    let dir = home.files_dir().join(BUCKET);
    let deadline = Instant::now() + within;
    loop {
        let missing: Vec<&String> = want
            .iter()
            .filter(|(k, body)| std::fs::read(dir.join(k)).ok().as_ref() != Some(*body))
            .map(|(k, _)| k)
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} objects missing or different on the home node, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The index of the gateway holding the rule's lease.
fn holder(gw: &Gateways) -> Option<usize> {
    let h = gw
        .pg
        .psql(&gw.db, "SELECT holder FROM replication_leases")
        .trim()
        .to_string();
    gw.servers.iter().position(|s| {
        let id = std::fs::read_to_string(s.data_dir().join("node-id")).unwrap_or_default();
        !id.trim().is_empty() && h.starts_with(&format!("{}/", id.trim()))
    })
}

#[test]
fn gateways_shared_replication_to_a_home_node_ships_each_entry_once_and_survives_kill9() {
    require("curl");
    let home = Server::start_with(true, &REPL);
    run(home.kura().args(["group", "add", "replicas"]));
    run(home
        .kura()
        .args(["bucket", "create", BUCKET, "--group", "replicas"]));
    run(home
        .kura()
        .args(["user", "add", "repl", "--group", "replicas"]));
    let out = run(home
        .kura()
        .args(["peer", "key", "cluster", "--user", "repl", "--json"]));
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).expect("peer key");
    let fingerprint = String::from_utf8_lossy(&run(home.kura().arg("fingerprint")).stdout)
        .trim()
        .to_string();

    let mut gw = Gateways::start_with(3, "kura_gws_repl", &REPL);
    let first = &gw.servers[0];
    group_bucket(first, "replicas", BUCKET, None);
    run(first.kura().args([
        "peer",
        "add",
        "home",
        "--endpoint",
        &home.url(""),
        "--access-key",
        key["access_key_id"].as_str().expect("key id"),
        "--secret-key",
        key["secret_access_key"].as_str().expect("secret"),
        "--ca-fingerprint",
        &fingerprint,
    ]));
    run(first.kura().args(["replicate", BUCKET, "--to", "home"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while holder(&gw).is_none() {
        assert!(
            Instant::now() < deadline,
            "no gateway took the rule's lease"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 3 x 30 writers at once; each entry shipped once
    let (writers, mut want) = write_all(&gw, &[0, 1, 2], "a", 90, 4096);
    stored(writers);
    wait_arrived(&home, &want, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(4)); // any second shipment would land meanwhile
    let shipped = number(&gw, "SELECT shipped FROM replications");
    let shippers = gw
        .servers
        .iter()
        .filter(|s| s.log().contains("this gateway ships the rule"))
        .count();
    println!("90 concurrent PUTs (90 journal entries) over three gateways: {shipped} shipments, {shippers} gateway(s) shipping");
    assert_eq!(shipped, 90, "journal entries were shipped more than once");
    assert_eq!(shippers, 1, "more than one gateway shipped the rule");

    // kill -9 of the gateway shipping, mid-way (writes go through the two others meanwhile):
    // another one finishes
    let before = holder(&gw).expect("a holder");
    let others: Vec<usize> = (0..3).filter(|i| *i != before).collect();
    let (writers, more) = write_all(&gw, &others, "b", 90, 256 << 10);
    let deadline = Instant::now() + Duration::from_secs(60);
    while number(&gw, "SELECT shipped FROM replications") < 100 {
        assert!(Instant::now() < deadline, "the second batch does not ship");
        std::thread::sleep(Duration::from_millis(20));
    }
    let at_kill = number(&gw, "SELECT shipped FROM replications");
    gw.servers[before].kill9();
    let killed = Instant::now();
    println!("killed gateway {before} with {at_kill} of 180 shipped");
    assert!(
        at_kill < 180,
        "everything shipped before the kill: nothing tested"
    );
    let deadline = killed + Duration::from_secs(60);
    let after = loop {
        match holder(&gw) {
            Some(h) if h != before => break h,
            _ => {}
        }
        assert!(Instant::now() < deadline, "no gateway took the lease over");
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = killed.elapsed().as_secs_f64();
    stored(writers);
    want.extend(more);
    wait_arrived(&home, &want, Duration::from_secs(120));
    let done = killed.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(4));
    let there = crate::common::tree(&home.files_dir().join(BUCKET));
    assert_eq!(
        there.len(),
        want.len(),
        "extra objects on the home node: {there:?}"
    );
    let shipped = number(&gw, "SELECT shipped FROM replications");
    println!("gateway {after} took the lease over {took:.1} s after the kill; all 180 objects on the home node {done:.1} s after it; {shipped} shipments");
    assert!(
        (180..=181).contains(&shipped),
        "{shipped} shipments of 180 entries (one may repeat: the one in flight at the kill)"
    );
}

/// The server's CPU time so far (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// What the share budget costs per anonymous request on PostgreSQL: 2,000 GETs of a share
/// link on one keep-alive connection to one gateway, the server's CPU time and the median
/// latency. `cargo test --test conformance -- --ignored --nocapture gateways_shared_share_request_cost`
#[test]
#[ignore]
fn gateways_shared_share_request_cost() {
    require("python3");
    let gw = Gateways::start_with(
        1,
        "kura_gws_cost",
        &[
            ("KURA_LIMITS__SHARE_REQUESTS_PER_SECOND", "100000"),
            ("KURA_LIMITS__SHARE_BURST", "100000"),
        ],
    );
    let s = &gw.servers[0];
    group_bucket(s, "g", "b", None);
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("b/d")]), 201);
    assert_eq!(s.put("b/d/f.txt", b"hello"), 201);
    let out = run(s.kura().args(["share", "create", "/b/d", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("share json");
    let path = format!("/s/{}/f.txt", v["token"].as_str().expect("token"));
    let script = r#"
import http.client, sys, time
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
lat = []
for i in range(n):
    t = time.perf_counter()
    c.request("GET", path)
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    lat.append(time.perf_counter() - t)
lat.sort()
print(int(lat[len(lat)//2] * 1e6), int(lat[len(lat)*9//10] * 1e6))
"#;
    let port = s.port.to_string();
    let warm = ["python3", "-c", script, &port, &path, "200"];
    run(Command::new(warm[0]).args(&warm[1..]));
    let cpu = cpu_seconds(s.pid());
    let out = run(Command::new("python3").args(["-c", script, &port, &path, "2000"]));
    let cpu = (cpu_seconds(s.pid()) - cpu) / 2000.0 * 1e6;
    let windows = number(&gw, "SELECT count(*) FROM throttle_windows");
    println!(
        "share GET on PostgreSQL: median, p90 latency (µs): {}; server CPU {cpu:.0} µs per request; {windows} shared window(s)",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}
