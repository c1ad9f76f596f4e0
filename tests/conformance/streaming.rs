//! Streaming: 2 GiB up and down, with and without Content-Length, in bounded server memory.

use std::io::{Read, Seek, SeekFrom};
use std::process::Command;

use crate::common::{require, run, sha256_file, Server, ADMIN_PW};

const SIZE: u64 = 2 << 30;
const RSS_LIMIT_KIB: u64 = 200 * 1024;

fn get_sha(server: &Server, path: &str) -> String {
    let out = run(Command::new("bash").arg("-c").arg(format!(
        "set -o pipefail; curl -sSf -u admin:{ADMIN_PW} '{}' | sha256sum",
        server.dav(path)
    )));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sum")
        .to_string()
}

#[test]
fn two_gib_put_and_get_in_bounded_memory() {
    require("curl");
    let server = Server::plain();
    let dir = tempfile::tempdir().expect("dir");
    let big = dir.path().join("big.bin");
    run(Command::new("sh")
        .arg("-c")
        .arg(format!("head -c {SIZE} /dev/urandom > '{}'", big.display())));
    let want = sha256_file(&big);
    let big_s = big.to_str().expect("utf8");

    // with Content-Length
    let t = std::time::Instant::now();
    assert_eq!(
        server.status(&["-T", big_s, &server.dav("big-cl.bin")]),
        201
    );
    let put_secs = t.elapsed().as_secs_f64();
    // chunked transfer encoding, no length (curl reads stdin)
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "curl -sS -o /dev/null -w '%{{http_code}}' -u admin:{ADMIN_PW} -H 'Transfer-Encoding: chunked' -T - '{}' < '{big_s}'",
        server.dav("big-chunked.bin")
    )));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201");

    let t = std::time::Instant::now();
    assert_eq!(get_sha(&server, "big-cl.bin"), want);
    let get_secs = t.elapsed().as_secs_f64();
    assert_eq!(get_sha(&server, "big-chunked.bin"), want);

    // a range from the middle
    let range = server
        .curl_admin(&[
            "-sf",
            "-r",
            "1073741824-1073742847",
            &server.dav("big-cl.bin"),
        ])
        .stdout;
    let mut expect = vec![0u8; 1024];
    let mut f = std::fs::File::open(&big).expect("open");
    f.seek(SeekFrom::Start(1 << 30)).expect("seek");
    f.read_exact(&mut expect).expect("read");
    assert_eq!(range, expect);

    let stored = std::fs::metadata(server.files_dir().join("big-cl.bin"))
        .expect("stored")
        .len();
    assert_eq!(stored, SIZE);
    let hwm = server.vm_hwm_kib();
    println!(
        "streaming: 2 GiB PUT {:.0} MiB/s, GET+sha256 {:.0} MiB/s, server peak RSS (VmHWM) {} MiB",
        2048.0 / put_secs,
        2048.0 / get_secs,
        hwm / 1024
    );
    assert!(
        hwm < RSS_LIMIT_KIB,
        "server peak RSS {hwm} KiB is over {RSS_LIMIT_KIB} KiB"
    );
}
