#!/usr/bin/env python3
"""SQL statements per small request, counted from sqlx's statement log.

    python3 bench/sql_count.py [KURA_BINARY] [--show]

Starts Kura as the bench does, with `RUST_LOG=warn,sqlx::query=debug`, makes the small
bucket, warms the password cache, then sends each request shape five times on one keep-alive
connection and prints the median number of statements the server logged per request (the
statements of background workers left out): small PUT (new file and replacement), GET,
HEAD, PROPFIND Depth 0 over WebDAV; PutObject (new, replacement), GetObject, HeadObject
over S3. `--show` prints the statements of the last request of each shape.

Not in sqlx's statement log, so not counted: a write transaction's BEGIN and COMMIT (one of
each per upload), and on SQLite every read made on the calling thread (`store/inline.rs`:
a path's row, its ancestors, listing pages, settings, the generations check). What is
counted is the round trips to sqlx's connection thread.
"""

import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kura_bench as kb  # noqa: E402

REPS = 5


class CountingKura(kb.Kura):
    def kenv(self):
        e = super().kenv()
        e["RUST_LOG"] = "warn,sqlx::query=debug"
        e["NO_COLOR"] = "1"
        return e


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# statements of background workers (event notifications poll the audit trail every second),
# not of the request being measured
BACKGROUND = (
    "notify_cursor",
    "notify_queue",
    "notify_rules",
    "FROM audit WHERE id >",
    "FROM replications",
    "FROM peers",
    "FROM mailboxes",
)


def statements(logpath):
    out = []
    with open(logpath, errors="replace") as f:
        for line in f:
            line = ANSI.sub("", line)
            if "sqlx::query" in line and "summary=" in line:
                m = re.search(r'db\.statement="(.*?)" rows_', line) or re.search(
                    r'summary="([^"]*)"', line
                )
                text = " ".join(m.group(1).replace("\\n", " ").split())
                if not any(b in text for b in BACKGROUND):
                    out.append(text)
    return out


def measure(k, name, fn, show):
    """Statements of each of REPS requests (the log is read after each one settles)."""
    counts = []
    last = []
    for i in range(REPS):
        time.sleep(0.2)
        before = len(statements(k.logpath))
        fn(i)
        time.sleep(0.3)  # the server logs after it answers
        after = statements(k.logpath)
        counts.append(len(after) - before)
        last = after[before:]
    per = sorted(counts)[len(counts) // 2]
    print(f"{name:28s} {per:3d} statements/request (median; each: {counts})")
    if show:
        for s in last:
            print(f"    {s[:110]}")
    return per


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show = "--show" in sys.argv
    kura = os.path.abspath(args[0] if args else "target/release/kura")
    root = tempfile.mkdtemp(prefix="kura-sqlcount-")
    k = CountingKura(root, (None, None), kura)
    try:
        k.start(False)
        k.prepare_live(0, 1)
        dav = k.target("webdav")
        s3 = k.target("s3")
        k.warm(dav)
        k.warm(s3)
        conn_d = dav.connect()
        conn_s = s3.connect()
        body = kb.small_payload(1, 4096)

        def req(t, conn, method, key, body=None, extra=None, ok=(200, 201, 204, 207)):
            path = t.path(kb.SMALL_BUCKET, key)
            if method == "PUT":
                path, h = kb.put_one(t, kb.SMALL_BUCKET, key, body)
            else:
                h = t.headers(method, path)
            h.update(extra or {})
            st, data = kb.request(conn, method, t.url(path), body, h)
            if st not in ok:
                raise RuntimeError(f"{t.protocol} {method} {path}: HTTP {st} {data[:200]!r}")

        rows = [
            ("webdav PUT (new)", lambda i: req(dav, conn_d, "PUT", f"d{i}", body)),
            ("webdav PUT (replace)", lambda i: req(dav, conn_d, "PUT", f"d{i}", body)),
            ("webdav GET", lambda i: req(dav, conn_d, "GET", f"d{i}")),
            ("webdav HEAD", lambda i: req(dav, conn_d, "HEAD", f"d{i}")),
            (
                "webdav PROPFIND Depth 0",
                lambda i: req(dav, conn_d, "PROPFIND", f"d{i}", kb.PROPFIND_BODY, {"Depth": "0"}),
            ),
            ("s3 PutObject (new)", lambda i: req(s3, conn_s, "PUT", f"s{i}", body)),
            ("s3 PutObject (replace)", lambda i: req(s3, conn_s, "PUT", f"s{i}", body)),
            ("s3 GetObject", lambda i: req(s3, conn_s, "GET", f"s{i}")),
            ("s3 HeadObject", lambda i: req(s3, conn_s, "HEAD", f"s{i}")),
        ]
        for name, fn in rows:
            measure(k, name, fn, show)
    finally:
        k.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
