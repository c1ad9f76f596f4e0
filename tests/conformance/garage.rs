//! A real Garage for tests (issue #18, docs/scale-out.md): the `garage` binary (2.5.0,
//! installed by scripts/test.sh with `cargo install garage --version 2.5.0 --locked`) run as
//! a throw-away single node in a temporary folder: replication factor 1, metadata in SQLite,
//! a random RPC secret, the S3 API and RPC on free ports of 127.0.0.1. `start` applies a
//! one-node layout and makes an access key and a bucket it may read, write and own, as
//! bench/kura_bench.py's `Garage` does. The node is killed and its folder removed when the
//! handle is dropped. A missing binary fails the test, never skips it.
//!
//! Other tests use it as: `let g = Garage::start(); server env: g.storage_env("/root/")`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The S3 region the node answers as (Garage checks it in signatures).
pub const REGION: &str = "garage";

/// The bucket `start` makes.
pub const BUCKET: &str = "kura-test";

/// The access key's name in Garage.
const KEY_NAME: &str = "kura-test-key";

/// A running throw-away Garage node; killed and removed when dropped.
pub struct Garage {
    /// Holds `garage.toml`, `meta/`, `data/` and `garage.log`.
    root: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
    /// The S3 API's port on 127.0.0.1.
    pub port: u16,
    /// Access key id of the key `start` made.
    pub key_id: String,
    /// Its secret.
    pub secret: String,
}

impl Garage {
    /// Starts a node, applies its layout, makes the key and the bucket `BUCKET`; panics with
    /// the log when it cannot.
    pub fn start() -> Garage {
        let bin = binary();
        let root = tempfile::Builder::new()
            .prefix("kura-garage-")
            .tempdir()
            .expect("temporary folder for Garage");
        let mut g = Garage {
            root,
            bin,
            child: None,
            port: 0,
            key_id: String::new(),
            secret: String::new(),
        };
        // a port free when asked can be taken by the time Garage binds it, rarely
        for attempt in 0..5 {
            g.port = super::common::free_port();
            g.write_config(super::common::free_port());
            if g.spawn() {
                break;
            }
            assert!(
                g.log().contains("in use") && attempt < 4,
                "Garage did not start (attempt {attempt}):\n{}",
                g.log()
            );
        }
        let node = g.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().expect("node id").to_string();
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.cli(&["layout", "apply", "--version", "1"]);
        let out = g.cli(&["key", "create", KEY_NAME]);
        let field = |label: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(label))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("garage key create: no `{label}` in:\n{out}"))
        };
        g.key_id = field("Key ID:");
        g.secret = field("Secret key:");
        g.create_bucket(BUCKET);
        g
    }

    fn write_config(&self, rpc_port: u16) {
        let dir = self.root.path();
        let config = format!(
            "metadata_dir = \"{meta}\"\n\
             data_dir = \"{data}\"\n\
             db_engine = \"sqlite\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_secret = \"{secret}\"\n\
             \n\
             [s3_api]\n\
             s3_region = \"{REGION}\"\n\
             api_bind_addr = \"127.0.0.1:{port}\"\n\
             root_domain = \".s3.garage.localhost\"\n",
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            secret = random_hex(32),
            port = self.port,
        );
        std::fs::write(self.config(), config).expect("garage.toml");
    }

    fn config(&self) -> PathBuf {
        self.root.path().join("garage.toml")
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("garage.log")).unwrap_or_default()
    }

    /// Starts `garage server`; true once its RPC answers (`node id`), false when it exited.
    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.root.path().join("garage.log")).expect("log");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config())
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            if self.try_cli(&["node", "id", "-q"]).status.success()
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "Garage did not answer within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .output()
            .expect("run garage")
    }

    /// Runs `garage ARGS` against the node; panics on failure; its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.try_cli(args);
        assert!(
            out.status.success(),
            "garage {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Makes bucket `name`, lets the key read, write and own it, and waits until the S3 API
    /// lists it (a new layout takes a moment to reach the S3 side).
    pub fn create_bucket(&self, name: &str) {
        self.cli(&["bucket", "create", name]);
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", KEY_NAME,
        ]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.s3(&["-o", "/dev/null", "-w", "%{http_code}"], name, "");
            if out.stdout == b"200" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bucket {name} does not answer on Garage's S3 API: {out:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The S3 endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The OpenDAL `s3` options that put a Kura's bytes in `bucket` under `root`.
    pub fn options(&self, bucket: &str, root: &str) -> Vec<(String, String)> {
        [
            ("bucket", bucket),
            ("endpoint", &self.endpoint()),
            ("region", REGION),
            ("access_key_id", &self.key_id),
            ("secret_access_key", &self.secret),
            ("root", root),
            // the keys above are all it may use: no ~/.aws files, no EC2 metadata service
            ("disable_config_load", "true"),
            ("disable_ec2_metadata", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// `KURA_*` settings of a server whose bytes live in `BUCKET` under `root`.
    pub fn storage_env(&self, root: &str) -> Vec<(String, String)> {
        let mut env = vec![("KURA_STORAGE__BACKEND".to_string(), "s3".to_string())];
        env.extend(self.options(BUCKET, root).into_iter().map(|(k, v)| {
            (
                format!("KURA_STORAGE__OPTIONS__{}", k.to_uppercase()),
                v.to_string(),
            )
        }));
        env
    }

    /// A signed request to Garage's S3 API (curl's SigV4) on `bucket` and `key_query`.
    fn s3(&self, args: &[&str], bucket: &str, key_query: &str) -> Output {
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{REGION}:s3"))
            .arg("--user")
            .arg(format!("{}:{}", self.key_id, self.secret))
            .args(args)
            .arg(format!("{}/{bucket}{key_query}", self.endpoint()))
            .output()
            .expect("run curl")
    }

    /// Every object of `bucket` under `prefix` as (key, size), through Garage's S3 API
    /// (ListObjectsV2, up to 1000).
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let query = format!("?list-type=2&prefix={}", encode(prefix));
        let out = self.s3(&["-f"], bucket, &query);
        assert!(out.status.success(), "ListObjectsV2 on Garage: {out:?}");
        let xml = String::from_utf8_lossy(&out.stdout).into_owned();
        let tag = |s: &str, t: &str| -> Option<String> {
            let start = s.find(&format!("<{t}>"))? + t.len() + 2;
            let end = s[start..].find(&format!("</{t}>"))? + start;
            Some(s[start..end].to_string())
        };
        xml.split("<Contents>")
            .skip(1)
            .map(|c| {
                let key = tag(c, "Key").expect("Key");
                let size = tag(c, "Size").and_then(|s| s.parse().ok()).expect("Size");
                (key, size)
            })
            .collect()
    }

    /// The bytes of object `key` of `bucket`, read through Garage's S3 API.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let out = self.s3(&["-f"], bucket, &format!("/{key}"));
        assert!(out.status.success(), "GetObject {key} on Garage: {out:?}");
        out.stdout
    }

    /// Kills the node (SIGKILL), as a crash would; the folder stays until the drop.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The node's folder (gone once the handle is dropped).
    pub fn folder(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `KURA_TEST_GARAGE_BIN`, else `garage` on PATH, else `$CARGO_HOME/bin` (`~/.cargo/bin`).
fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("KURA_TEST_GARAGE_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "KURA_TEST_GARAGE_BIN {} is no file",
            bin.display()
        );
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("garage"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let cargo = cargo_home.map(|h| h.join("bin/garage"));
    on_path
        .chain(cargo)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
            "no `garage` binary (KURA_TEST_GARAGE_BIN, PATH, ~/.cargo/bin); run ./scripts/test.sh, \
             which installs it with `cargo install garage --version 2.5.0 --locked`"
        )
        })
}

/// Percent-encoding of a query value (keys here are plain ASCII paths).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The harness's own story: a node starts, takes a signed PUT with its key and refuses a
/// wrong secret, lists what it holds, and is gone (process and folder) after the drop.
#[test]
fn garage_harness_starts_a_throwaway_node_and_removes_it() {
    let started = Instant::now();
    let g = Garage::start();
    let ready = started.elapsed();
    let folder = g.folder().to_path_buf();
    let port = g.port;
    let put = g.s3(
        &["-f", "-X", "PUT", "--data-binary", "hello garage"],
        BUCKET,
        "/dir/a.txt",
    );
    assert!(put.status.success(), "PUT: {put:?}");
    assert_eq!(g.get(BUCKET, "dir/a.txt"), b"hello garage");
    assert_eq!(g.objects(BUCKET, "dir/"), [("dir/a.txt".to_string(), 12)]);
    assert!(g.objects(BUCKET, "other/").is_empty());
    // a wrong secret is refused: the node checks signatures
    let wrong = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args([
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "--aws-sigv4",
        ])
        .arg(format!("aws:amz:{REGION}:s3"))
        .arg("--user")
        .arg(format!("{}:{}", g.key_id, "0".repeat(64)))
        .arg(format!("{}/{BUCKET}/dir/a.txt", g.endpoint()))
        .output()
        .expect("curl");
    assert_eq!(wrong.stdout, b"403", "a wrong secret was taken");
    // the options a Kura server gets name this node
    let env = g.storage_env("/k1/");
    assert!(env.contains(&("KURA_STORAGE__BACKEND".into(), "s3".into())));
    assert!(env.contains(&("KURA_STORAGE__OPTIONS__ENDPOINT".into(), g.endpoint())));
    drop(g);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "Garage still listens on {port} after the drop"
    );
    assert!(!folder.exists(), "{} is left behind", folder.display());
    eprintln!(
        "throw-away Garage: ready in {ready:?}, checked and removed in {:?}",
        started.elapsed()
    );
}
