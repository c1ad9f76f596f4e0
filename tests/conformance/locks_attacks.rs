//! Locks as an attacker uses them: a user without rights freezes the server, locks another's
//! bucket, fills the lock table, unlocks or reads another's lock; writes that skipped the lock
//! check (DeleteBucket, share drop boxes); oversize lock owners and dead properties. Each of
//! these went through on the main branch before locks moved into the core.

use crate::common::{code, require, run, Server, ADMIN_PW};

const PW: &str = "lock-attack-pw";

const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>attacker</D:owner></D:lockinfo>"#;

fn add_user(server: &Server, name: &str) {
    server.add_user(name, PW, &[]);
}

fn auth(who: &str) -> String {
    if who == "admin" {
        format!("admin:{ADMIN_PW}")
    } else {
        format!("{who}:{PW}")
    }
}

/// Status of a request made as `who` (body discarded).
fn st(server: &Server, who: &str, args: &[&str]) -> u16 {
    let a = auth(who);
    let mut all = vec!["-u", a.as_str(), "-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    code(&server.curl(&all))
}

/// Body and status of a request made as `who`.
fn fetch(server: &Server, who: &str, args: &[&str]) -> (u16, String) {
    let a = auth(who);
    let mut all = vec!["-u", a.as_str(), "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let text = String::from_utf8_lossy(&server.curl(&all).stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

/// LOCK as `who`: status and the Lock-Token (without angle brackets).
fn lock(server: &Server, who: &str, path: &str, depth: &str) -> (u16, Option<String>) {
    let (status, token) = crate::locks::lock_as(server, &auth(who), path, depth, LOCKINFO);
    (
        status,
        token.map(|t| t.trim_matches(['<', '>']).to_string()),
    )
}

fn lock_list(server: &Server) -> serde_json::Value {
    let out = run(server.kura().args(["lock", "list", "--json"]));
    serde_json::from_slice(&out.stdout).expect("lock list json")
}

fn lockdiscovery(server: &Server, who: &str, path: &str) -> String {
    let body = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#;
    let (s, text) = fetch(
        server,
        who,
        &[
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
            "--data-binary",
            body,
            &server.dav(path),
        ],
    );
    assert_eq!(s, 207, "{text}");
    text
}

#[test]
fn a_user_without_rights_cannot_freeze_the_server() {
    require("curl");
    let server = Server::plain();
    add_user(&server, "mallory");
    assert_eq!(
        st(&server, "admin", &["-X", "MKCOL", &server.dav("docs")]),
        201
    );
    assert_eq!(server.put("docs/a.txt", b"a"), 201);

    // the whole namespace, depth infinity: refused, and nobody is blocked
    assert_eq!(lock(&server, "mallory", "", "infinity").0, 403);
    // a bucket she does not own, even one she may write into
    run(server.kura().args(["chmod", "777", "/docs"]));
    assert_eq!(lock(&server, "mallory", "docs/", "infinity").0, 403);
    assert_eq!(lock(&server, "mallory", "docs", "0").0, 403);
    // a file she may not write, and an unmapped URL in a folder she may not write
    run(server.kura().args(["chmod", "644", "/docs/a.txt"]));
    run(server.kura().args(["chmod", "755", "/docs"]));
    assert_eq!(lock(&server, "mallory", "docs/a.txt", "0").0, 403);
    assert_eq!(lock(&server, "mallory", "docs/new.txt", "0").0, 403);
    assert_eq!(
        st(&server, "admin", &["-I", &server.dav("docs/new.txt")]),
        404,
        "a refused LOCK created the resource"
    );
    assert_eq!(lock_list(&server), serde_json::json!([]));

    // every write still goes through, the administrator's and S3's alike
    assert_eq!(server.put("docs/a.txt", b"a2"), 204);
    assert_eq!(server.put("docs/b.txt", b"b"), 201);
    assert_eq!(server.get("docs/a.txt"), b"a2");

    // a file she may write she may lock (and only she holds it)
    run(server.kura().args(["chmod", "666", "/docs/a.txt"]));
    let (s, token) = lock(&server, "mallory", "docs/a.txt", "0");
    assert_eq!(s, 200);
    assert!(token.is_some());
    assert_eq!(server.put("docs/a.txt", b"a3"), 423);
}

#[test]
fn unlock_and_lock_tokens_belong_to_the_holder() {
    let (server, token) = shared_file_locked_by_ann();
    add_user(&server, "bob");

    // bob sees that the file is locked, not the token that would let him write
    let seen = lockdiscovery(&server, "bob", "shared/f.txt");
    assert!(seen.contains("activelock"), "{seen}");
    assert!(!seen.contains(&token), "bob saw ann's token: {seen}");
    assert!(lockdiscovery(&server, "ann", "shared/f.txt").contains(&token));
    assert!(lockdiscovery(&server, "admin", "shared/f.txt").contains(&token));

    // bob cannot release it nor use it
    let lt = format!("Lock-Token: <{token}>");
    let unlock = ["-X", "UNLOCK", "-H", lt.as_str()];
    let f = server.dav("shared/f.txt");
    assert_eq!(
        st(&server, "bob", &[&unlock[..], &[f.as_str()]].concat()),
        403
    );
    let if_h = format!("If: (<{token}>)");
    assert_eq!(
        st(
            &server,
            "bob",
            &["-X", "PUT", "-H", &if_h, "--data-binary", "b", &f]
        ),
        423
    );
    assert_eq!(server.get("shared/f.txt"), b"f");
    assert_eq!(lock_list(&server).as_array().map(Vec::len), Some(1));
    // the holder does
    assert_eq!(
        st(&server, "ann", &[&unlock[..], &[f.as_str()]].concat()),
        204
    );
    assert_eq!(lock_list(&server), serde_json::json!([]));
}

#[test]
fn lock_cap_and_administrators_list_and_break_locks() {
    require("curl");
    let server = Server::start_with(false, &[("KURA_LOCK_MAX_PER_USER", "2")]);
    add_user(&server, "ann");
    assert_eq!(
        st(&server, "admin", &["-X", "MKCOL", &server.dav("d")]),
        201
    );
    run(server.kura().args(["chmod", "777", "/d"]));
    for f in ["1", "2", "3"] {
        assert_eq!(
            st(
                &server,
                "ann",
                &["-T", "/dev/null", &server.dav(&format!("d/{f}"))]
            ),
            201
        );
    }
    let (s, t1) = lock(&server, "ann", "d/1", "0");
    assert_eq!(s, 200);
    let (s, t2) = lock(&server, "ann", "d/2", "0");
    assert_eq!(s, 200);
    let (t1, t2) = (t1.expect("t1"), t2.expect("t2"));
    // the third live lock is refused with a clear status, and nothing is locked
    assert_eq!(lock(&server, "ann", "d/3", "0").0, 507);
    assert_eq!(server.put("d/3", b"free"), 204);

    // the CLI lists both, with holder and token
    let listed = lock_list(&server);
    let tokens: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["token"].as_str().expect("token"))
        .collect();
    assert_eq!(tokens.len(), 2, "{listed}");
    assert!(tokens.contains(&t1.as_str()) && tokens.contains(&t2.as_str()));
    assert!(
        listed[0]["user"] == "ann" && listed[0]["path"] == "/d/1",
        "{listed}"
    );
    let text = run(server.kura().args(["lock", "list"]));
    assert!(String::from_utf8_lossy(&text.stdout).contains(&t1));

    // the admin API lists them; not for a user
    let api = server.url("/api/v1/locks");
    let (s, body) = fetch(&server, "admin", &[&api]);
    assert_eq!(s, 200, "{body}");
    assert!(body.contains(&t1) && body.contains(&t2), "{body}");
    assert_eq!(st(&server, "ann", &[&api]), 403);
    assert_eq!(
        st(&server, "ann", &["-X", "DELETE", &format!("{api}/{t1}")]),
        403
    );

    // an administrator breaks one through the API, the other with the CLI
    let (s, body) = fetch(&server, "admin", &["-X", "DELETE", &format!("{api}/{t1}")]);
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("/d/1"), "{body}");
    assert_eq!(
        st(&server, "admin", &["-X", "DELETE", &format!("{api}/{t1}")]),
        404
    );
    run(server.kura().args(["lock", "break", &t2]));
    let again = server
        .kura()
        .args(["lock", "break", &t2])
        .output()
        .expect("kura");
    assert!(!again.status.success(), "breaking a lock twice succeeded");
    assert_eq!(lock_list(&server), serde_json::json!([]));
    assert_eq!(server.put("d/1", b"one"), 204);
    assert_eq!(server.put("d/2", b"two"), 204);
    assert_eq!(lock(&server, "ann", "d/3", "0").0, 200);

    // a DELETE by the holder takes the lock rows with the file, in its transaction
    let (s, t4) = lock(&server, "ann", "d/1", "0");
    assert_eq!(s, 200);
    let if_h = format!("If: (<{}>)", t4.expect("t4"));
    assert_eq!(
        st(
            &server,
            "ann",
            &["-X", "DELETE", "-H", &if_h, &server.dav("d/1")]
        ),
        204
    );
    let left: Vec<String> = lock_list(&server)
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(left, vec!["/d/3"]);
    assert_eq!(server.put("d/1", b"new"), 201);
}

#[test]
fn delete_bucket_and_drop_box_uploads_meet_locks() {
    require("aws");
    let server = Server::plain();
    let key = server.s3_key();
    run(server.aws(&key).args(["s3", "mb", "s3://empty"]));
    run(server.aws(&key).args(["s3", "mb", "s3://fam"]));
    assert_eq!(
        st(&server, "admin", &["-X", "MKCOL", &server.dav("fam/inbox")]),
        201
    );

    // DeleteBucket of a locked (empty) bucket: 423 Locked, the bucket stays
    let (s, token) = lock(&server, "admin", "empty/", "infinity");
    assert_eq!(s, 200);
    let out = server
        .aws(&key)
        .args(["s3api", "delete-bucket", "--bucket", "empty"])
        .output()
        .expect("aws");
    assert!(
        !out.status.success(),
        "DeleteBucket removed a locked bucket"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Locked"), "{err}");
    assert_eq!(st(&server, "admin", &["-I", &server.dav("empty/")]), 200);
    let lt = format!("Lock-Token: <{}>", token.expect("token"));
    assert_eq!(
        st(
            &server,
            "admin",
            &["-X", "UNLOCK", "-H", &lt, &server.dav("empty/")]
        ),
        204
    );
    run(server
        .aws(&key)
        .args(["s3api", "delete-bucket", "--bucket", "empty"]));

    // a drop-box visitor uploading into a locked folder: 423, nothing stored
    let out = run(server
        .kura()
        .args(["share", "create", "/fam/inbox", "--upload-only", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let share = v["token"].as_str().expect("token").to_string();
    let (s, token) = lock(&server, "admin", "fam/inbox/", "infinity");
    assert_eq!(s, 200);
    let drop_url = server.url(&format!("/s/{share}/report.txt"));
    let visitor = |body: &str| {
        code(&server.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "--data-binary",
            body,
            &drop_url,
        ]))
    };
    assert_eq!(visitor("dropped"), 423);
    assert_eq!(
        st(
            &server,
            "admin",
            &["-I", &server.dav("fam/inbox/report.txt")]
        ),
        404
    );
    let lt = format!("Lock-Token: <{}>", token.expect("token"));
    assert_eq!(
        st(
            &server,
            "admin",
            &["-X", "UNLOCK", "-H", &lt, &server.dav("fam/inbox/")]
        ),
        204
    );
    assert_eq!(visitor("dropped"), 201);
    assert_eq!(server.get("fam/inbox/report.txt"), b"dropped");
}

#[test]
fn oversize_lock_owner_and_dead_properties_are_refused() {
    require("curl");
    let server = Server::plain();
    assert_eq!(
        st(&server, "admin", &["-X", "MKCOL", &server.dav("p")]),
        201
    );
    assert_eq!(server.put("p/f.txt", b"f"), 201);

    // a 5000-byte <owner>: 413, no lock kept
    let owner = "o".repeat(5000);
    let body = LOCKINFO.replace("attacker", &owner);
    assert_eq!(
        st(
            &server,
            "admin",
            &["-X", "LOCK", "--data-binary", &body, &server.dav("p/f.txt")]
        ),
        413
    );
    assert_eq!(lock_list(&server), serde_json::json!([]));
    // also sent chunked, without a length
    assert_eq!(
        st(
            &server,
            "admin",
            &[
                "-X",
                "LOCK",
                "-H",
                "Transfer-Encoding: chunked",
                "--data-binary",
                &body,
                &server.dav("p/f.txt")
            ]
        ),
        413
    );
    assert_eq!(lock_list(&server), serde_json::json!([]));

    let proppatch = |name: &str, size: usize| {
        let value = "v".repeat(size);
        let body = format!(
            r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:{name} xmlns:x="urn:example">{value}</x:{name}></D:prop></D:set></D:propertyupdate>"#
        );
        st(
            &server,
            "admin",
            &[
                "-X",
                "PROPPATCH",
                "--data-binary",
                &body,
                &server.dav("p/f.txt"),
            ],
        )
    };
    // one property over 16 KiB: 507, not stored
    assert_eq!(proppatch("big", 17 * 1024), 507);
    // properties adding up to over 64 KiB on one entry: the one that would pass it is refused
    for n in 0..4 {
        assert_eq!(proppatch(&format!("p{n}"), 15 * 1024), 207, "property {n}");
    }
    assert_eq!(proppatch("p4", 15 * 1024), 507);
    // replacing a stored property with one of the same size stays within the cap
    assert_eq!(proppatch("p0", 15 * 1024), 207);
    let all = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;
    let (s, text) = fetch(
        &server,
        "admin",
        &[
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
            "--data-binary",
            all,
            &server.dav("p/f.txt"),
        ],
    );
    assert_eq!(s, 207);
    assert!(text.contains("p3") && !text.contains("p4") && !text.contains("big"));
}

/// A server with a 666 file, `shared/f.txt`, in a 777 folder, locked by ann; the lock's token.
fn shared_file_locked_by_ann() -> (Server, String) {
    require("curl");
    let server = Server::plain();
    add_user(&server, "ann");
    assert_eq!(
        st(&server, "admin", &["-X", "MKCOL", &server.dav("shared")]),
        201
    );
    assert_eq!(server.put("shared/f.txt", b"f"), 201);
    run(server.kura().args(["chmod", "777", "/shared"]));
    run(server.kura().args(["chmod", "666", "/shared/f.txt"]));
    let (s, token) = lock(&server, "ann", "shared/f.txt", "0");
    assert_eq!(s, 200);
    (server, token.expect("token"))
}

/// An administrator's `kura chmod` on a file another user locked is refused with a message
/// that says so (it said "/shared/f.txt is locked already exists").
#[test]
fn admin_commands_on_a_locked_file_say_it_is_locked() {
    let (server, _) = shared_file_locked_by_ann();
    let out = server
        .kura()
        .args(["chmod", "600", "/shared/f.txt"])
        .output()
        .expect("kura chmod");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "chmod of a locked file went through");
    assert!(
        err.contains("/shared/f.txt is locked") && !err.contains("already exists"),
        "kura chmod on a locked file said: {err}"
    );
}

/// A removed user's locks went on blocking every other writer until they expired, and a user
/// added later under the same name held them (and saw their tokens).
#[test]
fn removing_a_user_releases_its_locks() {
    let (server, token) = shared_file_locked_by_ann();
    assert_eq!(server.put("shared/f.txt", b"admin"), 423);
    run(server.kura().args(["user", "remove", "ann"]));
    assert_eq!(
        lock_list(&server),
        serde_json::json!([]),
        "the removed user's lock is still live"
    );
    assert_eq!(server.put("shared/f.txt", b"admin"), 204);
    // a new ann holds nothing of the old one's
    add_user(&server, "ann");
    let seen = lockdiscovery(&server, "ann", "shared/f.txt");
    assert!(!seen.contains(&token), "{seen}");
    assert!(!seen.contains("activelock"), "{seen}");
}
