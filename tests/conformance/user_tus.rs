//! tus 1.0 resumable uploads through the user API (docs/web.md): the protocol and its attacks
//! (offsets, lengths, someone else's upload, CSRF, quota, locks), and a 200 MiB upload cut
//! mid-PATCH, the server restarted, resumed from HEAD's offset to a byte-equal file in
//! bounded server memory.

use std::process::Command;

use crate::common::{require, run, Server};

/// `team` as in user_files, plus bucket `fam` (group fam, no quota) of which alice is a member.
fn setup(server: &Server) {
    crate::user_files::households(server);
    run(server.kura().args(["group", "add", "fam"]));
    run(server.kura().args(["group", "add-user", "fam", "alice"]));
    run(server
        .kura()
        .args(["bucket", "create", "fam", "--group", "fam"]));
    run(server.kura().args(["chmod", "770", "/fam"]));
}

fn script(server: &Server, args: &[&str]) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/user_tus.py");
    let out = run(Command::new("python3")
        .arg(path)
        .arg(server.url(""))
        .args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tus_protocol_and_its_attacks() {
    require("python3");
    let server = Server::plain();
    setup(&server);
    let out = script(&server, &["attacks"]);
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn a_200_mib_tus_upload_survives_a_cut_and_a_restart_in_bounded_memory() {
    require("python3");
    let mut server = Server::plain();
    setup(&server);
    let state = server.root.path().join("tus-state.json");
    let state = state.to_str().expect("utf8");
    let out = script(&server, &["start", state]);
    assert!(out.contains("kept"), "{out}");
    let before = server.vm_hwm_kib();
    server.restart();
    let out = script(&server, &["resume", state]);
    assert!(out.contains("byte-equal"), "{out}");
    let after = server.vm_hwm_kib();
    eprintln!("peak RSS: {before} KiB before the restart, {after} KiB after");
    // 200 MiB went through; the server holds neither the file nor a large part of it
    assert!(
        before < 120 * 1024,
        "peak RSS {before} KiB during the cut PATCH"
    );
    assert!(
        after < 120 * 1024,
        "peak RSS {after} KiB during the resumed PATCH"
    );
}
