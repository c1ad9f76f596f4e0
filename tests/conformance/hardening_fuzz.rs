//! Fuzz-style test of the request parsers an anonymous or authenticated client reaches: XML
//! bodies of PROPFIND, PROPPATCH and LOCK, and chunked framing of request bodies. Inputs are
//! generated from a seeded random source (printed, and settable with KURA_FUZZ_SEED to replay
//! a failure): structured documents and framings, then truncated, flipped or spliced. The
//! server must never answer 5xx and must stay up.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::common::Server;
use crate::hardening_net::{admin_basic, raw, status_of};

const XML_CASES: usize = 1500;
const CHUNKED_CASES: usize = 1000;
/// The whole run must end within this, however slow the machine.
const BUDGET: Duration = Duration::from_secs(240);

const NAMES: &[&str] = &[
    "propfind",
    "propertyupdate",
    "lockinfo",
    "prop",
    "set",
    "remove",
    "allprop",
    "propname",
    "include",
    "displayname",
    "getcontentlength",
    "getlastmodified",
    "resourcetype",
    "lockscope",
    "exclusive",
    "shared",
    "locktype",
    "write",
    "owner",
    "href",
    "x",
    "a-b_c.d",
];
const NAMESPACES: &[&str] = &[
    "DAV:",
    "urn:x",
    "",
    "http://apache.org/dav/props/",
    "dav:",
    "\u{e9}",
];
const TEXTS: &[&str] = &[
    "hello",
    "&amp;",
    "&lt;&gt;",
    "&#0;",
    "&#xD800;",
    "&#x10FFFF;",
    "&undefined;",
    "]]>",
    "<![CDATA[<a>]]>",
    "\u{0}",
    "\u{feff}",
    "äöü",
    "<!-- c -->",
    "<?pi x?>",
    "&#65;",
];

fn element(rng: &mut StdRng, depth: u32) -> String {
    let name = NAMES.choose(rng).copied().unwrap_or("x");
    let ns = NAMESPACES.choose(rng).copied().unwrap_or("DAV:");
    let prefixed = rng.gen_bool(0.5);
    let (open, close) = if prefixed {
        let p = ["D", "x", "", "1"].choose(rng).copied().unwrap_or("D");
        (
            format!("<{p}:{name} xmlns:{p}=\"{ns}\""),
            format!("</{p}:{name}>"),
        )
    } else if rng.gen_bool(0.7) {
        (format!("<{name} xmlns=\"{ns}\""), format!("</{name}>"))
    } else {
        (format!("<{name}"), format!("</{name}>"))
    };
    let mut s = open;
    if rng.gen_bool(0.2) {
        s.push_str(" a=\"1\" a=\"2\"");
    }
    if depth > 3 || rng.gen_bool(0.2) {
        s.push_str("/>");
        return s;
    }
    s.push('>');
    for _ in 0..rng.gen_range(0..4) {
        if rng.gen_bool(0.3) {
            s.push_str(TEXTS.choose(rng).copied().unwrap_or(""));
        } else {
            s.push_str(&element(rng, depth + 1));
        }
    }
    if rng.gen_bool(0.95) {
        s.push_str(&close);
    }
    s
}

fn xml_body(rng: &mut StdRng, method: &str) -> Vec<u8> {
    let mut s = String::new();
    match rng.gen_range(0..5) {
        0 => s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
        1 => s.push_str("<?xml version=\"1.1\" encoding=\"latin-9000\"?>"),
        2 => s.push_str(
            "<!DOCTYPE d [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;\"><!ENTITY e SYSTEM \"file:///etc/passwd\">]>",
        ),
        _ => {}
    }
    if rng.gen_bool(0.5) {
        // the method's own DAV: root, so that the parsers behind the root check are reached
        let root = match method {
            "PROPFIND" => "propfind",
            "PROPPATCH" => "propertyupdate",
            _ => "lockinfo",
        };
        s.push_str(&format!("<D:{root} xmlns:D=\"DAV:\">"));
        for _ in 0..rng.gen_range(0..3) {
            s.push_str(&element(rng, 1));
        }
        s.push_str(&format!("</D:{root}>"));
    } else {
        s.push_str(&element(rng, 0));
    }
    let mut b = s.into_bytes();
    if !b.is_empty() && rng.gen_bool(0.3) {
        let cut = rng.gen_range(0..b.len());
        b.truncate(cut);
    }
    if !b.is_empty() && rng.gen_bool(0.2) {
        for _ in 0..rng.gen_range(1..4) {
            let at = rng.gen_range(0..b.len());
            b[at] = rng.gen();
        }
    }
    if rng.gen_bool(0.05) {
        b = (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect();
    }
    b
}

/// A chunked body: well-formed, or broken in one of the ways a client can break it (the bool
/// says whether it was cut short on purpose).
fn chunked_body(rng: &mut StdRng) -> (Vec<u8>, bool) {
    let mut b = Vec::new();
    for _ in 0..rng.gen_range(0..4) {
        let data: Vec<u8> = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect();
        let size = match rng.gen_range(0..12) {
            0 => "zz".to_string(),
            1 => "-1".to_string(),
            2 => "1000000000000000000000000".to_string(),
            3 => format!("{:X}", data.len()),
            4 => format!("000{:x}", data.len()),
            5 => format!("{:x};ext=1", data.len()),
            6 => format!("{:x}", data.len() + rng.gen_range(1..10)),
            7 => format!(" {:x}", data.len()),
            8 => String::new(),
            _ => format!("{:x}", data.len()),
        };
        b.extend_from_slice(size.as_bytes());
        b.extend_from_slice(if rng.gen_bool(0.9) { b"\r\n" } else { b"\n" });
        b.extend_from_slice(&data);
        b.extend_from_slice(b"\r\n");
    }
    match rng.gen_range(0..4) {
        0 => b.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n"),
        1 => {}
        _ => b.extend_from_slice(b"0\r\n\r\n"),
    }
    let mut cut = false;
    if !b.is_empty() && rng.gen_bool(0.3) {
        b.truncate(rng.gen_range(0..b.len()));
        cut = true;
    }
    (b, cut)
}

fn alive(server: &Server) {
    let a = raw(
        server.port,
        b"GET /healthz HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
        false,
    );
    assert_eq!(status_of(&a), 200, "the server stopped answering: {a}");
}

#[test]
fn xml_and_chunked_parsers_never_fail_the_server() {
    let seed: u64 = std::env::var("KURA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("fuzz seed {seed} (replay with KURA_FUZZ_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let server = Server::plain();
    assert_eq!(server.status(&["-X", "MKCOL", &server.dav("fz/")]), 201);
    assert_eq!(server.put("fz/f.txt", b"fuzz"), 201);
    let auth = admin_basic();
    let start = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..XML_CASES {
        let method = ["PROPFIND", "PROPPATCH", "LOCK"]
            .choose(&mut rng)
            .copied()
            .unwrap_or("LOCK");
        let target = ["/dav/fz/f.txt", "/dav/fz/", "/dav/fz/missing"]
            .choose(&mut rng)
            .copied()
            .unwrap_or("/");
        let body = xml_body(&mut rng, method);
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: k\r\nAuthorization: {auth}\r\nConnection: close\r\nDepth: {}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
            ["0", "1"].choose(&mut rng).copied().unwrap_or("0"),
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        let a = raw(server.port, &req, Duration::from_secs(20), false);
        let code = status_of(&a);
        *statuses.entry(code).or_default() += 1;
        assert!(
            (100..500).contains(&code),
            "case {i}: {method} {target} with {:?} got {code}: {a}",
            String::from_utf8_lossy(&body)
        );
        if i % 250 == 0 {
            alive(&server);
        }
        assert!(start.elapsed() < BUDGET, "fuzzing took too long");
    }
    for i in 0..CHUNKED_CASES {
        let (body, cut) = chunked_body(&mut rng);
        let target = ["/dav/fz/c.bin", "/api/v1/groups"]
            .choose(&mut rng)
            .copied()
            .unwrap_or("/");
        let method = if target.starts_with("/api") {
            "POST"
        } else {
            "PUT"
        };
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: k\r\nAuthorization: {auth}\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        req.extend_from_slice(&body);
        // the sending side is closed after the body, so an incomplete one ends in EOF; hyper
        // may then drop the connection without an answer (0), but never answer with a 5xx
        let a = raw(server.port, &req, Duration::from_secs(20), true);
        let code = status_of(&a);
        *statuses.entry(code).or_default() += 1;
        let ok = (100..500).contains(&code) || code == 0;
        assert!(
            ok,
            "case {i}: {:?} (cut {cut}) got {code}: {a}",
            String::from_utf8_lossy(&body)
        );
        if i % 250 == 0 {
            alive(&server);
        }
        assert!(start.elapsed() < BUDGET, "fuzzing took too long");
    }
    alive(&server);
    // the framing errors were answered, not only dropped
    assert!(statuses.get(&400).is_some_and(|n| *n > 50), "{statuses:?}");
    println!(
        "fuzz: {} cases in {:?}, statuses {statuses:?}",
        XML_CASES + CHUNKED_CASES,
        start.elapsed()
    );
}
