//! Issue 22 item 7, as attacks: forged, stale and malformed signatures, dates and headers sent
//! raw, another user's bucket name, a lying part digest, and ListMultipartUploads paged, each
//! answered with the status and code AWS gives (`s3_errors.py`).

use std::process::Command;

use crate::common::{require, run, Server};

#[test]
fn s3_errors_are_the_codes_aws_gives() {
    require("python3");
    let server = Server::plain();
    server.add_user("eve", "eve-password-1", &[]);
    server.add_user("fay", "fay-password-1", &["--create-buckets"]);
    let admin = server.s3_key();
    let eve = server.s3_key_for("eve");
    let fay = server.s3_key_for("fay");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/s3_errors.py"
    );
    let out = run(Command::new("python3")
        .arg(script)
        .arg(server.port.to_string())
        .args([&admin.id, &admin.secret, &eve.id, &eve.secret])
        .args([&fay.id, &fay.secret])
        .env("AWS_CONFIG_FILE", "/dev/null"));
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
}
