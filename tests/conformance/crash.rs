//! Crash safety: kill -9 in the middle of large uploads leaves no partial file and no drift.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{require, run, tree, Server, ADMIN_PW};

const GIB: u64 = 1 << 30;

fn hrefs(server: &Server) -> Vec<String> {
    let out = server
        .curl_admin(&["-X", "PROPFIND", "-H", "Depth: 1", &server.dav("cb/")])
        .stdout;
    let text = String::from_utf8_lossy(&out);
    let mut v: Vec<String> = text
        .split("<D:href>")
        .skip(1)
        .filter_map(|s| s.split("</D:href>").next())
        .filter(|h| *h != "/dav/cb/")
        .map(|h| h.trim_start_matches("/dav/cb/").to_string())
        .collect();
    v.sort();
    v
}

fn etag(server: &Server, path: &str) -> String {
    let out = server.curl_admin(&["-I", &server.dav(path)]).stdout;
    String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("etag:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn temp_bytes(server: &Server) -> Vec<u64> {
    std::fs::read_dir(server.data_dir().join("tmp"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_during_uploads_leaves_no_partial_file_and_no_leftovers() {
    require("curl");
    let mut server = Server::plain();
    // a bucket whose group has a quota, so the usage counters are exercised too
    run(server.kura().args(["group", "add", "cg"]));
    run(server
        .kura()
        .args(["bucket", "create", "cb", "--group", "cg"]));
    run(server
        .kura()
        .args(["quota", "set", "cg", "--bytes", "5GiB"]));
    assert_eq!(server.put("cb/doc.txt", b"old version"), 201);
    let old_etag = etag(&server, "cb/doc.txt");

    // a new 1 GiB file and a 1 GiB overwrite, both slowed so the kill lands mid-transfer
    let uploads: Vec<_> = ["cb/new.bin", "cb/doc.txt"]
        .iter()
        .map(|name| {
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "head -c {GIB} /dev/zero | curl -sS --limit-rate 40M -u admin:{ADMIN_PW} -T - '{}'",
                    server.dav(name)
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("upload")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sizes = temp_bytes(&server);
        if sizes.len() == 2 && sizes.iter().all(|s| *s > 100 << 20) {
            println!(
                "crash: killing the server with uploads at {:?} bytes",
                sizes
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "uploads did not progress: {sizes:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill9();
    for mut u in uploads {
        let status = u.wait().expect("curl");
        assert!(
            !status.success(),
            "an upload claimed success although the server died"
        );
    }
    assert_eq!(
        temp_bytes(&server).len(),
        2,
        "the kill left no temporary files to sweep?"
    );

    server.start_again();
    assert!(
        temp_bytes(&server).is_empty(),
        "temporary leftovers after start"
    );
    assert!(
        server
            .log()
            .contains("removed leftovers of interrupted uploads"),
        "{}",
        server.log()
    );
    assert_eq!(
        server.status(&["-I", &server.dav("cb/new.bin")]),
        404,
        "partial new file visible"
    );
    assert_eq!(
        server.get("cb/doc.txt"),
        b"old version",
        "overwrite damaged the old version"
    );
    assert_eq!(etag(&server, "cb/doc.txt"), old_etag);
    let stored = tree(&server.files_dir().join("cb"));
    assert_eq!(stored, vec!["doc.txt".to_string()]);
    assert_eq!(hrefs(&server), stored, "metadata rows do not match storage");
    let fsck = run(server.kura().arg("fsck"));
    assert!(
        String::from_utf8_lossy(&fsck.stdout).contains("no drift"),
        "usage drift after the crash"
    );
    let usage =
        String::from_utf8_lossy(&run(server.kura().args(["usage", "cg"])).stdout).into_owned();
    assert!(usage.contains("cg\t11\t"), "usage after the crash: {usage}");
}
