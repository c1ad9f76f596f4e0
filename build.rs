//! Puts the git commit the binary is built from into `BUILD_GIT_COMMIT` (for `kura --version`
//! and the `kura_build_info` metric): `git rev-parse` in a checkout, else the variable of the
//! same name given to the build (the Docker build passes it), else "unknown". Not `KURA_...`:
//! cargo hands the variable to what `cargo test` runs, and Kura warns of unknown `KURA_*`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_GIT_COMMIT");
    let commit = git(&["rev-parse", "--short=12", "HEAD"])
        .or_else(|| {
            std::env::var("BUILD_GIT_COMMIT")
                .ok()
                .filter(|c| !c.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
    // a new commit or a checkout changes the answer; only files that exist are watched (a
    // missing one would make cargo run this script, and rebuild Kura, every time)
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for p in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(f) = git(&["rev-parse", "--git-path", p]) {
            if std::path::Path::new(&f).exists() {
                println!("cargo:rerun-if-changed={f}");
            }
        }
    }
}
