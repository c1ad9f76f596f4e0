//! What an installer or a packager uses, run for real: `kura --version` with the commit, shell
//! completions a shell accepts, man pages, JSON logs, the systemd unit checked by systemd's own
//! analyzer, and the container's build stage kept equal to the README's build command (no
//! Docker engine here, so the image itself is not built).

use std::path::Path;
use std::process::Command;

use crate::common::{require, run, Server};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn kura() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kura"));
    c.env_remove("KURA_CONFIG");
    c
}

#[test]
fn version_names_the_release_and_the_git_commit() {
    let out = run(kura().arg("--version"));
    let v = String::from_utf8_lossy(&out.stdout);
    let head = run(Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(ROOT));
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert_eq!(
        v.trim(),
        format!("kura {} ({head})", env!("CARGO_PKG_VERSION")),
        "the binary was built from another commit than the checkout's"
    );
}

#[test]
fn completions_parse_in_their_shell_and_man_pages_name_every_command() {
    require("bash");
    let out = run(kura().args(["completions", "bash"]));
    let script = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(script.path(), &out.stdout).expect("write");
    // bash -n: the script parses; sourcing it registers the completion function for `kura`
    run(Command::new("bash").arg("-n").arg(script.path()));
    let check = run(Command::new("bash").arg("-c").arg(format!(
        "source {} && complete -p kura",
        script.path().display()
    )));
    assert!(String::from_utf8_lossy(&check.stdout).contains("kura"));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = run(kura().args(["completions", shell]));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("completions"),
            "{shell} completions lack the commands"
        );
    }
    let bad = kura().args(["completions", "tcsh"]).output().expect("kura");
    assert!(!bad.status.success(), "an unknown shell was accepted");

    let dir = tempfile::tempdir().expect("tempdir");
    run(kura().arg("man").arg(dir.path()));
    let top = std::fs::read_to_string(dir.path().join("kura.1")).expect("kura.1");
    assert!(
        top.starts_with(".ie") || top.contains(".TH kura 1"),
        "{top}"
    );
    assert!(top.contains(env!("CARGO_PKG_VERSION")));
    for page in [
        "kura-serve.1",
        "kura-completions.1",
        "kura-man.1",
        "kura-user-add.1",
    ] {
        assert!(dir.path().join(page).is_file(), "no {page}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_the_access_fields() {
    let s = Server::start_with(false, &[("KURA_LOG_FORMAT", "json")]);
    assert_eq!(s.status(&["-X", "MKCOL", &s.dav("b")]), 201);
    assert_eq!(s.put("b/hello.txt", b"hello"), 201);
    let log = s.log();
    let mut access = None;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                assert!(
                    v.get("timestamp").is_some() && v.get("level").is_some(),
                    "{line}"
                );
                if v["target"] == "kura::access" && v["method"] == "PUT" {
                    access = Some(v);
                }
            }
            // the first start prints the admin password and the addresses on stdout for
            // people; every log event is JSON
            Err(_) => assert!(
                !line.contains(" INFO ") && !line.contains(" WARN ") && !line.contains(" ERROR "),
                "a log line in text: {line}"
            ),
        }
    }
    let a = access.unwrap_or_else(|| panic!("no access line for the PUT:\n{log}"));
    assert_eq!(a["status"], 201);
    assert_eq!(a["path"], "/dav/b/hello.txt");
    assert_eq!(a["user"], "admin");

    // a format that does not exist stops every command, naming the setting
    let out = kura()
        .arg("status")
        .env("KURA_LOG_FORMAT", "xml")
        .env("KURA_DATA_DIR", s.data_dir())
        .output()
        .expect("kura");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("log_format"));
}

#[test]
fn systemd_unit_passes_systemd_analyze_and_keeps_its_sandbox() {
    require("systemd-analyze");
    let unit = std::fs::read_to_string(Path::new(ROOT).join("dist/kura.service")).expect("unit");
    for must in [
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/kura",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "AmbientCapabilities=\n",
        "Environment=KURA_DATA_DIR=/var/lib/kura",
    ] {
        assert!(unit.contains(must), "dist/kura.service lacks {must:?}");
    }
    // analyzed with this build's binary in place of the installed path
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("kura.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/kura", env!("CARGO_BIN_EXE_kura")),
    )
    .expect("write");
    run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy));
    // exposure 0 (locked down) to 10 (unsafe), in tenths: at most 2.0
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&copy)
        .output()
        .expect("systemd-analyze security");
    assert!(
        out.status.success(),
        "the unit's exposure rose above 2.0:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn dockerfile_build_stage_runs_the_readme_build_command() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README");
    let build = readme
        .lines()
        .find(|l| l.starts_with("cargo build "))
        .expect("the README gives a `cargo build` command");
    let readme_cmd = build.split('#').next().unwrap_or("").trim();
    let docker =
        std::fs::read_to_string(Path::new(ROOT).join("docker/Dockerfile")).expect("Dockerfile");
    let stage: Vec<&str> = docker
        .lines()
        .skip_while(|l| !l.starts_with("FROM "))
        .skip(1)
        .take_while(|l| !l.starts_with("FROM "))
        .collect();
    let runs: Vec<&str> = stage
        .iter()
        .filter_map(|l| l.strip_prefix("RUN "))
        .map(str::trim)
        .collect();
    assert_eq!(runs, [readme_cmd], "docker/Dockerfile's build stage");
    // the binary the README names is the one the image copies
    let binary = build
        .split("the binary is ")
        .nth(1)
        .expect("README names the binary")
        .trim();
    assert!(
        docker.contains(&format!(
            "COPY --from=build /src/{binary} /usr/local/bin/kura"
        )),
        "the image does not copy {binary}"
    );
    // its Rust image is at least the rust-version of Cargo.toml (`rust:1-...` is the newest)
    let from = docker
        .lines()
        .find(|l| l.starts_with("FROM rust:"))
        .expect("a rust build image");
    let tag = from
        .trim_start_matches("FROM rust:")
        .split_whitespace()
        .next()
        .unwrap_or("");
    let cargo = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).expect("Cargo.toml");
    let needed = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version")
        .trim_matches('"');
    let version = tag.split('-').next().unwrap_or("");
    let parse = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    assert!(
        version == "1" || parse(version) >= parse(needed),
        "rust:{tag} is older than rust-version {needed}"
    );
    // the build context leaves out build output but keeps .git (for the commit)
    let ignore =
        std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).expect(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
    assert!(!ignore
        .lines()
        .any(|l| l.trim().trim_end_matches('/') == ".git"));
}
