//! cadaver and rclone, driven as their users drive them.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{require, run, sha256_file, Server, ADMIN_PW};

fn cadaver(server: &Server, home: &std::path::Path, script: &str) -> String {
    let mut child = Command::new("cadaver")
        .env("HOME", home)
        .arg(server.dav(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cadaver");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script");
    let out = child.wait_with_output().expect("cadaver output");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cadaver failed:\n{text}");
    text
}

#[test]
fn cadaver_session_mkcol_put_get_move_delete() {
    require("cadaver");
    let server = Server::plain();
    let home = tempfile::tempdir().expect("home");
    std::fs::write(
        home.path().join(".netrc"),
        format!("machine 127.0.0.1\nlogin admin\npassword {ADMIN_PW}\n"),
    )
    .expect("netrc");
    let local = home.path().join("local.txt");
    let back = home.path().join("back.txt");
    std::fs::write(&local, "cadaver was here\n".repeat(1000)).expect("local");

    let text = cadaver(
        &server,
        home.path(),
        &format!(
            "mkcol docs\ncd docs\nput {} remote.txt\nget remote.txt {}\nmove remote.txt renamed.txt\nls\nquit\n",
            local.display(),
            back.display()
        ),
    );
    assert_eq!(
        sha256_file(&local),
        sha256_file(&back),
        "cadaver get returned other bytes:\n{text}"
    );
    assert!(
        text.contains("renamed.txt"),
        "ls did not show the moved file:\n{text}"
    );
    assert_eq!(server.status(&["-I", &server.dav("docs/remote.txt")]), 404);
    assert_eq!(
        server.get("docs/renamed.txt"),
        std::fs::read(&local).expect("read")
    );

    cadaver(
        &server,
        home.path(),
        "cd docs\ndelete renamed.txt\ncd ..\nrmcol docs\nquit\n",
    );
    assert_eq!(server.status(&["-I", &server.dav("docs/renamed.txt")]), 404);
    assert_eq!(server.status(&["-I", &server.dav("docs/")]), 404);
    assert!(crate::common::tree(&server.files_dir()).is_empty());
}

fn rclone(server: &Server, args: &[&str]) -> std::process::Output {
    let obscured = run(Command::new("rclone").args(["obscure", ADMIN_PW])).stdout;
    let obscured = String::from_utf8_lossy(&obscured).trim().to_string();
    let mut c = Command::new("rclone");
    c.env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_KURA_TYPE", "webdav")
        .env("RCLONE_CONFIG_KURA_URL", server.dav(""))
        .env("RCLONE_CONFIG_KURA_VENDOR", "other")
        .env("RCLONE_CONFIG_KURA_USER", "admin")
        .env("RCLONE_CONFIG_KURA_PASS", obscured)
        .args(args);
    if server.tls {
        c.arg("--ca-cert").arg(server.cert());
    }
    run(&mut c)
}

#[test]
fn rclone_webdav_copy_check_sync_delete() {
    require("rclone");
    let server = Server::plain();
    let local = tempfile::tempdir().expect("local");
    for i in 0..200 {
        let dir = local.path().join(format!("d{}", i % 7));
        std::fs::create_dir_all(&dir).expect("dir");
        let body: Vec<u8> = (0..(i * 97 + 1)).map(|b| (b * 31 + i) as u8).collect();
        std::fs::write(dir.join(format!("file-{i:03}.bin")), body).expect("write");
    }
    let src = local.path().to_str().expect("utf8");
    rclone(&server, &["copy", src, "kura:up"]);
    rclone(&server, &["check", src, "kura:up"]);
    let listed = rclone(&server, &["lsf", "-R", "--files-only", "kura:up"]).stdout;
    assert_eq!(String::from_utf8_lossy(&listed).lines().count(), 200);

    // change one file, add one, remove one; sync must mirror exactly that
    std::fs::write(local.path().join("d0/file-000.bin"), b"changed").expect("change");
    std::fs::write(local.path().join("d1/new.txt"), b"new file").expect("add");
    std::fs::remove_file(local.path().join("d2/file-002.bin")).expect("remove");
    rclone(&server, &["sync", src, "kura:up"]);
    rclone(&server, &["check", src, "kura:up"]);
    assert_eq!(server.get("up/d0/file-000.bin"), b"changed");
    assert_eq!(
        server.status(&["-I", &server.dav("up/d2/file-002.bin")]),
        404
    );

    rclone(&server, &["purge", "kura:up"]);
    assert_eq!(server.status(&["-I", &server.dav("up/")]), 404);
    assert!(
        crate::common::tree(&server.files_dir()).is_empty(),
        "purge left files behind"
    );
}
