//! `kura user ...` acts on the data dir while the server runs, and takes effect at once.

use std::io::Write;
use std::process::Stdio;

use crate::common::{code, Server};

fn kura_user(server: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = server
        .kura()
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kura user");
    if let Some(s) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "kura user {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_as(server: &Server, user: &str, pw: &str) -> u16 {
    let auth = format!("{user}:{pw}");
    code(&server.curl(&[
        "-u",
        &auth,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 0",
        &server.dav(""),
    ]))
}

#[test]
fn user_commands_apply_to_a_running_server_at_once() {
    let server = Server::plain();
    assert_eq!(status_as(&server, "bob", "first-pw"), 401);
    kura_user(
        &server,
        &["add", "bob", "--password-stdin"],
        Some("first-pw\n"),
    );
    assert_eq!(status_as(&server, "bob", "first-pw"), 207);
    assert!(kura_user(&server, &["list"], None)
        .lines()
        .any(|l| l.split_whitespace().next() == Some("bob")));

    // the verification cache must not keep the old password alive
    kura_user(
        &server,
        &["passwd", "bob", "--password-stdin"],
        Some("second-pw\n"),
    );
    assert_eq!(status_as(&server, "bob", "first-pw"), 401);
    assert_eq!(status_as(&server, "bob", "second-pw"), 207);

    let generated = kura_user(&server, &["passwd", "bob"], None);
    let pw = generated
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("generated password printed");
    assert!(pw.len() >= 20);
    assert_eq!(status_as(&server, "bob", pw), 207);

    kura_user(&server, &["remove", "bob"], None);
    assert_eq!(status_as(&server, "bob", pw), 401);
    assert!(
        !server.log().contains(pw),
        "a password reached the server log"
    );
    assert!(
        !server.log().contains(crate::common::ADMIN_PW),
        "the admin password reached the log"
    );
}

#[test]
fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let server = Server::plain();
    let out = server
        .kura()
        .env("KURA_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .output()
        .expect("second serve");
    assert!(
        !out.status.success(),
        "a second server started on the same data dir"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another kura server is using the data dir"),
        "{err}"
    );
    assert_eq!(
        server.status(&["-X", "PROPFIND", "-H", "Depth: 0", &server.dav("")]),
        207
    );
}
