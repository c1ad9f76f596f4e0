#!/usr/bin/env python3
"""Tree operations under concurrency (issue 26): twelve WebDAV clients and four S3 clients do
random PUT, MKCOL, MOVE, COPY, DELETE, PutObject, CopyObject and DeleteObjects on a small tree
for a few seconds (seeded: `--seed` replays the choices), then the WebDAV tree walked with
PROPFIND, the S3 listing and the files on disk must name the same files with the same sizes,
and no answer may have been a 5xx.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY. Arguments: --port,
--files (the data dir's files/ folder), --seconds, --seed. Prints one JSON line; exits 1 on a
problem.
"""
import argparse
import base64
import collections
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

import boto3
import botocore.config
import botocore.exceptions

AUTH = "Basic " + base64.b64encode(b"admin:conformance-admin-pw").decode()
BUCKET = "tort"
DIRS = ["a", "a/b", "c", "c/d", "ex", "a/b/e"]
NAMES = ["f0", "f1", "f2", "f3"]


def dav(port, method, path, body=None, headers=None):
    h = {"Authorization": AUTH}
    h.update(headers or {})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, "/dav/" + BUCKET + "/" + urllib.parse.quote(path), body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status == 207 and method != "PROPFIND" and b"HTTP/1.1 5" in data:
        # a multi-status naming a server error for a member counts as that error
        return 599, data
    return r.status, data


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--files", required=True)
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--seed", default="1")
    args = p.parse_args()
    port = args.port
    statuses = collections.Counter()
    errors = []
    lock = threading.Lock()
    deadline = time.time() + args.seconds

    def seen(what, status, detail=""):
        with lock:
            statuses[f"{what} {status}"] += 1
            if status >= 500:
                errors.append(f"{what} -> {status} {detail}"[:300])

    def target(rng):
        return rng.choice(DIRS + [""])

    def file_path(rng):
        d = target(rng)
        return (d + "/" if d else "") + rng.choice(NAMES)

    def dav_client(n):
        rng = random.Random(f"{args.seed}-dav-{n}")
        while time.time() < deadline:
            k = rng.random()
            if k < 0.35:
                path = file_path(rng)
                body = os.urandom(rng.choice([0, 10, 3000, 70000]))
                st, d = dav(port, "PUT", path, body)
                seen("PUT", st, d[:100])
            elif k < 0.5:
                path = target(rng)
                if not path:
                    continue
                st, d = dav(port, "MKCOL", path)
                seen("MKCOL", st, d[:100])
            elif k < 0.68:
                src = rng.choice([target(rng), file_path(rng)])
                dst = rng.choice([target(rng), file_path(rng)])
                if not src or not dst:
                    continue
                st, d = dav(port, "MOVE", src, headers={
                    "Destination": f"http://127.0.0.1:{port}/dav/{BUCKET}/{dst}",
                    "Overwrite": rng.choice(["T", "F"])})
                seen("MOVE", st, f"{src} -> {dst} {d[:100]}")
            elif k < 0.8:
                src = rng.choice([target(rng), file_path(rng)])
                dst = rng.choice([target(rng), file_path(rng)])
                if not src or not dst:
                    continue
                st, d = dav(port, "COPY", src, headers={
                    "Destination": f"http://127.0.0.1:{port}/dav/{BUCKET}/{dst}",
                    "Overwrite": rng.choice(["T", "F"]), "Depth": "infinity"})
                seen("COPY", st, f"{src} -> {dst} {d[:100]}")
            else:
                path = rng.choice([target(rng), file_path(rng)])
                if not path:
                    continue
                st, d = dav(port, "DELETE", path)
                seen("DELETE", st, f"{path} {d[:100]}")

    def s3():
        return boto3.client(
            "s3", endpoint_url=os.environ["KURA_S3_ENDPOINT"], region_name="us-east-1",
            config=botocore.config.Config(retries={"max_attempts": 1},
                                          s3={"addressing_style": "path"}))

    def s3_client(n):
        rng = random.Random(f"{args.seed}-s3-{n}")
        c = s3()

        def call(what, f, **kw):
            try:
                f(**kw)
                seen(what, 200)
            except botocore.exceptions.ClientError as e:
                st = e.response["ResponseMetadata"]["HTTPStatusCode"]
                seen(what, st, f"{kw.get('Key', '')} {e.response['Error'].get('Code')} "
                               f"{e.response['Error'].get('Message')}")

        while time.time() < deadline:
            k = rng.random()
            if k < 0.45:
                call("PutObject", c.put_object, Bucket=BUCKET, Key=file_path(rng),
                     Body=os.urandom(rng.choice([0, 5, 2000])))
            elif k < 0.65:
                call("CopyObject", c.copy_object, Bucket=BUCKET, Key=file_path(rng),
                     CopySource={"Bucket": BUCKET, "Key": file_path(rng)})
            elif k < 0.85:
                keys = [{"Key": file_path(rng)} for _ in range(rng.randrange(1, 6))]
                try:
                    r = c.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
                    seen("DeleteObjects", 200)
                    for e in r.get("Errors", []):
                        code = e.get("Code")
                        if code in ("InternalError", "ServiceUnavailable"):
                            seen("DeleteObjects/key", 500, f"{e.get('Key')} {code} {e.get('Message')}")
                except botocore.exceptions.ClientError as e:
                    seen("DeleteObjects", e.response["ResponseMetadata"]["HTTPStatusCode"],
                         str(e))
            else:
                call("DeleteObject", c.delete_object, Bucket=BUCKET, Key=file_path(rng))

    threads = [threading.Thread(target=dav_client, args=(n,)) for n in range(12)]
    threads += [threading.Thread(target=s3_client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # the three views of the tree, taken after the dust settled
    def walk_dav(path=""):
        st, d = dav(port, "PROPFIND", path, headers={"Depth": "1"})
        assert st == 207, (path, st, d[:200])
        ns = {"D": "DAV:"}
        out = {}
        for r in ET.fromstring(d).findall("D:response", ns):
            href = urllib.parse.unquote(r.find("D:href", ns).text)
            rel = href[len(f"/dav/{BUCKET}/"):].rstrip("/")
            if rel == path.rstrip("/"):
                continue
            if r.find(".//D:resourcetype/D:collection", ns) is not None:
                out.update(walk_dav(rel + "/"))
                out[rel + "/"] = -1
            else:
                out[rel] = int(r.find(".//D:getcontentlength", ns).text)
        return out

    webdav = walk_dav()
    listed = {}
    for page in s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            listed[o["Key"]] = o["Size"]
    disk = {}
    root = os.path.join(args.files, BUCKET)
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        for f in files:
            disk[os.path.normpath(os.path.join(rel, f))] = os.path.getsize(os.path.join(d, f))
        for sub in dirs:
            disk[os.path.normpath(os.path.join(rel, sub)) + "/"] = -1
    problems = list(errors)
    files_dav = {k: v for k, v in webdav.items() if v >= 0}
    files_disk = {k: v for k, v in disk.items() if v >= 0}
    if files_dav != files_disk:
        problems.append(f"WebDAV files {sorted(files_dav.items())} != disk {sorted(files_disk.items())}")
    if listed != files_disk:
        problems.append(f"S3 listing {sorted(listed.items())} != disk {sorted(files_disk.items())}")
    if webdav != disk:
        problems.append(f"WebDAV folders {sorted(k for k in webdav if k.endswith('/'))} != disk "
                        f"{sorted(k for k in disk if k.endswith('/'))}")
    print(json.dumps({"seed": args.seed, "requests": sum(statuses.values()),
                      "statuses": dict(sorted(statuses.items())),
                      "files": len(files_disk), "bytes": sum(files_disk.values()),
                      "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
