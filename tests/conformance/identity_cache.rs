//! The server remembers who a user is between requests (its row, groups and access keys), and
//! a change the CLI makes while the server runs (another process, same database) counts from
//! the very next request: a group membership removed or given back, a key revoked, a right
//! withdrawn, a password changed, a user removed.

use std::io::Write;
use std::process::Stdio;

use crate::common::{run, Server};
use crate::permissions::s3;

fn passwd(server: &Server, user: &str, pw: &str) {
    let mut child = server
        .kura()
        .args(["user", "passwd", user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kura user passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{pw}\n").as_bytes())
        .expect("password");
    assert!(child.wait().expect("wait").success(), "user passwd {user}");
}

/// A few requests as `who`, so that whatever the server remembers about her is remembered.
fn warm(server: &Server, who: &str, key: &crate::common::S3Key, file_s3: &str) {
    for _ in 0..3 {
        assert_eq!(server.status_as(who, &[&server.dav("teamb/f")]), 200);
        assert_eq!(s3(key, &[file_s3]), 200);
    }
}

#[test]
fn cli_changes_to_users_groups_and_keys_count_from_the_next_request() {
    let server = Server::plain();
    run(server.kura().args(["group", "add", "team"]));
    server.add_user("carol", "pw-one", &[]);
    run(server.kura().args(["group", "add-user", "team", "carol"]));
    run(server
        .kura()
        .args(["bucket", "create", "teamb", "--group", "team"]));
    // members of the group only: nobody else may even enter the bucket
    run(server.kura().args(["chmod", "770", "/teamb"]));
    let key = server.s3_key_for("carol");
    let file_s3 = server.url("/teamb/f");
    let carol = "carol:pw-one";

    let body = server.data_dir().with_file_name("carol-body.txt");
    std::fs::write(&body, b"carol's file\n").expect("body");
    let put = server.status_as(
        carol,
        &["-T", body.to_str().expect("utf8"), &server.dav("teamb/f")],
    );
    assert_eq!(put, 201, "{}", server.log());
    warm(&server, carol, &key, &file_s3);

    // membership removed by the CLI: the very next request of each protocol is refused
    run(server
        .kura()
        .args(["group", "remove-user", "team", "carol"]));
    assert_eq!(server.status_as(carol, &[&server.dav("teamb/f")]), 403);
    assert_eq!(s3(&key, &[&file_s3]), 403);
    // and given back: allowed at once
    run(server.kura().args(["group", "add-user", "team", "carol"]));
    warm(&server, carol, &key, &file_s3);

    // the right to create buckets, granted then withdrawn
    run(server
        .kura()
        .args(["user", "modify", "carol", "--create-buckets"]));
    assert_eq!(
        server.status_as(carol, &["-X", "MKCOL", &server.dav("carols")]),
        201
    );
    run(server
        .kura()
        .args(["user", "modify", "carol", "--no-create-buckets"]));
    assert_eq!(
        server.status_as(carol, &["-X", "MKCOL", &server.dav("carols2")]),
        403
    );

    // the key revoked: S3 refuses its next signature, WebDAV is unaffected
    run(server.kura().args(["key", "revoke", &key.id]));
    assert_eq!(s3(&key, &[&file_s3]), 403);
    assert_eq!(server.status_as(carol, &[&server.dav("teamb/f")]), 200);

    // a new password: the old one fails on the next request, the new one works
    let key2 = server.s3_key_for("carol");
    warm(&server, carol, &key2, &file_s3);
    passwd(&server, "carol", "pw-two");
    assert_eq!(server.status_as(carol, &[&server.dav("teamb/f")]), 401);
    assert_eq!(
        server.status_as("carol:pw-two", &[&server.dav("teamb/f")]),
        200
    );

    // the user removed: her password and her other key stop at once
    warm(&server, "carol:pw-two", &key2, &file_s3);
    run(server.kura().args(["user", "remove", "carol"]));
    assert_eq!(
        server.status_as("carol:pw-two", &[&server.dav("teamb/f")]),
        401
    );
    assert_eq!(s3(&key2, &[&file_s3]), 403);
}
