"""Every S3 operation Kura supports, driven by the newest boto3 with its default settings
(flexible checksums in trailers), plus the bad-input cases. Exits non-zero on any failure.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_CA_BUNDLE.
"""
import datetime
import hashlib
import io
import os
import sys
import time
import urllib.request
import ssl

import boto3
import botocore
import botocore.auth
import botocore.utils
from botocore.config import Config
from botocore.exceptions import ClientError
import s3check
from s3check import ok

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]


def client(**kw):
    kw.setdefault("config", Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1", **kw)


def error_code(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


s3 = client()
B = "boto"
s3.create_bucket(Bucket=B)
ok(B in [b["Name"] for b in s3.list_buckets()["Buckets"]], "ListBuckets shows the new bucket")
s3.head_bucket(Bucket=B)
ok(s3.get_bucket_location(Bucket=B).get("LocationConstraint") in (None, ""), "GetBucketLocation")
ok("Status" not in s3.get_bucket_versioning(Bucket=B), "GetBucketVersioning reports unversioned")
ok(error_code(s3.create_bucket, Bucket=B)[0] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"), "duplicate bucket")
# a PUT into a bucket that does not exist creates nothing, at any depth
for key in ("k", "deep/er/k", "marker/"):
    ok(error_code(s3.put_object, Bucket="no-such-bucket", Key=key, Body=b"x")[0] == "NoSuchBucket",
       f"PutObject {key} into a missing bucket -> NoSuchBucket")
ok(error_code(s3.head_bucket, Bucket="no-such-bucket")[1] == 404, "a refused PUT made no bucket")

# PutObject with default checksums, metadata and stored headers
body = os.urandom(300_000)
put = s3.put_object(
    Bucket=B,
    Key="dir/obj.bin",
    Body=body,
    ContentType="application/x-test",
    ContentDisposition='attachment; filename="obj.bin"',
    ContentEncoding="identity",
    CacheControl="max-age=60",
    Metadata={"color": "blue", "Owner-Name": "ann"},
)
md5 = hashlib.md5(body).hexdigest()
ok(put["ETag"] == f'"{md5}"', "PutObject ETag is the MD5")
for alg in ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"):
    r = s3.put_object(Bucket=B, Key=f"sum-{alg}", Body=b"checksummed", ChecksumAlgorithm=alg)
    ok(f"Checksum{alg}" in r, f"PutObject returns the {alg} checksum")
    h = s3.head_object(Bucket=B, Key=f"sum-{alg}", ChecksumMode="ENABLED")
    ok(h.get(f"Checksum{alg}") == r[f"Checksum{alg}"], f"HeadObject returns the stored {alg} checksum")
    g = s3.get_object(Bucket=B, Key=f"sum-{alg}", ChecksumMode="ENABLED")
    ok(g["Body"].read() == b"checksummed", f"GetObject with {alg} validation")

head = s3.head_object(Bucket=B, Key="dir/obj.bin")
ok(head["ContentLength"] == len(body), "HeadObject length")
ok(head["ContentType"] == "application/x-test", "Content-Type stored")
ok(head["ContentDisposition"] == 'attachment; filename="obj.bin"', "Content-Disposition stored")
ok(head["CacheControl"] == "max-age=60", "Cache-Control stored")
ok(head["ContentEncoding"] == "identity", "Content-Encoding stored")
ok(head["Metadata"] == {"color": "blue", "owner-name": "ann"}, f"user metadata stored: {head['Metadata']}")

got = s3.get_object(Bucket=B, Key="dir/obj.bin")
ok(got["Body"].read() == body, "GetObject bytes")
rng = s3.get_object(Bucket=B, Key="dir/obj.bin", Range="bytes=100-199", ChecksumMode="ENABLED")
ok(rng["ResponseMetadata"]["HTTPStatusCode"] == 206, "ranged GET is 206")
ok(rng["Body"].read() == body[100:200], "ranged GET bytes")
ok(not any(k.startswith("Checksum") for k in rng), "ranged GET carries no whole-object checksum")
over = s3.get_object(
    Bucket=B, Key="dir/obj.bin", ResponseContentType="text/x-over", ResponseContentDisposition="inline"
)
ok(over["ContentType"] == "text/x-over" and over["ContentDisposition"] == "inline", "response-* overrides")
ok(error_code(s3.get_object, Bucket=B, Key="dir/obj.bin", IfNoneMatch=f'"{md5}"')[1] == 304, "If-None-Match -> 304")
ok(error_code(s3.get_object, Bucket=B, Key="dir/obj.bin", IfMatch='"nope"')[1] == 412, "If-Match -> 412")
future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
ok(error_code(s3.get_object, Bucket=B, Key="dir/obj.bin", IfModifiedSince=future)[1] == 304, "If-Modified-Since -> 304")
ok(error_code(s3.get_object, Bucket=B, Key="dir/obj.bin", IfUnmodifiedSince=past)[1] == 412, "If-Unmodified-Since -> 412")
ok(s3.get_object(Bucket=B, Key="dir/obj.bin", IfMatch=f'"{md5}"')["ContentLength"] == len(body), "If-Match hit")
ok(error_code(s3.get_object, Bucket=B, Key="missing")[0] == "NoSuchKey", "NoSuchKey")
ok(error_code(s3.put_object, Bucket=B, Key="dir/obj.bin", Body=b"x", IfNoneMatch="*")[1] == 412, "If-None-Match: * on PUT")

# streaming upload of unknown length (upload_fileobj goes through the transfer manager)
stream_body = os.urandom(3 * 1024 * 1024 + 17)
s3.upload_fileobj(io.BytesIO(stream_body), B, "streamed.bin")
ok(s3.get_object(Bucket=B, Key="streamed.bin")["Body"].read() == stream_body, "streamed upload")

# CopyObject: COPY and REPLACE directives; server-side within Kura
c = s3.copy_object(Bucket=B, Key="copy.bin", CopySource={"Bucket": B, "Key": "dir/obj.bin"})
ok(c["CopyObjectResult"]["ETag"] == f'"{md5}"', "CopyObject keeps the ETag")
ok(s3.head_object(Bucket=B, Key="copy.bin")["Metadata"]["color"] == "blue", "COPY keeps metadata")
s3.copy_object(
    Bucket=B, Key="copy.bin", CopySource={"Bucket": B, "Key": "copy.bin"},
    MetadataDirective="REPLACE", Metadata={"color": "red"}, ContentType="text/plain",
)
h = s3.head_object(Bucket=B, Key="copy.bin")
ok(h["Metadata"] == {"color": "red"} and h["ContentType"] == "text/plain", "REPLACE in place")
ok(error_code(s3.copy_object, Bucket=B, Key="copy.bin", CopySource={"Bucket": B, "Key": "copy.bin"})[0] == "InvalidRequest", "copy onto itself without REPLACE")

# listings: v1, v2, delimiter, prefix, start-after, url encoding, versions
for i in range(25):
    s3.put_object(Bucket=B, Key=f"list/{i:03d} é.txt", Body=b"x")
s3.put_object(Bucket=B, Key="list-b", Body=b"x")
s3.put_object(Bucket=B, Key="list/sub/deep.txt", Body=b"x")
keys, token = [], None
while True:
    kw = {"Bucket": B, "Prefix": "list/", "MaxKeys": 7}
    if token:
        kw["ContinuationToken"] = token
    r = s3.list_objects_v2(**kw)
    keys += [o["Key"] for o in r.get("Contents", [])]
    if not r["IsTruncated"]:
        break
    token = r["NextContinuationToken"]
ok(len(keys) == 26 and keys == sorted(keys, key=lambda k: k.encode()), "ListObjectsV2 pages in byte order")
r = s3.list_objects_v2(Bucket=B, Delimiter="/", Prefix="list")
ok([p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["list/"], f"delimiter groups: {r.get('CommonPrefixes')}")
ok([o["Key"] for o in r.get("Contents", [])] == ["list-b"], "delimiter contents")
r = s3.list_objects_v2(Bucket=B, Prefix="list/", StartAfter="list/020 é.txt", FetchOwner=True)
ok(r["Contents"][0]["Key"] == "list/021 é.txt" and "Owner" in r["Contents"][0], "StartAfter and FetchOwner")
r = s3.list_objects(Bucket=B, Prefix="list/", Marker="list/023 é.txt")
ok([o["Key"] for o in r["Contents"]] == ["list/024 é.txt", "list/sub/deep.txt"], "ListObjects v1 marker")
r = s3.list_objects_v2(Bucket=B, Prefix="list/", Delimiter="/")
ok([p["Prefix"] for p in r["CommonPrefixes"]] == ["list/sub/"], "nested common prefix")
v = s3.list_object_versions(Bucket=B, Prefix="list/0")
ok(len(v["Versions"]) == 25 and all(x["VersionId"] == "null" for x in v["Versions"]), "ListObjectVersions")

# ACL views and attributes
ok(s3.get_bucket_acl(Bucket=B)["Grants"][0]["Permission"] == "FULL_CONTROL", "GetBucketAcl")
ok(s3.get_object_acl(Bucket=B, Key="dir/obj.bin")["Grants"][0]["Permission"] == "FULL_CONTROL", "GetObjectAcl")
a = s3.get_object_attributes(Bucket=B, Key="dir/obj.bin", ObjectAttributes=["ETag", "ObjectSize"])
ok(a["ObjectSize"] == len(body) and a["ETag"].strip('"') == md5, "GetObjectAttributes")

# multipart: out of order, concurrently sized parts, copy part, list, complete, abort
mp = s3.create_multipart_upload(Bucket=B, Key="mp/big.bin", ContentType="application/x-mp", Metadata={"k": "v"})
uid = mp["UploadId"]
p1, p2 = os.urandom(5 * 1024 * 1024), os.urandom(1234)
e2 = s3.upload_part(Bucket=B, Key="mp/big.bin", UploadId=uid, PartNumber=3, Body=p2)["ETag"]
e1 = s3.upload_part(Bucket=B, Key="mp/big.bin", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
parts = s3.list_parts(Bucket=B, Key="mp/big.bin", UploadId=uid)["Parts"]
ok([p["PartNumber"] for p in parts] == [1, 3], "ListParts")
ok(any(u["UploadId"] == uid for u in s3.list_multipart_uploads(Bucket=B).get("Uploads", [])), "ListMultipartUploads")
ok(error_code(s3.head_object, Bucket=B, Key="mp/big.bin")[1] == 404, "nothing visible before completion")
done = s3.complete_multipart_upload(
    Bucket=B, Key="mp/big.bin", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}]},
)
want = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest() + "-2"
ok(done["ETag"] == f'"{want}"', f"multipart ETag {done['ETag']} == {want}")
g = s3.get_object(Bucket=B, Key="mp/big.bin")
ok(g["Body"].read() == p1 + p2 and g["ContentType"] == "application/x-mp" and g["Metadata"] == {"k": "v"}, "multipart object")
# UploadPartCopy
mp2 = s3.create_multipart_upload(Bucket=B, Key="mp/copied.bin")["UploadId"]
pc = s3.upload_part_copy(Bucket=B, Key="mp/copied.bin", UploadId=mp2, PartNumber=1,
                         CopySource={"Bucket": B, "Key": "dir/obj.bin"}, CopySourceRange="bytes=10-19")
s3.complete_multipart_upload(Bucket=B, Key="mp/copied.bin", UploadId=mp2,
                             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": pc["CopyPartResult"]["ETag"]}]})
ok(s3.get_object(Bucket=B, Key="mp/copied.bin")["Body"].read() == body[10:20], "UploadPartCopy range")
mp3 = s3.create_multipart_upload(Bucket=B, Key="mp/aborted.bin")["UploadId"]
s3.upload_part(Bucket=B, Key="mp/aborted.bin", UploadId=mp3, PartNumber=1, Body=b"x")
s3.abort_multipart_upload(Bucket=B, Key="mp/aborted.bin", UploadId=mp3)
ok(error_code(s3.list_parts, Bucket=B, Key="mp/aborted.bin", UploadId=mp3)[0] == "NoSuchUpload", "abort forgets the upload")
mp4 = s3.create_multipart_upload(Bucket=B, Key="mp/small.bin")["UploadId"]
a1 = s3.upload_part(Bucket=B, Key="mp/small.bin", UploadId=mp4, PartNumber=1, Body=b"tiny")["ETag"]
a2 = s3.upload_part(Bucket=B, Key="mp/small.bin", UploadId=mp4, PartNumber=2, Body=b"tiny")["ETag"]
ok(error_code(s3.complete_multipart_upload, Bucket=B, Key="mp/small.bin", UploadId=mp4,
              MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": a1}, {"PartNumber": 2, "ETag": a2}]})[0] == "EntityTooSmall", "EntityTooSmall")

# presigned GET and PUT
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "dir/obj.bin"}, ExpiresIn=60)
ctx = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE")) if ENDPOINT.startswith("https") else None
ok(urllib.request.urlopen(url, context=ctx).read() == body, "presigned GET")
import http.client
from urllib.parse import urlsplit


def raw_put(url, data):
    """PUT without extra headers: a presigned SigV2 signature covers Content-Type."""
    u = urlsplit(url)
    conn = (http.client.HTTPSConnection(u.hostname, u.port, context=ctx) if u.scheme == "https"
            else http.client.HTTPConnection(u.hostname, u.port))
    conn.putrequest("PUT", u.path + "?" + u.query, skip_accept_encoding=True)
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders()
    conn.send(data)
    r = conn.getresponse()
    return r.status, r.read()


for name, signer in (("SigV2", client()), ("SigV4", client(config=Config(signature_version="s3v4", s3={"addressing_style": "path"})))):
    purl = signer.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "presigned.txt"}, ExpiresIn=60)
    status, _ = raw_put(purl, f"via presigned put {name}".encode())
    ok(status == 200, f"presigned PUT ({name}) answered {status}")
    ok(s3.get_object(Bucket=B, Key="presigned.txt")["Body"].read() == f"via presigned put {name}".encode(), f"presigned PUT {name}")

# ---- bad input: clear errors, nothing written ----
def snapshot():
    return sorted((o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket=B, MaxKeys=1000).get("Contents", []))

before = snapshot()
bad = client(aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key="wrong" * 8)
ok(error_code(bad.put_object, Bucket=B, Key="evil1", Body=b"x")[0] == "SignatureDoesNotMatch", "wrong secret")
unknown = client(aws_access_key_id="KURAUNKNOWNKEY000000", aws_secret_access_key="x" * 40)
ok(error_code(unknown.put_object, Bucket=B, Key="evil2", Body=b"x")[0] == "InvalidAccessKeyId", "unknown key")
expired = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "evil3"}, ExpiresIn=1)
time.sleep(2)
status, text = raw_put(expired, b"x")
ok(status == 403 and b"AccessDenied" in text, f"expired presign -> AccessDenied ({status} {text[:200]})")


def skewed_now(*a, **kw):
    return real_now(*a, **kw) - datetime.timedelta(minutes=20)


signer_modules = [botocore.auth]
try:
    import botocore.crt.auth
    signer_modules.append(botocore.crt.auth)
except ImportError:
    pass
real_now = botocore.utils.get_current_datetime
for m in signer_modules:
    m.get_current_datetime = skewed_now
try:
    ok(error_code(client().put_object, Bucket=B, Key="evil4", Body=b"x")[0] == "RequestTimeTooSkewed", "clock skew")
finally:
    for m in signer_modules:
        m.get_current_datetime = real_now


def raw_delete(xml):
    ev = s3.meta.events
    def replace_body(request, **_):
        request.data = xml
        request.headers["Content-Length"] = str(len(xml))
        for h in list(request.headers.keys()):
            low = h.lower()
            if low == "content-md5" or low.startswith("x-amz-checksum") or low == "x-amz-sdk-checksum-algorithm":
                del request.headers[h]
    ev.register("before-sign.s3.DeleteObjects", replace_body)
    try:
        return error_code(s3.delete_objects, Bucket=B, Delete={"Objects": [{"Key": "dir/obj.bin"}]})
    finally:
        ev.unregister("before-sign.s3.DeleteObjects", replace_body)


ok(raw_delete(b"<Delete><Object><Key>dir/obj.bin</Key></Object")[0] == "MalformedXML", "malformed XML")
ok(error_code(s3.upload_part, Bucket=B, Key="evil5", UploadId="nonexistent", PartNumber=1, Body=b"x")[0] == "NoSuchUpload", "unknown upload id")
ok(error_code(s3.put_object, Bucket=B, Key="a//b", Body=b"x")[0] == "InvalidObjectName", "a//b")
ok(error_code(s3.put_object, Bucket=B, Key="x/../y", Body=b"x")[0] == "InvalidObjectName", "dot-dot key")
ok(error_code(s3.put_object, Bucket=B, Key="dir/obj.bin/child", Body=b"x")[0] == "KeyConflict", "object under an object")
ok(error_code(s3.put_object, Bucket=B, Key="dir", Body=b"x")[0] == "KeyConflict", "object over a folder")
ok(error_code(s3.put_object, Bucket=B, Key="dir/obj.bin", Body=b"x", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")[0] == "BadDigest", "Content-MD5 mismatch")
ok(error_code(s3.put_object, Bucket=B, Key="newdir/sub/x", Body=b"x", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")[0] == "BadDigest", "Content-MD5 mismatch, new key")
prefixes = [p["Prefix"] for p in s3.list_objects_v2(Bucket=B, Delimiter="/").get("CommonPrefixes", [])]
ok("newdir/" not in prefixes, f"a rejected upload left its folders behind: {prefixes}")
ok(error_code(s3.copy_object, Bucket=B, Key="dir", CopySource={"Bucket": B, "Key": "dir/obj.bin"})[0] == "KeyConflict", "copy onto a folder")
ok(snapshot() == before, "a rejected request changed the bucket")
ok(s3.get_object(Bucket=B, Key="dir/obj.bin")["Body"].read() == body, "object intact after bad input")

# DeleteObject(s), folder markers, DeleteBucket only when empty
s3.put_object(Bucket=B, Key="marker/", Body=b"")
ok(any(p["Prefix"] == "marker/" for p in s3.list_objects_v2(Bucket=B, Delimiter="/").get("CommonPrefixes", [])), "folder marker")
s3.delete_object(Bucket=B, Key="marker/")
ok(error_code(s3.delete_bucket, Bucket=B)[0] == "BucketNotEmpty", "BucketNotEmpty")
s3.delete_object(Bucket=B, Key="presigned.txt")
ok(error_code(s3.head_object, Bucket=B, Key="presigned.txt")[1] == 404, "DeleteObject")
allkeys = [o["Key"] for o in s3.list_objects_v2(Bucket=B).get("Contents", [])]
r = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in allkeys]})
ok(len(r["Deleted"]) == len(allkeys) and not r.get("Errors"), "DeleteObjects")
for p in ["list/sub", "list", "dir", "mp"]:
    s3.delete_object(Bucket=B, Key=p + "/")
s3.delete_bucket(Bucket=B)
ok(error_code(s3.head_bucket, Bucket=B)[1] == 404, "DeleteBucket")
print(f"boto3 {boto3.__version__} / botocore {botocore.__version__}: {s3check.checks} checks passed")
