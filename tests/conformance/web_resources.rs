//! The browser app's resources under attack (docs/web.md): slow bodies before sign-in, one
//! user's PDF bombs against everyone's previews, the preview cache against the disk, and a
//! resumable upload that cannot fit the quota. Each is an attacker's story against a real
//! server (Python requests and raw sockets, web_resources.py), bounded in time.

use std::process::Command;

use crate::common::{require, run, Server, ADMIN_PW};
use crate::user_files::households;

/// Largest preview cache of the test server: fewer bytes than the pages of one PDF asked at
/// two sizes.
pub const CACHE_CAP: u64 = 1_500_000;

#[test]
fn web_resources_hold_against_slow_bodies_bombs_and_cache_floods() {
    require("python3");
    let cap = CACHE_CAP.to_string();
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__HEADER_READ_TIMEOUT_SECONDS", "3"),
            ("KURA_PREVIEW_CACHE_BYTES", &cap),
        ],
    );
    households(&server);
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("bomb.pdf"), crate::pdfs::bomb()).expect("write");
    std::fs::write(
        dir.path().join("small.png"),
        crate::user_previews::png(300, 200, false),
    )
    .expect("write");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/web_resources.py"
    );
    let out = run(Command::new("timeout")
        .env("KURA_TEST_ADMIN_PW", ADMIN_PW)
        .arg("240")
        .arg("python3")
        .arg(script)
        .arg(server.url(""))
        .arg(server.pid().to_string())
        .arg(dir.path())
        .arg(server.data_dir().join("thumbnails"))
        .arg(&cap));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(text.contains("all checks passed"), "{text}");
}
