#!/usr/bin/env python3
"""Two Kura binaries, A and B, on the small-file workload: server CPU per request, alternating.

    python3 bench/ab_kura.py OLD_BINARY NEW_BINARY [RUNS]

For what one change costs per small request (e.g. a release build before and after it): each
run starts a fresh server of A then of B (B then A on odd runs, so that drift on a shared
machine falls on both), makes the benchmark's buckets, and measures 2,000 PUTs then 2,000
GETs of 4 KiB with 16 clients over WebDAV and over S3, the server's CPU per request from
/proc. Prints each run's figure and the median per binary. Any failed request stops it.

`AB_ENV_B="KURA_DURABLE_COMMITS=false ..."` starts B's server with those settings as well (B
may then be A's binary: the cost of a setting). `AB_PROTOS=webdav` or `s3` measures one
protocol only.
"""

import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kura_bench as kb  # noqa: E402


def main():
    a, b = (os.path.abspath(p) for p in sys.argv[1:3])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    n = 2000
    work = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target")
    res = {}
    for r in range(runs):
        for name, binary in ([("A", a), ("B", b)] if r % 2 == 0 else [("B", b), ("A", a)]):
            root = tempfile.mkdtemp(prefix="kura-ab-", dir=work)
            k = kb.Kura(root, (None, None), binary)
            try:
                extra = dict(kv.split("=", 1) for kv in os.environ.get("AB_ENV_B", "").split())
                saved = {v: os.environ.get(v) for v in extra}
                if name == "B":
                    os.environ.update(extra)
                try:
                    k.start(False)
                finally:
                    for v, old in saved.items():
                        if old is None:
                            os.environ.pop(v, None)
                        else:
                            os.environ[v] = old
                k.prepare_live(0, 16)
                for proto in os.environ.get("AB_PROTOS", "webdav s3").split():
                    t = k.target(proto)
                    k.warm(t)
                    time.sleep(0.3)
                    for op, w in (("PUT", kb.wl_small_put), ("GET", kb.wl_small_get)):
                        c0 = kb.cpu_seconds(k.proc.pid)
                        _, tally = w(t, n, 4096, 16, proto + "-")
                        cpu = kb.cpu_seconds(k.proc.pid) - c0
                        if tally.errors:
                            raise SystemExit(f"{name} {proto} {op}: {tally.samples}")
                        res.setdefault((proto, op, name), []).append(round(1e6 * cpu / n))
            finally:
                k.stop()
                shutil.rmtree(root, ignore_errors=True)
    for proto, op in sorted({(p, o) for p, o, _ in res}):
        ma = statistics.median(res[(proto, op, "A")])
        mb = statistics.median(res[(proto, op, "B")])
        print(f"{proto:6} {op:3}  A {res[(proto, op, 'A')]} median {ma:.0f} µs  "
              f"B {res[(proto, op, 'B')]} median {mb:.0f} µs  B/A {mb / ma:.2f}")


if __name__ == "__main__":
    main()
