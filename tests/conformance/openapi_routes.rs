//! Everything the browser app does is in the OpenAPI documents: every route of the user
//! API's and the session endpoints' routers, and every request of the app's scripts (the
//! admin console's against the admin API's document), read from the sources by
//! `openapi_routes.py` and looked up in the documents a real server serves.

use std::process::Command;

use crate::common::{require, run, Server, ADMIN_PW};

#[test]
fn every_route_of_the_app_is_in_the_openapi_documents() {
    require("python3");
    let server = Server::plain();
    let admin = format!("admin:{ADMIN_PW}");
    let mut files = Vec::new();
    for (name, path) in [
        ("user", "/api/user/v1/openapi.json"),
        ("admin", "/api/v1/openapi.json"),
    ] {
        let out = server.curl(&["-sSf", "-u", &admin, &server.url(path)]);
        assert!(out.status.success(), "GET {path}: {out:?}");
        let file = server.root.path().join(format!("{name}-openapi.json"));
        std::fs::write(&file, &out.stdout).expect("write");
        files.push(file);
    }
    let out = run(Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/conformance/openapi_routes.py"
        ))
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(&files));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(text.contains("all routes documented"), "{text}");
}
