//! Issue 21, known defect 3: a DELETE with If-Match (WebDAV, and S3 DeleteObject as AWS has
//! it since 2025) is checked inside the delete's own transaction, so a PUT landing between a
//! client's check and its delete is never deleted. A race loop of DELETE If-Match version 1
//! against PUT version 2 of the same file (`conditional_delete.py`): version 2 is there after
//! every round, whichever came first.

use std::process::Command;

use crate::common::{fsck_clean, require, run, Server};

#[test]
fn a_delete_with_if_match_never_deletes_a_write_that_raced_it() {
    require("python3");
    let server = Server::plain();
    run(server.kura().args(["group", "add", "cg"]));
    run(server
        .kura()
        .args(["bucket", "create", "cdel", "--group", "cg"]));
    let key = server.s3_key();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/conditional_delete.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args(["--port", &server.port.to_string()])
        .args(["--rounds", "400", "--seconds", "60"])
        .env("KURA_S3_ENDPOINT", server.url(""))
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .output()
        .expect("python3");
    let report = String::from_utf8_lossy(&out.stdout).trim().to_string();
    println!("DELETE If-Match racing PUT: {report}");
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fsck_clean(&server);
}
