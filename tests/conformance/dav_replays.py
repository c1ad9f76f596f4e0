#!/usr/bin/env python3
"""Replays of what macOS Finder (webdavfs) and Windows Explorer's Mini-Redirector and Office send
to a WebDAV server, step by step, over one keep-alive connection each as those clients use.

Every step states the status the client needs; the script exits non-zero at the first step that
answers otherwise. Environment: KURA_URL (https://127.0.0.1:port), KURA_USER, KURA_PASSWORD,
KURA_CA (the server certificate), KURA_REPLAY (finder | finder15 | explorer | timeouts | hide | refuse),
KURA_LOCK_CAP (seconds granted to an Infinite lock).
"""

import base64
import http.client
import os
import ssl
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

URL = urllib.parse.urlsplit(os.environ["KURA_URL"])
AUTH = "Basic " + base64.b64encode(
    f"{os.environ['KURA_USER']}:{os.environ['KURA_PASSWORD']}".encode()
).decode()
DAV = "{DAV:}"
MS = "urn:schemas-microsoft-com:"
STEPS = []


class Client:
    """One persistent connection, like the real clients."""

    def __init__(self, agent):
        self.agent = agent
        self.conn = None

    def connect(self):
        if URL.scheme == "https":
            ctx = ssl.create_default_context(cafile=os.environ["KURA_CA"])
            self.conn = http.client.HTTPSConnection(URL.hostname, URL.port, context=ctx, timeout=30)
        else:
            self.conn = http.client.HTTPConnection(URL.hostname, URL.port, timeout=30)

    def send(self, method, path, body=None, headers=None, auth=True, chunked=False):
        h = {"User-Agent": self.agent}
        if auth:
            h["Authorization"] = AUTH
        h.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.connect()
            try:
                if chunked:
                    h["Transfer-Encoding"] = "chunked"
                    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
                    self.conn.request(method, path, body=iter(chunks), headers=h, encode_chunked=True)
                else:
                    self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, r, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a server may close an idle keep-alive connection; clients reconnect once
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def step(self, expect, method, path, body=None, headers=None, auth=True, chunked=False, what=""):
        status, r, data = self.send(method, path, body, headers, auth, chunked)
        line = f"{method} {urllib.parse.unquote(path)}"
        if what:
            line += f" ({what})"
        STEPS.append(f"{line} -> {status}")
        expected = expect if isinstance(expect, tuple) else (expect,)
        if status not in expected:
            fail(f"{line}: expected {expect}, got {status}: {data[:600]!r}")
        return r, data


def fail(msg):
    print("\n".join(STEPS))
    print(f"FAILED: {msg}")
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def q(path):
    return urllib.parse.quote(path)


def props(data):
    """Multistatus as {href: {prop tag: (status, element)}}."""
    out = {}
    for resp in ET.fromstring(data).iter(DAV + "response"):
        href = urllib.parse.unquote(resp.find(DAV + "href").text)
        found = out.setdefault(href, {})
        for ps in resp.iter(DAV + "propstat"):
            code = int(ps.find(DAV + "status").text.split()[1])
            for p in ps.find(DAV + "prop"):
                found[p.tag] = (code, p)
    return out


def names(data, folder):
    return sorted(h[len(folder) :].strip("/") for h in props(data) if h.rstrip("/") != folder.rstrip("/"))


def lock_body(owner):
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
        f"<D:locktype><D:write/></D:locktype><D:owner>{owner}</D:owner></D:lockinfo>"
    )


def lock(c, path, owner, timeout="Second-600", expect=200, what="LOCK before write"):
    r, data = c.step(
        expect,
        "LOCK",
        q(path),
        lock_body(owner),
        {"Depth": "0", "Timeout": timeout, "Content-Type": "text/xml; charset=utf-8"},
        what=what,
    )
    token = (r.getheader("Lock-Token") or "").strip("<>")
    check(token.startswith("urn:uuid:"), f"LOCK {path}: Lock-Token {token!r}")
    granted = ET.fromstring(data).find(f".//{DAV}timeout").text
    return token, granted


def propfind(c, path, depth, body, what=""):
    _, data = c.step(
        207,
        "PROPFIND",
        q(path),
        body,
        {"Depth": depth, "Content-Type": "text/xml; charset=utf-8"},
        what=what,
    )
    return data


def get(c, path):
    _, data = c.step(200, "GET", q(path))
    return data


FINDER_PROPS = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>'
    "<D:getlastmodified/><D:getcontentlength/><D:creationdate/><D:resourcetype/>"
    "</D:prop></D:propfind>"
)
FINDER_QUOTA = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>'
    "<D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"
)
APPLE_OWNER = "<D:href>http://www.apple.com/webdav_fs/</D:href>"
# an AppleDouble header (magic 0x00051607, version 2) padded as Finder writes it
APPLEDOUBLE = bytes.fromhex("0005160700020000") + b"Mac OS X        " + bytes(4096 - 24)
DS_STORE = b"\x00\x00\x00\x01Bud1" + bytes(6148 - 8)


def finder_write(c, path, data, exists):
    """What webdavfs does to write a file: create it empty, LOCK, chunked PUT, UNLOCK."""
    c.step(404 if not exists else 207, "PROPFIND", q(path), FINDER_PROPS, {"Depth": "0"}, what="does it exist")
    if not exists:
        c.step(201, "PUT", q(path), b"", {"Content-Type": "application/octet-stream"}, what="create empty")
    token, _ = lock(c, path, APPLE_OWNER)
    c.step(
        (200, 201, 204),
        "PUT",
        q(path),
        data,
        {"If": f"(<{token}>)", "X-Expected-Entity-Length": str(len(data))},
        chunked=True,
        what="chunked, X-Expected-Entity-Length",
    )
    found = props(propfind(c, path, "0", FINDER_PROPS))
    size = next(iter(found.values()))[DAV + "getcontentlength"][1].text
    check(size == str(len(data)), f"{path}: size {size} after write of {len(data)}")
    return token


def finder(base):
    c = Client("WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (arm64)")
    # mount: an unauthenticated OPTIONS must advertise class 2, or Finder mounts read-only
    r, _ = c.step(200, "OPTIONS", "/dav/", auth=False, what="mount probe")
    check("2" in (r.getheader("DAV") or ""), "DAV header lacks class 2: Finder would mount read-only")
    c.step(401, "PROPFIND", "/dav/", FINDER_PROPS, {"Depth": "0"}, auth=False, what="before credentials")
    found = props(propfind(c, "/dav/", "0", FINDER_PROPS, what="volume root"))
    root = found.get("/dav/") or next(iter(found.values()))
    check(root[DAV + "resourcetype"][1].find(DAV + "collection") is not None, "root is not a collection")
    found = props(propfind(c, base, "0", FINDER_QUOTA, what="statfs: quota"))
    quota = next(iter(found.values()))
    for p in ("quota-used-bytes", "quota-available-bytes"):
        code, el = quota[DAV + p]
        check(code == 200 and el.text.isdigit(), f"{p}: {code} {el.text!r}")
    propfind(c, base, "1", FINDER_PROPS, what="open the folder")

    # copy notes.txt from the Mac: the file, its AppleDouble companion, the folder's .DS_Store
    notes = f"{base}notes.txt"
    v1 = b"first draft\n" * 700
    token = finder_write(c, notes, v1, exists=False)
    double = finder_write(c, f"{base}._notes.txt", APPLEDOUBLE, exists=False)
    check(lock_token(c, f"{base}._notes.txt") == double, "lockdiscovery does not show the lock")
    c.step(204, "UNLOCK", q(f"{base}._notes.txt"), headers={"Lock-Token": f"<{double}>"})
    c.step(204, "UNLOCK", q(notes), headers={"Lock-Token": f"<{token}>"})
    c.step(201, "PUT", q(f"{base}.DS_Store"), DS_STORE, what="folder view settings")

    # TextEdit's safe save: a temporary file is written, then MOVEd over the locked original
    token, granted = lock(c, notes, APPLE_OWNER, what="open for editing")
    check(granted == "Second-600", f"granted timeout {granted}")
    c.step(200, "LOCK", q(notes), None, {"If": f"(<{token}>)", "Timeout": "Second-600"}, what="refresh")
    temp = f"{base}notes.txt.sb-5a1b2c3d-QwErTy"
    v2 = b"second draft\n" * 900
    tmp_token = finder_write(c, temp, v2, exists=False)
    c.step(204, "UNLOCK", q(temp), headers={"Lock-Token": f"<{tmp_token}>"})
    dest = f"{URL.scheme}://{URL.netloc}{q(notes)}"
    other = Client("WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (x86_64)")
    other.step(423, "PUT", q(notes), b"someone else", what="another Mac without the token")
    c.step(423, "MOVE", q(temp), headers={"Destination": dest, "Overwrite": "T"}, what="safe save without the token")
    c.step(
        204,
        "MOVE",
        q(temp),
        headers={"Destination": dest, "Overwrite": "T", "If": f"<{dest}> (<{token}>)"},
        what="safe save: temp over the locked original",
    )
    c.step(204, "UNLOCK", q(notes), headers={"Lock-Token": f"<{token}>"}, what="the lock survived the safe save")
    check(get(c, notes) == v2, "notes.txt does not hold the saved version")
    c.step(404, "GET", q(temp), what="the temporary file is gone")

    # a new folder, renamed as Finder does
    c.step(201, "MKCOL", q(f"{base}untitled folder"))
    c.step(
        201,
        "MOVE",
        q(f"{base}untitled folder/"),
        headers={"Destination": f"{URL.scheme}://{URL.netloc}{q(base + 'Photos/')}", "Overwrite": "F"},
        what="rename the folder",
    )
    listed = names(propfind(c, base, "1", FINDER_PROPS), base)
    check(listed == [".DS_Store", "._notes.txt", "Photos", "notes.txt"], f"listing {listed}")
    check(get(c, f"{base}._notes.txt") == APPLEDOUBLE, "AppleDouble bytes differ")


# webdavfs's statfs asks the RFC 4331 properties and Apple's older quota/quotaused
FINDER_STATFS = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>'
    "<D:quota-available-bytes/><D:quota-used-bytes/><D:quota/><D:quotaused/>"
    "</D:prop></D:propfind>"
)
QUOTA_TAGS = [DAV + p for p in ("quota-available-bytes", "quota-used-bytes", "quota", "quotaused")]


def finder15(base):
    """The mount sequence of macOS 15.4 and later (Darwin 24.4+). Its webdavfs stalls about
    90 s after the statfs PROPFIND when the answer carries quota values, so none may be 200;
    the older Finder of the same run still gets them."""
    c = Client("WebDAVFS/3.0.0 (03008000) Darwin/24.4.0 (arm64)")
    r, _ = c.step(200, "OPTIONS", "/dav/", auth=False, what="mount probe")
    check("2" in (r.getheader("DAV") or ""), "DAV header lacks class 2: Finder would mount read-only")
    c.step(401, "PROPFIND", "/dav/", FINDER_PROPS, {"Depth": "0"}, auth=False, what="before credentials")
    propfind(c, "/dav/", "0", FINDER_PROPS, what="volume root")
    for path in ("/dav/", base):
        found = next(iter(props(propfind(c, path, "0", FINDER_STATFS, what="statfs")).values()))
        for tag in QUOTA_TAGS:
            code = found.get(tag, (None,))[0]
            check(code == 404, f"{path}: {tag} answered {code}; 404 keeps macOS 15.4+ from stalling")
    _, data = c.step(207, "PROPFIND", q(base), None, {"Depth": "1"}, what="allprop listing")
    for href, found in props(data).items():
        for tag in QUOTA_TAGS:
            check(found.get(tag, (404,))[0] != 200, f"allprop of {href} carries {tag}")
    listed = names(propfind(c, base, "1", FINDER_PROPS, what="open the folder"), base)
    check(listed == [], f"listing {listed}")
    # the same server still tells free space to the Finder of macOS 15.3, and to rclone
    for agent in ("WebDAVFS/3.0.0 (03008000) Darwin/24.3.0 (arm64)", "rclone/v1.60.1"):
        old = Client(agent)
        found = next(iter(props(propfind(old, base, "0", FINDER_QUOTA, what=agent)).values()))
        for p in ("quota-used-bytes", "quota-available-bytes"):
            code, el = found[DAV + p]
            check(code == 200 and el.text.isdigit(), f"{agent}: {p}: {code} {el.text!r}")


def lock_token(c, path):
    body = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>'
    found = props(propfind(c, path, "0", body))
    el = next(iter(found.values()))[DAV + "lockdiscovery"][1]
    return el.find(f".//{DAV}locktoken/{DAV}href").text


WIN32_PROPS = (
    '<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:prop>'
    "<D:creationdate/><D:getcontentlength/><D:getlastmodified/><D:resourcetype/>"
    f'<Z:Win32FileAttributes xmlns:Z="{MS}"/><Z:Win32CreationTime xmlns:Z="{MS}"/>'
    f'<Z:Win32LastAccessTime xmlns:Z="{MS}"/><Z:Win32LastModifiedTime xmlns:Z="{MS}"/>'
    "</D:prop></D:propfind>"
)


STAMP = "Tue, 03 Mar 2020 10:15:00 GMT"


def win32_patch(attrs="00000020"):
    stamp = STAMP
    return (
        '<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" '
        f'xmlns:Z="{MS}"><D:set><D:prop>'
        f"<Z:Win32CreationTime>{stamp}</Z:Win32CreationTime>"
        f"<Z:Win32LastAccessTime>{stamp}</Z:Win32LastAccessTime>"
        f"<Z:Win32LastModifiedTime>{stamp}</Z:Win32LastModifiedTime>"
        f"<Z:Win32FileAttributes>{attrs}</Z:Win32FileAttributes>"
        "</D:prop></D:set></D:propertyupdate>"
    )


def proppatch(c, path, body, headers=None, what="Win32 times and attributes"):
    h = {"Content-Type": "text/xml; charset=utf-8"}
    h.update(headers or {})
    _, data = c.step(207, "PROPPATCH", q(path), body, h, what=what)
    for tag, (code, _) in next(iter(props(data).values())).items():
        check(code == 200, f"PROPPATCH {path}: {tag} answered {code}")


def explorer(base):
    c = Client("Microsoft-WebDAV-MiniRedir/10.0.19045")
    # net use / Map network drive: unauthenticated probes of the server root and the share
    for path in ("/", "/dav"):
        r, _ = c.step(200, "OPTIONS", path, auth=False, what="unauthenticated probe")
        check("2" in (r.getheader("DAV") or ""), f"OPTIONS {path}: no DAV class 2")
        check(r.getheader("MS-Author-Via") == "DAV", f"OPTIONS {path}: no MS-Author-Via")
    c.step(401, "PROPFIND", "/dav", None, {"Depth": "0"}, auth=False, what="before credentials")
    propfind(c, "/dav", "0", None, what="empty body: allprop")
    propfind(c, base.rstrip("/"), "1", WIN32_PROPS, what="Win32 properties")

    # New > Text Document, then rename it
    new = f"{base}New Text Document.txt"
    c.step(404, "PROPFIND", q(new), WIN32_PROPS, {"Depth": "0"})
    c.step(201, "PUT", q(new), b"", {"Content-Length": "0"}, what="create empty")
    proppatch(c, new, win32_patch())
    plan = f"{base}plan.txt"
    c.step(
        201,
        "MOVE",
        q(new),
        headers={"Destination": f"{URL.scheme}://{URL.netloc}{q(plan)}", "Overwrite": "F"},
        what="rename",
    )
    found = next(iter(props(propfind(c, plan, "0", WIN32_PROPS)).values()))
    created = found["{%s}Win32CreationTime" % MS][1].text
    check(created == STAMP, f"Win32CreationTime after the rename: {created!r}")

    # Notepad saves: LOCK, PUT, PROPPATCH with the token, UNLOCK
    token, _ = lock(c, plan, "<D:href>DESKTOP-KURA\\ann</D:href>", timeout="Second-3600")
    body = "Plan for the week\r\n".encode() * 300
    c.step(204, "PUT", q(plan), body, {"If": f"(<{token}>)"}, what="save with the token")
    proppatch(c, plan, win32_patch("00000021"), {"If": f"(<{token}>)"}, what="read-only attribute, with the token")
    c.step(204, "UNLOCK", q(plan), headers={"Lock-Token": f"<{token}>"})
    found = next(iter(props(propfind(c, plan, "0", WIN32_PROPS)).values()))
    code, el = found["{%s}Win32FileAttributes" % MS]
    check(code == 200 and el.text == "00000021", f"Win32FileAttributes {code} {el.text!r}")
    modified = found["{%s}Win32LastModifiedTime" % MS][1].text
    check(modified == STAMP, f"Win32LastModifiedTime {modified!r}")
    # an empty-body PROPFIND (allprop) from Explorer lists each property once
    _, data = c.step(207, "PROPFIND", q(plan), None, {"Depth": "0"}, what="allprop")
    tags = [p.tag for p in ET.fromstring(data).iter() if p.tag.startswith("{%s}" % MS)]
    check(len(tags) == len(set(tags)) == 4, f"Win32 properties in allprop: {tags}")
    check(get(c, plan) == body, "plan.txt bytes differ")

    # Word's safe save: owner file, temp file, MOVE over the locked document, UNLOCK, cleanup
    doc = f"{base}report.docx"
    c.step(201, "PUT", q(doc), b"PK\x03\x04 version 1", what="first save")
    word = Client("Microsoft Office Word 2014")
    token, granted = lock(word, doc, "<D:href>ann</D:href>", timeout="Second-3600", what="Word opens the document")
    check(granted == "Second-3600", f"granted timeout {granted}")
    owner_file = f"{base}~$report.docx"
    word.step(201, "PUT", q(owner_file), b"\x03ann" + bytes(158), what="owner file")
    c.step(423, "PUT", q(doc), b"PK\x03\x04 from Explorer", what="someone else while Word holds it")
    temp = f"{base}~WRD0001.tmp"
    v2 = b"PK\x03\x04 version 2" * 4000
    word.step(201, "PUT", q(temp), v2, what="new version to a temporary file")
    dest = f"{URL.scheme}://{URL.netloc}{q(doc)}"
    word.step(
        204,
        "MOVE",
        q(temp),
        headers={"Destination": dest, "Overwrite": "T", "If": f"<{dest}> (<{token}>)"},
        what="Overwrite: T over the locked document",
    )
    word.step(204, "UNLOCK", q(doc), headers={"Lock-Token": f"<{token}>"})
    word.step(204, "DELETE", q(owner_file), what="owner file removed")
    check(get(c, doc) == v2, "report.docx does not hold version 2")

    listed = names(propfind(c, base, "1", WIN32_PROPS), base)
    check(listed == ["plan.txt", "report.docx"], f"listing {listed}")


def timeouts(base):
    """Lock lifetimes: the configured cap, lock-null resources, DELETE by the holder."""
    c = Client("litmus-like")
    path = f"{base}held.txt"
    c.step(201, "PUT", q(path), b"x")
    token, granted = lock(c, path, "ann", timeout="Infinite", what="Infinite is capped")
    check(granted == f"Second-{os.environ['KURA_LOCK_CAP']}", f"Infinite granted as {granted}")
    _, data = c.step(200, "LOCK", q(path), None, {"If": f"(<{token}>)", "Timeout": "Infinite"}, what="refresh")
    granted = ET.fromstring(data).find(f".//{DAV}timeout").text
    check(granted == f"Second-{os.environ['KURA_LOCK_CAP']}", f"refresh granted {granted}")
    c.step(423, "DELETE", q(path), what="without the token")
    c.step(204, "DELETE", q(path), headers={"If": f"(<{token}>)"}, what="the holder deletes: lock released")
    c.step(201, "PUT", q(path), b"y", what="no lock is left on the name")
    # LOCK on an unmapped URL creates an empty locked resource (davfs2 relies on it)
    fresh = f"{base}lock-null.txt"
    token, _ = lock(c, fresh, "davfs2", expect=201, what="unmapped URL")
    check(get(c, fresh) == b"", "lock-null resource is not empty")
    c.step(423, "PUT", q(fresh), b"z", what="without the token")
    c.step(204, "PUT", q(fresh), b"z", {"If": f"(<{token}>)"})
    # the holder MOVEs a locked file away: the lock stays behind (RFC 4918 7.5) and is gone
    moved = f"{base}moved.txt"
    c.step(
        201,
        "MOVE",
        q(fresh),
        headers={"Destination": f"{URL.scheme}://{URL.netloc}{q(moved)}", "If": f"(<{token}>)"},
        what="the holder moves it",
    )
    c.step(204, "PUT", q(moved), b"w", what="the moved file is not locked")
    c.step(201, "PUT", q(fresh), b"v", what="nor is the old name")
    # an expired lock is ignored (and purged)
    token, granted = lock(c, moved, "ann", timeout="Second-1", what="one second")
    check(granted == "Second-1", f"granted {granted}")
    c.step(423, "PUT", q(moved), b"u", what="while it lasts")
    time.sleep(1.5)
    c.step(204, "PUT", q(moved), b"u", what="after it expired")
    c.step(409, "UNLOCK", q(moved), headers={"Lock-Token": f"<{token}>"}, what="the expired token is gone")


def hide(base):
    c = Client("WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (arm64)")
    for name, data in (("._a.txt", APPLEDOUBLE), (".DS_Store", DS_STORE), ("a.txt", b"a")):
        c.step(201, "PUT", q(base + name), data)
    listed = names(propfind(c, base, "1", FINDER_PROPS), base)
    check(listed == ["a.txt"], f"hidden files listed: {listed}")
    check(get(c, base + "._a.txt") == APPLEDOUBLE, "a hidden file cannot be read back by name")


def refuse(base):
    c = Client("WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (arm64)")
    c.step(403, "PUT", q(base + "._a.txt"), APPLEDOUBLE, what="AppleDouble refused")
    c.step(403, "PUT", q(base + ".DS_Store"), DS_STORE, what=".DS_Store refused")
    c.step(403, "MKCOL", q(base + "._dir"))
    c.step(201, "PUT", q(base + "a.txt"), b"a")
    c.step(
        403,
        "MOVE",
        q(base + "a.txt"),
        headers={"Destination": f"{URL.scheme}://{URL.netloc}{q(base + '.DS_Store')}"},
        what="nor by renaming",
    )
    c.step(403, "LOCK", q(base + "._b.txt"), lock_body("x"), {"Depth": "0"}, what="nor by locking")
    listed = names(propfind(c, base, "1", FINDER_PROPS), base)
    check(listed == ["a.txt"], f"listing {listed}")


def main():
    replay = os.environ["KURA_REPLAY"]
    base = os.environ.get("KURA_BASE", "/dav/docs/")
    {"finder": finder, "finder15": finder15, "explorer": explorer, "timeouts": timeouts, "hide": hide, "refuse": refuse}[replay](base)
    print(f"{replay}: {len(STEPS)} steps as expected")
    print("\n".join("  " + s for s in STEPS))


if __name__ == "__main__":
    main()
