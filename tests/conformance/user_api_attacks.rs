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

/// A file named `invoice_\u{202E}fdp.exe` downloaded from the app or a share link was saved
/// as `invoice_\u{202E}fdp.exe`, which a file manager shows as `invoice_exe.pdf`; a folder
/// with bidi controls zipped the same way.
#[test]
fn a_download_is_saved_under_a_name_without_bidi_controls() {
    check("bidi_download");
}

/// A removed user's unfinished tus upload passed to the next user given the same name (it
/// was bound to the name): the new alice could read its offset and finish it, and its
/// staged bytes held the group's quota (alice's new upload refused with 507) until expiry.
#[test]
fn a_removed_users_uploads_go_with_her_and_free_the_quota() {
    require("python3");
    let server = Server::plain();
    crate::user_files::households(&server);
    check_on(&server, "removed_user_start");
    run(server.kura().args(["user", "remove", "alice"]));
    server.add_user("alice", "alice-pw-123", &["--group", "team"]);
    check_on(&server, "removed_user_rest");
}

/// One user opened resumable uploads without end (tus creations and S3
/// CreateMultipartUpload): each a row, a folder in staging and a share of the quota held
/// for a day. A user has at most `uploads_max_per_user` open at once, tus and S3 together.
#[test]
fn open_uploads_per_user_are_capped_for_tus_and_s3_together() {
    require("python3");
    require("aws");
    let server = Server::start_with(false, &[("KURA_UPLOADS_MAX_PER_USER", "3")]);
    crate::user_files::households(&server);
    let key = server.s3_key_for("alice");
    let start = |name: &str| {
        server
            .aws(&key)
            .args(["s3api", "create-multipart-upload", "--bucket", "team"])
            .args(["--key", name, "--query", "UploadId", "--output", "text"])
            .output()
            .expect("aws")
    };
    let first = start("s3-part.bin");
    assert!(first.status.success(), "{first:?}");
    // two tus uploads fill alice's three; a third is refused (tus: 403 too_many_uploads)
    check_on(&server, "upload_cap_tus");
    // and so is an S3 one, with an error aws-cli shows as it is, at once (403: not retried)
    let refused = start("s3-more.bin");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("TooManyUploads") && err.contains("at most 3"),
        "{refused:?}"
    );
    // aborting one frees its place
    let id = String::from_utf8_lossy(&first.stdout).trim().to_string();
    run(server.aws(&key).args([
        "s3api",
        "abort-multipart-upload",
        "--bucket",
        "team",
        "--key",
        "s3-part.bin",
        "--upload-id",
        &id,
    ]));
    assert!(start("s3-more.bin").status.success());
}

/// Bob's deleted 0750 folder with a 0700 subfolder, restored file by file where it was (one
/// file first, then the rest), came back with the folders at the default mode (0775): the
/// private subfolder was open to the whole group.
#[test]
fn a_folder_restored_file_by_file_keeps_the_modes_it_had() {
    check("restored_modes");
}

/// Outside red team: a folder deleted and restored elsewhere by another user is hers, as her
/// copy would be (the one-rename restore kept the first owner's ownership wherever it went);
/// restored where it was, it is given back to its owner, not taken by the restorer.
#[test]
fn a_folder_restored_by_another_user_is_hers_elsewhere_and_his_in_place() {
    check("restored_by_another");
}
