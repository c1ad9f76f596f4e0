//! The browser app in a real headless Chromium (Debian `chromium` and `chromium-driver`,
//! driven by Selenium from PyPI; `scripts/test.sh` installs them): each test starts a real
//! server, sets up files with real clients, then runs a Python script of
//! `tests/conformance/browser/` and asserts its exit code. Screenshots land in
//! `target/web-screenshots/` as artefacts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{require, run, sha256_file, Server, ADMIN_PW};

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
/// violation in the console; one whose name holds a right-to-left override does not read
/// as another name (`invoice_exe.pdf`).
#[test]
fn browser_hostile_file_name_is_text() {
    let s = server();
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("web")]), 201);
    let name = "<img src=x onerror=alert(1)>.txt";
    let escaped = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    assert_eq!(s.put(&format!("web/{escaped}"), b"hello\n"), 201);
    // a right-to-left override, kept by the server (WebDAV and S3 clients may carry it)
    assert_eq!(s.put("web/invoice_%E2%80%AEfdp.exe", b"MZ\n"), 201);
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
/// copy, new folder, delete, restore from the trash; a zip of a selection checked entry by entry. The stored
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
    assert!(s.get("web/album/empty.txt").is_empty());
    assert_eq!(s.get("web/album/renamed.txt"), b"alpha\n".repeat(10));
    assert_eq!(
        s.status(&["-X", "PROPFIND", "-H", "Depth: 0", &s.dav("web/made")]),
        207
    );
    assert_eq!(s.get("web/album/deeper/two.txt"), b"two\n".repeat(50));
    assert_eq!(s.get("web/album/deeper/b.txt"), b"bravo\n".repeat(1000));
    assert_eq!(s.status(&[&s.dav("web/a.txt")]), 404);
    assert_eq!(s.status(&[&s.dav("web/b.txt")]), 404);
}

/// Search by a tag set through S3 PutObjectTagging; the result opens its folder in place.
#[test]
fn browser_search_by_tag() {
    let s = server_with_bucket();
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("web/docs")]), 201);
    assert_eq!(s.put("web/docs/tagged.txt", b"tagged\n"), 201);
    assert_eq!(s.put("web/docs/other.txt", b"other\n"), 201);
    let key = s.s3_key();
    run(s.aws(&key).args([
        "s3api",
        "put-object-tagging",
        "--bucket",
        "web",
        "--key",
        "docs/tagged.txt",
        "--tagging",
        "TagSet=[{Key=project,Value=kura}]",
    ]));
    browse(&s, "search_tag.py", admin(), &[]);
}

/// A 10,000-entry folder renders (virtualised); the time is printed as a figure.
#[test]
fn browser_ten_thousand_entries() {
    let s = server_with_bucket();
    let out = browse(&s, "big_folder.py", admin(), &[]);
    assert!(out.contains("figure: 10,000-entry folder"), "{out}");
}

/// A 200 MiB upload through the app, the server killed and started again in its middle: the
/// app resumes from the kept offset and the stored file equals the source byte for byte.
#[test]
fn browser_big_upload_survives_a_restart() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;

    let mut s = server_with_bucket();
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.bin");
    let mut child = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/browser/big_upload.py"))
        .env("KURA_URL", s.url(""))
        .env("KURA_USER", "admin")
        .env("KURA_PASSWORD", ADMIN_PW)
        .env("KURA_SCREENSHOTS", screenshots())
        .env("KURA_BIG_FILE", &big)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut restarted = false;
    for line in stdout.lines() {
        let line = line.expect("line");
        println!("{line}");
        if line.starts_with("RESTART") {
            s.kill9();
            s.start_again();
            restarted = true;
            writeln!(stdin, "GO").expect("GO");
        }
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "big_upload.py failed");
    assert!(restarted, "the script never asked for the restart");
    // read back over WebDAV, as any client sees it
    let back = dir.path().join("back.bin");
    let back_arg = back.to_str().expect("utf8");
    let out = s.curl_admin(&["-f", "-o", back_arg, &s.dav("web/big.bin")]);
    assert!(out.status.success(), "GET big.bin failed");
    assert_eq!(sha256_file(&back), sha256_file(&big));
}

/// French and a phone-sized dark window, the keyboard, labels, the lock and the quota meter
/// shown to a member of the bucket's group; saves
/// the screenshots of docs/screenshots/ (`KURA_DOCS_SHOTS=docs/screenshots` refreshes them).
#[test]
fn browser_tour_language_phone_keyboard_lock() {
    let s = server();
    run(s.kura().args(["group", "add", "family"]));
    s.add_user("ann", "ann-password-1", &["--group", "family"]);
    run(s.kura().args([
        "bucket", "create", "photos", "--group", "family", "--owner", "ann",
    ]));
    run(s.kura().args(["quota", "set", "family", "--bytes", "1GiB"]));
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("photos/2025")]), 201);
    assert_eq!(s.put("photos/2025/beach.jpg", &[0xff; 300_000]), 201);
    assert_eq!(s.put("photos/report.pdf", &[b'%'; 120_000]), 201);
    assert_eq!(
        s.put("photos/notes.md", b"# Holidays\n\nBring the tent.\n"),
        201
    );
    let lock = lock_as_admin(&s, &s.dav("photos/report.pdf"), "admin");
    assert_eq!(crate::common::code(&lock), 200);
    let docs = std::env::var("KURA_DOCS_SHOTS").unwrap_or_default();
    browse(
        &s,
        "tour.py",
        ("ann", "ann-password-1"),
        &[("KURA_DOCS_SHOTS", &docs)],
    );
}

/// The first load (page, script, style) stays under 150 KB gzip-compressed; prints the figure.
#[test]
fn app_first_load_under_budget() {
    let s = Server::plain();
    let mut total = 0;
    for path in [
        "/app/",
        "/app/app.js",
        "/app/view.js",
        "/app/admin.js",
        "/app/app.css",
    ] {
        let out = run(Command::new("sh")
            .arg("-c")
            .arg(format!("curl -sSf '{}' | gzip -9c | wc -c", s.url(path))));
        let n: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("size");
        println!("figure: {path} is {n} bytes gzip-compressed");
        total += n;
    }
    println!("figure: first load {total} bytes gzip-compressed");
    assert!(total < 150_000, "first load is {total} bytes compressed");
}

/// An upload cut by a page reload resumes when the same file is picked again, from the
/// offset the server kept; the stored file equals the source.
#[test]
fn browser_upload_resumes_after_reload() {
    let s = server_with_bucket();
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("reloaded.bin");
    let big_arg = big.to_str().expect("utf8");
    browse(
        &s,
        "reload_resume.py",
        admin(),
        &[("KURA_BIG_FILE", big_arg)],
    );
    let back = dir.path().join("back.bin");
    let back_arg = back.to_str().expect("utf8");
    let out = s.curl_admin(&["-f", "-o", back_arg, &s.dav("web/reloaded.bin")]);
    assert!(out.status.success(), "GET reloaded.bin failed");
    assert_eq!(sha256_file(&back), sha256_file(&big));
}

/// The app never hands a string to the HTML parser: user data goes in through `textContent`
/// (and attributes), so a name can never become markup.
#[test]
fn app_script_never_parses_html() {
    let js = [
        include_str!("../../src/app/assets/app.js"),
        include_str!("../../src/app/assets/view.js"),
        include_str!("../../src/app/assets/admin.js"),
    ]
    .concat();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "createContextualFragment",
        "DOMParser",
        "eval(",
        "new Function",
    ] {
        assert!(!js.contains(sink), "the app uses {sink}");
    }
}

/// An older version restored from a file's details; a file dropped on the page uploaded.
#[test]
fn browser_versions_restore_and_drop_upload() {
    let s = server_with_bucket();
    assert_eq!(s.put("web/notes.txt", b"v1\n"), 201);
    assert_eq!(s.put("web/notes.txt", b"version two\n"), 204);
    browse(&s, "versions_drop.py", admin(), &[]);
    assert_eq!(s.get("web/notes.txt"), b"v1\n");
    assert_eq!(s.get("web/dropped.txt"), b"dropped bytes\n");
}

/// Previews of an image, a PDF, a text file and Markdown with next/previous; tags set in the
/// app then found by search; an old version downloaded; a share link made in the app and
/// opened in a fresh browser profile, which downloads the file. No CSP violation, no alert.
#[test]
fn browser_previews_tags_versions_and_share() {
    let s = server_with_bucket();
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("web/pics")]), 201);
    let jpg = crate::user_previews::jpeg(640, 480, Some(6));
    assert_eq!(s.put("web/pics/a.jpg", &jpg), 201);
    assert_eq!(
        s.put("web/pics/b.png", &crate::user_previews::png(32, 32, false)),
        201
    );
    assert_eq!(s.put("web/pics/doc.pdf", MINIMAL_PDF.as_bytes()), 201);
    assert_eq!(s.put("web/pics/notes.txt", b"v1\n"), 201);
    assert_eq!(s.put("web/pics/notes.txt", b"version two\n"), 204);
    let md = "# Holiday\n\nSome **bold** and `code`, a [link](https://example.com/) and \
              [bad](javascript:alert(2)).\n\n<script>alert(1)</script>\n\n- one\n- two\n";
    assert_eq!(s.put("web/pics/readme.md", md.as_bytes()), 201);
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("a.jpg");
    std::fs::write(&source, &jpg).expect("write");
    let downloads = dir.path().join("downloads");
    std::fs::create_dir(&downloads).expect("mkdir");
    let out = browse(
        &s,
        "previews.py",
        admin(),
        &[
            ("KURA_DOWNLOADS", downloads.to_str().expect("utf-8")),
            ("KURA_SOURCE_JPG", source.to_str().expect("utf-8")),
        ],
    );
    assert!(out.contains("previews: ok"), "{out}");
}

/// A one-page PDF with a line of text (no xref table: readers rebuild it, as for a damaged file).
const MINIMAL_PDF: &str = "%PDF-1.4
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >> endobj
4 0 obj << /Length 44 >> stream
BT /F1 24 Tf 40 70 Td (Kura PDF) Tj ET
endstream endobj
5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj
trailer << /Root 1 0 R >>
%%EOF
";

/// The admin console: the administrator creates a group, a user and a quota; the new user
/// signs in in a fresh browser and sees only her group's bucket, no console, and the admin
/// API refuses her session.
#[test]
fn browser_admin_console_user_group_quota() {
    let s = server();
    run(s.kura().args(["group", "add", "staff"]));
    run(s
        .kura()
        .args(["bucket", "create", "photos", "--group", "staff"]));
    run(s.kura().args(["chmod", "770", "/photos"]));
    assert_eq!(s.put("photos/beach.txt", b"sand\n"), 201);
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("secret")]), 201);
    run(s.kura().args(["chmod", "700", "/secret"]));
    browse(&s, "admin_console.py", admin(), &[]);
    // what the console did is what the CLI sees
    let out = run(s.kura().args(["user", "list"]));
    let users = String::from_utf8_lossy(&out.stdout);
    assert!(users.contains("eve"), "{users}");
    assert!(!users.contains("mallory"), "{users}");
    let out = run(s.kura().args(["usage", "staff"]));
    let usage = String::from_utf8_lossy(&out.stdout);
    assert!(
        usage.contains("2.0 GB") || usage.contains("2000000000"),
        "{usage}"
    );
}

/// The console lists a share link and a WebDAV lock on a file named like markup (the lock's
/// owner is markup too) as text, breaks the lock and revokes the link: afterwards a write
/// without the lock token succeeds and the link answers 404.
#[test]
fn browser_admin_breaks_a_webdav_lock_hostile_names_are_text() {
    let s = server_with_bucket();
    let name = "<img src=x onerror=alert(1)>.txt";
    let escaped = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    let file = format!("web/{escaped}");
    assert_eq!(s.put(&file, b"hello\n"), 201);
    let lock = lock_as_admin(&s, &s.dav(&file), "&lt;img src=x onerror=alert(2)&gt;");
    assert_eq!(crate::common::code(&lock), 200);
    assert_eq!(s.put(&file, b"blocked\n"), 423);
    let out = run(s
        .kura()
        .args(["share", "create", &format!("/web/{name}"), "--json"]));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("share json");
    let url = created["url"].as_str().expect("url").to_string();
    let link = |u: &str| {
        let out = s.curl(&["-s", "-o", "/dev/null", "-w", "%{http_code}", u]);
        crate::common::code(&out)
    };
    assert_eq!(link(&url), 200);
    browse(&s, "admin_locks.py", admin(), &[]);
    assert_eq!(s.put(&file, b"free again\n"), 204);
    assert_eq!(link(&url), 404);
}

/// Takes an hour's exclusive WebDAV lock on `url` as the admin, with `owner` (XML) as the
/// lock's owner: curl's output, whose status `code` reads.
fn lock_as_admin(s: &Server, url: &str, owner: &str) -> std::process::Output {
    let body = format!(
        "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>{owner}</D:owner></D:lockinfo>"
    );
    s.curl_admin(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "LOCK",
        "-H",
        "Timeout: Second-3600",
        "-H",
        "Content-Type: application/xml",
        "--data",
        &body,
        url,
    ])
}

/// A two-page PDF whose opening action is JavaScript is shown page by page as images the
/// server rendered (no PDF viewer, no frame, no alert); a file that only starts like a PDF,
/// and a PDF of a few KB whose nested forms would draw four billion squares, each end in an
/// error message within a bounded time, and the server goes on serving.
#[test]
fn browser_pdf_pages_are_images_and_hostile_pdfs_fail_in_bounded_time() {
    let s = server_with_bucket();
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("web/docs")]), 201);
    let files = [
        ("a-script.pdf", crate::pdfs::two_pages_with_script()),
        ("b-garbage.pdf", crate::pdfs::garbage()),
        ("c-bomb.pdf", crate::pdfs::bomb()),
    ];
    for (name, bytes) in &files {
        assert_eq!(s.put(&format!("web/docs/{name}"), bytes), 201);
    }
    let out = browse(&s, "pdf_preview.py", admin(), &[]);
    assert!(out.contains("figure: hostile PDF refused in"), "{out}");
    assert_eq!(s.get("web/docs/a-script.pdf"), files[0].1);
}

/// Two-factor authentication in the browser: turned on in the account page, then a sign-in
/// needs the code (a wrong one refused), a recovery code works once, and the administrator
/// resets it from the console.
#[test]
fn browser_two_factor_sign_in_recovery_code_and_admin_reset() {
    let s = server();
    s.add_user("tina", "tina-password-1", &[]);
    browse(
        &s,
        "two_factor.py",
        admin(),
        &[
            ("KURA_2FA_USER", "tina"),
            ("KURA_2FA_PASSWORD", "tina-password-1"),
        ],
    );
}

/// A WAV (written by the script) and a small WebM video (`fixtures/clip.webm`) preview in
/// `<audio>` and `<video>`: their metadata loads, and the server answers the browser's
/// Range requests with 206.
#[test]
fn browser_audio_and_video_previews_use_ranges() {
    let s = server_with_bucket();
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("web/media")]), 201);
    let clip = include_bytes!("fixtures/clip.webm");
    assert_eq!(s.put("web/media/clip.webm", clip), 201);
    let out = browse(&s, "media.py", admin(), &[]);
    assert!(out.contains("tone.wav: 206 bytes"), "{out}");
    assert!(out.contains("clip.webm: 206 bytes"), "{out}");
}

/// A drop box link opened in a fresh browser: the page's one script runs under the share
/// pages' Content-Security-Policy (named by its hash: no CSP violation), the chosen file is
/// added, and the page says it may not be framed.
#[test]
fn browser_drop_box_uploads_under_its_policy() {
    let s = server_with_bucket();
    let out = run(s
        .kura()
        .args(["share", "create", "/web", "--upload-only", "--json"]));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("share json");
    let url = created["url"].as_str().expect("url").to_string();
    let head = s.curl(&[
        "-s",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        "Accept: text/html",
        &url,
    ]);
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    for h in [
        "content-security-policy: default-src 'none'",
        "frame-ancestors 'none'",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
    ] {
        assert!(head.contains(h), "{h} missing: {head}");
    }
    let printed = browse(&s, "drop_box.py", admin(), &[("KURA_DROP_URL", &url)]);
    let name = printed
        .lines()
        .find(|l| l.starts_with("dropped-"))
        .expect("the dropped file's name")
        .trim()
        .to_string();
    assert_eq!(
        s.get(&format!("web/{name}")),
        b"sent through the drop box\n"
    );
}
