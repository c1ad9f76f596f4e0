//! The user files API (docs/web.md): listing, changes, download and zip, by a signed-in
//! browser (Python requests with the session cookie and CSRF token) against a real server,
//! with the attacks: another user's bucket, traversal, CSRF, other origins, locks, quota.

use std::process::Command;

use crate::common::{require, run, Server};

/// Group `team` (2 MB quota) with alice and bob and a 770 bucket; carol (group `solo`) with a 700 bucket of her own.
pub fn households(server: &Server) {
    run(server.kura().args(["group", "add", "team"]));
    run(server
        .kura()
        .args(["bucket", "create", "team", "--group", "team"]));
    run(server.kura().args(["chmod", "770", "/team"]));
    run(server
        .kura()
        .args(["quota", "set", "team", "--bytes", "2000000"]));
    server.add_user("alice", "alice-pw-123", &["--group", "team"]);
    server.add_user("bob", "bob-pw-1234", &["--group", "team"]);
    run(server.kura().args(["group", "add", "solo"]));
    server.add_user("carol", "carol-pw-123", &["--group", "solo"]);
    run(server.kura().args([
        "bucket", "create", "carol", "--group", "solo", "--owner", "carol",
    ]));
    run(server.kura().args(["chmod", "700", "/carol"]));
}

#[test]
fn files_api_lists_changes_downloads_and_refuses_attacks() {
    require("python3");
    let server = Server::plain();
    households(&server);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/user_files.py"
    );
    let out = run(Command::new("python3").arg(script).arg(server.url("")));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("all checks passed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
