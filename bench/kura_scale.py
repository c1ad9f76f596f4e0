#!/usr/bin/env python3
"""Kura scale benchmark: one bucket of N keys, and what its size costs.

Run it through `scripts/bench.sh --scale [N]`. It starts Kura with an empty data dir, fills one
bucket with N small objects through S3 PUT from several client processes (half of them in one
folder, `big/`, the other half five to a folder under `many/`, so that `many/` holds N/10
folders), and measures:

- the PUT rate and server CPU per PUT by decile of the fill;
- ListObjectsV2 page latency (pages of 1,000) at the start, middle and end of the key space:
  without a delimiter, with `/` inside the big folder, and with `/` over the many folders;
- PROPFIND Depth 1 of the big folder, allprop (as Windows Explorer sends it) and with named
  properties (as rclone sends it): time, server CPU, server RSS peak and after;
- server start-up time with N entries, `kura fsck` and `kura usage` times, database bytes per
  entry.

It writes bench/results/scale-N.{md,json} (N the key count, so a small trial run never
overwrites a recorded one). See docs/performance.md ("Scale").

`--synthetic` (for sizes a fill by PUT cannot reach on this machine: 10,000,000 keys would
take 8-14 hours and 40 GB of 4 KiB blocks) puts the first two keys through S3 as above, then
writes the other rows straight into kura.db with the server stopped, copied from those two
(the same triggers run: search index, generations). No bytes go to disk and no audit rows are
written, so the fill figures are SQLite's insert rate, not PUTs, `kura fsck` is not run, and
the database bytes per entry leave out the audit trail. Report: scale-N-synthetic.{md,json}.
"""

import argparse
import datetime
import http.client
import json
import multiprocessing
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kura_bench import (  # noqa: E402 (same folder)
    ALLPROP_HEADERS,
    PROPFIND_BODY,
    Kura,
    cpu_seconds,
    log,
    peak_rss_mib,
    request,
    reset_peak_rss,
    rss_mib,
    sigv4,
    wl_list_dav,
)

BUCKET = "scale"
PER_FOLDER = 5  # keys per folder under many/
BODY = b"kura scale bench\n"


# ---------------------------------------------------------------------------------------------
# The key space: fill order and sorted positions


def fill_key(i):
    """The i-th key of the fill: even i into big/, odd i five to a folder under many/, so that
    every decile of the fill adds to both."""
    if i % 2 == 0:
        return f"big/o{i // 2:08d}"
    j = i // 2
    return f"many/d{j // PER_FOLDER:07d}/o{j % PER_FOLDER}"


class Space:
    """Counts of the key space of N keys and the key at a sorted position."""

    def __init__(self, n):
        self.n = n
        self.n_big = (n + 1) // 2
        self.n_many = n // 2
        self.n_folders = (self.n_many + PER_FOLDER - 1) // PER_FOLDER

    def key_at(self, pos):
        """The key at position `pos` of the bucket in key order (big/ sorts before many/)."""
        if pos < self.n_big:
            return f"big/o{pos:08d}"
        j = pos - self.n_big
        return f"many/d{j // PER_FOLDER:07d}/o{j % PER_FOLDER}"


# ---------------------------------------------------------------------------------------------
# Fill: client processes, each with one keep-alive connection

_conn = None
_cfg = None


def _fill_init(cfg):
    global _cfg
    _cfg = cfg
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _fill_chunk(keys):
    """PUTs `keys` one after the other on this process's connection; (ok, errors, samples)."""
    global _conn
    import hashlib

    port, access, secret = _cfg
    ph = hashlib.sha256(BODY).hexdigest()
    ok, errors, samples = 0, 0, []
    for key in keys:
        path = f"/{BUCKET}/{key}"
        h = sigv4("PUT", f"127.0.0.1:{port}", path, (), ph, access, secret)
        for attempt in (0, 1):
            try:
                if _conn is None:
                    _conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                st, data = request(_conn, "PUT", path, BODY, h)
                break
            except (OSError, http.client.HTTPException) as e:
                _conn = None
                st, data = 0, f"{type(e).__name__}: {e}".encode()
        if st == 200:
            ok += 1
        else:
            errors += 1
            if len(samples) < 3:
                samples.append(f"PUT {path}: HTTP {st} {data[:200]!r}")
    return ok, errors, samples


def fill(server, space, clients, chunk=250):
    """Fills the bucket decile by decile; one record per decile."""
    n = space.n
    out = []
    pool = multiprocessing.Pool(clients, _fill_init, ((server.port, *server.key),))
    try:
        for d in range(10):
            lo, hi = n * d // 10, n * (d + 1) // 10
            keys = [fill_key(i) for i in range(lo, hi)]
            chunks = [keys[k : k + chunk] for k in range(0, len(keys), chunk)]
            pid = server.proc.pid
            c0 = cpu_seconds(pid)
            t0 = time.perf_counter()
            res = pool.map(_fill_chunk, chunks, chunksize=1)
            wall = time.perf_counter() - t0
            cpu = cpu_seconds(pid) - c0
            ok = sum(r[0] for r in res)
            errs = sum(r[1] for r in res)
            samples = [s for r in res for s in r[2]][:5]
            rec = dict(decile=d + 1, keys=hi - lo, wall_s=wall, puts_s=(hi - lo) / wall,
                       cpu_us_per_put=1e6 * cpu / max(1, hi - lo), errors=errs,
                       error_samples=samples, ok=ok)
            out.append(rec)
            log(f"fill decile {d + 1}: {rec['puts_s']:.0f} PUT/s, "
                f"{rec['cpu_us_per_put']:.0f} µs CPU/PUT, {errs} errors")
            if errs and not ok:
                raise RuntimeError(f"the fill fails: {samples}")
    finally:
        pool.close()
        pool.join()
    return out


def fill_rows(server, space, batch=100_000):
    """--synthetic: the rows of every key but the first two, written into kura.db with the
    server stopped, decile by decile; one record per decile (rows per second). Needs an SQLite
    of at least 3.45 (the search index's trigram options): `pip install pysqlite3-binary`."""
    try:
        from pysqlite3 import dbapi2 as lite
    except ImportError:
        lite = sqlite3
    if lite.sqlite_version_info < (3, 45):
        raise RuntimeError(f"--synthetic needs SQLite >= 3.45 (Python has {lite.sqlite_version}): "
                           "pip install pysqlite3-binary")
    db = lite.connect(os.path.join(server.data, "kura.db"))
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        cur = db.execute("SELECT * FROM entries WHERE path = ?", (f"/{BUCKET}/{fill_key(0)}",))
        cols = [d[0] for d in cur.description]
        file_row = dict(zip(cols, cur.fetchone()))
        folder = f"/{BUCKET}/{fill_key(1).rsplit('/', 1)[0]}"
        folder_row = dict(zip(cols, db.execute("SELECT * FROM entries WHERE path = ?",
                                               (folder,)).fetchone()))
        skip = {"rowid", "id"} & set(cols)
        names = [c for c in cols if c not in skip]
        sql = f"INSERT INTO entries ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"

        def row(tmpl, path):
            r = dict(tmpl, path=path, parent=path.rsplit("/", 1)[0])
            return [r[c] for c in names]

        out = []
        n = space.n
        for d in range(10):
            lo, hi = max(2, n * d // 10), n * (d + 1) // 10
            t0 = time.perf_counter()
            rows = []
            for i in range(lo, hi):
                key = fill_key(i)
                if i % 2 == 1 and (i // 2) % PER_FOLDER == 0:
                    rows.append(row(folder_row, f"/{BUCKET}/{key.rsplit('/', 1)[0]}"))
                rows.append(row(file_row, f"/{BUCKET}/{key}"))
                if len(rows) >= batch:
                    with db:
                        db.executemany(sql, rows)
                    rows = []
            with db:
                db.executemany(sql, rows)
                files = hi - lo
                db.execute("UPDATE groups SET used_bytes = used_bytes + ?, "
                           "used_objects = used_objects + ? WHERE name = ?",
                           (files * file_row["size"], files, file_row["grp"]))
            wall = time.perf_counter() - t0
            rec = dict(decile=d + 1, keys=hi - lo, wall_s=wall, puts_s=(hi - lo) / wall,
                       cpu_us_per_put=float("nan"), errors=0, error_samples=[], ok=hi - lo)
            out.append(rec)
            log(f"synthetic fill decile {d + 1}: {rec['puts_s']:.0f} rows/s")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return out


# ---------------------------------------------------------------------------------------------
# Listing pages


def list_pages(server, prefix, delimiter, start_after, pages, page=1000):
    """`pages` ListObjectsV2 pages in a row from `start_after`; per-page latency and CPU."""
    import re

    t = server.target("s3")
    conn = t.connect(timeout=600)
    path = t.path(BUCKET)
    lat, errors, samples, token, items = [], 0, [], None, 0
    pid = server.proc.pid
    c0 = cpu_seconds(pid)
    for _ in range(pages):
        q = [("list-type", "2"), ("max-keys", str(page))]
        if prefix:
            q.append(("prefix", prefix))
        if delimiter:
            q.append(("delimiter", delimiter))
        if token:
            q.append(("continuation-token", token))
        elif start_after:
            q.append(("start-after", start_after))
        t0 = time.perf_counter()
        st, data = request(conn, "GET", t.url(path, q), None, t.headers("GET", path, q))
        lat.append(time.perf_counter() - t0)
        if st != 200:
            errors += 1
            samples.append(f"HTTP {st} {data[:200]!r}")
            break
        got = data.count(b"<Key>") + data.count(b"<CommonPrefixes>")
        items += got
        truncated = b"<IsTruncated>true</IsTruncated>" in data
        if truncated and got != page:
            errors += 1
            samples.append(f"a truncated page of {got} items, expected {page}")
        m = re.search(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>", data)
        if not truncated:
            break
        if not m:
            errors += 1
            samples.append("a truncated page without a continuation token")
            break
        token = m.group(1).decode().replace("&amp;", "&").replace("&lt;", "<")
        token = token.replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'")
    cpu = cpu_seconds(pid) - c0
    conn.close()
    s = sorted(lat)
    return dict(pages=len(lat), items=items, p50_ms=1000 * s[len(s) // 2],
                p99_ms=1000 * s[min(len(s) - 1, int(len(s) * 0.99))], max_ms=1000 * s[-1],
                cpu_ms_per_page=1000 * cpu / max(1, len(lat)), errors=errors,
                error_samples=samples[:3])


def listings(server, space, pages):
    n, nb, nf = space.n, space.n_big, space.n_folders
    span = pages * 1000 + 1

    def end(total):
        """Where the last `pages` pages start; the last quarter when there are fewer."""
        return total - span if total > 2 * span else total * 3 // 4

    out = []

    def run(kind, where, prefix, delim, after):
        r = list_pages(server, prefix, delim, after, pages)
        r.update(kind=kind, where=where, start_after=after or "")
        log(f"ListObjectsV2 {kind:28s} {where:6s}: p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms, {r['cpu_ms_per_page']:.1f} ms CPU/page, "
            f"{r['errors']} errors")
        out.append(r)

    for where, pos in (("start", None), ("middle", n // 2), ("end", end(n))):
        run("no delimiter (whole bucket)", where, "", "", None if pos is None else space.key_at(pos))
    for where, pos in (("start", None), ("middle", nb // 2), ("end", end(nb))):
        run(f"delimiter / in big/ ({nb} keys)", where, "big/", "/",
            None if pos is None else space.key_at(pos))
    for where, f in (("start", None), ("middle", nf // 2), ("end", end(nf))):
        run(f"delimiter / over many/ ({nf} folders)", where, "many/", "/",
            None if f is None else f"many/d{f:07d}/o{PER_FOLDER}")
    return out


# ---------------------------------------------------------------------------------------------
# PROPFIND of the big folder


def propfind(server, shape, space):
    body, extra = (b"", ALLPROP_HEADERS) if shape == "allprop" else (PROPFIND_BODY, None)
    pid = server.proc.pid
    reset_peak_rss(pid)
    rss0 = rss_mib(pid)
    c0 = cpu_seconds(pid)
    t = server.target("webdav")
    dt, err = wl_list_dav(t, space.n_big, body, extra, bucket=BUCKET, key="big/")
    cpu = cpu_seconds(pid) - c0
    peak = peak_rss_mib(pid)
    time.sleep(1)
    after = rss_mib(pid)
    r = dict(shape=shape, entries=space.n_big, s=dt, cpu_s=cpu, rss_before_mib=rss0,
             peak_rss_mib=peak, rss_after_mib=after, errors=1 if err else 0,
             error_samples=[err] if err else [])
    log(f"PROPFIND {shape} of big/ ({space.n_big} entries): {dt:.1f} s, {cpu:.1f} s CPU, "
        f"RSS {rss0:.0f} -> peak {peak:.0f} -> {after:.0f} MiB"
        + (f", ERROR {err}" if err else ""))
    return r


# ---------------------------------------------------------------------------------------------
# CLI commands and the database


def timed_cli(server, *args):
    t0 = time.perf_counter()
    r = subprocess.run([server.binary, *args], env=server.kenv(), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    err = None if r.returncode == 0 else f"exit {r.returncode}: {(r.stderr or r.stdout)[-300:]}"
    log(f"kura {' '.join(args)}: {dt:.2f} s" + (f", ERROR {err}" if err else ""))
    return dict(command="kura " + " ".join(args), s=dt, errors=1 if err else 0,
                error_samples=[err] if err else [], output_tail=(r.stdout or "")[-400:])


def database(server):
    db = os.path.join(server.data, "kura.db")
    files = {p: os.path.getsize(p) for p in (db, db + "-wal", db + "-shm") if os.path.exists(p)}
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = c.execute("SELECT count(*) FROM entries").fetchone()[0]
        page_size = c.execute("PRAGMA page_size").fetchone()[0]
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        free = c.execute("PRAGMA freelist_count").fetchone()[0]
        try:
            per = dict(c.execute(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 8"
            ).fetchall())
        except sqlite3.DatabaseError:
            per = {}
    finally:
        c.close()
    total = sum(files.values())
    return dict(entries_rows=rows, db_bytes=total,
                used_bytes=(pages - free) * page_size, bytes_per_entry=total / max(1, rows),
                files={os.path.basename(k): v for k, v in files.items()}, by_table=per)


# ---------------------------------------------------------------------------------------------
# The run


def run(a):
    space = Space(a.n)
    base = a.workdir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target")
    os.makedirs(base, exist_ok=True)
    root = tempfile.mkdtemp(prefix="kura-scale-", dir=base)
    log(f"work dir {root}; N = {a.n} ({space.n_big} in big/, {space.n_many} in "
        f"{space.n_folders} folders under many/)")
    server = Kura(root, (None, None), a.kura)
    res = dict(fill=[], listing=[], propfind=[], cli=[], errors=0)
    t_start = time.time()
    try:
        server.start(False)
        t = server.target("webdav")
        conn = t.connect()
        st, data = request(conn, "MKCOL", t.url(f"/dav/{BUCKET}"), None, t.headers("MKCOL", ""))
        conn.close()
        if st != 201:
            raise RuntimeError(f"MKCOL /dav/{BUCKET}: HTTP {st} {data[:200]!r}")
        t0 = time.perf_counter()
        if a.synthetic:
            res["fill"] = fill(server, Space(2), 1, chunk=2)
            server.stop()
            res["fill"] = fill_rows(server, space)
            server.start(False)
        else:
            res["fill"] = fill(server, space, a.clients)
        res["fill_s"] = time.perf_counter() - t0
        res["listing"] = listings(server, space, a.pages)
        # start-up with N entries (the stop writes the WAL back first, as a restart would)
        server.stop()
        t0 = time.perf_counter()
        server.start(False)
        res["startup_s"] = time.perf_counter() - t0
        res["rss_after_start_mib"] = rss_mib(server.proc.pid)
        log(f"start-up with {a.n} keys: {res['startup_s'] * 1000:.0f} ms to /healthz")
        for shape in ("allprop", "named"):
            res["propfind"].append(propfind(server, shape, space))
        server.stop()
        res["cli"].append(timed_cli(server, "usage"))
        if not a.synthetic:
            res["cli"].append(timed_cli(server, "fsck"))
        res["db"] = database(server)
        log(f"database: {res['db']['db_bytes'] / 1e6:.1f} MB for {res['db']['entries_rows']} "
            f"rows: {res['db']['bytes_per_entry']:.0f} B/entry")
    finally:
        server.stop()
        res["elapsed_s"] = time.time() - t_start
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    for part in ("fill", "listing", "propfind", "cli"):
        res["errors"] += sum(r.get("errors", 0) for r in res[part])
    return res


def report(a, res):
    space = Space(a.n)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "kernel": platform.release(),
        "kura_binary": a.kura,
        "git": a.git or "",
        "n": a.n,
        "big_folder_entries": space.n_big,
        "many_folders": space.n_folders,
        "clients": a.clients,
        "pages": a.pages,
    }
    md = [f"# Kura scale benchmark: {a.n:,} keys ({meta['date']})\n"]
    md.append(
        f"Host: {meta['host']}, Linux {meta['kernel']}. Kura: `{a.kura}`"
        + (f" at {a.git}" if a.git else "")
        + f". Whole run: {res['elapsed_s']:.0f} s.\n"
    )
    if "debug" in a.kura:
        md.append("**Note:** a debug build of Kura: absolute times are several times a release "
                  "build's; how they change with the size is what this run shows.\n")
    if a.synthetic:
        md.append(
            f"One bucket, {a.n:,} keys: **synthetic fill** (`--synthetic`): the first two "
            f"through S3 PUT, the others written into kura.db with the server stopped, copied "
            f"from those two rows (the triggers ran: search index, generations); no bytes on "
            f"disk, no audit rows, `kura fsck` not run. {space.n_big:,} in `big/`, "
            f"{space.n_many:,} five to a folder in {space.n_folders:,} folders under `many/`.\n"
        )
        md.append("## Fill (rows written into kura.db by decile: SQLite's rate, not PUTs)\n")
        rows = [[r["decile"], f"{r['puts_s']:.0f}", r["errors"]] for r in res["fill"]]
        md.append(_table(["decile", "rows/s", "errors"], rows))
        md.append(f"\nWhole fill: {res['fill_s']:.0f} s.\n")
    else:
        md.append(
            f"One bucket, {a.n:,} objects of {len(BODY)} B through S3 PUT from {a.clients} "
            f"client processes (one keep-alive connection each, fsync on): {space.n_big:,} in "
            f"`big/`, {space.n_many:,} five to a folder in {space.n_folders:,} folders under "
            f"`many/`.\n"
        )
        md.append("## Fill (PUT rate by decile)\n")
        rows = [[r["decile"], f"{r['puts_s']:.0f}", f"{r['cpu_us_per_put']:.0f}", r["errors"]]
                for r in res["fill"]]
        md.append(_table(["decile", "PUT/s", "server CPU µs/PUT", "errors"], rows))
    if len(res["fill"]) == 10 and not a.synthetic:
        ratio = res["fill"][-1]["puts_s"] / res["fill"][0]["puts_s"]
        md.append(f"\nLast decile / first: **{ratio:.2f}** (target ≥ 0.80: "
                  f"{'met' if ratio >= 0.8 else 'not met'}). Whole fill: {res['fill_s']:.0f} s.\n")
    md.append(f"## ListObjectsV2 pages of 1,000 ({a.pages} pages in a row from each point)\n")
    rows = [[r["kind"], r["where"], f"`{r['start_after']}`" if r["start_after"] else "–",
             f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['cpu_ms_per_page']:.1f}",
             r["errors"]] for r in res["listing"]]
    md.append(_table(["listing", "where", "start-after", "p50 ms", "p99 ms",
                      "server CPU ms/page", "errors"], rows))
    worst = max((r["p99_ms"] for r in res["listing"]), default=float("nan"))
    md.append(f"\nWorst p99: **{worst:.1f} ms** (target < 50 ms, independent of size: "
              f"{'met' if worst < 50 else 'not met'} at this size).\n")
    md.append(f"## PROPFIND Depth 1 of `big/` ({space.n_big:,} entries)\n")
    rows = [[r["shape"], f"{r['s']:.2f}", f"{r['cpu_s']:.2f}", f"{r['rss_before_mib']:.0f}",
             f"{r['peak_rss_mib']:.0f}", f"{r['rss_after_mib']:.0f}", r["errors"]]
            for r in res["propfind"]]
    md.append(_table(["shape", "time s", "server CPU s", "RSS before MiB", "peak RSS MiB",
                      "RSS after MiB", "errors"], rows))
    md.append("\nallprop: Depth 1, no body, as Windows Explorer sends it; named: the six "
              "properties rclone asks for. Peak: VmHWM reset before each request; after: 1 s "
              "after the response.\n")
    md.append("## Start-up, CLI, database\n")
    db = res.get("db", {})
    rows = [["server start-up to /healthz", f"{res.get('startup_s', float('nan')) * 1000:.0f} ms"],
            ["server RSS after start-up", f"{res.get('rss_after_start_mib', float('nan')):.0f} MiB"]]
    rows += [[f"`{c['command']}`", f"{c['s']:.2f} s" + (" (ERROR)" if c["errors"] else "")]
             for c in res["cli"]]
    if db:
        rows.append(["database (kura.db + WAL)",
                     f"{db['db_bytes'] / 1e6:.1f} MB for {db['entries_rows']:,} entries "
                     f"(files and folders): **{db['bytes_per_entry']:.0f} B/entry**"])
        if db.get("by_table"):
            rows.append(["largest tables and indexes",
                         ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in db["by_table"].items())])
    md.append(_table(["what", "figure"], rows))
    errs = [s for part in ("fill", "listing", "propfind", "cli") for r in res[part]
            for s in r.get("error_samples", [])]
    if errs:
        md.append("\n## Errors\n")
        md += [f"- `{e}`" for e in errs[:10]]
    md.append("")
    return "\n".join(md), {"meta": meta, "results": res}


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kura", required=True, help="kura binary")
    p.add_argument("--n", type=int, default=200_000, help="keys in the bucket (default 200,000)")
    p.add_argument("--clients", type=int, default=6, help="client processes for the fill")
    p.add_argument("--pages", type=int, default=20, help="pages in a row per listing point")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results"))
    p.add_argument("--workdir", help="where the data dir goes (default target/)")
    p.add_argument("--git", help="commit being measured (for the report)")
    p.add_argument("--keep", action="store_true", help="keep the data dir")
    p.add_argument("--synthetic", action="store_true",
                   help="rows written into kura.db instead of PUTs (see the module)")
    a = p.parse_args()
    if a.n < 1000:
        p.error("--n below 1,000 leaves nothing to measure")

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")  # so that the server gets stopped

    signal.signal(signal.SIGTERM, on_term)
    res = run(a)
    md, data = report(a, res)
    os.makedirs(a.out, exist_ok=True)
    stem = os.path.join(a.out, f"scale-{a.n}" + ("-synthetic" if a.synthetic else ""))
    with open(stem + ".md", "w") as f:
        f.write(md)
    with open(stem + ".json", "w") as f:
        json.dump(data, f, indent=1)
    print(md)
    log(f"wrote {stem}.md and .json")
    print(f"scale: {res['errors']} errors")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
