//! A real PostgreSQL for tests (issue #18, docs/scale-out.md): Debian's `postgresql`
//! binaries, a throw-away cluster in a temporary folder made by `initdb` and run by `pg_ctl`
//! on 127.0.0.1 and a free port, with a password (SCRAM) and no socket but TCP. PostgreSQL
//! refuses to run as root, so when the tests run as root every cluster command runs as the
//! `postgres` user Debian's package creates (`runuser`); otherwise as the current user.
//! The cluster is stopped and its folder removed when the handle is dropped (also when the
//! test panics; a test process killed with SIGKILL leaves the server running, as any child).
//!
//! The cluster collates text by ICU's `en-US` rules by default, as a PostgreSQL set up with
//! a usual locale does, so a column that forgets `COLLATE "C"` sorts paths out of byte order
//! here too (tests/conformance/postgres_schema.rs relies on that).
//!
//! Other tests use it as: `let pg = Postgres::start(); let url = pg.create_database("x");`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The role every test cluster is made with (a superuser of its own cluster only).
pub const PG_USER: &str = "kura";

/// A running throw-away PostgreSQL cluster; stopped and removed when dropped.
pub struct Postgres {
    /// Holds `data/` (the cluster), `pwfile` and `postgres.log`; owned by the cluster's user.
    root: tempfile::TempDir,
    bin: PathBuf,
    /// Port on 127.0.0.1.
    pub port: u16,
    password: String,
    /// `Some("postgres")` when the tests run as root.
    run_as: Option<String>,
    running: bool,
}

impl Postgres {
    /// Makes and starts a cluster; panics with the log when it cannot.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let run_as = if is_root() {
            let user = "postgres";
            let known = Command::new("id")
                .arg("-u")
                .arg(user)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                known,
                "the tests run as root and there is no `{user}` user to run PostgreSQL as; \
                 run ./scripts/test.sh, which installs Debian's postgresql (it creates the user)"
            );
            Some(user.to_string())
        } else {
            None
        };
        let root = tempfile::Builder::new()
            .prefix("kura-pg-")
            .tempdir()
            .expect("temporary folder for PostgreSQL");
        let password = random_hex(16);
        std::fs::write(root.path().join("pwfile"), format!("{password}\n")).expect("pwfile");
        if let Some(user) = &run_as {
            let out = Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(root.path())
                .output()
                .expect("chown");
            assert!(out.status.success(), "chown: {out:?}");
        }
        let mut pg = Postgres {
            root,
            bin,
            port: 0,
            password,
            run_as,
            running: false,
        };
        let data = pg.data_dir();
        let out = pg
            .cluster_cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", PG_USER, "-A", "scram-sha-256", "-E", "UTF8"])
            .arg("--pwfile")
            .arg(pg.root.path().join("pwfile"))
            // the database's own order is a language's, not bytes: the schema must say "C"
            .args(["--locale=C", "--locale-provider=icu", "--icu-locale=en-US"])
            .arg("--no-sync")
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        // the port is free when asked and taken by the time the server binds it, rarely
        for attempt in 0..5 {
            pg.port = super::common::free_port();
            if pg.try_start() {
                pg.running = true;
                return pg;
            }
            assert!(
                pg.log().contains("could not bind") || pg.log().contains("already in use"),
                "PostgreSQL did not start (attempt {attempt}):\n{}",
                pg.log()
            );
        }
        panic!("PostgreSQL found no free port:\n{}", pg.log());
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("postgres.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A program of the cluster's binaries, run as the cluster's user, in the cluster's folder.
    fn cluster_cmd(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut c = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(program);
                c
            }
            None => Command::new(program),
        };
        c.current_dir(self.root.path());
        c
    }

    fn try_start(&self) -> bool {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.root.path().display()
        );
        let out = self
            .cluster_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .expect("run pg_ctl start");
        out.status.success()
    }

    /// `postgres://` URL of database `db` with the cluster's role and password.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{PG_USER}:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// Creates an empty database (UTF-8, the cluster's ICU order) and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "database names here are plain: {name}"
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// Runs `sql` with psql over TCP in database `db`; panics on an error; the rows as
    /// unaligned text (`|` between columns, one line a row).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.try_psql(PG_USER, &self.password, db, sql);
        assert!(out.status.success(), "psql `{sql}`: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// psql as `user` with `password`, whatever comes of it.
    pub fn try_psql(&self, user: &str, password: &str, db: &str, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", user, "-d", db, "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE")
            .output()
            .expect("run psql")
    }

    /// Stops the server (fast shutdown: open sessions are cut); the folder goes on drop.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let out = self
            .cluster_cmd("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            // nothing else would stop it: the last resort is the postmaster's pid
            if let Some(pid) = std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().next().map(str::to_string))
            {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }

    /// Starts the cluster again after `stop`, on the same port and data.
    pub fn start_again(&mut self) {
        assert!(!self.running, "PostgreSQL is running");
        assert!(
            self.try_start(),
            "PostgreSQL did not start again:\n{}",
            self.log()
        );
        self.running = true;
    }

    /// Whether something accepts connections on the cluster's port.
    pub fn listening(&self) -> bool {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(2),
        )
        .is_ok()
    }

    /// The cluster's folder (gone once the handle is dropped).
    pub fn folder(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The newest `/usr/lib/postgresql/<major>/bin` with `initdb` (Debian's layout), or
/// `KURA_TEST_PG_BIN`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KURA_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; \
             run ./scripts/test.sh, which installs Debian's postgresql"
        ),
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The harness's own story: a cluster starts as an unprivileged user, takes the password and
/// refuses a wrong one, sorts text by language unless told "C", and is gone after the drop.
#[test]
fn postgres_harness_starts_a_throwaway_cluster_and_removes_it() {
    let started = Instant::now();
    let pg = Postgres::start();
    let port = pg.port;
    let folder = pg.folder().to_path_buf();
    assert!(pg.listening(), "nothing listens on {port}");
    let url = pg.create_database("harness");
    assert!(url.starts_with("postgres://kura:"), "{url}");

    // the server does not run as root
    let who = pg.psql("harness", "SELECT current_setting('data_directory')");
    assert!(who.trim().ends_with("/data"), "{who}");
    let postmaster = std::fs::read_to_string(folder.join("data/postmaster.pid")).expect("pid");
    let pid = postmaster.lines().next().expect("pid line");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("Uid line");
    assert_ne!(uid, "0", "PostgreSQL runs as root");

    // a wrong password is refused (the cluster does not trust 127.0.0.1)
    let wrong = pg.try_psql(PG_USER, "not-the-password", "harness", "SELECT 1");
    assert!(!wrong.status.success(), "a wrong password was taken");
    assert!(
        text(&wrong).contains("password authentication failed"),
        "{}",
        text(&wrong)
    );

    // the default order is a language's; "C" is byte order (what the migrations must say)
    let order = |collate: &str| {
        pg.psql(
            "harness",
            &format!(
                "SELECT string_agg(p, ' ' ORDER BY p{collate}) \
                 FROM (VALUES ('/b'), ('/B'), ('/a'), ('/é'), ('/~')) AS v(p)"
            ),
        )
        .trim()
        .to_string()
    };
    assert_eq!(order(" COLLATE \"C\""), "/B /a /b /~ /é");
    assert_ne!(
        order(""),
        "/B /a /b /~ /é",
        "the test cluster sorts bytes by default: a missing COLLATE \"C\" would go unseen"
    );

    drop(pg);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "PostgreSQL still listens on {port} after the drop"
    );
    assert!(!folder.exists(), "{} is left behind", folder.display());
    eprintln!(
        "throw-away PostgreSQL: started, checked and removed in {:?}",
        started.elapsed()
    );
}
