#!/usr/bin/env python3
"""Server CPU per entry of PROPFIND (allprop and named) and per small request, one Kura.

    python3 bench/propfind_probe.py [--kura target/debug/kura] [--entries 10000] [--reps 3]
                                    [--small-n 1000] [--skip-small]

Starts Kura on a temporary data dir (as bench/kura_bench.py does, whose client code it reuses),
fills a folder with ENTRIES files through S3, then reads the server's CPU time
(/proc/PID/stat, utime + stime of all its threads) around each request:
PROPFIND Depth 1 with rclone's six named properties, the same with an empty body and Explorer's headers (allprop, as
Windows Explorer sends it) and with `<allprop/>`; it prints the best of REPS runs in ms per
entry, and the server's VmRSS after the allprop runs. Then SMALL_N 4 KiB PUTs and GETs over
WebDAV and S3 from one client, in µs of server CPU per request. CPU time, not wall time, so
the figures hold on a loaded machine (take the best of a few runs).
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kura_bench as kb  # noqa: E402

ALLPROP_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
)


def vm_rss_mib(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def rss(pid):
    return (f"VmRSS {vm_rss_mib(pid):.1f} MiB (anon {vm_rss_mib(pid, 'RssAnon:'):.1f}, "
            f"file {vm_rss_mib(pid, 'RssFile:'):.1f})")


def propfind(t, body, expect):
    path = t.path(kb.LIST_BUCKET)
    conn = t.connect()
    h = t.headers("PROPFIND", path)
    h["Depth"] = "1"
    if body:
        h["Content-Type"] = 'application/xml; charset="utf-8"'
    else:
        # as Windows Explorer sends it (its User-Agent adds the Win32 properties)
        h.update(kb.ALLPROP_HEADERS)
    st, data = kb.request(conn, "PROPFIND", t.url(path), body or None, h)
    conn.close()
    n = len(re.findall(rb"<(?:[A-Za-z0-9]+:)?response[ >]", data))
    if st != 207 or n != expect + 1:
        raise RuntimeError(f"PROPFIND: HTTP {st}, {n} responses, expected {expect + 1}")
    return len(data)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kura", default="target/debug/kura")
    p.add_argument("--entries", type=int, default=10000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--small-n", type=int, default=1000)
    p.add_argument("--skip-small", action="store_true")
    p.add_argument("--perf", metavar="FILE",
                   help="record the server with `perf record --call-graph dwarf` during the allprop runs")
    a = p.parse_args()
    root = tempfile.mkdtemp(prefix="kura-probe-", dir="target")
    k = kb.Kura(root, (None, None), os.path.abspath(a.kura))
    try:
        k.start(False)
        k.prepare_live(a.entries, 4)
        dav = k.target("webdav")
        k.warm(dav)
        pid = k.proc.pid
        print(f"kura {a.kura}, folder of {a.entries} entries, at start: {rss(pid)}")
        for label, body in (("named (rclone)", kb.PROPFIND_BODY), ("allprop (empty body)", b""),
                            ("allprop (<allprop/>)", ALLPROP_BODY)):
            best, size = None, 0
            perf = None
            if a.perf and not body:
                perf = subprocess.Popen(["perf", "record", "--call-graph", "dwarf,16384", "-F", "499", "-o", a.perf, "-p", str(pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            for _ in range(a.reps):
                c0 = kb.cpu_seconds(pid)
                size = propfind(dav, body, a.entries)
                c = kb.cpu_seconds(pid) - c0
                best = c if best is None else min(best, c)
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait()
            time.sleep(0.5)
            print(f"PROPFIND {label:22s}: {best * 1000 / a.entries:.4f} ms CPU/entry "
                  f"({best:.2f} s), {size / 1e6:.1f} MB answer; after: {rss(pid)}, "
                  f"peak {kb.peak_rss_mib(pid):.1f} MiB")
        if not a.skip_small:
            for proto in ("webdav", "s3"):
                t = k.target(proto)
                for op, w in (("PUT", kb.wl_small_put), ("GET", kb.wl_small_get)):
                    c0 = kb.cpu_seconds(pid)
                    _, tally = w(t, a.small_n, 4096, 1, prefix=proto)
                    c = kb.cpu_seconds(pid) - c0
                    if tally.errors:
                        raise RuntimeError(f"{proto} {op}: {tally.samples}")
                    print(f"small {proto:6s} {op}: {c * 1e6 / a.small_n:.0f} µs CPU/request "
                          f"({a.small_n} x 4 KiB, 1 client)")
    finally:
        k.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
