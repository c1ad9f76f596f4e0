"""Previews, tags, old versions, the trash and share links of the user API (docs/web.md)
against a real server, as signed-in browsers and as attackers. Run by user_previews.rs, which
sets up what user_files.rs does (group `team`: alice and bob, bucket `team` 770; carol alone
with bucket `carol` 700) and writes the images into IMAGES.

Usage: user_previews.py BASE_URL SERVER_PID IMAGES
"""
import os
import struct
import sys
import threading
import time
import zlib

import requests

BASE = sys.argv[1].rstrip("/")
PID = int(sys.argv[2])
IMAGES = sys.argv[3]
API = BASE + "/api/user/v1"
PW = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123"}
HOSTILE = "<img src=x onerror=alert(1)>.png"


def sign_in(user):
    s = requests.Session()
    r = s.post(API + "/session", auth=(user, PW[user]))
    assert r.status_code == 200, r.text
    s.headers["X-Kura-CSRF"] = r.json()["csrf"]
    return s


def dav_put(user, path, body):
    r = requests.put(BASE + "/dav" + requests.utils.quote(path), data=body, auth=(user, PW[user]))
    assert r.status_code in (201, 204), (path, r.status_code, r.text)


def err(r, status, code=None):
    assert r.status_code == status, (r.request.method, r.url, r.status_code, r.text[:300])
    if code is not None:
        assert r.headers["content-type"] == "application/json", r.headers
        assert r.json()["error"] == code, r.text


def hidden(r):
    """Another user's file: refused, and nothing of it in the answer."""
    assert r.status_code in (403, 404), (r.request.method, r.url, r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/json", r.headers
    for leak in ("alice", "secret", "JFIF", "\x89PNG"):
        assert leak not in r.text, r.text


def jpeg_size(b):
    """(width, height) from a JPEG's SOF marker."""
    i = 2
    while i < len(b):
        assert b[i] == 0xFF, "not a JPEG marker"
        marker, length = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise AssertionError("no SOF")


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(w, h):
    """A valid PNG header announcing w x h pixels, and a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + png_chunk(b"IEND", b""))


def rss_kib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cpu_seconds():
    """The server's user + system CPU time so far."""
    with open(f"/proc/{PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


alice, bob, carol = sign_in("alice"), sign_in("bob"), sign_in("carol")
basic_admin = None

err(alice.post(API + "/folders", json={"path": "/team/pics"}), 201)
for name in os.listdir(IMAGES):
    with open(os.path.join(IMAGES, name), "rb") as f:
        dav_put("alice", "/team/pics/" + name, f.read())
dav_put("alice", "/team/pics/bomb.png", bomb_png(100_000, 100_000))
dav_put("alice", "/team/pics/" + HOSTILE, open(os.path.join(IMAGES, "small.png"), "rb").read())
dav_put("alice", "/team/pics/notes.txt", b"secret first\n")
dav_put("alice", "/team/pics/notes.txt", b"secret second\n")
dav_put("carol", "/carol/mine.txt", b"carol's\n")

# ---------- thumbnails ----------
thumb = lambda s, path, **kw: s.get(API + "/thumbnail", params={"path": path, **kw})

# EXIF orientation 6: a 200 x 100 landscape is shown upright as a portrait
r = thumb(alice, "/team/pics/rotated.jpg")
err(r, 200)
assert r.headers["content-type"] == "image/jpeg", r.headers
assert r.headers["x-content-type-options"] == "nosniff", r.headers
assert r.headers["content-security-policy"] == "sandbox", r.headers
assert "private" in r.headers["cache-control"], r.headers
w, h = jpeg_size(r.content)
assert (w, h) == (100, 200), (w, h)
# cached: the same bytes and ETag; If-None-Match answers 304
r2 = thumb(alice, "/team/pics/rotated.jpg")
assert r2.content == r.content and r2.headers["etag"] == r.headers["etag"]
err(alice.get(API + "/thumbnail", params={"path": "/team/pics/rotated.jpg"},
              headers={"If-None-Match": r.headers["etag"]}), 304)
# transparency: a PNG thumbnail
r = thumb(alice, "/team/pics/clear.png", size="64")
err(r, 200)
assert r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG"), r.headers
# bob, of the same group, may read it
err(thumb(bob, "/team/pics/small.png"), 200)
# sizes other than the listed ones, folders, non-images, missing files
err(thumb(alice, "/team/pics/small.png", size="300"), 400, "invalid")
err(thumb(alice, "/team/pics/small.png", size="99999999999"), 400, "invalid")
err(thumb(alice, "/team/pics"), 400, "invalid")
err(thumb(alice, "/team/pics/notes.txt"), 415, "unsupported")
err(thumb(alice, "/team/pics/nothing.png"), 404, "not_found")
err(thumb(alice, "/team/../carol/mine.txt"), 400, "invalid")
# another user's file: nothing revealed, whether it exists or not
hidden(thumb(carol, "/team/pics/small.png"))
hidden(thumb(carol, "/team/pics/nothing.png"))
hidden(thumb(bob, "/carol/mine.txt"))
# without a session: 401
err(requests.get(API + "/thumbnail", params={"path": "/team/pics/small.png"}), 401)

# a decompression bomb: refused from its header, at once, without growing the server
before = rss_kib()
t0 = time.monotonic()
r = thumb(alice, "/team/pics/bomb.png")
took = time.monotonic() - t0
err(r, 413, "too_large")
assert "100000" in r.json()["message"], r.text
assert took < 1.0, f"the bomb took {took:.2f} s"
assert rss_kib() < before + 50 * 1024, (before, rss_kib())
print(f"bomb refused in {took * 1000:.0f} ms; RSS {before} -> {rss_kib()} KiB")
# a corrupt image, and a PNG whose header lies about a small size
err(thumb(alice, "/team/pics/corrupt.png"), 415, "unsupported")
dav_put("alice", "/team/pics/liar.png", bomb_png(64, 64))
err(thumb(alice, "/team/pics/liar.png"), 415, "unsupported")
# a file named like markup: its thumbnail is an image; its name is never echoed as markup
r = thumb(alice, "/team/pics/" + HOSTILE)
err(r, 200)
assert r.headers["content-type"] == "image/jpeg", r.headers
r = thumb(alice, "/team/pics/" + HOSTILE + ".missing")
err(r, 404, "not_found")
assert "<img" not in r.text or r.headers["content-type"] == "application/json", r.headers

# the figure: server CPU for the thumbnail of a 12-megapixel JPEG (not cached yet)
c0, t0 = cpu_seconds(), time.monotonic()
r = thumb(alice, "/team/pics/photo12mp.jpg")
cpu, wall = cpu_seconds() - c0, time.monotonic() - t0
err(r, 200)
assert max(jpeg_size(r.content)) == 256, jpeg_size(r.content)
c0, t0 = cpu_seconds(), time.monotonic()
err(thumb(alice, "/team/pics/photo12mp.jpg"), 200)
cached = time.monotonic() - t0
print(f"thumbnail of a 12-megapixel JPEG: {cpu * 1000:.0f} ms server CPU, {wall * 1000:.0f} ms wall; "
      f"cached: {cached * 1000:.0f} ms")

# ---------- PDF pages ----------
def png_size(b):
    assert b.startswith(b"\x89PNG"), b[:16]
    return struct.unpack(">II", b[16:24])


t0 = time.monotonic()
r = thumb(alice, "/team/pics/two.pdf", size="512")
err(r, 200)
print(f"PDF page rendered in {(time.monotonic() - t0) * 1000:.0f} ms wall")
assert r.headers["content-type"] == "image/png" and r.headers["x-kura-pages"] == "2", r.headers
assert r.headers["content-security-policy"] == "sandbox", r.headers
w, h = png_size(r.content)
assert h == 512 and 350 < w < 370, (w, h)  # an A6 page, 298 x 420 points
p2 = thumb(alice, "/team/pics/two.pdf", size="512", page="2")
err(p2, 200)
assert p2.headers["x-kura-pages"] == "2" and p2.content != r.content and p2.headers["etag"] != r.headers["etag"]
# cached, with its page count
again = thumb(alice, "/team/pics/two.pdf", size="512", page="2")
assert again.content == p2.content and again.headers["x-kura-pages"] == "2", again.headers
err(alice.get(API + "/thumbnail", params={"path": "/team/pics/two.pdf", "size": "512", "page": "2"},
              headers={"If-None-Match": p2.headers["etag"]}), 304)
# pages that are none, and a page of an image
err(thumb(alice, "/team/pics/two.pdf", page="3"), 400, "invalid")
err(thumb(alice, "/team/pics/two.pdf", page="0"), 400, "invalid")
err(thumb(alice, "/team/pics/two.pdf", page="-1"), 400, "invalid")
err(thumb(alice, "/team/pics/two.pdf", page="one"), 400, "invalid")
err(thumb(alice, "/team/pics/small.png", page="2"), 400, "invalid")
# another user's PDF: nothing revealed; no session: 401
hidden(thumb(carol, "/team/pics/two.pdf"))
err(requests.get(API + "/thumbnail", params={"path": "/team/pics/two.pdf"}), 401)
# garbage that starts like a PDF
err(thumb(alice, "/team/pics/garbage.pdf"), 415, "unsupported")
# PDFs made to exhaust a renderer: nested forms (memory) and a calculator function per pixel
# (CPU); each is refused within the renderer's limits (5 s of wall time at most), the work is
# done by the renderer process, not the server, and the server answers others meanwhile
for name in ("forms-bomb.pdf", "cpu-bomb.pdf"):
    before, c0, t0 = rss_kib(), cpu_seconds(), time.monotonic()
    box = {}
    worker = threading.Thread(target=lambda: box.update(r=thumb(alice, "/team/pics/" + name)))
    worker.start()
    time.sleep(1)
    t1 = time.monotonic()
    err(thumb(bob, "/team/pics/rotated.jpg", size="64"), 200)
    meanwhile = time.monotonic() - t1
    worker.join(60)
    took, cpu = time.monotonic() - t0, cpu_seconds() - c0
    assert not worker.is_alive(), f"{name}: no answer in 60 s"
    err(box["r"], 415, "unsupported")
    assert took < 30, f"{name} took {took:.1f} s"
    assert meanwhile < 5, f"a thumbnail took {meanwhile:.1f} s while {name} rendered"
    assert cpu < 2, f"{name} cost the server {cpu:.1f} s of CPU"
    assert rss_kib() < before + 50 * 1024, (name, before, rss_kib())
    print(f"{name} refused in {took:.1f} s ({box['r'].json()['message']}); server CPU {cpu:.2f} s; "
          f"RSS {before} -> {rss_kib()} KiB; another thumbnail meanwhile in {meanwhile * 1000:.0f} ms")

# ---------- tags and descriptions ----------
tag = lambda s, body: s.post(API + "/tags", json=body)
r = tag(alice, {"path": "/team/pics/small.png", "tags": [["trip", "lisbon"], ["year", "2025"]],
                "description": "the <b>beach</b>"})
err(r, 200)
e = r.json()
assert e["tags"] == [["trip", "lisbon"], ["year", "2025"]] and e["description"] == "the <b>beach</b>", e
# the listing carries them; search finds the file by tag and by description
page = alice.get(API + "/files", params={"path": "/team/pics"}).json()["entries"]
assert next(x for x in page if x["name"] == "small.png")["tags"] == [["trip", "lisbon"], ["year", "2025"]]
found = [i["path"] for i in alice.get(API + "/search", params={"q": "tag:trip=lisbon"}).json()["items"]]
assert found == ["/team/pics/small.png"], found
found = [i["path"] for i in alice.get(API + "/search", params={"q": "beach"}).json()["items"]]
assert "/team/pics/small.png" in found, found
# a bad request changes nothing: eleven tags, a control character, an unknown field, no field
err(tag(alice, {"path": "/team/pics/small.png", "tags": [[f"k{i}", "v"] for i in range(11)]}), 400, "invalid")
err(tag(alice, {"path": "/team/pics/small.png", "tags": [["ok", "v"]], "description": "bell\u0007"}), 400, "invalid")
err(tag(alice, {"path": "/team/pics/small.png", "owner": "carol"}), 400, "invalid")
err(tag(alice, {"path": "/team/pics/small.png"}), 400, "invalid")
err(alice.post(API + "/tags", data=b"x" * 100_000, headers={"Content-Type": "application/json"}), 413)
e = alice.get(API + "/file", params={"path": "/team/pics/small.png"}).json()
assert e["tags"] == [["trip", "lisbon"], ["year", "2025"]] and e["description"] == "the <b>beach</b>", e
# bob may read but not change alice's file once it is 0644; carol sees nothing
err(alice.post(API + "/attributes", json={"path": "/team/pics/small.png", "mode": "0644"}), 200)
hidden(tag(carol, {"path": "/team/pics/small.png", "tags": [["x", "y"]]}))
r = tag(bob, {"path": "/team/pics/small.png", "tags": []})
err(r, 403, "forbidden")
assert alice.get(API + "/file", params={"path": "/team/pics/small.png"}).json()["tags"] == [
    ["trip", "lisbon"], ["year", "2025"]]
hidden(tag(bob, {"path": "/carol/mine.txt", "tags": [["x", "y"]]}))
# removing them
e = tag(alice, {"path": "/team/pics/rotated.jpg", "tags": [["a", "1"]]}).json()
e = tag(alice, {"path": "/team/pics/rotated.jpg", "tags": [], "description": ""}).json()
assert "tags" not in e and "description" not in e, e
# without the CSRF token
err(requests.post(API + "/tags", json={"path": "/team/pics/small.png", "tags": []},
                  cookies=alice.cookies), 403, "csrf")

# ---------- old versions ----------
v = alice.get(API + "/versions", params={"path": "/team/pics/notes.txt"}).json()["versions"]
old = next(x for x in v if not x["delete_marker"])
dl = lambda s, path, version: s.get(API + "/download", params={"path": path, "version": version})
r = dl(alice, "/team/pics/notes.txt", old["id"])
err(r, 200)
assert r.content == b"secret first\n", r.content
assert r.headers["content-security-policy"] == "sandbox" and "attachment" in r.headers["content-disposition"]
r = alice.get(API + "/download", params={"path": "/team/pics/notes.txt", "version": old["id"]},
              headers={"Range": "bytes=7-11"})
err(r, 206)
assert r.content == b"first", r.content
err(alice.get(API + "/download", params={"path": "/team/pics/notes.txt"}), 200)
assert alice.get(API + "/download", params={"path": "/team/pics/notes.txt"}).content == b"secret second\n"
# bob, who may read the file, may read its old version; carol may not, nor learn anything
err(dl(bob, "/team/pics/notes.txt", old["id"]), 200)
hidden(dl(carol, "/team/pics/notes.txt", old["id"]))
# the id of one path is no key to another; made-up ids are not found
hidden(dl(alice, "/team/pics/small.png", old["id"]))
hidden(dl(carol, "/carol/mine.txt", old["id"]))
hidden(dl(alice, "/team/pics/notes.txt", "0" * 29))
hidden(dl(alice, "/team/pics/notes.txt", "../../etc/passwd"))

# ---------- the trash: emptied by administrators (the core's rule) ----------
err(alice.post(API + "/delete", json={"paths": ["/team/pics/liar.png"]}), 200)
assert any(d["path"] == "/team/pics/liar.png" for d in alice.get(API + "/trash").json()["deletes"])
err(alice.delete(API + "/trash"), 403, "forbidden")
err(alice.delete(API + "/trash", params={"bucket": "team"}), 403, "forbidden")
err(requests.delete(API + "/trash", cookies=alice.cookies), 403, "csrf")
assert any(d["path"] == "/team/pics/liar.png" for d in alice.get(API + "/trash").json()["deletes"])
err(alice.put(API + "/trash"), 405, "method")

# ---------- share links ----------
share = lambda s, body: s.post(API + "/shares", json=body)
r = share(alice, {"path": "/team/pics/small.png", "password": "pass-123", "expires": "2d", "max_downloads": 3})
err(r, 201)
made = r.json()
url, sid = made["url"], made["share"]["id"]
assert url.startswith("/s/") and len(url) > 40, made
assert made["share"]["password"] is True and made["share"]["max_downloads"] == 3, made
assert made["share"]["expires_ms"] > time.time() * 1000 + 86_400_000, made
assert "token" not in made["share"] and "password_hash" not in r.text, r.text
mine = alice.get(API + "/shares").json()["shares"]
assert [s["id"] for s in mine] == [sid], mine
assert url[3:] not in alice.get(API + "/shares").text  # the token is shown once
# a visitor: the password, then the file
visitor = requests.Session()
r = visitor.get(BASE + url)
assert r.status_code == 401 or "password" in r.text.lower(), (r.status_code, r.text[:200])
# a drop box on a folder; a drop box on a file and download limits on a drop box are refused
err(share(alice, {"path": "/team/pics", "drop_box": True}), 201)
err(share(alice, {"path": "/team/pics", "drop_box": True, "max_downloads": 2}), 400, "invalid")
err(share(alice, {"path": "/team/pics/small.png", "max_downloads": 0}), 400, "invalid")
err(share(alice, {"path": "/team/pics/small.png", "expires": "soon"}), 400, "invalid")
err(share(alice, {"path": "/team/pics/small.png", "owner": "carol"}), 400, "invalid")
err(share(alice, {"path": "/"}), 400, "invalid")
# a plain link opens in a fresh client and downloads the file
r = share(alice, {"path": "/team/pics/" + HOSTILE})
err(r, 201)
plain = r.json()
r = requests.get(BASE + plain["url"], allow_redirects=True)
assert r.status_code == 200, (r.status_code, r.text[:200])
assert r.content == open(os.path.join(IMAGES, "small.png"), "rb").read(), r.text[:200]
# carol cannot share what she cannot read, see alice's links, or revoke them
hidden(share(carol, {"path": "/team/pics/small.png"}))
hidden(share(carol, {"path": "/team/pics/nothing.png"}))
assert carol.get(API + "/shares").json()["shares"] == []
err(carol.delete(API + "/shares/" + sid), 404, "not_found")
err(carol.delete(API + "/shares/" + sid + "/../x"), 404)
# bob (who may read the file) shares it acting as himself; alice does not see his link
err(share(bob, {"path": "/team/pics/small.png"}), 201)
assert len(alice.get(API + "/shares").json()["shares"]) == 3
# without the CSRF token: neither made nor revoked
err(requests.post(API + "/shares", json={"path": "/team/pics/small.png"}, cookies=alice.cookies), 403, "csrf")
err(requests.delete(API + "/shares/" + sid, cookies=alice.cookies), 403, "csrf")
# from another origin
err(alice.post(API + "/shares", json={"path": "/team/pics/small.png"},
               headers={"Origin": "https://evil.example"}), 403)
err(alice.get(API + "/shares/" + sid), 405, "method")
# revoked: the link answers 404 from then on
err(alice.delete(API + "/shares/" + plain["share"]["id"]), 204)
assert requests.get(BASE + plain["url"]).status_code == 404
err(alice.delete(API + "/shares/" + plain["share"]["id"]), 404, "not_found")

print("all checks passed")
