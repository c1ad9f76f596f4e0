//! Browser sign-in (docs/web.md), attacked as a hostile page and a hostile client would: the
//! session cookie's attributes, CSRF tokens, other origins, the failed-login throttle,
//! sessions surviving a restart and ending on a password change or sign-out everywhere,
//! and TOTP two-factor authentication with replay refused and recovery codes used once.

use std::process::Output;

use crate::common::{code, run, Server};

const API: &str = "/api/user/v1/";

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A curl call to the user API with extra arguments; `-i` so headers come back too.
fn call(server: &Server, method: &str, path: &str, args: &[&str]) -> (u16, String) {
    let url = server.url(&format!("{API}{path}"));
    let mut all = vec!["-s", "-i", "-X", method, "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    all.push(&url);
    let out = server.curl(&all);
    let t = text(&out);
    let (body, status) = t.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

/// The JSON body of a `-i` answer.
fn json_of(answer: &str) -> serde_json::Value {
    let body = answer.split("\r\n\r\n").last().unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// Signs in; returns (status, cookie header value for later requests, csrf, whole answer).
fn sign_in(server: &Server, user_pw: &str, extra: &[&str]) -> (u16, String, String, String) {
    let mut args = vec!["-u", user_pw, "-H", "Content-Type: application/json"];
    args.extend_from_slice(extra);
    let (status, answer) = call(server, "POST", "session", &args);
    let cookie = answer
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l["set-cookie:".len()..].trim().to_string())
        })
        .unwrap_or_default();
    let pair = cookie.split(';').next().unwrap_or("").to_string();
    let csrf = json_of(&answer)["csrf"].as_str().unwrap_or("").to_string();
    (status, pair, csrf, answer)
}

fn with_cookie(cookie: &str) -> String {
    format!("Cookie: {cookie}")
}

fn csrf_header(csrf: &str) -> String {
    format!("X-Kura-CSRF: {csrf}")
}

/// The TOTP code of a base32 secret for the time step holding `at` seconds.
fn totp_code(secret: &str, at: u64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret)
        .expect("base32")
        .as_bytes()
        .to_vec();
    totp_rs::Builder::new()
        .with_secret(bytes)
        .build()
        .expect("totp")
        .generate(at)
        .to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

#[test]
fn the_app_page_is_served_with_a_strict_policy_and_browsers_land_on_it() {
    let server = Server::start(true);
    let out = server.curl(&["-s", "-i", "-H", "Accept: text/html", &server.url("/")]);
    let t = text(&out);
    assert!(t.starts_with("HTTP/") && t.contains(" 303"), "{t}");
    assert!(t.to_ascii_lowercase().contains("location: /app/"), "{t}");
    let page = text(&server.curl(&["-s", "-i", &server.url("/app/")]));
    let lower = page.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{page}"
    );
    assert!(lower.contains("x-frame-options: deny"), "{page}");
    // no inline script: every <script> has a src
    for tag in lower.split("<script").skip(1) {
        assert!(
            tag.trim_start().starts_with("src="),
            "inline script in the page: {tag}"
        );
    }
    let js = server.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{content_type}",
        &server.url("/app/app.js"),
    ]);
    assert_eq!(text(&js), "200 text/javascript; charset=utf-8");
    // the app's pages cannot be written, and unknown ones are 404
    assert_eq!(
        code(&server.curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--http1.1",
            "-X",
            "PUT",
            "-d",
            "x",
            &server.url("/app/app.js")
        ])),
        405
    );
    assert_eq!(
        code(&server.curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &server.url("/app/../../etc/passwd")
        ])),
        404
    );
}

#[test]
fn a_session_cookie_signs_in_survives_a_restart_and_refuses_cross_site_writes() {
    let mut server = Server::start(true);
    server.add_user("alice", "alice-pw-123", &[]);
    // wrong password: 401, no cookie, counted by the throttle
    let (status, cookie, _, answer) = sign_in(&server, "alice:nope", &[]);
    assert_eq!(status, 401, "{answer}");
    assert!(cookie.is_empty(), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("www-authenticate"),
        "a browser would pop up a dialog: {answer}"
    );
    // a page of another origin cannot sign anyone in (login CSRF)
    let (status, _, _, _) = sign_in(
        &server,
        "alice:alice-pw-123",
        &["-H", "Origin: https://evil.example"],
    );
    assert_eq!(status, 403);
    let (status, _, _, _) = sign_in(
        &server,
        "alice:alice-pw-123",
        &["-H", "Sec-Fetch-Site: cross-site"],
    );
    assert_eq!(status, 403);

    let (status, cookie, csrf, answer) = sign_in(&server, "alice:alice-pw-123", &[]);
    assert_eq!(status, 200, "{answer}");
    let set = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    for attr in [
        "__Host-kura=",
        "Path=/",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
    ] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!csrf.is_empty());
    let c = with_cookie(&cookie);
    let (status, answer) = call(&server, "GET", "session", &["-H", &c]);
    assert_eq!(status, 200);
    assert_eq!(json_of(&answer)["user"], "alice");
    // a forged or foreign cookie is nobody
    let (status, _) = call(
        &server,
        "GET",
        "session",
        &["-H", "Cookie: __Host-kura=forged"],
    );
    assert_eq!(status, 401);
    let (status, _) = call(
        &server,
        "GET",
        "session",
        &["-H", &c.replace("__Host-kura", "kura")],
    );
    assert_eq!(status, 401);

    // writes need the CSRF token and this origin
    let (status, _) = call(&server, "DELETE", "session", &["-H", &c]);
    assert_eq!(status, 403);
    let (status, _) = call(
        &server,
        "DELETE",
        "session",
        &["-H", &c, "-H", "X-Kura-CSRF: guessed"],
    );
    assert_eq!(status, 403);
    let (status, _) = call(
        &server,
        "DELETE",
        "session",
        &[
            "-H",
            &c,
            "-H",
            &csrf_header(&csrf),
            "-H",
            "Origin: https://evil.example",
        ],
    );
    assert_eq!(status, 403);
    let (status, _) = call(&server, "GET", "session", &["-H", &c]);
    assert_eq!(status, 200, "a refused sign-out signed out");

    // the session is a row in the database: a restart keeps it
    server.restart();
    let (status, _) = call(&server, "GET", "session", &["-H", &c]);
    assert_eq!(status, 200, "the session did not survive a restart");

    // a second browser; sign-out everywhere ends both
    let (_, cookie2, _, _) = sign_in(&server, "alice:alice-pw-123", &[]);
    let c2 = with_cookie(&cookie2);
    let (status, answer) = call(&server, "GET", "sessions", &["-H", &c2]);
    assert_eq!(status, 200);
    assert_eq!(
        json_of(&answer)["sessions"].as_array().map(Vec::len),
        Some(2)
    );
    let (status, answer) = call(
        &server,
        "DELETE",
        "sessions",
        &["-H", &c, "-H", &csrf_header(&csrf)],
    );
    assert_eq!(status, 204, "{answer}");
    assert!(answer.contains("Max-Age=0"), "{answer}");
    assert_eq!(call(&server, "GET", "session", &["-H", &c]).0, 401);
    assert_eq!(call(&server, "GET", "session", &["-H", &c2]).0, 401);

    // a password change signs every browser out
    let (_, cookie3, _, _) = sign_in(&server, "alice:alice-pw-123", &[]);
    run(server.kura().args(["user", "passwd", "alice"]));
    assert_eq!(
        call(&server, "GET", "session", &["-H", &with_cookie(&cookie3)]).0,
        401
    );
}

#[test]
fn failed_sign_ins_are_throttled_like_every_other_entry_point() {
    let server = Server::start(true);
    server.add_user("bob", "bob-pw-12345", &[]);
    let codes: Vec<u16> = (0..7)
        .map(|_| sign_in(&server, "bob:wrong", &[]).0)
        .collect();
    assert_eq!(&codes[..5], &[401; 5], "{codes:?}");
    assert!(codes[5..].iter().all(|c| *c == 429), "{codes:?}");
    // the right password is refused too while the account is throttled
    assert_eq!(sign_in(&server, "bob:bob-pw-12345", &[]).0, 429);
    // an oversize body is refused before anything is parsed (small enough to be sent whole
    // before the refusal, so the client reads the answer)
    let big = "x".repeat(9 * 1024);
    let (status, _) = call(
        &server,
        "POST",
        "session",
        &["--http1.1", "-u", "nobody:x", "--data-raw", &big],
    );
    assert_eq!(status, 413);
}

#[test]
fn two_factor_sign_in_refuses_replays_and_uses_recovery_codes_once() {
    let server = Server::start(true);
    server.add_user("carol", "carol-pw-123", &[]);
    let (_, cookie, csrf, _) = sign_in(&server, "carol:carol-pw-123", &[]);
    let (c, x) = (with_cookie(&cookie), csrf_header(&csrf));
    let (status, answer) = call(&server, "POST", "2fa", &["-H", &c, "-H", &x]);
    assert_eq!(status, 200, "{answer}");
    let setup = json_of(&answer);
    let secret = setup["secret"].as_str().expect("secret").to_string();
    assert!(
        setup["url"]
            .as_str()
            .expect("url")
            .starts_with("otpauth://totp/Kura:carol?"),
        "{setup}"
    );
    // a wrong code does not turn it on
    let bad = serde_json::json!({"secret": secret, "code": "000000"}).to_string();
    let (status, _) = confirm_2fa(&server, Some("carol:carol-pw-123"), (&c, &x), &bad);
    assert_eq!(status, 401);
    let code_now = totp_code(&secret, now());
    let good = serde_json::json!({"secret": secret, "code": code_now}).to_string();
    let (status, answer) = confirm_2fa(&server, Some("carol:carol-pw-123"), (&c, &x), &good);
    assert_eq!(status, 200, "{answer}");
    let recovery: Vec<String> = json_of(&answer)["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|v| v.as_str().expect("code").to_string())
        .collect();
    assert_eq!(recovery.len(), 10);

    // the password alone no longer signs in
    let (status, cookie, _, answer) = sign_in(&server, "carol:carol-pw-123", &[]);
    assert_eq!(status, 401);
    assert_eq!(json_of(&answer)["error"], "second_factor_required");
    assert!(cookie.is_empty());
    // the code that turned it on cannot be replayed
    let replay = serde_json::json!({"code": code_now}).to_string();
    assert_eq!(
        sign_in(&server, "carol:carol-pw-123", &["-d", &replay]).0,
        401
    );
    // a recovery code works once, whatever its spelling
    let spelled = recovery[0].to_uppercase().replace('-', " ");
    let rc = serde_json::json!({"code": spelled}).to_string();
    assert_eq!(sign_in(&server, "carol:carol-pw-123", &["-d", &rc]).0, 200);
    assert_eq!(sign_in(&server, "carol:carol-pw-123", &["-d", &rc]).0, 401);
    // the next time step's code (within the allowed skew) signs in, once
    let next = serde_json::json!({"code": totp_code(&secret, now() + 30)}).to_string();
    assert_eq!(
        sign_in(&server, "carol:carol-pw-123", &["-d", &next]).0,
        200
    );
    assert_eq!(
        sign_in(&server, "carol:carol-pw-123", &["-d", &next]).0,
        401
    );

    // the administrator resets it (a lost phone): sessions end, the password alone works again
    run(server.kura().args(["user", "reset-2fa", "carol"]));
    let (status, _, _, _) = sign_in(&server, "carol:carol-pw-123", &[]);
    assert_eq!(status, 200);
}

/// Asks for a new TOTP secret in the session (cookie header `c`, CSRF header `x`).
fn begin_2fa(server: &Server, c: &str, x: &str) -> String {
    let (_, answer) = call(server, "POST", "2fa", &["-H", c, "-H", x]);
    json_of(&answer)["secret"]
        .as_str()
        .expect("secret")
        .to_string()
}

/// Confirms two-factor authentication in the session with `body`, sending `user_pw` as the
/// password asked again (none: the session alone); returns the status and the answer.
fn confirm_2fa(
    server: &Server,
    user_pw: Option<&str>,
    (c, x): (&str, &str),
    body: &str,
) -> (u16, String) {
    let mut args = vec![
        "-H",
        c,
        "-H",
        x,
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
    ];
    if let Some(up) = user_pw {
        args.extend_from_slice(&["-u", up]);
    }
    call(server, "PUT", "2fa", &args)
}

/// Turns two-factor authentication on for `user`; returns its secret.
fn turn_on_2fa(server: &Server, user_pw: &str) -> String {
    let (_, cookie, csrf, _) = sign_in(server, user_pw, &[]);
    let (c, x) = (with_cookie(&cookie), csrf_header(&csrf));
    let secret = begin_2fa(server, &c, &x);
    let good = serde_json::json!({"secret": secret, "code": totp_code(&secret, now())});
    let (status, answer) = confirm_2fa(server, Some(user_pw), (&c, &x), &good.to_string());
    assert_eq!(status, 200, "{answer}");
    secret
}

/// Red team: whoever guesses codes knows the password, so every address they use can first
/// log in to WebDAV with it; a proven address escapes the throttle's per-account cap, and
/// each got 5 code guesses per window: 6-digit codes fell to enough addresses. Wrong codes
/// have their own cap per account, over all addresses, which a correct code does not pass.
#[test]
fn code_guesses_are_capped_per_account_over_all_addresses() {
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
            ("KURA_LIMITS__AUTH_FAILURES_PER_IP", "1000"),
        ],
    );
    server.add_user("dora", "dora-pw-1234", &[]);
    let secret = turn_on_2fa(&server, "dora:dora-pw-1234");
    let mut checked = 0;
    let mut codes = Vec::new();
    for i in 0..8 {
        let xff = format!("X-Forwarded-For: 203.0.113.{i}");
        let propfind = server.curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            "dora:dora-pw-1234",
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
            "-H",
            &xff,
            &server.dav("/"),
        ]);
        assert_eq!(text(&propfind), "207");
        for n in 0..4 {
            // never the current code (nor its neighbours)
            let guess = format!("{:06}", (i * 10 + n) % 1_000_000);
            let guess = if [-30i64, 0, 30]
                .iter()
                .any(|d| totp_code(&secret, (now() as i64 + d) as u64) == guess)
            {
                "999999".to_string()
            } else {
                guess
            };
            let body = serde_json::json!({ "code": guess }).to_string();
            let status = sign_in(&server, "dora:dora-pw-1234", &["-H", &xff, "-d", &body]).0;
            if status == 401 {
                checked += 1;
            }
            codes.push(status);
        }
    }
    println!("32 wrong codes from 8 proven addresses: {codes:?}");
    assert_eq!(checked, 10, "{codes:?}");
    assert!(codes[10..].iter().all(|c| *c == 429), "{codes:?}");
    // the right code is not checked either while the account is over its budget
    let right = serde_json::json!({"code": totp_code(&secret, now())}).to_string();
    let (status, _, _, answer) = sign_in(
        &server,
        "dora:dora-pw-1234",
        &["-H", "X-Forwarded-For: 198.51.100.7", "-d", &right],
    );
    assert_eq!(status, 429, "{answer}");
    assert_eq!(json_of(&answer)["error"], "too_many_codes");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after:"),
        "{answer}"
    );
    // a wrong password is still a plain failure (the code budget is for second factors)
    assert_eq!(sign_in(&server, "dora:wrong", &[]).0, 401);
}

/// Red team: turning two-factor authentication on is what a user does after a scare (a
/// password seen by someone); the sessions opened with the password alone end then, all but
/// the one that turned it on, as its doc promised but the store did not do.
#[test]
fn turning_two_factor_on_ends_the_other_sessions() {
    let server = Server::start(true);
    server.add_user("erin", "erin-pw-1234", &[]);
    let (_, intruder, _, _) = sign_in(&server, "erin:erin-pw-1234", &[]);
    let (_, cookie, csrf, _) = sign_in(&server, "erin:erin-pw-1234", &[]);
    let (c, x) = (with_cookie(&cookie), csrf_header(&csrf));
    let secret = begin_2fa(&server, &c, &x);
    let good = serde_json::json!({"secret": secret, "code": totp_code(&secret, now())}).to_string();
    let (status, answer) = confirm_2fa(&server, Some("erin:erin-pw-1234"), (&c, &x), &good);
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call(&server, "GET", "session", &["-H", &with_cookie(&intruder)]);
    assert_eq!(
        status, 401,
        "the session opened before 2FA lives on: {answer}"
    );
    // the session that turned it on stays, and lists itself alone
    let (status, answer) = call(&server, "GET", "sessions", &["-H", &c]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        json_of(&answer)["sessions"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    // a second secret cannot replace the first once it is on
    let (status, _) = confirm_2fa(&server, Some("erin:erin-pw-1234"), (&c, &x), &good);
    assert_eq!(status, 400);
}

/// Red team: a session alone (a cookie stolen, a browser left open) turned two-factor
/// authentication on with a secret of the thief's, locking the owner out of the app (and,
/// as turning it on ends the other sessions, out at once). It now takes the password again,
/// counted by the failed-login throttle like any other.
#[test]
fn turning_two_factor_on_takes_the_password_again() {
    let server = Server::start(true);
    server.add_user("fay", "fay-pw-12345", &[]);
    let (_, cookie, csrf, _) = sign_in(&server, "fay:fay-pw-12345", &[]);
    let (c, x) = (with_cookie(&cookie), csrf_header(&csrf));
    let secret = begin_2fa(&server, &c, &x);
    let good = serde_json::json!({"secret": secret, "code": totp_code(&secret, now())}).to_string();
    let put = |user_pw: Option<&str>| confirm_2fa(&server, user_pw, (&c, &x), &good);
    let (status, answer) = put(None);
    assert_eq!(status, 401, "a session alone turned 2FA on: {answer}");
    assert_eq!(put(Some("fay:wrong")).0, 401);
    // another user's password is not fay's
    server.add_user("gus", "gus-pw-12345", &[]);
    assert_eq!(put(Some("gus:gus-pw-12345")).0, 401);
    let (_, answer) = call(&server, "GET", "session", &["-H", &c]);
    assert_eq!(json_of(&answer)["two_factor"], false, "{answer}");
    let (status, answer) = put(Some("fay:fay-pw-12345"));
    assert_eq!(status, 200, "{answer}");
}

/// Red team: a session alone (a cookie stolen, a browser left open) and a code seen over a
/// shoulder or a recovery code found on a desk turned two-factor authentication off, or got
/// new recovery codes (the owner's own then stop working). Both now take the password again,
/// as turning it on does, beside a current or recovery code.
#[test]
fn turning_two_factor_off_and_new_recovery_codes_take_the_password_again() {
    let server = Server::start(true);
    server.add_user("hal", "hal-pw-12345", &[]);
    server.add_user("ivy", "ivy-pw-12345", &[]);
    let (_, cookie, csrf, _) = sign_in(&server, "hal:hal-pw-12345", &[]);
    let (c, x) = (with_cookie(&cookie), csrf_header(&csrf));
    let secret = begin_2fa(&server, &c, &x);
    let good = serde_json::json!({"secret": secret, "code": totp_code(&secret, now())});
    let (status, answer) = confirm_2fa(
        &server,
        Some("hal:hal-pw-12345"),
        (&c, &x),
        &good.to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let codes_of = |answer: &str| -> Vec<String> {
        json_of(answer)["recovery_codes"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old = codes_of(&answer);
    assert_eq!(old.len(), 10);
    // the session that turned it on, with a recovery code, and `user_pw` as the password
    let with = |method: &str, path: &str, user_pw: Option<&str>, code: &str| {
        let body = serde_json::json!({ "code": code }).to_string();
        let mut args = vec![
            "-H",
            &c,
            "-H",
            &x,
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
        ];
        if let Some(up) = user_pw {
            args.extend_from_slice(&["-u", up]);
        }
        call(&server, method, path, &args)
    };
    let on = || {
        let (_, answer) = call(&server, "GET", "session", &["-H", &c]);
        json_of(&answer)["two_factor"] == true
    };
    for (method, path) in [("DELETE", "2fa"), ("POST", "2fa/recovery-codes")] {
        let (status, answer) = with(method, path, None, &old[1]);
        assert_eq!(
            status, 401,
            "{method} {path} with a session alone: {answer}"
        );
        // another user's password is not hal's
        assert_eq!(with(method, path, Some("ivy:ivy-pw-12345"), &old[1]).0, 401);
        assert!(
            on(),
            "{method} {path} changed two-factor without the password"
        );
    }
    // a wrong password (a failed login, like each refusal below: five from one address
    // would lock hal out for 15 minutes, so this test makes three)
    assert_eq!(with("DELETE", "2fa", Some("hal:wrong-pw"), &old[1]).0, 401);
    // with the password and a code: new recovery codes, the old ones spent
    let (status, answer) = with(
        "POST",
        "2fa/recovery-codes",
        Some("hal:hal-pw-12345"),
        &old[1],
    );
    assert_eq!(status, 200, "{answer}");
    let new = codes_of(&answer);
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|n| !old.contains(n)), "{new:?}");
    let rc = serde_json::json!({"code": old[2]}).to_string();
    assert_eq!(sign_in(&server, "hal:hal-pw-12345", &["-d", &rc]).0, 401);
    // the password and no code: still on
    assert_eq!(with("DELETE", "2fa", Some("hal:hal-pw-12345"), "").0, 401);
    assert!(on());
    // the password and a code turn it off; every session ends
    let (status, answer) = with("DELETE", "2fa", Some("hal:hal-pw-12345"), &new[0]);
    assert_eq!(status, 204, "{answer}");
    let (status, _) = call(&server, "GET", "session", &["-H", &c]);
    assert_eq!(status, 401);
    assert_eq!(sign_in(&server, "hal:hal-pw-12345", &[]).0, 200);
}

/// Red team: a request signed in by its session cookie that also carried `Authorization:
/// Basic victim:anything` succeeded, and the throttle took that success as the victim's
/// password proven from that address: any user could so exempt address after address from
/// the victim's per-account cap, and guess the victim's password from each. Credentials
/// beside a session are now refused unless checked (turning 2FA on checks them).
#[test]
fn a_session_does_not_prove_another_accounts_password() {
    let server = Server::start_with(
        false,
        &[
            ("KURA_LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
            ("KURA_LIMITS__AUTH_FAILURES_PER_ACCOUNT", "10"),
            ("KURA_LIMITS__AUTH_FAILURES_PER_IP", "1000"),
        ],
    );
    server.add_user("ann", "ann-pw-secret", &[]);
    server.add_user("mal", "mal-pw-12345", &[]);
    let (_, cookie, _, _) = sign_in(&server, "mal:mal-pw-12345", &[]);
    let c = with_cookie(&cookie);
    let mut vouchers = Vec::new();
    let mut guesses = Vec::new();
    // a session of mal's, with ann's name and no password of hers, from 12 addresses
    for i in 0..12 {
        let xff = format!("X-Forwarded-For: 203.0.113.{i}");
        let path = if i % 2 == 0 { "session" } else { "search?q=x" };
        let (status, _) = call(
            &server,
            "GET",
            path,
            &["-H", &c, "-H", &xff, "-u", "ann:not-her-password"],
        );
        vouchers.push(status);
    }
    // then guesses from every one of those addresses
    for i in 0..12 {
        let xff = format!("X-Forwarded-For: 203.0.113.{i}");
        for n in 0..3 {
            let guess = format!("ann:guess-{i}-{n}");
            let out = server.curl(&[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-u",
                &guess,
                "-X",
                "PROPFIND",
                "-H",
                "Depth: 0",
                "-H",
                &xff,
                &server.dav("/"),
            ]);
            guesses.push(text(&out).parse::<u16>().unwrap_or(0));
        }
    }
    println!("session + ann's Basic: {vouchers:?}; 36 guesses on ann: {guesses:?}");
    let checked = guesses.iter().filter(|c| **c == 401).count();
    assert!(checked <= 10, "{checked} guesses checked: {guesses:?}");
    assert!(vouchers.iter().all(|s| *s == 400), "{vouchers:?}");
    // ann's own sign-in from home still works, and mal's session alone still does
    assert_eq!(
        sign_in(
            &server,
            "ann:ann-pw-secret",
            &["-H", "X-Forwarded-For: 198.51.100.1"]
        )
        .0,
        429,
        "ann is locked out on new addresses, as the cap wants"
    );
    assert_eq!(call(&server, "GET", "session", &["-H", &c]).0, 200);
    assert_eq!(call(&server, "GET", "search?q=x", &["-H", &c]).0, 200);
}

/// A curl call to the admin API (`/api/v1/...`) with extra arguments; (status, body).
fn admin_call(server: &Server, method: &str, path: &str, args: &[&str]) -> (u16, String) {
    let url = server.url(&format!("/api/v1/{path}"));
    // HTTP/1.1: curl takes an HTTP/2 answer sent before the body was read for a broken stream
    let mut all = vec!["-s", "--http1.1", "-X", method, "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    all.push(&url);
    let out = server.curl(&all);
    let t = text(&out);
    let (body, status) = t.rsplit_once('\n').expect("status line");
    let body = format!("{body}{}", String::from_utf8_lossy(&out.stderr));
    (status.trim().parse().expect("status"), body)
}

/// The admin console's calls, attacked: the admin API takes an administrator's browser
/// session (the user API's cookie and CSRF check), and refuses a non-administrator's session
/// on every route of its OpenAPI document, a missing or forged CSRF token, another origin and
/// credentials beside the cookie; the administrator flag is read afresh on each request.
#[test]
fn the_admin_api_takes_an_administrators_session_and_refuses_everyone_else() {
    let server = Server::start(true);
    server.add_user("alice", "alice-pw-123", &[]);
    let json = "Content-Type: application/json";

    // alice, signed in, is no administrator: 403 on every route the API documents
    let (_, cookie, csrf, _) = sign_in(&server, "alice:alice-pw-123", &[]);
    let (c, x) = (with_cookie(&cookie), csrf_header(&csrf));
    let doc = server.curl_admin(&["-s", &server.url("/api/v1/openapi.json")]);
    let doc: serde_json::Value = serde_json::from_slice(&doc.stdout).expect("openapi.json");
    let paths = doc["paths"].as_object().expect("paths");
    let mut tried = 0;
    for (path, ops) in paths {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let rel = concrete.strip_prefix("/api/v1/").expect("under /api/v1/");
        for method in ops.as_object().expect("operations").keys() {
            let m = method.to_ascii_uppercase();
            let mut args = vec!["-H", c.as_str(), "-H", x.as_str()];
            if matches!(m.as_str(), "POST" | "PUT" | "PATCH") {
                args.extend(["-H", json, "-d", "{}"]);
            }
            let (status, body) = admin_call(&server, &m, rel, &args);
            assert_eq!(status, 403, "{m} {path} as alice: {body}");
            assert!(body.contains("administrators only"), "{m} {path}: {body}");
            tried += 1;
        }
    }
    assert!(tried >= 40, "only {tried} routes in the OpenAPI document");
    assert!(paths.contains_key("/api/v1/facts"), "facts undocumented");
    let (status, _) = admin_call(&server, "GET", "openapi.json", &["-H", &c]);
    assert_eq!(status, 403);

    // the administrator's session reads and, with its CSRF token, changes
    let pw = format!("admin:{}", crate::common::ADMIN_PW);
    let (status, admin_cookie, admin_csrf, answer) = sign_in(&server, &pw, &[]);
    assert_eq!(status, 200, "{answer}");
    let (ac, ax) = (with_cookie(&admin_cookie), csrf_header(&admin_csrf));
    let (status, body) = admin_call(&server, "GET", "users", &["-H", &ac]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"alice\""), "{body}");
    let group = |name: &str| format!("{{\"name\": \"{name}\"}}");
    let forged = format!("X-Kura-CSRF: {csrf}"); // alice's token, not this session's
    for (what, extra) in [
        ("no CSRF token", vec![]),
        ("a forged CSRF token", vec!["-H", forged.as_str()]),
        ("another session's token", vec!["-H", "X-Kura-CSRF: x"]),
    ] {
        let mut args = vec!["-H", ac.as_str(), "-H", json, "-d"];
        let g = group("evil");
        args.push(&g);
        args.extend(extra);
        let (status, body) = admin_call(&server, "POST", "groups", &args);
        assert_eq!(status, 403, "{what}: {body}");
        assert!(body.contains("csrf"), "{what}: {body}");
    }
    for origin in [
        "Origin: https://evil.example",
        "Sec-Fetch-Site: cross-site",
        "Sec-Fetch-Site: same-site",
    ] {
        let g = group("evil");
        let (status, body) = admin_call(
            &server,
            "POST",
            "groups",
            &["-H", &ac, "-H", &ax, "-H", json, "-H", origin, "-d", &g],
        );
        assert_eq!(status, 403, "{origin}: {body}");
        assert!(body.contains("another origin"), "{origin}: {body}");
    }
    // credentials beside the cookie are refused (the throttle must not count them as proven)
    let g = group("evil");
    let (status, body) = admin_call(
        &server,
        "POST",
        "groups",
        &[
            "-H",
            &ac,
            "-H",
            &ax,
            "-H",
            json,
            "-u",
            "alice:guess",
            "-d",
            &g,
        ],
    );
    assert_eq!(status, 400, "{body}");
    let (_, body) = admin_call(&server, "GET", "groups", &["-H", &ac]);
    assert!(
        !body.contains("evil"),
        "a refused request made a group: {body}"
    );
    let g = group("family");
    let (status, body) = admin_call(
        &server,
        "POST",
        "groups",
        &["-H", &ac, "-H", &ax, "-H", json, "-d", &g],
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin_call(&server, "GET", "facts", &["-H", &ac]);
    assert_eq!(status, 200, "{body}");
    let facts: serde_json::Value = serde_json::from_str(&body).expect("facts");
    assert_eq!(facts["storage_backend"], "fs", "{body}");
    assert!(
        facts["tls_fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() == 95),
        "{body}"
    );
    assert!(
        facts["version"]
            .as_str()
            .is_some_and(|v| v.starts_with(env!("CARGO_PKG_VERSION"))),
        "{body}"
    );

    // the administrator flag, granted and withdrawn, counts from the next request of a
    // session already open; the last administrator keeps it
    let admin_on = |on: bool| format!("{{\"admin\": {on}}}");
    let (status, body) = admin_call(
        &server,
        "PATCH",
        "users/alice",
        &["-H", &ac, "-H", &ax, "-H", json, "-d", &admin_on(true)],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(admin_call(&server, "GET", "users", &["-H", &c]).0, 200);
    let (status, _) = admin_call(
        &server,
        "PATCH",
        "users/alice",
        &["-H", &ac, "-H", &ax, "-H", json, "-d", &admin_on(false)],
    );
    assert_eq!(status, 200);
    assert_eq!(admin_call(&server, "GET", "users", &["-H", &c]).0, 403);
    let (status, body) = admin_call(
        &server,
        "PATCH",
        "users/admin",
        &["-H", &ac, "-H", &ax, "-H", json, "-d", &admin_on(false)],
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("last administrator"), "{body}");

    // signed out, the cookie is nothing: 401, as without credentials
    assert_eq!(
        call(&server, "DELETE", "session", &["-H", &ac, "-H", &ax]).0,
        204
    );
    assert_eq!(admin_call(&server, "GET", "users", &["-H", &ac]).0, 401);
}
