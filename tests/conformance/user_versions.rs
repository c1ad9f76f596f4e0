//! The user API's versions, trash and restore (docs/versions.md): a user sees and restores
//! only what the core lets her read and write; others see nothing of it.

use crate::common::{run, Server};

fn as_user(server: &Server, who: &str, args: &[&str]) -> (u16, serde_json::Value) {
    let mut all = vec!["-s", "-w", "\n%{http_code}", "-u", who];
    all.extend_from_slice(args);
    let out = server.curl(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status");
    (
        status.trim().parse().expect("status"),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn put(server: &Server, who: &str, path: &str, body: &str) -> u16 {
    server.status_as(
        who,
        &["-X", "PUT", "--data-binary", body, &server.dav(path)],
    )
}

#[test]
fn users_see_and_restore_only_what_they_may_read_and_write() {
    let server = Server::plain();
    run(server.kura().args(["group", "add", "team"]));
    run(server
        .kura()
        .args(["bucket", "create", "docs", "--group", "team"]));
    // the team's space: no access for others
    run(server.kura().args(["chmod", "770", "/docs"]));
    server.add_user("alice", "alice-pw-1", &["--group", "team"]);
    server.add_user("bob", "bob-pw-123", &["--group", "team"]);
    server.add_user("carol", "carol-pw-1", &[]);
    let (alice, bob, carol) = ("alice:alice-pw-1", "bob:bob-pw-123", "carol:carol-pw-1");
    assert_eq!(put(&server, alice, "docs/private.txt", "first"), 201);
    run(server.kura().args(["chmod", "600", "/docs/private.txt"]));
    assert_eq!(put(&server, alice, "docs/private.txt", "second"), 204);
    assert_eq!(put(&server, alice, "docs/shared.txt", "one"), 201);
    assert_eq!(put(&server, bob, "docs/shared.txt", "two"), 204);

    let versions = |who: &str, path: &str| {
        as_user(
            &server,
            who,
            &[&server.url(&format!("/api/user/v1/versions?path={path}"))],
        )
    };
    let bob_get = server.status_as(bob, &[&server.dav("docs/private.txt")]);
    assert_eq!(bob_get, 403, "bob reads the private file");
    let (s, v) = versions(alice, "/docs/private.txt");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(versions(bob, "/docs/private.txt").0, 403);
    let (s, v) = versions(carol, "/docs/shared.txt");
    assert_eq!(s, 403, "{v}");
    assert_eq!(versions(bob, "/docs/shared.txt").0, 200);

    // deleted: its owner sees it in the trash; a group member does not see a private file's
    let dav_delete = server.status_as(alice, &["-X", "DELETE", &server.dav("docs/private.txt")]);
    assert_eq!(dav_delete, 204);
    let trash = |who: &str| {
        as_user(
            &server,
            who,
            &[&server.url("/api/user/v1/trash?bucket=docs")],
        )
    };
    let (s, t) = trash(alice);
    assert_eq!(s, 200);
    assert!(
        t["deletes"]
            .as_array()
            .expect("list")
            .iter()
            .any(|d| d["path"] == "/docs/private.txt"),
        "{t}"
    );
    let (_, t) = trash(bob);
    assert!(
        !t["deletes"]
            .as_array()
            .expect("list")
            .iter()
            .any(|d| d["path"] == "/docs/private.txt"),
        "{t}"
    );
    let (_, t) = trash(carol);
    assert_eq!(t["deletes"].as_array().map(Vec::len), Some(0), "{t}");
    // nor can they see its versions or restore it
    // (an empty list, as for a path that never existed: nothing tells them it did)
    let (s, v) = versions(bob, "/docs/private.txt");
    assert_eq!(
        (s, v["versions"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let (s, v) = versions(bob, "/docs/never-was.txt");
    assert_eq!(
        (s, v["versions"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let restore = |who: &str, body: &str| {
        as_user(
            &server,
            who,
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
                &server.url("/api/user/v1/restore"),
            ],
        )
    };
    assert!(matches!(
        restore(bob, r#"{"path": "/docs/private.txt"}"#).0,
        403 | 404
    ));
    assert!(matches!(
        restore(carol, r#"{"path": "/docs/private.txt"}"#).0,
        403 | 404
    ));
    // the owner restores it where she may write, and not where she may not
    run(server.kura().args(["chmod", "750", "/docs"]));
    assert_eq!(
        restore(alice, r#"{"path": "/docs/private.txt"}"#).0,
        403,
        "restored into a folder she cannot write"
    );
    run(server.kura().args(["chmod", "770", "/docs"]));
    let (s, r) = restore(alice, r#"{"path": "/docs/private.txt"}"#);
    assert_eq!(s, 200, "{r}");
    let got = server.curl(&["-s", "-u", alice, &server.dav("docs/private.txt")]);
    assert_eq!(got.stdout, b"second");
    // hostile bodies
    assert_eq!(restore(alice, r#"{"path": "/docs/../etc"}"#).0, 400);
    assert_eq!(restore(alice, r#"{"path": "/docs/x", "extra": 1}"#).0, 400);
    assert_eq!(restore(alice, &"x".repeat(10_000)).0, 413);
    assert_eq!(
        as_user(
            &server,
            alice,
            &["-X", "DELETE", &server.url("/api/user/v1/trash")]
        )
        .0,
        403,
        "only administrators empty the trash (the core's rule)"
    );
}

/// Attack: a private folder (700) is deleted; another user who may list the bucket asks the
/// user API for the versions of a file that was in it, and to restore it into her own
/// bucket. The deleted folder's bits still keep her out: 403 both, nothing restored.
#[test]
fn a_deleted_private_folder_keeps_its_files_history_private() {
    let server = Server::plain();
    server.add_user("alice", "alice-pw-1", &["--create-buckets"]);
    server.add_user("mallory", "mallory-pw-1", &["--create-buckets"]);
    let (alice, mallory) = ("alice:alice-pw-1", "mallory:mallory-pw-1");
    let mkcol = |who: &str, path: &str| server.status_as(who, &["-X", "MKCOL", &server.dav(path)]);
    assert_eq!(mkcol(alice, "open"), 201);
    assert_eq!(mkcol(alice, "open/private"), 201);
    assert_eq!(mkcol(mallory, "mine"), 201);
    run(server.kura().args(["chmod", "700", "/open/private"]));
    assert_eq!(put(&server, alice, "open/private/plan.txt", "v1"), 201);
    assert_eq!(put(&server, alice, "open/private/plan.txt", "v2"), 204);
    let versions = |who: &str| {
        as_user(
            &server,
            who,
            &[&server.url("/api/user/v1/versions?path=/open/private/plan.txt")],
        )
    };
    assert_eq!(versions(mallory).0, 403, "mallory cannot see into it yet");
    let del = server.status_as(alice, &["-X", "DELETE", &server.dav("open/private")]);
    assert_eq!(del, 204);
    assert_eq!(versions(alice).0, 200, "the owner still sees the history");
    let (s, v) = versions(mallory);
    assert_eq!(s, 403, "the delete opened the history: {v}");
    let (s, v) = as_user(
        &server,
        mallory,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"path":"/open/private/plan.txt","to":"/mine/plan.txt"}"#,
            &server.url("/api/user/v1/restore"),
        ],
    );
    assert!(s == 403 || s == 404, "mallory restored it: {s} {v}");
    let got = server.status_as(mallory, &[&server.dav("mine/plan.txt")]);
    assert_eq!(got, 404, "nothing was restored into mallory's bucket");
}
