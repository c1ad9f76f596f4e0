//! Suites written by others, run against Kura: s3s-e2e (crates.io) and the MinIO Python SDK's
//! functional tests (what MinIO's mint runs). `scripts/test.sh` installs both at the versions
//! below; each test prints its counts and fails when fewer cases pass than the floor recorded
//! here, or when the suite cannot run at all. What still fails, and why: docs/s3.md.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{require, run, Server};

/// The s3s-e2e release `scripts/test.sh` installs (`cargo install s3s-e2e --version`).
const S3S_E2E_VERSION: &str = "0.14.1";
/// Cases of s3s-e2e 0.14.1 that pass today (17 of 18; docs/s3.md says why 1 fails); fewer is
/// a regression.
const S3S_E2E_FLOOR: u64 = 17;
/// The minio release whose sdist's tests/functional/tests.py `scripts/test.sh` unpacks.
const MINIO_PY_VERSION: &str = "7.2.20";
/// Tests of minio-py 7.2.20's functional suite (MINT_MODE=full, HTTPS) that pass today (53 of
/// 61: 4 not applicable, 4 failing, the versioning tests passing since the S3 versioning API;
/// docs/s3.md says why).
const MINIO_PY_FLOOR: u64 = 53;

/// Pass, fail and ignored counts of one suite, printed as the closing note quotes them.
struct Counts {
    passed: u64,
    failed: u64,
    other: u64,
}

impl Counts {
    fn print(&self, suite: &str) {
        println!(
            // not "N passed, N failed" alone: CI reads that form as a test runner's closing line
            "{suite} cases: passed {}, failed {}, not applicable {}",
            self.passed, self.failed, self.other
        );
    }
}

/// The files `scripts/test.sh` unpacks from the minio sdist.
fn minio_tests_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/peer-suites")
        .join(format!("minio-{MINIO_PY_VERSION}"))
        .join("tests/functional/tests.py")
}

#[test]
fn s3s_e2e_suite() {
    require("s3s-e2e");
    let version = run(Command::new("s3s-e2e").arg("--version")).stdout;
    assert!(
        String::from_utf8_lossy(&version).contains(S3S_E2E_VERSION),
        "s3s-e2e {S3S_E2E_VERSION} is required (found {}); run ./scripts/test.sh",
        String::from_utf8_lossy(&version).trim()
    );
    // plain HTTP: the AWS Rust SDK signs every payload (the HTTPS paths run in minio-py below)
    let server = Server::plain();
    let key = server.s3_key();
    let dir = tempfile::tempdir().expect("dir");
    let report = dir.path().join("report.json");
    // exits 1 when any case fails: the report says how many
    let out = Command::new("s3s-e2e")
        .arg("--json")
        .arg(&report)
        .current_dir(dir.path())
        .env("AWS_ENDPOINT_URL", server.url(""))
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("RUST_LOG", "off")
        .output()
        .expect("run s3s-e2e");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = std::fs::read(&report).unwrap_or_else(|e| {
        panic!(
            "s3s-e2e wrote no report ({e}, {}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v: serde_json::Value = serde_json::from_slice(&json).expect("report is JSON");
    let mut counts = Counts {
        passed: 0,
        failed: 0,
        other: 0,
    };
    let cases = v["suites"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["fixtures"].as_array().into_iter().flatten())
        .flat_map(|f| f["cases"].as_array().into_iter().flatten());
    for case in cases {
        if case["ignored"] == true {
            counts.other += 1;
        } else if case["passed"] == true {
            counts.passed += 1;
        } else {
            counts.failed += 1;
        }
    }
    println!("{stdout}");
    counts.print(&format!("s3s-e2e {S3S_E2E_VERSION}"));
    assert!(
        counts.passed + counts.failed > 0,
        "s3s-e2e ran no case:\n{stdout}"
    );
    assert!(
        counts.passed >= S3S_E2E_FLOOR,
        "s3s-e2e: {} cases pass, the floor is {S3S_E2E_FLOOR}:\n{stdout}",
        counts.passed
    );
}

#[test]
fn minio_py_functional_suite() {
    require("python3");
    let tests_py = minio_tests_py();
    assert!(
        tests_py.is_file(),
        "{} is missing; run ./scripts/test.sh, which unpacks it from the minio {MINIO_PY_VERSION} sdist",
        tests_py.display()
    );
    let installed =
        run(Command::new("python3").args(["-c", "import minio; print(minio.__version__)"])).stdout;
    assert_eq!(
        String::from_utf8_lossy(&installed).trim(),
        MINIO_PY_VERSION,
        "the minio module must match its tests; run ./scripts/test.sh"
    );
    let server = Server::start(true);
    let key = server.s3_key();
    // tests.py writes its data files into the folder it runs in
    let dir = tempfile::tempdir().expect("dir");
    let runner = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/minio_functional.py"
    );
    let out = Command::new("python3")
        .arg(runner)
        .arg(&tests_py)
        .current_dir(dir.path())
        .env("SERVER_ENDPOINT", format!("127.0.0.1:{}", server.port))
        .env("ACCESS_KEY", &key.id)
        .env("SECRET_KEY", &key.secret)
        .env("ENABLE_HTTPS", "1")
        .env("MINT_MODE", "full")
        .env("SSL_CERT_FILE", server.cert())
        .output()
        .expect("run minio functional tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut counts = Counts {
        passed: 0,
        failed: 0,
        other: 0,
    };
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match v["status"].as_str() {
            Some("PASS") => counts.passed += 1,
            Some("FAIL") => {
                counts.failed += 1;
                println!(
                    "FAIL {}: {}",
                    v["name"].as_str().unwrap_or("?"),
                    v["message"].as_str().unwrap_or("")
                );
            }
            _ => {
                counts.other += 1;
                println!("NA {}", v["name"].as_str().unwrap_or("?"));
            }
        }
    }
    counts.print(&format!("minio-py {MINIO_PY_VERSION} functional"));
    assert!(
        out.status.success() && counts.passed + counts.failed > 0,
        "the minio functional tests did not run ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        counts.passed >= MINIO_PY_FLOOR,
        "minio-py: {} tests pass, the floor is {MINIO_PY_FLOOR}",
        counts.passed
    );
}
