"""Red-team attacks on the user files API and tus uploads (docs/web.md) that the feature's
own tests did not try, against a real server with Python requests. Run by user_api_attacks.rs,
which sets up the households of user_files.rs (bucket `team` for alice and bob, `carol` for
carol alone).

Usage: user_api_attacks.py BASE_URL CHECK STATE_FILE (CHECK: a function named in CHECKS;
STATE_FILE: where one phase leaves what the next needs)
"""
import base64
import io
import sys
import unicodedata
import zipfile

import requests

BASE = sys.argv[1].rstrip("/")
API = BASE + "/api/user/v1"
UPLOADS = API + "/uploads"
PW = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123"}
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}


def b64(s):
    return base64.b64encode(s.encode()).decode()


def sign_in(user):
    s = requests.Session()
    r = s.post(API + "/session", auth=(user, PW[user]))
    assert r.status_code == 200, r.text
    s.headers["X-Kura-CSRF"] = r.json()["csrf"]
    return s


def create(s, length, folder, name, filetype=None):
    meta = f"path {b64(folder)},filename {b64(name)}"
    if filetype is not None:
        meta += f",filetype {b64(filetype)}"
    return s.post(UPLOADS, headers=dict(TUS, **{"Upload-Length": str(length), "Upload-Metadata": meta}))


def names(s, path):
    return [e["name"] for e in s.get(API + "/files", params={"path": path}).json()["entries"]]


def stored_types():
    alice = sign_in("alice")
    # a tus `filetype` is any bytes (base64): a type that is no header value (CR LF, control
    # characters, non-ASCII) is refused at creation, so no file's stored type can break the
    # answers of WebDAV, S3 or the API to everyone who reads it
    for bad in ["text/html\r\nSet-Cookie: a=b", "text/plain\x00", "text/pl\u00e4in"]:
        r = create(alice, 3, "/team", "typed.html", filetype=bad)
        assert r.status_code == 400 and r.json()["error"] == "invalid", (repr(bad), r.status_code, r.text)
    assert "typed.html" not in names(alice, "/team")
    r = create(alice, 3, "/team", "typed.html", filetype="text/html; charset=utf-8")
    assert r.status_code == 201, r.text
    r = alice.patch(BASE + r.headers["location"], data=b"<b>", headers=dict(OCTETS, **{"Upload-Offset": "0"}))
    assert r.status_code == 204, r.text
    r = requests.get(BASE + "/dav/team/typed.html", auth=("bob", PW["bob"]))
    assert r.status_code == 200 and r.content == b"<b>", (r.status_code, r.content)
    assert r.headers["content-type"] == "text/html; charset=utf-8", r.headers


def zip_spellings():
    alice = sign_in("alice")
    # a zip names each file once, however its name is spelt (NFC and NFD are one name to the
    # core)
    nfc = "caf\u00e9.txt"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    r = requests.put(BASE + "/dav/team/" + nfc, data=b"coffee", auth=("alice", PW["alice"]))
    assert r.status_code == 201, r.status_code
    r = alice.get(API + "/zip", params={"dir": "/team", "names": nfc + "/" + nfd})
    assert r.status_code == 200, r.text
    entries = [i.filename for i in zipfile.ZipFile(io.BytesIO(r.content)).infolist()]
    assert entries == [nfc], entries


def empty_file():
    alice = sign_in("alice")
    # tus-js-client and Uppy send no PATCH for an empty file: they report success once the
    # upload is created, so the file must exist then, replacing an older one as a PUT would
    r = create(alice, 0, "/team", "empty.txt")
    assert r.status_code == 201 and r.headers["upload-offset"] == "0", (r.status_code, r.text)
    r = alice.get(API + "/file", params={"path": "/team/empty.txt"})
    assert r.status_code == 200 and r.json()["size"] == 0, (r.status_code, r.text)
    r = requests.put(BASE + "/dav/team/old.txt", data=b"old bytes", auth=("alice", PW["alice"]))
    assert r.status_code == 201, r.status_code
    assert create(alice, 0, "/team", "old.txt").status_code == 201
    r = requests.get(BASE + "/dav/team/old.txt", auth=("bob", PW["bob"]))
    assert r.status_code == 200 and r.content == b"", (r.status_code, r.content)
    # the write rules still hold: carol may not write into team, and nothing appears
    carol = sign_in("carol")
    r = create(carol, 0, "/team", "carols.txt")
    assert r.status_code == 403, (r.status_code, r.text)
    assert "carols.txt" not in names(alice, "/team")

def moved_private_folder():
    alice, bob = sign_in("alice"), sign_in("bob")
    # bob's own folder in the shared bucket, closed to the group (0700), a file in it
    assert bob.post(API + "/folders", json={"path": "/team/bobs"}).status_code == 201
    r = bob.post(API + "/attributes", json={"path": "/team/bobs", "mode": "0700"})
    assert r.status_code == 200, r.text
    r = requests.put(BASE + "/dav/team/bobs/plan.txt", data=b"bob's plan", auth=("bob", PW["bob"]))
    assert r.status_code == 201, r.status_code
    assert alice.get(API + "/download", params={"path": "/team/bobs/plan.txt"}).status_code == 403
    # bob deletes the file; it was never alice's to read, and stays so
    r = bob.post(API + "/delete", json={"paths": ["/team/bobs/plan.txt"]})
    assert r.json()["done"] == ["/team/bobs/plan.txt"], r.text
    r = alice.post(API + "/restore", json={"path": "/team/bobs/plan.txt", "to": "/team/a.txt"})
    assert r.status_code == 403, (r.status_code, r.text)
    # ... also once bob has renamed his folder: the old path holds no folder to check any more
    r = bob.post(API + "/rename", json={"path": "/team/bobs", "to": "/team/bobs-2025"})
    assert r.status_code == 200, r.text
    r = alice.get(API + "/trash", params={"bucket": "team"})
    assert r.status_code == 200 and "plan.txt" not in r.text, r.text
    r = alice.get(API + "/versions", params={"path": "/team/bobs/plan.txt"})
    assert r.status_code in (403, 404) or r.json()["versions"] == [], (r.status_code, r.text)
    r = alice.post(API + "/restore", json={"path": "/team/bobs/plan.txt", "to": "/team/b.txt"})
    assert r.status_code in (403, 404), (r.status_code, r.text)
    r = alice.get(API + "/download", params={"path": "/team/b.txt"})
    assert r.status_code == 404, (r.status_code, r.content)

def recreated_private_folder():
    alice, bob = sign_in("alice"), sign_in("bob")
    # bob deletes his private folder (0700) with a file alice could never read
    assert bob.post(API + "/folders", json={"path": "/team/diary"}).status_code == 201
    r = bob.post(API + "/attributes", json={"path": "/team/diary", "mode": "0700"})
    assert r.status_code == 200, r.text
    r = requests.put(BASE + "/dav/team/diary/day1.txt", data=b"dear diary", auth=("bob", PW["bob"]))
    assert r.status_code == 201, r.status_code
    r = bob.post(API + "/delete", json={"paths": ["/team/diary"]})
    assert r.json()["done"] == ["/team/diary"], r.text
    assert alice.get(API + "/versions", params={"path": "/team/diary/day1.txt"}).status_code == 403
    # alice, who may write the bucket, makes a folder of the same name, then the file too
    assert alice.post(API + "/folders", json={"path": "/team/diary"}).status_code == 201
    for step in ["folder", "file"]:
        if step == "file":
            r = requests.put(BASE + "/dav/team/diary/day1.txt", data=b"mine", auth=("alice", PW["alice"]))
            assert r.status_code == 201, r.status_code
        r = alice.get(API + "/versions", params={"path": "/team/diary/day1.txt"})
        kept = [v for v in r.json()["versions"] if not v["delete_marker"]] if r.status_code == 200 else []
        assert kept == [], (step, r.text)
        r = alice.post(API + "/restore", json={"path": "/team/diary/day1.txt", "to": "/team/got.txt"})
        assert r.status_code in (403, 404), (step, r.status_code, r.text)
        assert "day1" not in alice.get(API + "/trash", params={"bucket": "team"}).text, step
    r = alice.get(API + "/download", params={"path": "/team/got.txt"})
    assert r.status_code == 404, (r.status_code, r.content)
    # bob still sees and restores his own
    r = bob.post(API + "/restore", json={"path": "/team/diary/day1.txt", "to": "/team/day1-back.txt"})
    assert r.status_code == 200, r.text

def no_basic_challenge():
    # a browser whose session ended (or that has none) gets the API's JSON 401, never a Basic
    # challenge: a challenge makes the browser pop up its password dialog and then send Basic
    # credentials (no CSRF token, no second factor) with every request of the origin
    for cookies, auth in [({"kura": "0" * 43}, None), ({}, None), ({}, ("alice", "wrong-pw"))]:
        r = requests.get(API + "/files", params={"path": "/team"}, cookies=cookies, auth=auth)
        assert r.status_code == 401, (cookies, auth, r.status_code, r.text)
        assert "www-authenticate" not in r.headers, (cookies, auth, r.headers)
        assert r.headers["content-type"] == "application/json", r.headers
        assert r.json()["error"] in ("signed_out", "invalid"), r.text
    r = requests.post(UPLOADS, headers=dict(TUS, **{"Upload-Length": "1", "Upload-Metadata": f"path {b64('/team')},filename {b64('x')}"}), cookies={"kura": "0" * 43})
    assert r.status_code == 401 and "www-authenticate" not in r.headers, (r.status_code, r.headers)
    # scripts with Basic credentials still work
    r = requests.get(API + "/files", params={"path": "/team"}, auth=("alice", PW["alice"]))
    assert r.status_code == 200, r.text


STATE = sys.argv[3]


def revoked_writer_start():
    # bob starts an upload into team, then (user_api_attacks.rs) leaves the group
    bob = requests.Session()
    bob.auth = ("bob", PW["bob"])
    r = create(bob, 1_500_000, "/team", "hostage.bin")
    assert r.status_code == 201, r.text
    open(STATE, "w").write(BASE + r.headers["location"])


def revoked_writer_rest():
    # no longer allowed into team, he may not stage bytes there: they would count against
    # team's quota (alice's own uploads refused with 507) for as long as he touches the upload
    url = open(STATE).read()
    bob = requests.Session()
    bob.auth = ("bob", PW["bob"])
    assert bob.get(API + "/files", params={"path": "/team"}).status_code == 403
    r = bob.patch(url, data=b"h" * 1_400_000, headers=dict(OCTETS, **{"Upload-Offset": "0"}))
    assert r.status_code == 403 and r.json()["error"] == "forbidden", (r.status_code, r.text)
    r = bob.head(url, headers=TUS)
    assert r.status_code == 200 and r.headers["upload-offset"] == "0", (r.status_code, r.headers)
    alice = sign_in("alice")
    r = create(alice, 700_000, "/team", "mine.bin")
    assert r.status_code == 201, r.text


BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def saved_name(r):
    """The name a browser saves a download under, from both Content-Disposition parameters."""
    cd = r.headers["content-disposition"]
    plain = cd.split('filename="', 1)[1].split('"', 1)[0]
    star = requests.utils.unquote(cd.split("filename*=UTF-8''", 1)[1].split(";", 1)[0])
    return plain, star


def bidi_download():
    # "invoice_\u202Efdp.exe" reads "invoice_exe.pdf" in a file manager: every download
    # (the app's, a share link's, a zip's) saves it under a name without bidi controls
    alice = sign_in("alice")
    evil = "invoice_\u202efdp.exe"
    r = requests.put(BASE + "/dav/team/" + evil, data=b"MZ", auth=("alice", PW["alice"]))
    assert r.status_code == 201, r.status_code
    assert alice.post(API + "/folders", json={"path": "/team/\u2067pics\u2069"}).status_code == 201
    got = []
    r = alice.get(API + "/download", params={"path": "/team/" + evil})
    assert r.status_code == 200 and r.content == b"MZ", (r.status_code, r.text)
    got.append(saved_name(r))
    r = alice.get(API + "/zip", params={"dir": "/team", "names": "\u2067pics\u2069"})
    assert r.status_code == 200, r.text
    got.append(saved_name(r))
    r = alice.post(API + "/shares", json={"path": "/team/" + evil})
    assert r.status_code == 201, r.text
    r = requests.get(BASE + r.json()["url"] + "?download=1")
    assert r.status_code == 200 and r.content == b"MZ", (r.status_code, r.text)
    got.append(saved_name(r))
    r = alice.post(API + "/shares", json={"path": "/team/\u2067pics\u2069"})
    assert r.status_code == 201, r.text
    r = requests.get(BASE + r.json()["url"] + "?zip=1")
    assert r.status_code == 200, (r.status_code, r.text)
    got.append(saved_name(r))
    for plain, star in got:
        assert not any(c in BIDI for c in plain + star), got
    assert got[0] == ("invoice_fdp.exe", "invoice_fdp.exe"), got
    assert got[3] == ("pics.zip", "pics.zip"), got


def removed_user_start():
    # alice starts a large upload into team and sends part of it
    alice = sign_in("alice")
    r = create(alice, 1_900_000, "/team", "big.bin")
    assert r.status_code == 201, r.text
    url = BASE + r.headers["location"]
    r = alice.patch(url, data=b"a" * 1_400_000, headers=dict(OCTETS, **{"Upload-Offset": "0"}))
    assert r.status_code == 204, (r.status_code, r.text)
    open(STATE, "w").write(url)


def removed_user_rest():
    # alice was removed and a new user of the same name added: the old alice's upload is
    # not hers (it is gone), and its staged bytes no longer hold team's quota
    url = open(STATE).read()
    alice = sign_in("alice")
    r = alice.head(url, headers=TUS)
    assert r.status_code == 404, (r.status_code, r.headers)
    r = alice.patch(url, data=b"b" * 500_000, headers=dict(OCTETS, **{"Upload-Offset": "1400000"}))
    assert r.status_code == 404, (r.status_code, r.text)
    assert "big.bin" not in names(alice, "/team")
    r = create(alice, 1_900_000, "/team", "new.bin")
    assert r.status_code == 201, (r.status_code, r.text)


def upload_cap_tus():
    # the server allows 3 open resumable uploads per user (tus and S3 multipart together);
    # the S3 test side opened one for alice already
    alice, bob = sign_in("alice"), sign_in("bob")
    urls = []
    for i in range(2):
        r = create(alice, 10, "/team", f"part{i}.bin")
        assert r.status_code == 201, (i, r.status_code, r.text)
        urls.append(BASE + r.headers["location"])
    r = create(alice, 10, "/team", "one-too-many.bin")
    assert r.status_code == 403 and r.json()["error"] == "too_many_uploads", (r.status_code, r.text)
    assert "3" in r.json()["message"], r.text
    # others are not held back by alice's uploads
    assert create(bob, 10, "/team", "bobs.bin").status_code == 201
    # a finished or terminated upload frees its place
    r = alice.patch(urls[0], data=b"0123456789", headers=dict(OCTETS, **{"Upload-Offset": "0"}))
    assert r.status_code == 204, (r.status_code, r.text)
    assert alice.delete(urls[1], headers=TUS).status_code == 204
    for i in range(2):
        r = create(alice, 10, "/team", f"again{i}.bin")
        assert r.status_code == 201, (i, r.status_code, r.text)
    assert create(alice, 10, "/team", "over.bin").status_code == 403


def restored_modes():
    # bob's project folder (0750) with a private subfolder (0700) and a private file (0600)
    bob = sign_in("bob")
    for folder, mode in [("/team/proj", "0750"), ("/team/proj/sub", "0700")]:
        assert bob.post(API + "/folders", json={"path": folder}).status_code == 201
        r = bob.post(API + "/attributes", json={"path": folder, "mode": mode})
        assert r.status_code == 200, r.text
    for f in ["/team/proj/a.txt", "/team/proj/sub/b.txt"]:
        r = requests.put(BASE + "/dav" + f, data=b"secret " + f.encode(), auth=("bob", PW["bob"]))
        assert r.status_code == 201, r.status_code
    r = bob.post(API + "/attributes", json={"path": "/team/proj/a.txt", "mode": "0600"})
    assert r.status_code == 200, r.text

    def bits():
        out = {}
        for p in ["/team/proj", "/team/proj/sub", "/team/proj/a.txt", "/team/proj/sub/b.txt"]:
            r = bob.get(API + "/file", params={"path": p})
            assert r.status_code == 200, (p, r.status_code, r.text)
            e = r.json()
            out[p] = (e["owner"], e["group"], e["mode"])
        return out

    before = bits()
    r = bob.post(API + "/delete", json={"paths": ["/team/proj"]})
    assert r.json()["done"] == ["/team/proj"], r.text
    # one file first (its folders are made again), then the rest: file by file, in place
    r = bob.post(API + "/restore", json={"path": "/team/proj/sub/b.txt"})
    assert r.status_code == 200, r.text
    r = bob.post(API + "/restore", json={"path": "/team/proj"})
    assert r.status_code == 200, r.text
    after = bits()
    assert after == before, (before, after)
    # the private subfolder is closed to alice again, as it was before the delete
    alice = sign_in("alice")
    r = alice.get(API + "/download", params={"path": "/team/proj/sub/b.txt"})
    assert r.status_code == 403, (r.status_code, r.text)


def restored_by_another():
    # bob's open folder (0777, a 0666 file) deleted by bob; alice, who may read all of it,
    # restores it in place, then elsewhere: in place bob gets it back as it was (a restore
    # takes no one's file); elsewhere it is hers, as her copy would be (the one-rename restore
    # kept bob's ownership wherever it went)
    bob, alice = sign_in("bob"), sign_in("alice")
    assert bob.post(API + "/folders", json={"path": "/team/open"}).status_code == 201
    assert bob.post(API + "/attributes", json={"path": "/team/open", "mode": "0777"}).status_code == 200
    r = requests.put(BASE + "/dav/team/open/f.txt", data=b"bob's", auth=("bob", PW["bob"]))
    assert r.status_code == 201, r.status_code
    assert bob.post(API + "/attributes", json={"path": "/team/open/f.txt", "mode": "0666"}).status_code == 200
    for target in [None, "/team/alices"]:
        r = bob.post(API + "/delete", json={"paths": ["/team/open"]})
        assert r.json()["done"] == ["/team/open"], r.text
        body = {"path": "/team/open"} | ({"to": target} if target else {})
        r = alice.post(API + "/restore", json=body)
        assert r.status_code == 200, r.text
        where = target or "/team/open"
        for p in [where, where + "/f.txt"]:
            r = alice.get(API + "/file", params={"path": p})
            assert r.status_code == 200, (p, r.status_code, r.text)
            assert r.json()["owner"] == ("alice" if target else "bob"), (p, r.json())
            assert r.json()["mode"] == ("0777" if p == where else "0666"), (p, r.json())


CHECKS = {
    f.__name__: f
    for f in [stored_types, zip_spellings, no_basic_challenge, revoked_writer_start, revoked_writer_rest,
              empty_file, moved_private_folder,
              recreated_private_folder, bidi_download,
              removed_user_start, removed_user_rest, upload_cap_tus, restored_modes,
              restored_by_another]
}
CHECKS[sys.argv[2]]()
print(f"user_api_attacks.py {sys.argv[2]}: all checks passed")
