"""Exact S3 error codes, as attacks: forged and malformed signatures, dates and headers sent
raw (what no SDK sends), another user's bucket name, a part whose Content-MD5 or checksum lies;
and the fields S3 clients page and check with: ListMultipartUploads and delimited listings
paged, GetObjectAttributes' PartsCount, part and composite checksums. Each case checks the
status and the <Code> AWS answers with (ceph's s3-tests are the reference where AWS's
documentation is silent). Exits non-zero on any failure; prints "N checks passed".

Usage: s3_errors.py PORT ADMIN_KEY ADMIN_SECRET EVE_KEY EVE_SECRET FAY_KEY FAY_SECRET (a plain-HTTP
server; fay may create buckets, eve may not).
"""
import base64
import datetime
import hashlib
import http.client
import re
import sys
import unittest.mock
import zlib

import boto3
import botocore.auth
from botocore.auth import HmacV1Auth, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

port = int(sys.argv[1])
KEY, SECRET, EVE_KEY, EVE_SECRET, FAY_KEY, FAY_SECRET = sys.argv[2:8]
BASE = f"http://127.0.0.1:{port}"
checks = 0


def ok(cond, what):
    global checks
    checks += 1
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def signed(method, path, body=b"", headers=None, key=KEY, secret=SECRET, when=None, v2=False):
    """The headers botocore signs for this request (at `when`, if given)."""
    r = AWSRequest(method=method, url=BASE + path, data=body, headers=dict(headers or {}))
    if v2:
        HmacV1Auth(Credentials(key, secret)).add_auth(r)
        return list(r.headers.items())
    auth = S3SigV4Auth(Credentials(key, secret), "s3", "us-east-1")
    if when is None:
        auth.add_auth(r)
    else:
        real = datetime.datetime

        class At(real):
            @classmethod
            def utcnow(cls):
                return when

            @classmethod
            def now(cls, tz=None):
                return when if tz is None else when.replace(tzinfo=tz)

        with unittest.mock.patch.object(botocore.auth.datetime, "datetime", At):
            auth.add_auth(r)
    return list(r.headers.items())


def send(method, path, headers, body=b"", replace=None, drop=()):
    """Sends raw headers (replaced or dropped after signing); returns (status, code, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
    replace = replace or {}
    low = {k.lower() for k in replace} | set(drop)
    hs = [(k, v) for k, v in headers if k.lower() not in low] + list(replace.items())
    if body and not any(k.lower() == "content-length" for k, _ in hs) and "content-length" not in drop:
        hs.append(("Content-Length", str(len(body))))
    for k, v in hs:
        c.putheader(k, v)
    c.endheaders()
    if body:
        c.send(body)
    r = c.getresponse()
    text = r.read().decode(errors="replace")
    m = re.search(r"<Code>(.*?)</Code>", text)
    return r.status, m.group(1) if m else "", text


def error_of(fn, *a, **kw):
    """(code, status) of a boto3 call that should fail; (None, 200) when it succeeds."""
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def expect(what, got, status, code=None):
    ok(got[0] == status and (code is None or got[1] == code),
       f"{what}: wanted {status} {code or ''}, got {got[0]} {got[1]} {got[2][:200]}")


B = "/errs"
expect("CreateBucket", send("PUT", B, signed("PUT", B)), 200)
OBJ = B + "/obj"
expect("PutObject", send("PUT", OBJ, signed("PUT", OBJ, b"bar"), b"bar"), 200)


def listing():
    return send("GET", B, signed("GET", B))[2]


# who are you: forged secret, unknown key, a clock an hour off, a user without rights
expect("wrong secret", send("GET", OBJ, signed("GET", OBJ, secret="x" * 40)), 403, "SignatureDoesNotMatch")
expect("unknown key", send("GET", OBJ, signed("GET", OBJ, key="KURAAAAAAAAAAAAAAAAA")), 403, "InvalidAccessKeyId")
hour_ago = datetime.datetime.utcnow() - datetime.timedelta(hours=1)
expect("signed an hour ago", send("GET", OBJ, signed("GET", OBJ, when=hour_ago)), 403, "RequestTimeTooSkewed")
expect("eve writes into admin's bucket",
       send("PUT", B + "/eve", signed("PUT", B + "/eve", b"x", key=EVE_KEY, secret=EVE_SECRET), b"x"),
       403, "AccessDenied")

# malformed Authorization and dates
h = signed("GET", OBJ)
for bad in ["AWS4-HMAC-SHA256 garbage",
            "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/s3, SignedHeaders=host, Signature=" + "0" * 64,
            "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=zz"]:
    expect(f"Authorization {bad!r}", send("GET", OBJ, h, replace={"Authorization": bad}), 400, "AuthorizationHeaderMalformed")
expect("SigV2 Authorization without a signature", send("GET", OBJ, h, replace={"Authorization": "AWS HAHAHA"}), 400, "InvalidArgument")
expect("empty Authorization", send("GET", OBJ, h, replace={"Authorization": ""}), 403, "AccessDenied")
expect("no Authorization", send("GET", OBJ, h, drop=("authorization",)), 403, "AccessDenied")
expect("x-amz-date not a date", send("GET", OBJ, h, replace={"X-Amz-Date": "Bad Date"}), 403, "AccessDenied")
v2 = signed("GET", OBJ, v2=True, headers={"x-amz-date": "Bad Date"})
expect("SigV2 with a bad date", send("GET", OBJ, v2), 403, "AccessDenied")
v2 = signed("GET", OBJ, v2=True, headers={"x-amz-date": "Wed, 07 Jul 2010 21:53:04 GMT"})
expect("SigV2 dated 2010", send("GET", OBJ, v2), 403, "RequestTimeTooSkewed")

# Content-MD5: not a digest, empty, or the digest of other bytes
body = b"bar"


def put(name, extra, replace=None, drop=(), data=body):
    p = f"{B}/{name}"
    return send("PUT", p, signed("PUT", p, data, extra), data, replace, drop)


for md5 in ["YWJyYWNhZGFicmE=", "", "AWS HAHAHA"]:
    expect(f"Content-MD5 {md5!r}", put("md5", {"Content-MD5": md5}), 400, "InvalidDigest")
expect("Content-MD5 of other bytes", put("md5", {"Content-MD5": "rL0Y20xC+Fzt72VPzMSk2A=="}), 400, "BadDigest")
good_md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
expect("the right Content-MD5", put("md5ok", {"Content-MD5": good_md5}), 200)

# Content-Length that is no number: refused by the HTTP layer with 400
for cl in ["abc", "-1", ""]:
    expect(f"Content-Length {cl!r}", put("cl", {}, {"Content-Length": cl}), 400)
# Expect that is not 100-continue: AWS accepts it (s3-tests: "garbage, but S3 succeeds!")
for e in ["200", ""]:
    expect(f"Expect {e!r}", put("expect", {"Expect": e}), 200)

# a bucket name someone else owns vs one the caller owns
# one who may create buckets learns the name is taken, as on AWS; one who may not is refused
# before existence is looked at, so she learns nothing of other users' names
expect("fay creates admin's bucket", send("PUT", B, signed("PUT", B, key=FAY_KEY, secret=FAY_SECRET)), 409, "BucketAlreadyExists")
expect("eve creates admin's bucket", send("PUT", B, signed("PUT", B, key=EVE_KEY, secret=EVE_SECRET)), 403, "AccessDenied")
expect("eve creates a free bucket name", send("PUT", "/free-name", signed("PUT", "/free-name", key=EVE_KEY, secret=EVE_SECRET)), 403, "AccessDenied")
expect("admin creates its own bucket again", send("PUT", B, signed("PUT", B)), 409, "BucketAlreadyOwnedByYou")

# multipart: a part whose Content-MD5 lies is refused and does not replace the part stored
s3 = boto3.client("s3", endpoint_url=BASE, region_name="us-east-1", aws_access_key_id=KEY,
                  aws_secret_access_key=SECRET,
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
up = s3.create_multipart_upload(Bucket="errs", Key="mp")["UploadId"]
etag = s3.upload_part(Bucket="errs", Key="mp", UploadId=up, PartNumber=1, Body=b"part one")["ETag"]
q = f"{B}/mp?partNumber=1&uploadId={up}"
lie = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
expect("UploadPart with a lying Content-MD5", send("PUT", q, signed("PUT", q, b"evil", {"Content-MD5": lie}), b"evil"), 400, "BadDigest")
parts = s3.list_parts(Bucket="errs", Key="mp", UploadId=up)["Parts"]
ok([p["ETag"] for p in parts] == [etag], f"the refused part replaced the stored one: {parts}")
s3.abort_multipart_upload(Bucket="errs", Key="mp", UploadId=up)

# GetObjectAttributes: only the attributes asked for; ObjectParts.PartsCount of a multipart object
up = s3.create_multipart_upload(Bucket="errs", Key="two-parts")["UploadId"]
e1 = s3.upload_part(Bucket="errs", Key="two-parts", UploadId=up, PartNumber=1, Body=b"a" * (5 << 20))["ETag"]
e2 = s3.upload_part(Bucket="errs", Key="two-parts", UploadId=up, PartNumber=2, Body=b"tail")["ETag"]
s3.complete_multipart_upload(Bucket="errs", Key="two-parts", UploadId=up, MultipartUpload={
    "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
a = s3.get_object_attributes(Bucket="errs", Key="two-parts", ObjectAttributes=["ObjectParts", "ObjectSize"])
ok(a.get("ObjectParts", {}).get("TotalPartsCount") == 2, f"PartsCount of a two-part object: {a}")
ok(a["ObjectSize"] == (5 << 20) + 4 and "ETag" not in a and "StorageClass" not in a, f"only the asked attributes: {a}")
a = s3.get_object_attributes(Bucket="errs", Key="obj", ObjectAttributes=["ETag", "ObjectParts"])
ok("ObjectParts" not in a and "ObjectSize" not in a and a["ETag"], f"a single-part object: {a}")
s3.delete_object(Bucket="errs", Key="two-parts")

# checksums of parts: ListParts returns them, CompleteMultipartUpload answers the composite
# (CRC32 of the concatenated part CRC32s, "-N"), and refuses a part named with another checksum
def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


p1, p2 = b"b" * (5 << 20), b"last part"
up = s3.create_multipart_upload(Bucket="errs", Key="summed", ChecksumAlgorithm="CRC32")["UploadId"]
r1 = s3.upload_part(Bucket="errs", Key="summed", UploadId=up, PartNumber=1, Body=p1, ChecksumAlgorithm="CRC32")
r2 = s3.upload_part(Bucket="errs", Key="summed", UploadId=up, PartNumber=2, Body=p2, ChecksumAlgorithm="CRC32")
ok(r1["ChecksumCRC32"] == crc32_b64(p1), f"UploadPart's CRC32: {r1.get('ChecksumCRC32')}")
listed = s3.list_parts(Bucket="errs", Key="summed", UploadId=up)["Parts"]
ok([p.get("ChecksumCRC32") for p in listed] == [crc32_b64(p1), crc32_b64(p2)], f"ListParts checksums: {listed}")
lying = [{"PartNumber": 1, "ETag": r1["ETag"], "ChecksumCRC32": crc32_b64(b"other")},
         {"PartNumber": 2, "ETag": r2["ETag"], "ChecksumCRC32": r2["ChecksumCRC32"]}]
err = error_of(s3.complete_multipart_upload, Bucket="errs", Key="summed", UploadId=up,
               MultipartUpload={"Parts": lying})
ok(err == ("InvalidPart", 400), f"a part named with another checksum: {err}")
done = s3.complete_multipart_upload(Bucket="errs", Key="summed", UploadId=up, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": r1["ETag"], "ChecksumCRC32": r1["ChecksumCRC32"]},
    {"PartNumber": 2, "ETag": r2["ETag"], "ChecksumCRC32": r2["ChecksumCRC32"]}]})
raw = base64.b64decode(r1["ChecksumCRC32"]) + base64.b64decode(r2["ChecksumCRC32"])
ok(done.get("ChecksumCRC32") == crc32_b64(raw) + "-2", f"composite CRC32: {done.get('ChecksumCRC32')}")
ok(done.get("ChecksumType") == "COMPOSITE", f"ChecksumType: {done.get('ChecksumType')}")
s3.delete_object(Bucket="errs", Key="summed")

# object tags: kept, limited (InvalidTag), refused to a user who may not write, carried by copies
tags = {"TagSet": [{"Key": "Environment", "Value": "Test"}, {"Key": "Project", "Value": "Kura"}]}
s3.put_object_tagging(Bucket="errs", Key="obj", Tagging=tags)
ok(s3.get_object_tagging(Bucket="errs", Key="obj")["TagSet"] == tags["TagSet"], "GetObjectTagging")
eleven = {"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
ok(error_of(s3.put_object_tagging, Bucket="errs", Key="obj", Tagging=eleven) == ("InvalidTag", 400), "11 tags")
twice = {"TagSet": [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]}
ok(error_of(s3.put_object_tagging, Bucket="errs", Key="obj", Tagging=twice) == ("InvalidTag", 400), "a key twice")
long_key = {"TagSet": [{"Key": "k" * 129, "Value": "v"}]}
ok(error_of(s3.put_object_tagging, Bucket="errs", Key="obj", Tagging=long_key) == ("InvalidTag", 400), "a long key")
eve = boto3.client("s3", endpoint_url=BASE, region_name="us-east-1", aws_access_key_id=EVE_KEY,
                   aws_secret_access_key=EVE_SECRET,
                   config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
ok(error_of(eve.put_object_tagging, Bucket="errs", Key="obj", Tagging=tags) == ("AccessDenied", 403), "eve tags admin's object")
ok(error_of(eve.delete_object_tagging, Bucket="errs", Key="obj") == ("AccessDenied", 403), "eve deletes admin's tags")
ok(error_of(s3.get_object_tagging, Bucket="errs", Key="nothing-here") == ("NoSuchKey", 404), "tags of a missing key")
s3.copy_object(Bucket="errs", Key="obj-copy", CopySource={"Bucket": "errs", "Key": "obj"})
ok(s3.get_object_tagging(Bucket="errs", Key="obj-copy")["TagSet"] == tags["TagSet"], "a copy keeps the tags")
s3.delete_object(Bucket="errs", Key="obj-copy")
s3.delete_object_tagging(Bucket="errs", Key="obj")
ok(s3.get_object_tagging(Bucket="errs", Key="obj")["TagSet"] == [], "DeleteObjectTagging")
ok(s3.get_object(Bucket="errs", Key="obj")["Body"].read() == b"bar", "tagging kept the bytes")

# ListMultipartUploads pages: max-uploads, key-marker, upload-id-marker, IsTruncated
ids = {}
for k in ["a", "b", "b", "c", "d/e"]:
    ids.setdefault(k, []).append(s3.create_multipart_upload(Bucket="errs", Key=k)["UploadId"])
everything = [(k, i) for k in sorted(ids) for i in ids[k]]
seen, kw, pages = [], {}, 0
while True:
    r = s3.list_multipart_uploads(Bucket="errs", MaxUploads=2, **kw)
    pages += 1
    got = [(u["Key"], u["UploadId"]) for u in r.get("Uploads", [])]
    ok(len(got) <= 2, f"a page of {len(got)} uploads with max-uploads 2")
    seen += got
    if not r["IsTruncated"]:
        break
    kw = {"KeyMarker": r["NextKeyMarker"], "UploadIdMarker": r["NextUploadIdMarker"]}
    ok(pages < 10, "ListMultipartUploads does not end")
ok(sorted(seen) == sorted(everything) and len(seen) == len(everything), f"pages lost or repeated uploads: {seen}")
ok(pages == 3, f"5 uploads in pages of 2 took {pages} pages")
ok([k for k, _ in seen] == sorted(k for k, _ in seen), "uploads are listed by key")
after_b = s3.list_multipart_uploads(Bucket="errs", KeyMarker="b")
ok([u["Key"] for u in after_b["Uploads"]] == ["c", "d/e"], "key-marker alone skips that key's uploads")
by_prefix = s3.list_multipart_uploads(Bucket="errs", Prefix="d/")
ok([u["Key"] for u in by_prefix["Uploads"]] == ["d/e"], "prefix")
for k, i in everything:
    s3.abort_multipart_upload(Bucket="errs", Key=k, UploadId=i)

# a delimited listing pages through a folder in key order: the folder "d" sorts as "d/",
# after "d-1" and "d.txt" ('-' and '.' come before '/') and before "d0"
names = ["d.txt", "d-1", "d0", "e"] + [f"f{i:02}" for i in range(23)]
for n in names:
    s3.put_object(Bucket="errs", Key=f"page/{n}", Body=b"x")
s3.put_object(Bucket="errs", Key="page/d/inner", Body=b"x")
s3.put_object(Bucket="errs", Key="page/g/", Body=b"")
want = sorted([f"page/{n}" for n in names] + ["page/d/", "page/g/"], key=lambda k: k.encode())
got, token, pages = [], None, 0
while True:
    kw = {"ContinuationToken": token} if token else {}
    r = s3.list_objects_v2(Bucket="errs", Prefix="page/", Delimiter="/", MaxKeys=4, **kw)
    pages += 1
    page = [o["Key"] for o in r.get("Contents", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])]
    ok(len(page) <= 4, f"a page of {len(page)} with max-keys 4")
    got += sorted(page, key=lambda k: k.encode())
    if not r["IsTruncated"]:
        break
    token = r["NextContinuationToken"]
ok(got == want, f"delimited pages: {got} != {want}")
ok(pages == 8, f"29 entries in pages of 4 took {pages} pages")
v1 = s3.list_objects(Bucket="errs", Prefix="page/", Delimiter="/", Marker="page/d.txt", MaxKeys=2)
v1_keys = [o["Key"] for o in v1.get("Contents", [])] + [p["Prefix"] for p in v1.get("CommonPrefixes", [])]
ok(sorted(v1_keys) == ["page/d/", "page/d0"] and v1["IsTruncated"], f"v1 marker: {v1_keys}")
after_all = s3.list_objects_v2(Bucket="errs", Prefix="page/", Delimiter="/", StartAfter="page/zzz")
ok(not after_all.get("Contents") and not after_all.get("CommonPrefixes"), "start-after past the folder lists nothing")
s3.delete_objects(Bucket="errs", Delete={"Objects": [{"Key": k} for k in
                                                     [f"page/{n}" for n in names] + ["page/d/inner", "page/g/"]]})
for folder in ["page/d/", "page/"]:
    s3.delete_object(Bucket="errs", Key=folder)

keys = re.findall(r"<Key>(.*?)</Key>", listing())
ok(keys == ["expect", "md5ok", "obj"], f"only the accepted writes are stored: {keys}")
print(f"{checks} checks passed")
