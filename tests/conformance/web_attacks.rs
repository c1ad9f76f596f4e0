//! Red-team attacks on the browser app's user API and the admin API (docs/web.md): restoring
//! what one could never read, the password alone past two-factor authentication, an origin of
//! another scheme, and mkdir telling what a private folder holds. Each test runs one check of
//! web_attacks.py against its own HTTPS server with the households of user_files.rs.

use std::process::Command;

use crate::common::{require, run, Server, ADMIN_PW};

fn check(name: &str) {
    require("python3");
    let server = Server::start(true);
    crate::user_files::households(&server);
    run(server.kura().args([
        "bucket", "create", "bobbox", "--group", "team", "--owner", "bob",
    ]));
    run(server.kura().args(["chmod", "700", "/bobbox"]));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/web_attacks.py"
    );
    let out = run(Command::new("python3")
        .arg(script)
        .arg(server.url(""))
        .arg(ADMIN_PW)
        .arg(name)
        .arg(server.cert()));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("all checks passed"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// F1: alice deleted her 0700 folder; bob, who may list the bucket, restored it into his own
/// bucket (or in place after making a folder of that name) and read her files, now his.
#[test]
fn restoring_a_deleted_private_folder_needs_the_right_to_read_it() {
    check("restore_of_a_private_folder");
}

/// F1: a readable deleted folder holding a 0700 one came back whole for anyone who could
/// list it, the private folder's files included.
#[test]
fn restoring_a_deleted_folder_needs_the_right_to_read_all_of_it() {
    check("restore_of_a_readable_folder_holding_a_private_one");
}

/// Red team (2026-12-06): a decoy folder made at a deleted private folder's path received
/// its files on an in-place restore (by the owner or an administrator) and exposed them.
#[test]
fn a_private_folder_is_not_restored_into_a_decoy_folder() {
    check("restore_into_a_decoy_folder");
}

/// F1: files restored where they were, file by file, became the restorer's.
#[test]
fn files_restored_in_place_keep_their_owner() {
    check("restored_files_keep_their_owner_in_place");
}

/// F3: with two-factor on, the password alone over Basic drove the user API (list,
/// download, delete, share links) and the admin API (a new administrator).
#[test]
fn the_password_alone_is_refused_on_the_apis_once_two_factor_is_on() {
    check("two_factor_is_not_bypassed_by_basic");
}

/// F10: `Origin: http://host:port` passed against the https server of that host and port.
#[test]
fn an_origin_of_another_scheme_is_another_origin() {
    check("origin_of_another_scheme");
}

/// F5: mkdir in a folder one may not enter answered 409 for a name there, 403 otherwise.
#[test]
fn mkdir_answers_alike_whether_a_hidden_name_exists() {
    check("mkdir_tells_nothing_of_a_private_folder");
}

/// F9 (2026-12-06): a deleted folder restored file by file and stopped by the quota part-way
/// left the files restored so far and answered an error.
#[test]
fn a_restore_stopped_by_the_quota_restores_nothing() {
    check("restore_stopped_by_the_quota");
}

/// Red team (2026-12-06): one file of a deleted private folder, restored alone where it
/// was, went into a decoy folder made at the folder's path.
#[test]
fn a_private_file_is_not_restored_alone_into_a_decoy_folder() {
    check("one_private_file_is_not_restored_into_a_decoy_folder");
}

/// Red team (session 35): a file deleted on its own before its private folder, then
/// restored where it was, went into a decoy folder made at the folder's path (its delete
/// held no folder marker to compare with; its row's record of the folders above it is used).
#[test]
fn a_file_deleted_before_its_private_folder_is_not_restored_into_a_decoy() {
    check("a_file_deleted_before_its_private_folder_is_not_restored_into_a_decoy");
}
