#!/usr/bin/env python3
"""Crash consistency (issue 25): many WebDAV clients overwrite the same few names while the
server is killed, and every request is written down; `--verify` checks the server after its
restart against that record.

Traffic (`--port P --seconds S --seed X --log FILE --writers N`): each writer loops over
  - PUT of a fresh body (1 KB to 3 MB, unique bytes) to one of the shared names w0..w5,
  - PUT to a private name, then MOVE onto one of m0..m2 (Overwrite: T), as safe-save does,
  - COPY of a w name onto one of c0..c2 (Overwrite: T),
and appends one JSON line per request to FILE: what was sent, when, and the answer (None when
the connection broke: in flight at the kill). Writers stop when the server is gone.

Verify (`--verify --port P --log FILE`): for every name, the GET body has the announced length,
its MD5 is the ETag, and it is one body that was sent; for w and m names, it is an acknowledged
or in-flight write (never a refused one), and no acknowledged write that started after it was
acknowledged exists (an acknowledged write is never replaced by an older or unacknowledged one).
"""
import argparse
import base64
import hashlib
import http.client
import json
import random
import sys
import threading
import time

AUTH = "Basic " + base64.b64encode(b"admin:conformance-admin-pw").decode()
BUCKET = "/dav/crash"


def conn(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def body_for(tag, size):
    head = (tag + "\n").encode()
    return head + random.Random(tag).randbytes(max(0, size - len(head)))


def request(port, method, path, body=None, headers=None):
    """Returns the status, or None when the connection failed (server gone or killed)."""
    h = {"Authorization": AUTH}
    h.update(headers or {})
    try:
        c = conn(port)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except (OSError, http.client.HTTPException):
        return None


def traffic(args):
    out = open(args.log, "a", buffering=1)
    lock = threading.Lock()
    deadline = time.time() + args.seconds

    def note(rec):
        with lock:
            out.write(json.dumps(rec) + "\n")

    def writer(wid):
        rng = random.Random(f"{args.seed}-{wid}")
        n = 0
        failures = 0
        while time.time() < deadline and failures < 3:
            n += 1
            tag = f"r{args.round}-w{wid}-{n}"
            size = rng.choice([1000, 70_000, 400_000, 1_500_000, 3_000_000])
            kind = rng.random()
            if kind < 0.6:
                name = f"w{rng.randrange(6)}"
                body = body_for(tag, size)
                rec = {"op": "put", "name": name, "sha": hashlib.sha256(body).hexdigest(),
                       "start": time.time()}
                rec["status"] = request(args.port, "PUT", f"{BUCKET}/{name}", body)
            elif kind < 0.85:
                name = f"m{rng.randrange(3)}"
                tmp = f"t-{tag}"
                body = body_for(tag, size)
                sha = hashlib.sha256(body).hexdigest()
                note({"op": "tmp", "name": tmp, "sha": sha, "start": time.time(),
                      "status": None})
                st = request(args.port, "PUT", f"{BUCKET}/{tmp}", body)
                if st is None or st >= 300:
                    failures += st is None
                    continue
                rec = {"op": "move", "name": name, "sha": sha, "start": time.time()}
                rec["status"] = request(args.port, "MOVE", f"{BUCKET}/{tmp}", headers={
                    "Destination": f"http://127.0.0.1:{args.port}{BUCKET}/{name}",
                    "Overwrite": "T"})
            else:
                name = f"c{rng.randrange(3)}"
                src = f"w{rng.randrange(6)}"
                rec = {"op": "copy", "name": name, "sha": None, "start": time.time()}
                rec["status"] = request(args.port, "COPY", f"{BUCKET}/{src}", headers={
                    "Destination": f"http://127.0.0.1:{args.port}{BUCKET}/{name}",
                    "Overwrite": "T"})
            rec["end"] = time.time()
            note(rec)
            failures = failures + 1 if rec["status"] is None else 0

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(args.writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def verify(args):
    recs = [json.loads(line) for line in open(args.log)]
    sent = {r["sha"] for r in recs if r.get("sha")}
    names = sorted({r["name"] for r in recs if r["op"] in ("put", "move", "copy")})
    ok = lambda s: s is not None and 200 <= s < 300
    problems = []
    checked = 0
    for name in names:
        c = conn(args.port)
        try:
            c.request("GET", f"{BUCKET}/{name}", headers={"Authorization": AUTH})
            r = c.getresponse()
        except (OSError, http.client.HTTPException) as e:
            problems.append(f"{name}: GET failed before any answer: {e!r}")
            continue
        mine = [x for x in recs if x["name"] == name and x["op"] in ("put", "move", "copy")]
        acked = [x for x in mine if ok(x["status"])]
        if r.status == 404:
            r.read()
            if acked:
                problems.append(f"{name}: 404 although {len(acked)} writes were acknowledged")
            continue
        if r.status != 200:
            problems.append(f"{name}: GET answered {r.status} {r.read()[:200]!r}")
            continue
        length = int(r.getheader("Content-Length"))
        etag = (r.getheader("ETag") or "").strip('"')
        try:
            body = r.read()
        except http.client.IncompleteRead as e:
            problems.append(f"{name}: body broke after {len(e.partial)} of {length} bytes")
            continue
        checked += 1
        if len(body) != length:
            problems.append(f"{name}: {len(body)} bytes for Content-Length {length}")
            continue
        if hashlib.md5(body).hexdigest() != etag:
            problems.append(f"{name}: ETag {etag} is not the MD5 of the bytes served")
        sha = hashlib.sha256(body).hexdigest()
        if sha not in sent:
            problems.append(f"{name}: bytes ({length}) that match no body ever sent")
            continue
        if name[0] == "c":
            continue
        versions = [x for x in mine if x["sha"] == sha]
        if not any(x["status"] is None or ok(x["status"]) for x in versions):
            problems.append(f"{name}: holds a write that was refused: {versions}")
            continue
        done = [x["end"] for x in versions if ok(x["status"])]
        if done and all(x["status"] is not None for x in versions):
            newer = [x for x in acked if x["start"] > min(done)]
            if newer:
                problems.append(
                    f"{name}: holds an acknowledged write, but {len(newer)} acknowledged "
                    f"writes started after it was acknowledged")
    print(json.dumps({"names": len(names), "checked": checked,
                      "acked": sum(ok(r["status"]) for r in recs),
                      "in_flight": sum(r["status"] is None for r in recs if r["op"] != "tmp"),
                      "problems": problems}))
    return 1 if problems else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--seed", default="1")
    p.add_argument("--round", type=int, default=0)
    p.add_argument("--writers", type=int, default=16)
    p.add_argument("--verify", action="store_true")
    args = p.parse_args()
    if args.verify:
        sys.exit(verify(args))
    traffic(args)


if __name__ == "__main__":
    main()
