//! The server with its store on PostgreSQL (`database_url`, docs/scale-out.md): the WebDAV
//! compliance suite and every S3 operation of the boto3 script pass as they do on SQLite, and
//! the rows are in PostgreSQL, not in a `kura.db` beside them (none is made; the command
//! line knows the installation by its `kura.lock`).

use crate::common::{require, run, Server};
use crate::postgres::Postgres;

/// A plain-HTTP server whose metadata lives in a fresh database of `pg`.
fn server_on(pg: &Postgres, db: &str) -> Server {
    let url = pg.create_database(db);
    Server::start_with(false, &[("KURA_DATABASE_URL", &url)])
}

#[test]
fn litmus_passes_with_the_store_on_postgres() {
    let pg = Postgres::start();
    let server = server_on(&pg, "kura_litmus");
    crate::litmus::check(&server);
    // the tree litmus left and the administrator are rows of PostgreSQL
    let users = pg.psql(
        "kura_litmus",
        "SELECT count(*) FROM users WHERE name = 'admin'",
    );
    assert_eq!(users.trim(), "1");
    let file = std::fs::metadata(server.data_dir().join("kura.db")).map_or(0, |m| m.len());
    assert_eq!(file, 0, "an SQLite database was made beside PostgreSQL");
}

#[test]
fn boto3_every_operation_with_the_store_on_postgres() {
    require("python3");
    let pg = Postgres::start();
    let server = server_on(&pg, "kura_boto");
    let key = server.s3_key();
    let out = crate::s3_clients::boto3(&server, &key, false);
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    let keys = pg.psql("kura_boto", "SELECT count(*) FROM access_keys");
    assert_eq!(keys.trim(), "1", "the access key is not in PostgreSQL");
}

/// A backup copies the SQLite file: on PostgreSQL it would copy an empty or stale `kura.db`
/// and say it succeeded. It refuses instead, and writes no snapshot.
#[test]
fn a_backup_of_a_postgres_installation_refuses_and_writes_nothing() {
    let pg = Postgres::start();
    let server = server_on(&pg, "kura_backup");
    let repo = tempfile::tempdir().expect("tempdir");
    let repo = repo.path().join("repo");
    let out = server
        .kura()
        .arg("backup")
        .arg(&repo)
        .output()
        .expect("kura backup");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "kura backup succeeded: {text}");
    assert!(text.contains("PostgreSQL"), "{text}");
    assert!(!repo.join("snapshots").exists(), "a snapshot was written");
    // the data dir holds no database file to be mistaken for the installation's, and the
    // command line still finds the installation
    assert!(
        !server.data_dir().join("kura.db").exists(),
        "an empty kura.db"
    );
    run(server.kura().args(["group", "add", "still-found"]));
}
