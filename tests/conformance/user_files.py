"""The user files API (docs/web.md) against a real server, with Python requests: what a
signed-in browser does, and what an attacker tries. Run by user_files.rs, which sets up:
group `team` with a 2 MB quota, bucket `team` (770, group team), bucket `carol` (700, carol's),
users alice and bob in team, carol alone.

Usage: user_files.py BASE_URL
"""
import io
import sys
import zipfile

import requests

BASE = sys.argv[1].rstrip("/")
API = BASE + "/api/user/v1"
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


def err(r, status, code=None):
    assert r.status_code == status, (r.request.method, r.url, r.status_code, r.text)
    if code is not None:
        assert r.headers["content-type"] == "application/json", r.headers
        assert r.json()["error"] == code, r.text


alice, bob, carol = sign_in("alice"), sign_in("bob"), sign_in("carol")

# buckets: each sees what she may enter, with the quota meter of its group
b = alice.get(API + "/buckets").json()["buckets"]
names = [x["name"] for x in b]
assert "team" in names and "carol" not in names, b
team = next(x for x in b if x["name"] == "team")
assert team["quota"]["group"] == "team" and team["quota"]["quota"] == 2_000_000, team
c = [x["name"] for x in carol.get(API + "/buckets").json()["buckets"]]
assert "carol" in c and "team" not in c, c

# a new folder, files in it, a listing with every field
err(alice.post(API + "/folders", json={"path": "/team/photos"}), 201)
err(alice.post(API + "/folders", json={"path": "/team/photos"}), 409, "conflict")
for i in range(3):
    dav_put("alice", f"/team/photos/p{i}.txt", f"photo {i}\n" * (i + 1))
err(alice.post(API + "/folders", json={"path": "/team/photos/sub"}), 201)
dav_put("alice", "/team/photos/sub/deep.txt", "deep\n")
page = alice.get(API + "/files", params={"path": "/team/photos"}).json()
got = [(e["name"], e["folder"]) for e in page["entries"]]
assert got == [("p0.txt", False), ("p1.txt", False), ("p2.txt", False), ("sub", True)], got
p1 = page["entries"][1]
assert p1["size"] == len("photo 1\n" * 2) and p1["owner"] == "alice", p1
assert p1["group"] == "team" and p1["content_type"].startswith("text/plain"), p1
assert p1["mode"].startswith("0") and p1["lock"] is None and p1["etag"], p1
assert page["next"] is None
# sort: only by name
err(alice.get(API + "/files", params={"path": "/team/photos", "sort": "size"}), 400, "invalid")

# keyset pages of a large folder: every name once, in order, each page bounded
s = requests.Session()
s.auth = ("alice", PW["alice"])
N = 1100
err(alice.post(API + "/folders", json={"path": "/team/many"}), 201)
for i in range(N):
    r = s.put(BASE + f"/dav/team/many/f{i:05}", data=b"x")
    assert r.status_code == 201, r.text
s.request("MKCOL", BASE + "/dav/team/many/f00500.d")
seen, after, pages = [], None, 0
while True:
    q = {"path": "/team/many", "limit": "500"}
    if after:
        q["after"] = after
    r = alice.get(API + "/files", params=q)
    err(r, 200)
    j = r.json()
    assert len(j["entries"]) <= 500
    seen += [e["name"] for e in j["entries"]]
    pages += 1
    after = j["next"]
    if not after:
        break
assert pages == 3 and len(seen) == N + 1 and seen == sorted(seen), (pages, len(seen))
err(alice.get(API + "/files", params={"path": "/team/many", "limit": "0"}), 400, "invalid")
err(alice.get(API + "/files", params={"path": "/team/many", "limit": "99999"}), 400, "invalid")

# another user's bucket: 403 and nothing of it shown
err(alice.get(API + "/files", params={"path": "/carol"}), 403, "forbidden")
dav_put("carol", "/carol/secret.txt", "secret")
r = alice.get(API + "/files", params={"path": "/carol"})
assert "secret" not in r.text, r.text
r = alice.get(API + "/file", params={"path": "/carol/secret.txt"})
assert r.status_code in (403, 404) and "secret" not in r.json()["message"], r.text
err(alice.get(API + "/download", params={"path": "/carol/secret.txt"}), 403)
err(alice.post(API + "/delete", json={"paths": ["/carol/secret.txt"]}), 200)
assert carol.get(API + "/download", params={"path": "/carol/secret.txt"}).content == b"secret"
r = alice.post(API + "/copy", json={"sources": ["/carol/secret.txt"], "to": "/team"}).json()
assert r["done"] == [] and r["failed"][0]["error"] in ("forbidden", "not_found"), r
r = alice.get(API + "/zip", params={"dir": "/carol", "names": "secret.txt"})
assert r.status_code == 403 and b"secret" not in r.content, r.status_code
# bob, in the group, cannot change alice's file's mode or group
err(bob.post(API + "/attributes", json={"path": "/team/photos/p0.txt", "mode": "0777"}), 403, "forbidden")

# traversal and bad names: refused before anything happens
for bad in ["/team/../carol", "/team/%2e%2e/carol", "/team/a\x00b", "/team/a\\b", "team/x", "/team//x"]:
    r = alice.get(API + "/files", params={"path": bad})
    assert r.status_code in (400, 404), (bad, r.status_code, r.text)
    # in JSON, %2e%2e is a literal name: its folder does not exist (409)
    r = alice.post(API + "/folders", json={"path": bad + "/new"})
    assert r.status_code in (400, 404, 409), (bad, r.status_code, r.text)
assert [e["name"] for e in carol.get(API + "/files", params={"path": "/carol"}).json()["entries"]] == ["secret.txt"]
r = requests.get(BASE + "/api/user/v1/files?path=/team/%2e%2e/carol", auth=("alice", PW["alice"]))
assert r.status_code in (400, 404), r.text
r = alice.post(API + "/rename", json={"path": "/team/photos/p0.txt", "to": "/team/photos/../../carol/x"})
err(r, 400, "invalid")
r = alice.get(API + "/zip", params={"dir": "/team", "names": "../carol"})
assert r.status_code == 400, r.status_code

# CSRF: a session's change without the token, or with another session's, is refused
plain = requests.Session()
plain.cookies = alice.cookies
err(plain.post(API + "/folders", json={"path": "/team/nocsrf"}), 403, "csrf")
err(plain.post(API + "/folders", json={"path": "/team/forged"}, headers={"X-Kura-CSRF": bob.headers["X-Kura-CSRF"]}), 403, "csrf")
err(plain.post(API + "/delete", json={"paths": ["/team/photos/p0.txt"]}, headers={"X-Kura-CSRF": "0" * 64}), 403, "csrf")
# another origin: refused before anything else, even with the token
err(alice.post(API + "/folders", json={"path": "/team/x-site"}, headers={"Origin": "https://evil.example"}), 403, "forbidden")
err(alice.get(API + "/files", params={"path": "/team"}, headers={"Sec-Fetch-Site": "cross-site"}), 403, "forbidden")
listing = [e["name"] for e in alice.get(API + "/files", params={"path": "/team"}).json()["entries"]]
assert "nocsrf" not in listing and "forged" not in listing and "x-site" not in listing, listing

# download: ranges, attachment name, nosniff, sandbox
dav_put("alice", "/team/photos/<img src=x onerror=alert(1)>.html", "<script>alert(1)</script>")
r = alice.get(API + "/download", params={"path": "/team/photos/<img src=x onerror=alert(1)>.html"})
err(r, 200)
assert r.headers["x-content-type-options"] == "nosniff", r.headers
assert "sandbox" in r.headers["content-security-policy"], r.headers
assert r.headers["content-disposition"].startswith("attachment;"), r.headers
assert "filename*=UTF-8''%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.html" in r.headers["content-disposition"], r.headers
r = alice.get(API + "/download", params={"path": "/team/photos/p2.txt"}, headers={"Range": "bytes=2-5"})
err(r, 206)
assert r.content == ("photo 2\n" * 3).encode()[2:6] and r.headers["content-range"] == "bytes 2-5/24", r.headers
err(alice.get(API + "/download", params={"path": "/team/photos/p2.txt"}, headers={"Range": "bytes=99-"}), 416)
err(alice.get(API + "/download", params={"path": "/team/photos"}), 400, "invalid")

# zip of a selection: entries checked one by one
r = alice.get(API + "/zip", params={"dir": "/team/photos", "names": "p0.txt/p2.txt/sub/p0.txt"})
err(r, 200)
assert r.headers["content-type"] == "application/zip"
assert "photos.zip" in r.headers["content-disposition"], r.headers
z = zipfile.ZipFile(io.BytesIO(r.content))
assert z.testzip() is None
entries = sorted((i.filename, z.read(i)) for i in z.infolist())
assert entries == [
    ("p0.txt", b"photo 0\n"),
    ("p2.txt", b"photo 2\n" * 3),
    ("sub/deep.txt", b"deep\n"),
], entries

# rename, move, copy, delete
r = alice.post(API + "/rename", json={"path": "/team/photos/p0.txt", "to": "/team/photos/zero.txt"})
err(r, 200)
assert r.json()["name"] == "zero.txt"
err(alice.post(API + "/rename", json={"path": "/team/photos/p1.txt", "to": "/team/photos/zero.txt"}), 409, "conflict")
err(alice.post(API + "/folders", json={"path": "/team/archive"}), 201)
r = alice.post(API + "/move", json={"sources": ["/team/photos/zero.txt", "/team/photos/nope.txt"], "to": "/team/archive"}).json()
assert r["done"] == ["/team/photos/zero.txt"] and r["failed"][0]["error"] == "not_found", r
r = alice.post(API + "/copy", json={"sources": ["/team/photos/sub", "/team/photos/p1.txt"], "to": "/team/archive"}).json()
assert len(r["done"]) == 2 and r["failed"] == [], r
assert alice.get(API + "/download", params={"path": "/team/archive/sub/deep.txt"}).content == b"deep\n"
assert alice.get(API + "/download", params={"path": "/team/archive/zero.txt"}).content == b"photo 0\n"
r = alice.post(API + "/delete", json={"paths": ["/team/archive/sub", "/team/archive/zero.txt"]}).json()
assert len(r["done"]) == 2, r
err(alice.get(API + "/file", params={"path": "/team/archive/zero.txt"}), 404, "not_found")
# deletes go to the trash, as every delete does
t = alice.get(API + "/trash", params={"bucket": "team"}).json()["deletes"]
assert any(d["path"] == "/team/archive/zero.txt" for d in t), t
err(alice.post(API + "/delete", json={"paths": []}), 400, "invalid")
err(alice.post(API + "/delete", data="not json", headers={"Content-Type": "application/json"}), 400, "invalid")
err(alice.post(API + "/delete", json={"paths": ["/team/x"], "extra": 1}), 400, "invalid")

# chmod and chgrp by the owner
r = alice.post(API + "/attributes", json={"path": "/team/photos/p1.txt", "mode": "0640"})
err(r, 200)
assert r.json()["mode"] == "0640", r.text
err(alice.post(API + "/attributes", json={"path": "/team/photos/p1.txt", "mode": "999"}), 400, "invalid")
err(alice.post(API + "/attributes", json={"path": "/team/photos/p1.txt", "group": "nosuchgroup"}), 403, "forbidden")

# a locked file: a rename onto it, or of it, is refused with 423
LOCK = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>bob</D:owner></D:lockinfo>'
r = requests.request("LOCK", BASE + "/dav/team/photos/p2.txt", data=LOCK, auth=("bob", PW["bob"]), headers={"Timeout": "Second-600"})
assert r.status_code == 200, r.text
e = alice.get(API + "/file", params={"path": "/team/photos/p2.txt"}).json()
assert e["lock"]["holder"] == "bob" and e["lock"]["depth"] in ("0", "infinity") and e["lock"]["expires_ms"], e
listed = alice.get(API + "/files", params={"path": "/team/photos"}).json()["entries"]
assert next(x for x in listed if x["name"] == "p2.txt")["lock"]["holder"] == "bob", listed
err(alice.post(API + "/rename", json={"path": "/team/photos/p2.txt", "to": "/team/photos/moved.txt"}), 423, "locked")
r = alice.post(API + "/delete", json={"paths": ["/team/photos/p2.txt"]}).json()
assert r["failed"][0]["error"] == "locked", r

# over the quota: a copy that would pass it is refused with 507
dav_put("alice", "/team/big.bin", b"b" * 1_200_000)
r = alice.post(API + "/copy", json={"sources": ["/team/big.bin"], "to": "/team/archive"}).json()
assert r["failed"] and r["failed"][0]["error"] == "quota", r

# Basic credentials work too, and need no CSRF token
r = requests.post(API + "/folders", json={"path": "/team/by-basic"}, auth=("bob", PW["bob"]))
err(r, 201)
print("user_files.py: all checks passed")
