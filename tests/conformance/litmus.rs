//! litmus, the WebDAV compliance suite: every suite must pass at 100%.

use std::process::Command;

use crate::common::{require, Server, ADMIN_PW};

/// Warnings litmus may print that are understood and accepted; anything else fails the run.
const ALLOWED_WARNINGS: &[(&str, &str)] = &[(
    "DELETE removed collection resource with Request-URI including fragment",
    "the http crate drops a URI fragment while parsing the request line, so the server \
     never sees it and deletes the resource named without it, as Apache mod_dav does",
)];

const SUITES: &[&str] = &["basic", "copymove", "props", "locks", "http"];

#[test]
fn litmus_suites_pass_completely() {
    check(&Server::plain());
}

/// Runs every suite against `server` and fails unless each passes at 100%.
pub(crate) fn check(server: &Server) {
    require("litmus");
    let cwd = tempfile::tempdir().expect("cwd"); // litmus writes debug.log and child.log here
    let out = Command::new("litmus")
        .current_dir(cwd.path())
        .env("TESTS", SUITES.join(" "))
        .arg(server.dav(""))
        .arg("admin")
        .arg(ADMIN_PW)
        .output()
        .expect("run litmus");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for suite in SUITES {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("summary for `{suite}'")))
            .unwrap_or_else(|| panic!("litmus did not run suite {suite}:\n{text}"));
        println!("litmus {line}");
        assert!(
            line.contains(" 0 failed") && line.contains("100.0%"),
            "suite {suite} not at 100%: {line}\n{text}"
        );
    }
    for l in text.lines().filter(|l| l.contains("WARNING")) {
        assert!(
            ALLOWED_WARNINGS.iter().any(|(w, _)| l.contains(w)),
            "unexplained litmus warning: {l}\n{text}"
        );
    }
    assert!(!text.contains("SKIPPED"), "litmus skipped a test:\n{text}");
    assert!(
        out.status.success(),
        "litmus exited with {}:\n{text}",
        out.status
    );
}
