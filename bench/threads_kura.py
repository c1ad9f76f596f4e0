#!/usr/bin/env python3
"""Where Kura's CPU per small request goes, by thread: CPU and context switches per operation.

    python3 bench/threads_kura.py [KURA_BINARY] [webdav|s3] [put|get]

Starts Kura as the bench does, runs the bench's small-file workload (2,000 x 4 KiB, 16
clients) and prints, per thread (sqlx's connection workers, tokio's runtime and blocking
threads), the CPU and the context switches per operation, from /proc/PID/task. Thread
hand-offs are what small requests cost on these VMs (docs/performance.md); this counts them
without perf.
"""

import collections
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kura_bench as kb  # noqa: E402

def threads(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            st = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
            sw = 0
            for l in open(f"/proc/{pid}/task/{tid}/status"):
                if "ctxt_switches" in l:
                    sw += int(l.split()[1])
            out[tid] = (comm, cpu, sw)
        except FileNotFoundError:
            pass
    return out

def main():
    kura = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/kura")
    proto = sys.argv[2] if len(sys.argv) > 2 else "webdav"
    op = sys.argv[3] if len(sys.argv) > 3 else "put"
    n = 2000
    root = tempfile.mkdtemp(prefix="kura-threads-")
    k = kb.Kura(root, (None, None), kura)
    try:
        k.start(False)
        k.prepare_live(0, 16)
        t = k.target(proto)
        if op == "get":
            kb.wl_small_put(t, n, 4096, 16)
        k.warm(t)
        time.sleep(0.5)
        a = threads(k.proc.pid)
        c0 = kb.cpu_seconds(k.proc.pid)
        w = kb.wl_small_put if op == "put" else kb.wl_small_get
        wall, tally = w(t, n, 4096, 16)
        cpu = kb.cpu_seconds(k.proc.pid) - c0
        b = threads(k.proc.pid)
        groups = collections.defaultdict(lambda: [0.0, 0])
        for tid, (comm, c, s) in b.items():
            cpu0, sw0 = (a[tid][1], a[tid][2]) if tid in a else (0, 0)
            # tokio names runtime and blocking threads alike: busy ones are shown one by one
            busy = comm.startswith("tokio") and (c - cpu0) * 1e6 / n > 100
            g = groups[f"{comm} {tid}" if busy else f"{comm.rstrip('0123456789')} (all)"]
            g[0] += c - cpu0
            g[1] += s - sw0
        print(f"{proto} small {op}: {n} ops in {wall:.2f}s, errors {tally.errors}, server CPU {cpu*1e6/n:.0f} us/op")
        for g, (c, s) in sorted(groups.items(), key=lambda x: -x[1][0]):
            print(f"  {g:30s} cpu {c*1e6/n:7.0f} us/op  ctxsw {s/n:6.1f}/op")
    finally:
        k.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
