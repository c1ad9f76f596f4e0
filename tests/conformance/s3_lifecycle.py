"""S3 lifecycle rules through boto3, run by `kura lifecycle run --days-ahead N` (the worker's
pass, as if N days had passed): current objects expire by prefix, tag and age into the
bucket's trash, disabled rules do nothing, noncurrent versions beyond the newest N expire,
lone delete markers go, incomplete multipart uploads are aborted; bad rules and another user
are refused, a WebDAV-locked file is left. Exits non-zero on any failure.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (the bucket owner),
KURA_OTHER_KEY_ID, KURA_OTHER_SECRET (another user), KURA_BIN and the KURA_* variables
`kura` needs to act on the server's data dir.
"""
import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
import s3check
from s3check import client, error_code, ok

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]


def kura(*args):
    out = subprocess.run([os.environ["KURA_BIN"], *args], capture_output=True, text=True)
    ok(out.returncode == 0, f"kura {args}: {out.stderr}")
    return out.stdout


def run(days):
    return kura("lifecycle", "run", "--days-ahead", str(days))


def keys(bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def versions(path):
    return json.loads(kura("versions", "list", path, "--json"))


s3 = client()
other = client(aws_access_key_id=os.environ["KURA_OTHER_KEY_ID"],
               aws_secret_access_key=os.environ["KURA_OTHER_SECRET"])
B = "cycle"
s3.create_bucket(Bucket=B)
ok(error_code(s3.get_bucket_lifecycle_configuration, Bucket=B) == "NoSuchLifecycleConfiguration",
   "no rules yet")

for k in ["logs/locked.txt", "logs/a.txt", "logs/b.txt", "data/c.txt", "other/plain.txt", "gone/x.txt", "big/small.bin"]:
    s3.put_object(Bucket=B, Key=k, Body=b"x")
s3.put_object(Bucket=B, Key="big/large.bin", Body=b"x" * 5000)
s3.put_object(Bucket=B, Key="other/t.txt", Body=b"t")
s3.put_object_tagging(Bucket=B, Key="other/t.txt", Tagging={"TagSet": [{"Key": "temp", "Value": "yes"}]})
for i in range(4):
    s3.put_object(Bucket=B, Key="docs/d.txt", Body=f"v{i}".encode())
upload = s3.create_multipart_upload(Bucket=B, Key="mpu/part.bin")["UploadId"]
s3.delete_object(Bucket=B, Key="gone/x.txt")

# a WebDAV lock on one of the files a rule will expire: the core refuses its delete
import requests
lock = requests.request(
    "LOCK", f"{ENDPOINT}/dav/{B}/logs/locked.txt", auth=("admin", os.environ["KURA_ADMIN_PASSWORD"]),
    headers={"Timeout": "Second-3600", "Content-Type": "application/xml"},
    data='<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
         '<D:locktype><D:write/></D:locktype><D:owner>editor</D:owner></D:lockinfo>', timeout=60)
ok(lock.status_code == 200, f"LOCK: {lock.status_code} {lock.text}")

rules = [
    {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 1}},
    {"ID": "tagged", "Status": "Enabled", "Filter": {"Tag": {"Key": "temp", "Value": "yes"}},
     "Expiration": {"Days": 3}},
    {"ID": "sized", "Status": "Enabled",
     "Filter": {"And": {"Prefix": "big/", "ObjectSizeGreaterThan": 1000}}, "Expiration": {"Days": 1}},
    {"ID": "history", "Status": "Enabled", "Filter": {"Prefix": "docs/"},
     "NoncurrentVersionExpiration": {"NoncurrentDays": 2, "NewerNoncurrentVersions": 1}},
    {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": "gone/"},
     "Expiration": {"ExpiredObjectDeleteMarker": True},
     "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
    {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
    {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "data/"}, "Expiration": {"Days": 1}},
]
s3.put_bucket_lifecycle_configuration(Bucket=B, LifecycleConfiguration={"Rules": rules})
got = s3.get_bucket_lifecycle_configuration(Bucket=B)["Rules"]
ok([r["ID"] for r in got] == [r["ID"] for r in rules], f"rules round trip: {got}")
by_id = {r["ID"]: r for r in got}
ok(by_id["logs"]["Filter"] == {"Prefix": "logs/"} and by_id["logs"]["Expiration"] == {"Days": 1},
   f"logs rule {by_id['logs']}")
ok(by_id["tagged"]["Filter"] == {"Tag": {"Key": "temp", "Value": "yes"}}, f"tag filter {by_id['tagged']}")
ok(by_id["sized"]["Filter"] == {"And": {"Prefix": "big/", "ObjectSizeGreaterThan": 1000}},
   f"and filter {by_id['sized']}")
ok(by_id["history"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 2, "NewerNoncurrentVersions": 1},
   f"noncurrent {by_id['history']}")
ok(by_id["off"]["Status"] == "Disabled", "disabled kept")
ok(by_id["uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}, "abort rule")

# nothing is old yet
before = keys(B)
run(0)
ok(keys(B) == before, f"fresh objects stay: {keys(B)}")
ok(len(s3.list_multipart_uploads(Bucket=B).get("Uploads", [])) == 1, "fresh upload stays")
ok(len([v for v in versions("/cycle/docs/d.txt") if not v["delete_marker"]]) == 3, "3 noncurrent versions")

# two days on: the 1-day rules act, the 3-day tag rule and the disabled rule do not
out = run(2)
ok("3 objects expired" in out, f"run output: {out}")
left = keys(B)
ok("logs/a.txt" not in left and "logs/b.txt" not in left, f"logs expired: {left}")
ok("logs/locked.txt" in left, f"a locked file is not expired: {left}")
ok("big/large.bin" not in left and "big/small.bin" in left, f"size filter: {left}")
ok("data/c.txt" in left and "other/t.txt" in left and "other/plain.txt" in left, f"others stay: {left}")
ok(s3.list_multipart_uploads(Bucket=B).get("Uploads", []) == [], "old upload aborted")
ok(error_code(s3.list_parts, Bucket=B, Key="mpu/part.bin", UploadId=upload) == "NoSuchUpload",
   "aborted upload gone")
# an expiration is a delete: the bucket's policy kept the bytes in its trash
kept = versions("/cycle/logs/a.txt")
ok(any(v["delete_marker"] for v in kept) and any(not v["delete_marker"] for v in kept),
   f"expired object kept in the trash: {kept}")
# the deleted object's bytes are noncurrent for a day, then its marker hides nothing and goes
ok(versions("/cycle/gone/x.txt") == [], f"lone marker dropped: {versions('/lc/gone/x.txt')}")
# noncurrent for 2 days is not yet due (rounded up to the next midnight)
ok(len([v for v in versions("/cycle/docs/d.txt") if not v["delete_marker"]]) == 3, "not yet due")

out = run(4)
left = keys(B)
ok("other/t.txt" not in left and "other/plain.txt" in left, f"tag rule: {left}")
nc = [v for v in versions("/cycle/docs/d.txt") if not v["delete_marker"]]
ok(len(nc) == 1, f"newest noncurrent version kept: {nc}")
ok(s3.get_object(Bucket=B, Key="docs/d.txt")["Body"].read() == b"v3", "current version untouched")
ok("data/c.txt" in left, "disabled rule never acts")

# bad rules are refused and change nothing
def refused(rule):
    return error_code(s3.put_bucket_lifecycle_configuration, Bucket=B,
                      LifecycleConfiguration={"Rules": [rule]})

base = {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}}
ok(refused({**base, "Expiration": {"Days": 0}}) == "InvalidArgument", "Days 0")
ok(refused({**base, "Expiration": {"Date": datetime(2030, 1, 1, 12, tzinfo=timezone.utc)}})
   == "InvalidArgument", "Date not at midnight")
ok(refused({**base, "Expiration": {"Days": 1, "ExpiredObjectDeleteMarker": True}}) == "InvalidArgument",
   "two expirations")
ok(refused(base) == "InvalidArgument", "no action")
ok(refused({**base, "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}) == "NotImplemented",
   "transitions")
ok(refused({**base, "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 101}})
   == "InvalidArgument", "NewerNoncurrentVersions over 100")
ok(refused({**base, "Filter": {"Tag": {"Key": "a", "Value": "b"}},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}) == "InvalidArgument",
   "abort with a tag filter")
ok(error_code(s3.put_bucket_lifecycle_configuration, Bucket=B,
              LifecycleConfiguration={"Rules": [{**base, "Expiration": {"Days": 1}},
                                                {**base, "Expiration": {"Days": 2}}]}) == "InvalidArgument",
   "repeated ID")
ok([r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=B)["Rules"]] == [r["ID"] for r in rules],
   "refused configurations changed nothing")

# another user may neither read, set nor delete the rules (a rule acts as the bucket's owner)
for fn, kw in [(other.get_bucket_lifecycle_configuration, {}),
               (other.put_bucket_lifecycle_configuration,
                {"LifecycleConfiguration": {"Rules": [{**base, "Expiration": {"Days": 1}}]}}),
               (other.delete_bucket_lifecycle, {})]:
    ok(error_code(fn, Bucket=B, **kw) == "AccessDenied", f"other user: {fn.__name__}")

# another user's bucket: its rule deletes only what its owner may delete
other.create_bucket(Bucket="bobs")
other.put_object(Bucket="bobs", Key="tmp/f.txt", Body=b"f")
other.put_bucket_lifecycle_configuration(Bucket="bobs", LifecycleConfiguration={"Rules": [
    {"ID": "all", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]})
run(2)
ok(other.list_objects_v2(Bucket="bobs").get("KeyCount", 0) == 0, "bob's rule expired bob's object")
ok("data/c.txt" in keys(B), "bob's rule left other buckets alone")

# delete: no rules, nothing acts any more
s3.delete_bucket_lifecycle(Bucket=B)
ok(error_code(s3.get_bucket_lifecycle_configuration, Bucket=B) == "NoSuchLifecycleConfiguration",
   "rules deleted")
s3.put_object(Bucket=B, Key="logs/new.txt", Body=b"n")
run(10)
ok("logs/new.txt" in keys(B), "no rules, no expiry")

# an Expiration Date: nothing before that midnight UTC, everything the filter matches after
from datetime import timedelta
tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
s3.put_object(Bucket=B, Key="dated/x.txt", Body=b"d")
s3.put_bucket_lifecycle_configuration(Bucket=B, LifecycleConfiguration={"Rules": [
    {"ID": "dated", "Status": "Enabled", "Filter": {"Prefix": "dated/"}, "Expiration": {"Date": tomorrow}}]})
got = s3.get_bucket_lifecycle_configuration(Bucket=B)["Rules"][0]["Expiration"]["Date"]
ok(got == tomorrow, f"date round trip: {got} {tomorrow}")
run(0)
ok("dated/x.txt" in keys(B), "before the date")
run(2)
ok("dated/x.txt" not in keys(B) and "logs/new.txt" in keys(B), f"after the date: {keys(B)}")

print(f"s3_lifecycle: {s3check.checks} checks passed")
