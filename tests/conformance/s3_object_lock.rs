//! S3 object lock against a real server: boto3 and WebDAV (retention, legal hold, default
//! retention, bypass, a locked version kept through every protocol's writes and deletes), then
//! Kura's own purges (`kura versions prune`, `kura trash empty`) keep locked versions.

use crate::common::{boto3_with_other_user, require, run, Server};

#[test]
fn object_lock_through_boto3_webdav_and_purges() {
    require("aws");
    let server = Server::plain();
    let out = boto3_with_other_user(&server, "s3_object_lock.py");
    let id_of = |tag: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(tag))
            .and_then(|l| l.split_whitespace().nth(1))
            .expect("version id printed")
            .to_string()
    };
    let (locked, free) = (id_of("LOCKED "), id_of("FREE "));
    // a policy that keeps nothing, then every purge Kura has: the locked version stays
    run(server.kura().args([
        "bucket",
        "set",
        "vault",
        "--keep-days",
        "0",
        "--trash-days",
        "0",
    ]));
    run(server.kura().args(["versions", "prune"]));
    run(server.kura().args(["trash", "empty"]));
    let key = server.s3_key();
    let dir = tempfile::tempdir().expect("dir");
    let target = dir.path().join("out");
    let get = |k: &str, id: &str| {
        server
            .aws(&key)
            .args(["s3api", "get-object", "--bucket", "vault", "--key", k])
            .args(["--version-id", id])
            .arg(&target)
            .output()
            .expect("aws")
    };
    let kept = get("comp.txt", &locked);
    assert!(
        kept.status.success(),
        "{}",
        String::from_utf8_lossy(&kept.stderr)
    );
    assert_eq!(std::fs::read(&target).expect("read"), b"c1");
    // its delete is kept whole: the marker above it too
    let listed = run(server.aws(&key).args([
        "s3api",
        "list-object-versions",
        "--bucket",
        "vault",
        "--prefix",
        "comp.txt",
    ]));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(
        listed["DeleteMarkers"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["DeleteMarkers"][0]["IsLatest"], true);
    let gone = get("free.txt", &free);
    assert!(
        !gone.status.success(),
        "the unlocked noncurrent version was purged"
    );
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NoSuchVersion"));
    // the lock changes, the bypassed delete and the versioning switch are in the audit trail
    let audit = run(server.kura().args(["audit", "--json"]));
    let audit = String::from_utf8_lossy(&audit.stdout);
    for action in ["object_lock", "version_delete", "versioning"] {
        assert!(
            audit.contains(&format!("\"{action}\"")),
            "{action}: {audit}"
        );
    }
    // and the store is consistent after all of it
    let fsck = run(server.kura().arg("fsck"));
    assert!(fsck.status.success());
}
