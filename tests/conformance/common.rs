//! A real `kura serve` process on 127.0.0.1 with its own data dir, and helpers to drive clients.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Password of the `admin` user every test server starts with.
pub const ADMIN_PW: &str = "conformance-admin-pw";

/// Fails loudly when a client tool is missing: tests never pass without running.
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "required tool `{tool}` is not installed; run ./scripts/test.sh, which installs it"
    );
}

/// A port on 127.0.0.1 nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A running server; killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// Temporary folder holding the data dir and logs.
    pub root: tempfile::TempDir,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Whether it serves HTTPS.
    pub tls: bool,
    starts: u32,
    env: Vec<(String, String)>,
    /// Runs in `root` with the default data dir `./kura-data`, as after the quick start.
    in_folder: bool,
    /// Descriptor limit (`ulimit -n`) the server runs under, if any.
    nofile: Option<u32>,
}

/// Names a test server's database and storage root apart from every other one of the run.
static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The variable of the second pass (scripts/test-store-postgres.sh --garage): OpenDAL `s3`
/// options as `name=value` words (bucket, endpoint, region, keys) of one object store every
/// test server of the run keeps its bytes in, each under a `root` of its own.
pub const S3_STORAGE_VAR: &str = "KURA_TEST_CONFORMANCE_S3_STORAGE";

/// The options of `S3_STORAGE_VAR`, when set (the run's servers store on an object store).
pub fn s3_storage() -> Option<Vec<(String, String)>> {
    let words = std::env::var(S3_STORAGE_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())?;
    Some(
        words
            .split_whitespace()
            .map(|w| match w.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => panic!("{S3_STORAGE_VAR}: `{w}` is not name=value"),
            })
            .collect(),
    )
}

/// A server's extra settings; when `KURA_TEST_CONFORMANCE_DATABASE_URL` names a PostgreSQL
/// server (scripts/test-store-postgres.sh --conformance), a fresh database on it as the
/// server's `database_url`, unless the test sets one; when `S3_STORAGE_VAR` names an object
/// store, the `s3` backend on it under a root of the server's own, unless the test sets a
/// backend.
fn settings(env: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(options) = s3_storage() {
        if !out.iter().any(|(k, _)| k == "KURA_STORAGE__BACKEND") {
            let root = format!(
                "/c-{}-{}/",
                std::process::id(),
                SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            out.push(("KURA_STORAGE__BACKEND".into(), "s3".into()));
            for (k, v) in options.iter().filter(|(k, _)| k != "root") {
                out.push((
                    format!("KURA_STORAGE__OPTIONS__{}", k.to_uppercase()),
                    v.clone(),
                ));
            }
            out.push(("KURA_STORAGE__OPTIONS__ROOT".into(), root));
        }
    }
    let Some(server) = std::env::var("KURA_TEST_CONFORMANCE_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return out;
    };
    if out.iter().any(|(k, _)| k == "KURA_DATABASE_URL") {
        return out;
    }
    let name = format!(
        "kura_c_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let made = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &server, "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql");
    assert!(made.status.success(), "CREATE DATABASE {name}: {made:?}");
    let url = match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("KURA_TEST_CONFORMANCE_DATABASE_URL has no database: {server}"),
    };
    out.push(("KURA_DATABASE_URL".into(), url));
    out
}

impl Server {
    /// Starts a plain-HTTP server (the common case for client tests).
    pub fn plain() -> Server {
        Server::start(false)
    }

    /// Starts a server with `tls` on or off and its defaults otherwise.
    pub fn start(tls: bool) -> Server {
        Server::start_with(tls, &[])
    }

    /// Starts a server with extra `KURA_*` settings.
    pub fn start_with(tls: bool, env: &[(&str, &str)]) -> Server {
        Server::start_on(free_port(), tls, env)
    }

    /// Starts a server on a given port (known in advance, e.g. to an ACME test CA).
    pub fn start_on(port: u16, tls: bool, env: &[(&str, &str)]) -> Server {
        Server::start_limited(port, tls, env, None)
    }

    /// Starts a server under `ulimit -n nofile` (through `sh -c`) if given, with extra settings.
    pub fn start_limited(
        port: u16,
        tls: bool,
        env: &[(&str, &str)],
        nofile: Option<u32>,
    ) -> Server {
        let root = tempfile::tempdir().expect("tempdir");
        let mut s = Server {
            child: None,
            root,
            port,
            tls,
            starts: 0,
            env: settings(env),
            in_folder: false,
            nofile,
        };
        s.spawn();
        s
    }

    /// Starts a plain-HTTP server whose data dir holds `files` (name, contents) before its
    /// first start (e.g. another gateway's `secret.key`).
    pub fn start_seeded(env: &[(&str, &str)], files: &[(&str, &[u8])]) -> Server {
        let mut s = Server {
            child: None,
            root: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            tls: false,
            starts: 0,
            env: settings(env),
            in_folder: false,
            nofile: None,
        };
        std::fs::create_dir_all(s.data_dir()).expect("data dir");
        for (name, bytes) in files {
            std::fs::write(s.data_dir().join(name), bytes).expect("seed file");
        }
        s.spawn();
        s
    }

    /// Starts an HTTPS server in its temporary folder with the default data dir `./kura-data`,
    /// as a reader of the quick start has it; `kura` commands run in that folder too.
    pub fn start_in_folder(env: &[(&str, &str)]) -> Server {
        let mut s = Server::in_folder(env);
        s.spawn();
        s
    }

    /// A folder set up as `start_in_folder` does, where no server has started yet
    /// (`start_again` starts it).
    pub fn in_folder(env: &[(&str, &str)]) -> Server {
        Server {
            child: None,
            root: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            tls: true,
            starts: 0,
            env: settings(env),
            in_folder: true,
            nofile: None,
        }
    }

    /// The data dir (database, files/, tmp/, tls/).
    pub fn data_dir(&self) -> PathBuf {
        let name = if self.in_folder { "kura-data" } else { "data" };
        self.root.path().join(name)
    }

    /// The folder that holds the stored files.
    pub fn files_dir(&self) -> PathBuf {
        self.data_dir().join("files")
    }

    /// The server's log of its latest start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join(format!("server-{}.log", self.starts))
    }

    /// Environment a `kura` command needs to act on this server's data dir.
    pub fn kura(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kura"));
        c.env("KURA_DATA_DIR", self.data_dir())
            .env("KURA_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("KURA_TLS", if self.tls { "true" } else { "false" })
            .env("KURA_ADMIN_PASSWORD", ADMIN_PW)
            .env("RUST_LOG", "info,kura::access=debug")
            .env_remove("KURA_CONFIG")
            .env_remove("KURA_TEST_CONFORMANCE_DATABASE_URL")
            .env_remove(S3_STORAGE_VAR)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if self.in_folder {
            c.current_dir(self.root.path());
        }
        c
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let mut cmd = self.kura();
        if let Some(n) = self.nofile {
            // `exec` keeps the pid: the server is the child, as without a limit
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" serve"))
                .arg(cmd.get_program());
            if let Some(dir) = cmd.get_current_dir() {
                sh.current_dir(dir);
            }
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => sh.env(k, v),
                    None => sh.env_remove(k),
                };
            }
            cmd = sh;
        } else {
            cmd.arg("serve");
        }
        let child = cmd
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start kura");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // up is up whichever certificate serves (tests check certificates themselves)
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Command::new("curl")
                    .args(["-sSk", "-o", "/dev/null", "-w", "%{http_code}"])
                    .arg(self.url("/healthz"))
                    .output()
                    .map(|o| o.stdout)
                    .unwrap_or_default()
                    == b"200"
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("kura exited at start ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "kura did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server cleanly and starts it again on the same data dir and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Kills the server with SIGKILL, as a crash or power cut would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `limit` for the server to exit by itself (a crash hook); true if it did.
    pub fn exits_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sets (or replaces) a `KURA_*` setting for the next start and every later `kura` command.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Starts the server again after `kill9` or `stop`.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server still running");
        self.spawn();
    }

    /// Stops the server cleanly (SIGTERM, SIGKILL after 10 s); `start_again` starts it again.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sigterm(c.id());
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

    /// Process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server not running").id()
    }

    /// Peak resident memory of the server so far, from /proc (KiB).
    pub fn vm_hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Base URL plus a path.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// URL of a WebDAV path (`dav("a/b")` is `/dav/a/b`).
    pub fn dav(&self, path: &str) -> String {
        self.url(&format!("/dav/{path}"))
    }

    /// The generated certificate.
    pub fn cert(&self) -> PathBuf {
        self.data_dir().join("tls/cert.pem")
    }

    /// curl without credentials (trusting the generated certificate for TLS).
    pub fn curl(&self, args: &[&str]) -> Output {
        let mut c = Command::new("curl");
        c.args(["-sS", "--path-as-is"]);
        if self.tls {
            c.arg("--cacert").arg(self.cert());
        }
        c.args(args);
        c.output().expect("run curl")
    }

    /// curl as `admin`.
    pub fn curl_admin(&self, args: &[&str]) -> Output {
        let auth = format!("admin:{ADMIN_PW}");
        let mut all = vec!["-u", auth.as_str()];
        all.extend_from_slice(args);
        self.curl(&all)
    }

    /// Status code of a request made as `admin` (body discarded).
    pub fn status(&self, args: &[&str]) -> u16 {
        let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        code(&self.curl_admin(&all))
    }

    /// Status code of a request made as `user_pw` (`name:password`; body discarded).
    pub fn status_as(&self, user_pw: &str, args: &[&str]) -> u16 {
        let mut all = vec!["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", user_pw];
        all.extend_from_slice(args);
        code(&self.curl(&all))
    }

    /// Body of a GET as `admin`.
    pub fn get(&self, path: &str) -> Vec<u8> {
        let out = self.curl_admin(&["-f", &self.dav(path)]);
        assert!(
            out.status.success(),
            "GET {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// PUT of bytes as `admin`; returns the status.
    pub fn put(&self, path: &str, body: &[u8]) -> u16 {
        let f = self.root.path().join("put-body.tmp");
        std::fs::write(&f, body).expect("write body");
        let s = self.status(&["-T", f.to_str().expect("utf8"), &self.dav(path)]);
        let _ = std::fs::remove_file(&f);
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// The `-w %{http_code}` of a curl run.
pub fn code(out: &Output) -> u16 {
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim()
        .rsplit('\n')
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no status in curl output {s:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Runs a command, failing with its output when it does not succeed.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An S3 access key of `admin` on a server.
pub struct S3Key {
    /// Access key id.
    pub id: String,
    /// Secret access key.
    pub secret: String,
}

impl Server {
    /// Creates an admin API token with `kura token create` and returns it.
    pub fn api_token(&self) -> String {
        let out = run(self.kura().args(["token", "create", "--name", "test"]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("token:"))
            .expect("token")
            .trim()
            .to_string()
    }

    /// Adds a user with a chosen password (`kura user add NAME --password-stdin ARGS`).
    pub fn add_user(&self, name: &str, password: &str, args: &[&str]) {
        use std::io::Write;
        let mut child = self
            .kura()
            .args(["user", "add", name, "--password-stdin"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("kura user add");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("password");
        assert!(child.wait().expect("wait").success(), "user add {name}");
    }

    /// Creates an access key for `admin`.
    pub fn s3_key(&self) -> S3Key {
        self.s3_key_for("admin")
    }

    /// Creates an access key for `user` with `kura key create --json`.
    pub fn s3_key_for(&self, user: &str) -> S3Key {
        let out = run(self
            .kura()
            .args(["key", "create", "--user", user, "--json"]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| {
            let start = text.find(&format!("\"{name}\":\"")).expect("field") + name.len() + 4;
            text[start..].split('"').next().expect("value").to_string()
        };
        S3Key {
            id: field("access_key_id"),
            secret: field("secret_access_key"),
        }
    }

    /// An `aws` command against this server with the given key (path-style, trusting the cert).
    pub fn aws(&self, key: &S3Key) -> Command {
        let mut c = Command::new("aws");
        c.env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .args(["--endpoint-url", &self.url("")]);
        if self.tls {
            c.arg("--ca-bundle").arg(self.cert());
        }
        c
    }
}

/// Every regular file below `dir`, as sorted relative paths.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(dir)
                        .expect("prefix")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

/// SHA-256 of a file, streamed by `sha256sum`.
pub fn sha256_file(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sum")
        .to_string()
}

/// Runs the boto3 script `tests/conformance/<name>` against `server` with an S3 key of the
/// admin and one of `bob`, a second user who may create buckets (made here), and the admin's
/// WebDAV password; prints its output and returns it.
pub fn boto3_with_other_user(server: &Server, name: &str) -> String {
    require("python3");
    let key = server.s3_key();
    server.add_user("bob", "bob-password-1", &["--create-buckets"]);
    let bob = server.s3_key_for("bob");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(name);
    let out = run(Command::new("python3")
        .arg(script)
        .env("KURA_S3_ENDPOINT", server.url(""))
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("KURA_OTHER_KEY_ID", &bob.id)
        .env("KURA_OTHER_SECRET", &bob.secret)
        .env("KURA_DAV_PASSWORD", ADMIN_PW)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{}", stdout.trim());
    stdout
}

/// `kura usage GROUP`: the group's (bytes, files) as the CLI prints them.
pub fn usage(server: &Server, group: &str) -> (i64, i64) {
    let out = run(server.kura().args(["usage", group]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{group}\t")))
        .expect("usage line");
    let f: Vec<&str> = line.split('\t').collect();
    (f[1].parse().expect("bytes"), f[3].parse().expect("files"))
}

/// A body whose bytes say which write made it: `tag` repeated to `len` bytes.
pub fn tagged_body(tag: &str, len: usize) -> Vec<u8> {
    tag.bytes().cycle().take(len).collect()
}

/// `kura fsck` exits 0 and finds no drift, of storage or of usage.
pub fn fsck_clean(server: &Server) {
    let out = server.kura().arg("fsck").output().expect("kura fsck");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("storage: no drift")
            && text.contains("usage: no drift"),
        "fsck: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kura group add GROUP` and `kura bucket create BUCKET --group GROUP`, then, given,
/// `kura quota set GROUP --bytes QUOTA`: a bucket paid by a group of its own.
pub fn group_bucket(server: &Server, group: &str, bucket: &str, quota: Option<&str>) {
    run(server.kura().args(["group", "add", group]));
    run(server
        .kura()
        .args(["bucket", "create", bucket, "--group", group]));
    if let Some(q) = quota {
        run(server.kura().args(["quota", "set", group, "--bytes", q]));
    }
}
