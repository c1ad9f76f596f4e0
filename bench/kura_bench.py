#!/usr/bin/env python3
"""Kura benchmark harness: Kura against rclone serve (WebDAV and S3), dufs, nginx+dav and a
physical reference (a loopback socket into a file), in one run, on 127.0.0.1.

Run it through scripts/bench.sh, which installs the peers and builds Kura. This file starts every
server with a temporary data dir, drives the same workloads against each with a concurrent
keep-alive client (threads, one persistent http.client connection each), reads the server's CPU
time and peak RSS from /proc, and writes a Markdown and a JSON report.

See docs/performance.md for the method.
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

MIB = 1 << 20
GIB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

USER = "bench"
PASSWORD = "bench-password-1"
S3_ACCESS = "BENCHACCESSKEY0000001"
S3_SECRET = "bench-secret-key-0000000000000000000000"
REGION = "us-east-1"

LARGE_BUCKET = "large"
SMALL_BUCKET = "small"
LIST_BUCKET = "list"
# Kura's encrypted twins of the large and small buckets (the encryption rows)
SEALED = "-sealed"
SEAL_MAGIC = b"KURASEAL"  # the first bytes of a sealed file on disk (docs/encryption.md)

# The properties rclone asks for in its PROPFIND (a typical client listing).
PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<d:propfind xmlns:d="DAV:"><d:prop><d:displayname/><d:getlastmodified/>'
    b"<d:getcontentlength/><d:resourcetype/><d:getcontenttype/><d:getetag/>"
    b"</d:prop></d:propfind>"
)

# What Windows Explorer (the WebClient mini-redirector) sends to list a folder: PROPFIND Depth 1
# with no body at all, which RFC 4918 section 9.1 defines as allprop, under its own User-Agent.
ALLPROP_HEADERS = {
    "User-Agent": "Microsoft-WebDAV-MiniRedir/10.0.19045",
    "translate": "f",
    "Content-Length": "0",
}

# The two PROPFIND shapes every WebDAV server is listed with: (op name in the report, body,
# extra headers).
PROPFIND_SHAPES = [
    ("PROPFIND", PROPFIND_BODY, {"Content-Type": 'application/xml; charset="utf-8"'}),
    ("PROPFIND allprop", b"", ALLPROP_HEADERS),
]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# /proc: CPU time and peak RSS of a server and its child processes (nginx has workers)


def _proc_tree(root):
    """The pid and every descendant pid of `root`."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2 :].split()
        children.setdefault(int(rest[1]), []).append(int(d))
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def cpu_seconds(root):
    """utime + stime of `root` and its descendants (all threads), in seconds."""
    total = 0
    for p in _proc_tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2 :].split()
        total += int(rest[11]) + int(rest[12])
    return total / CLK_TCK


def rss_mib(root):
    """Sum of VmRSS (resident now) of `root` and its descendants, MiB."""
    total = 0
    for p in _proc_tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def reset_peak_rss(root):
    """Resets VmHWM of `root` and its descendants to their RSS now (clear_refs 5), so that the
    next peak read belongs to what follows; False when the kernel refuses."""
    done = True
    for p in _proc_tree(root):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            done = False
    return done


def peak_rss_mib(root):
    """Sum of VmHWM (lifetime peak RSS) of `root` and its descendants, MiB."""
    total = 0
    for p in _proc_tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# ---------------------------------------------------------------------------------------------
# S3 Signature Version 4 (header auth), enough for PUT/GET/list


_key_cache = {}


def _signing_key(secret, date):
    k = (secret, date)
    if k not in _key_cache:
        key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
        for part in (REGION, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        _key_cache[k] = key
    return _key_cache[k]


def _q(s):
    return urllib.parse.quote(s, safe="-_.~")


def sigv4(method, host, path, query, payload_hash, access, secret):
    """Headers (Host, x-amz-date, x-amz-content-sha256, Authorization) for one request."""
    amzdate = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    date = amzdate[:8]
    canonical_uri = urllib.parse.quote(path, safe="/-_.~")
    canonical_qs = "&".join(f"{_q(k)}={_q(v)}" for k, v in sorted(query))
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amzdate}
    names = sorted(headers)
    signed = ";".join(names)
    creq = "\n".join(
        [
            method,
            canonical_uri,
            canonical_qs,
            "".join(f"{n}:{headers[n]}\n" for n in names),
            signed,
            payload_hash,
        ]
    )
    scope = f"{date}/{REGION}/s3/aws4_request"
    sts = "\n".join(
        ["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(creq.encode()).hexdigest()]
    )
    sig = hmac.new(_signing_key(secret, date), sts.encode(), hashlib.sha256).hexdigest()
    return {
        "Host": host,
        "x-amz-date": amzdate,
        "x-amz-content-sha256": payload_hash,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
        f"SignedHeaders={signed}, Signature={sig}",
    }


# ---------------------------------------------------------------------------------------------
# Targets: how the client reaches a server over one protocol


class Target:
    """A running server as seen by the client: scheme, port, protocol and credentials."""

    def __init__(self, server, protocol, tls, port, cafile):
        self.server = server
        self.protocol = protocol  # "webdav" | "s3"
        self.tls = tls
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.ctx = None
        if tls:
            self.ctx = ssl.create_default_context(cafile=cafile)
        self.basic = server.basic_header()
        self.dav_prefix = server.dav_prefix
        self.s3_key = server.s3_credentials()

    def connect(self, timeout=300):
        if self.tls:
            c = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.ctx, timeout=timeout, blocksize=MIB
            )
        else:
            c = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=timeout, blocksize=MIB
            )
        c.connect()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c

    def path(self, bucket, key=""):
        if self.protocol == "webdav":
            return f"{self.dav_prefix}/{bucket}/{key}" if key else f"{self.dav_prefix}/{bucket}/"
        return f"/{bucket}/{key}" if key else f"/{bucket}"

    def headers(self, method, path, query=(), payload_hash="UNSIGNED-PAYLOAD"):
        if self.protocol == "webdav":
            return {"Authorization": self.basic}
        ak, sk = self.s3_key
        return sigv4(method, self.host, path, query, payload_hash, ak, sk)

    def url(self, path, query=()):
        if not query:
            return urllib.parse.quote(path, safe="/-_.~")
        return (
            urllib.parse.quote(path, safe="/-_.~")
            + "?"
            + "&".join(f"{_q(k)}={_q(v)}" for k, v in query)
        )


def request(conn, method, url, body=None, headers=None):
    """One request on a keep-alive connection; returns (status, body bytes)."""
    conn.request(method, url, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, data


class Tally:
    """Latencies and errors of a concurrent phase."""

    def __init__(self):
        self.lock = threading.Lock()
        self.lat = []
        self.errors = 0
        self.samples = []

    def ok(self, dt):
        with self.lock:
            self.lat.append(dt)

    def err(self, what):
        with self.lock:
            self.errors += 1
            if len(self.samples) < 5:
                self.samples.append(what)


def run_concurrent(target, n, clients, one):
    """Calls one(conn, i) for i in range(n) from `clients` threads, each with its own
    keep-alive connection. Returns (wall seconds, Tally)."""
    tally = Tally()
    nxt = iter(range(n))
    nlock = threading.Lock()
    conns = [target.connect() for _ in range(clients)]
    start_evt = threading.Barrier(clients + 1)

    def worker(k):
        conn = conns[k]
        start_evt.wait()
        while True:
            with nlock:
                i = next(nxt, None)
            if i is None:
                break
            t0 = time.perf_counter()
            try:
                what = one(conn, i)
            except (OSError, http.client.HTTPException) as e:
                what = f"{type(e).__name__}: {e}"
                conn.close()
                try:
                    conn = target.connect()
                except OSError as e2:
                    what += f"; reconnect failed: {e2}"
            dt = time.perf_counter() - t0
            if what is None:
                tally.ok(dt)
            else:
                tally.err(what)
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start_evt.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, tally


# ---------------------------------------------------------------------------------------------
# Workloads


def small_payload(i, size):
    head = f"file {i:08d} ".encode()
    return (head * (size // len(head) + 1))[:size]


def put_one(target, bucket, key, body):
    path = target.path(bucket, key)
    ph = hashlib.sha256(body).hexdigest() if target.protocol == "s3" else None
    h = target.headers("PUT", path, payload_hash=ph) if ph else target.headers("PUT", path)
    return path, h


def wl_small_put(target, n, size, clients, prefix="", bucket=SMALL_BUCKET):
    def one(conn, i):
        body = small_payload(i, size)
        path, h = put_one(target, bucket, f"{prefix}f{i:06d}", body)
        st, data = request(conn, "PUT", target.url(path), body, h)
        if st not in (200, 201, 204):
            return f"PUT {path}: HTTP {st} {data[:200]!r}"
        return None

    return run_concurrent(target, n, clients, one)


def wl_small_get(target, n, size, clients, prefix="", bucket=SMALL_BUCKET):
    def one(conn, i):
        path = target.path(bucket, f"{prefix}f{i:06d}")
        st, data = request(conn, "GET", target.url(path), None, target.headers("GET", path))
        if st != 200:
            return f"GET {path}: HTTP {st} {data[:200]!r}"
        if data != small_payload(i, size):
            return f"GET {path}: wrong body ({len(data)} bytes)"
        return None

    return run_concurrent(target, n, clients, one)


def wl_large_put(target, src, size, key, bucket=LARGE_BUCKET):
    path = target.path(bucket, key)
    conn = target.connect()
    h = target.headers("PUT", path)
    h["Content-Length"] = str(size)
    t0 = time.perf_counter()
    with open(src, "rb") as f:
        conn.request("PUT", target.url(path), body=f, headers=h)
        r = conn.getresponse()
        data = r.read()
    dt = time.perf_counter() - t0
    conn.close()
    err = None if r.status in (200, 201, 204) else f"PUT {path}: HTTP {r.status} {data[:200]!r}"
    return dt, err


def wl_delete(target, bucket, key):
    """DELETE of one file (not measured); a missing file is fine."""
    path = target.path(bucket, key)
    conn = target.connect()
    st, data = request(conn, "DELETE", target.url(path), None, target.headers("DELETE", path))
    conn.close()
    if st not in (200, 204, 404):
        raise RuntimeError(f"DELETE {path}: HTTP {st} {data[:200]!r}")


def wl_large_get(target, size, key, digest, bucket=LARGE_BUCKET):
    path = target.path(bucket, key)
    conn = target.connect()
    buf = bytearray(MIB)
    mv = memoryview(buf)
    got = 0
    h = hashlib.sha256() if digest else None
    t0 = time.perf_counter()
    conn.request("GET", target.url(path), headers=target.headers("GET", path))
    r = conn.getresponse()
    if r.status != 200:
        data = r.read()
        conn.close()
        return time.perf_counter() - t0, f"GET {path}: HTTP {r.status} {data[:200]!r}"
    while True:
        k = r.readinto(buf)
        if not k:
            break
        got += k
        if h:
            h.update(mv[:k])
    dt = time.perf_counter() - t0
    conn.close()
    if got != size:
        return dt, f"GET {path}: {got} bytes, expected {size}"
    if digest and h.hexdigest() != digest:
        return dt, f"GET {path}: content differs"
    return dt, None


def wl_list_dav(target, expect, body=PROPFIND_BODY, extra=None, bucket=LIST_BUCKET, key=""):
    """PROPFIND Depth 1 of a folder with `expect` entries, in one of PROPFIND_SHAPES."""
    path = target.path(bucket, key)
    conn = target.connect()
    h = target.headers("PROPFIND", path)
    h.update(extra or {"Content-Type": 'application/xml; charset="utf-8"'})
    h["Depth"] = "1"
    t0 = time.perf_counter()
    st, data = request(conn, "PROPFIND", target.url(path), body, h)
    dt = time.perf_counter() - t0
    conn.close()
    if st != 207:
        return dt, f"PROPFIND {path}: HTTP {st} {data[:200]!r}"
    n = len(re.findall(rb"<(?:[A-Za-z0-9]+:)?response[ >]", data))
    if n != expect + 1:
        return dt, f"PROPFIND {path}: {n} responses, expected {expect + 1}"
    return dt, None


def wl_list_s3(target, expect, page=1000):
    path = target.path(LIST_BUCKET)
    conn = target.connect()
    keys, pages, token = 0, 0, None
    t0 = time.perf_counter()
    while True:
        q = [("list-type", "2"), ("max-keys", str(page))]
        if token:
            q.append(("continuation-token", token))
        st, data = request(conn, "GET", target.url(path, q), None, target.headers("GET", path, q))
        pages += 1
        if st != 200:
            conn.close()
            return time.perf_counter() - t0, f"ListObjectsV2 page {pages}: HTTP {st} {data[:200]!r}"
        keys += data.count(b"<Key>")
        m = re.search(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>", data)
        truncated = b"<IsTruncated>true</IsTruncated>" in data
        if not truncated:
            break
        if not m:
            conn.close()
            return time.perf_counter() - t0, "ListObjectsV2: truncated page without a token"
        token = m.group(1).decode()
        token = token.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
        token = token.replace("&quot;", '"').replace("&apos;", "'")
        if pages > 10 * (expect // page + 2):
            conn.close()
            return time.perf_counter() - t0, "ListObjectsV2: too many pages"
    dt = time.perf_counter() - t0
    conn.close()
    if keys != expect:
        return dt, f"ListObjectsV2: {keys} keys in {pages} pages, expected {expect}"
    return dt, None


def populate_via(target, n, clients, size=64):
    """Creates n files in LIST_BUCKET through the protocol (for servers with a database)."""

    def one(conn, i):
        body = small_payload(i, size)
        path, h = put_one(target, LIST_BUCKET, f"e{i:06d}", body)
        st, data = request(conn, "PUT", target.url(path), body, h)
        return None if st in (200, 201, 204) else f"PUT {path}: HTTP {st} {data[:200]!r}"

    wall, tally = run_concurrent(target, n, clients, one)
    if tally.errors:
        raise RuntimeError(f"populating the listing folder failed: {tally.samples}")
    return wall


def md5_cpu_s_per_gib(src, size):
    """CPU seconds per GiB of an MD5 over `src` (in the page cache by now), in this process:
    the part of a large PUT that Kura spends on the ETag, measured apart from the server (the
    report subtracts it from Kura's PUT). hashlib's MD5 is OpenSSL's assembly; Kura's md-5 crate
    is portable Rust and slower, so the subtraction leaves Kura at least this much: a verdict
    of met is safe, one of not met may be pessimistic."""
    def pass_cpu(h):
        buf = bytearray(MIB)
        with open(src, "rb", buffering=0) as f:
            t0 = time.process_time()
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                if h:
                    h.update(memoryview(buf)[:k])
            return time.process_time() - t0

    pass_cpu(None)  # the file into the page cache
    read = pass_cpu(None)
    hashed = pass_cpu(hashlib.md5())
    return max(0.0, hashed - read) / (size / GIB)


def populate_disk(root, n, size=64):
    d = os.path.join(root, LIST_BUCKET)
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        with open(os.path.join(d, f"e{i:06d}"), "wb") as f:
            f.write(small_payload(i, size))


# ---------------------------------------------------------------------------------------------
# Servers


def remove_large_files(root, limit=MIB):
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            try:
                if os.path.getsize(p) >= limit:
                    os.unlink(p)
            except OSError:
                pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, logpath, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited at start ({proc.returncode}):\n{tail(logpath)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}:\n{tail(logpath)}")


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Server:
    """A server under test. Subclasses say how to start it and what it speaks."""

    name = "?"
    protocols = ()
    dav_prefix = ""
    fs_backed = True  # its data is a plain folder tree (listing folder can be made on disk)
    tls_capable = True  # serves HTTPS itself (Garage leaves TLS to a proxy)

    def __init__(self, root, peer_cert):
        self.root = os.path.join(root, self.name)
        self.data = os.path.join(self.root, "data")
        os.makedirs(self.data, exist_ok=True)
        self.peer_cert = peer_cert
        self.proc = None
        self.port = None
        self.tls = False
        self.starts = 0

    def basic_header(self):
        import base64

        return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def s3_credentials(self):
        return (S3_ACCESS, S3_SECRET)

    def cafile(self):
        return self.peer_cert[0]

    def command(self):
        raise NotImplementedError

    def env(self):
        return None

    def start(self, tls):
        self.tls = tls
        self.port = free_port()
        self.starts += 1
        self.logpath = os.path.join(self.root, f"server-{self.starts}.log")
        cmd = self.command()
        with open(self.logpath, "wb") as lf:
            self.proc = subprocess.Popen(
                cmd,
                stdout=lf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                start_new_session=True,
            )
        wait_port(self.port, self.proc, self.logpath)
        self.after_start()

    def after_start(self):
        pass

    def targets(self):
        return [
            Target(self, p, self.tls, self.port, self.cafile() if self.tls else None)
            for p in self.protocols
        ]

    def target(self, protocol):
        return Target(self, protocol, self.tls, self.port, self.cafile() if self.tls else None)

    def warm(self, target):
        """One authenticated request, so that a password cache is filled before measuring."""
        conn = target.connect()
        path = target.path(SMALL_BUCKET)
        if target.protocol == "webdav":
            h = target.headers("PROPFIND", path)
            h["Depth"] = "0"
            st, _ = request(conn, "PROPFIND", target.url(path), PROPFIND_BODY, h)
        else:
            q = [("list-type", "2"), ("max-keys", "1")]
            st, _ = request(conn, "GET", target.url(path, q), None, target.headers("GET", path, q))
        conn.close()
        if st not in (200, 207):
            raise RuntimeError(f"{self.name} {target.protocol}: warm-up request got HTTP {st}")

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def prepare(self, list_n):
        """Creates the buckets (and, for folder-backed servers, the listing folder) on disk."""
        for b in (LARGE_BUCKET, SMALL_BUCKET):
            os.makedirs(os.path.join(self.data, b), exist_ok=True)
        populate_disk(self.data, list_n)

    def version(self):
        return ""


class Kura(Server):
    name = "kura"
    protocols = ("webdav", "s3")
    dav_prefix = "/dav"
    fs_backed = False

    def __init__(self, root, peer_cert, binary):
        super().__init__(root, peer_cert)
        self.binary = binary
        self.key = None

    def kenv(self):
        e = dict(os.environ)
        e.update(
            {
                "KURA_DATA_DIR": self.data,
                "KURA_LISTEN": f"127.0.0.1:{self.port}",
                "KURA_ADMIN_PASSWORD": PASSWORD,
                "KURA_TLS": "true" if self.tls else "false",
            }
        )
        e.pop("KURA_CONFIG", None)
        e.pop("RUST_LOG", None)
        return e

    def env(self):
        return self.kenv()

    def command(self):
        return [self.binary, "serve"]

    def basic_header(self):
        import base64

        return "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()

    def s3_credentials(self):
        return self.key

    def cafile(self):
        return os.path.join(self.data, "tls", "cert.pem")

    def after_start(self):
        # healthz, then an access key on first start
        deadline = time.time() + 30
        while True:
            try:
                conn = self.target("webdav").connect(timeout=5)
                st, _ = request(conn, "GET", "/healthz")
                conn.close()
                if st == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.time() > deadline:
                raise RuntimeError(f"kura /healthz did not answer:\n{tail(self.logpath)}")
            time.sleep(0.05)
        if self.key is None:
            out = subprocess.run(
                [self.binary, "key", "create", "--user", "admin", "--json"],
                env=self.kenv(),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            j = json.loads(out)
            self.key = (j["access_key_id"], j["secret_access_key"])

    def prepare(self, list_n):
        pass  # buckets are made through WebDAV once it runs (see prepare_live)

    def prepare_live(self, list_n, clients):
        t = self.target("webdav")
        conn = t.connect()
        sealed = (LARGE_BUCKET + SEALED, SMALL_BUCKET + SEALED)
        for b in (LARGE_BUCKET, SMALL_BUCKET, LIST_BUCKET) + sealed:
            st, data = request(conn, "MKCOL", t.url(f"/dav/{b}"), None, t.headers("MKCOL", ""))
            if st not in (201, 405):
                raise RuntimeError(f"kura MKCOL /dav/{b}: HTTP {st} {data[:200]!r}")
        conn.close()
        # the encrypted twins: their setting turned on beside the running server (empty, so
        # nothing to convert); the encryption rows check their files are sealed on disk
        for b in sealed:
            subprocess.run([self.binary, "encryption", "enable", b], env=self.kenv(),
                           capture_output=True, check=True)
        wall = populate_via(self.target("s3"), list_n, clients)
        log(f"kura: listing folder of {list_n} files made through S3 PUT in {wall:.1f} s")

    def version(self):
        try:
            return subprocess.run(
                [self.binary, "--version"], capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            return "?"

    def stored_is_sealed(self, bucket, key):
        """Whether the stored bytes of `key` in `bucket` are in the sealed format."""
        try:
            with open(os.path.join(self.data, "files", bucket, key), "rb") as f:
                return f.read(len(SEAL_MAGIC)) == SEAL_MAGIC
        except OSError:
            return False


class KuraNoSync(Kura):
    """Kura with `durable_commits = false`: no fsync at all, as the peers (but Garage) run;
    its small-file rows are reported beside the default's (issue 20)."""

    name = "kura-nosync"

    def kenv(self):
        e = super().kenv()
        e["KURA_DURABLE_COMMITS"] = "false"
        return e


class Nginx(Server):
    name = "nginx-dav"
    protocols = ("webdav",)

    def command(self):
        conf = os.path.join(self.root, f"nginx-{self.starts}.conf")
        tmp = os.path.join(self.data, ".nginx-body")
        os.makedirs(tmp, exist_ok=True)
        with open(os.path.join(self.root, "htpasswd"), "w") as f:
            f.write(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        ssl_lines = ""
        if self.tls:
            ssl_lines = (
                f"ssl_certificate {self.peer_cert[0]};\n"
                f"    ssl_certificate_key {self.peer_cert[1]};"
            )
        module = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"
        with open(conf, "w") as f:
            f.write(
                f"""load_module {module};
user root;
worker_processes 1;
pid {self.root}/nginx.pid;
error_log {self.root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  default_type application/octet-stream;
  access_log {self.root}/access.log;
  client_body_temp_path {tmp};
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{self.port}{' ssl' if self.tls else ''};
    {ssl_lines}
    root {self.data};
    client_max_body_size 0;
    location / {{
      auth_basic "bench";
      auth_basic_user_file {self.root}/htpasswd;
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
      dav_access user:rw group:rw all:r;
    }}
  }}
}}
"""
            )
        return ["nginx", "-p", self.root, "-c", conf, "-g", "daemon off; master_process on;"]

    def version(self):
        r = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
        return (r.stderr or r.stdout).strip() + " + dav-ext"


class Dufs(Server):
    name = "dufs"
    protocols = ("webdav",)

    def __init__(self, root, peer_cert, binary):
        super().__init__(root, peer_cert)
        self.binary = binary

    def command(self):
        cmd = [
            self.binary,
            "--allow-all",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-a",
            f"{USER}:{PASSWORD}@/:rw",
        ]
        if self.tls:
            cmd += ["--tls-cert", self.peer_cert[0], "--tls-key", self.peer_cert[1]]
        return cmd + [self.data]

    def version(self):
        return subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout.strip()


class RcloneDav(Server):
    name = "rclone-dav"
    protocols = ("webdav",)

    def __init__(self, root, peer_cert, binary):
        super().__init__(root, peer_cert)
        self.binary = binary

    def command(self):
        cmd = [
            self.binary,
            "serve",
            "webdav",
            self.data,
            "--addr",
            f"127.0.0.1:{self.port}",
            "--user",
            USER,
            "--pass",
            PASSWORD,
            "--config",
            "/dev/null",
        ]
        if self.tls:
            cmd += ["--cert", self.peer_cert[0], "--key", self.peer_cert[1]]
        return cmd

    def version(self):
        out = subprocess.run([self.binary, "version"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "?"


class RcloneS3(RcloneDav):
    name = "rclone-s3"
    protocols = ("s3",)

    def command(self):
        cmd = [
            self.binary,
            "serve",
            "s3",
            self.data,
            "--addr",
            f"127.0.0.1:{self.port}",
            "--auth-key",
            f"{S3_ACCESS},{S3_SECRET}",
            "--config",
            "/dev/null",
        ]
        if self.tls:
            cmd += ["--cert", self.peer_cert[0], "--key", self.peer_cert[1]]
        return cmd


class Garage(Server):
    """Garage (the S3 server self-hosters run), one node with replication factor 1, driven
    through its own CLI for the layout, the access key and the buckets."""

    name = "garage"
    protocols = ("s3",)
    fs_backed = False
    tls_capable = False

    def __init__(self, root, peer_cert, binary, db_engine="sqlite"):
        super().__init__(root, peer_cert)
        self.binary = binary
        self.db_engine = db_engine
        self.key = None
        self.conf = os.path.join(self.root, "garage.toml")
        self.rpc_port = None

    def command(self):
        if self.tls:
            # Garage serves plain HTTP only (TLS belongs to a reverse proxy in front of it)
            raise RuntimeError("garage has no TLS listener of its own")
        if self.rpc_port is None:
            self.rpc_port = free_port()
        meta = os.path.join(self.root, "meta")
        os.makedirs(meta, exist_ok=True)
        # Metadata in SQLite, like Kura's, and both fsyncs on, like Kura's default (an upload is
        # durable when acknowledged): the same engine and the same promise. Garage's defaults
        # (LMDB, no fsync) would compare a different durability; --garage-db lmdb measures it.
        with open(self.conf, "w") as f:
            f.write(
                f"""metadata_dir = "{meta}"
data_dir = "{self.data}"
db_engine = "{self.db_engine}"
metadata_fsync = true
data_fsync = true
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{self.rpc_port}"
rpc_public_addr = "127.0.0.1:{self.rpc_port}"
rpc_secret = "{'5e' * 32}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{self.port}"
root_domain = ".s3.garage.localhost"
"""
            )
        return [self.binary, "-c", self.conf, "server"]

    def env(self):
        e = dict(os.environ)
        e["RUST_LOG"] = "garage=warn"
        return e

    def cli(self, *args):
        r = subprocess.run(
            [self.binary, "-c", self.conf, *args], capture_output=True, text=True, env=self.env()
        )
        if r.returncode != 0:
            raise RuntimeError(f"garage {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def s3_credentials(self):
        return self.key

    def after_start(self):
        if self.key is not None:
            self.wait_ready()  # a restart (every phase of the full run): the S3 side answers
            return
        # first start: a one-node layout, then a key
        deadline = time.time() + 30
        while True:
            try:
                node = self.cli("node", "id", "-q").strip().split("@")[0]
                break
            except RuntimeError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.cli("layout", "assign", "-z", "dc1", "-c", "10G", node)
        self.cli("layout", "apply", "--version", "1")
        out = self.cli("key", "create", "bench-key")
        ak = re.search(r"Key ID:\s*(\S+)", out)
        sk = re.search(r"Secret key:\s*(\S+)", out)
        if not ak or not sk:
            raise RuntimeError(f"garage key create: no key in {out!r}")
        self.key = (ak.group(1), sk.group(1))

    def wait_ready(self):
        """Until a bucket answers: the layout takes a moment to reach the S3 side."""
        t = self.target("s3")
        deadline = time.time() + 30
        while True:
            try:
                self.warm(t)
                return
            except (RuntimeError, OSError, http.client.HTTPException):
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def prepare(self, list_n):
        pass  # buckets are made through the CLI once it runs (see prepare_live)

    def prepare_live(self, list_n, clients):
        for b in (LARGE_BUCKET, SMALL_BUCKET, LIST_BUCKET):
            self.cli("bucket", "create", b)
            self.cli("bucket", "allow", "--read", "--write", "--owner", b, "--key", "bench-key")
        self.wait_ready()
        wall = populate_via(self.target("s3"), list_n, clients)
        log(f"garage: listing bucket of {list_n} objects made through S3 PUT in {wall:.1f} s")

    def version(self):
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        return (out.strip().splitlines() or ["?"])[0] + f" (db_engine {self.db_engine}, fsync on)"


# ---------------------------------------------------------------------------------------------
# Physical reference: the same bytes through a loopback socket into (or out of) a file


def _recv_exact(c, n):
    b = b""
    while len(b) < n:
        k = c.recv(n - len(b))
        if not k:
            raise EOFError("short read")
        b += k
    return b


def ref_server_main(args):
    """Child process: accepts one connection and either writes what it receives into a file
    (sink) or sends a file (source). No protocol logic."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(1)
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    while True:
        c, _ = ls.accept()
        try:
            _ref_serve_one(c, ctx, args)
        except (OSError, EOFError):
            pass  # the harness's port probe, or a client that went away
        finally:
            c.close()


def _ref_serve_one(c, ctx, args):
    if ctx:
        c = ctx.wrap_socket(c, server_side=True)
    if args.mode == "sink":
        size = int.from_bytes(_recv_exact(c, 8), "big")
        buf = bytearray(MIB)
        left = size
        with open(args.file, "wb") as f:
            while left:
                k = c.recv_into(buf, min(left, MIB))
                if not k:
                    break
                f.write(memoryview(buf)[:k])
                left -= k
        c.sendall(b"ok" if left == 0 else b"no")
    else:
        with open(args.file, "rb") as f:
            if ctx:
                while True:
                    b = f.read(MIB)
                    if not b:
                        break
                    c.sendall(b)
            else:
                c.sendfile(f)
    c.close()


class Reference:
    name = "ref"

    def __init__(self, root, peer_cert):
        self.root = os.path.join(root, "ref")
        os.makedirs(self.root, exist_ok=True)
        self.peer_cert = peer_cert
        self.proc = None

    def start(self, mode, tls, path):
        self.port = free_port()
        self.tls = tls
        cmd = [sys.executable, os.path.abspath(__file__), "ref-server", "--mode", mode,
               "--port", str(self.port), "--file", path]
        if tls:
            cmd += ["--cert", self.peer_cert[0], "--key", self.peer_cert[1]]
        self.logpath = os.path.join(self.root, "ref.log")
        with open(self.logpath, "ab") as lf:
            self.proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port, self.proc, self.logpath)

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.peer_cert[0])
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        return s

    def stop(self):
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None


# ---------------------------------------------------------------------------------------------
# The run


class Runner:
    def __init__(self, args):
        self.args = args
        self.results = []
        self.skipped = dict(args.skipped)
        self.quick = args.quick
        if self.quick:
            self.large = args.large_mib * MIB if args.large_mib else 16 * MIB
            self.small_n = args.small_n or 160
            self.list_n = args.list_n or 300
            self.list_reps = 2
            self.page = 100  # several pages, as in the full run
        else:
            self.large = (args.large_mib or 1024) * MIB
            self.small_n = args.small_n or 2000
            self.list_n = args.list_n or 10000
            self.list_reps = args.list_reps
            self.page = 1000
        self.small_size = 4096
        self.clients = args.clients
        self.reps = 1 if self.quick else args.reps
        self.restart_per_phase = not self.quick
        self.transports = [False, True]

    # -- recording --------------------------------------------------------------------------

    def record(self, server, protocol, tls, workload, op, **kw):
        r = {
            "server": server,
            "protocol": protocol,
            "transport": "https" if tls else "http",
            "workload": workload,
            "op": op,
        }
        r.update(kw)
        self.results.append(r)
        line = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in kw.items()
            if k not in ("error_samples", "rate_runs")
        )
        log(f"{server:10s} {protocol:6s} {r['transport']:5s} {workload:5s} {op:9s} {line}")
        for s in kw.get("error_samples") or []:
            log(f"    error: {s}")

    # -- phases -------------------------------------------------------------------------------

    def measured(self, server, fn):
        pid = server.proc.pid
        c0 = cpu_seconds(pid)
        u0 = os.times()
        out = fn()
        c1 = cpu_seconds(pid)
        u1 = os.times()
        client_cpu = (u1.user - u0.user) + (u1.system - u0.system)
        return out, c1 - c0, peak_rss_mib(pid), client_cpu

    def phase(self, server, tls, fn, pre=None):
        """Runs fn with the server up; restarts it per phase in full mode so that VmHWM is the
        peak of that phase only. `pre` runs before the measurement starts."""
        if self.restart_per_phase or server.proc is None or server.tls != tls:
            server.stop()
            server.start(tls)
            for t in server.targets():
                server.warm(t)
        elif server.proc is not None:
            reset_peak_rss(server.proc.pid)  # the peak of this phase, not of the ones before
        if pre:
            pre()
        return self.measured(server, fn)

    def merged(self, runs, cpu_key, rate_key):
        """One record from the repetitions of a phase: medians, errors summed, and the CPU per
        unit of every repetition (to show the spread)."""
        out = {}
        for k, v in runs[0].items():
            if k in ("errors",):
                out[k] = sum(r[k] for r in runs)
            elif k == "error_samples":
                out[k] = [e for r in runs for e in r[k]][:5]
            elif isinstance(v, float):
                out[k] = statistics.median(r[k] for r in runs)
            else:
                out[k] = v
        out["reps"] = len(runs)
        out["cpu_runs"] = [round(r[cpu_key], 4) for r in runs]
        out["rate_runs"] = [round(r[rate_key], 1) for r in runs]
        return out

    def small_run(self, wall, tally, cpu, rss, ccpu):
        """One repetition of the small-file workload as a record."""
        lat = sorted(tally.lat) or [float("nan")]
        return dict(
            ops=self.small_n, clients=self.clients, wall_s=wall,
            ops_s=self.small_n / wall,
            p50_ms=1000 * lat[len(lat) // 2],
            p99_ms=1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            errors=tally.errors, error_samples=tally.samples,
            cpu_s=cpu, cpu_us_per_op=1e6 * cpu / self.small_n, peak_rss_mib=rss,
            client_cpu_s=ccpu,
        )

    def large_phases(self, server, src, digest):
        gib = self.large / GIB
        for tls in self.transports:
            if tls and not server.tls_capable:
                continue
            for t_proto in server.protocols:
                key = f"big-{t_proto}"
                runs = {"PUT": [], "GET": []}
                for _ in range(self.reps):
                    for op in ("PUT", "GET"):
                        def fn():
                            t = server.target(t_proto)
                            if op == "PUT":
                                return wl_large_put(t, src, self.large, key)
                            return wl_large_get(t, self.large, key, digest)

                        def pre():
                            # A PUT never replaces the file of the run before: freeing 1 GiB
                            # (with online discard) inside the measured PUT would be charged
                            # to whoever unlinks it. And every large phase starts without
                            # dirty pages, so no server pays for the writeback of another.
                            if op == "PUT":
                                wl_delete(server.target(t_proto), LARGE_BUCKET, key)
                            os.sync()

                        (dt, err), cpu, rss, ccpu = self.phase(server, tls, fn, pre)
                        runs[op].append(dict(
                            bytes=self.large, wall_s=dt, mib_s=self.large / MIB / dt,
                            errors=1 if err else 0, error_samples=[err] if err else [],
                            cpu_s=cpu, cpu_s_per_gib=cpu / gib, peak_rss_mib=rss,
                            client_cpu_s=ccpu,
                        ))
                for op in ("PUT", "GET"):
                    self.record(server.name, t_proto, tls, "large", op,
                                **self.merged(runs[op], "cpu_s_per_gib", "mib_s"))

    def small_phases(self, server):
        for t_proto in server.protocols:
            runs = {"PUT": [], "GET": []}
            for rep in range(self.reps):
                for op in ("PUT", "GET"):
                    def fn():
                        t = server.target(t_proto)
                        w = wl_small_put if op == "PUT" else wl_small_get
                        return w(t, self.small_n, self.small_size, self.clients, f"r{rep}-")

                    (wall, tally), cpu, rss, ccpu = self.phase(server, False, fn)
                    runs[op].append(self.small_run(wall, tally, cpu, rss, ccpu))
            for op in ("PUT", "GET"):
                self.record(server.name, t_proto, False, "small", op,
                            **self.merged(runs[op], "cpu_us_per_op", "ops_s"))

    def encryption_phases(self, server):
        """Kura alone: a plain bucket against its encrypted twin on the same running server
        (S3, plain HTTP), large PUT and GET (CPU s/GiB) and small PUT and GET (CPU µs/op),
        the two forms alternating within each repetition (small GETs: in alternating pairs after
        the repetitions) so that drift on a shared machine
        falls on both. Every file written to the twin must be sealed on disk."""
        server.stop()
        server.start(False)
        server.warm(server.target("s3"))
        gib = self.large / GIB
        runs = {}
        for rep in range(self.reps):
            forms = ["plain", "encrypted"] if rep % 2 == 0 else ["encrypted", "plain"]
            for form in forms:
                suffix = SEALED if form == "encrypted" else ""
                large_b, small_b = LARGE_BUCKET + suffix, SMALL_BUCKET + suffix
                key = "big-enc"
                for op in ("PUT", "GET"):
                    def fn():
                        t = server.target("s3")
                        if op == "PUT":
                            return wl_large_put(t, self.src, self.large, key, large_b)
                        return wl_large_get(t, self.large, key, self.digest, large_b)

                    if op == "PUT":
                        wl_delete(server.target("s3"), large_b, key)
                    os.sync()
                    reset_peak_rss(server.proc.pid)
                    (dt, err), cpu, rss, ccpu = self.measured(server, fn)
                    if not err and op == "PUT" and server.stored_is_sealed(large_b, key) != (
                        form == "encrypted"
                    ):
                        err = f"{large_b}/{key}: stored {'plain' if suffix else 'sealed'}"
                    runs.setdefault(("large " + op, form), []).append(dict(
                        bytes=self.large, wall_s=dt, mib_s=self.large / MIB / dt,
                        errors=1 if err else 0, error_samples=[err] if err else [],
                        cpu_s=cpu, cpu_s_per_gib=cpu / gib, peak_rss_mib=rss,
                        client_cpu_s=ccpu,
                    ))
                prefix = f"enc{rep}-"

                def fn():
                    t = server.target("s3")
                    return wl_small_put(t, self.small_n, self.small_size, self.clients, prefix,
                                        small_b)

                reset_peak_rss(server.proc.pid)
                (wall, tally), cpu, rss, ccpu = self.measured(server, fn)
                if server.stored_is_sealed(small_b, f"{prefix}f000000") != (form == "encrypted"):
                    tally.err(f"{small_b}/{prefix}f000000: stored {'plain' if suffix else 'sealed'}")
                runs.setdefault(("small PUT", form), []).append(
                    self.small_run(wall, tally, cpu, rss, ccpu))
            wl_delete(server.target("s3"), LARGE_BUCKET, "big-enc")
            wl_delete(server.target("s3"), LARGE_BUCKET + SEALED, "big-enc")
        # Small GETs, the row closest to the noise: a 4 KiB GET costs ~200 µs and a phase of one
        # form moves by ±30% between phases on these VMs, so 3 phases per form gave verdicts
        # from -15% to +72% for the same GET path (docs/performance.md). They run last, in
        # alternating pairs over the files of the last repetition, with at least 12 pairs.
        prefix = f"enc{self.reps - 1}-"
        for i in range(max(12, 3 * self.reps)):
            for form in (["plain", "encrypted"] if i % 2 == 0 else ["encrypted", "plain"]):
                small_b = SMALL_BUCKET + (SEALED if form == "encrypted" else "")

                def fn():
                    t = server.target("s3")
                    return wl_small_get(t, self.small_n, self.small_size, self.clients, prefix,
                                        small_b)

                reset_peak_rss(server.proc.pid)
                (wall, tally), cpu, rss, ccpu = self.measured(server, fn)
                runs.setdefault(("small GET", form), []).append(
                    self.small_run(wall, tally, cpu, rss, ccpu))
        for (op, form), rs in runs.items():
            cpu_key = "cpu_s_per_gib" if op.startswith("large") else "cpu_us_per_op"
            rate_key = "mib_s" if op.startswith("large") else "ops_s"
            self.record(server.name, "s3", False, "encryption", op, bucket=form,
                        **self.merged(rs, cpu_key, rate_key))

    def list_phases(self, server):
        for t_proto in server.protocols:
            if t_proto == "webdav":
                shapes = PROPFIND_SHAPES
            else:
                shapes = [("ListV2", None, None)]
            for op, body, extra in shapes:
                def fn():
                    t = server.target(t_proto)
                    times, errs = [], []
                    for _ in range(self.list_reps):
                        if t_proto == "webdav":
                            dt, err = wl_list_dav(t, self.list_n, body, extra)
                        else:
                            dt, err = wl_list_s3(t, self.list_n, self.page)
                        times.append(dt)
                        if err:
                            errs.append(err)
                    return times, errs

                (times, errs), cpu, rss, ccpu = self.phase(server, False, fn)
                # what the server keeps once the listings are answered (memory that returns)
                time.sleep(1)
                rss_after = rss_mib(server.proc.pid)
                self.record(
                    server.name, t_proto, False, "list", op,
                    entries=self.list_n, reps=self.list_reps,
                    ms=1000 * statistics.median(times), ms_min=1000 * min(times),
                    errors=len(errs), error_samples=errs[:5],
                    cpu_s=cpu, cpu_ms_per_list=1000 * cpu / self.list_reps, peak_rss_mib=rss,
                    rss_after_mib=rss_after, client_cpu_s=ccpu,
                )

    def reference(self, ref, src, tmpfile, digest):
        for tls in self.transports:
            # upload: client socket -> server writes file (a new file, no dirty pages around)
            if os.path.exists(tmpfile):
                os.unlink(tmpfile)
            os.sync()
            ref.start("sink", tls, tmpfile)
            pid = ref.proc.pid
            c0 = cpu_seconds(pid)
            t0 = time.perf_counter()
            s = ref.connect()
            s.sendall(self.large.to_bytes(8, "big"))
            with open(src, "rb") as f:
                while True:
                    b = f.read(MIB)
                    if not b:
                        break
                    s.sendall(b)
            ack = _recv_exact(s, 2)
            dt = time.perf_counter() - t0
            s.close()
            cpu = cpu_seconds(pid) - c0
            rss = peak_rss_mib(pid)
            ref.stop()
            size = os.path.getsize(tmpfile)
            err = None if ack == b"ok" and size == self.large else f"sink got {size} bytes"
            self.record("ref", "socket", tls, "large", "PUT", bytes=self.large, wall_s=dt,
                        mib_s=self.large / MIB / dt, errors=1 if err else 0,
                        error_samples=[err] if err else [], cpu_s=cpu,
                        cpu_s_per_gib=cpu / (self.large / GIB), peak_rss_mib=rss)
            # download: server sends the file -> client reads
            ref.start("source", tls, tmpfile)
            pid = ref.proc.pid
            c0 = cpu_seconds(pid)
            t0 = time.perf_counter()
            s = ref.connect()
            buf = bytearray(MIB)
            got = 0
            while True:
                k = s.recv_into(buf)
                if not k:
                    break
                got += k
            dt = time.perf_counter() - t0
            s.close()
            cpu = cpu_seconds(pid) - c0
            rss = peak_rss_mib(pid)
            ref.stop()
            err = None if got == self.large else f"source sent {got} bytes"
            self.record("ref", "socket", tls, "large", "GET", bytes=self.large, wall_s=dt,
                        mib_s=self.large / MIB / dt, errors=1 if err else 0,
                        error_samples=[err] if err else [], cpu_s=cpu,
                        cpu_s_per_gib=cpu / (self.large / GIB), peak_rss_mib=rss)
        os.unlink(tmpfile)

    # -- everything -----------------------------------------------------------------------------

    def run(self):
        a = self.args
        t_start = time.time()
        base = a.workdir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target")
        os.makedirs(base, exist_ok=True)
        # The clean-up of the run before deleted thousands of files; on ext4 without a journal
        # creating files within 5 minutes of that costs a scan of the deleted inodes (see
        # docs/performance.md), so a full run waits that long after the previous clean-up.
        stamp = os.path.join(base, ".kura-bench-cleanup")
        if not self.quick and os.path.exists(stamp):
            wait = 300 - (time.time() - os.path.getmtime(stamp))
            if wait > 0:
                log(f"waiting {wait:.0f} s: the previous run deleted its files less than 5 minutes ago")
                time.sleep(wait)
        t_start = time.time()
        root = tempfile.mkdtemp(prefix="kura-bench-", dir=base)
        log(f"work dir {root} (same disk as the data dirs)")
        cert, key = os.path.join(root, "peer-cert.pem"), os.path.join(root, "peer-key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )
        peer_cert = (cert, key)
        src = os.path.join(root, "large.bin")
        block = os.urandom(16 * MIB if self.large >= 16 * MIB else self.large)
        with open(src, "wb") as f:
            left = self.large
            while left:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
        os.sync()  # the source file's pages are written back before anything is measured
        digest = None
        if self.quick:
            h = hashlib.sha256()
            with open(src, "rb") as f:
                for b in iter(lambda: f.read(MIB), b""):
                    h.update(b)
            digest = h.hexdigest()
        self.md5_cpu_s_per_gib = md5_cpu_s_per_gib(src, self.large)
        log(f"MD5 of the large file in this process: {self.md5_cpu_s_per_gib:.2f} CPU s/GiB")

        servers = [Kura(root, peer_cert, a.kura)]
        only_enc = a.encryption_only
        if only_enc:
            pass
        else:
            servers.append(KuraNoSync(root, peer_cert, a.kura))
        if only_enc:
            pass
        elif a.nginx:
            servers.append(Nginx(root, peer_cert))
        if a.dufs:
            servers.append(Dufs(root, peer_cert, a.dufs))
        if a.rclone_dav:
            servers.append(RcloneDav(root, peer_cert, a.rclone_dav))
        if a.rclone_s3:
            servers.append(RcloneS3(root, peer_cert, a.rclone_s3))
        if a.garage:
            servers.append(Garage(root, peer_cert, a.garage, a.garage_db))
        self.versions = {}
        try:
            for s in servers:
                self.versions[s.name] = s.version()
                log(f"== {s.name}: {self.versions[s.name]}")
                try:
                    s.prepare(self.list_n)
                    if not s.fs_backed:
                        s.start(False)
                        s.prepare_live(0 if only_enc else self.list_n, self.clients)
                    if isinstance(s, KuraNoSync):
                        self.small_phases(s)  # the setting changes what a commit fsyncs only
                    elif not only_enc:
                        self.large_phases(s, src, digest)
                        self.small_phases(s)
                        self.list_phases(s)
                    if type(s) is Kura:
                        self.src, self.digest = src, digest
                        self.encryption_phases(s)
                except Exception as e:  # a peer that cannot run is a failure of the run
                    log(f"{s.name}: FAILED: {e}")
                    self.results.append({"server": s.name, "failed": str(e)})
                finally:
                    # Small files stay until the end of the run: on ext4 without a journal (as
                    # on these VMs) every file created soon after many deletions pays for a scan
                    # of the recently deleted inodes, which would tax the next server's PUTs.
                    # The few large files go now, with their dirty pages, and the rest is
                    # written back before the next server starts.
                    s.stop()
                    if not a.keep:
                        remove_large_files(s.root)
                    os.sync()
            if not only_enc:
                ref = Reference(root, peer_cert)
                self.versions["ref"] = f"python {platform.python_version()} socket -> file"
                log("== ref: loopback socket <-> file")
                try:
                    self.reference(ref, src, os.path.join(root, "ref", "copy.bin"), digest)
                except Exception as e:
                    log(f"ref: FAILED: {e}")
                    self.results.append({"server": "ref", "failed": str(e)})
                finally:
                    ref.stop()
        finally:
            for s in servers:
                s.stop()
            self.elapsed = time.time() - t_start
            rc = 1
            if sys.exc_info()[0] is None:  # an interrupted run leaves the last report alone
                rc = self.report()
            if not a.keep:
                t0 = time.time()
                log(f"removing {root} (deleting large files is slow on this disk)")
                shutil.rmtree(root, ignore_errors=True)
                with open(stamp, "w") as f:
                    f.write(f"{time.time()}\n")
                log(f"removed in {time.time() - t0:.0f} s")
        return rc

    # -- report ---------------------------------------------------------------------------------

    def report(self):
        from bench_report import build_report  # noqa: E402 (same folder)

        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "mode": ("encryption rows" if self.args.encryption_only else
                     "quick" if self.quick else "full"),
            "host": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
            "kernel": platform.release(),
            "kura_binary": self.args.kura,
            "git": self.args.git or "",
            "versions": self.versions,
            "skipped": self.skipped,
            "notes": self.args.note,
            "sizes": {
                "large_bytes": self.large,
                "small_files": self.small_n,
                "small_bytes": self.small_size,
                "clients": self.clients,
                "list_entries": self.list_n,
                "list_reps": self.list_reps,
                "reps": self.reps,
                "list_page": self.page,
            },
            "rss": "VmHWM of a server started for this phase alone"
            if self.restart_per_phase
            else "VmHWM of the phase (one server start per transport, the peak reset before "
            "each phase through /proc/PID/clear_refs; quick mode)",
            "elapsed_s": round(self.elapsed, 1),
            "md5_cpu_s_per_gib": getattr(self, "md5_cpu_s_per_gib", None),
        }
        md, data = build_report(meta, self.results)
        os.makedirs(self.args.out, exist_ok=True)
        stem = "encryption" if self.args.encryption_only else "quick" if self.quick else "latest"
        with open(os.path.join(self.args.out, f"{stem}.md"), "w") as f:
            f.write(md)
        with open(os.path.join(self.args.out, f"{stem}.json"), "w") as f:
            json.dump(data, f, indent=1, sort_keys=False)
        print(md)
        log(f"wrote {self.args.out}/{stem}.md and {stem}.json in {self.elapsed:.0f} s")
        clean = [r for r in self.results if not r.get("failed") and not r.get("errors")]
        dirty = [r for r in self.results if r.get("failed") or r.get("errors")]
        # one line per run in the form test runners close with: phases without errors / with
        print(f"bench: {len(clean)} passed, {len(dirty)} failed")
        failures = [r for r in self.results if r.get("failed")]
        errors = [r for r in self.results if r.get("errors")]
        bad = failures + errors
        if bad:
            for r in bad:
                log(
                    f"ERROR: {r['server']} "
                    + (f"failed: {r['failed']}" if r.get("failed") else
                       f"{r['protocol']} {r['transport']} {r['workload']} {r['op']}: "
                       f"{r['errors']} errors, e.g. {r.get('error_samples', [])[:1]}")
                )
            return 1
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd")
    rs = sub.add_parser("ref-server")
    rs.add_argument("--mode", choices=["sink", "source"], required=True)
    rs.add_argument("--port", type=int, required=True)
    rs.add_argument("--file", required=True)
    rs.add_argument("--cert")
    rs.add_argument("--key")
    p.add_argument("--quick", action="store_true", help="small sizes, a few seconds (CI)")
    p.add_argument("--kura", help="kura binary")
    p.add_argument("--nginx", action="store_true", help="include nginx with dav + dav-ext")
    p.add_argument("--dufs", help="dufs binary")
    p.add_argument("--rclone-dav", help="rclone binary for serve webdav")
    p.add_argument("--rclone-s3", help="rclone binary with serve s3")
    p.add_argument("--garage", help="garage binary (S3 peer, one node)")
    p.add_argument("--garage-db", default="sqlite", choices=["sqlite", "lmdb"],
                   help="Garage's metadata engine (default sqlite, like Kura's)")
    p.add_argument("--skipped", action="append", nargs=2, default=[], metavar=("PEER", "WHY"),
                   help="a peer left out and why (recorded in the report)")
    p.add_argument("--note", action="append", default=[], help="a line for the report")
    p.add_argument("--large-mib", type=int, help="size of the large file (default 1024)")
    p.add_argument("--small-n", type=int, help="number of small files (default 2000)")
    p.add_argument("--list-n", type=int, help="entries in the listed folder (default 10000)")
    p.add_argument("--reps", type=int, default=3,
                   help="repetitions of each large and small phase (median; full run)")
    p.add_argument("--list-reps", type=int, default=5, help="listings per server (median)")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (small files)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    p.add_argument("--workdir", help="where temporary data dirs go (default target/)")
    p.add_argument("--git", help="commit being measured (for the report)")
    p.add_argument("--keep", action="store_true", help="keep data dirs and server logs")
    p.add_argument("--encryption-only", action="store_true",
                   help="Kura alone, the encryption rows only (plain vs encrypted bucket)")
    args = p.parse_args()
    if args.cmd == "ref-server":
        ref_server_main(args)
        return 0
    if not args.kura:
        p.error("--kura is required")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")  # so that every server gets stopped

    signal.signal(signal.SIGTERM, on_term)
    return Runner(args).run()


if __name__ == "__main__":
    sys.exit(main())
