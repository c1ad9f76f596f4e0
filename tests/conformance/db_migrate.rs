//! `kura db migrate --to postgres://...` (docs/scale-out.md, "Moving an installation to
//! PostgreSQL"): a server filled through real clients on SQLite, stopped, copied, and started
//! on PostgreSQL with the same data dir serves the same bytes, listings, usage, quota, lock,
//! share link, S3 key, tags and versions, and gives new ids past the copied ones. The attacks:
//! a running server, a non-empty target, a wrong password or port, and a target that loses a
//! row (the verification rolls everything back).

use std::process::Output;
use std::time::Instant;

use crate::common::{code, require, run, tagged_body as body, Server};
use crate::locks::lock_as;
use crate::postgres::Postgres;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kura db migrate --to URL`, whatever comes of it.
fn migrate(server: &Server, url: &str) -> Output {
    server
        .kura()
        .args(["db", "migrate", "--to", url])
        .output()
        .expect("kura db migrate")
}

/// `kura usage g`'s line (used, quota, versions columns).
fn usage_line(server: &Server) -> String {
    let out = run(server.kura().args(["usage", "g"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("g\t"))
        .expect("usage line")
        .to_string()
}

/// Every object of bucket `mig` as `aws s3 ls --recursive` lists it (size and key).
fn listing(server: &Server, key: &crate::common::S3Key) -> Vec<String> {
    let out = run(server
        .aws(key)
        .args(["s3", "ls", "--recursive", "s3://mig/"]));
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

/// The WebDAV files of the test: path and bytes.
fn dav_files() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| {
            (
                format!("mig/docs/sub/file-{i}.txt"),
                body(&format!("doc {i} "), 500 + i * 311),
            )
        })
        .collect();
    v.push(("mig/docs/notes.txt".into(), b"minutes".to_vec()));
    v.push(("mig/docs/locked.txt".into(), b"held".to_vec()));
    v
}

const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>mover</D:owner></D:lockinfo>"#;

const TAGS: &str = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:K="urn:kura:props"><D:set><D:prop><K:tags>status=final</K:tags><K:description>Minutes of the annual meeting</K:description></D:prop></D:set></D:propertyupdate>"#;

#[test]
fn an_sqlite_installation_moves_to_postgres_and_serves_the_same() {
    require("aws");
    let pg = Postgres::start();
    let mut server = Server::plain();
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "mig", "--group", "g"]));
    run(server
        .kura()
        .args(["quota", "set", "g", "--bytes", "20MiB"]));
    server.add_user("alice", "alice-password-1", &["--group", "g"]);
    let key = server.s3_key_for("alice");
    for folder in ["mig/docs/", "mig/docs/sub/", "mig/empty/"] {
        assert_eq!(server.status(&["-X", "MKCOL", &server.dav(folder)]), 201);
    }
    for (path, bytes) in dav_files() {
        assert_eq!(server.put(&path, &bytes), 201, "{path}");
    }
    // a versioned overwrite: the first draft is kept
    assert_eq!(server.put("mig/report.docx", b"first draft"), 201);
    assert_eq!(server.put("mig/report.docx", b"second draft"), 204);
    // S3: a small object and a multipart upload (aws cuts above 8 MB)
    let tmp = tempfile::tempdir().expect("tmp");
    let big = tmp.path().join("big.bin");
    let big_bytes: Vec<u8> = (0..9_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&big, &big_bytes).expect("big");
    let small = tmp.path().join("small.txt");
    std::fs::write(&small, b"through s3").expect("small");
    run(server
        .aws(&key)
        .arg("s3")
        .arg("cp")
        .arg(&big)
        .arg("s3://mig/s3/big.bin"));
    run(server
        .aws(&key)
        .arg("s3")
        .arg("cp")
        .arg(&small)
        .arg("s3://mig/s3/small.txt"));
    let out = server.curl_admin(&[
        "-X",
        "PROPPATCH",
        "--data-binary",
        TAGS,
        "-w",
        "\n%{http_code}",
        &server.dav("mig/docs/notes.txt"),
    ]);
    assert_eq!(code(&out), 207);
    let share = {
        let out =
            run(server
                .kura()
                .args(["share", "create", "/mig/docs/sub/file-3.txt", "--json"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("share json");
        v["token"].as_str().expect("token").to_string()
    };
    let admin = format!("admin:{}", crate::common::ADMIN_PW);
    let locked = "mig/docs/locked.txt";
    let (status, token) = lock_as(&server, &admin, locked, "0", LOCKINFO);
    assert_eq!(status, 200);
    let token = token.expect("lock token");

    let before_listing = listing(&server, &key);
    let before_usage = usage_line(&server);

    // a running server: refused, nothing written
    let url = pg.create_database("kura_main");
    let out = migrate(&server, &url);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("a server is running"), "{}", text(&out));
    let tables = || {
        pg.psql(
            "kura_main",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        )
    };
    assert_eq!(tables().trim(), "0");
    server.stop();

    // a wrong password and a closed port: a clear error, the password never shown
    let wrong = url.replacen(&format!(":{}@", pg_password(&url)), ":not-the-password@", 1);
    let out = migrate(&server, &wrong);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("password authentication failed"), "{t}");
    assert!(!t.contains("not-the-password"), "{t}");
    let closed = url.replacen(
        &format!(":{}/", pg.port),
        &format!(":{}/", crate::common::free_port()),
        1,
    );
    let out = migrate(&server, &closed);
    assert!(!out.status.success());
    assert!(text(&out).contains("Connection refused"), "{}", text(&out));
    assert!(!text(&out).contains(&pg_password(&url)), "{}", text(&out));
    assert_eq!(tables().trim(), "0");

    // a database holding other tables: refused, left as it was
    let other = pg.create_database("kura_other");
    pg.psql(
        "kura_other",
        "CREATE TABLE mine (x BIGINT); INSERT INTO mine VALUES (7)",
    );
    let out = migrate(&server, &other);
    assert!(!out.status.success());
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    assert_eq!(
        pg.psql(
            "kura_other",
            "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'"
        )
        .trim(),
        "mine"
    );

    // the copy
    let started = Instant::now();
    let out = migrate(&server, &url);
    let secs = started.elapsed().as_secs_f64();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    println!("{t}");
    println!("kura db migrate took {secs:.2} s");
    assert!(t.contains("every count matches"), "{t}");
    assert!(
        !t.contains(&pg_password(&url)),
        "the password was printed: {t}"
    );
    assert!(t.contains("the files stay where they are"), "{t}");

    // again into the same database: it holds Kura rows now; refused, unchanged
    let users = || pg.psql("kura_main", "SELECT count(*) FROM users");
    let n_users = users();
    let out = migrate(&server, &url);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("already holds Kura rows"),
        "{}",
        text(&out)
    );
    assert_eq!(users(), n_users);

    // start on PostgreSQL with the same data dir and storage
    server.set_env("KURA_DATABASE_URL", &url);
    server.start_again();
    for (path, bytes) in dav_files() {
        assert_eq!(server.get(&path), bytes, "{path}");
    }
    let got = server.curl(&[
        "-f",
        "-u",
        "alice:alice-password-1",
        &server.dav("mig/s3/big.bin"),
    ]);
    assert!(got.status.success());
    assert!(got.stdout == big_bytes, "the multipart object differs");
    assert_eq!(listing(&server, &key), before_listing);
    assert_eq!(usage_line(&server), before_usage);
    // the lock is held: a write without its token is refused, with it passes
    assert_eq!(
        server.status(&["-X", "PUT", "--data-binary", "x", &server.dav(locked)]),
        423
    );
    assert_eq!(
        server.status(&[
            "-X",
            "PUT",
            "-H",
            &format!("If: ({token})"),
            "--data-binary",
            "new",
            &server.dav(locked)
        ]),
        204
    );
    // the share link, the kept version, the tag and the description
    let shared = server.curl(&["-f", &server.url(&format!("/s/{share}"))]);
    assert!(shared.status.success(), "{}", text(&shared));
    assert_eq!(shared.stdout, body("doc 3 ", 500 + 3 * 311));
    let v = run(server
        .kura()
        .args(["versions", "list", "/mig/report.docx", "--json"]));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&v.stdout).expect("versions");
    assert!(v.iter().any(|x| x["size"] == 11), "{v:?}");
    for q in ["tag:status=final", "annual meeting"] {
        let found = text(&run(server.kura().args(["find", q])));
        assert!(found.contains("/mig/docs/notes.txt"), "{q}: {found}");
    }
    // the quota holds: 20 MiB with ~9.1 MB used, 12 MB more is refused
    let huge = tmp.path().join("huge.bin");
    std::fs::write(&huge, vec![7u8; 12_000_000]).expect("huge");
    let over = server
        .aws(&key)
        .arg("s3")
        .arg("cp")
        .arg(&huge)
        .arg("s3://mig/s3/huge.bin")
        .output()
        .expect("aws");
    assert!(!over.status.success(), "an upload over the quota passed");
    // new rows get new ids: uploads through both protocols, a new key, no collision
    assert_eq!(server.put("mig/docs/after.txt", b"after"), 201);
    run(server
        .aws(&key)
        .arg("s3")
        .arg("cp")
        .arg(&small)
        .arg("s3://mig/s3/after.txt"));
    let newkey = server.s3_key_for("alice");
    run(server.aws(&newkey).args(["s3", "ls", "s3://mig/"]));
    assert_eq!(
        pg.psql(
            "kura_main",
            "SELECT count(*) - count(DISTINCT rowid) FROM entries"
        )
        .trim(),
        "0"
    );
    let fsck = text(&run(server.kura().arg("fsck")));
    assert!(fsck.contains("usage: no drift"), "{fsck}");
}

/// A target that silently drops a row (a trigger left in it): the verification sees the
/// difference, the transaction is rolled back and the target is as it was.
#[test]
fn a_copy_that_loses_a_row_is_rolled_back() {
    let pg = Postgres::start();
    let mut server = Server::plain();
    run(server.kura().args(["group", "add", "g"]));
    run(server
        .kura()
        .args(["bucket", "create", "mig", "--group", "g"]));
    for i in 0..5 {
        assert_eq!(server.put(&format!("mig/f-{i}.txt"), b"x"), 201);
    }
    server.stop();
    // an empty Kura schema: a first copy, then every row but the seeds removed
    let url = pg.create_database("kura_lossy");
    let out = migrate(&server, &url);
    assert!(out.status.success(), "{}", text(&out));
    pg.psql(
        "kura_lossy",
        "DO $$ DECLARE t TEXT; BEGIN FOR t IN SELECT tablename FROM pg_tables \
         WHERE schemaname = 'public' AND tablename NOT IN \
         ('_sqlx_migrations', 'generations', 'notify_cursor') \
         LOOP EXECUTE format('TRUNCATE %I CASCADE', t); END LOOP; END $$",
    );
    pg.psql(
        "kura_lossy",
        "CREATE FUNCTION swallow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.path = '/mig/f-3.txt' THEN RETURN NULL; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER swallow BEFORE INSERT ON entries FOR EACH ROW EXECUTE FUNCTION swallow()",
    );
    let out = migrate(&server, &url);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("rolled back"), "{t}");
    let entries_line = t
        .lines()
        .find(|l| l.starts_with("entries "))
        .expect("entries line");
    assert!(entries_line.contains("!="), "{t}");
    for table in ["users", "entries", "groups"] {
        assert_eq!(
            pg.psql("kura_lossy", &format!("SELECT count(*) FROM {table}"))
                .trim(),
            "0",
            "{table}"
        );
    }
}

/// A data dir whose schema is older (or newer) than the binary's: refused, with what to do,
/// and nothing written.
#[test]
fn a_source_of_another_schema_version_is_refused() {
    require("sqlite3");
    let pg = Postgres::start();
    let mut server = Server::plain();
    server.stop();
    let url = pg.create_database("kura_versions");
    let db = server.data_dir().join("kura.db");
    let sql = |q: &str| run(std::process::Command::new("sqlite3").arg(&db).arg(q));
    let last = String::from_utf8_lossy(&sql("SELECT max(version) FROM _sqlx_migrations").stdout)
        .trim()
        .to_string();
    // as if made by the release before: its last migration not applied
    let row = sql(&format!(
        "SELECT quote(description), quote(installed_on), 1, quote(checksum), quote(execution_time) \
         FROM _sqlx_migrations WHERE version = {last}"
    ));
    let row = String::from_utf8_lossy(&row.stdout)
        .trim()
        .replace('|', ", ");
    sql(&format!(
        "DELETE FROM _sqlx_migrations WHERE version = {last}"
    ));
    let out = migrate(&server, &url);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("start this version once"),
        "{}",
        text(&out)
    );
    // as if made by a newer release
    sql(&format!(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, \
         execution_time) VALUES ({last}, {row}); INSERT INTO _sqlx_migrations SELECT 9999, \
         description, installed_on, success, checksum, execution_time FROM _sqlx_migrations \
         WHERE version = {last}"
    ));
    let out = migrate(&server, &url);
    assert!(!out.status.success());
    assert!(text(&out).contains("newer Kura"), "{}", text(&out));
    let tables = pg.psql(
        "kura_versions",
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    );
    assert_eq!(tables.trim(), "0");
}

/// The password in a `postgres://user:password@host/db` URL.
fn pg_password(url: &str) -> String {
    let rest = url.split_once("://").expect("scheme").1;
    let creds = rest.split_once('@').expect("credentials").0;
    creds.split_once(':').expect("password").1.to_string()
}
