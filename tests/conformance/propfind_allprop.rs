//! PROPFIND allprop (as Windows Explorer sends it) of a folder: read in chunks, with the
//! folder's dead properties and the locks read once, each entry answers exactly what a
//! PROPFIND of that entry alone answers (dead properties, lockdiscovery with the tokens only
//! their holders see, Win32 properties Explorer set), as well-formed XML whatever the dead
//! properties hold, and a folder of 10,000 entries is listed whole, each entry once.

use std::collections::BTreeMap;

use crate::common::{code, require, Server, ADMIN_PW};

const PW: &str = "allprop-pw";
const ALLPROP: &str =
    r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;

fn auth(who: &str) -> String {
    if who == "admin" {
        format!("admin:{ADMIN_PW}")
    } else {
        format!("{who}:{PW}")
    }
}

/// Windows Explorer's User-Agent: its allprop adds the Win32 properties.
const EXPLORER: &str = "User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045";

/// A PROPFIND as `who` (`body` empty: no body, as Explorer); status and answer.
fn propfind(server: &Server, who: &str, path: &str, depth: &str, body: &str) -> (u16, String) {
    propfind_as(server, who, path, depth, body, "User-Agent: curl")
}

/// `propfind` with a User-Agent header (`EXPLORER` or another).
fn propfind_as(
    server: &Server,
    who: &str,
    path: &str,
    depth: &str,
    body: &str,
    agent: &str,
) -> (u16, String) {
    let a = auth(who);
    let depth = format!("Depth: {depth}");
    let url = server.dav(path);
    let mut args = vec![
        "-u",
        a.as_str(),
        "-X",
        "PROPFIND",
        "-H",
        depth.as_str(),
        "-H",
        agent,
    ];
    if !body.is_empty() {
        args.extend(["--data-binary", body]);
    }
    args.extend(["-w", "\n%{http_code}", url.as_str()]);
    let text = String::from_utf8_lossy(&server.curl(&args).stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

/// The `<D:response>` elements of a multistatus by href, lock timeouts (which count down
/// between two requests) blanked.
fn responses(xml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for part in xml.split("<D:response>").skip(1) {
        let resp = part.split("</D:response>").next().expect("response end");
        let href = resp
            .split("<D:href>")
            .nth(1)
            .and_then(|h| h.split("</D:href>").next())
            .expect("href")
            .to_string();
        let mut clean = String::new();
        let mut rest = resp;
        while let Some(i) = rest.find("<D:timeout>") {
            clean.push_str(&rest[..i]);
            let end = rest[i..].find("</D:timeout>").expect("timeout end") + i;
            rest = &rest[end..];
        }
        clean.push_str(rest);
        assert!(
            out.insert(href.clone(), clean).is_none(),
            "{href} listed twice"
        );
    }
    out
}

fn proppatch(server: &Server, path: &str, name: &str, value: &str) {
    proppatch_in(server, path, "urn:x-test", name, value);
}

/// PROPPATCH of one property `name` of namespace `ns` (value: XML content) as admin.
fn proppatch_in(server: &Server, path: &str, ns: &str, name: &str, value: &str) {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:X="{ns}"><D:set><D:prop><X:{name}>{value}</X:{name}></D:prop></D:set></D:propertyupdate>"#
    );
    let a = auth("admin");
    let url = server.dav(path);
    let out = server.curl(&[
        "-u",
        &a,
        "-X",
        "PROPPATCH",
        "--data-binary",
        &body,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!(code(&out), 207, "PROPPATCH {path}");
}

#[test]
fn allprop_listing_answers_each_entry_as_a_propfind_of_it_alone() {
    require("curl");
    let server = Server::plain();
    server.add_user("ann", PW, &[]);
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("d")]),
        201,
        "MKCOL"
    );
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("d/sub")]),
        201,
        "MKCOL"
    );
    for f in ["a.txt", "b.txt", "c.txt", "plain.txt"] {
        assert_eq!(server.put(&format!("d/{f}"), f.as_bytes()), 201, "{f}");
    }
    crate::common::run(server.kura().args([
        "chmod",
        "777",
        "/d",
        "/d/sub",
        "/d/a.txt",
        "/d/b.txt",
        "/d/c.txt",
        "/d/plain.txt",
    ]));
    proppatch(&server, "d/a.txt", "color", "red");
    proppatch(&server, "d/a.txt", "shape", "round");
    proppatch(&server, "d/sub", "color", "blue");
    proppatch(&server, "d", "color", "green");
    // markup and escapes in a value, and a Win32 time Explorer set on one file only
    proppatch(
        &server,
        "d/plain.txt",
        "note",
        r#"a &amp; b &lt;c&gt; <X:deep xmlns:Y="urn:y" Y:at="1&quot;2">x</X:deep>"#,
    );
    proppatch_in(
        &server,
        "d/b.txt",
        "urn:schemas-microsoft-com:",
        "Win32LastModifiedTime",
        "Tue, 01 Jan 2019 10:00:00 GMT",
    );
    let lockinfo = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>t</D:owner></D:lockinfo>"#;
    let (s, admin_token) = crate::locks::lock_as(&server, &auth("admin"), "d/c.txt", "0", lockinfo);
    assert_eq!(s, 200);
    let (s, ann_token) =
        crate::locks::lock_as(&server, &auth("ann"), "d/sub", "infinity", lockinfo);
    assert_eq!(s, 200);
    let admin_token = admin_token
        .expect("token")
        .trim_matches(['<', '>'])
        .to_string();
    let ann_token = ann_token
        .expect("token")
        .trim_matches(['<', '>'])
        .to_string();

    for who in ["admin", "ann"] {
        for (body, agent) in [
            ("", "User-Agent: curl"),
            (ALLPROP, "User-Agent: curl"),
            ("", EXPLORER),
        ] {
            let (s, listing) = propfind_as(&server, who, "d", "1", body, agent);
            assert_eq!(s, 207, "{listing}");
            // well-formed, namespaces declared: a parser reads every response
            let doc = xmltree::Element::parse(listing.as_bytes())
                .unwrap_or_else(|e| panic!("{who} {agent}: {e}: {listing}"));
            let parsed = doc.children.iter().filter_map(|n| n.as_element()).count();
            assert_eq!(parsed, 6, "{listing}");
            let listed = responses(&listing);
            assert_eq!(listed.len(), 6, "{listing}");
            for (href, resp) in &listed {
                let path = href.strip_prefix("/dav/").expect("href under /dav/");
                let (s, alone) = propfind_as(&server, who, path, "0", body, agent);
                assert_eq!(s, 207);
                let alone = responses(&alone);
                assert_eq!(alone.get(href), Some(resp), "{who}: {href} differs alone");
            }
            let a = &listed["/dav/d/a.txt"];
            assert!(a.contains(">red<") && a.contains(">round<"), "{a}");
            assert!(listed["/dav/d/sub/"].contains(">blue<"));
            assert!(listed["/dav/d/"].contains(">green<"));
            let plain = &listed["/dav/d/plain.txt"];
            assert!(!plain.contains("color"));
            assert!(
                plain.contains("a &amp; b &lt;c&gt; <X:deep") && plain.contains(">x</X:deep>"),
                "{plain}"
            );
            // the Win32 time set on b.txt is b's alone (Explorer's listing answers it)
            let b = &listed["/dav/d/b.txt"];
            let set = "Tue, 01 Jan 2019 10:00:00 GMT";
            assert!(b.contains(set), "{b}");
            assert!(!listed["/dav/d/a.txt"].contains(set));
            // each entry shows its locks; a token only to its holder (and administrators)
            let c = &listed["/dav/d/c.txt"];
            let sub = &listed["/dav/d/sub/"];
            assert!(c.contains("activelock") && sub.contains("activelock"));
            assert!(!listed["/dav/d/b.txt"].contains("activelock"));
            assert_eq!(c.contains(&admin_token), who == "admin", "{who}: {c}");
            assert!(sub.contains(&ann_token), "{who}: {sub}");
            assert!(c.contains("supportedlock"));
        }
    }
}

#[test]
fn allprop_of_ten_thousand_entries_lists_each_once() {
    require("curl");
    let server = Server::plain();
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("big")]), 201);
    let n = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("body");
    std::fs::write(&body, b"x").expect("body");
    // one curl for all uploads (a process per file would take minutes)
    // `next` resets per-transfer options: each block names its credentials and `fail`
    let each = format!(
        "user = \"{}\"\nfail\noutput = \"/dev/null\"\n",
        auth("admin")
    );
    let mut config = String::new();
    for i in 0..n {
        config.push_str(&each);
        // a few folders among the files, at chunk boundaries too
        if i % 499 == 0 {
            config.push_str(&format!(
                "url = \"{}\"\nrequest = \"MKCOL\"\nnext\n",
                server.dav(&format!("big/e{i:05}"))
            ));
        } else {
            config.push_str(&format!(
                "url = \"{}\"\nupload-file = \"{}\"\nnext\n",
                server.dav(&format!("big/e{i:05}")),
                body.display()
            ));
        }
    }
    // a `next` after the last URL would start a transfer without one
    let config = config.strip_suffix("next\n").expect("entries");
    let cfg = dir.path().join("curl.cfg");
    std::fs::write(&cfg, config).expect("config");
    let out = server.curl(&[
        "--parallel",
        "--parallel-max",
        "4",
        "-K",
        cfg.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "uploads failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, listing) = propfind(&server, "admin", "big", "1", "");
    assert_eq!(s, 207);
    let listed = responses(&listing);
    assert_eq!(
        listed.len(),
        n + 1,
        "{}",
        &listing[..listing.len().min(3000)]
    );
    for i in 0..n {
        let slash = if i % 499 == 0 { "/" } else { "" };
        let href = format!("/dav/big/e{i:05}{slash}");
        let r = listed
            .get(&href)
            .unwrap_or_else(|| panic!("{href} missing"));
        assert!(r.contains("lockdiscovery") && r.contains("getetag"), "{r}");
    }
}
