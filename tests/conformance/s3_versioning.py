"""S3 versioning through boto3, as AWS documents it: Put/GetBucketVersioning, version ids on
writes and reads, the null version of objects written before versioning, delete markers (404
with x-amz-delete-marker on a plain GET, 405 by version id), permanent deletes by version id
(the next version current again), CopyObject from a version, suspended versioning replacing
the null version, DeleteObjects with versions, ListObjectVersions paged with key and version
markers, prefix and delimiter; and attacks: another user, bad version ids, the versions of a
file the caller may not read. Exits non-zero on any failure.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (the bucket owner),
KURA_OTHER_KEY_ID, KURA_OTHER_SECRET (another user).
"""
import os
import re
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
import s3check
from s3check import client, ok

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]
ID = re.compile(r"^[0-9a-f]{29}$")


def error(fn, *a, **kw):
    """(code, status, headers) of a refused call; (None, 200, {}) when it succeeded."""
    try:
        fn(*a, **kw)
    except ClientError as e:
        r = e.response
        return (r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"],
                r["ResponseMetadata"].get("HTTPHeaders", {}))
    return None, 200, {}


def anon(path):
    """Status and body of an unsigned GET."""
    try:
        with urllib.request.urlopen(ENDPOINT + path) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def body(**kw):
    return s3.get_object(**kw)["Body"].read()


s3 = client()
bob = client(aws_access_key_id=os.environ["KURA_OTHER_KEY_ID"],
             aws_secret_access_key=os.environ["KURA_OTHER_SECRET"])
B = "ver"
s3.create_bucket(Bucket=B)

# ---- never set: no Status, no version ids, the null version only ----
ok("Status" not in s3.get_bucket_versioning(Bucket=B), "a new bucket has no versioning Status")
r = s3.put_object(Bucket=B, Key="a", Body=b"one")
ok("VersionId" not in r, f"unversioned PUT reports no version id: {r.get('VersionId')}")
s3.put_object(Bucket=B, Key="a", Body=b"one")
listed = s3.list_object_versions(Bucket=B)
ok([(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [("a", "null", True)],
   f"unversioned: only the current null version is listed: {listed.get('Versions')}")

# ---- Enabled: every write a version ----
s3.put_bucket_versioning(Bucket=B, VersioningConfiguration={"Status": "Enabled"})
ok(s3.get_bucket_versioning(Bucket=B)["Status"] == "Enabled", "GetBucketVersioning: Enabled")
v2 = s3.put_object(Bucket=B, Key="a", Body=b"two")["VersionId"]
v3 = s3.put_object(Bucket=B, Key="a", Body=b"three")["VersionId"]
ok(ID.match(v2) and ID.match(v3) and v2 != v3, f"version ids: {v2} {v3}")
ok(v2 < v3, "version ids sort by time")
lv = s3.list_object_versions(Bucket=B)["Versions"]
ok([(v["VersionId"], v["IsLatest"]) for v in lv] == [(v3, True), (v2, False), ("null", False)],
   f"ListObjectVersions, newest first, the pre-versioning object as null: {lv}")
ok(lv[0]["Size"] == 5 and lv[1]["Size"] == 3, "sizes of versions")
got = s3.get_object(Bucket=B, Key="a")
ok(got["Body"].read() == b"three" and got["VersionId"] == v3, "plain GET: the latest, with its id")
got = s3.get_object(Bucket=B, Key="a", VersionId=v2)
ok(got["Body"].read() == b"two" and got["VersionId"] == v2, "GET by version id")
ok(body(Bucket=B, Key="a", VersionId="null") == b"one", "GET of the null version")
ok(s3.get_object(Bucket=B, Key="a", VersionId=v2, Range="bytes=1-")["Body"].read() == b"wo",
   "a range of a version")
h = s3.head_object(Bucket=B, Key="a", VersionId=v2)
ok(h["ContentLength"] == 3 and h["VersionId"] == v2, "HEAD by version id")
ok(s3.head_object(Bucket=B, Key="a")["VersionId"] == v3, "HEAD reports the latest id")

# ---- delete markers ----
d = s3.delete_object(Bucket=B, Key="a")
m1 = d.get("VersionId")
ok(d.get("DeleteMarker") is True and m1 and ID.match(m1), f"DELETE leaves a marker: {d}")
code, status, hdrs = error(s3.get_object, Bucket=B, Key="a")
ok((code, status) == ("NoSuchKey", 404), f"GET after delete: {code} {status}")
ok(hdrs.get("x-amz-delete-marker") == "true" and hdrs.get("x-amz-version-id") == m1,
   f"404 says the latest is a delete marker: {hdrs}")
code, status, hdrs = error(s3.get_object, Bucket=B, Key="a", VersionId=m1)
ok((code, status) == ("MethodNotAllowed", 405), f"GET of a marker by id: {code} {status}")
ok(hdrs.get("x-amz-delete-marker") == "true" and "last-modified" in hdrs,
   f"405 with x-amz-delete-marker and Last-Modified: {hdrs}")
code, status, hdrs = error(s3.head_object, Bucket=B, Key="a", VersionId=m1)
ok(status == 405 and hdrs.get("x-amz-delete-marker") == "true", f"HEAD of a marker: {status} {hdrs}")
ok(body(Bucket=B, Key="a", VersionId=v3) == b"three", "the deleted version is still there by id")
r = s3.list_object_versions(Bucket=B)
ok([(m["Key"], m["VersionId"], m["IsLatest"]) for m in r["DeleteMarkers"]] == [("a", m1, True)],
   f"the marker is listed as latest: {r.get('DeleteMarkers')}")
ok([v["IsLatest"] for v in r["Versions"]] == [False, False, False], "no version is latest")
ok(s3.list_objects_v2(Bucket=B).get("KeyCount") == 0, "ListObjects shows no deleted key")

# removing the marker brings the previous version back, as it was
d = s3.delete_object(Bucket=B, Key="a", VersionId=m1)
ok(d.get("DeleteMarker") is True and d.get("VersionId") == m1, f"delete of the marker by id: {d}")
got = s3.get_object(Bucket=B, Key="a")
ok(got["Body"].read() == b"three" and got["VersionId"] == v3, "the previous version is current again")
# permanently deleting the current version: the one before takes its place
d = s3.delete_object(Bucket=B, Key="a", VersionId=v3)
ok(d.get("VersionId") == v3 and not d.get("DeleteMarker"), f"delete of a version: {d}")
got = s3.get_object(Bucket=B, Key="a")
ok(got["Body"].read() == b"two" and got["VersionId"] == v2, "v2 current again")
code, status, _ = error(s3.get_object, Bucket=B, Key="a", VersionId=v3)
ok((code, status) == ("NoSuchVersion", 404), f"a deleted version: {code} {status}")
ok([v["VersionId"] for v in s3.list_object_versions(Bucket=B)["Versions"]] == [v2, "null"],
   "v3 is gone from the list")
# a noncurrent version deleted for good
s3.delete_object(Bucket=B, Key="a", VersionId="null")
ok([v["VersionId"] for v in s3.list_object_versions(Bucket=B)["Versions"]] == [v2], "null gone")

# ---- CopyObject from a version (the usual way to restore one) ----
v4 = s3.put_object(Bucket=B, Key="a", Body=b"four")["VersionId"]
c = s3.copy_object(Bucket=B, Key="a", CopySource={"Bucket": B, "Key": "a", "VersionId": v2})
ok(c.get("CopySourceVersionId") == v2 and ID.match(c.get("VersionId", "")), f"copy of a version: {c}")
ok(body(Bucket=B, Key="a") == b"two", "copied back onto its own key")
ok(body(Bucket=B, Key="a", VersionId=v4) == b"four", "the replaced one kept")
s3.copy_object(Bucket=B, Key="b", CopySource={"Bucket": B, "Key": "a", "VersionId": v4})
ok(body(Bucket=B, Key="b") == b"four", "a version copied to another key")

# ---- bad and missing version ids ----
for bad in ["xyz", "../../etc", "0" * 28, "G" * 29, "null2", "%00"]:
    code, status, _ = error(s3.get_object, Bucket=B, Key="a", VersionId=bad)
    ok((code, status) == ("InvalidArgument", 400), f"GET versionId={bad!r}: {code} {status}")
    code, status, _ = error(s3.delete_object, Bucket=B, Key="a", VersionId=bad)
    ok((code, status) == ("InvalidArgument", 400), f"DELETE versionId={bad!r}: {code} {status}")
missing = "0" * 29
ok(error(s3.get_object, Bucket=B, Key="a", VersionId=missing)[:2] == ("NoSuchVersion", 404),
   "GET of a missing version: NoSuchVersion")
ok(error(s3.head_object, Bucket=B, Key="a", VersionId=missing)[1] == 404, "HEAD of it: 404")
d = s3.delete_object(Bucket=B, Key="a", VersionId=missing)
ok(d.get("VersionId") == missing, f"DELETE of a missing version succeeds, as on AWS: {d}")
ok(body(Bucket=B, Key="a") == b"two", "and changed nothing")
ok(error(s3.get_object, Bucket="no-such-bucket", Key="a", VersionId=v2)[0] == "NoSuchBucket",
   "a version in a missing bucket: NoSuchBucket")

# ---- Suspended: the null version is replaced ----
s3.put_bucket_versioning(Bucket=B, VersioningConfiguration={"Status": "Suspended"})
ok(s3.get_bucket_versioning(Bucket=B)["Status"] == "Suspended", "Suspended")
r1 = s3.put_object(Bucket=B, Key="s", Body=b"s1")
s3.put_object(Bucket=B, Key="s", Body=b"s2")
ok(r1.get("VersionId") in (None, "null"), f"a suspended write is the null version: {r1.get('VersionId')}")
sv = [(v["VersionId"], v["IsLatest"]) for v in s3.list_object_versions(Bucket=B, Prefix="s")["Versions"]]
ok(sv == [("null", True)], f"suspended overwrites replace the null version: {sv}")
ok(body(Bucket=B, Key="s") == b"s2", "the latest bytes")
# over a versioned history: the old versions stay, the new null one on top
s3.put_object(Bucket=B, Key="a", Body=b"five")
ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=B, Prefix="a")["Versions"]]
ok(ids[0] == "null" and v4 in ids and v2 in ids, f"suspended write over versions: {ids}")
s3.put_object(Bucket=B, Key="a", Body=b"six")
ids2 = [v["VersionId"] for v in s3.list_object_versions(Bucket=B, Prefix="a")["Versions"]]
ok(ids2 == ids, f"a second suspended write replaces only the null version: {ids2}")
d = s3.delete_object(Bucket=B, Key="s")
ok(d.get("DeleteMarker") is True and d.get("VersionId") == "null", f"suspended delete: null marker {d}")
r = s3.list_object_versions(Bucket=B, Prefix="s")
ok(not r.get("Versions") and [m["VersionId"] for m in r["DeleteMarkers"]] == ["null"],
   f"the null marker replaced the null version: {r.get('Versions')} {r.get('DeleteMarkers')}")
s3.put_bucket_versioning(Bucket=B, VersioningConfiguration={"Status": "Enabled"})

# ---- DeleteObjects with versions ----
B2 = "ver2"
s3.create_bucket(Bucket=B2)
s3.put_bucket_versioning(Bucket=B2, VersioningConfiguration={"Status": "Enabled"})
k1a = s3.put_object(Bucket=B2, Key="k1", Body=b"1a")["VersionId"]
k1b = s3.put_object(Bucket=B2, Key="k1", Body=b"1b")["VersionId"]
s3.put_object(Bucket=B2, Key="k2", Body=b"2")
r = s3.delete_objects(Bucket=B2, Delete={"Objects": [
    {"Key": "k1", "VersionId": k1a}, {"Key": "k2"}, {"Key": "k1", "VersionId": missing}]})
dl = {(d["Key"], d.get("VersionId")): d for d in r["Deleted"]}
ok(not r.get("Errors"), f"no errors: {r.get('Errors')}")
ok(("k1", k1a) in dl and not dl[("k1", k1a)].get("DeleteMarker"), f"a version deleted: {r['Deleted']}")
k2 = dl.get(("k2", None), {})
ok(k2.get("DeleteMarker") is True and ID.match(k2.get("DeleteMarkerVersionId", "")),
   f"a marker made, with its id: {k2}")
ok(("k1", missing) in dl, "a missing version counts as deleted, as on AWS")
ok([v["VersionId"] for v in s3.list_object_versions(Bucket=B2, Prefix="k1")["Versions"]] == [k1b],
   "k1 keeps only k1b")
r = s3.delete_objects(Bucket=B2, Delete={"Objects": [
    {"Key": "k2", "VersionId": k2["DeleteMarkerVersionId"]}, {"Key": "k1", "VersionId": "bad"}]})
ok([d.get("DeleteMarker") for d in r["Deleted"]] == [True], f"a marker deleted by id: {r}")
ok([(e["Key"], e["Code"]) for e in r.get("Errors", [])] == [("k1", "InvalidArgument")],
   f"a bad id is that key's error: {r.get('Errors')}")
ok(body(Bucket=B2, Key="k2") == b"2", "k2 is back")

# ---- ListObjectVersions: paging, prefix, delimiter ----
B3 = "ver3"
s3.create_bucket(Bucket=B3)
s3.put_bucket_versioning(Bucket=B3, VersioningConfiguration={"Status": "Enabled"})
want = []
for key, n in [("p/x", 3), ("p/y", 2), ("q", 2)]:
    ids = [s3.put_object(Bucket=B3, Key=key, Body=f"{key}{i}".encode())["VersionId"] for i in range(n)]
    want += [(key, i) for i in reversed(ids)]
s3.delete_object(Bucket=B3, Key="q")
full = s3.list_object_versions(Bucket=B3)
ok(len(full["Versions"]) == 7 and len(full["DeleteMarkers"]) == 1, "7 versions and 1 marker")
seen, km, vm, pages = [], None, None, 0
while True:
    kw = {"MaxKeys": 2}
    if km:
        kw["KeyMarker"] = km
        kw["VersionIdMarker"] = vm
    r = s3.list_object_versions(Bucket=B3, **kw)
    pages += 1
    page = [(v["Key"], v["VersionId"]) for v in r.get("Versions", [])]
    page += [(m["Key"], m["VersionId"]) for m in r.get("DeleteMarkers", [])]
    ok(len(page) <= 2, f"a page holds at most MaxKeys: {page}")
    seen += page
    if not r["IsTruncated"]:
        break
    km, vm = r["NextKeyMarker"], r["NextVersionIdMarker"]
    ok(pages < 20, "paging ends")
ok(len(seen) == 8 and len(set(seen)) == 8, f"pages cover every version once: {seen}")
ok([s for s in seen if s[0] != "q"] == want[:5], f"in key order, newest first: {seen}")
r = s3.list_object_versions(Bucket=B3, Delimiter="/")
ok([p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["p/"], f"CommonPrefixes: {r.get('CommonPrefixes')}")
ok({v["Key"] for v in r["Versions"]} == {"q"}, "only q outside the prefix")
r = s3.list_object_versions(Bucket=B3, Prefix="p/", Delimiter="/")
ok(len(r["Versions"]) == 5 and not r.get("CommonPrefixes"), "prefix p/: 5 versions")
r = s3.list_object_versions(Bucket=B3, KeyMarker="p/x")
ok({v["Key"] for v in r["Versions"]} == {"p/y", "q"}, "a key marker alone starts after that key")

# ---- another user (the bucket private: its owner's alone) ----
s3.put_bucket_acl(Bucket=B, ACL="private")
ok(error(bob.list_object_versions, Bucket=B)[0] == "AccessDenied", "bob lists no versions of ver")
ok(error(bob.get_object, Bucket=B, Key="a", VersionId=v2)[0] == "AccessDenied",
   "bob reads no version of ver")
ok(error(bob.delete_object, Bucket=B, Key="a", VersionId=v2)[0] == "AccessDenied",
   "bob deletes no version of ver")
ok(error(bob.put_bucket_versioning, Bucket=B,
         VersioningConfiguration={"Status": "Suspended"})[0] == "AccessDenied",
   "bob may not change versioning")
ok(error(bob.get_bucket_versioning, Bucket=B)[0] == "AccessDenied", "nor read it")
ok(s3.get_bucket_versioning(Bucket=B)["Status"] == "Enabled", "unchanged")
ok(body(Bucket=B, Key="a", VersionId=v2) == b"two", "v2 still there")
ok(error(s3.put_bucket_versioning, Bucket=B,
         VersioningConfiguration={"Status": "Off"})[0] == "MalformedXML", "only Enabled or Suspended")

# ---- the versions of a file the caller may not read ----
B4 = "shared"
s3.create_bucket(Bucket=B4)
s3.put_bucket_versioning(Bucket=B4, VersioningConfiguration={"Status": "Enabled"})
s3.put_bucket_acl(Bucket=B4, ACL="authenticated-read")
pub1 = s3.put_object(Bucket=B4, Key="open.txt", Body=b"o1")["VersionId"]
s3.put_object_acl(Bucket=B4, Key="open.txt", ACL="authenticated-read")
s3.put_object(Bucket=B4, Key="open.txt", Body=b"o2")
sec1 = s3.put_object(Bucket=B4, Key="secret.txt", Body=b"s1")["VersionId"]
s3.put_object_acl(Bucket=B4, Key="secret.txt", ACL="private")
s3.put_object(Bucket=B4, Key="secret.txt", Body=b"s2")
ok(bob.get_object(Bucket=B4, Key="open.txt", VersionId=pub1)["Body"].read() == b"o1",
   "bob reads a version of a file he may read")
keys = {v["Key"] for v in bob.list_object_versions(Bucket=B4).get("Versions", [])}
ok(keys == {"open.txt"}, f"bob lists only the versions he may read: {keys}")
ok(error(bob.get_object, Bucket=B4, Key="secret.txt", VersionId=sec1)[0] == "AccessDenied",
   "bob may not read a version of an unreadable file")
ok(error(bob.head_object, Bucket=B4, Key="secret.txt", VersionId=sec1)[1] == 403, "nor HEAD it")
ok(error(bob.delete_object, Bucket=B4, Key="open.txt", VersionId=pub1)[0] == "AccessDenied",
   "reading is not deleting")
# public-read opens the current object to anonymous callers, never its versions
s3.put_object_acl(Bucket=B4, Key="open.txt", ACL="public-read")
ok(anon(f"/{B4}/open.txt") == (200, b"o2"), "anonymous GET of a public-read object")
ok(anon(f"/{B4}/open.txt?versionId={pub1}")[0] == 403, "anonymous GET of one of its versions: 403")
ok(anon(f"/{B4}/open.txt?versionId=null")[0] == 403, "nor its null version")
# once deleted, its versions stay as private as the file was
s3.delete_object(Bucket=B4, Key="secret.txt")
keys = {v["Key"] for v in bob.list_object_versions(Bucket=B4).get("Versions", [])}
keys |= {m["Key"] for m in bob.list_object_versions(Bucket=B4).get("DeleteMarkers", [])}
ok(keys == {"open.txt"}, f"a deleted private file's versions stay hidden: {keys}")
ok(error(bob.get_object, Bucket=B4, Key="secret.txt", VersionId=sec1)[0] == "AccessDenied",
   "and unreadable")

print(f"s3_versioning: {s3check.checks} checks passed")
