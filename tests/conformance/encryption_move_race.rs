//! A WebDAV MOVE of a folder into an encrypted bucket while clients overwrite its files and
//! read them at the old and the new path (docs/encryption.md, "Moving files in"): every GET
//! answers a complete body some client wrote, with its ETag and length, or a clean 404, never
//! a 500 or a wrong size; the log holds no "size differs" error; the encrypted bucket holds no
//! plaintext on disk and no row of a plain file or kept version; fsck and usage agree. In the
//! last round the writers never pause: the move still answers (refused after its tries)
//! within a minute, rather than sealing what they keep writing for as long as they write.

use std::process::Command;

use crate::common::{fsck_clean, require, Server, ADMIN_PW};
use crate::encryption::{contains, server_with_buckets, walk};

/// Rounds of the race (a new folder each), and files per folder.
const ROUNDS: &str = "6";
const FILES: &str = "50";

#[test]
fn a_folder_moved_into_an_encrypted_bucket_under_writers_and_readers_serves_no_error() {
    require("python3");
    let s = server_with_buckets();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/encryption_move_race.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args([&s.port.to_string(), ADMIN_PW, ROUNDS, FILES])
        .output()
        .expect("python3");
    let report = String::from_utf8_lossy(&out.stdout).trim().to_string();
    println!("move race: {report}");
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&report).expect("one JSON line");
    let n = |k: &str| v["counts"][k].as_u64().unwrap_or(0);
    assert_eq!(n("bad"), 0, "odd answers: {report}");
    assert!(
        n("good_gets") > 100,
        "too few GETs to mean anything: {report}"
    );
    assert!(n("moves_ok") > 0, "no move went through: {report}");
    let log = s.log();
    assert!(
        !log.contains("differs from its record"),
        "a reader met bytes its row does not describe:\n{log}"
    );
    check_sealed(&s);
    fsck_clean(&s);
}

/// Nothing plain in the encrypted bucket: no stored file holding the pattern, no row of a
/// current file or kept version recorded plain (or left marked as switching).
fn check_sealed(s: &Server) {
    let plain: Vec<_> = walk(&s.files_dir().join("sec"))
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| contains(&b, b"KNOWN-PATTERN")))
        .collect();
    assert!(
        plain.is_empty(),
        "plaintext in the encrypted bucket: {plain:?}"
    );
    let db = s.data_dir().join("kura.db");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             q = lambda t, w: c.execute(f\"SELECT count(*) FROM {t} WHERE path LIKE '/sec/%' \
             AND (sealed IS NULL OR sealed LIKE '%~either') AND {w}\").fetchone()[0]; \
             print(q('entries', 'is_dir = 0'), \
             q('versions', 'batch IS NULL AND marker = 0 AND key IS NOT NULL'))",
            db.to_str().expect("utf8"),
        ])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        text,
        "0 0",
        "plain (files, kept versions) recorded in the encrypted bucket: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
