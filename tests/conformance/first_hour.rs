//! The first hour: a newcomer's commands typed in fresh folders, in the README's order, with
//! the usual mistakes (the wrong folder, a typo, a taken port), and what each must answer.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{code, require, Server};

/// `kura ARGS` run in `dir` with only the given `KURA_*` settings (none inherited).
fn kura_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kura"));
    c.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("KURA_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    c.output().expect("run kura")
}

/// Standard output of a command that must succeed.
fn ok(args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "kura {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error of a command that must fail.
fn fails(args: &[&str], out: &Output) -> String {
    assert!(
        !out.status.success(),
        "kura {args:?} succeeded but must fail:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A folder where `kura serve` runs as after the quick start (data dir `./kura-data`, TLS,
/// a port on 127.0.0.1) with a generated administrator password (an empty setting is none).
fn house() -> Server {
    Server::in_folder(&[("KURA_ADMIN_PASSWORD", "")])
}

/// The administrator password the first start printed.
fn admin_password(house: &Server) -> String {
    let log = house.log();
    log.lines()
        .find_map(|l| l.split("with password: ").nth(1))
        .unwrap_or_else(|| panic!("no password printed:\n{log}"))
        .trim()
        .to_string()
}

/// HTTP status of a curl request trusting the generated certificate.
fn curl_status(house: &Server, args: &[&str]) -> String {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    code(&house.curl(&all)).to_string()
}

/// `127.0.0.1:PORT` of the server.
fn listen(house: &Server) -> String {
    format!("127.0.0.1:{}", house.port)
}

#[test]
fn admin_commands_in_the_wrong_folder_create_nothing_and_say_where_they_looked() {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let e = elsewhere.path();
    let wanted = e.join("kura-data");
    for args in [
        &["user", "add", "carol"][..],
        &["user", "list"],
        &["usage"],
        &["fsck"],
        &["group", "add", "family"],
        &["bucket", "list"],
        &["share", "list"],
        &["peer", "status"],
        &["status"],
    ] {
        let err = fails(args, &kura_in(e, &[], args));
        assert!(
            err.contains("no Kura data dir at") && err.contains(&wanted.display().to_string()),
            "kura {args:?} does not say where it looked: {err}"
        );
    }
    // the fingerprint is read, never invented
    let err = fails(&["fingerprint"], &kura_in(e, &[], &["fingerprint"]));
    assert!(err.contains("no TLS certificate at"), "{err}");
    assert!(
        std::fs::read_dir(e).expect("dir").next().is_none(),
        "a command created something in the wrong folder"
    );

    // a data dir that is a file: the message says so (not "reading password: File exists")
    std::fs::write(e.join("data"), b"not a folder").expect("write");
    let env = [("KURA_DATA_DIR", "data")];
    let err = fails(&["user", "add"], &kura_in(e, &env, &["user", "add", "bob"]));
    assert!(err.contains("data dir data is not a folder"), "{err}");
    let err = fails(&["serve"], &kura_in(e, &env, &["serve"]));
    assert!(err.contains("data dir") && err.contains("data"), "{err}");
    assert!(!err.contains("password"), "{err}");
}

#[test]
fn a_newcomer_session_from_first_start_to_a_share_link() {
    require("curl");
    let mut house = house();
    let h = house.root.path().to_path_buf();
    house.start_again();
    let banner = house.log();
    // the banner names real addresses, and the one-time password comes after the port is taken
    assert!(
        banner.contains(&format!(
            "Kura is listening on {}: WebDAV at https://{}/dav/",
            listen(&house),
            listen(&house)
        )) && !banner.contains("<this-host>")
            && !banner.contains(" ; "),
        "{banner}"
    );
    let listening = banner.find("Kura is listening").expect("banner");
    let password_at = banner.find("with password: ").expect("password printed");
    assert!(
        listening < password_at,
        "password before listening:\n{banner}"
    );
    assert!(banner.contains("kura user passwd admin"), "{banner}");
    let pw = admin_password(&house);

    // status in the server's folder: everything a newcomer needs to connect
    let status = ok(&["status"], &kura_in(&h, &[], &["status"]));
    let fp = ok(&["fingerprint"], &kura_in(&h, &[], &["fingerprint"]));
    let fp = fp.trim();
    assert_eq!(fp.len(), 95, "one fingerprint format, AB:CD:...: {fp}");
    assert!(
        banner.contains(fp),
        "fingerprint differs from the logged one"
    );
    for want in [
        "server:       running",
        &format!("listening on: {}", listen(&house)),
        &format!("TLS:          on, fingerprint {fp}"),
        "1 user, 1 administrator)",
    ] {
        assert!(status.contains(want), "status lacks {want:?}:\n{status}");
    }

    // from another folder, naming the data dir: it says which one and that a server runs
    let other = tempfile::tempdir().expect("tempdir");
    let data = h.join("kura-data");
    let env = [("KURA_DATA_DIR", data.to_str().expect("utf8"))];
    let out = kura_in(other.path(), &env, &["user", "list"]);
    let listed = ok(&["user", "list"], &out);
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains(&format!("data dir {}", data.display()))
            && note.contains("a server is running on it"),
        "{note}"
    );
    let mut lines = listed.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "ROLE", "PRIMARY", "GROUPS", "CREATE-BUCKETS"]
    );
    assert!(lines
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["admin", "admin", "-", "-", "no"]));

    // a typo in a group name creates nothing and says what is missing
    let run = |args: &[&str]| kura_in(&h, &[], args);
    let add = ["user", "add", "carol", "--group", "famly"];
    let err = fails(&add, &run(&add));
    assert!(
        err.contains("group famly") && err.contains("kura group add famly"),
        "{err}"
    );
    assert!(!ok(&["group", "list"], &run(&["group", "list"])).contains("famly"));
    assert!(!ok(&["user", "list"], &run(&["user", "list"])).contains("carol"));
    ok(&[], &run(&["group", "add", "family"]));
    ok(&[], &run(&["user", "add", "carol", "--group", "family"]));
    ok(
        &[],
        &run(&["bucket", "create", "photos", "--group", "family"]),
    );
    let buckets = ok(&["bucket", "list"], &run(&["bucket", "list"]));
    let rows: Vec<Vec<&str>> = buckets
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["BUCKET", "OWNER", "GROUP", "MODE"],
            vec!["photos", "admin", "family", "775"]
        ]
    );
    let groups = ok(&["group", "list"], &run(&["group", "list"]));
    assert!(
        groups.starts_with("GROUP") && groups.contains("carol"),
        "{groups}"
    );

    let chown = ["chown", ":famly", "/photos"];
    let err = fails(&chown, &run(&chown));
    assert!(
        err.contains("group famly") && !err.contains("path"),
        "{err}"
    );
    let chown = ["chown", "carl", "/photos"];
    let err = fails(&chown, &run(&chown));
    assert!(err.contains("user carl not found"), "{err}");
    let chown = ["chown", "carol", "/fotos"];
    let err = fails(&chown, &run(&chown));
    assert!(err.contains("path /fotos not found"), "{err}");
    let remove = ["group", "remove", "family"];
    let err = fails(&remove, &run(&remove));
    assert!(
        err.contains("group family owns buckets") && !err.contains("already exists"),
        "{err}"
    );

    // --create-buckets is a flag on both add and modify
    ok(&[], &run(&["user", "modify", "carol", "--create-buckets"]));
    assert!(ok(&[], &run(&["user", "list"]))
        .lines()
        .any(|l| l.starts_with("carol") && l.trim_end().ends_with("yes")));
    ok(
        &[],
        &run(&["user", "modify", "carol", "--no-create-buckets"]),
    );
    assert!(ok(&[], &run(&["user", "list"]))
        .lines()
        .any(|l| l.starts_with("carol") && l.trim_end().ends_with("no")));

    // the last administrator stays
    let err = fails(
        &["user", "remove", "admin"],
        &run(&["user", "remove", "admin"]),
    );
    assert!(err.contains("last administrator"), "{err}");
    let auth = format!("admin:{pw}");
    assert_eq!(
        curl_status(
            &house,
            &[
                "-u",
                &auth,
                &house.dav(""),
                "-X",
                "PROPFIND",
                "-H",
                "Depth: 0"
            ]
        ),
        "207"
    );

    // a share link points where the server really listens (not this host's name on :8443)
    let created = ok(&["share", "create"], &run(&["share", "create", "/photos"]));
    let url = created
        .lines()
        .find_map(|l| l.strip_prefix("url: "))
        .expect("url printed");
    assert!(
        url.starts_with(&format!("https://{}/s/", listen(&house))),
        "{created}"
    );
    assert_eq!(curl_status(&house, &[url]), "200", "{url}");
    let listed = ok(&["share", "list"], &run(&["share", "list"]));
    let id = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("share listed")
        .to_string();
    assert!(
        listed.starts_with("ID") && listed.contains("/photos"),
        "{listed}"
    );
    let again = ok(&["share", "reissue"], &run(&["share", "reissue", &id]));
    let new_url = again
        .lines()
        .find_map(|l| l.strip_prefix("url: "))
        .expect("url printed");
    assert_ne!(new_url, url);
    assert_eq!(curl_status(&house, &[new_url]), "200");
    assert_eq!(
        curl_status(&house, &[url]),
        "404",
        "the lost link still works"
    );

    // fsck's help tells what --repair changes
    let help = ok(&["fsck", "--help"], &run(&["fsck", "--help"]));
    assert!(
        help.contains("remove leftovers") && help.contains("record unrecorded"),
        "{help}"
    );

    // once the server stops, its record in the data dir is not believed: the lock tells
    house.stop();
    assert!(h.join("kura-data/server.json").exists());
    let status = ok(&["status"], &run(&["status"]));
    assert!(
        status.contains("server:       not running") && !status.contains(&listen(&house)),
        "{status}"
    );
    let created = ok(&["share", "create"], &run(&["share", "create", "/photos"]));
    assert!(
        !created.contains(&listen(&house)),
        "a link points at a stopped server's address: {created}"
    );
}

#[test]
fn a_failed_first_start_shows_no_password_and_names_the_address() {
    require("curl");
    let mut house = house();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let h = house.root.path().to_path_buf();
    let out = kura_in(&h, &[("KURA_LISTEN", &addr)], &["serve"]);
    let err = fails(&["serve"], &out);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("password"),
        "a password was printed by a start that failed"
    );
    drop(taken);
    // a user added before the first good start does not stop `admin` from being created
    ok(&[], &kura_in(&h, &[], &["user", "add", "early"]));
    house.start_again();
    let pw = admin_password(&house);
    let auth = format!("admin:{pw}");
    let url = house.dav("");
    assert_eq!(
        curl_status(
            &house,
            &["-u", &auth, "-X", "PROPFIND", "-H", "Depth: 0", &url]
        ),
        "207"
    );
}

#[test]
fn config_typos_are_named_with_the_closest_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("kura.toml"), "lissten = \"127.0.0.1:1\"\n").expect("write");
    let out = kura_in(
        dir.path(),
        &[("KURA_DATA_DIRR", "x")],
        &["--config", "kura.toml", "status"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown variable KURA_DATA_DIRR") && err.contains("KURA_DATA_DIR?"),
        "{err}"
    );
    assert!(
        err.contains("unknown setting `lissten`") && err.contains("`listen`"),
        "{err}"
    );
}

#[test]
fn install_script_puts_kura_its_man_pages_and_completions_in_place() {
    let prefix = tempfile::tempdir().expect("tempdir");
    let p = prefix.path();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .args([
            "--prefix",
            p.to_str().expect("utf8"),
            "--binary",
            env!("CARGO_BIN_EXE_kura"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("install.sh");
    ok(&["install.sh"], &out);
    for f in [
        "bin/kura",
        "share/man/man1/kura.1",
        "share/man/man1/kura-user-add.1",
        "share/bash-completion/completions/kura",
        "share/zsh/site-functions/_kura",
        "share/fish/vendor_completions.d/kura.fish",
    ] {
        let len = std::fs::metadata(p.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "install.sh did not write {f}");
    }
    let bash =
        std::fs::read_to_string(p.join("share/bash-completion/completions/kura")).expect("read");
    assert!(
        bash.contains("fingerprint") && bash.contains("--create-buckets"),
        "completions lack commands"
    );
}
