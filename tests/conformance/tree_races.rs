//! Issue 26: tree operations racing each other from a dozen WebDAV and S3 clients never answer
//! 5xx, and leave the WebDAV tree, the S3 listing, the disk, fsck and usage in agreement.

use std::process::Command;

use crate::common::{require, run, Server};
use crate::crash::{seed, Lcg};

fn one_seed(seed: u64) {
    let server = Server::plain();
    run(server.kura().args(["group", "add", "tg"]));
    run(server
        .kura()
        .args(["bucket", "create", "tort", "--group", "tg"]));
    let key = server.s3_key();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/tree_races.py"
    );
    let files = server.files_dir();
    let out = Command::new("python3")
        .arg(script)
        .args(["--port", &server.port.to_string()])
        .args(["--files", files.to_str().expect("utf8")])
        .args(["--seconds", "4", "--seed", &seed.to_string()])
        .env("KURA_S3_ENDPOINT", server.url(""))
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .output()
        .expect("python3");
    let report = String::from_utf8_lossy(&out.stdout).trim().to_string();
    println!("tree races, seed {seed} (KURA_TEST_SEED={seed} replays it): {report}");
    assert!(
        out.status.success(),
        "seed {seed}: {report}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let fsck = run(server.kura().arg("fsck"));
    let text = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        text.contains("storage: no drift") && text.contains("usage: no drift"),
        "seed {seed}: fsck: {text}"
    );
    let bytes: u64 = report
        .split("\"bytes\": ")
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.trim().parse().ok())
        .expect("bytes in the report");
    let usage =
        String::from_utf8_lossy(&run(server.kura().args(["usage", "tg"])).stdout).into_owned();
    assert!(
        usage.contains(&format!("tg\t{bytes}\t")),
        "seed {seed}: usage {usage} but {bytes} bytes stored"
    );
}

#[test]
fn racing_tree_operations_leave_one_consistent_tree() {
    require("python3");
    let mut rng = Lcg(seed());
    for _ in 0..3 {
        one_seed(rng.below(1 << 40));
    }
}
