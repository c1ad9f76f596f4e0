"""S3 object lock through boto3 and WebDAV: a bucket created with object lock (versioning on,
never suspended), default retention, Put/GetObjectRetention in governance and compliance mode,
legal holds, x-amz-bypass-governance-retention; a locked version is never destroyed by any
protocol: S3 permanent deletes are refused, a WebDAV PUT over it or a DELETE only adds a version
or a delete marker, renaming or deleting the bucket over WebDAV is refused. Attacks: another
user, bypass by a non-owner, shortening a compliance retention. Prints `LOCKED <key> <id>` and
`FREE <key> <id>` for the test to check that purges keep the one and drop the other. Exits
non-zero on any failure.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (admin, the owner),
KURA_OTHER_KEY_ID, KURA_OTHER_SECRET (another user), KURA_DAV_PASSWORD (admin's password).
"""
import base64
import datetime
import os
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
import s3check
from s3check import client, ok

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]
AUTH = "Basic " + base64.b64encode(f"admin:{os.environ['KURA_DAV_PASSWORD']}".encode()).decode()


def error(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def dav(method, path, data=None, headers=None):
    h = {"Authorization": AUTH}
    h.update(headers or {})
    req = urllib.request.Request(f"{ENDPOINT}/dav/{path}", data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def body(**kw):
    return s3.get_object(**kw)["Body"].read()


def later(days):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)


s3 = client()
bob = client(aws_access_key_id=os.environ["KURA_OTHER_KEY_ID"],
             aws_secret_access_key=os.environ["KURA_OTHER_SECRET"])

# ---- a bucket without object lock refuses lock calls ----
s3.create_bucket(Bucket="plain")
s3.put_object(Bucket="plain", Key="k", Body=b"x")
ok(error(s3.get_object_lock_configuration, Bucket="plain")[0] == "ObjectLockConfigurationNotFoundError",
   "no lock configuration on a plain bucket")
ok(error(s3.put_object_retention, Bucket="plain", Key="k",
         Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(1)})[0] == "InvalidRequest",
   "retention on a bucket without object lock: InvalidRequest")
ok(error(s3.put_object, Bucket="plain", Key="k2", Body=b"x", ObjectLockMode="GOVERNANCE",
         ObjectLockRetainUntilDate=later(1))[0] == "InvalidRequest",
   "lock headers on a bucket without object lock: InvalidRequest")
ok(error(s3.head_object, Bucket="plain", Key="k2")[1] == 404, "and nothing was written")

# ---- a bucket created with object lock ----
B = "vault"
s3.create_bucket(Bucket=B, ObjectLockEnabledForBucket=True)
ok(s3.get_bucket_versioning(Bucket=B)["Status"] == "Enabled", "object lock turns versioning on")
cfg = s3.get_object_lock_configuration(Bucket=B)["ObjectLockConfiguration"]
ok(cfg.get("ObjectLockEnabled") == "Enabled" and "Rule" not in cfg, f"lock enabled, no rule: {cfg}")
ok(error(s3.put_bucket_versioning, Bucket=B,
         VersioningConfiguration={"Status": "Suspended"}) == ("InvalidBucketState", 409),
   "versioning cannot be suspended with object lock")

# governance retention on a version
g1 = s3.put_object(Bucket=B, Key="gov.txt", Body=b"g1")["VersionId"]
s3.put_object_retention(Bucket=B, Key="gov.txt", VersionId=g1,
                        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(2)})
r = s3.get_object_retention(Bucket=B, Key="gov.txt", VersionId=g1)["Retention"]
ok(r["Mode"] == "GOVERNANCE" and r["RetainUntilDate"] > later(1), f"GetObjectRetention: {r}")
ok(error(s3.delete_object, Bucket=B, Key="gov.txt", VersionId=g1)[0] == "AccessDenied",
   "a governance-locked version is not deleted")
ok(error(s3.put_object_retention, Bucket=B, Key="gov.txt", VersionId=g1,
         Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(1)})[0] == "AccessDenied",
   "governance is not shortened without bypass")
s3.put_object_retention(Bucket=B, Key="gov.txt", VersionId=g1,
                        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(3)})
ok(s3.get_object_retention(Bucket=B, Key="gov.txt", VersionId=g1)["Retention"]["RetainUntilDate"] > later(2),
   "but extended")
ok(error(s3.put_object_retention, Bucket=B, Key="gov.txt", VersionId=g1,
         Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(-1)})[0] in ("InvalidArgument", "AccessDenied"),
   "a date in the past is refused")

# plain deletes only add markers; a WebDAV PUT over it only adds a version
d = s3.delete_object(Bucket=B, Key="gov.txt")
ok(d.get("DeleteMarker") is True, "a plain delete adds a marker")
ok(body(Bucket=B, Key="gov.txt", VersionId=g1) == b"g1", "the locked version stays")
s3.delete_object(Bucket=B, Key="gov.txt", VersionId=d["VersionId"])
ok(dav("PUT", f"{B}/gov.txt", b"over webdav") in (200, 201, 204), "WebDAV PUT over a locked version")
ok(body(Bucket=B, Key="gov.txt") == b"over webdav", "the WebDAV bytes are current")
ok(body(Bucket=B, Key="gov.txt", VersionId=g1) == b"g1", "the locked version stays after the WebDAV PUT")
ok(dav("DELETE", f"{B}/gov.txt") == 204, "WebDAV DELETE")
ok(body(Bucket=B, Key="gov.txt", VersionId=g1) == b"g1", "the locked version stays after the WebDAV DELETE")
ok(dav("DELETE", B) == 403, "WebDAV may not delete a bucket with object lock")
ok(dav("MOVE", B, headers={"Destination": f"{ENDPOINT}/dav/elsewhere"}) == 403,
   "nor rename it")
s3.create_bucket(Bucket="open")
s3.put_object(Bucket=B, Key="move-me", Body=b"m")
ok(dav("MOVE", f"{B}/move-me", headers={"Destination": f"{ENDPOINT}/dav/open/moved"}) == 403,
   "nothing moves out of it")
ok(dav("MOVE", f"{B}/move-me", headers={"Destination": f"{ENDPOINT}/dav/{B}/moved"}) == 201,
   "a move inside it is fine (versioning keeps all)")

# bypass: only the bucket's owner (or an administrator), only governance
ok(error(bob.delete_object, Bucket=B, Key="gov.txt", VersionId=g1,
         BypassGovernanceRetention=True)[0] == "AccessDenied", "bob may not bypass")
ok(error(bob.put_object_retention, Bucket=B, Key="gov.txt", VersionId=g1,
         Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(9)})[0] == "AccessDenied",
   "bob may not set a retention")
ok(error(bob.put_object_legal_hold, Bucket=B, Key="gov.txt", VersionId=g1,
         LegalHold={"Status": "ON"})[0] == "AccessDenied", "nor a legal hold")
ok(error(bob.put_object_lock_configuration, Bucket=B, ObjectLockConfiguration={
    "ObjectLockEnabled": "Enabled"})[0] == "AccessDenied", "nor the bucket's configuration")

# legal hold: nothing deletes it, not even a bypass
s3.put_object_legal_hold(Bucket=B, Key="gov.txt", VersionId=g1, LegalHold={"Status": "ON"})
ok(s3.get_object_legal_hold(Bucket=B, Key="gov.txt", VersionId=g1)["LegalHold"]["Status"] == "ON",
   "GetObjectLegalHold: ON")
ok(error(s3.delete_object, Bucket=B, Key="gov.txt", VersionId=g1,
         BypassGovernanceRetention=True)[0] == "AccessDenied", "a legal hold is not bypassed")
s3.put_object_legal_hold(Bucket=B, Key="gov.txt", VersionId=g1, LegalHold={"Status": "OFF"})
d = s3.delete_object(Bucket=B, Key="gov.txt", VersionId=g1, BypassGovernanceRetention=True)
ok(d.get("VersionId") == g1, "the owner bypasses governance")
ok(error(s3.get_object, Bucket=B, Key="gov.txt", VersionId=g1)[0] == "NoSuchVersion", "gone")

# compliance: never shortened, removed or bypassed
c1 = s3.put_object(Bucket=B, Key="comp.txt", Body=b"c1", ObjectLockMode="COMPLIANCE",
                   ObjectLockRetainUntilDate=later(5))["VersionId"]
r = s3.get_object_retention(Bucket=B, Key="comp.txt", VersionId=c1)["Retention"]
ok(r["Mode"] == "COMPLIANCE", f"lock headers on PutObject: {r}")
ok(error(s3.delete_object, Bucket=B, Key="comp.txt", VersionId=c1,
         BypassGovernanceRetention=True)[0] == "AccessDenied", "compliance is not bypassed")
ok(error(s3.put_object_retention, Bucket=B, Key="comp.txt", VersionId=c1, BypassGovernanceRetention=True,
         Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(6)})[0] == "AccessDenied",
   "compliance is not relaxed to governance")
ok(error(s3.put_object_retention, Bucket=B, Key="comp.txt", VersionId=c1, BypassGovernanceRetention=True,
         Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later(1)})[0] == "AccessDenied",
   "compliance is not shortened")
s3.put_object_retention(Bucket=B, Key="comp.txt", VersionId=c1,
                        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later(7)})
ok(body(Bucket=B, Key="comp.txt", VersionId=c1) == b"c1", "readable")
h = s3.head_object(Bucket=B, Key="comp.txt", VersionId=c1)
ok(h.get("ObjectLockMode") == "COMPLIANCE" and h.get("ObjectLockRetainUntilDate") > later(6)
   and h.get("ObjectLockLegalHoldStatus") == "OFF", f"HEAD shows the lock: {h}")
ok(s3.get_object(Bucket=B, Key="comp.txt")["ObjectLockMode"] == "COMPLIANCE", "GET too")
ok("ObjectLockMode" not in s3.head_object(Bucket="plain", Key="k"), "no lock headers elsewhere")
r = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "comp.txt", "VersionId": c1}]},
                      BypassGovernanceRetention=True)
ok([e["Code"] for e in r.get("Errors", [])] == ["AccessDenied"], f"DeleteObjects refuses it too: {r}")

# a default retention applies to new versions, WebDAV writes included
s3.put_object_lock_configuration(Bucket=B, ObjectLockConfiguration={
    "ObjectLockEnabled": "Enabled",
    "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
cfg = s3.get_object_lock_configuration(Bucket=B)["ObjectLockConfiguration"]
ok(cfg["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 1}, f"default retention: {cfg}")
ok(dav("PUT", f"{B}/dav.txt", b"from webdav") in (200, 201, 204), "WebDAV PUT")
vid = s3.head_object(Bucket=B, Key="dav.txt")["VersionId"]
r = s3.get_object_retention(Bucket=B, Key="dav.txt", VersionId=vid)["Retention"]
ok(r["Mode"] == "GOVERNANCE" and r["RetainUntilDate"] < later(1.01), f"a WebDAV write got the default: {r}")
ok(error(s3.delete_object, Bucket=B, Key="dav.txt", VersionId=vid)[0] == "AccessDenied",
   "and is protected by it")
ok(error(s3.put_object_lock_configuration, Bucket=B, ObjectLockConfiguration={
    "ObjectLockEnabled": "Enabled",
    "Rule": {"DefaultRetention": {"Mode": "SOMETIMES", "Days": 1}}})[0] in ("InvalidArgument", "MalformedXML"),
   "a bad mode is refused")
s3.put_object_lock_configuration(Bucket=B, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
free = s3.put_object(Bucket=B, Key="free.txt", Body=b"f1")["VersionId"]
s3.put_object(Bucket=B, Key="free.txt", Body=b"f2")
ok(error(s3.get_object_retention, Bucket=B, Key="free.txt", VersionId=free)[0] ==
   "NoSuchObjectLockConfiguration", "no default any more: no retention")

# object lock on an existing versioned bucket (as AWS allows since 2023)
s3.create_bucket(Bucket="later")
ok(error(s3.put_object_lock_configuration, Bucket="later",
         ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})[0] is None,
   "object lock enabled on an existing bucket")
ok(s3.get_bucket_versioning(Bucket="later")["Status"] == "Enabled", "with versioning")

# deleted, the locked version stays under its delete marker
s3.delete_object(Bucket=B, Key="comp.txt")
print(f"LOCKED comp.txt {c1}")
print(f"FREE free.txt {free}")
print(f"s3_object_lock: {s3check.checks} checks passed")
