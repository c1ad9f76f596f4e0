#!/usr/bin/env python3
"""A DELETE with If-Match racing a PUT of the same file (issue 21, known defect 3): a WebDAV
DELETE, then an S3 DeleteObject, carries the ETag of version 1 while another client PUTs
version 2 at the same instant (both threads released by one barrier, one of them a random
0 to 4 ms later). Whatever the order, version 2 must be there afterwards: either the delete
came first (version 1 deleted, version 2 created: PUT 201), or the PUT did (version 2
replaced version 1: PUT 204) and the delete, conditional on version 1, must then refuse
(412, or S3's 409 ConditionalRequestConflict when the write landed after its check).
Also the plain answers: a wrong ETag is 412 and deletes nothing, a missing key is 404, `*`
deletes what is there.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY. Arguments: --port,
--rounds, --seconds (a bound on each protocol's loop). Prints one JSON line; exits 1 on a
problem.
"""
import argparse
import base64
import collections
import hashlib
import http.client
import json
import os
import random
import sys
import threading
import time

import boto3
import botocore.config
import botocore.exceptions

AUTH = "Basic " + base64.b64encode(b"admin:conformance-admin-pw").decode()
BUCKET = "cdel"


class Dav:
    """One keep-alive WebDAV connection."""

    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def req(self, method, key, body=None, headers=None):
        h = {"Authorization": AUTH}
        h.update(headers or {})
        for attempt in range(2):
            try:
                self.c.request(method, "/dav/" + BUCKET + "/" + key, body=body, headers=h)
                r = self.c.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise


def s3_client():
    cfg = botocore.config.Config(
        retries={"max_attempts": 1}, s3={"addressing_style": "path"}
    )
    return boto3.client(
        "s3",
        endpoint_url=os.environ["KURA_S3_ENDPOINT"],
        region_name="us-east-1",
        config=cfg,
    )


def s3_delete(s3, key, if_match):
    try:
        s3.delete_object(Bucket=BUCKET, Key=key, IfMatch=if_match)
        return 204
    except botocore.exceptions.ClientError as e:
        return int(e.response["ResponseMetadata"]["HTTPStatusCode"])


def etag(body):
    return '"' + hashlib.md5(body).hexdigest() + '"'


def race(proto, port, rounds, seconds, problems):
    setup, putter, checker = Dav(port), Dav(port), Dav(port)
    deleter = Dav(port) if proto == "dav" else s3_client()
    counts = collections.Counter()
    began = time.time()
    for i in range(rounds):
        if time.time() - began > seconds:
            break
        counts["rounds"] += 1
        key = "%s-%04d" % (proto, i)
        one, two = b"version 1 of %d" % i, b"version 2 of %d, written during the delete" % i
        s, _ = setup.req("PUT", key, one)
        assert s == 201, (key, s)
        barrier = threading.Barrier(2)
        late = random.choice(["put", "delete"])
        wait = random.uniform(0, 0.004)
        got = {}

        def do_delete():
            barrier.wait()
            if late == "delete":
                time.sleep(wait)
            if proto == "dav":
                got["delete"] = deleter.req("DELETE", key, headers={"If-Match": etag(one)})[0]
            else:
                got["delete"] = s3_delete(deleter, key, etag(one))

        def do_put():
            barrier.wait()
            if late == "put":
                time.sleep(wait)
            got["put"] = putter.req("PUT", key, two)[0]

        threads = [threading.Thread(target=do_delete), threading.Thread(target=do_put)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        d, p = got["delete"], got["put"]
        counts["put %d, delete %d" % (p, d)] += 1
        s, body = checker.req("GET", key)
        if s != 200 or body != two:
            counts["lost"] += 1
            problems.append(
                "%s: PUT answered %d and the DELETE If-Match (version 1) %d, but the file is %s"
                % (key, p, d, "gone" if s == 404 else "%d %r" % (s, body[:40]))
            )
        elif p not in (201, 204) or d not in (204, 409, 412):
            problems.append("%s: PUT %d, DELETE %d" % (key, p, d))
    return dict(counts)


def plain_answers(port, problems):
    dav, s3 = Dav(port), s3_client()
    for proto in ("dav", "s3"):
        key = "plain-" + proto
        dav.req("PUT", key, b"kept")
        if proto == "dav":
            s = dav.req("DELETE", key, headers={"If-Match": etag(b"other")})[0]
            missing = dav.req("DELETE", key + "-none", headers={"If-Match": etag(b"x")})[0]
        else:
            s = s3_delete(s3, key, etag(b"other"))
            missing = s3_delete(s3, key + "-none", etag(b"x"))
        if s != 412 or dav.req("GET", key)[1] != b"kept":
            problems.append("%s: a wrong ETag answered %d" % (proto, s))
        if missing != 404:
            problems.append("%s: If-Match on a missing file answered %d, not 404" % (proto, missing))
        if proto == "s3":
            s = s3_delete(s3, key, "*")
            if s != 204 or dav.req("GET", key)[0] != 404:
                problems.append("s3: If-Match * answered %d" % s)
        else:
            s = dav.req("DELETE", key, headers={"If-Match": etag(b"kept")})[0]
            if s != 204 or dav.req("GET", key)[0] != 404:
                problems.append("dav: the right ETag answered %d" % s)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rounds", type=int, default=400)
    p.add_argument("--seconds", type=float, default=60)
    a = p.parse_args()
    problems = []
    plain_answers(a.port, problems)
    report = {}
    for proto in ("dav", "s3"):
        report[proto] = race(proto, a.port, a.rounds, a.seconds, problems)
    report["problems"] = problems[:20]
    print(json.dumps(report, sort_keys=True))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
