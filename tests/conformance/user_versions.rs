//! The user API's versions, trash and restore (docs/versions.md): a user sees and restores
//! only what the core lets her read and write; others see nothing of it.

use crate::common::{code, run, Server};

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

/// GET a user API path as `who`; (status, JSON body).
fn api_get(server: &Server, who: &str, path: &str) -> (u16, serde_json::Value) {
    as_user(server, who, &[&server.url(&format!("/api/user/v1/{path}"))])
}

/// POST a restore as `who`; the status.
fn api_restore(server: &Server, who: &str, body: &str) -> u16 {
    let url = server.url("/api/user/v1/restore");
    let args = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &url,
    ];
    as_user(server, who, &args).0
}

fn paths_in_trash(t: &serde_json::Value) -> Vec<String> {
    t["deletes"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|d| d["path"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A bucket `home` of group fam (alice, bob: 775) holding alice's folder `name`, of group
/// duo (alice alone) and mode 770, with a file written twice (one version kept).
fn private_folder_in_a_shared_bucket(server: &Server, name: &str, file: &str) {
    for g in ["fam", "duo"] {
        run(server.kura().args(["group", "add", g]));
    }
    run(server
        .kura()
        .args(["bucket", "create", "home", "--group", "fam"]));
    run(server.kura().args(["chmod", "775", "/home"]));
    server.add_user("alice", "alice-pw-1", &["--group", "fam"]);
    server.add_user("bob", "bob-pw-123", &["--group", "fam"]);
    run(server.kura().args(["group", "add-user", "duo", "alice"]));
    let dir = format!("home/{name}");
    assert_eq!(
        server.status_as(ALICE, &["-X", "MKCOL", &server.dav(&dir)]),
        201
    );
    run(server.kura().args(["chown", ":duo", &format!("/{dir}")]));
    run(server.kura().args(["chmod", "770", &format!("/{dir}")]));
    let f = format!("{dir}/{file}");
    assert_eq!(put(server, ALICE, &f, "salary v1"), 201);
    assert_eq!(put(server, ALICE, &f, "salary v2"), 204);
    let got = server.status_as(BOB, &[&server.dav(&f)]);
    assert_eq!(got, 403, "bob reads alice's private folder");
}

const ALICE: &str = "alice:alice-pw-1";
const BOB: &str = "bob:bob-pw-123";

/// Attack (issue 16): alice deletes a file in her private folder (770, bob not in its
/// group), then renames the folder away; bob makes a new folder of the same name, which he
/// may list. The trash was judged against the folder now at that path: bob saw alice's
/// deleted file in his trash, and could read and restore it as his own. The folders as they
/// were at the delete now decide: bob sees, reads and restores nothing; alice still can.
#[test]
fn a_folder_renamed_away_does_not_open_its_trash_to_a_new_folder_of_the_same_name() {
    let server = Server::plain();
    private_folder_in_a_shared_bucket(&server, "priv", "plan.txt");
    let del = server.status_as(ALICE, &["-X", "DELETE", &server.dav("home/priv/plan.txt")]);
    assert_eq!(del, 204);
    let dest = format!("Destination: {}", server.dav("home/archive"));
    let moved = server.status_as(
        ALICE,
        &["-X", "MOVE", "-H", &dest, &server.dav("home/priv")],
    );
    assert_eq!(moved, 201);
    assert_eq!(
        server.status_as(BOB, &["-X", "MKCOL", &server.dav("home/priv")]),
        201
    );

    let (s, t) = api_get(&server, ALICE, "trash?bucket=home");
    assert_eq!(s, 200);
    assert!(
        paths_in_trash(&t).contains(&"/home/priv/plan.txt".to_string()),
        "{t}"
    );
    let (s, v) = api_get(&server, ALICE, "versions?path=/home/priv/plan.txt");
    assert_eq!(s, 200, "{v}");
    let id = v["versions"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["delete_marker"] == false))
        .and_then(|r| r["id"].as_str())
        .expect("the deleted bytes' id")
        .to_string();

    let (s, t) = api_get(&server, BOB, "trash?bucket=home");
    assert_eq!(s, 200);
    assert!(
        paths_in_trash(&t).is_empty(),
        "bob sees alice's deleted file: {t}"
    );
    let (s, v) = api_get(&server, BOB, "versions?path=/home/priv/plan.txt");
    let seen = v["versions"].as_array().map_or(0, Vec::len);
    assert!(s != 200 || seen == 0, "bob lists its versions: {v}");
    let url = server.url(&format!(
        "/api/user/v1/download?path=/home/priv/plan.txt&version={id}"
    ));
    let got = server.curl(&["-s", "-u", BOB, "-w", "\n%{http_code}", &url]);
    let text = String::from_utf8_lossy(&got.stdout).into_owned();
    assert!(!text.contains("salary"), "bob downloads it: {text}");
    assert!(text.ends_with("403") || text.ends_with("404"), "{text}");
    for body in [
        r#"{"path": "/home/priv/plan.txt"}"#.to_string(),
        format!(
            r#"{{"path": "/home/priv/plan.txt", "version": "{id}", "to": "/home/priv/mine.txt"}}"#
        ),
    ] {
        let s = api_restore(&server, BOB, &body);
        assert!(s == 403 || s == 404, "bob restores it ({body}): {s}");
    }
    for p in ["home/priv/plan.txt", "home/priv/mine.txt"] {
        assert_eq!(
            server.status_as(BOB, &[&server.dav(p)]),
            404,
            "{p} restored"
        );
    }
    // alice brings it back where she may write
    let body = r#"{"path": "/home/priv/plan.txt", "to": "/home/archive/plan.txt"}"#;
    assert_eq!(api_restore(&server, ALICE, body), 200);
    let got = server.curl(&["-s", "-u", ALICE, &server.dav("home/archive/plan.txt")]);
    assert_eq!(got.stdout, b"salary v2");
}

/// Attack (issue 16), the versions' side: alice's private folder is deleted and the trash
/// emptied, which drops the folder's marker but keeps the older versions of its files (they
/// follow the versions policy); bob makes a folder of the same name. Those versions were
/// judged by the new folder and the file's own bits (644): bob listed and read them.
#[test]
fn versions_kept_in_a_private_folder_stay_private_when_a_public_one_takes_its_name() {
    let server = Server::plain();
    private_folder_in_a_shared_bucket(&server, "sec", "key.txt");
    let del = server.status_as(ALICE, &["-X", "DELETE", &server.dav("home/sec")]);
    assert_eq!(del, 204);
    let emptied = server.curl_admin(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "DELETE",
        &server.url("/api/user/v1/trash?bucket=home"),
    ]);
    assert_eq!(code(&emptied), 200);
    assert_eq!(
        server.status_as(BOB, &["-X", "MKCOL", &server.dav("home/sec")]),
        201
    );

    let (s, v) = api_get(&server, ALICE, "versions?path=/home/sec/key.txt");
    assert_eq!(s, 200, "{v}");
    let kept = v["versions"].as_array().cloned().unwrap_or_default();
    assert_eq!(kept.len(), 1, "the older version outlives the trash: {v}");
    let id = kept[0]["id"].as_str().expect("id").to_string();

    let (s, v) = api_get(&server, BOB, "versions?path=/home/sec/key.txt");
    let seen = v["versions"].as_array().map_or(0, Vec::len);
    assert!(s != 200 || seen == 0, "bob lists alice's old versions: {v}");
    let url = server.url(&format!(
        "/api/user/v1/download?path=/home/sec/key.txt&version={id}"
    ));
    let got = server.curl(&["-s", "-u", BOB, "-w", "\n%{http_code}", &url]);
    let text = String::from_utf8_lossy(&got.stdout).into_owned();
    assert!(!text.contains("salary"), "bob reads an old version: {text}");
    let body = format!(r#"{{"path": "/home/sec/key.txt", "version": "{id}"}}"#);
    let s = api_restore(&server, BOB, &body);
    assert!(s == 403 || s == 404, "bob restores it: {s}");
    assert_eq!(
        server.status_as(BOB, &[&server.dav("home/sec/key.txt")]),
        404
    );
}
