"""tus 1.0 resumable uploads (docs/web.md) against a real server, with Python requests and raw
sockets (to cut a connection mid-PATCH). Run by user_tus.rs in phases:

  user_tus.py BASE attacks           the protocol and its attacks, small uploads
  user_tus.py BASE start STATE       a 200 MiB upload, its PATCH cut after 90 MiB
  user_tus.py BASE resume STATE      (after a server restart) HEAD, the rest, byte-equal

Setup (user_tus.rs): bucket `team` (group team, 2 MB quota), bucket `fam` (group fam, no
quota), alice in both, bob in team, carol in neither.
"""
import base64
import hashlib
import json
import random
import socket
import struct
import sys
import time
import urllib.parse

import requests

BASE = sys.argv[1].rstrip("/")
PHASE = sys.argv[2]
API = BASE + "/api/user/v1"
UPLOADS = API + "/uploads"
PW = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123"}
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
MiB = 1 << 20
BIG = 200 * MiB


def b64(s):
    return base64.b64encode(s.encode()).decode()


def meta(folder, name, **more):
    pairs = [f"path {b64(folder)}", f"filename {b64(name)}"] + [f"{k} {b64(v)}" for k, v in more.items()]
    return ",".join(pairs)


def basic(user):
    s = requests.Session()
    s.auth = (user, PW[user])
    return s


def sign_in(user):
    s = requests.Session()
    r = s.post(API + "/session", auth=(user, PW[user]))
    assert r.status_code == 200, r.text
    s.headers["X-Kura-CSRF"] = r.json()["csrf"]
    return s


def expect(r, status, code=None):
    assert r.status_code == status, (r.request.method, r.url, r.status_code, r.text)
    # every answer of the tus endpoints says its version; the router's refusals (CSRF, other
    # origins, credentials) come before them
    if "/uploads" in r.url and r.status_code not in (401, 403):
        assert r.headers.get("tus-resumable") == "1.0.0", r.headers
    if code is not None:
        assert r.json()["error"] == code, r.text


def create(s, length, folder, name, extra=None):
    h = dict(TUS, **{"Upload-Length": str(length), "Upload-Metadata": meta(folder, name)})
    h.update(extra or {})
    return s.post(UPLOADS, headers=h)


def url_of(r):
    loc = r.headers["location"]
    assert loc.startswith("/api/user/v1/uploads/"), loc
    uid = loc.rsplit("/", 1)[1]
    assert len(uid) == 32 and all(c in "0123456789abcdef" for c in uid), uid
    return BASE + loc


def listing(s, path):
    return [e["name"] for e in s.get(API + "/files", params={"path": path}).json()["entries"]]


def chunk(i):
    """MiB number i of the big file: the same bytes in every phase."""
    return random.Random(i).randbytes(MiB)


def attacks():
    alice, bob, carol = basic("alice"), basic("bob"), basic("carol")
    # discovery
    r = alice.options(UPLOADS)
    expect(r, 204)
    assert r.headers["tus-version"] == "1.0.0", r.headers
    assert set(r.headers["tus-extension"].split(",")) >= {"creation", "termination", "expiration"}, r.headers
    assert int(r.headers["tus-max-size"]) >= BIG
    # the protocol version is required
    r = alice.post(UPLOADS, headers={"Upload-Length": "5", "Upload-Metadata": meta("/team", "a.txt")})
    expect(r, 412, "precondition")
    assert r.headers["tus-version"] == "1.0.0"
    r = alice.post(UPLOADS, headers={"Tus-Resumable": "0.2.2", "Upload-Length": "5", "Upload-Metadata": meta("/team", "a.txt")})
    expect(r, 412)
    # creation: bad lengths and metadata
    expect(alice.post(UPLOADS, headers=dict(TUS, **{"Upload-Metadata": meta("/team", "a.txt")})), 400, "invalid")
    expect(create(alice, "-1", "/team", "a.txt"), 400, "invalid")
    expect(create(alice, "12abc", "/team", "a.txt"), 400, "invalid")
    expect(alice.post(UPLOADS, headers=dict(TUS, **{"Upload-Defer-Length": "1", "Upload-Metadata": meta("/team", "a.txt")})), 400)
    expect(alice.post(UPLOADS, headers=dict(TUS, **{"Upload-Length": "5", "Upload-Metadata": "path !!!notbase64"})), 400, "invalid")
    expect(alice.post(UPLOADS, headers=dict(TUS, **{"Upload-Length": "5", "Upload-Metadata": f"filename {b64('a.txt')}"})), 400, "invalid")
    expect(create(alice, 1 << 50, "/team", "huge.bin"), 413, "too_large")
    # over the quota of the group at creation: 507, JSON, nothing created
    expect(create(alice, 3_000_000, "/team", "over.bin"), 507, "quota")
    # traversal in the name or the folder
    for folder, name in [("/team", "../fam/x"), ("/team", ".."), ("/team/../fam", "x"), ("/team", "a\\b"), ("/team", "a\x00b"), ("/team", "a/b"), ("team", "x")]:
        r = create(alice, 5, folder, name)
        assert r.status_code == 400, (folder, name, r.status_code, r.text)
    # a folder she may not write: carol's way into team
    expect(create(carol, 5, "/team", "intruder.txt"), 403, "forbidden")
    # a small upload in three appends; visible only once complete
    body = b"hello, resumable world\n" * 100
    r = create(alice, len(body), "/team/inbox", "hello.txt", {"Upload-Metadata": meta("/team/inbox", "hello.txt", filetype="text/plain")})
    expect(r, 201)
    assert r.headers["upload-offset"] == "0" and "GMT" in r.headers["upload-expires"], r.headers
    url = url_of(r)
    r = alice.patch(url, data=body[:1000], headers=dict(OCTETS, **{"Upload-Offset": "0"}))
    expect(r, 204)
    assert r.headers["upload-offset"] == "1000"
    assert "team" in listing(alice, "/") and "inbox" not in listing(alice, "/team"), "visible before complete"
    # a wrong offset: 409, nothing appended
    expect(alice.patch(url, data=b"zzz", headers=dict(OCTETS, **{"Upload-Offset": "999"})), 409, "offset")
    expect(alice.patch(url, data=b"zzz", headers=dict(OCTETS, **{"Upload-Offset": "1001"})), 409, "offset")
    # the wrong content type: 415
    expect(alice.patch(url, data=b"zzz", headers=dict(TUS, **{"Upload-Offset": "1000", "Content-Type": "text/plain"})), 415)
    expect(alice.patch(url, data=b"zzz", headers=dict(OCTETS)), 400, "invalid")
    # past Upload-Length: 413, and nothing of it kept
    expect(alice.patch(url, data=body[1000:] + b"overflow", headers=dict(OCTETS, **{"Upload-Offset": "1000"})), 413, "too_large")
    r = alice.head(url, headers=TUS)
    expect(r, 200)
    assert r.headers["upload-offset"] == "1000" and r.headers["upload-length"] == str(len(body)), r.headers
    assert r.headers["cache-control"] == "no-store"
    # someone else's upload: HEAD, PATCH and DELETE answer as for no upload at all
    expect(bob.head(url, headers=TUS), 404)
    expect(bob.patch(url, data=body[1000:], headers=dict(OCTETS, **{"Upload-Offset": "1000"})), 404, "not_found")
    expect(bob.delete(url, headers=TUS), 404, "not_found")
    expect(alice.head(UPLOADS + "/" + "0" * 32, headers=TUS), 404)
    expect(alice.head(UPLOADS + "/..%2f..%2fsession", headers=TUS), 404)
    # a browser session: CSRF on POST, PATCH and DELETE; another origin refused
    s = sign_in("alice")
    bare = requests.Session()
    bare.cookies = s.cookies
    expect(bare.patch(url, data=body[1000:], headers=dict(OCTETS, **{"Upload-Offset": "1000"})), 403, "csrf")
    expect(bare.post(UPLOADS, headers=dict(TUS, **{"Upload-Length": "5", "Upload-Metadata": meta("/team", "c.txt")})), 403, "csrf")
    expect(s.patch(url, data=body[1000:], headers=dict(OCTETS, **{"Upload-Offset": "1000", "Origin": "https://evil.example"})), 403, "forbidden")
    r = alice.head(url, headers=TUS)
    assert r.headers["upload-offset"] == "1000", r.headers
    # the rest, by the session: complete, visible, byte-equal, with its type
    r = s.patch(url, data=body[1000:], headers=dict(OCTETS, **{"Upload-Offset": "1000"}))
    expect(r, 204)
    assert r.headers["upload-offset"] == str(len(body))
    got = alice.get(API + "/download", params={"path": "/team/inbox/hello.txt"})
    assert got.content == body, len(got.content)
    assert alice.get(API + "/file", params={"path": "/team/inbox/hello.txt"}).json()["content_type"].startswith("text/plain")
    # done: the upload is gone
    expect(alice.head(url, headers=TUS), 404)
    # termination
    r = create(alice, 10, "/team", "gone.txt")
    url = url_of(r)
    expect(alice.patch(url, data=b"12345", headers=dict(OCTETS, **{"Upload-Offset": "0"})), 204)
    expect(alice.delete(url, headers=TUS), 204)
    expect(alice.head(url, headers=TUS), 404)
    expect(alice.patch(url, data=b"67890", headers=dict(OCTETS, **{"Upload-Offset": "5"})), 404)
    assert "gone.txt" not in listing(alice, "/team")
    # a locked target: refused at creation (423); and when the lock comes after creation,
    # the last append is refused with 423 and can be sent again once the lock is gone
    r = create(alice, 4, "/team", "locked.txt")
    url = url_of(r)
    requests.put(BASE + "/dav/team/locked.txt", data=b"old", auth=("bob", PW["bob"]))
    LOCK = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>'
    lk = requests.request("LOCK", BASE + "/dav/team/locked.txt", data=LOCK, auth=("bob", PW["bob"]), headers={"Timeout": "Second-600"})
    assert lk.status_code == 200, lk.text
    token = lk.headers["lock-token"]
    expect(create(alice, 4, "/team", "locked.txt"), 423, "locked")
    expect(alice.patch(url, data=b"new!", headers=dict(OCTETS, **{"Upload-Offset": "0"})), 423, "locked")
    assert alice.head(url, headers=TUS).headers["upload-offset"] == "0"
    un = requests.request("UNLOCK", BASE + "/dav/team/locked.txt", auth=("bob", PW["bob"]), headers={"Lock-Token": token})
    assert un.status_code == 204, un.status_code
    expect(alice.patch(url, data=b"new!", headers=dict(OCTETS, **{"Upload-Offset": "0"})), 204)
    assert alice.get(API + "/download", params={"path": "/team/locked.txt"}).content == b"new!"
    # staged bytes count against the quota: two uploads cannot together pass it
    r1 = create(alice, 1_500_000, "/team", "q1.bin")
    expect(r1, 201)
    expect(alice.patch(url_of(r1), data=b"q" * 1_000_000, headers=dict(OCTETS, **{"Upload-Offset": "0"})), 204)
    expect(create(alice, 1_500_000, "/team", "q2.bin"), 507, "quota")
    print("user_tus.py attacks: all checks passed")


def raw_patch_cut(url, offset, length, send_bytes, user="alice"):
    """A PATCH announcing `length` bytes from `offset`, cut (RST) after `send_bytes`."""
    u = urllib.parse.urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port))
    auth = base64.b64encode(f"{user}:{PW[user]}".encode()).decode()
    head = (
        f"PATCH {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nAuthorization: Basic {auth}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode())
    sent = 0
    i = offset // MiB
    while sent < send_bytes:
        sock.sendall(chunk(i))
        sent += MiB
        i += 1
    time.sleep(0.5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    return sent


def start(state):
    alice = basic("alice")
    r = create(alice, BIG, "/fam/videos", "holiday.mp4")
    expect(r, 201)
    url = url_of(r)
    sent = raw_patch_cut(url, 0, BIG, 90 * MiB)
    # the bytes received before the cut are kept
    deadline = time.time() + 30
    while True:
        off = int(alice.head(url, headers=TUS).headers["upload-offset"])
        if off > 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert 0 < off <= sent, (off, sent)
    assert "videos" not in listing(alice, "/fam"), "visible before complete"
    json.dump({"url": url, "offset": off}, open(state, "w"))
    print(f"user_tus.py start: cut after {sent} bytes, {off} kept")


def resume(state):
    st = json.load(open(state))
    alice = basic("alice")
    r = alice.head(st["url"], headers=TUS)
    expect(r, 200)
    off = int(r.headers["upload-offset"])
    assert off == st["offset"], (off, st)
    # the client resumes where HEAD says (a whole-MiB boundary or not)
    def rest():
        i = off // MiB
        first = chunk(i)[off % MiB:]
        yield first
        for j in range(i + 1, BIG // MiB):
            yield chunk(j)
    r = alice.patch(st["url"], data=rest(), headers=dict(OCTETS, **{"Upload-Offset": str(off)}))
    expect(r, 204)
    assert r.headers["upload-offset"] == str(BIG), r.headers
    want = hashlib.sha256()
    for j in range(BIG // MiB):
        want.update(chunk(j))
    got = hashlib.sha256()
    size = 0
    with alice.get(API + "/download", params={"path": "/fam/videos/holiday.mp4"}, stream=True) as d:
        assert d.status_code == 200, d.text
        for b in d.iter_content(MiB):
            got.update(b)
            size += len(b)
    assert size == BIG and got.hexdigest() == want.hexdigest(), (size, got.hexdigest())
    print("user_tus.py resume: byte-equal")


if PHASE == "attacks":
    attacks()
elif PHASE == "start":
    start(sys.argv[3])
elif PHASE == "resume":
    resume(sys.argv[3])
else:
    sys.exit("unknown phase " + PHASE)
