//! HTTP details clients rely on: MD5 ETags, validators, conditional requests, ranges,
//! Finder's chunked PUT with X-Expected-Entity-Length, and PROPFIND depth policy.

use std::process::Command;

use crate::common::{code, require, run, Server, ADMIN_PW};

fn headers(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["-D", "-", "-o", "/dev/null"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&server.curl_admin(&all).stdout).into_owned()
}

fn header<'a>(h: &'a str, name: &str) -> Option<&'a str> {
    h.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn etags_are_md5_and_conditional_requests_work() {
    require("curl");
    let server = Server::plain();
    let body = b"The quick brown fox jumps over the lazy dog";
    assert_eq!(server.put("fox.txt", body), 201);
    let md5 = "9e107d9d372bb6826bd81d3542a419d6";

    let h = headers(&server, &[&server.dav("fox.txt")]);
    assert_eq!(
        header(&h, "etag"),
        Some(format!("\"{md5}\"").as_str()),
        "{h}"
    );
    assert!(header(&h, "last-modified").is_some(), "{h}");
    assert_eq!(header(&h, "content-type"), Some("text/plain"), "{h}");
    let last_modified = header(&h, "last-modified").expect("lm").to_string();

    let propfind = server
        .curl_admin(&["-X", "PROPFIND", "-H", "Depth: 0", &server.dav("fox.txt")])
        .stdout;
    let propfind = String::from_utf8_lossy(&propfind);
    assert!(
        propfind.contains(&format!("<D:getetag>\"{md5}\"</D:getetag>")),
        "{propfind}"
    );

    let etag = format!("If-None-Match: \"{md5}\"");
    assert_eq!(server.status(&["-H", &etag, &server.dav("fox.txt")]), 304);
    let ims = format!("If-Modified-Since: {last_modified}");
    assert_eq!(server.status(&["-H", &ims, &server.dav("fox.txt")]), 304);
    assert_eq!(
        server.status(&["-H", "If-None-Match: \"other\"", &server.dav("fox.txt")]),
        200
    );

    // If-None-Match compares weakly (RFC 9110 13.1.2): the current tag as a weak validator
    // is a match; If-Match compares strongly: a weak validator never matches
    let weak_none = format!("If-None-Match: W/\"{md5}\"");
    assert_eq!(
        server.status(&["-H", &weak_none, &server.dav("fox.txt")]),
        304
    );
    let weak_match = format!("If-Match: W/\"{md5}\"");

    // a PUT whose precondition fails changes nothing
    for cond in [
        "If-Match: \"stale\"",
        "If-None-Match: *",
        weak_none.as_str(),
        weak_match.as_str(),
    ] {
        let s = server.status(&[
            "-X",
            "PUT",
            "-H",
            cond,
            "--data-binary",
            "replaced",
            &server.dav("fox.txt"),
        ]);
        assert_eq!(s, 412, "{cond}");
    }
    assert_eq!(server.get("fox.txt"), body);
    let if_match = format!("If-Match: \"{md5}\"");
    assert_eq!(
        server.status(&[
            "-X",
            "PUT",
            "-H",
            &if_match,
            "--data-binary",
            "replaced",
            &server.dav("fox.txt")
        ]),
        204
    );
    assert_eq!(server.get("fox.txt"), b"replaced");

    // "replaced" has 8 bytes: 4-8 is clipped to 4-7
    let r = server.curl_admin(&["-r", "4-8", "-w", "\n%{http_code}", &server.dav("fox.txt")]);
    assert_eq!(String::from_utf8_lossy(&r.stdout), "aced\n206");
}

#[test]
fn finder_style_chunked_put_honours_expected_entity_length() {
    require("curl");
    let server = Server::plain();
    let auth = format!("admin:{ADMIN_PW}");
    let chunked = |name: &str, expected: usize, body: &str| -> u16 {
        let out = run(Command::new("sh").arg("-c").arg(format!(
            "printf '%s' '{body}' | curl -sS -o /dev/null -w '%{{http_code}}' -u '{auth}' \
             -H 'Transfer-Encoding: chunked' -H 'X-Expected-Entity-Length: {expected}' -T - '{}'",
            server.dav(name)
        )));
        code(&out)
    };
    assert_eq!(chunked("ok.bin", 11, "hello world"), 201);
    assert_eq!(server.get("ok.bin"), b"hello world");
    let short = chunked("short.bin", 100, "only this");
    assert!(
        short >= 400,
        "a body shorter than X-Expected-Entity-Length was accepted ({short})"
    );
    assert_eq!(
        server.status(&["-I", &server.dav("short.bin")]),
        404,
        "partial file stored"
    );
    assert!(crate::common::tree(&server.data_dir().join("tmp")).is_empty());
}

#[test]
fn propfind_depth_infinity_is_a_setting() {
    require("curl");
    let on = Server::start_with(false, &[("KURA_PROPFIND_DEPTH_INFINITY", "true")]);
    assert_eq!(on.status(&["-X", "MKCOL", &on.dav("a")]), 201);
    assert_eq!(on.status(&["-X", "MKCOL", &on.dav("a/b")]), 201);
    assert_eq!(on.put("a/b/deep.txt", b"x"), 201);
    let out = on.curl_admin(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: infinity",
        "-w",
        "\n%{http_code}",
        &on.dav(""),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim_end().ends_with("207") && text.contains("/dav/a/b/deep.txt"),
        "{text}"
    );
}
