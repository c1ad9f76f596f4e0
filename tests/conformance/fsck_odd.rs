//! `kura fsck --repair` on a storage tree holding what no upload makes: a named pipe (never
//! recorded: a GET of it would block forever) and a name Kura refuses (reported, and the
//! rest of the repair still done).

use crate::common::Server;

#[test]
fn fsck_repair_skips_pipes_and_refused_names_and_repairs_the_rest() {
    let mut server = Server::plain();
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("odd")]), 201);
    server.stop();
    let dir = server.files_dir().join("odd");
    let fifo = dir.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    std::fs::write(dir.join("new\nline"), b"x").expect("odd name");
    std::fs::write(dir.join("zz-plain"), b"plain bytes").expect("plain file");
    let out = server
        .kura()
        .args(["fsck", "--repair"])
        .output()
        .expect("fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("/odd/zz-plain"), "{text}");
    server.start_again();
    // the plain file was recorded although a refused name came before it
    assert_eq!(server.get("odd/zz-plain"), b"plain bytes", "{text}");
    // the pipe was not: a GET answers at once instead of blocking on it
    let pipe = server.curl_admin(&[
        "-m",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &server.dav("odd/pipe"),
    ]);
    assert_eq!(String::from_utf8_lossy(&pipe.stdout), "404", "{text}");
}
