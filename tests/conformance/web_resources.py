"""The browser app's resources under attack, against a real server (run by web_resources.rs,
which sets up user_files.rs' households: alice and bob in group `team` with bucket `team`
770 under a 2,000,000-byte quota; carol alone with bucket `carol` 700). The server's header
read timeout is 3 s and its preview cache is capped at CAP bytes.

Usage: web_resources.py BASE_URL SERVER_PID FILES THUMBNAIL_DIR CAP
"""
import base64
import os
import random
import socket
import sys
import threading
import time

import requests

BASE = sys.argv[1].rstrip("/")
PID = int(sys.argv[2])
FILES = sys.argv[3]
THUMBS = sys.argv[4]
CAP = int(sys.argv[5])
API = BASE + "/api/user/v1"
HOST, PORT = BASE.split("//")[1].split(":")
PORT = int(PORT)
PW = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123"}


def sign_in(user):
    s = requests.Session()
    r = s.post(API + "/session", auth=(user, PW[user]))
    assert r.status_code == 200, r.text
    s.headers["X-Kura-CSRF"] = r.json()["csrf"]
    return s


def dav_put(user, path, body):
    r = requests.put(BASE + "/dav" + path, data=body, auth=(user, PW[user]))
    assert r.status_code in (201, 204), (path, r.status_code, r.text)


def read(name):
    with open(os.path.join(FILES, name), "rb") as f:
        return f.read()


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except FileNotFoundError:
                pass
    return total


def renderers():
    """The server's PDF renderer processes running now."""
    n = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != PID:
                continue
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"__pdf-page" in f.read():
                    n += 1
        except (OSError, ValueError, IndexError):
            pass
    return n


alice, carol = sign_in("alice"), sign_in("carol")
thumb = lambda s, path, **kw: s.get(API + "/thumbnail", params={"path": path, **kw}, timeout=60)

# ---------- F2: one user's PDF bombs do not stall another user's previews ----------
dav_put("carol", "/carol/bomb.pdf", read("bomb.pdf"))
dav_put("alice", "/team/small.png", read("small.png"))
results, peak = [], [0]
stop = threading.Event()


def watch_renderers():
    while not stop.is_set():
        peak[0] = max(peak[0], renderers())
        time.sleep(0.05)


def bomb_request(size):
    t = time.monotonic()
    r = thumb(carol, "/carol/bomb.pdf", size=str(size))
    results.append((r.status_code, r.headers.get("retry-after"), time.monotonic() - t,
                    r.json().get("error")))


watcher = threading.Thread(target=watch_renderers)
watcher.start()
t0 = time.monotonic()
workers = [threading.Thread(target=bomb_request, args=(s,)) for s in (64, 128, 256, 512, 1024) * 2]
for w in workers:
    w.start()
time.sleep(1)
t1 = time.monotonic()
r = thumb(alice, "/team/small.png", size="64")
meanwhile = time.monotonic() - t1
assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", (r.status_code, r.text[:200])
for w in workers:
    w.join(90)
stop.set()
watcher.join()
took = time.monotonic() - t0
codes = sorted(c for c, _, _, _ in results)
assert len(results) == 10, results
# every bomb request is refused: 415 (rendered once, or remembered), or 503 busy with Retry-After
for code, retry, _, error in results:
    assert code in (415, 503), results
    if code == 503:
        assert error == "busy" and retry is not None and int(retry) >= 1, results
assert codes.count(415) >= 1, results
assert meanwhile < 5, f"alice's thumbnail took {meanwhile:.1f} s while carol's bombs rendered"
assert peak[0] <= 1, f"{peak[0]} renderers ran at once for one user"
assert took < 30, f"carol's ten bomb requests took {took:.1f} s"
print(f"ok: 10 parallel bomb thumbnails by carol ({codes}) in {took:.1f} s, at most {peak[0]} "
      f"renderer at once; alice's thumbnail meanwhile in {meanwhile * 1000:.0f} ms")
# the failure is remembered by content: asked again, at another size, or renamed, at once
for path, size in (("/carol/bomb.pdf", "256"), ("/carol/bomb.pdf", "64")):
    t = time.monotonic()
    r = thumb(carol, path, size=size)
    assert r.status_code == 415 and r.json()["error"] == "unsupported", (r.status_code, r.text)
    assert time.monotonic() - t < 1, f"the known bomb took {time.monotonic() - t:.1f} s"
r = carol.post(API + "/rename", json={"path": "/carol/bomb.pdf", "to": "/carol/renamed.pdf"})
assert r.status_code == 200, r.text
dav_put("carol", "/carol/copy.pdf", read("bomb.pdf"))
for path in ("/carol/renamed.pdf", "/carol/copy.pdf"):
    t = time.monotonic()
    r = thumb(carol, path, size="512")
    took = time.monotonic() - t
    assert r.status_code == 415, (path, r.status_code, r.text)
    assert took < 1, f"{path}: the same bomb under another name took {took:.1f} s"
print("ok: the bomb is refused at once at another size, renamed and re-uploaded")

# ---------- F7: the preview cache is keyed by content and capped ----------
def pdf(objs):
    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offs = []
    for i, o in enumerate(objs):
        offs.append(len(out))
        out += f"{i + 1} 0 obj\n{o}\nendobj\n".encode()
    x, n = len(out), len(objs) + 1
    out += f"xref\n0 {n}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010} 00000 n \n".encode() for o in offs)
    out += f"trailer\n<< /Size {n} /Root 1 0 R >>\nstartxref\n{x}\n%%EOF\n".encode()
    return out


N = 20
rnd = random.Random(1)
ops = " ".join(f"{rnd.random():.2f} {rnd.random():.2f} {rnd.random():.2f} rg {x * 5} {y * 5} 5 5 re f"
               for x in range(60) for y in range(60))
kids = " ".join(f"{4 + i} 0 R" for i in range(N))
objs = ["<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {N} >>",
        f"<< /Length {len(ops)} >>\nstream\n{ops}\nendstream"]
objs += ["<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 300] /Contents 3 0 R >>"] * N
dav_put("carol", "/carol/doc.pdf", pdf(objs))
first = thumb(carol, "/carol/doc.pdf", size="512")
assert first.status_code == 200 and first.headers["x-kura-pages"] == str(N), (first.status_code, first.text[:200])
etag = first.headers["etag"]
name, biggest = "/carol/doc.pdf", 0
t0 = time.monotonic()
for round_ in range(2):
    for page in range(1, N + 1):
        for size in ("512", "1024"):
            r = thumb(carol, name, size=size, page=str(page))
            assert r.status_code == 200, (name, page, size, r.status_code, r.text[:200])
            biggest = max(biggest, du(THUMBS))
    new = f"/carol/doc{round_}.pdf"
    r = carol.post(API + "/rename", json={"path": name, "to": new})
    assert r.status_code == 200, r.text
    name = new
took = time.monotonic() - t0
# the cap holds (one file, at most a tenth of the cap, may land before the prune after it),
# and the cache was used up to it (the pages are cached, then the oldest pruned)
assert biggest <= CAP + CAP // 10, f"the preview cache grew to {biggest} bytes (cap {CAP})"
assert biggest >= CAP * 6 // 10, f"the preview cache reached only {biggest} bytes (cap {CAP})"
time.sleep(0.5)
assert du(THUMBS) <= CAP, f"the preview cache holds {du(THUMBS)} bytes (cap {CAP})"
# a renamed file is the same content: the same preview, served from the cache
r = thumb(carol, name, size="64")
r2 = thumb(carol, name, size="64")
assert r.status_code == 200 and r.headers["etag"] == r2.headers["etag"], r.text[:200]
again = thumb(carol, name, size="512")
assert again.headers["etag"] == etag, (again.headers["etag"], etag)
assert carol.get(API + "/thumbnail", params={"path": name, "size": "512"},
                 headers={"If-None-Match": etag}).status_code == 304
print(f"ok: {2 * N * 2} pages rendered over two renames in {took:.1f} s; the cache peaked at "
      f"{biggest} bytes and holds {du(THUMBS)} (cap {CAP}); a renamed file keeps its ETag")

# ---------- F6: a resumable overwrite that cannot fit the quota is refused at creation ----------
def tus_create(s, folder, filename, length):
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in (("path", folder), ("filename", filename)))
    return s.post(API + "/uploads", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(length),
                                             "Upload-Metadata": meta})


body = os.urandom(700_000)
dav_put("alice", "/team/big.bin", body)
dav_put("alice", "/team/big.bin", os.urandom(700_000))  # the first is kept as a version
# used: 1,400,000 of 2,000,000 (the current file and the kept version) plus small files
r = tus_create(alice, "/team", "big.bin", 700_000)
assert r.status_code == 507 and r.json()["error"] == "quota", (r.status_code, r.text)
# a smaller overwrite that fits still starts, and its bytes are accepted to the end
r = tus_create(alice, "/team", "big.bin", 300_000)
assert r.status_code == 201, (r.status_code, r.text)
loc = r.headers["location"]
r = alice.patch(BASE + loc if loc.startswith("/") else loc, data=os.urandom(300_000),
                headers={"Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                         "Content-Type": "application/offset+octet-stream"})
assert r.status_code == 204, (r.status_code, r.text)
print("ok: a resumable overwrite beyond the quota (the replaced file stays as a version) is 507 "
      "at creation; one that fits is stored")

# ---------- F4: slow bodies before sign-in hold a connection no longer than slow headers ----------
def raw_open(head):
    s = socket.create_connection((HOST, PORT))
    s.settimeout(0.5)
    s.sendall(head)
    return s


def basic(user, pw):
    return base64.b64encode(f"{user}:{pw}".encode()).decode()


# no credentials: refused at once, without waiting for the announced body
s = raw_open(b"POST /api/user/v1/session HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\n"
             b"Content-Length: 8000\r\n\r\n")
s.settimeout(2)
t = time.monotonic()
answer = s.recv(4096)
assert answer.startswith(b"HTTP/1.1 401") and b"credentials_required" in answer, answer[:300]
assert time.monotonic() - t < 1.5
s.close()
# with credentials (of nobody: distinct names, so no account waits for another), and the
# small JSON bodies of a signed-in user (restore, as alice) and of the admin API: each
# trickles one byte a second
heads = [f"POST /api/user/v1/session HTTP/1.1\r\nHost: k\r\nAuthorization: Basic {basic(f'nobody{i}', 'x')}\r\n"
         f"Content-Type: application/json\r\nContent-Length: 8000\r\n\r\n".encode() for i in range(6)]
heads.append(f"POST /api/user/v1/restore HTTP/1.1\r\nHost: k\r\nAuthorization: Basic {basic('alice', PW['alice'])}\r\n"
             f"Content-Type: application/json\r\nContent-Length: 8000\r\n\r\n".encode())
heads.append(b"POST /api/v1/users HTTP/1.1\r\nHost: k\r\nAuthorization: Basic "
             + basic("admin", os.environ["KURA_TEST_ADMIN_PW"]).encode()
             + b"\r\nContent-Type: application/json\r\nContent-Length: 8000\r\n\r\n")
slow = [raw_open(h) for h in heads]
for s in slow:
    s.setblocking(False)
answers = [b""] * len(slow)
closed_at = [None] * len(slow)
t0 = time.monotonic()
while time.monotonic() - t0 < 12 and None in closed_at:
    for i, s in enumerate(slow):
        if closed_at[i] is not None:
            continue
        try:
            s.send(b" ")
        except OSError:
            pass
        try:
            chunk = s.recv(4096)
            answers[i] += chunk
            closed_at[i] = time.monotonic() - t0
        except BlockingIOError:
            pass
        except OSError:
            closed_at[i] = time.monotonic() - t0
    hz = requests.get(BASE + "/healthz", timeout=3)
    assert hz.status_code == 200
    time.sleep(1)
for i, (a, at) in enumerate(zip(answers, closed_at)):
    assert at is not None, f"slow body {i} still open after 12 s: {a[:200]!r}"
    assert at < 7, f"slow body {i} open for {at:.1f} s (deadline 3 s)"
    assert a.startswith(b"HTTP/1.1 408"), (i, a[:300])
print(f"ok: {len(slow)} trickled small bodies cut after {max(closed_at):.1f} s at most (408), "
      "/healthz answered meanwhile; a sign-in without credentials is 401 before any body")
# the throttle did not count the cut attempts as failures: alice still signs in
sign_in("alice")
print("all checks passed")
