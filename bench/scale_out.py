#!/usr/bin/env python3
"""Kura's small-file cost on its three deployments, in one run (issue #18's benchmark row):
SQLite + `fs` (the embedded default), PostgreSQL + `fs`, PostgreSQL + Garage (the scale-out
form). CPU per operation of Kura itself and of the engines it drives (PostgreSQL's server
processes, Garage), since on the scale-out form part of the work moves out of Kura.

Run it through `scripts/bench.sh --scale-out`. The three run side by side and are measured in
alternating repetitions (the machine's noise falls on each alike); medians are reported, with
every repetition's figure. Report: bench/results/scale-out.{md,json}.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kura_bench import (  # noqa: E402
    REGION,
    SMALL_BUCKET,
    Garage,
    Kura,
    cpu_seconds,
    free_port,
    log,
    request,
    wl_small_get,
    wl_small_put,
)

STORE_BUCKET = "kura-store"


class Postgres:
    """A throw-away PostgreSQL cluster (Debian's binaries), run as `postgres` under root,
    fsync on (an acknowledged upload is durable, as on SQLite with Kura's default)."""

    def __init__(self, root):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                       key=lambda p: int(p.split("/")[4]))
        if not found:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = os.path.dirname(found[-1])
        self.dir = os.path.join(root, "pg")
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.password = secrets.token_hex(16)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        pw = os.path.join(self.dir, "pw")
        with open(pw, "w") as f:
            f.write(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pw, "postgres", "postgres")
        self.run("initdb", "-D", self.data, "-U", "kura", "--auth=scram-sha-256",
                 f"--pwfile={pw}", "-E", "UTF8")
        self.run("pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.dir, "log"), "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")

    def run(self, tool, *args):
        cmd = [os.path.join(self.bin, tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{tool}: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def create_database(self, name):
        env = dict(os.environ, PGPASSWORD=self.password)
        subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "kura",
                        "-d", "postgres", "-c", f"CREATE DATABASE {name}"],
                       env=env, check=True, capture_output=True)
        return f"postgres://kura:{self.password}@127.0.0.1:{self.port}/{name}"

    def pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def stop(self):
        try:
            self.run("pg_ctl", "-D", self.data, "-m", "fast", "stop")
        except RuntimeError as e:
            log(f"postgres stop: {e}")


class KuraOn(Kura):
    """Kura on a given database and storage, named for them."""

    def __init__(self, root, binary, name, settings, engines):
        self.name = name
        super().__init__(root, None, binary)
        self.settings = settings
        self.engines = engines  # pids whose CPU is the engines' (PostgreSQL, Garage)

    def kenv(self):
        e = super().kenv()
        e.update(self.settings)
        return e


def engine_cpu(pids):
    return sum(cpu_seconds(p) for p in pids)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kura", required=True)
    p.add_argument("--garage", help="garage binary; without it the PostgreSQL + Garage row is left out")
    p.add_argument("--git", default="")
    p.add_argument("--n", type=int, default=1000, help="small files per phase")
    p.add_argument("--reps", type=int, default=5, help="alternating repetitions")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    a = p.parse_args()

    base = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target")
    os.makedirs(base, exist_ok=True)
    root = tempfile.mkdtemp(prefix="kura-scale-out-", dir=base)
    os.chmod(root, 0o755)  # the postgres user reaches its folder inside
    started = time.time()
    pg = garage = None
    servers = []
    results = []
    try:
        pg = Postgres(root)
        servers.append(KuraOn(root, a.kura, "sqlite+fs", {}, []))
        servers.append(KuraOn(root, a.kura, "postgres+fs",
                              {"KURA_DATABASE_URL": pg.create_database("bench_fs")}, [pg.pid()]))
        if a.garage:
            garage = Garage(root, None, a.garage)
            garage.start(False)
            garage.cli("bucket", "create", STORE_BUCKET)
            garage.cli("bucket", "allow", "--read", "--write", "--owner", STORE_BUCKET,
                       "--key", "bench-key")
            ak, sk = garage.key
            servers.append(KuraOn(root, a.kura, "postgres+garage", {
                "KURA_DATABASE_URL": pg.create_database("bench_garage"),
                "KURA_STORAGE__BACKEND": "s3",
                "KURA_STORAGE__OPTIONS__BUCKET": STORE_BUCKET,
                "KURA_STORAGE__OPTIONS__ENDPOINT": f"http://127.0.0.1:{garage.port}",
                "KURA_STORAGE__OPTIONS__REGION": REGION,
                "KURA_STORAGE__OPTIONS__ACCESS_KEY_ID": ak,
                "KURA_STORAGE__OPTIONS__SECRET_ACCESS_KEY": sk,
            }, [pg.pid(), garage.proc.pid]))
        for s in servers:
            s.start(False)
            t = s.target("webdav")
            conn = t.connect()
            st, data = request(conn, "MKCOL", t.url(f"/dav/{SMALL_BUCKET}"), None,
                               t.headers("MKCOL", ""))
            conn.close()
            if st not in (201, 405):
                raise RuntimeError(f"{s.name}: MKCOL: HTTP {st} {data[:200]!r}")
            for proto in ("webdav", "s3"):
                s.warm(s.target(proto))
            log(f"== {s.name} up")
        for rep in range(a.reps):
            for proto in ("s3", "webdav"):
                for op in ("PUT", "GET"):
                    order = servers if rep % 2 == 0 else servers[::-1]
                    for s in order:
                        t = s.target(proto)
                        w = wl_small_put if op == "PUT" else wl_small_get
                        k0, e0 = cpu_seconds(s.proc.pid), engine_cpu(s.engines)
                        wall, tally = w(t, a.n, a.size, a.clients, f"{proto}{rep}-")
                        k1, e1 = cpu_seconds(s.proc.pid), engine_cpu(s.engines)
                        r = dict(server=s.name, protocol=proto, op=op, rep=rep, ops=a.n,
                                 wall_s=wall, ops_s=a.n / wall, errors=tally.errors,
                                 error_samples=tally.samples,
                                 kura_us=1e6 * (k1 - k0) / a.n, engine_us=1e6 * (e1 - e0) / a.n)
                        results.append(r)
                        log(f"{s.name:16s} {proto:6s} {op:3s} rep {rep}: Kura {r['kura_us']:.0f} "
                            f"µs/op, engines {r['engine_us']:.0f} µs/op, {r['ops_s']:.0f}/s, "
                            f"{tally.errors} errors")
    finally:
        for s in servers:
            s.stop()
        if garage:
            garage.stop()
        if pg:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)

    rows = []
    names = [s.name for s in servers]
    for proto in ("s3", "webdav"):
        for op in ("PUT", "GET"):
            base_total = None
            for name in names:
                rs = [r for r in results if (r["server"], r["protocol"], r["op"]) == (name, proto, op)]
                kura = statistics.median(r["kura_us"] for r in rs)
                eng = statistics.median(r["engine_us"] for r in rs)
                total = statistics.median(r["kura_us"] + r["engine_us"] for r in rs)
                base_total = base_total or total
                rows.append(dict(protocol=proto, op=op, server=name, kura_us=kura, engine_us=eng,
                                 total_us=total, vs_default=total / base_total,
                                 ops_s=statistics.median(r["ops_s"] for r in rs),
                                 errors=sum(r["errors"] for r in rs),
                                 total_runs=[round(r["kura_us"] + r["engine_us"]) for r in rs]))
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = [f"# Kura on its three deployments: small files ({when})", "",
          f"Host: {platform.node()} {platform.machine()}, {os.cpu_count()} cores. Kura: "
          f"`{a.kura}` at {a.git or '?'}. {a.reps} alternating repetitions of {a.n} files of "
          f"{a.size} B by {a.clients} clients per phase; medians. Whole run: "
          f"{time.time() - started:.0f} s.", "",
          "CPU per operation: Kura's process, and the engines' (PostgreSQL's server processes; "
          "Garage) on the same machine. `vs default`: the total against SQLite + fs.", "",
          "| protocol | op | deployment | Kura µs/op | engines µs/op | total µs/op | vs default "
          "| ops/s | errors | totals of each repetition |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['protocol']} | {r['op']} | {r['server']} | {r['kura_us']:.0f} | "
                  f"{r['engine_us']:.0f} | {r['total_us']:.0f} | {r['vs_default']:.2f}x | "
                  f"{r['ops_s']:.0f} | {r['errors']} | {r['total_runs']} |")
    if not a.garage:
        md += ["", "PostgreSQL + Garage: left out (no garage binary given)."]
    text = "\n".join(md) + "\n"
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "scale-out.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, "scale-out.json"), "w") as f:
        json.dump({"rows": rows, "runs": results, "git": a.git, "date": when}, f, indent=1)
    print(text)
    bad = sum(r["errors"] for r in rows)
    print(f"bench: {len(rows) - sum(1 for r in rows if r['errors'])} passed, "
          f"{sum(1 for r in rows if r['errors'])} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
