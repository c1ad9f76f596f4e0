"""A WebDAV MOVE of a folder into an encrypted bucket racing clients that overwrite its files
and read them at the old and the new path (tests/conformance/encryption_move_race.rs).

Each round: a folder pub/rN of FILES files (some of several 64 KiB segments), then WRITERS
clients overwrite random files of it (at the old or the new path), for a random while into
the move, and READERS clients GET random files at both paths until the folder was moved into
sec/. Every GET must answer a
complete body some client wrote, with its MD5 as ETag and its length as Content-Length, or a
clean 404/412/423; every PUT a 201/204, or a 404/409/412/423 (its folder moved away).
Prints one JSON line of counts and the odd answers seen.
"""

import base64
import hashlib
import http.client
import json
import random
import sys
import threading
import time

port, pw = int(sys.argv[1]), sys.argv[2]
rounds, files = int(sys.argv[3]), int(sys.argv[4])
WRITERS, READERS = 3, 4
MOVE_TIMEOUT = 60  # seconds a MOVE of FILES small files may take on a busy machine
AUTH = {"Authorization": "Basic " + base64.b64encode(("admin:" + pw).encode()).decode()}
SEG = 64 * 1024

written = set()  # MD5s of every body a client sent
lock = threading.Lock()
counts = {"gets": 0, "good_gets": 0, "puts": 0, "moves_ok": 0, "bad": 0}
odd = []


def pattern(n, tag):
    line = b"KNOWN-PATTERN-LINE-" + tag.encode() + b"\n"
    return (line * (n // len(line) + 1))[:n]


def body(name, gen, rng):
    # a third small, the rest across one to three segment edges
    n = rng.choice([100, 3000, SEG + 7, 2 * SEG + 5, 3 * SEG - 1])
    b = pattern(n, f"{name}-{gen}")
    with lock:
        written.add(hashlib.md5(b).hexdigest())
    return b


def request(conn, method, path, data=None, headers=None):
    h = dict(AUTH)
    h.update(headers or {})
    conn.request(method, "/dav/" + path, body=data, headers=h)
    r = conn.getresponse()
    return r, r.read()


def connect():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=300)


def note(what):
    with lock:
        counts["bad"] += 1
        if len(odd) < 20:
            odd.append(what)


def writer(k, rnd, stop, steady):
    rng = random.Random(rnd * 100 + k)
    conn = connect()
    gen = 0
    # the writers stop on their own, a while into the move: the move seals again what they
    # wrote plain meanwhile, then commits; steady ones write until the move has answered
    until = time.monotonic() + (1e9 if steady else 0.3 + rng.uniform(0.2, 1.5))
    while not stop.is_set() and time.monotonic() < until:
        gen += 1
        name = f"f{rng.randrange(files):02}"
        path = rng.choice([f"pub/r{rnd}/{name}", f"sec/r{rnd}/{name}"])
        try:
            r, _ = request(conn, "PUT", path, body(name, f"w{k}-{gen}", rng))
        except Exception as e:  # a cut connection is a failure too
            note(f"PUT {path}: {e!r}")
            conn = connect()
            continue
        with lock:
            counts["puts"] += 1
        if r.status not in (201, 204, 404, 409, 412, 423):
            note(f"PUT {path}: {r.status}")


def reader(k, rnd, stop):
    rng = random.Random(rnd * 1000 + k)
    conn = connect()
    while not stop.is_set():
        name = f"f{rng.randrange(files):02}"
        path = rng.choice([f"pub/r{rnd}/{name}", f"sec/r{rnd}/{name}"])
        try:
            r, b = request(conn, "GET", path)
        except Exception as e:
            note(f"GET {path}: {e!r}")
            conn = connect()
            continue
        with lock:
            counts["gets"] += 1
        if r.status in (404, 412, 423):
            continue
        if r.status != 200:
            note(f"GET {path}: {r.status} {b[:200]!r}")
            continue
        etag = (r.getheader("ETag") or "").strip('"')
        md5 = hashlib.md5(b).hexdigest()
        length = int(r.getheader("Content-Length") or -1)
        with lock:
            known = md5 in written
        if md5 != etag or length != len(b) or not known:
            note(f"GET {path}: etag {etag} md5 {md5} length {length}/{len(b)} known {known}")
            continue
        with lock:
            counts["good_gets"] += 1


for rnd in range(rounds):
    conn = connect()
    r, _ = request(conn, "MKCOL", f"pub/r{rnd}")
    assert r.status == 201, r.status
    rng = random.Random(rnd)
    for i in range(files):
        r, _ = request(conn, "PUT", f"pub/r{rnd}/f{i:02}", body(f"f{i:02}", "0", rng))
        assert r.status in (201, 204), r.status
    stop = threading.Event()
    # the last round's writers never pause: the move must answer all the same (a 409 after its
    # tries), not seal what they keep writing for as long as they write
    steady = rnd == rounds - 1
    ts = [threading.Thread(target=writer, args=(k, rnd, stop, steady)) for k in range(WRITERS)]
    ts += [threading.Thread(target=reader, args=(k, rnd, stop)) for k in range(READERS)]
    for t in ts:
        t.start()
    time.sleep(0.3)
    dest = f"http://127.0.0.1:{port}/dav/sec/r{rnd}"
    mover = http.client.HTTPConnection("127.0.0.1", port, timeout=MOVE_TIMEOUT)
    try:
        r, b = request(mover, "MOVE", f"pub/r{rnd}", headers={"Destination": dest})
        if r.status == 201:
            counts["moves_ok"] += 1
        # three tries lost to writers: a clean refusal, 409 (404 before dav-server patch 24,
        # as if the folder were gone)
        elif r.status != 409:
            note(f"MOVE r{rnd}: {r.status} {b[:200]!r}")
    except Exception as e:
        note(f"MOVE r{rnd} (writers {'steady' if steady else 'pausing'}): {e!r}")
    time.sleep(0.5)
    stop.set()
    for t in ts:
        t.join()

print(json.dumps({"counts": counts, "odd": odd}))
