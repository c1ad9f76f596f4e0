//! The permission matrix: owner, group and other classes x folder and file modes x operations,
//! through WebDAV and S3 with the same expectations (POSIX rules, checked once in the core).

use std::process::{Command, Output};

use crate::common::{code, require, run, S3Key, Server};

pub const PW: &str = "matrix-pw";

struct Who {
    name: &'static str,
    key: S3Key,
}

pub fn add_user(server: &Server, name: &str, args: &[&str]) {
    // `--group G` names an existing group (it may exist already)
    if let Some(i) = args.iter().position(|a| *a == "--group") {
        let _ = server.kura().args(["group", "add", args[i + 1]]).output();
    }
    server.add_user(name, PW, args);
}

pub fn dav(server: &Server, who: &str, args: &[&str]) -> u16 {
    let auth = format!("{who}:{PW}");
    let mut all = vec!["-u", auth.as_str(), "-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    code(&server.curl(&all))
}

pub fn s3(key: &S3Key, args: &[&str]) -> u16 {
    let user = format!("{}:{}", key.id, key.secret);
    let out: Output = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--user",
            &user,
        ])
        .args([
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ])
        .args(args)
        .output()
        .expect("curl");
    code(&out)
}

/// The status of a PROPPATCH of `K:mode` (the propstat's status inside a 207).
fn chmod_status(server: &Server, who: &str, path: &str, mode: &str) -> u16 {
    let body = format!(
        r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:K="urn:kura:props"><D:set><D:prop><K:mode>{mode}</K:mode></D:prop></D:set></D:propertyupdate>"#
    );
    let out = server.curl(&[
        "-u",
        &format!("{who}:{PW}"),
        "-X",
        "PROPPATCH",
        "-w",
        "\n%{http_code}",
        "--data-binary",
        &body,
        &server.dav(path),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status");
    let status: u16 = status.trim().parse().expect("code");
    if status != 207 {
        return status;
    }
    body.split("HTTP/1.1 ")
        .nth(1)
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .expect("propstat status")
}

fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

#[test]
fn permission_matrix_is_the_same_through_webdav_and_s3() {
    require("curl");
    let server = Server::plain();
    add_user(&server, "olga", &["--group", "fam"]);
    add_user(&server, "gus", &[]);
    add_user(&server, "otto", &[]);
    run(server.kura().args(["group", "add-user", "fam", "gus"]));
    run(server.kura().args([
        "bucket", "create", "space", "--group", "fam", "--owner", "olga",
    ]));
    run(server.kura().args(["chmod", "777", "/space"]));
    let people = [
        (
            6,
            Who {
                name: "olga",
                key: server.s3_key_for("olga"),
            },
        ),
        (
            3,
            Who {
                name: "gus",
                key: server.s3_key_for("gus"),
            },
        ),
        (
            0,
            Who {
                name: "otto",
                key: server.s3_key_for("otto"),
            },
        ),
    ];

    let dir_modes = [7u32, 6, 5, 3, 1];
    let file_modes = [7u32, 4, 2, 0];
    let mut checks = 0;
    let mut n = 0;
    for (shift, who) in &people {
        for d in dir_modes {
            for f in file_modes {
                n += 1;
                let dir = format!("space/c{n}");
                // the fixture, made by the owner while everything is open
                assert_eq!(
                    dav(&server, "olga", &["-X", "MKCOL", &server.dav(&dir)]),
                    201
                );
                for name in ["f", "g", "h", "h3", "f3"] {
                    let url = server.dav(&format!("{dir}/{name}"));
                    assert_eq!(
                        dav(
                            &server,
                            "olga",
                            &["-X", "PUT", "--data-binary", "content", &url]
                        ),
                        201
                    );
                }
                let dmode = format!("{:o}", d << shift);
                let fmode = format!("{:o}", f << shift);
                let files: Vec<String> = ["f", "g", "h", "h3", "f3"]
                    .iter()
                    .map(|x| format!("/{dir}/{x}"))
                    .collect();
                run(server.kura().args(["chmod", &dmode, &format!("/{dir}")]));
                run(server.kura().arg("chmod").arg(&fmode).args(&files));

                let (dr, dw, dx) = (d & 4 != 0, d & 2 != 0, d & 1 != 0);
                let (fr, fw) = (f & 4 != 0, f & 2 != 0);
                let u = |p: &str| server.dav(&format!("{dir}/{p}"));
                let s = |p: &str| server.url(&format!("/{dir}/{p}"));
                // parameters in sorted order: curl 7.88 signs the query as written
                let list_s3 =
                    server.url(&format!("/space?delimiter=%2F&list-type=2&prefix=c{n}%2F"));
                let dest = format!("Destination: {}", u("g-moved"));
                let cases: Vec<(&str, bool, u16)> = vec![
                    ("dav read", dx && fr, dav(&server, who.name, &[&u("f")])),
                    (
                        "dav list",
                        dr,
                        dav(
                            &server,
                            who.name,
                            &[
                                "-X",
                                "PROPFIND",
                                "-H",
                                "Depth: 1",
                                &server.dav(&format!("{dir}/")),
                            ],
                        ),
                    ),
                    (
                        "dav create",
                        dw && dx,
                        dav(
                            &server,
                            who.name,
                            &["-X", "PUT", "--data-binary", "x", &u("new")],
                        ),
                    ),
                    (
                        "dav overwrite",
                        dx && fw,
                        dav(
                            &server,
                            who.name,
                            &["-X", "PUT", "--data-binary", "y", &u("f")],
                        ),
                    ),
                    (
                        "dav delete",
                        dw && dx,
                        dav(&server, who.name, &["-X", "DELETE", &u("h")]),
                    ),
                    (
                        "dav rename",
                        dw && dx,
                        dav(&server, who.name, &["-X", "MOVE", "-H", &dest, &u("g")]),
                    ),
                    (
                        "dav chmod",
                        *shift == 6 && dx,
                        chmod_status(&server, who.name, &format!("{dir}/f"), &fmode),
                    ),
                    ("s3 read", dx && fr, s3(&who.key, &[&s("f3")])),
                    ("s3 list", dr, s3(&who.key, &[&list_s3])),
                    (
                        "s3 create",
                        dw && dx,
                        s3(&who.key, &["-X", "PUT", "--data-binary", "x", &s("new3")]),
                    ),
                    (
                        "s3 overwrite",
                        dx && fw,
                        s3(&who.key, &["-X", "PUT", "--data-binary", "y", &s("f3")]),
                    ),
                    (
                        "s3 delete",
                        dw && dx,
                        s3(&who.key, &["-X", "DELETE", &s("h3")]),
                    ),
                ];
                for (op, allowed, status) in cases {
                    checks += 1;
                    assert_eq!(
                        ok(status),
                        allowed,
                        "{op} by {} with folder {dmode} file {fmode}: HTTP {status}",
                        who.name
                    );
                    if !allowed {
                        assert_eq!(
                            status, 403,
                            "{op} by {} refused with {status}, not 403",
                            who.name
                        );
                    }
                }
            }
        }
    }
    println!(
        "permission matrix: {n} mode combinations x 12 operations = {checks} checks, WebDAV and S3"
    );
}

#[test]
fn buckets_are_created_and_listed_by_right() {
    require("curl");
    let server = Server::plain();
    add_user(&server, "maker", &["--group", "team", "--create-buckets"]);
    add_user(&server, "viewer", &[]);
    let viewer = server.s3_key_for("viewer");
    let maker = server.s3_key_for("maker");
    // EasyFS: creating a folder in a root without the right: 403, nothing created
    assert_eq!(
        dav(&server, "viewer", &["-X", "MKCOL", &server.dav("nope")]),
        403
    );
    assert_eq!(s3(&viewer, &["-X", "PUT", &server.url("/nope2")]), 403);
    assert_eq!(server.status(&["-I", &server.dav("nope/")]), 404);
    assert!(crate::common::tree(&server.files_dir()).is_empty());
    // a bucket creator's bucket belongs to its primary group
    assert_eq!(s3(&maker, &["-X", "PUT", &server.url("/teamspace")]), 200);
    assert_eq!(
        dav(&server, "maker", &["-X", "MKCOL", &server.dav("teamdocs")]),
        201
    );
    let props = String::from_utf8_lossy(
        &server
            .curl(&[
                "-u",
                &format!("maker:{PW}"),
                "-X",
                "PROPFIND",
                "-H",
                "Depth: 1",
                &server.dav(""),
            ])
            .stdout,
    )
    .into_owned();
    assert!(
        props.contains("/dav/teamspace/") && props.contains("/dav/teamdocs/"),
        "{props}"
    );
    // a closed bucket is not listed for others, an open one is
    run(server.kura().args(["chmod", "770", "/teamspace"]));
    let listing = |who: &str| {
        String::from_utf8_lossy(
            &server
                .curl(&[
                    "-u",
                    &format!("{who}:{PW}"),
                    "-X",
                    "PROPFIND",
                    "-H",
                    "Depth: 1",
                    &server.dav(""),
                ])
                .stdout,
        )
        .into_owned()
    };
    let seen = listing("viewer");
    assert!(
        !seen.contains("/dav/teamspace/") && seen.contains("/dav/teamdocs/"),
        "{seen}"
    );
    assert!(listing("maker").contains("/dav/teamspace/"));
    // only the owner or an administrator changes modes; an administrator changes owners
    assert_eq!(
        dav(
            &server,
            "viewer",
            &["-X", "DELETE", &server.dav("teamdocs")]
        ),
        403
    );
}

fn proppatch(server: &Server, who: &str, path: &str, prop: &str, value: &str) -> String {
    let body = format!(
        r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:K="urn:kura:props"><D:set><D:prop><K:{prop}>{value}</K:{prop}></D:prop></D:set></D:propertyupdate>"#
    );
    let out = server.curl(&[
        "-u",
        &format!("{who}:{PW}"),
        "-X",
        "PROPPATCH",
        "--data-binary",
        &body,
        &server.dav(path),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kura_props(server: &Server, who: &str, path: &str) -> String {
    let body = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:K="urn:kura:props"><D:prop><K:owner/><K:group/><K:mode/></D:prop></D:propfind>"#;
    let out = server.curl(&[
        "-u",
        &format!("{who}:{PW}"),
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 0",
        "--data-binary",
        body,
        &server.dav(path),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn owner_group_and_mode_as_webdav_properties_and_s3_acl_views() {
    require("curl");
    let server = Server::plain();
    add_user(&server, "olga", &["--group", "fam"]);
    add_user(&server, "gus", &[]);
    run(server.kura().args(["group", "add-user", "fam", "gus"]));
    run(server.kura().args(["group", "add", "other"]));
    run(server.kura().args([
        "bucket", "create", "shared", "--group", "fam", "--owner", "olga",
    ]));
    assert_eq!(
        dav(
            &server,
            "olga",
            &["-X", "PUT", "--data-binary", "x", &server.dav("shared/doc")]
        ),
        201
    );
    let p = kura_props(&server, "gus", "shared/doc");
    assert!(
        p.contains(">olga</K:owner>")
            && p.contains(">fam</K:group>")
            && p.contains(">664</K:mode>"),
        "{p}"
    );

    // only the owner changes the mode; the group only to one of the owner's groups
    assert!(proppatch(&server, "gus", "shared/doc", "mode", "600").contains("403 Forbidden"));
    assert!(proppatch(&server, "olga", "shared/doc", "mode", "640").contains("200 OK"));
    assert!(proppatch(&server, "olga", "shared/doc", "group", "other").contains("403 Forbidden"));
    assert!(proppatch(&server, "olga", "shared/doc", "owner", "gus").contains("403 Forbidden"));
    assert!(proppatch(&server, "olga", "shared/doc", "mode", "999").contains("403 Forbidden"));
    let p = kura_props(&server, "olga", "shared/doc");
    assert!(
        p.contains(">640</K:mode>") && p.contains(">olga</K:owner>"),
        "{p}"
    );
    // the group may read but no longer write
    assert_eq!(dav(&server, "gus", &[&server.dav("shared/doc")]), 200);
    assert_eq!(
        dav(
            &server,
            "gus",
            &["-X", "PUT", "--data-binary", "y", &server.dav("shared/doc")]
        ),
        403
    );

    // S3 shows the same as an ACL view: owner FULL_CONTROL, group:fam READ, nothing for all
    let key = server.s3_key_for("gus");
    let user = format!("{}:{}", key.id, key.secret);
    let get_acl = || {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--user",
                &user,
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            ])
            .arg(server.url("/shared/doc?acl="))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let acl = get_acl();
    assert!(
        acl.contains("<ID>olga</ID>") && acl.contains("FULL_CONTROL"),
        "{acl}"
    );
    assert!(
        acl.contains("<ID>group:fam</ID>") && acl.contains("<Permission>READ</Permission>"),
        "{acl}"
    );
    assert!(!acl.contains("AllUsers"), "{acl}");

    // the others class is every logged-in user, never the anonymous public (refused anyway)
    run(server.kura().args(["chmod", "664", "/shared/doc"]));
    let acl = get_acl();
    assert!(
        acl.contains("groups/global/AuthenticatedUsers") && !acl.contains("AllUsers"),
        "{acl}"
    );
}
