//! The S3 versioning API against a real server: boto3 (every rule of AWS's versioning, and
//! attacks), aws-cli's s3api, and WebDAV writes seen as S3 versions of the same data.

use std::process::Output;

use crate::common::{boto3_with_other_user, require, run, Server};

/// boto3: Put/GetBucketVersioning, ids, null versions, delete markers (404 and 405), permanent
/// deletes, copies from versions, suspended versioning, DeleteObjects with versions, paged
/// listings; another user, bad version ids, versions of an unreadable file.
#[test]
fn versioning_through_boto3() {
    boto3_with_other_user(&Server::plain(), "s3_versioning.py");
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// aws-cli's s3api: put-bucket-versioning, list-object-versions, get-object --version-id,
/// delete markers, delete-objects with versions; WebDAV overwrites and deletes of the same
/// bucket are S3 versions and markers too (one model for every protocol).
#[test]
fn versioning_through_aws_cli_and_webdav() {
    require("aws");
    require("curl");
    let server = Server::plain();
    let key = server.s3_key();
    let aws = |args: &[&str]| run(server.aws(&key).arg("s3api").args(args));
    aws(&["create-bucket", "--bucket", "cli"]);
    let state = json(&aws(&["get-bucket-versioning", "--bucket", "cli"]));
    assert!(state.get("Status").is_none(), "{state}");
    aws(&[
        "put-bucket-versioning",
        "--bucket",
        "cli",
        "--versioning-configuration",
        "Status=Enabled",
    ]);
    let state = json(&aws(&["get-bucket-versioning", "--bucket", "cli"]));
    assert_eq!(state["Status"], "Enabled");

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("f");
    let mut ids = Vec::new();
    for body in ["first", "second"] {
        std::fs::write(&file, body).expect("write");
        let put = json(&aws(&[
            "put-object",
            "--bucket",
            "cli",
            "--key",
            "doc.txt",
            "--body",
            file.to_str().expect("path"),
        ]));
        ids.push(put["VersionId"].as_str().expect("VersionId").to_string());
    }
    // WebDAV writes and deletes in the same bucket are versions too
    let s = server.put("cli/doc.txt", b"third over webdav");
    assert_eq!(s, 204, "{}", server.log());
    let listed = json(&aws(&["list-object-versions", "--bucket", "cli"]));
    let versions = listed["Versions"].as_array().expect("Versions");
    assert_eq!(versions.len(), 3, "{listed}");
    assert_eq!(versions[0]["IsLatest"], true);
    assert_eq!(versions[1]["VersionId"], ids[1].as_str());
    assert_eq!(versions[2]["VersionId"], ids[0].as_str());

    let out = dir.path().join("out");
    let got = json(&aws(&[
        "get-object",
        "--bucket",
        "cli",
        "--key",
        "doc.txt",
        "--version-id",
        &ids[0],
        out.to_str().expect("path"),
    ]));
    assert_eq!(got["VersionId"], ids[0].as_str());
    assert_eq!(std::fs::read(&out).expect("read"), b"first");

    // a WebDAV DELETE leaves a delete marker S3 lists
    assert_eq!(
        server.status(&["-X", "DELETE", &server.dav("cli/doc.txt")]),
        204
    );
    let listed = json(&aws(&["list-object-versions", "--bucket", "cli"]));
    let markers = listed["DeleteMarkers"].as_array().expect("DeleteMarkers");
    assert_eq!(markers.len(), 1, "{listed}");
    assert_eq!(markers[0]["IsLatest"], true);
    let marker = markers[0]["VersionId"].as_str().expect("id").to_string();
    let refused = server
        .aws(&key)
        .args([
            "s3api",
            "head-object",
            "--bucket",
            "cli",
            "--key",
            "doc.txt",
        ])
        .output()
        .expect("aws");
    assert!(!refused.status.success());

    // delete-objects: the marker and the oldest version, by id
    let spec = format!(
        r#"{{"Objects":[{{"Key":"doc.txt","VersionId":"{marker}"}},{{"Key":"doc.txt","VersionId":"{}"}}]}}"#,
        ids[0]
    );
    let res = json(&aws(&[
        "delete-objects",
        "--bucket",
        "cli",
        "--delete",
        &spec,
    ]));
    assert_eq!(res["Deleted"].as_array().map(Vec::len), Some(2), "{res}");
    // the marker gone, the WebDAV version is current again and readable over WebDAV
    assert_eq!(server.get("cli/doc.txt"), b"third over webdav");
    let listed = json(&aws(&["list-object-versions", "--bucket", "cli"]));
    assert!(listed.get("DeleteMarkers").is_none(), "{listed}");
    assert_eq!(
        listed["Versions"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
}
