//! Real mounted clients: `rclone mount` (FUSE, `--vfs-cache-mode full`) over Kura's WebDAV
//! and over its S3, and GNOME's gio (gvfs) over `davs://`, driven by ordinary programs
//! (cp, python, sed, mv, rm) as their users drive them. Every wait is bounded and every
//! mount is unmounted when its guard drops, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{require, run, sha256_file, tree, S3Key, Server, ADMIN_PW};

/// The bucket (top-level folder) every mount test works in.
const BUCKET: &str = "mounted";

/// Which of Kura's fronts an rclone mount goes through.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Front {
    Dav,
    S3,
}

/// Longest a mount may live: a watchdog then kills rclone, which makes every file call still
/// blocked on the mount fail (ENOTCONN) instead of hanging the suite.
const MOUNT_LIFETIME: Duration = Duration::from_secs(600);

/// A running `rclone mount`; unmounted (fusermount3 -u, lazily if busy) and killed on drop.
struct Mount {
    child: Option<Child>,
    dir: PathBuf,
    _work: tempfile::TempDir,
    log: PathBuf,
    /// Dropping it tells the watchdog the mount ended in time.
    watchdog: Option<std::sync::mpsc::Sender<()>>,
}

impl Mount {
    /// Mounts `BUCKET` of `server` through `front` and waits (at most 30 s) until it is up.
    fn new(server: &Server, key: &S3Key, front: Front) -> Mount {
        require("rclone");
        require("fusermount3");
        let work = tempfile::tempdir().expect("tempdir");
        let dir = work.path().join("mnt");
        std::fs::create_dir(&dir).expect("mount point");
        let log = work.path().join("rclone.log");
        let obscured = run(Command::new("rclone").args(["obscure", ADMIN_PW])).stdout;
        let obscured = String::from_utf8_lossy(&obscured).trim().to_string();
        let remote = match front {
            Front::Dav => format!("kd:{BUCKET}"),
            Front::S3 => format!("k3:{BUCKET}"),
        };
        let mut c = Command::new("rclone");
        c.env("RCLONE_CONFIG", "/dev/null")
            .env("RCLONE_CONFIG_K3_TYPE", "s3")
            .env("RCLONE_CONFIG_K3_PROVIDER", "Other")
            .env("RCLONE_CONFIG_K3_ENDPOINT", server.url(""))
            .env("RCLONE_CONFIG_K3_ACCESS_KEY_ID", &key.id)
            .env("RCLONE_CONFIG_K3_SECRET_ACCESS_KEY", &key.secret)
            .env("RCLONE_CONFIG_K3_FORCE_PATH_STYLE", "true")
            .env("RCLONE_CONFIG_KD_TYPE", "webdav")
            .env("RCLONE_CONFIG_KD_URL", server.dav(""))
            .env("RCLONE_CONFIG_KD_VENDOR", "other")
            .env("RCLONE_CONFIG_KD_USER", "admin")
            .env("RCLONE_CONFIG_KD_PASS", obscured)
            // rclone's S3 client cannot take AWS_CA_BUNDLE with its own transport
            .env_remove("AWS_CA_BUNDLE")
            .arg("mount")
            .arg(&remote)
            .arg(&dir)
            .args(["--vfs-cache-mode", "full", "--cache-dir"])
            .arg(work.path().join("cache"))
            // upload a closed file after 1 s (default 5 s); re-list folders after 1 s
            .args(["--vfs-write-back", "1s", "--dir-cache-time", "1s"])
            .args(["--attr-timeout", "0s", "--poll-interval", "0"])
            .args(["--log-level", "INFO", "--log-file"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if server.tls {
            c.arg("--ca-cert").arg(server.cert());
        }
        let child = c.spawn().expect("start rclone mount");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (pid, watched) = (child.id(), dir.clone());
        std::thread::spawn(move || {
            if rx.recv_timeout(MOUNT_LIFETIME) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                eprintln!(
                    "rclone mount {} outlived {MOUNT_LIFETIME:?}: killed",
                    watched.display()
                );
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                let _ = Command::new("fusermount3")
                    .arg("-uz")
                    .arg(&watched)
                    .status();
            }
        });
        let mut m = Mount {
            child: Some(child),
            dir,
            _work: work,
            log,
            watchdog: Some(tx),
        };
        let up = eventually(Duration::from_secs(30), || m.mounted());
        if !up {
            panic!("rclone mount of {remote} did not come up:\n{}", m.log());
        }
        m
    }

    fn mounted(&mut self) -> bool {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
            panic!("rclone mount exited ({status}):\n{}", self.log());
        }
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let dir = self.dir.to_string_lossy().into_owned();
        mounts
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(dir.as_str()))
    }

    /// A path below the mount point.
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// rclone's log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(w) = self.watchdog.take() {
            let _ = w.send(());
        }
        let unmounted = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !unmounted {
            // busy (a failed test left a file open): detach now, the kernel finishes later
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.dir)
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `program` under `timeout 300`: a command blocked on a stuck mount fails instead of hanging.
fn bounded(program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.args(["300", program]);
    c
}

/// Polls `cond` every 200 ms until it holds or `limit` passes; whether it held.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A server with the bucket every mount works in, and an S3 key of `admin`.
fn server_with_bucket() -> (Server, S3Key) {
    let server = Server::start(true);
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav(BUCKET)]),
        201,
        "MKCOL {BUCKET}"
    );
    let key = server.s3_key();
    (server, key)
}

/// Where the server keeps `rel` of the bucket (the fs backend stores the namespace as is).
fn stored(server: &Server, rel: &str) -> PathBuf {
    server.files_dir().join(BUCKET).join(rel)
}

/// Waits (at most `secs`) until the server holds exactly `want` at `rel`.
fn wait_stored(server: &Server, mount: &Mount, rel: &str, want: &[u8], secs: u64) {
    let ok = eventually(Duration::from_secs(secs), || {
        std::fs::read(stored(server, rel)).ok().as_deref() == Some(want)
    });
    if !ok {
        let have = std::fs::read(stored(server, rel)).ok();
        panic!(
            "{rel} never reached the server as written (server has {:?} bytes)\nrclone log:\n{}",
            have.map(|h| h.len()),
            mount.log()
        );
    }
}

/// Size of a file, if it exists.
fn size_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// A local tree of 40 files in nested folders, sizes from 1 byte to ~1.2 MB.
fn local_tree(root: &Path) {
    for i in 0..40u32 {
        let dir = root
            .join(format!("d{}", i % 4))
            .join(format!("sub{}", i % 3));
        std::fs::create_dir_all(&dir).expect("dir");
        let len = (i as usize * 29_989) + 1;
        let body: Vec<u8> = (0..len).map(|b| (b as u32 * 31 + i) as u8).collect();
        std::fs::write(dir.join(format!("f{i:02}.bin")), body).expect("write");
    }
}

/// The story every front must pass: copy a tree in, edit files in place with programs,
/// rename a folder, delete a folder, each checked on the server's stored bytes.
fn copy_edit_rename_delete(front: Front) {
    let (server, key) = server_with_bucket();
    let m = Mount::new(&server, &key, front);
    let local = tempfile::tempdir().expect("local");
    let src = local.path().join("tree");
    local_tree(&src);

    // copy a tree in with cp -r; the server ends with the same files and bytes
    run(bounded("cp").arg("-r").arg(&src).arg(m.path("tree")));
    let want: Vec<String> = tree(&src);
    let up = eventually(Duration::from_secs(120), || {
        tree(&stored(&server, "tree")) == want
            && want
                .iter()
                .all(|f| size_of(&stored(&server, &format!("tree/{f}"))) == size_of(&src.join(f)))
    });
    assert!(
        up,
        "{front:?}: the copied tree never reached the server: {:?}\n{}",
        tree(&stored(&server, "tree")),
        m.log()
    );
    for f in &want {
        assert_eq!(
            sha256_file(&src.join(f)),
            sha256_file(&stored(&server, &format!("tree/{f}"))),
            "{front:?}: {f} differs on the server"
        );
    }

    // a program edits a file in place: open r+, seek into the middle, write, close
    let edited = "tree/d1/sub1/f01.bin";
    let mut expect = std::fs::read(src.join("d1/sub1/f01.bin")).expect("read");
    let patch = b"EDITED IN THE MIDDLE";
    let at = expect.len() / 2;
    expect[at..at + patch.len()].copy_from_slice(patch);
    run(bounded("python3").arg("-c").arg(format!(
        "f = open({:?}, 'r+b'); f.seek({at}); f.write({:?}.encode()); f.close()",
        m.path(edited).display(),
        std::str::from_utf8(patch).expect("ascii")
    )));
    wait_stored(&server, &m, edited, &expect, 60);

    // sed -i writes a new file beside the old one and renames it over it
    std::fs::write(m.path("tree/notes.txt"), "alpha\nbeta\ngamma\n").expect("notes");
    wait_stored(&server, &m, "tree/notes.txt", b"alpha\nbeta\ngamma\n", 60);
    run(bounded("sed")
        .args(["-i", "s/beta/BETA/"])
        .arg(m.path("tree/notes.txt")));
    wait_stored(&server, &m, "tree/notes.txt", b"alpha\nBETA\ngamma\n", 60);

    // rename a folder with mv: everything below moves, nothing stays behind
    let before = tree(&stored(&server, "tree/d2"));
    assert!(!before.is_empty());
    run(bounded("mv")
        .arg(m.path("tree/d2"))
        .arg(m.path("tree/d2-renamed")));
    let moved = eventually(Duration::from_secs(60), || {
        tree(&stored(&server, "tree/d2-renamed")) == before
            && tree(&stored(&server, "tree/d2")).is_empty()
    });
    assert!(
        moved,
        "{front:?}: rename left {:?} / {:?}\n{}",
        tree(&stored(&server, "tree/d2")),
        tree(&stored(&server, "tree/d2-renamed")),
        m.log()
    );
    assert_eq!(
        sha256_file(&src.join("d2/sub2/f02.bin")),
        sha256_file(&stored(&server, "tree/d2-renamed/sub2/f02.bin"))
    );

    // delete a folder with rm -r and one file with rm
    let rm = bounded("rm")
        .arg("-r")
        .arg(m.path("tree/d3"))
        .output()
        .expect("run rm");
    // Over S3 a folder is only the prefix of its keys: once rm has deleted a folder's last
    // file, the folder is gone on the server (as on AWS), and when rclone's one-second folder
    // cache refreshes before rm's rmdir, that rmdir finds nothing to remove. Only that
    // answer, for d3 or a folder in it, is accepted (the files are checked gone below).
    let d3 = m.path("tree/d3").display().to_string();
    let vanished = |line: &str| {
        line.strip_prefix(&format!("rm: cannot remove '{d3}"))
            .and_then(|rest| rest.strip_suffix("': No such file or directory"))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let stderr = String::from_utf8_lossy(&rm.stderr);
    assert!(
        rm.status.success()
            || (front == Front::S3 && stderr.lines().count() > 0 && stderr.lines().all(vanished)),
        "{front:?}: rm -r tree/d3 failed: {}",
        String::from_utf8_lossy(&rm.stderr)
    );
    run(bounded("rm").arg(m.path("tree/d0/sub0/f00.bin")));
    let gone = eventually(Duration::from_secs(60), || {
        tree(&stored(&server, "tree/d3")).is_empty()
            && !stored(&server, "tree/d0/sub0/f00.bin").exists()
    });
    assert!(gone, "{front:?}: deleted files stayed\n{}", m.log());
    // and the mount agrees with the server
    let listed = tree(&m.path("tree"));
    assert_eq!(listed, tree(&stored(&server, "tree")), "{front:?}");
}

#[test]
fn rclone_mount_over_webdav_copy_edit_rename_delete() {
    copy_edit_rename_delete(Front::Dav);
}

#[test]
fn rclone_mount_over_s3_copy_edit_rename_delete() {
    copy_edit_rename_delete(Front::S3);
}

/// A 1 GiB file written through the WebDAV mount reaches the server whole, streamed:
/// the server's peak memory stays far below the file's size.
#[test]
fn rclone_mount_over_webdav_writes_a_1_gib_file_with_bounded_server_memory() {
    let (server, key) = server_with_bucket();
    let m = Mount::new(&server, &key, Front::Dav);
    let local = tempfile::tempdir().expect("local");
    let big = local.path().join("big.bin");
    run(Command::new("head")
        .args(["-c", "1073741824", "/dev/urandom"])
        .stdout(std::fs::File::create(&big).expect("big")));
    let before = server.vm_hwm_kib();
    run(bounded("cp").arg(&big).arg(m.path("big.bin")));
    let size = 1u64 << 30;
    let up = eventually(Duration::from_secs(400), || {
        size_of(&stored(&server, "big.bin")) == Some(size)
    });
    assert!(up, "the 1 GiB file never reached the server\n{}", m.log());
    assert_eq!(sha256_file(&big), sha256_file(&stored(&server, "big.bin")));
    let after = server.vm_hwm_kib();
    println!("server peak RSS: {before} KiB before, {after} KiB after 1 GiB through the mount");
    assert!(
        after < before + 64 * 1024,
        "the server's peak memory grew by {} KiB for a 1 GiB upload",
        after - before
    );
}

/// Two mounts, one over WebDAV and one over S3, edit different files of one folder at the
/// same time: each ends with its own last version, neither overwrites the other.
#[test]
fn two_mounts_edit_different_files_of_one_folder_at_once() {
    let (server, key) = server_with_bucket();
    let dav = Mount::new(&server, &key, Front::Dav);
    let s3 = Mount::new(&server, &key, Front::S3);
    std::fs::create_dir(dav.path("shared")).expect("mkdir through WebDAV");
    assert!(eventually(Duration::from_secs(20), || s3
        .path("shared")
        .is_dir()));
    let body =
        |who: &str, round: u32| format!("{who} round {round}\n").repeat(2000 + round as usize);
    std::thread::scope(|s| {
        for (m, who) in [(&dav, "dav"), (&s3, "s3")] {
            s.spawn(move || {
                for round in 0..15 {
                    std::fs::write(m.path(&format!("shared/{who}.txt")), body(who, round))
                        .unwrap_or_else(|e| panic!("{who} round {round}: {e}"));
                    std::thread::sleep(Duration::from_millis(150));
                }
            });
        }
    });
    for (m, who) in [(&dav, "dav"), (&s3, "s3")] {
        wait_stored(
            &server,
            m,
            &format!("shared/{who}.txt"),
            body(who, 14).as_bytes(),
            60,
        );
    }
    // each mount sees the other's file too, with the other's bytes
    let seen = eventually(Duration::from_secs(20), || {
        std::fs::read(dav.path("shared/s3.txt")).ok() == Some(body("s3", 14).into_bytes())
            && std::fs::read(s3.path("shared/dav.txt")).ok() == Some(body("dav", 14).into_bytes())
    });
    assert!(seen, "the mounts do not see each other's files");
    assert_eq!(
        tree(&stored(&server, "shared")),
        vec!["dav.txt", "s3.txt"],
        "stray files"
    );
}

const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>curl</D:owner></D:lockinfo>"#;

/// A file locked over WebDAV (LOCK with curl) is refused to the S3 mount's writer: the
/// upload rclone makes after the write gets 423 and the server keeps the locked content.
#[test]
fn a_file_locked_over_webdav_is_refused_to_the_s3_mounts_writer() {
    let (server, key) = server_with_bucket();
    assert_eq!(
        server.put(&format!("{BUCKET}/held.txt"), b"locked content\n"),
        201
    );
    let (code, token) = crate::locks::lock_as(
        &server,
        &format!("admin:{ADMIN_PW}"),
        &format!("{BUCKET}/held.txt"),
        "0",
        LOCKINFO,
    );
    assert_eq!(code, 200, "LOCK");
    assert!(token.is_some(), "no Lock-Token");
    let m = Mount::new(&server, &key, Front::S3);
    assert_eq!(
        std::fs::read(m.path("held.txt")).expect("read through the mount"),
        b"locked content\n"
    );
    // the write lands in rclone's cache (or fails at once); either way it must not land
    let _ = std::fs::write(m.path("held.txt"), b"overwritten by the S3 mount\n");
    let refused = eventually(Duration::from_secs(30), || {
        server.log().lines().any(|l| {
            l.contains("method=PUT")
                && l.contains(&format!("path=/{BUCKET}/held.txt"))
                && l.contains("status=423")
        })
    });
    assert!(
        refused,
        "no refused S3 PUT of the locked file in the server log:\n{}\nrclone log:\n{}",
        server.log(),
        m.log()
    );
    assert_eq!(
        std::fs::read(stored(&server, "held.txt")).expect("stored"),
        b"locked content\n",
        "the S3 mount's write was applied to a locked file"
    );
    assert_eq!(
        server.get(&format!("{BUCKET}/held.txt")),
        b"locked content\n"
    );
}

/// GNOME Files' client: gio over gvfs (gvfsd-dav) mounts `davs://` under its own D-Bus
/// session, accepts the self-signed certificate as a user would (answer 1, "Yes", to its
/// question), and then copies, lists, renames and deletes.
#[test]
fn gio_mounts_davs_copies_lists_renames_deletes() {
    require("gio");
    require("dbus-run-session");
    assert!(
        Path::new("/usr/libexec/gvfsd-dav").exists(),
        "gvfs-backends (gvfsd-dav) is not installed; run ./scripts/test.sh, which installs it"
    );
    let (server, _key) = server_with_bucket();
    let home = tempfile::tempdir().expect("home");
    let local = home.path().join("local.txt");
    let back = home.path().join("back.txt");
    std::fs::write(&local, "copied by gio\n".repeat(5000)).expect("local");
    let base = format!("davs://admin@127.0.0.1:{}/dav/", server.port);
    let dir = format!("{base}{BUCKET}/");
    let script = format!(
        r#"set -e
printf '1\n{ADMIN_PW}\n' | timeout 60 gio mount "{base}"
timeout 60 gio copy "{local}" "{dir}copied.txt"
timeout 60 gio list "{dir}" > "$HOME/list1"
timeout 60 gio rename "{dir}copied.txt" renamed.txt
timeout 60 gio list "{dir}" > "$HOME/list2"
timeout 60 gio copy "{dir}renamed.txt" "{back}"
timeout 60 gio mkdir "{dir}folder"
timeout 60 gio remove "{dir}renamed.txt"
timeout 60 gio remove "{dir}folder"
timeout 60 gio list "{dir}" > "$HOME/list3"
timeout 60 gio mount -u "{base}"
"#,
        local = local.display(),
        back = back.display(),
    );
    let out = Command::new("timeout")
        .args(["300", "dbus-run-session", "--", "sh", "-c", &script])
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", home.path())
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(Stdio::null())
        .output()
        .expect("run gio");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gio session failed:\n{text}");
    assert!(
        text.contains("Certificate information"),
        "gio did not ask about the self-signed certificate:\n{text}"
    );
    let list =
        |n: u32| std::fs::read_to_string(home.path().join(format!("list{n}"))).unwrap_or_default();
    assert_eq!(list(1).trim(), "copied.txt", "{text}");
    assert_eq!(list(2).trim(), "renamed.txt", "{text}");
    assert_eq!(list(3).trim(), "", "{text}");
    assert_eq!(
        std::fs::read(&back).expect("copied back"),
        std::fs::read(&local).expect("local"),
        "gio read back other bytes"
    );
    assert!(tree(&server.files_dir().join(BUCKET)).is_empty());
    assert!(!server.files_dir().join(BUCKET).join("folder").exists());
    // what went over the wire: gvfs's own requests, as the access log shows them
    let log = server.log();
    for (method, path) in [
        ("PUT", "copied.txt"),
        ("MOVE", "copied.txt"),
        ("MKCOL", "folder"),
        ("DELETE", "renamed.txt"),
    ] {
        assert!(
            log.lines().any(|l| l.contains(&format!("method={method}"))
                && l.contains(&format!("path=/dav/{BUCKET}/{path}"))),
            "no {method} of {path} in the server log"
        );
    }
}
