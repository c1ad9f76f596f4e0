//! Red-team attacks on the user files API and tus uploads (docs/web.md) that the feature's
//! own tests did not try; each test runs one check of user_api_attacks.py against its own
//! server with the households of user_files.rs.

use std::process::Command;

use crate::common::{require, run, Server};

fn check(name: &str) {
    require("python3");
    let server = Server::plain();
    crate::user_files::households(&server);
    check_on(&server, name);
}

fn check_on(server: &Server, name: &str) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/user_api_attacks.py"
    );
    let out = run(Command::new("python3")
        .arg(script)
        .arg(server.url(""))
        .arg(name)
        .arg(server.root.path().join("check-state")));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("all checks passed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A tus `filetype` with CR LF was stored as the file's type; every WebDAV GET of the file
/// then panicked in the header encoder and dropped the connection, for every reader.
#[test]
fn a_stored_type_that_is_no_header_value_is_refused() {
    check("stored_types");
}

/// `names=café/café` (NFC and NFD) put the same file twice in the zip.
#[test]
fn a_zip_names_a_file_once_however_it_is_spelt() {
    check("zip_spellings");
}

/// An empty file sent by tus-js-client or Uppy (which create the upload and send no PATCH,
/// as tus allows) never appeared: the upload waited for an append that never came.
#[test]
fn an_empty_file_is_whole_once_created() {
    check("empty_file");
}

/// A file bob deleted from his 0700 folder of a shared bucket became alice's to list,
/// version, restore and read once bob renamed the folder: a deleted file's folders are
/// checked at their old paths, and a folder renamed away left nothing there to check.
#[test]
fn a_file_deleted_from_a_private_folder_stays_private_after_the_folder_moves() {
    check("moved_private_folder");
}

/// Bob deleted his 0700 folder; alice made a folder of the same name (she may write the
/// bucket) and read every file deleted with his, by their versions or by restoring them.
#[test]
fn a_deleted_private_folder_made_again_opens_none_of_its_old_files() {
    check("recreated_private_folder");
}

/// The user API answered 401 with `WWW-Authenticate: Basic`: a browser whose session ended
/// popped up its password dialog, then sent Basic credentials with every request.
#[test]
fn the_user_api_never_asks_a_browser_for_basic_credentials() {
    check("no_basic_challenge");
}

/// A user removed from the group kept appending to the upload he had started into its
/// bucket: the staged bytes counted against the group's quota (others' uploads refused with
/// 507), kept alive by every PATCH, listed nowhere an administrator looks.
#[test]
fn a_writer_who_lost_the_right_stages_nothing_more() {
    require("python3");
    let server = Server::plain();
    crate::user_files::households(&server);
    check_on(&server, "revoked_writer_start");
    run(server.kura().args(["group", "remove-user", "team", "bob"]));
    check_on(&server, "revoked_writer_rest");
}
