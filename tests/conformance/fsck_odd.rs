//! `kura fsck --repair` on a storage tree holding what no upload makes: a named pipe (never
//! recorded: a GET of it would block forever) and a name Kura refuses (reported, and the
//! rest of the repair still done), and the red team's attacks on a files/ folder changed
//! behind Kura's back: links to host files, names not UTF-8 or not NFC, type swaps, empty
//! folders without a row.

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

/// Runs `kura fsck` with `args`: whether it succeeded, and what it printed.
fn fsck(server: &Server, args: &[&str]) -> (bool, String) {
    let out = server.kura().arg("fsck").args(args).output().expect("fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The line of `text` that names `path` after `what: `.
fn line<'a>(text: &'a str, what: &str, path: &str) -> &'a str {
    let start = format!("{what}: {path}");
    text.lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no line {start:?} in:\n{text}"))
}

/// Red team F8: links under files/ to host files (one in place of a recorded file) were
/// recorded by `--repair` and served. They are reported, never recorded nor followed, and
/// the row of the replaced file goes.
#[test]
fn fsck_repair_never_records_links_to_host_files() {
    let mut server = Server::plain();
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("odd")]), 201);
    assert_eq!(server.put("odd/was.txt", b"mine"), 201);
    server.stop();
    let dir = server.files_dir().join("odd");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).expect("link");
    std::os::unix::fs::symlink("/etc", dir.join("etc")).expect("link");
    std::fs::remove_file(dir.join("was.txt")).expect("rm");
    std::os::unix::fs::symlink("/etc/hostname", dir.join("was.txt")).expect("link");
    let (ok, text) = fsck(&server, &[]);
    assert!(!ok, "{text}");
    for p in ["/odd/etc", "/odd/passwd", "/odd/was.txt"] {
        line(&text, "symlink, not recorded", p);
    }
    let (ok, text) = fsck(&server, &["--repair"]);
    assert!(!ok, "links are left for a person: {text}");
    for p in ["/odd/etc", "/odd/passwd", "/odd/was.txt"] {
        let l = line(&text, "symlink, not recorded", p);
        assert!(l.ends_with("(left as it is)"), "{l}");
    }
    line(&text, "recorded but not stored", "/odd/was.txt (repaired)");
    server.start_again();
    for p in ["odd/passwd", "odd/was.txt", "odd/etc/passwd", "odd/etc"] {
        let got = server.status(&[&server.dav(p)]);
        assert_eq!(got, 404, "GET {p}: {text}");
    }
    let listing = server.curl_admin(&["-X", "PROPFIND", "-H", "Depth: 1", &server.dav("odd/")]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        !listing.contains("passwd") && !listing.contains("odd/etc"),
        "{listing}"
    );
    // the links themselves are left
    assert!(dir.join("passwd").symlink_metadata().is_ok());
}

/// Red team F4: `--repair` stopped at a name that is not UTF-8 or not NFC on disk, and at a
/// file and a folder that swapped types, which plain `fsck` did not even report. Each is
/// reported; the swaps are repaired (the disk wins), the names left, and every other entry
/// still repaired.
#[test]
fn fsck_repair_goes_past_odd_names_and_repairs_type_swaps() {
    use std::os::unix::ffi::OsStrExt;
    let mut server = Server::plain();
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("odd")]), 201);
    assert_eq!(server.put("odd/f2d", b"a file"), 201);
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("odd/d2f")]), 201);
    assert_eq!(server.put("odd/d2f/in.txt", b"below"), 201);
    server.stop();
    let dir = server.files_dir().join("odd");
    std::fs::write(
        dir.join(std::ffi::OsStr::from_bytes(b"bad\xff")),
        b"not utf-8",
    )
    .expect("non-UTF-8 name");
    std::fs::write(dir.join("Cafe\u{301}"), b"nfd").expect("NFD name");
    std::fs::remove_file(dir.join("f2d")).expect("rm");
    std::fs::create_dir(dir.join("f2d")).expect("mkdir");
    std::fs::write(dir.join("f2d/inner"), b"now a folder").expect("inner");
    std::fs::remove_dir_all(dir.join("d2f")).expect("rm -r");
    std::fs::write(dir.join("d2f"), b"now a file").expect("file");
    std::fs::write(dir.join("zz-plain"), b"plain bytes").expect("plain file");
    let (ok, text) = fsck(&server, &[]);
    assert!(!ok, "{text}");
    line(&text, "recorded as a file, a folder on disk", "/odd/f2d");
    line(&text, "recorded as a folder, a file on disk", "/odd/d2f");
    line(
        &text,
        "not recorded: a name Kura refuses",
        "/odd/bad\\xff (not UTF-8)",
    );
    line(
        &text,
        "not recorded: a name Kura refuses",
        "/odd/Cafe\u{301} (not in Unicode NFC form)",
    );
    let (ok, text) = fsck(&server, &["--repair"]);
    assert!(!ok, "refused names are left for a person: {text}");
    for (what, p) in [
        ("recorded as a file, a folder on disk", "/odd/f2d"),
        ("recorded as a folder, a file on disk", "/odd/d2f"),
        ("stored but not recorded", "/odd/f2d/inner"),
        ("stored but not recorded", "/odd/zz-plain"),
    ] {
        assert!(line(&text, what, p).ends_with("(repaired)"), "{text}");
    }
    for p in ["/odd/bad\\xff", "/odd/Cafe\u{301}"] {
        let l = line(&text, "not recorded: a name Kura refuses", p);
        assert!(l.ends_with("(left as it is)"), "{l}");
    }
    // only the refused names remain
    let (_, again) = fsck(&server, &[]);
    let drift: Vec<&str> = again
        .lines()
        .filter(|l| l.contains(": /"))
        .filter(|l| !l.starts_with("not recorded: a name Kura refuses"))
        .collect();
    assert!(drift.is_empty(), "{again}");
    server.start_again();
    assert_eq!(server.get("odd/f2d/inner"), b"now a folder");
    assert_eq!(server.get("odd/d2f"), b"now a file");
    assert_eq!(server.get("odd/zz-plain"), b"plain bytes");
    // the old row below the folder went with it: d2f is a file now
    let below = server.status(&[&server.dav("odd/d2f/in.txt")]);
    assert!(below == 404 || below == 409, "{below}");
}

/// Red team F5: an empty folder without a row was removed by `--repair` without a word, and
/// a name Kura refuses was printed "(repaired)" though it was not recorded.
#[test]
fn fsck_reports_unrecorded_empty_folders_and_never_claims_a_refused_name_repaired() {
    let mut server = Server::plain();
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("odd")]), 201);
    server.stop();
    let dir = server.files_dir().join("odd");
    std::fs::create_dir(dir.join("hollow")).expect("mkdir");
    std::fs::write(dir.join("tab\tname"), b"x").expect("odd name");
    let (ok, text) = fsck(&server, &[]);
    assert!(!ok, "{text}");
    line(&text, "empty folder without a row", "/odd/hollow");
    line(
        &text,
        "not recorded: a name Kura refuses",
        "/odd/tab\\tname",
    );
    let (ok, text) = fsck(&server, &["--repair"]);
    assert!(!ok, "{text}");
    assert!(
        line(&text, "empty folder without a row", "/odd/hollow").ends_with("(removed)"),
        "{text}"
    );
    let refused = line(
        &text,
        "not recorded: a name Kura refuses",
        "/odd/tab\\tname",
    );
    assert!(!refused.contains("(repaired)"), "{refused}");
    assert!(!dir.join("hollow").exists());
    assert!(dir.join("tab\tname").exists());
}

/// Red team F8, in the versions store: kept bytes replaced by a link to a host file of the
/// same length were served as that version. The link is reported and never read, and its
/// version is forgotten by `--repair`.
#[test]
fn fsck_never_reads_a_kept_version_through_a_link() {
    let mut server = Server::plain();
    crate::common::run(server.kura().args(["group", "add", "g"]));
    crate::common::run(
        server
            .kura()
            .args(["bucket", "create", "b", "--group", "g"]),
    );
    assert_eq!(server.put("b/f.txt", b"one"), 201);
    assert_eq!(server.put("b/f.txt", b"two!"), 204);
    server.stop();
    let kept: Vec<std::path::PathBuf> = walkdir(&server.data_dir().join("versions"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    let host = server.data_dir().with_file_name("host-secret");
    std::fs::write(&host, b"SEC").expect("host file");
    std::fs::remove_file(&kept[0]).expect("rm");
    std::os::unix::fs::symlink(&host, &kept[0]).expect("link");
    let (ok, text) = fsck(&server, &[]);
    assert!(!ok, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("symlink, not recorded: versions/")),
        "{text}"
    );
    let (_, text) = fsck(&server, &["--repair"]);
    let listed = crate::common::run(
        server
            .kura()
            .args(["versions", "list", "/b/f.txt", "--json"]),
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).expect("json");
    assert!(listed.is_empty(), "{listed:?}\n{text}");
    assert!(kept[0].symlink_metadata().is_ok(), "the link is left");
}

/// Every file below `dir`, links included.
fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// A type swap below an S3 implicit folder: dropping the file's row prunes the folder above
/// it (it holds nothing else), which `--repair` records again from disk before the new
/// folder, instead of failing on a missing parent.
#[test]
fn fsck_repairs_a_type_swap_below_an_implicit_folder() {
    let mut server = Server::plain();
    {
        let key = server.s3_key();
        let aws = |args: &[&str]| crate::common::run(server.aws(&key).args(args));
        aws(&["s3", "mb", "s3://imp"]);
        let body = server.data_dir().with_file_name("body.txt");
        std::fs::write(&body, b"a file").expect("body");
        let body = body.to_str().expect("utf8").to_string();
        aws(&[
            "s3api",
            "put-object",
            "--bucket",
            "imp",
            "--key",
            "p/x",
            "--body",
            &body,
        ]);
    }
    server.stop();
    let p = server.files_dir().join("imp/p");
    std::fs::remove_file(p.join("x")).expect("rm");
    std::fs::create_dir(p.join("x")).expect("mkdir");
    std::fs::write(p.join("x/inner"), b"now a folder").expect("inner");
    let (ok, text) = fsck(&server, &["--repair"]);
    assert!(ok, "{text}");
    assert!(
        line(&text, "recorded as a file, a folder on disk", "/imp/p/x").ends_with("(repaired)"),
        "{text}"
    );
    assert!(
        line(&text, "stored but not recorded", "/imp/p/x/inner").ends_with("(repaired)"),
        "{text}"
    );
    let (ok, again) = fsck(&server, &[]);
    assert!(ok, "{again}");
    server.start_again();
    assert_eq!(server.get("imp/p/x/inner"), b"now a folder");
}
