//! The browser app in a real headless Chromium (Debian `chromium` and `chromium-driver`,
//! driven by Selenium from PyPI; `scripts/test.sh` installs them): each test starts a real
//! server, sets up files with real clients, then runs a Python script of
//! `tests/conformance/browser/` and asserts its exit code. Screenshots land in
//! `target/web-screenshots/` as artefacts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{require, run, Server, ADMIN_PW};

/// Where the scripts save their screenshots.
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots")
}

/// Fails loudly without Chromium, its driver or Selenium.
fn require_browser() {
    require("chromium");
    require("chromedriver");
    require("python3");
    let ok = Command::new("python3")
        .args(["-c", "import selenium"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "Python's selenium is not installed; run ./scripts/test.sh, which installs it"
    );
}

/// An HTTPS server (the session cookie is `__Host-` and Secure, as in production).
fn server() -> Server {
    require_browser();
    Server::start(true)
}

/// Runs `browser/<script>` against `server` as `user`, with extra environment; fails with
/// its output unless it exits 0. Returns its standard output.
fn browse(server: &Server, script: &str, user: (&str, &str), env: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/browser")
        .join(script);
    let mut c = Command::new("python3");
    c.arg(path)
        .env("KURA_URL", server.url(""))
        .env("KURA_USER", user.0)
        .env("KURA_PASSWORD", user.1)
        .env("KURA_SCREENSHOTS", screenshots())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(&mut c);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{}", text.trim());
    text
}

fn admin() -> (&'static str, &'static str) {
    ("admin", ADMIN_PW)
}

/// Sign in, sign out; a wrong password is refused, then the address is throttled (the
/// right password too).
#[test]
fn browser_sign_in_out_and_throttle() {
    let s = server();
    browse(&s, "sign_in.py", admin(), &[]);
}

/// A file named like markup is shown as text: no alert, no `<img>` in the page, no CSP
/// violation in the console.
#[test]
fn browser_hostile_file_name_is_text() {
    let s = server();
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("web")]), 201);
    let name = "<img src=x onerror=alert(1)>.txt";
    let escaped = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    assert_eq!(s.put(&format!("web/{escaped}"), b"hello\n"), 201);
    browse(&s, "hostile_name.py", admin(), &[]);
}

/// A form on another site posting to the user API with the signed-in browser's cookies is
/// refused, and the file it tried to restore stays deleted.
#[test]
fn browser_cross_site_form_post_is_refused() {
    let s = server();
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("web")]), 201);
    assert_eq!(s.put("web/deleted.txt", b"gone\n"), 201);
    assert_eq!(s.status(&["-X", "DELETE", &s.dav("web/deleted.txt")]), 204);
    browse(&s, "cross_site.py", admin(), &[]);
    assert_eq!(s.status(&[&s.dav("web/deleted.txt")]), 404);
}

/// A server with the bucket `web`, made over WebDAV by the admin.
fn server_with_bucket() -> Server {
    let s = server();
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("web")]), 201);
    s
}

/// Upload three files and a folder by the file inputs; browse, sort, rename, chmod, move,
/// delete, restore from the trash; a zip of a selection checked entry by entry. The stored
/// bytes are then read back over WebDAV.
#[test]
fn browser_files_upload_browse_change_zip() {
    let s = server_with_bucket();
    let downloads = tempfile::tempdir().expect("tempdir");
    let dl = downloads.path().to_str().expect("utf8");
    browse(&s, "files.py", admin(), &[("KURA_DOWNLOADS", dl)]);
    assert_eq!(s.get("web/renamed.txt"), b"alpha\n".repeat(10));
    assert_eq!(s.get("web/c.txt"), b"charlie\n".repeat(100));
    assert_eq!(s.get("web/album/one.txt"), b"one\n");
    assert_eq!(s.get("web/album/deeper/two.txt"), b"two\n".repeat(50));
    assert_eq!(s.get("web/album/deeper/b.txt"), b"bravo\n".repeat(1000));
    assert_eq!(s.status(&[&s.dav("web/a.txt")]), 404);
    assert_eq!(s.status(&[&s.dav("web/b.txt")]), 404);
}
