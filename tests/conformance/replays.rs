//! Replays of macOS Finder's and Windows Explorer's and Office's request sequences
//! (`dav_replays.py`), the lock timeout cap, and the option that hides or refuses macOS
//! metadata files, against a real server over TLS.

use std::process::Command;

use crate::common::{require, run, tree, Server, ADMIN_PW};

/// Runs one replay against `server` in a fresh `docs` bucket; prints the steps.
fn replay(server: &Server, which: &str, extra: &[(&str, &str)]) {
    require("python3");
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("docs")]), 201);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/dav_replays.py"
    );
    let out = run(Command::new("python3")
        .arg(script)
        .env("KURA_URL", server.url(""))
        .env("KURA_USER", "admin")
        .env("KURA_PASSWORD", ADMIN_PW)
        .env("KURA_CA", server.cert())
        .env("KURA_REPLAY", which)
        .envs(extra.iter().copied()));
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

fn stored(server: &Server) -> Vec<String> {
    tree(&server.files_dir().join("docs"))
}

#[test]
fn finder_session_mount_copy_safe_save_and_folders() {
    let server = Server::start(true);
    replay(&server, "finder", &[]);
    let files = stored(&server);
    assert_eq!(
        files,
        vec![".DS_Store", "._notes.txt", "notes.txt"],
        "{files:?}"
    );
    assert!(server.files_dir().join("docs/Photos").is_dir());
    let notes = std::fs::read(server.files_dir().join("docs/notes.txt")).expect("notes.txt");
    assert_eq!(notes, b"second draft\n".repeat(900));
}

#[test]
fn finder_of_macos_15_4_and_later_mounts_without_quota_properties() {
    let server = Server::start(true);
    replay(&server, "finder15", &[]);
}

#[test]
fn explorer_and_office_session_win32_props_lock_save_and_overwrite() {
    let server = Server::start(true);
    replay(&server, "explorer", &[]);
    let files = stored(&server);
    assert_eq!(files, vec!["plan.txt", "report.docx"], "{files:?}");
}

#[test]
fn lock_timeouts_are_capped_and_lock_lifetimes_follow_rfc4918() {
    let server = Server::start_with(true, &[("KURA_LOCK_TIMEOUT_MAX_SECONDS", "120")]);
    replay(&server, "timeouts", &[("KURA_LOCK_CAP", "120")]);
}

#[test]
fn macos_metadata_hidden_from_listings_of_both_protocols() {
    require("aws");
    let server = Server::start_with(true, &[("KURA_MACOS_METADATA", "hide")]);
    replay(&server, "hide", &[]);
    let key = server.s3_key();
    let out = run(server.aws(&key).args(["s3", "ls", "s3://docs/"]));
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listing.contains("a.txt"), "{listing}");
    assert!(
        !listing.contains("._a.txt") && !listing.contains(".DS_Store"),
        "{listing}"
    );
    assert_eq!(stored(&server), vec![".DS_Store", "._a.txt", "a.txt"]);
}

#[test]
fn macos_metadata_refused_by_both_protocols() {
    require("aws");
    let server = Server::start_with(true, &[("KURA_MACOS_METADATA", "refuse")]);
    replay(&server, "refuse", &[]);
    let key = server.s3_key();
    let body = server.root.path().join("ds");
    std::fs::write(&body, b"Bud1").expect("body");
    let out = server
        .aws(&key)
        .args(["s3", "cp"])
        .arg(&body)
        .arg("s3://docs/sub/.DS_Store")
        .output()
        .expect("aws");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AccessDenied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored(&server), vec!["a.txt"]);
}
