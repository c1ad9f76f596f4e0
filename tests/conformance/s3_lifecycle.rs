//! S3 lifecycle rules against a real server: boto3 sets them, `kura lifecycle run
//! --days-ahead N` runs the worker's pass as if N days had passed.

use std::path::Path;
use std::process::Command;

use crate::common::{require, run, Server};

/// Expiration by prefix, tag, size and age (into the trash), disabled rules, noncurrent
/// versions beyond the newest N, lone delete markers, incomplete multipart uploads; bad
/// rules and another user refused; a file locked through WebDAV is left.
#[test]
fn lifecycle_rules_through_boto3() {
    require("python3");
    let server = Server::plain();
    let key = server.s3_key();
    server.add_user("bob", "bob-password-1", &["--create-buckets"]);
    let bob = server.s3_key_for("bob");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/s3_lifecycle.py");
    let kura = server.kura();
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    // the variables `kura` needs to act on this server's data dir
    for (k, v) in kura.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = run(cmd
        .env("KURA_BIN", env!("CARGO_BIN_EXE_kura"))
        .env("KURA_S3_ENDPOINT", server.url(""))
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("KURA_OTHER_KEY_ID", &bob.id)
        .env("KURA_OTHER_SECRET", &bob.secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"));
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
}
