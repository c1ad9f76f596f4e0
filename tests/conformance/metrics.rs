//! `/metrics`: a scripted workload through curl (WebDAV) and aws-cli (S3), then a scrape parsed
//! by the Prometheus project's own Python parser, whose counts must equal what the workload did;
//! and scrapes from where they must be refused (no token, a wrong one, a forged forwarding
//! header, an address not listed).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{code, require, run, Server};

const TOKEN: &str = "metrics-token-0123456789abcdef";

/// Parses a scrape with `prometheus_client.parser` (PyPI `prometheus-client`) into
/// `name{label="value",...}` (labels sorted) -> value, plus every label name seen.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write scrape");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "prometheus_client could not parse the scrape (pip install prometheus-client; \
         scripts/test.sh does): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// The value of one sample, 0 when absent (a counter never bumped has no series).
fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// A scrape with curl; `args` add headers. Returns (status, body).
fn scrape(s: &Server, args: &[&str]) -> (u16, String) {
    let mut all = vec!["-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let url = s.url("/metrics");
    all.push(&url);
    let out = s.curl(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

#[test]
fn metrics_count_exactly_what_a_scripted_workload_did() {
    require("aws");
    require("python3");
    let s = Server::start_with(false, &[("KURA_METRICS__TOKEN", TOKEN)]);
    let key = s.s3_key();
    run(s.kura().args(["group", "add", "family"]));
    run(s
        .kura()
        .args(["quota", "set", "family", "--bytes", "10MiB"]));
    run(s
        .kura()
        .args(["bucket", "create", "photos", "--group", "family"]));

    // the workload: WebDAV through curl...
    let sizes = [1000usize, 20_000, 300_000];
    for (i, n) in sizes.iter().enumerate() {
        let body = vec![b'a' + i as u8; *n];
        assert_eq!(s.put(&format!("photos/probe-{i}.bin"), &body), 201);
    }
    assert_eq!(s.get("photos/probe-2.bin").len(), 300_000);
    assert_eq!(s.get("photos/probe-1.bin").len(), 20_000);
    let wrong = s.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-u",
        "admin:not-the-password",
        &s.dav("photos/"),
    ]);
    assert_eq!(code(&wrong), 401);
    // ...and S3 through aws-cli, into a bucket named like the endpoint: signed requests are S3's
    run(s
        .aws(&key)
        .args(["s3api", "create-bucket", "--bucket", "metrics"]));
    let f = s.root.path().join("s3-body");
    std::fs::write(&f, vec![b'z'; 50_000]).expect("body");
    for k in ["one", "two"] {
        run(s.aws(&key).args([
            "s3api",
            "put-object",
            "--bucket",
            "metrics",
            "--key",
            k,
            "--body",
            f.to_str().expect("utf8"),
        ]));
    }
    let got = s.root.path().join("s3-got");
    run(s.aws(&key).args([
        "s3api",
        "get-object",
        "--bucket",
        "metrics",
        "--key",
        "two",
        got.to_str().expect("utf8"),
    ]));
    assert_eq!(std::fs::metadata(&got).expect("got").len(), 50_000);
    let bad = s
        .aws(&crate::common::S3Key {
            id: key.id.clone(),
            secret: "wrong-secret-wrong-secret-wrong-secret00".into(),
        })
        .args(["s3api", "list-buckets"])
        .output()
        .expect("aws");
    assert!(!bad.status.success(), "a wrong secret was accepted");

    // the scrape (from 127.0.0.1: allowed by default, no token needed)
    let (status, text) = scrape(&s, &[]);
    assert_eq!(status, 200, "{text}");
    let m = parse(&text);
    let req = |proto: &str, method: &str, status: u16| {
        value(
            &m,
            &format!(
                "kura_http_requests_total{{method=\"{method}\",protocol=\"{proto}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(req("webdav", "PUT", 201), 3.0, "{text}");
    assert_eq!(req("webdav", "GET", 200), 2.0, "{text}");
    assert_eq!(req("webdav", "GET", 401), 1.0, "{text}");
    assert_eq!(
        req("s3", "PUT", 200),
        3.0,
        "create-bucket and two put-object: {text}"
    );
    assert_eq!(req("s3", "GET", 200), 1.0, "{text}");
    assert_eq!(req("s3", "GET", 403), 1.0, "{text}");
    let auth = |proto: &str| {
        value(
            &m,
            &format!("kura_auth_failures_total{{protocol=\"{proto}\"}}"),
        )
    };
    assert_eq!(auth("webdav"), 1.0);
    assert_eq!(auth("s3"), 1.0);
    // bytes: WebDAV PUT bodies arrive as they are; aws-cli may frame its bodies (aws-chunked)
    let dav_in = value(&m, "kura_http_received_bytes_total{protocol=\"webdav\"}");
    assert_eq!(dav_in, sizes.iter().sum::<usize>() as f64);
    let s3_in = value(&m, "kura_http_received_bytes_total{protocol=\"s3\"}");
    assert!(
        (100_000.0..110_000.0).contains(&s3_in),
        "s3 bytes in {s3_in}"
    );
    let dav_out = value(&m, "kura_http_sent_bytes_total{protocol=\"webdav\"}");
    assert!(
        (320_000.0..324_000.0).contains(&dav_out),
        "webdav bytes out {dav_out}"
    );
    let s3_out = value(&m, "kura_http_sent_bytes_total{protocol=\"s3\"}");
    assert!(
        (50_000.0..54_000.0).contains(&s3_out),
        "s3 bytes out {s3_out}"
    );
    // every answered request is in its latency histogram
    assert_eq!(
        value(
            &m,
            "kura_http_request_duration_seconds_count{method=\"PUT\",protocol=\"webdav\"}"
        ),
        3.0
    );
    assert_eq!(
        value(&m, "kura_uploads_in_flight{protocol=\"webdav\"}"),
        0.0
    );
    // usage and quota of the group, read from SQL at the scrape
    assert_eq!(
        value(&m, "kura_group_used_bytes{group=\"family\"}"),
        sizes.iter().sum::<usize>() as f64
    );
    assert_eq!(value(&m, "kura_group_used_objects{group=\"family\"}"), 3.0);
    assert_eq!(
        value(&m, "kura_group_quota_bytes{group=\"family\"}"),
        10.0 * 1024.0 * 1024.0
    );
    assert_eq!(value(&m, "kura_database_up{}"), 1.0);
    assert_eq!(value(&m, "kura_db_errors_total{}"), 0.0);
    assert!(value(&m, "process_resident_memory_bytes{}") > 1e6);
    assert!(value(&m, "process_open_fds{}") > 0.0);
    assert!(m.keys().any(|k| k.starts_with("kura_build_info{commit=")));

    // bounded cardinality: no label names a path, a user, an agent or a key
    let allowed = [
        "protocol", "method", "status", "le", "reason", "kind", "peer", "bucket", "group",
        "version", "commit",
    ];
    for k in m.keys() {
        let labels = k.split_once('{').map(|(_, l)| l).unwrap_or("");
        for pair in labels
            .trim_end_matches('}')
            .split("\",")
            .filter(|p| !p.is_empty())
        {
            let name = pair.split('=').next().unwrap_or("");
            assert!(allowed.contains(&name), "label {name} in {k}");
        }
        for secret in ["probe", "admin", "curl", "aws-cli", &key.id] {
            assert!(!k.contains(secret), "{secret:?} in a label: {k}");
        }
    }
}

#[test]
fn metrics_are_refused_without_the_token_or_a_listed_address() {
    // this machine is listed by default; the token opens the door to any address
    let s = Server::start_with(false, &[("KURA_METRICS__TOKEN", TOKEN)]);
    assert_eq!(scrape(&s, &[]).0, 200);
    let bearer = format!("Authorization: Bearer {TOKEN}");
    assert_eq!(scrape(&s, &["-H", &bearer]).0, 200);
    // a wrong token is refused even from a listed address, and counted as a failed login
    assert_eq!(
        scrape(&s, &["-H", "Authorization: Bearer wrong-token-wrong-token"]).0,
        401
    );
    // a password is not the token, and is not checked here: a scraper set up with one must
    // not lock its user out
    let basic = format!("admin:{}", crate::common::ADMIN_PW);
    for _ in 0..6 {
        assert_eq!(scrape(&s, &["-u", &basic]).0, 401);
    }
    assert_eq!(
        s.status(&["-X", "PROPFIND", "-H", "Depth: 0", &s.dav("")]),
        207
    );
    // a reverse proxy on this machine that Kura does not trust: its client may be anyone
    let (status, body) = scrape(&s, &["-H", "X-Forwarded-For: 203.0.113.9"]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(scrape(&s, &["-H", "Forwarded: for=203.0.113.9"]).0, 403);
    assert_eq!(
        scrape(&s, &["-H", &bearer, "-H", "X-Forwarded-For: 203.0.113.9"]).0,
        200
    );
    let (_, text) = scrape(&s, &["-H", &bearer]);
    let m = parse(&text);
    assert_eq!(
        value(&m, "kura_auth_failures_total{protocol=\"metrics\"}"),
        1.0,
        "{text}"
    );
    // only GET and HEAD
    let post = s.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        &s.url("/metrics"),
    ]);
    assert_eq!(code(&post), 405);

    // a listed network behind a trusted proxy: the forwarded address decides
    let p = Server::start_with(
        false,
        &[
            ("KURA_METRICS__ALLOW", "[\"203.0.113.0/24\"]"),
            ("KURA_LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
        ],
    );
    assert_eq!(scrape(&p, &["-H", "X-Forwarded-For: 203.0.113.9"]).0, 200);
    assert_eq!(scrape(&p, &["-H", "X-Forwarded-For: 198.51.100.7"]).0, 403);
    assert_eq!(scrape(&p, &[]).0, 403, "127.0.0.1 is not listed here");
    assert_eq!(
        scrape(
            &p,
            &["-H", "Authorization: Bearer anything-anything-anything"]
        )
        .0,
        401,
        "no token is configured: none is accepted"
    );

    // switched off: /metrics is an unknown path (an anonymous S3 request)
    let off = Server::start_with(false, &[("KURA_METRICS__ENABLED", "false")]);
    let (status, body) = scrape(&off, &[]);
    assert_ne!(status, 200, "{body}");
    assert!(!body.contains("kura_http_requests_total"));
}

#[test]
fn metrics_settings_that_cannot_work_stop_the_start() {
    for (k, v, why) in [
        (
            "KURA_METRICS__ALLOW",
            "[\"not-an-address\"]",
            "not-an-address",
        ),
        ("KURA_METRICS__TOKEN", "short", "at least 16"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(env!("CARGO_BIN_EXE_kura"))
            .arg("serve")
            .env("KURA_DATA_DIR", dir.path().join("data"))
            .env(
                "KURA_LISTEN",
                format!("127.0.0.1:{}", crate::common::free_port()),
            )
            .env("KURA_TLS", "false")
            .env("KURA_ADMIN_PASSWORD", "pw-pw-pw-pw")
            .env_remove("KURA_CONFIG")
            .env(k, v)
            .output()
            .expect("kura serve");
        assert!(!out.status.success(), "{k}={v} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{k}={v}: {err}");
    }
}

#[test]
fn grafana_dashboard_queries_only_metrics_kura_serves() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana-kura.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 15, "the dashboard lost its queries");
    // a server with something in every family: a group with a quota, a replication rule to
    // a peer that is down, a file gone from the disk behind Kura's back
    let mut s = Server::start_with(false, &[("KURA_REPLICATION__RETRY_MAX_SECONDS", "1")]);
    run(s.kura().args(["group", "add", "family"]));
    run(s.kura().args([
        "quota",
        "set",
        "family",
        "--bytes",
        "1GiB",
        "--objects",
        "100",
    ]));
    run(s
        .kura()
        .args(["bucket", "create", "photos", "--group", "family"]));
    run(s.kura().args([
        "peer",
        "add",
        "far",
        "--endpoint",
        "http://127.0.0.1:1",
        "--access-key",
        "AKIDEXAMPLE",
        "--secret-key",
        "secret-secret-secret",
        "--no-check",
    ]));
    run(s
        .kura()
        .args(["replicate", "photos", "--to", "far", "--no-check"]));
    s.restart();
    assert_eq!(s.put("photos/a.txt", b"shipped nowhere"), 201);
    assert_eq!(s.put("photos/gone.txt", b"about to vanish"), 201);
    let on_disk = s.files_dir().join("photos/gone.txt");
    std::fs::remove_file(&on_disk).expect("the stored file is where the fs backend keeps it");
    let broken = s.curl_admin(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &s.dav("photos/gone.txt"),
    ]);
    assert!(code(&broken) >= 500, "a vanished file was served");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let (status, text) = scrape(&s, &[]);
        assert_eq!(status, 200);
        let m = parse(&text);
        if value(&m, "kura_replication_errors_total{peer=\"far\"}") >= 1.0 {
            assert_eq!(
                value(
                    &m,
                    "kura_replication_failing{bucket=\"photos\",peer=\"far\"}"
                ),
                1.0
            );
            assert!(
                value(
                    &m,
                    "kura_replication_backlog{bucket=\"photos\",peer=\"far\"}"
                ) >= 1.0
            );
            assert!(
                value(
                    &m,
                    "kura_replication_lag_seconds{bucket=\"photos\",peer=\"far\"}"
                ) > 0.0
            );
            assert_eq!(
                value(&m, "kura_group_quota_objects{group=\"family\"}"),
                100.0
            );
            let storage: f64 = m
                .iter()
                .filter(|(k, _)| k.starts_with("kura_storage_errors_total{"))
                .map(|(_, v)| v)
                .sum();
            assert!(
                storage >= 1.0,
                "the vanished file is no storage error: {text}"
            );
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no replication error counted for a peer that is down:\n{text}\n{}",
            s.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    // every family Kura serves says its name on a TYPE line
    let served: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut used = 0;
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !(word.starts_with("kura_") || word.starts_with("process_")) {
                continue;
            }
            used += 1;
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            assert!(
                served.contains(&word) || served.contains(&family),
                "the dashboard queries {word}, which Kura does not serve:\n{e}"
            );
        }
    }
    assert!(used >= 25);
    // and each family Kura serves is on the dashboard
    for name in &served {
        assert!(
            exprs.iter().any(|e| e.contains(name)),
            "{name} is on no panel of docs/grafana-kura.json"
        );
    }
}

#[test]
fn an_upload_is_in_flight_until_its_body_ends_over_http1_and_http2() {
    let s = Server::start_with(false, &[]);
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("slow")]), 201);
    let body = s.root.path().join("slow-body");
    std::fs::write(&body, vec![b's'; 300_000]).expect("body");
    let gauge = |s: &Server| {
        value(
            &parse(&scrape(s, &[]).1),
            "kura_uploads_in_flight{protocol=\"webdav\"}",
        )
    };
    for (i, version) in ["--http1.1", "--http2-prior-knowledge"].iter().enumerate() {
        let auth = format!("admin:{}", crate::common::ADMIN_PW);
        let upload = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", *version])
            .args(["--limit-rate", "100k", "-u", &auth, "-T"])
            .arg(&body)
            .arg(s.dav(&format!("slow/{i}.bin")))
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut seen = 0.0;
        while seen < 1.0 && std::time::Instant::now() < deadline {
            seen = gauge(&s);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(seen, 1.0, "{version}: the upload never showed in flight");
        let out = upload.wait_with_output().expect("upload");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "201", "{version}");
        assert_eq!(
            gauge(&s),
            0.0,
            "{version}: still in flight after its answer"
        );
    }
}
