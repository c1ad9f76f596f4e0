//! A GET racing PUTs of the same file never answers a mix of old metadata and new bytes: the
//! ETag (the MD5 of a single-part upload) and Content-Length always describe the body served.

use crate::common::{require, Server, ADMIN_PW};

/// Two writers replace `/dav/race/f` with one of two same-size bodies while three readers GET
/// it for `secs` seconds; prints `gets N mismatch M errors E`.
const RACE: &str = r#"
import base64, hashlib, sys, threading, time, urllib.request
url, pw, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
auth = "Basic " + base64.b64encode(("admin:" + pw).encode()).decode()
bodies = [bytes([i]) * 65536 + bytes(range(256)) * 64 for i in (1, 2)]
stop, gets, bad, errs = [False], [0], [0], [0]
def put(k):
    i = k
    while not stop[0]:
        r = urllib.request.Request(url, data=bodies[i % 2], method="PUT", headers={"Authorization": auth})
        urllib.request.urlopen(r).read()
        i += 1
def get():
    while not stop[0]:
        try:
            r = urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": auth}))
            body, etag = r.read(), r.headers["ETag"].strip('"')
            gets[0] += 1
            if hashlib.md5(body).hexdigest() != etag or int(r.headers["Content-Length"]) != len(body):
                bad[0] += 1
        except Exception:
            errs[0] += 1
ts = [threading.Thread(target=put, args=(k,)) for k in range(2)] + [threading.Thread(target=get) for _ in range(3)]
[t.start() for t in ts]
time.sleep(secs)
stop[0] = True
[t.join() for t in ts]
print("gets", gets[0], "mismatch", bad[0], "errors", errs[0])
"#;

#[test]
fn a_get_racing_puts_serves_the_etag_and_length_of_the_bytes_it_sends() {
    require("python3");
    let server = Server::plain();
    assert_eq!(
        server.status(&["-X", "MKCOL", &server.dav("race")]),
        201,
        "MKCOL"
    );
    assert_eq!(server.put("race/f", b"first"), 201);
    let out = std::process::Command::new("python3")
        .args(["-c", RACE, &server.dav("race/f"), ADMIN_PW, "8"])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(n.len(), 3, "{text}");
    assert!(n[0] > 100, "too few GETs to mean anything: {text}");
    assert_eq!(n[1], 0, "GETs whose ETag is not their body's: {text}");
    assert_eq!(n[2], 0, "failed GETs: {text}");
}

/// The same race over S3 (boto3): two writers PUT one of two same-size bodies while three
/// readers GET it; a body whose ETag or stored CRC32 (boto3 checks it) is another version's
/// counts as a mismatch.
const S3_RACE: &str = r#"
import hashlib, sys, threading, time, boto3
from botocore.config import Config
url, kid, secret, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
mk = lambda: boto3.client("s3", endpoint_url=url, aws_access_key_id=kid, aws_secret_access_key=secret,
    region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
c = mk()
c.create_bucket(Bucket="s3race")
bodies = [bytes([i]) * 65536 + bytes(range(256)) * 64 for i in (1, 2)]
c.put_object(Bucket="s3race", Key="f", Body=b"first")
stop, gets, bad, errs = [False], [0], [0], [0]
def put(k):
    cl, i = mk(), k
    while not stop[0]:
        cl.put_object(Bucket="s3race", Key="f", Body=bodies[i % 2])
        i += 1
def get():
    cl = mk()
    while not stop[0]:
        try:
            r = cl.get_object(Bucket="s3race", Key="f", ChecksumMode="ENABLED")
            body = r["Body"].read()
            gets[0] += 1
            if hashlib.md5(body).hexdigest() != r["ETag"].strip('"'):
                bad[0] += 1
        except Exception as e:
            if "checksum" in str(e):
                bad[0] += 1
            else:
                errs[0] += 1
ts = [threading.Thread(target=put, args=(k,)) for k in range(2)] + [threading.Thread(target=get) for _ in range(3)]
[t.start() for t in ts]
time.sleep(secs)
stop[0] = True
[t.join() for t in ts]
print("gets", gets[0], "mismatch", bad[0], "errors", errs[0])
"#;

#[test]
fn an_s3_get_racing_puts_serves_the_etag_and_checksum_of_the_bytes_it_sends() {
    require("python3");
    let server = Server::plain();
    let key = server.s3_key();
    let out = std::process::Command::new("python3")
        .args(["-c", S3_RACE, &server.url(""), &key.id, &key.secret, "8"])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(n.len(), 3, "{text}");
    assert!(n[0] > 100, "too few GETs to mean anything: {text}");
    assert_eq!(
        n[1], 0,
        "GETs whose ETag or checksum is not their body's: {text}"
    );
    assert_eq!(n[2], 0, "failed GETs: {text}");
}
