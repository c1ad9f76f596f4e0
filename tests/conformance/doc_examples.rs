//! Docs stay true: every ```sh block of README.md and docs/*.md runs, in order, against a real
//! server started in a fresh folder as the quick start does; a block that exits non-zero fails
//! the test. A block that cannot run here says so just above its fence, with a reason:
//! `<!-- not-run: needs a second machine -->`. Nothing else is skipped.
//!
//! Each file gets its own folder and server (`kura serve` there, data dir `./kura-data`, TLS
//! on, port on 127.0.0.1), so the blocks of one file build on each other as a reader's
//! commands would. Before a block runs, the placeholders readers replace are replaced:
//! `host:8443` by `localhost:PORT`, `PASSWORD` by the administrator's password, `KURA...` and
//! `SECRET` by an access key of `admin`. The folder holds the files the examples upload
//! (`file`, `pic.jpg`, `report.pdf`, `beach.jpg`, `photos/`) and `cert.pem`, a copy of the
//! server's certificate; `HOME` is the folder, so client configurations stay in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{require, Server};

const MARK: &str = "<!-- not-run:";
const ADMIN_PW: &str = "doc-admin-pw";

/// A fenced `sh` block of a Markdown file.
struct Block {
    line: usize,
    code: String,
    not_run: Option<String>,
}

/// The `sh` blocks of `text`, each with the reason it is not run, if it is marked.
fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() == "```sh" {
            let start = i;
            let mut code = String::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                code.push_str(lines[i]);
                code.push('\n');
                i += 1;
            }
            let before = lines[..start]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim());
            let not_run = before.and_then(|l| {
                let reason = l.strip_prefix(MARK)?.strip_suffix("-->")?.trim();
                Some(reason.to_string())
            });
            if let Some(r) = &not_run {
                assert!(
                    !r.is_empty(),
                    "line {}: a not-run mark needs a reason",
                    start + 1
                );
            }
            out.push(Block {
                line: start + 1,
                code,
                not_run,
            });
        }
        i += 1;
    }
    out
}

/// Replaces `word` where it stands alone (not inside a longer name like `KURA_ADMIN_PASSWORD`).
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + word.len()..].chars().next();
        let part_of_name = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        out.push_str(&rest[..at]);
        if part_of_name(before) || part_of_name(after) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// The documents whose examples run.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root.join("README.md"));
    docs
}

/// A folder with a server and the fixtures, for the blocks of one document.
struct Reader {
    server: Server,
    key: (String, String),
}

impl Reader {
    fn start() -> Reader {
        // the server runs in the reader's folder with the default data dir, as after the quick start
        let server = Server::start_in_folder(&[("KURA_ADMIN_PASSWORD", ADMIN_PW)]);
        let dir = server.root.path();
        for (name, body) in [
            ("file", &b"a file\n"[..]),
            ("pic.jpg", b"not really a jpeg\n"),
            ("report.pdf", b"%PDF-1.4 not really\n"),
            ("beach.jpg", b"sand\n"),
            ("photos/2024/sea.jpg", b"water\n"),
        ] {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, body).expect("fixture");
        }
        std::fs::copy(server.cert(), dir.join("cert.pem")).expect("cert copy");
        let k = server.s3_key();
        Reader {
            server,
            key: (k.id, k.secret),
        }
    }

    /// The block with the reader's placeholders filled in.
    fn fill(&self, code: &str) -> String {
        let code = code.replace("host:8443", &format!("localhost:{}", self.server.port));
        let code = replace_word(&code, "PASSWORD", ADMIN_PW);
        let code = code.replace("KURA...", &self.key.0);
        replace_word(&code, "SECRET", &self.key.1)
    }

    /// Runs one block in the folder; the failure message shows it and its output.
    fn run(&self, doc: &str, b: &Block) -> Result<(), String> {
        let dir = self.server.root.path();
        let script = self.fill(&b.code);
        let bin = Path::new(env!("CARGO_BIN_EXE_kura"))
            .parent()
            .expect("bin dir")
            .to_path_buf();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("timeout");
        c.args(["120", "bash", "-euo", "pipefail", "-c", &script])
            .current_dir(dir)
            .env("HOME", dir)
            .env("PATH", path)
            .stdin(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("KURA_") || k.starts_with("AWS_") || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        let out = c.output().map_err(|e| format!("cannot run bash: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{doc}:{}: the example failed ({}):\n{script}\n--- stdout\n{}\n--- stderr\n{}",
            b.line,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn every_shell_example_of_the_docs_runs() {
    for tool in [
        "curl", "aws", "rclone", "s3cmd", "openssl", "bash", "timeout",
    ] {
        require(tool);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut ran, mut marked, mut failures) = (0, 0, Vec::new());
    for doc in documents() {
        let name = doc
            .strip_prefix(root)
            .expect("in the repo")
            .display()
            .to_string();
        let text = std::fs::read_to_string(&doc).expect("read doc");
        let all = blocks(&text);
        if all.iter().all(|b| b.not_run.is_some()) {
            marked += all.len();
            continue;
        }
        let reader = Reader::start();
        for b in &all {
            if let Some(reason) = &b.not_run {
                println!("{name}:{}: not run: {reason}", b.line);
                marked += 1;
                continue;
            }
            ran += 1;
            if let Err(e) = reader.run(&name, b) {
                failures.push(e);
            }
        }
    }
    println!("doc examples: {ran} run, {marked} marked not-run");
    assert!(ran >= 10, "only {ran} examples ran: are the marks right?");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn marks_and_placeholders_are_read_as_documented() {
    let text = "x\n```sh\necho a\n```\n\n<!-- not-run: needs Windows -->\n\n```sh\necho b\n```\n";
    let b = blocks(text);
    assert_eq!(b.len(), 2);
    assert!(b[0].not_run.is_none() && b[0].code == "echo a\n");
    assert_eq!(b[1].not_run.as_deref(), Some("needs Windows"));
    assert_eq!(
        replace_word(
            "PASSWORD KURA_ADMIN_PASSWORD=x u:PASSWORD",
            "PASSWORD",
            "pw"
        ),
        "pw KURA_ADMIN_PASSWORD=x u:pw"
    );
}
