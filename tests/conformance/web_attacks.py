"""Red-team attacks on the browser app's user API and the admin API (findings F1, F3, F5 and
F10 of the web red team), against a real HTTPS server with Python requests. Run by
web_attacks.rs, which sets up the households of user_files.rs (bucket `team` for alice and
bob, `carol` for carol alone) plus `bobbox`, bob's own bucket (0700).

Usage: web_attacks.py BASE_URL ADMIN_PASSWORD CHECK CERT (CHECK: a function named in
CHECKS; CERT: the server's certificate)
"""
import base64
import hashlib
import hmac
import os
import struct
import sys
import time

import requests

BASE = sys.argv[1].rstrip("/")
ADMIN_PW = sys.argv[2]
CERT = sys.argv[4]  # the server's certificate
# requests prefers these to a Session's own `verify`
os.environ["REQUESTS_CA_BUNDLE"] = os.environ["CURL_CA_BUNDLE"] = CERT
API = BASE + "/api/user/v1"
ADMIN_API = BASE + "/api/v1"
PW = {"alice": "alice-pw-123", "bob": "bob-pw-1234", "carol": "carol-pw-123", "admin": ADMIN_PW}


def basic(user):
    s = requests.Session()
    s.verify = CERT
    s.auth = (user, PW[user])
    return s


def sign_in(user, code=None):
    s = requests.Session()
    s.verify = CERT
    r = s.post(API + "/session", auth=(user, PW[user]), json={"code": code} if code else None)
    assert r.status_code == 200, (user, r.status_code, r.text)
    s.headers["X-Kura-CSRF"] = r.json()["csrf"]
    return s


def dav_put(user, path, body):
    r = requests.put(BASE + "/dav" + path, data=body, auth=(user, PW[user]), verify=CERT)
    assert r.status_code in (201, 204), (path, r.status_code, r.text)


def mkdir(s, path, mode=None):
    r = s.post(API + "/folders", json={"path": path})
    assert r.status_code == 201, (path, r.status_code, r.text)
    if mode:
        r = s.post(API + "/attributes", json={"path": path, "mode": mode})
        assert r.status_code == 200, (path, r.status_code, r.text)


def delete(s, path):
    r = s.post(API + "/delete", json={"paths": [path]})
    assert r.status_code == 200 and r.json()["done"] == [path], (r.status_code, r.text)


def stat(s, path):
    return s.get(API + "/file", params={"path": path})


def download(s, path):
    return s.get(API + "/download", params={"path": path})


def restore(s, path, to=None):
    body = {"path": path}
    if to:
        body["to"] = to
    return s.post(API + "/restore", json=body)


def trash(s, bucket):
    r = s.get(API + "/trash", params={"bucket": bucket})
    assert r.status_code == 200, r.text
    return [d["path"] for d in r.json()["deletes"]]


def restore_of_a_private_folder():
    alice, bob = sign_in("alice"), sign_in("bob")
    # alice's private folder in the shared bucket: bob may list /team but never enter it
    mkdir(alice, "/team/private", "0700")
    dav_put("alice", "/team/private/diary.txt", b"alice diary: very private")
    assert download(bob, "/team/private/diary.txt").status_code == 403
    delete(alice, "/team/private")
    assert "/team/private" not in trash(bob, "team")
    # F1: restored into bob's own bucket (file by file), into the same bucket (in one step),
    # or in place once bob has made a folder of that name: refused, nothing restored
    for to in ["/bobbox/loot", "/team/loot", None]:
        if to is None:
            mkdir(bob, "/team/private")
        r = restore(bob, "/team/private", to)
        # 404: a delete he may not read is none of his (403 where he saw it)
        assert r.status_code in (403, 404), (to, r.status_code, r.text)
    for p in ["/bobbox/loot", "/bobbox/loot/diary.txt", "/team/loot", "/team/private/diary.txt"]:
        assert stat(basic("admin"), p).status_code == 404, (p, stat(basic("admin"), p).text)
    # the same with Basic credentials
    r = basic("bob").post(API + "/restore", json={"path": "/team/private", "to": "/bobbox/l2"})
    assert r.status_code in (403, 404), (r.status_code, r.text)
    assert stat(basic("admin"), "/bobbox/l2").status_code == 404
    # alice's delete is still hers, whole, and comes back as it was
    assert "/team/private" in trash(alice, "team")
    r = restore(alice, "/team/private", "/team/private-back")
    assert r.status_code == 200, r.text
    r = download(alice, "/team/private-back/diary.txt")
    assert r.status_code == 200 and r.content == b"alice diary: very private", r.text
    e = stat(alice, "/team/private-back").json()
    assert e["owner"] == "alice" and e["mode"] == "0700", e
    assert download(bob, "/team/private-back/diary.txt").status_code == 403


def restore_of_a_readable_folder_holding_a_private_one():
    alice, bob = sign_in("alice"), sign_in("bob")
    mkdir(alice, "/team/proj")
    dav_put("alice", "/team/proj/readme.txt", b"project readme")
    mkdir(alice, "/team/proj/hr", "0700")
    dav_put("alice", "/team/proj/hr/salaries.txt", b"SALARIES: secret")
    assert download(bob, "/team/proj/readme.txt").status_code == 200
    assert download(bob, "/team/proj/hr/salaries.txt").status_code == 403
    delete(alice, "/team/proj")
    # bob may see the delete (he could list the folder) but not take what he could not read
    for to in ["/bobbox/proj2", "/team/proj2", None]:
        if to is None:
            mkdir(bob, "/team/proj")  # the path taken: the app's Restore goes file by file
        r = restore(bob, "/team/proj", to)
        assert r.status_code == 403, (to, r.status_code, r.text)
    for p in ["/bobbox/proj2", "/team/proj2", "/team/proj/hr", "/team/proj/readme.txt"]:
        assert stat(basic("admin"), p).status_code == 404, (p, stat(basic("admin"), p).text)
    # alice restores it all; the private folder stays private
    r = restore(alice, "/team/proj", "/team/proj-back")
    assert r.status_code == 200, r.text
    assert download(alice, "/team/proj-back/hr/salaries.txt").content == b"SALARIES: secret"
    assert download(bob, "/team/proj-back/hr/salaries.txt").status_code == 403
    assert stat(alice, "/team/proj-back/hr").json()["mode"] == "0700"


def restored_files_keep_their_owner_in_place():
    alice, bob = sign_in("alice"), sign_in("bob")
    mkdir(alice, "/team/shared")
    dav_put("alice", "/team/shared/note.txt", b"alice's note")
    before = stat(alice, "/team/shared/note.txt").json()
    assert before["owner"] == "alice", before
    delete(alice, "/team/shared")
    # bob remakes the folder; restoring in place goes file by file: alice's file is still hers
    mkdir(bob, "/team/shared")
    r = restore(bob, "/team/shared")
    assert r.status_code == 200, r.text
    e = stat(alice, "/team/shared/note.txt").json()
    assert (e["owner"], e["group"], e["mode"]) == (before["owner"], before["group"], before["mode"]), e
    # restored elsewhere by bob, it is a new file of his (as a copy he may make would be)
    dav_put("alice", "/team/memo.txt", b"alice's memo")
    delete(alice, "/team/memo.txt")
    r = restore(bob, "/team/memo.txt", "/bobbox/memo.txt")
    assert r.status_code == 200, r.text
    assert stat(bob, "/bobbox/memo.txt").json()["owner"] == "bob"


def totp(secret, at=None):
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    step = int((at or time.time()) // 30)
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    n = (struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{n:06d}"


def turn_on_2fa(user):
    s = sign_in(user)
    r = s.post(API + "/2fa")
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    r = s.put(API + "/2fa", auth=(user, PW[user]), json={"secret": secret, "code": totp(secret)})
    assert r.status_code == 200, r.text
    return r.json()["recovery_codes"]


def refused_password_only(r):
    assert r.status_code == 401, (r.request.method, r.request.url, r.status_code, r.text)
    j = r.json()
    assert j.get("error", j.get("code")) == "second_factor_required", r.text
    assert "www-authenticate" not in r.headers, r.headers


def two_factor_is_not_bypassed_by_basic():
    dav_put("bob", "/team/secret.txt", b"bob's secret")
    bob = basic("bob")
    assert bob.get(API + "/files", params={"path": "/team"}).status_code == 200
    codes = turn_on_2fa("bob")
    # F3: the password alone drives nothing of the user API once two-factor is on
    refused_password_only(bob.get(API + "/files", params={"path": "/team"}))
    refused_password_only(bob.get(API + "/download", params={"path": "/team/secret.txt"}))
    refused_password_only(bob.post(API + "/shares", json={"path": "/team/secret.txt"}))
    refused_password_only(bob.post(API + "/delete", json={"paths": ["/team/secret.txt"]}))
    # a wrong password is still just wrong
    r = requests.get(API + "/files", params={"path": "/team"}, auth=("bob", "nope"), verify=CERT)
    assert r.status_code == 401 and r.json()["error"] == "invalid", r.text
    alice = sign_in("alice")
    assert download(alice, "/team/secret.txt").content == b"bob's secret"
    r = alice.get(API + "/shares")
    assert r.status_code == 200 and "secret.txt" not in r.text, r.text
    # WebDAV keeps the password (docs/web.md: clients that cannot type a code)
    r = requests.get(BASE + "/dav/team/secret.txt", auth=("bob", PW["bob"]), verify=CERT)
    assert r.status_code == 200, r.status_code
    # a session opened with a code works; users without two-factor keep Basic
    s = sign_in("bob", codes[0])
    assert s.get(API + "/files", params={"path": "/team"}).status_code == 200
    assert basic("alice").get(API + "/files", params={"path": "/team"}).status_code == 200

    # an administrator with two-factor: the password alone makes no new administrator
    admin = basic("admin")
    assert admin.get(ADMIN_API + "/users").status_code == 200
    codes = turn_on_2fa("admin")
    new = {"name": "mallory", "password": "mallory-pw-123", "admin": True}
    refused_password_only(admin.post(ADMIN_API + "/users", json=new))
    refused_password_only(admin.get(ADMIN_API + "/users"))
    s = sign_in("admin", codes[0])
    r = s.get(ADMIN_API + "/users")
    assert r.status_code == 200 and "mallory" not in r.text, r.text


def origin_of_another_scheme():
    alice = sign_in("alice")
    host = BASE.split("://", 1)[1]
    assert BASE.startswith("https://")
    # F10: a page of http://HOST:PORT is another origin than https://HOST:PORT
    r = alice.post(API + "/folders", json={"path": "/team/o1"}, headers={"Origin": "http://" + host})
    assert r.status_code == 403 and r.json()["error"] == "forbidden", (r.status_code, r.text)
    assert stat(alice, "/team/o1").status_code == 404
    r = alice.post(API + "/folders", json={"path": "/team/o1"}, headers={"Origin": "https://" + host})
    assert r.status_code == 201, (r.status_code, r.text)
    r = requests.get(ADMIN_API + "/users", headers={"Origin": "http://" + host, "Authorization": "Bearer x"}, verify=CERT)
    assert r.status_code == 403, (r.status_code, r.text)
    r = requests.post(API + "/session", auth=("alice", PW["alice"]), headers={"Origin": "http://" + host}, verify=CERT)
    assert r.status_code == 403, (r.status_code, r.text)


def mkdir_tells_nothing_of_a_private_folder():
    alice, bob = sign_in("alice"), sign_in("bob")
    mkdir(alice, "/team/closed", "0700")
    dav_put("alice", "/team/closed/diary.txt", b"x")
    # F5: the same answer whether the name exists or not, in the app API and WebDAV
    answers = []
    for name in ["diary.txt", "nothere"]:
        r = bob.post(API + "/folders", json={"path": "/team/closed/" + name})
        d = requests.request("MKCOL", BASE + "/dav/team/closed/" + name, auth=("bob", PW["bob"]), verify=CERT)
        answers.append((r.status_code, r.json().get("error"), d.status_code))
    assert answers[0] == answers[1] == (403, "forbidden", 403), answers
    assert stat(alice, "/team/closed/nothere").status_code == 404
    # who may write there still learns it exists
    r = alice.post(API + "/folders", json={"path": "/team/closed/diary.txt"})
    assert r.status_code == 409, (r.status_code, r.text)


def restore_into_a_decoy_folder():
    # alice's private folder (0700) is deleted; bob makes a folder of the same name (his,
    # open); restoring alice's folder where it was must not pour her files into bob's folder
    alice, bob = sign_in("alice"), sign_in("bob")
    mkdir(alice, "/team/pf", "0700")
    dav_put("alice", "/team/pf/salaries.txt", b"salary list")
    assert download(bob, "/team/pf/salaries.txt").status_code == 403
    delete(alice, "/team/pf")
    mkdir(bob, "/team/pf")
    for who in [alice, basic("admin")]:
        r = restore(who, "/team/pf")
        assert r.status_code == 409, (r.status_code, r.text)
    assert stat(basic("admin"), "/team/pf/salaries.txt").status_code == 404
    # elsewhere it comes back whole and closed
    r = restore(alice, "/team/pf", "/team/pf-back")
    assert r.status_code == 200, r.text
    assert download(alice, "/team/pf-back/salaries.txt").content == b"salary list"
    assert download(bob, "/team/pf-back/salaries.txt").status_code == 403
    # a folder that kept no one out (0777) may be restored into a remade one
    mkdir(alice, "/team/open", "0777")
    dav_put("alice", "/team/open/notes.txt", b"open notes")
    delete(alice, "/team/open")
    mkdir(bob, "/team/open")
    r = restore(alice, "/team/open")
    assert r.status_code == 200, r.text
    assert download(bob, "/team/open/notes.txt").content == b"open notes"


def restore_stopped_by_the_quota():
    # F9: a deleted folder restored file by file (by another user, or into another bucket)
    # is charged whole to the target's group, its kept bytes staying charged; stopped by
    # team's 2 MB quota after one file, it left that file behind and answered an error
    alice, bob = sign_in("alice"), sign_in("bob")
    mkdir(alice, "/team/big")
    for n in "abc":
        dav_put("alice", f"/team/big/{n}.bin", n.encode() * 450_000)
    delete(alice, "/team/big")  # 1.35 MB kept: restored file by file, 2.7 MB would be used

    def usage():
        g = basic("admin").get(ADMIN_API + "/groups/team").json()
        return [g[k] for k in ["used_bytes", "used_objects", "version_bytes", "version_objects"]]

    before = usage()
    assert before == [0, 0, 1_350_000, 3], before
    r = restore(bob, "/team/big", "/team/big-bob")
    assert r.status_code == 507 and r.json()["error"] == "quota", (r.status_code, r.text)
    r = basic("admin").post(API + "/restore", json={"path": "/team/big", "to": "/bobbox/big"})
    assert r.status_code == 507 and r.json()["error"] == "quota", (r.status_code, r.text)
    # the admin API (and `kura restore`) likewise
    r = basic("admin").post(ADMIN_API + "/restore", json={"path": "/team/big", "to": "/bobbox/big"})
    assert r.status_code == 507 and r.json()["code"] == "quota", (r.status_code, r.text)
    for p in ["/team/big-bob", "/team/big-bob/a.bin", "/bobbox/big", "/team/big"]:
        assert stat(basic("admin"), p).status_code == 404, (p, stat(basic("admin"), p).text)
    assert usage() == before, usage()
    # the delete is still whole: restored where it was, in one step, it costs nothing more
    assert "/team/big" in trash(alice, "team")
    r = restore(alice, "/team/big")
    assert r.status_code == 200 and r.json()["files"] == 3, (r.status_code, r.text)
    assert usage() == [1_350_000, 3, 0, 0], usage()
    for n in "abc":
        assert download(alice, f"/team/big/{n}.bin").content == n.encode() * 450_000, n


def one_private_file_is_not_restored_into_a_decoy_folder():
    # the decoy of restore_into_a_decoy_folder, for one file of the deleted folder restored
    # alone where it was: bob's folder at the path of alice's 0700 one (or of a folder above
    # it) would receive her file
    alice, bob = sign_in("alice"), sign_in("bob")
    mkdir(alice, "/team/pf", "0700")
    mkdir(alice, "/team/pf/sub")
    dav_put("alice", "/team/pf/salaries.txt", b"salary list")
    dav_put("alice", "/team/pf/sub/bonus.txt", b"bonus list")
    delete(alice, "/team/pf")
    mkdir(bob, "/team/pf")
    mkdir(bob, "/team/pf/sub")
    for who in [alice, basic("admin")]:
        for f in ["/team/pf/salaries.txt", "/team/pf/sub/bonus.txt"]:
            r = restore(who, f)
            assert r.status_code == 409, (f, r.status_code, r.text)
            assert stat(basic("admin"), f).status_code == 404, f
    # elsewhere it comes back
    r = restore(alice, "/team/pf/salaries.txt", "/team/salaries.txt")
    assert r.status_code == 200, r.text
    assert download(alice, "/team/salaries.txt").content == b"salary list"
    # a file of a folder that kept no one out (0777) may be restored into a remade one
    mkdir(alice, "/team/open", "0777")
    dav_put("alice", "/team/open/notes.txt", b"open notes")
    delete(alice, "/team/open")
    mkdir(bob, "/team/open")
    r = restore(alice, "/team/open/notes.txt")
    assert r.status_code == 200, r.text
    assert download(bob, "/team/open/notes.txt").content == b"open notes"


def a_file_deleted_before_its_private_folder_is_not_restored_into_a_decoy():
    # the file is deleted on its own, then its 0700 folder in another delete (and a
    # subfolder deleted before its private parent); bob makes folders at those paths: the
    # file's own delete has no folder marker, but its row recorded the folders above it
    alice, bob = sign_in("alice"), sign_in("bob")
    mkdir(alice, "/team/p3", "0700")
    mkdir(alice, "/team/p3/d")
    dav_put("alice", "/team/p3/s.txt", b"SECRET-P3")
    dav_put("alice", "/team/p3/d/t.txt", b"SECRET-D")
    assert download(bob, "/team/p3/s.txt").status_code == 403
    delete(alice, "/team/p3/s.txt")
    delete(alice, "/team/p3/d")
    delete(alice, "/team/p3")
    mkdir(bob, "/team/p3")
    for who in [alice, basic("admin")]:
        for path in ["/team/p3/s.txt", "/team/p3/d"]:
            r = restore(who, path)
            assert r.status_code == 409, (path, r.status_code, r.text)
    for path in ["/team/p3/s.txt", "/team/p3/d", "/team/p3/d/t.txt"]:
        assert stat(basic("admin"), path).status_code == 404, path
    assert download(bob, "/team/p3/s.txt").status_code == 404
    # elsewhere it comes back
    r = restore(alice, "/team/p3/s.txt", "/team/s-back.txt")
    assert r.status_code == 200, r.text
    assert download(alice, "/team/s-back.txt").content == b"SECRET-P3"


CHECKS = {f.__name__: f for f in [
    a_file_deleted_before_its_private_folder_is_not_restored_into_a_decoy,
    restore_stopped_by_the_quota,
    one_private_file_is_not_restored_into_a_decoy_folder,
    restore_into_a_decoy_folder,
    restore_of_a_private_folder,
    restore_of_a_readable_folder_holding_a_private_one,
    restored_files_keep_their_owner_in_place,
    two_factor_is_not_bypassed_by_basic,
    origin_of_another_scheme,
    mkdir_tells_nothing_of_a_private_folder,
]}

if __name__ == "__main__":
    CHECKS[sys.argv[3]]()
    print("all checks passed")
