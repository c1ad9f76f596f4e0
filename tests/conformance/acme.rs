//! Certificates without effort: Kura against Debian's `pebble` (Let's Encrypt's ACME test
//! server) on 127.0.0.1, with `pebble-challtestsrv` as its DNS so that pebble really validates
//! Kura's tls-alpn-01 and http-01 answers; and hot reload of the operator's own files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, require, run, Server, ADMIN_PW};

/// The test name Kura orders a certificate for (resolved to 127.0.0.1 by challtestsrv).
const NAME: &str = "files.kura.test";

/// A CA and a certificate for 127.0.0.1 for pebble's own HTTPS (openssl: Go 1.19's TLS in
/// Debian's pebble fails handshakes with rcgen's keys).
const WFE_CERTS: &str = "set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout wfe-ca-key.pem -out wfe-ca.pem -subj /CN=wfe-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout wfe-key.pem -out wfe.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > wfe.ext
openssl x509 -req -in wfe.csr -CA wfe-ca.pem -CAkey wfe-ca-key.pem -CAcreateserial \
  -days 2 -extfile wfe.ext -out wfe.pem 2>/dev/null";

/// pebble and its DNS, killed when dropped.
struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    dir: tempfile::TempDir,
    port: u16,
    mgmt: u16,
}

impl Pebble {
    /// Starts pebble issuing certificates valid for `validity` seconds, validating tls-alpn-01
    /// on `tls_port` and http-01 on `http_port` of whatever the test name resolves to.
    /// Retries with fresh ports when pebble or its DNS dies at start (a port taken by
    /// another test between `free_port` and the bind) or is not up in time under load.
    fn start(validity: u64, tls_port: u16, http_port: u16) -> Pebble {
        require("pebble");
        require("pebble-challtestsrv");
        for attempt in 1..=3 {
            if let Some(p) = Pebble::try_start(validity, tls_port, http_port) {
                return p;
            }
            eprintln!("pebble did not come up (attempt {attempt} of 3), retrying");
        }
        panic!("pebble did not come up in three attempts");
    }

    /// One start of pebble and its DNS; None (both killed on drop) if either exits or pebble's
    /// directory does not answer within 60 seconds.
    fn try_start(validity: u64, tls_port: u16, http_port: u16) -> Option<Pebble> {
        let dir = tempfile::tempdir().expect("tempdir");
        // pebble's own HTTPS (directory and management) under a throwaway CA
        run(Command::new("sh")
            .current_dir(dir.path())
            .arg("-c")
            .arg(WFE_CERTS));
        let (port, mgmt, dns_port) = (free_port(), free_port(), free_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.path().join("wfe.pem"),
            "privateKey": dir.path().join("wfe-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity,
        }});
        let cfg_path = dir.path().join("pebble.json");
        std::fs::write(&cfg_path, config.to_string()).expect("write");
        let log = |n: &str| std::fs::File::create(dir.path().join(n)).expect("log");
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .stdout(log("dns.log"))
            .stderr(log("dns.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&cfg_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // no random validation delay, no rejected nonces, every order validated afresh
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pebble");
        let mut p = Pebble {
            pebble: Some(pebble),
            dns,
            dir,
            port,
            mgmt,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while p.fetch(&p.directory()).is_none() {
            let pebble_exited = p
                .pebble
                .as_mut()
                .map(|c| c.try_wait().ok().flatten().is_some());
            let dns_exited = p.dns.try_wait().ok().flatten().is_some();
            if pebble_exited != Some(false) || dns_exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(p.dir.path().join("dns.err")).unwrap_or_default();
                eprintln!("pebble-challtestsrv's errors: {log}");
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(p)
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The CA of pebble's own HTTPS, for `tls_acme_ca`.
    fn wfe_ca(&self) -> PathBuf {
        self.dir.path().join("wfe-ca.pem")
    }

    fn fetch(&self, url: &str) -> Option<Vec<u8>> {
        let out = Command::new("curl")
            .args(["-sSf", "--cacert"])
            .arg(self.wfe_ca())
            .arg(url)
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// pebble's issuing root, from its management interface, for clients to trust.
    fn root(&self) -> PathBuf {
        let pem = self
            .fetch(&format!("https://127.0.0.1:{}/roots/0", self.mgmt))
            .expect("pebble root");
        let p = self.dir.path().join("root.pem");
        std::fs::write(&p, pem).expect("write root");
        p
    }

    /// The Kura settings for this CA.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KURA_TLS_ACME_DOMAINS".into(), format!("[\"{NAME}\"]")),
            ("KURA_TLS_ACME_EMAIL".into(), "admin@kura.test".into()),
            ("KURA_TLS_ACME_DIRECTORY".into(), self.directory()),
            (
                "KURA_TLS_ACME_CA".into(),
                self.wfe_ca().display().to_string(),
            ),
        ]
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.pebble.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}

fn start_kura(port: u16, env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start_on(port, true, &env)
}

/// Subject, issuer, serial and expiry of each certificate a new connection to `port` gets for
/// `name`, as openssl prints them.
fn served_chain(port: u16, name: &str) -> Vec<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-showcerts", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", name])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut chain = Vec::new();
    for block in text.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let Some((body, _)) = block.split_once("-----END CERTIFICATE-----") else {
            continue;
        };
        let pem = format!("-----BEGIN CERTIFICATE-----{body}-----END CERTIFICATE-----\n");
        let mut x = Command::new("openssl")
            .args([
                "x509", "-noout", "-subject", "-issuer", "-serial", "-enddate",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl x509");
        x.stdin
            .take()
            .expect("stdin")
            .write_all(pem.as_bytes())
            .expect("write");
        let o = x.wait_with_output().expect("openssl x509");
        chain.push(
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .replace('\n', "; "),
        );
    }
    chain
}

fn serial(chain: &[String]) -> String {
    let leaf = chain.first().expect("no certificate served");
    leaf.split("; ")
        .find_map(|f| f.strip_prefix("serial="))
        .expect("serial")
        .to_string()
}

/// curl to `NAME` on `port`, trusting only `root`: the HTTP status, or the failure.
fn curl_verified(port: u16, root: &Path, args: &[&str], path: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "--resolve"])
        .arg(format!("{NAME}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(root)
        .args(args)
        .arg(format!("https://{NAME}:{port}{path}"))
        .output()
        .expect("curl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Waits until new connections get a certificate pebble's root verifies.
fn wait_acme_certificate(server: &Server, root: &Path, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match curl_verified(server.port, root, &["-o", "/dev/null"], "/healthz") {
            Ok(_) => return,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no ACME certificate after {secs} s ({e}):\n{}",
                server.log()
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn tls_status(server: &Server) -> String {
    String::from_utf8_lossy(&run(server.kura().args(["tls", "status"])).stdout).into_owned()
}

#[test]
fn acme_certificate_from_pebble_is_renewed_under_an_open_download() {
    require("curl");
    require("openssl");
    let port = free_port();
    // 24 s certificates: Kura renews with a third left, about 16 s after each issuance
    let pebble = Pebble::start(24, port, free_port());
    let server = start_kura(port, &pebble.env());
    let root = pebble.root();
    wait_acme_certificate(&server, &root, 30);

    let first = served_chain(port, NAME);
    println!("certificate chain obtained from pebble (tls-alpn-01 validated on Kura's port):");
    for c in &first {
        println!("  {c}");
    }
    assert!(first[0].contains(NAME), "leaf not for {NAME}: {first:?}");
    assert!(first.len() >= 2, "intermediate not sent: {first:?}");
    let status = tls_status(&server);
    println!("kura tls status:\n{status}");
    assert!(status.contains("source:       acme"), "{status}");
    assert!(status.contains("succeeded"), "{status}");
    // `kura status` names the certificate in use, not the self-signed one the server started with
    let in_use = status
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint:  sha256 "))
        .expect("fingerprint line")
        .to_string();
    let overview = String::from_utf8_lossy(&run(server.kura().arg("status")).stdout).into_owned();
    assert!(
        overview.contains(&format!("fingerprint {in_use}")),
        "kura status shows another certificate:\n{overview}"
    );
    let health =
        curl_verified(port, &root, &["-D", "-", "-o", "/dev/null"], "/healthz").expect("healthz");
    assert!(
        health
            .to_ascii_lowercase()
            .contains("kura-cert-days-left: 0"),
        "days to expiry missing: {health}"
    );

    // 6 MiB read at 256 KiB/s: about 24 s on one connection, across a renewal
    let data: Vec<u8> = (0..6 * 1024 * 1024u32)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let src = server.root.path().join("big.bin");
    std::fs::write(&src, &data).expect("write");
    let auth = format!("admin:{ADMIN_PW}");
    let upload = src.to_str().expect("utf8");
    let put = curl_verified(
        port,
        &root,
        &["-fo/dev/null", "-u", &auth, "-T", upload],
        "/dav/big.bin",
    );
    assert!(put.is_ok(), "upload failed: {put:?}");
    let dst = server.root.path().join("download.bin");
    let mut download = Command::new("curl")
        .args(["-sS", "--limit-rate", "256k", "-u", &auth, "--resolve"])
        .arg(format!("{NAME}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(&root)
        .arg("-o")
        .arg(&dst)
        .arg(format!("https://{NAME}:{port}/dav/big.bin"))
        .spawn()
        .expect("curl download");
    let before = serial(&first);
    let deadline = Instant::now() + Duration::from_secs(30);
    let renewed = loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = served_chain(port, NAME);
        if !now.is_empty() && serial(&now) != before {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "no renewal within 30 s:\n{}",
            server.log()
        );
    };
    assert!(
        download.try_wait().expect("wait").is_none(),
        "the download ended before the renewal: the test proves nothing"
    );
    println!("renewed while the download ran: {}", renewed[0]);
    assert!(curl_verified(port, &root, &["-o", "/dev/null"], "/healthz").is_ok());
    let done = download.wait().expect("download");
    assert!(done.success(), "download broken by the renewal");
    assert!(
        std::fs::read(&dst).expect("read") == data,
        "download not byte-equal"
    );
    assert!(server.log().contains("ACME certificate obtained"));
}

#[test]
fn acme_failure_keeps_the_old_certificate_and_is_reported() {
    require("curl");
    require("openssl");
    let port = free_port();
    // 30 s certificates: the renewal attempt comes about 20 s after issuance
    let mut pebble = Pebble::start(30, port, free_port());
    let mut server = start_kura(port, &pebble.env());
    let root = pebble.root();
    wait_acme_certificate(&server, &root, 30);
    let obtained = serial(&served_chain(port, NAME));
    let files = server.data_dir().join("tls/acme");
    for f in ["cert.pem", "key.pem"] {
        assert!(files.join(f).exists(), "{f} not kept in the data dir");
    }
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(files.join("key.pem"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(key_mode & 0o077, 0, "private key readable by others");

    // a restart serves the stored certificate at once, without a new order
    server.restart();
    assert_eq!(serial(&served_chain(port, NAME)), obtained);
    assert!(curl_verified(port, &root, &["-o", "/dev/null"], "/healthz").is_ok());

    pebble.stop();
    let deadline = Instant::now() + Duration::from_secs(40);
    while !server.log().contains("ACME renewal failed") {
        assert!(
            Instant::now() < deadline,
            "no failure logged:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let line = server
        .log()
        .lines()
        .find(|l| l.contains("ACME renewal failed"))
        .map(str::to_string)
        .unwrap_or_default();
    println!("logged: {line}");
    assert_eq!(serial(&served_chain(port, NAME)), obtained);
    curl_verified(port, &root, &["-o", "/dev/null"], "/healthz")
        .expect("the old certificate no longer verifies");
    let status = tls_status(&server);
    println!("kura tls status:\n{status}");
    assert!(status.contains("FAILED (1 in a row)"), "{status}");
    assert!(status.contains("Connection refused"), "no reason: {status}");
    assert!(status.contains("source:       acme"), "{status}");

    // the next try is a minute away; SIGHUP makes it now (and does not end the server)
    run(Command::new("kill").args(["-HUP", &server.pid().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !tls_status(&server).contains("FAILED (2 in a row)") {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not retry:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(serial(&served_chain(port, NAME)), obtained);
}

#[test]
fn http01_listener_validates_and_cannot_be_steered_or_held() {
    require("curl");
    let (port, http_port) = (free_port(), free_port());
    // tls-alpn-01 would go to a closed port: only http-01 can succeed
    let pebble = Pebble::start(3600, free_port(), http_port);
    let mut env = pebble.env();
    env.push((
        "KURA_TLS_ACME_HTTP_LISTEN".into(),
        format!("127.0.0.1:{http_port}"),
    ));
    let server = start_kura(port, &env);
    let root = pebble.root();
    wait_acme_certificate(&server, &root, 30);
    // a client that never finishes its request is cut off (header timeout, 10 s)
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", http_port)).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let slow_since = Instant::now();

    let head = |host: &str, path: &str| {
        let out = run(Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
                "-H",
            ])
            .arg(format!("Host: {host}"))
            .arg(format!("http://127.0.0.1:{http_port}{path}")));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        head(NAME, "/dav/a%20b?x=1"),
        format!("308 https://{NAME}:{port}/dav/a%20b?x=1")
    );
    // a forged Host is not where the redirect goes
    assert_eq!(
        head("evil.example", "/"),
        format!("308 https://{NAME}:{port}/")
    );
    // no pending challenge: nothing to read, whatever the token
    assert!(head(NAME, "/.well-known/acme-challenge/abc").starts_with("404"));
    assert!(head(NAME, "/.well-known/acme-challenge/..%2f..%2fkura.db").starts_with("404"));
    // a validation handshake without a pending challenge gets no certificate
    let forged = Command::new("openssl")
        .args([
            "s_client",
            "-alpn",
            "acme-tls/1",
            "-servername",
            NAME,
            "-connect",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    assert!(
        !String::from_utf8_lossy(&forged.stdout).contains("BEGIN CERTIFICATE")
            && !String::from_utf8_lossy(&forged.stdout).contains("Server certificate"),
        "acme-tls/1 handshake got a certificate"
    );
    // an oversized request head is refused and the listener goes on
    let big = format!("X-Big: {}", "a".repeat(64 * 1024));
    let out = run(Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", &big])
        .arg(format!("http://127.0.0.1:{http_port}/")));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "431");
    assert!(head(NAME, "/").starts_with("308"));

    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let held = slow_since.elapsed();
    assert!(
        held < Duration::from_secs(20),
        "a stalled request held its connection {held:?}"
    );
    assert!(curl_verified(port, &root, &["-o", "/dev/null"], "/healthz").is_ok());
}

/// A self-signed pair for `localhost` (PEM chain, PEM key).
fn pair() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

fn curl_localhost(port: u16, ca: &Path) -> bool {
    Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--cacert"])
        .arg(ca)
        .arg(format!("https://localhost:{port}/healthz"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn replaced_certificate_files_serve_new_connections_without_a_restart() {
    require("curl");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (ca_a, ca_b) = (dir.path().join("a.pem"), dir.path().join("b.pem"));
    let (a_cert, a_key) = pair();
    let (b_cert, b_key) = pair();
    std::fs::write(&cert, &a_cert).expect("write");
    std::fs::write(&key, &a_key).expect("write");
    std::fs::write(&ca_a, &a_cert).expect("write");
    std::fs::write(&ca_b, &b_cert).expect("write");
    let server = Server::start_with(
        true,
        &[
            ("KURA_TLS_CERT", cert.to_str().expect("utf8")),
            ("KURA_TLS_KEY", key.to_str().expect("utf8")),
        ],
    );
    assert!(curl_localhost(server.port, &ca_a));
    assert!(!curl_localhost(server.port, &ca_b));

    // a certificate with a key that is not its own is refused; A keeps serving
    std::fs::write(&cert, &b_cert).expect("write");
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        curl_localhost(server.port, &ca_a),
        "half-replaced pair taken"
    );
    assert!(server.log().contains("could not be used"));

    // SIGHUP reloads (and does not end the server)
    std::fs::write(&key, &b_key).expect("write");
    run(Command::new("kill").args(["-HUP", &server.pid().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !curl_localhost(server.port, &ca_b) {
        assert!(
            Instant::now() < deadline,
            "new files not served:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !curl_localhost(server.port, &ca_a),
        "old certificate still served"
    );

    // and without a signal, the watch picks up the next pair by itself
    std::fs::write(&key, &a_key).expect("write");
    std::fs::write(&cert, &a_cert).expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !curl_localhost(server.port, &ca_a) {
        assert!(Instant::now() < deadline, "watch did not reload");
        std::thread::sleep(Duration::from_millis(200));
    }
    let status =
        String::from_utf8_lossy(&run(server.kura().args(["tls", "status"])).stdout).into_owned();
    assert!(status.contains("source:       files"), "{status}");
}
