"""A PutObject whose prefix is emptied while its body streams: S3 has no folders, so the
upload must land (its implicit folder made again), never fail with a conflict. First one
upload paused midway while the prefix's last other key is deleted, then writers and deleters
racing in one prefix. Exits non-zero on any failure; prints the number of checks.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
"""
import http.client
import sys
import threading
import time
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

import os

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]
checks = 0


def ok(cond, what):
    global checks
    checks += 1
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
B = "race"
s3.create_bucket(Bucket=B)

# ---- one upload paused midway: the prefix's last other key goes, then the body ends
s3.put_object(Bucket=B, Key="dir/old.txt", Body=b"old")
url = urlsplit(s3.generate_presigned_url(
    "put_object", Params={"Bucket": B, "Key": "dir/new.txt"}, ExpiresIn=600))
body = b"x" * 100_000
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
conn.putrequest("PUT", f"{url.path}?{url.query}")
conn.putheader("Content-Length", str(len(body)))
conn.endheaders()
conn.send(body[:50_000])
time.sleep(0.3)
s3.delete_object(Bucket=B, Key="dir/old.txt")  # dir/ was implicit: pruned with it
time.sleep(0.3)
conn.send(body[50_000:])
resp = conn.getresponse()
answer = resp.read()
ok(resp.status == 200, f"a PUT whose prefix was emptied midway succeeds: {resp.status} {answer!r}")
got = s3.get_object(Bucket=B, Key="dir/new.txt")["Body"].read()
ok(got == body, "and its bytes are stored")
s3.delete_object(Bucket=B, Key="dir/new.txt")

# ---- writers and deleters racing in one prefix: every PUT lands
failures = []
for i in range(20):
    s3.put_object(Bucket=B, Key=f"p{i}/old", Body=b"old")

    def put(i=i):
        try:
            s3.put_object(Bucket=B, Key=f"p{i}/new", Body=os.urandom(64 * 1024))
        except ClientError as e:
            failures.append((i, e.response["Error"]["Code"]))

    def delete(i=i):
        s3.delete_object(Bucket=B, Key=f"p{i}/old")

    ts = [threading.Thread(target=put), threading.Thread(target=delete)]
    [t.start() for t in ts]
    [t.join() for t in ts]
ok(not failures, f"no PUT fails when its prefix empties meanwhile: {failures}")
listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=B).get("Contents", []))
ok(listed == sorted(f"p{i}/new" for i in range(20)), f"every new key is listed: {listed}")
print(f"{checks} checks passed")
