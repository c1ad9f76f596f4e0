//! Several gateways on one PostgreSQL (issue #18, docs/scale-out.md): three `kura serve`
//! processes, each with its own data dir and port, one database and one shared `storage.root`,
//! attacked by clients spread over the three. Every check-then-write must hold across them as
//! it holds inside one process.

use std::process::{Command, Output, Stdio};

use crate::common::{code, group_bucket, require, run, tree, usage, S3Key, Server, ADMIN_PW};
use crate::postgres::Postgres;

/// Three gateways on one database and one folder of bytes.
pub(crate) struct Gateways {
    /// Dropped last (fields drop in order): the servers stop before their database does.
    pub(crate) servers: Vec<Server>,
    pub(crate) shared: tempfile::TempDir,
    pub(crate) pg: Postgres,
    pub(crate) db: String,
}

impl Gateways {
    /// Starts `n` gateways on a fresh database `db`. The first one starts alone (it migrates
    /// the database and makes `secret.key`); the others get a copy of its `secret.key`, as an
    /// operator distributes it, so every gateway unseals the same access keys.
    pub(crate) fn start(n: usize, db: &str) -> Gateways {
        Gateways::start_with(n, db, &[])
    }

    /// `start` with extra `KURA_*` settings on every gateway.
    pub(crate) fn start_with(n: usize, db: &str, extra: &[(&str, &str)]) -> Gateways {
        let pg = Postgres::start();
        let url = pg.create_database(db);
        let shared = tempfile::tempdir().expect("shared root");
        let root = shared.path().join("files");
        let root = root.to_str().expect("utf-8 path").to_string();
        let mut env = vec![
            ("KURA_DATABASE_URL", url.as_str()),
            ("KURA_STORAGE__ROOT", root.as_str()),
        ];
        env.extend_from_slice(extra);
        let first = Server::start_seeded(&env, &[]);
        let key = std::fs::read(first.data_dir().join("secret.key")).expect("secret.key");
        let mut servers = vec![first];
        for _ in 1..n {
            servers.push(Server::start_seeded(&env, &[("secret.key", &key)]));
        }
        Gateways {
            servers,
            shared,
            pg,
            db: db.to_string(),
        }
    }

    /// The gateway that serves client `i` (round robin).
    pub(crate) fn of(&self, i: usize) -> &Server {
        &self.servers[i % self.servers.len()]
    }

    /// The shared folder of bytes.
    fn files(&self) -> std::path::PathBuf {
        self.shared.path().join("files")
    }
}

/// `curl` as admin against `url` with `args`, spawned (the status on stdout).
pub(crate) fn spawn_curl(args: &[&str], url: &str) -> std::process::Child {
    Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
        .arg(format!("admin:{ADMIN_PW}"))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl")
}

pub(crate) fn statuses(children: Vec<std::process::Child>) -> Vec<u16> {
    children
        .into_iter()
        .map(|c| code(&c.wait_with_output().expect("curl")))
        .collect()
}

pub(crate) fn count(codes: &[u16], want: u16) -> usize {
    codes.iter().filter(|c| **c == want).count()
}

#[test]
fn gateways_thirty_two_writers_on_three_gateways_never_exceed_one_quota() {
    require("curl");
    let gw = Gateways::start(3, "kura_gw_quota");
    let one = &gw.servers[0];
    group_bucket(one, "race", "rbucket", Some("10MiB"));
    let body = gw.shared.path().join("one-mib");
    std::fs::write(&body, vec![7u8; 1 << 20]).expect("body");
    let body = body.to_str().expect("utf-8").to_string();
    let children = (0..32)
        .map(|i| spawn_curl(&["-T", &body], &gw.of(i).dav(&format!("rbucket/w{i:02}"))))
        .collect();
    let codes = statuses(children);
    let ok = count(&codes, 201);
    let refused = count(&codes, 507);
    assert_eq!(ok + refused, 32, "unexpected statuses: {codes:?}");
    let (bytes, files) = usage(one, "race");
    let stored = tree(&gw.files().join("rbucket"));
    let on_disk: u64 = stored
        .iter()
        .map(|p| {
            std::fs::metadata(gw.files().join("rbucket").join(p))
                .expect("stat")
                .len()
        })
        .sum();
    println!(
        "3 gateways, 32 writers x 1 MiB against 10 MiB: {ok} stored, {refused} refused; usage {bytes} bytes / {files} files; {} files, {on_disk} bytes on disk",
        stored.len()
    );
    assert!(bytes <= 10 << 20, "usage {bytes} is over the quota");
    assert!(ok >= 1, "no writer got in");
    assert_eq!(bytes, (ok as i64) << 20, "usage is not what was stored");
    assert_eq!(files, ok as i64);
    assert_eq!(stored.len(), ok, "files on disk do not match the successes");
    assert_eq!(on_disk as i64, bytes, "bytes on disk differ from the usage");
    for s in &gw.servers {
        assert!(
            tree(&s.data_dir().join("tmp")).is_empty(),
            "a refused upload left a trace"
        );
    }
}

const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>finder</D:owner></D:lockinfo>"#;

#[test]
fn gateways_twenty_lock_racers_on_three_gateways_one_wins() {
    require("curl");
    let gw = Gateways::start(3, "kura_gw_lock");
    assert_eq!(gw.servers[0].put("race.txt", b"x"), 201);
    let children = (0..20)
        .map(|i| {
            spawn_curl(
                &["-X", "LOCK", "-H", "Depth: 0", "--data-binary", LOCKINFO],
                &gw.of(i).dav("race.txt"),
            )
        })
        .collect();
    let codes = statuses(children);
    let (won, lost) = (count(&codes, 200), count(&codes, 423));
    println!("3 gateways, 20 LOCK racers: {won} won, {lost} got 423");
    assert_eq!((won, lost), (1, 19), "{codes:?}");
    let locks = gw.pg.psql(&gw.db, "SELECT count(*) FROM locks");
    assert_eq!(locks.trim(), "1", "locks recorded");
}

/// An S3 request signed with `key`, through curl's `--aws-sigv4`.
fn s3_curl(key: &S3Key, args: &[&str], url: &str) -> std::process::Child {
    Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--user"])
        .arg(format!("{}:{}", key.id, key.secret))
        .args([
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ])
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl")
}

#[test]
fn gateways_create_if_absent_races_on_three_gateways_have_one_winner() {
    require("curl");
    let gw = Gateways::start(3, "kura_gw_create");
    let key = gw.servers[0].s3_key();
    let made = s3_curl(&key, &["-X", "PUT"], &gw.servers[1].url("/cbucket"))
        .wait_with_output()
        .expect("curl");
    assert_eq!(code(&made), 200, "CreateBucket");
    for round in 0..3 {
        let name = format!("/cbucket/once-{round}");
        let children = (0..12)
            .map(|i| {
                let body = format!("writer {i}");
                s3_curl(
                    &key,
                    &[
                        "-X",
                        "PUT",
                        "-H",
                        "If-None-Match: *",
                        "--data-binary",
                        &body,
                    ],
                    &gw.of(i).url(&name),
                )
            })
            .collect();
        let codes = statuses(children);
        println!("3 gateways, 12 PUTs with If-None-Match: * of {name}: {codes:?}");
        // a loser whose check passed before the winner committed is 409
        // ConditionalRequestConflict, as on one gateway (docs/s3.md)
        assert_eq!(
            (count(&codes, 200), count(&codes, 412) + count(&codes, 409)),
            (1, 11),
            "{codes:?}"
        );
        let stored = std::fs::read_to_string(gw.files().join(&name[1..])).expect("object");
        assert!(stored.starts_with("writer "), "{stored:?}");
        let children = (0..12)
            .map(|i| {
                spawn_curl(
                    &["-X", "MKCOL"],
                    &gw.of(i).dav(&format!("cbucket/dir-{round}/")),
                )
            })
            .collect();
        let codes = statuses(children);
        println!("3 gateways, 12 MKCOL of dir-{round}: {codes:?}");
        assert_eq!(
            (count(&codes, 201), count(&codes, 405)),
            (1, 11),
            "{codes:?}"
        );
    }
    let rows = gw.pg.psql(
        &gw.db,
        "SELECT count(*) FROM entries WHERE path LIKE '%cbucket/once-_' OR path LIKE '%cbucket/dir-_'",
    );
    assert_eq!(rows.trim(), "6", "entries made");
}

fn dav_status(server: &Server, user_pw: &str, path: &str) -> u16 {
    let out: Output = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            user_pw,
        ])
        .arg(server.dav(path))
        .output()
        .expect("curl");
    code(&out)
}

#[test]
fn gateways_a_password_changed_on_one_gateway_is_refused_by_the_others_at_once() {
    use std::io::Write;
    require("curl");
    let gw = Gateways::start(3, "kura_gw_passwd");
    let one = &gw.servers[0];
    one.add_user("ann", "old-password-1", &[]);
    // every gateway has seen (and may remember) the old password
    let before: Vec<u16> = gw
        .servers
        .iter()
        .map(|s| dav_status(s, "ann:old-password-1", ""))
        .collect();
    assert!(
        before.iter().all(|c| *c != 401),
        "old password before: {before:?}"
    );
    let mut child = one
        .kura()
        .args(["user", "passwd", "ann", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kura user passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"new-password-2\n")
        .expect("password");
    assert!(child.wait().expect("wait").success(), "user passwd");
    let after: Vec<(u16, u16)> = gw
        .servers
        .iter()
        .map(|s| {
            (
                dav_status(s, "ann:old-password-1", ""),
                dav_status(s, "ann:new-password-2", ""),
            )
        })
        .collect();
    println!("after passwd, (old, new) per gateway: {after:?}");
    for (i, (old, new)) in after.iter().enumerate() {
        assert_eq!(*old, 401, "gateway {i} still takes the old password");
        assert_ne!(*new, 401, "gateway {i} refuses the new password");
    }
}

/// `curl` of `url` with `args`: (status, seconds taken, headers).
fn timed(args: &[&str], url: &str) -> (u16, f64, String) {
    let started = std::time::Instant::now();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "30",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let took = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (code(&out), took, text)
}

/// The `kura-node` header of a `/healthz` answer.
fn node_of(headers: &str) -> String {
    headers
        .lines()
        .find_map(|l| l.strip_prefix("kura-node:"))
        .expect("kura-node header")
        .trim()
        .to_string()
}

#[test]
fn gateways_outage_healthz_is_503_at_once_and_the_gateways_recover() {
    require("curl");
    let mut gw = Gateways::start(2, "kura_gw_outage");
    let auth = format!("admin:{ADMIN_PW}");
    assert_eq!(gw.servers[0].put("f.txt", b"hello"), 201);
    let nodes: Vec<String> = gw
        .servers
        .iter()
        .map(|s| {
            let (status, _, headers) = timed(&[], &s.url("/healthz"));
            assert_eq!(status, 200, "{headers}");
            node_of(&headers)
        })
        .collect();
    assert_ne!(nodes[0], nodes[1], "two gateways with one node id");
    // the id is kept in the data dir: the same after a restart
    gw.servers[1].restart();
    let (_, _, headers) = timed(&[], &gw.servers[1].url("/healthz"));
    assert_eq!(
        node_of(&headers),
        nodes[1],
        "the node id changed on restart"
    );

    gw.pg.stop();
    // a probe's answer is reused for a second (a flood of /healthz costs one query a second)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for s in &gw.servers {
        let (status, took, _) = timed(&[], &s.url("/healthz"));
        println!("database down: /healthz {status} in {took:.2} s");
        assert_eq!(status, 503, "/healthz with the database down");
        assert!(took < 2.0, "/healthz took {took:.2} s");
        let (status, took, _) = timed(&["-u", &auth], &s.dav("f.txt"));
        println!("database down: WebDAV GET {status} in {took:.2} s");
        assert_eq!(status, 503, "a GET with the database down");
        assert!(took < 5.0, "a GET took {took:.2} s");
    }

    gw.pg.start_again();
    for s in &gw.servers {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let (status, _, _) = timed(&[], &s.url("/healthz"));
            if status == 200 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no recovery: {status}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let (status, _, _) = timed(&["-u", &auth], &s.dav("f.txt"));
        assert_eq!(status, 200, "a GET after the database came back");
    }
}

/// Notification delivery runs on one gateway at a time (`pg_try_advisory_xact_lock` per job):
/// with three gateways ticking every second, every event of a burst written through all three
/// reaches the webhook exactly once.
#[test]
fn gateways_each_notification_is_delivered_once_by_three_gateways() {
    use crate::notifications::{received, receiver, wait_for, SECRET};
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("got.jsonl");
    let (_rx, port) = receiver(&out);
    let gw = Gateways::start(3, "kura_gw_notify");
    let one = &gw.servers[0];
    group_bucket(one, "g", "inbox", None);
    let url = format!("http://127.0.0.1:{port}/hook");
    run(one.kura().args([
        "notify",
        "add",
        "--bucket",
        "inbox",
        "--events",
        "created",
        "--webhook",
        &url,
        "--secret",
        SECRET,
    ]));
    let children = (0..45)
        .map(|i| {
            spawn_curl(
                &["-T", "/dev/null"],
                &gw.of(i).dav(&format!("inbox/f{i:02}.txt")),
            )
        })
        .collect();
    let codes = statuses(children);
    assert_eq!(count(&codes, 201), 45, "{codes:?}");
    wait_for("every event", 60, || {
        let n = received(&out)
            .iter()
            .filter(|e| e["event"] == "created")
            .count();
        (n >= 45).then_some(())
    });
    // the gateways go on ticking: a duplicate would come within a few seconds
    std::thread::sleep(std::time::Duration::from_secs(4));
    let got = received(&out);
    let paths: std::collections::BTreeSet<&str> =
        got.iter().filter_map(|e| e["path"].as_str()).collect();
    println!(
        "3 gateways, 45 PUTs: {} deliveries, {} paths",
        got.len(),
        paths.len()
    );
    assert_eq!(paths.len(), 45, "an event is missing");
    assert_eq!(got.len(), 45, "an event was delivered more than once");
}

/// A gateway killed with SIGKILL while a client streams a file into it: nothing of the upload
/// becomes visible, the group's usage is not charged, the other gateways serve on, and the
/// killed gateway's next start sweeps what it left in its own `tmp/`.
#[test]
fn gateways_a_gateway_killed_mid_upload_leaves_nothing_and_the_others_go_on() {
    require("curl");
    let mut gw = Gateways::start(3, "kura_gw_kill");
    let one = &gw.servers[0];
    group_bucket(one, "k", "kbucket", Some("1GiB"));
    let body = gw.shared.path().join("big");
    std::fs::write(&body, vec![3u8; 32 << 20]).expect("body");
    let body = body.to_str().expect("utf-8").to_string();
    // 32 MiB at 2 MiB/s: about 16 s, so the kill lands in the middle of the body
    let slow = spawn_curl(
        &["--limit-rate", "2M", "-T", &body],
        &gw.servers[1].dav("kbucket/big.bin"),
    );
    let tmp = gw.servers[1].data_dir().join("tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while tree(&tmp).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never reached the gateway's tmp/"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    gw.servers[1].kill9();
    let killed_status = statuses(vec![slow]);
    println!("upload into the killed gateway: curl status {killed_status:?}");
    assert_ne!(
        killed_status,
        vec![201],
        "the killed upload was acknowledged"
    );

    // the others serve on, and see nothing of the upload
    let small = gw.shared.path().join("small");
    std::fs::write(&small, b"twelve bytes").expect("small");
    let small = small.to_str().expect("utf-8").to_string();
    for (i, s) in [&gw.servers[0], &gw.servers[2]].iter().enumerate() {
        let put = statuses(vec![spawn_curl(
            &["-T", &small],
            &s.dav(&format!("kbucket/after{i}.txt")),
        )]);
        assert_eq!(put, vec![201], "a gateway stopped serving after the kill");
        let got = statuses(vec![spawn_curl(&[], &s.dav("kbucket/big.bin"))]);
        assert_eq!(got, vec![404], "the killed upload is visible");
    }
    let (bytes, files) = usage(&gw.servers[0], "k");
    assert_eq!((bytes, files), (24, 2), "usage after the kill");
    assert_eq!(
        tree(&gw.files().join("kbucket")),
        vec!["after0.txt".to_string(), "after1.txt".to_string()],
        "the shared root holds a trace of the killed upload"
    );
    assert!(
        !tree(&tmp).is_empty(),
        "the kill left no partial upload to sweep"
    );

    gw.servers[1].start_again();
    assert!(tree(&tmp).is_empty(), "the restart did not sweep tmp/");
    let got = statuses(vec![spawn_curl(&[], &gw.servers[1].dav("kbucket/big.bin"))]);
    assert_eq!(
        got,
        vec![404],
        "the killed upload is visible after the restart"
    );
    assert_eq!(
        usage(&gw.servers[1], "k"),
        (24, 2),
        "usage after the restart"
    );
}

/// PostgreSQL stopped for 12 s while writers on two gateways PUT without pause: every request
/// ends (none hangs; those that meet the outage answer 503, which clients retry), every acknowledged file reads back whole, nothing is visible half-written,
/// the usage equals what is stored, and both gateways serve again without a restart.
#[test]
fn gateways_postgres_restarted_under_load_the_gateways_recover() {
    require("curl");
    let mut gw = Gateways::start(2, "kura_gw_pgrestart");
    let auth = format!("admin:{ADMIN_PW}");
    group_bucket(&gw.servers[0], "p", "pbucket", None);
    let urls: Vec<String> = gw.servers.iter().map(|s| s.dav("pbucket/")).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (base, auth, stop) = (urls[w % 2].clone(), auth.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut done = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = format!("w{w}-{i:04}.txt");
                    let body = format!("writer {w} file {i}\n").repeat(20);
                    let started = std::time::Instant::now();
                    let out = Command::new("curl")
                        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-m", "60"])
                        .args(["-u", &auth, "--data-binary", &body, "-X", "PUT"])
                        .arg(format!("{base}{name}"))
                        .output()
                        .expect("curl");
                    done.push((name, body, code(&out), started.elapsed().as_secs_f64()));
                    i += 1;
                }
                done
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    gw.pg.stop();
    // longer than a writer waits for its connection (10 s): requests meet the outage
    std::thread::sleep(std::time::Duration::from_secs(12));
    gw.pg.start_again();
    std::thread::sleep(std::time::Duration::from_secs(6));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done: Vec<_> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();

    let slowest = done.iter().map(|d| d.3).fold(0.0, f64::max);
    let ok = done.iter().filter(|d| d.2 == 201).count();
    let mut by_status = std::collections::BTreeMap::new();
    for d in &done {
        *by_status.entry(d.2).or_insert(0) += 1;
    }
    println!(
        "PostgreSQL restarted under 4 writers: {} PUTs, statuses {by_status:?}, slowest {slowest:.1} s",
        done.len()
    );
    assert!(slowest < 20.0, "a PUT hung for {slowest:.1} s");
    assert!(
        done.iter().all(|d| matches!(d.2, 201 | 503)),
        "a PUT got something other than 201 or 503: {by_status:?}"
    );
    assert!(by_status.contains_key(&503), "the outage was never seen");
    // the last PUTs, after the restart, went through on both gateways
    for w in 0..4 {
        let last = done.iter().rfind(|d| d.0.starts_with(&format!("w{w}-")));
        assert_eq!(last.map(|d| d.2), Some(201), "writer {w} did not recover");
    }
    let mut stored = 0i64;
    let mut files = 0i64;
    for (name, body, status, _) in &done {
        let out = Command::new("curl")
            .args(["-sS", "-u", &auth, "-w", "\n%{http_code}"])
            .arg(gw.servers[1].dav(&format!("pbucket/{name}")))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (got, code) = text.rsplit_once('\n').expect("status line");
        match code {
            "200" => {
                // a refused commit may still have committed (the answer was lost): whole then
                assert_eq!(got, body, "{name} ({status}) reads back wrong");
                stored += body.len() as i64;
                files += 1;
            }
            "404" => assert_ne!(*status, 201, "{name} was acknowledged and is gone"),
            other => panic!("{name}: GET answered {other}"),
        }
    }
    assert!(ok > 0);
    assert_eq!(usage(&gw.servers[0], "p"), (stored, files), "usage drifted");
}

/// A gateway whose data dir has no copy of the first gateway's `secret.key` (or a key of its
/// own), or whose storage is not the others', refuses to start and says what to fix, instead
/// of serving while unable to unseal the others' access keys or find their files; with the
/// copy and the same storage it starts.
#[test]
fn gateways_a_gateway_without_the_shared_key_or_storage_refuses_to_start() {
    let gw = Gateways::start(1, "kura_gw_key");
    let key = gw.servers[0].s3_key();
    let url = gw.pg.url("kura_gw_key");
    let root = gw.files();
    let start_with = |data: &std::path::Path, extra: &[(&str, &str)]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kura"))
            .arg("serve")
            .envs(extra.iter().copied())
            .env("KURA_DATA_DIR", data)
            .env("KURA_DATABASE_URL", &url)
            .env("KURA_STORAGE__ROOT", &root)
            .env(
                "KURA_LISTEN",
                format!("127.0.0.1:{}", crate::common::free_port()),
            )
            .env("KURA_TLS", "false")
            .env("KURA_ADMIN_PASSWORD", ADMIN_PW)
            .env_remove("KURA_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kura serve");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let out = child.wait_with_output().expect("output");
                let text = String::from_utf8_lossy(&out.stderr).into_owned()
                    + &String::from_utf8_lossy(&out.stdout);
                return Some((status.success(), text));
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None; // still running: it started
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let start = |data: &std::path::Path| start_with(data, &[]);
    let own = tempfile::tempdir().expect("data dir");
    let (ok, text) = start(own.path()).expect("a gateway without the key started");
    assert!(!ok);
    assert!(text.contains("copy secret.key"), "{text}");
    assert!(
        !own.path().join("secret.key").exists(),
        "a key of its own was made"
    );
    std::fs::write(own.path().join("secret.key"), [9u8; 32]).expect("key");
    let (ok, text) = start(own.path()).expect("a gateway with its own key started");
    assert!(!ok);
    assert!(text.contains("copy secret.key"), "{text}");
    // with the first gateway's copy it serves, and unseals the keys the first one made
    let copy = std::fs::read(gw.servers[0].data_dir().join("secret.key")).expect("key");
    // ... unless its storage is not the others': its uploads would land where no other
    // gateway looks (here the `memory` service; an object store's other bucket alike)
    let other = tempfile::tempdir().expect("data dir");
    std::fs::write(other.path().join("secret.key"), &copy).expect("key");
    let (ok, text) = start_with(other.path(), &[("KURA_STORAGE__BACKEND", "memory")])
        .expect("a gateway on other storage started");
    assert!(!ok);
    assert!(
        text.contains("is not the one this database's files are in"),
        "{text}"
    );
    let env = [
        ("KURA_DATABASE_URL", url.as_str()),
        ("KURA_STORAGE__ROOT", root.to_str().expect("utf-8")),
    ];
    let second = Server::start_seeded(&env, &[("secret.key", &copy)]);
    let out = second
        .aws(&key)
        .args(["s3api", "list-buckets"])
        .output()
        .expect("aws");
    assert!(out.status.success(), "{out:?}");
}
