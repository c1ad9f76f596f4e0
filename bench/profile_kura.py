#!/usr/bin/env python3
"""Profiles one Kura workload of the bench with `perf record` attached to the server only.

    python3 bench/profile_kura.py WORKLOAD [--kura target/release/kura] [--tls] [--out DIR]

WORKLOAD is one of: large-put-dav, large-get-dav, large-put-s3, large-get-s3, small-put-dav,
small-get-dav, small-put-s3, small-get-s3, list-dav, list-s3. It starts Kura with a temporary
data dir exactly as the bench does, prepares the data the workload needs, then records the
server (perf record --call-graph dwarf) while the workload runs, and writes
DIR/WORKLOAD.perf.data plus a flat (self) and an inclusive (children) text report.
Needs `perf` (Debian: linux-perf) and a release build with line tables (the default profile).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kura_bench as kb  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workload")
    p.add_argument("--kura", default="target/release/kura")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--out", default="target/profile")
    p.add_argument("--large-mib", type=int, default=1024)
    p.add_argument("--small-n", type=int, default=2000)
    p.add_argument("--list-n", type=int, default=10000)
    p.add_argument("--reps", type=int, default=5, help="listings to record")
    p.add_argument("--freq", type=int, default=499)
    a = p.parse_args()
    kind, *rest = a.workload.split("-")
    proto = {"dav": "webdav", "s3": "s3"}[rest[-1]]
    op = rest[0] if kind != "list" else None
    os.makedirs(a.out, exist_ok=True)
    root = tempfile.mkdtemp(prefix="kura-prof-", dir="target")
    peer_cert = (None, None)
    k = kb.Kura(root, peer_cert, os.path.abspath(a.kura))
    perf = None
    try:
        k.start(False)
        k.prepare_live(a.list_n if kind == "list" else 0, 16)
        size = a.large_mib * kb.MIB
        src = os.path.join(root, "large.bin")
        if kind == "large":
            with open(src, "wb") as f:
                block = os.urandom(16 * kb.MIB)
                for _ in range(size // len(block)):
                    f.write(block)
        if a.tls:
            k.stop()
            k.start(True)
        t = k.target(proto)
        # what the measured operation needs first
        if kind == "large" and op == "get":
            kb.wl_large_put(t, src, size, "big")
        if kind == "small" and op == "get":
            kb.wl_small_put(t, a.small_n, 4096, 16)
        k.warm(t)
        data = os.path.join(a.out, f"{a.workload}.perf.data")
        perf = subprocess.Popen(
            ["perf", "record", "-F", str(a.freq), "--call-graph", "dwarf,16384", "-o", data,
             "-p", str(k.proc.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        c0 = kb.cpu_seconds(k.proc.pid)
        t0 = time.perf_counter()
        if kind == "large":
            res = (kb.wl_large_put(t, src, size, "big") if op == "put"
                   else kb.wl_large_get(t, size, "big", None))
        elif kind == "small":
            w = kb.wl_small_put if op == "put" else kb.wl_small_get
            wall, tally = w(t, a.small_n, 4096, 16)
            res = (wall, f"{tally.errors} errors")
        else:
            w = kb.wl_list_dav if proto == "webdav" else kb.wl_list_s3
            res = [w(t, a.list_n) for _ in range(a.reps)]
        wall = time.perf_counter() - t0
        cpu = kb.cpu_seconds(k.proc.pid) - c0
        perf.send_signal(signal.SIGINT)
        perf.wait()
        perf = None
        print(f"{a.workload}: wall {wall:.2f} s, server CPU {cpu:.2f} s, result {res}")
        for mode, extra in (("self", ["--no-children"]), ("children", ["--children"])):
            rep = os.path.join(a.out, f"{a.workload}.{mode}.txt")
            with open(rep, "w") as f:
                subprocess.run(
                    ["perf", "report", "-i", data, "--stdio", "--percent-limit", "0.5",
                     "--sort", "symbol", "-g", "none"] + extra,
                    stdout=f, stderr=subprocess.DEVNULL,
                )
            print(f"wrote {rep}")
    finally:
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        k.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
