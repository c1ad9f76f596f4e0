"""S3 POST Object (browser form uploads) through boto3's generate_presigned_post and a real
multipart/form-data POST made with python requests: success statuses and redirect, ${filename},
metadata, CORS, and attacks (size range, tampered, expired and anonymous forms, keys outside the
policy, extra fields, another user's bucket, a forged key). Exits non-zero on any failure.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (the bucket owner),
KURA_OTHER_KEY_ID, KURA_OTHER_SECRET (another user).
"""
import base64
import json
import os
import re
import sys

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
import s3check
from s3check import client, ok

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]
APP = "https://app.example.org"


def post(form, content=b"hello", filename="a.txt", extra_after=None, headers=None):
    files = [("file", (filename, content, "text/plain"))]
    data = list(form["fields"].items())
    # requests puts data fields first, then files; fields after the file go in the file list
    for k, v in extra_after or []:
        files.append((k, (None, v)))
    return requests.post(form["url"], data=data, files=files, headers=headers or {},
                         allow_redirects=False, timeout=60)


def code_of(r):
    m = re.search(r"<Code>([^<]*)</Code>", r.text)
    return m.group(1) if m else None


def exists(c, bucket, key):
    try:
        c.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False


s3 = client()
other = client(aws_access_key_id=os.environ["KURA_OTHER_KEY_ID"],
               aws_secret_access_key=os.environ["KURA_OTHER_SECRET"])
B = "forms"
s3.create_bucket(Bucket=B)

# the plain case: 204, the object stored with its bytes, ETag and Location
form = s3.generate_presigned_post(B, "plain.txt")
r = post(form, b"plain bytes")
ok(r.status_code == 204, f"default status 204: {r.status_code} {r.text}")
ok(r.headers.get("ETag", "").strip('"') == s3.head_object(Bucket=B, Key="plain.txt")["ETag"].strip('"'),
   f"ETag header {r.headers}")
ok(r.headers.get("Location") == f"/{B}/plain.txt", f"Location {r.headers}")
ok(s3.get_object(Bucket=B, Key="plain.txt")["Body"].read() == b"plain bytes", "stored bytes")

# ${filename}, success_action_status 201 with AWS's XML body, metadata and Content-Type
form = s3.generate_presigned_post(
    B, "up/${filename}",
    Fields={"success_action_status": "201", "Content-Type": "text/plain",
            "x-amz-meta-origin": "form"},
    Conditions=[{"success_action_status": "201"}, ["starts-with", "$Content-Type", "text/"],
                {"x-amz-meta-origin": "form"}, ["content-length-range", 1, 1000]])
r = post(form, b"named by the browser", filename="photo.txt")
ok(r.status_code == 201, f"201: {r.status_code} {r.text}")
ok("<PostResponse>" in r.text and "<Key>up/photo.txt</Key>" in r.text
   and f"<Bucket>{B}</Bucket>" in r.text and "<ETag>&quot;" in r.text, f"201 body {r.text}")
h = s3.head_object(Bucket=B, Key="up/photo.txt")
ok(h["ContentType"] == "text/plain", f"content type {h['ContentType']}")
ok(h["Metadata"] == {"origin": "form"}, f"metadata {h['Metadata']}")

# 200, and a redirect (303 with bucket, key and etag added)
form = s3.generate_presigned_post(B, "two.txt", Fields={"success_action_status": "200"},
                                  Conditions=[{"success_action_status": "200"}])
r = post(form)
ok(r.status_code == 200 and r.text == "", f"200: {r.status_code} {r.text}")
form = s3.generate_presigned_post(B, "redir.txt",
                                  Fields={"success_action_redirect": "https://app.example.org/done?x=1"},
                                  Conditions=[{"success_action_redirect": "https://app.example.org/done?x=1"}])
r = post(form)
loc = r.headers.get("Location", "")
ok(r.status_code == 303 and loc.startswith("https://app.example.org/done?x=1&bucket=forms&key=redir.txt&etag="),
   f"redirect: {r.status_code} {loc}")
ok(exists(s3, B, "redir.txt"), "redirected upload stored")

# fields after the file are ignored (AWS), even one the policy does not name
form = s3.generate_presigned_post(B, "after.txt")
r = post(form, b"x", extra_after=[("x-amz-meta-late", "1")])
ok(r.status_code == 204, f"fields after the file: {r.status_code} {r.text}")
ok(s3.head_object(Bucket=B, Key="after.txt")["Metadata"] == {}, "late field ignored")

# a checksum field is verified like PutObject's header
import hashlib
good = base64.b64encode(hashlib.sha256(b"summed").digest()).decode()
form = s3.generate_presigned_post(B, "summed.txt", Fields={"x-amz-checksum-sha256": good},
                                  Conditions=[{"x-amz-checksum-sha256": good}])
r = post(form, b"summed")
ok(r.status_code == 204, f"checksum ok: {r.status_code} {r.text}")
r = post(form, b"not what was summed")
ok(r.status_code == 400 and code_of(r) == "BadDigest", f"checksum mismatch: {r.status_code} {r.text}")

# content-length-range: too large and too small are refused and leave nothing
form = s3.generate_presigned_post(B, "ranged.txt", Conditions=[["content-length-range", 10, 100]])
r = post(form, b"x" * 5000)
ok(r.status_code == 400 and code_of(r) == "EntityTooLarge", f"too large: {r.status_code} {r.text}")
r = post(form, b"x" * 5)
ok(r.status_code == 400 and code_of(r) == "EntityTooSmall", f"too small: {r.status_code} {r.text}")
ok(not exists(s3, B, "ranged.txt"), "refused sizes leave nothing")
r = post(form, b"x" * 50)
ok(r.status_code == 204, f"in range: {r.status_code} {r.text}")

# a key outside the starts-with condition
form = s3.generate_presigned_post(B, "user/ann/${filename}")
form["fields"]["key"] = "user/bob/x.txt"
r = post(form)
ok(r.status_code == 403 and code_of(r) == "AccessDenied" and "Invalid according to Policy" in r.text,
   f"key outside policy: {r.status_code} {r.text}")
ok(not exists(s3, B, "user/bob/x.txt"), "nothing stored outside the policy")

# a key naming a folder (ending in /): refused, nothing made
form = s3.generate_presigned_post(B, "dir/")
r = post(form)
ok(r.status_code == 400 and code_of(r) == "InvalidArgument", f"folder key: {r.status_code} {r.text}")
ok(not exists(s3, B, "dir/"), "no folder made by a form")

# a field the policy does not name
form = s3.generate_presigned_post(B, "extra.txt")
form["fields"]["x-amz-meta-sneaky"] = "1"
r = post(form)
ok(r.status_code == 403 and "Extra input fields" in r.text, f"extra field: {r.status_code} {r.text}")

# a tampered policy (a wider size range, the old signature)
form = s3.generate_presigned_post(B, "tampered.txt", Conditions=[["content-length-range", 0, 10]])
doc = json.loads(base64.b64decode(form["fields"]["policy"]))
doc["conditions"] = [c for c in doc["conditions"] if not (isinstance(c, list) and c[0] == "content-length-range")]
form["fields"]["policy"] = base64.b64encode(json.dumps(doc).encode()).decode()
r = post(form, b"y" * 100)
ok(r.status_code == 403 and code_of(r) == "SignatureDoesNotMatch", f"tampered: {r.status_code} {r.text}")
ok(not exists(s3, B, "tampered.txt"), "tampered form stored nothing")

# an expired policy
form = s3.generate_presigned_post(B, "late.txt", ExpiresIn=-10)
r = post(form)
ok(r.status_code == 403 and code_of(r) == "AccessDenied" and "Policy expired" in r.text,
   f"expired: {r.status_code} {r.text}")

# anonymous: no signature at all, even for a bucket others may read
s3.put_bucket_acl(Bucket=B, ACL="public-read")
r = requests.post(f"{ENDPOINT}/{B}", data={"key": "anon.txt"},
                  files={"file": ("a", b"anon")}, timeout=60)
ok(r.status_code == 403 and code_of(r) == "AccessDenied", f"anonymous: {r.status_code} {r.text}")
s3.put_bucket_acl(Bucket=B, ACL="private")
ok(not exists(s3, B, "anon.txt"), "anonymous stored nothing")

# an unknown key, and a known key id signed with another secret
form = client(aws_access_key_id="KURANOSUCHKEY0000000", aws_secret_access_key="x" * 40) \
    .generate_presigned_post(B, "ghost.txt")
r = post(form)
ok(r.status_code == 403 and code_of(r) == "InvalidAccessKeyId", f"unknown key: {r.status_code} {r.text}")
form = client(aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
              aws_secret_access_key=os.environ["KURA_OTHER_SECRET"]).generate_presigned_post(B, "forged.txt")
r = post(form)
ok(r.status_code == 403 and code_of(r) == "SignatureDoesNotMatch", f"forged: {r.status_code} {r.text}")

# another user's own valid form into the owner's bucket: the core refuses it
form = other.generate_presigned_post(B, "intruder.txt")
r = post(form)
ok(r.status_code == 403 and code_of(r) == "AccessDenied", f"cross-user: {r.status_code} {r.text}")
ok(not exists(s3, B, "intruder.txt"), "cross-user stored nothing")

# a bucket that does not exist
form = s3.generate_presigned_post("no-such-bucket", "x.txt")
r = post(form)
ok(r.status_code == 404 and code_of(r) == "NoSuchBucket", f"no bucket: {r.status_code} {r.text}")

# a policy for another bucket, posted to this one
other.create_bucket(Bucket="bobs")
form = other.generate_presigned_post("bobs", "x.txt")
form["url"] = f"{ENDPOINT}/{B}"
r = post(form)
ok(r.status_code == 403 and code_of(r) == "AccessDenied", f"bucket swap: {r.status_code} {r.text}")

# form fields before the file over 20 KB, and a body that is not multipart
form = s3.generate_presigned_post(B, "big-form.txt", Fields={"x-ignore-pad": "p" * 30000})
r = post(form)
ok(r.status_code == 400 and code_of(r) == "MaxPostPreDataLengthExceededError",
   f"fields too large: {r.status_code} {r.text}")
r = requests.post(f"{ENDPOINT}/{B}", data=b"--nope\r\nnot a form",
                  headers={"Content-Type": "multipart/form-data; boundary=nope"}, timeout=60)
ok(r.status_code == 400 and code_of(r) in ("MalformedPOSTRequest", "InvalidArgument"),
   f"malformed: {r.status_code} {r.text}")
# no file part
r = requests.post(f"{ENDPOINT}/{B}", files={"key": (None, "k")}, timeout=60)
ok(r.status_code == 400 and code_of(r) == "InvalidArgument", f"no file: {r.status_code} {r.text}")

# a canned ACL in the form is applied; one Kura cannot map is refused before anything is stored
form = s3.generate_presigned_post(B, "shown.txt", Fields={"acl": "public-read"},
                                  Conditions=[{"acl": "public-read"}])
r = post(form, b"for everyone")
ok(r.status_code == 204, f"acl public-read: {r.status_code} {r.text}")
grants = s3.get_object_acl(Bucket=B, Key="shown.txt")["Grants"]
ok(any(g["Grantee"].get("URI", "").endswith("/AllUsers") and g["Permission"] == "READ" for g in grants),
   f"public-read applied: {grants}")
form = s3.generate_presigned_post(B, "rw.txt", Fields={"acl": "public-read-write"},
                                  Conditions=[{"acl": "public-read-write"}])
r = post(form)
ok(r.status_code == 501 and not exists(s3, B, "rw.txt"), f"acl refused: {r.status_code} {r.text}")

# CORS: a page of an allowed origin can read the answer
s3.put_bucket_cors(Bucket=B, CORSConfiguration={"CORSRules": [
    {"AllowedOrigins": [APP], "AllowedMethods": ["POST"], "AllowedHeaders": ["*"],
     "ExposeHeaders": ["ETag", "Location"]}]})
pre = requests.options(f"{ENDPOINT}/{B}", headers={"Origin": APP, "Access-Control-Request-Method": "POST"},
                       timeout=60)
ok(pre.status_code == 200 and pre.headers.get("Access-Control-Allow-Origin") == APP, f"preflight {pre.headers}")
form = s3.generate_presigned_post(B, "cors.txt")
r = post(form, headers={"Origin": APP})
ok(r.status_code == 204 and r.headers.get("Access-Control-Allow-Origin") == APP, f"cors: {r.headers}")
r = post(form, headers={"Origin": "https://evil.example"})
ok(r.status_code == 204 and "Access-Control-Allow-Origin" not in r.headers, f"cors other origin: {r.headers}")

# a form from another SDK: minio-py's presigned_post_policy (the form its functional suite makes)
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

from minio import Minio
from minio.datatypes import PostPolicy

u = urlparse(ENDPOINT)
mc = Minio(u.netloc, access_key=os.environ["AWS_ACCESS_KEY_ID"],
           secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], secure=u.scheme == "https", region="us-east-1")
policy = PostPolicy(B, datetime.now(timezone.utc) + timedelta(days=1))
policy.add_starts_with_condition("key", "objectPrefix/")
policy.add_content_length_range_condition(64 * 1024, 10 << 20)
policy.add_starts_with_condition("Content-Type", "image/")
fields = mc.presigned_post_policy(policy)
fields.update({"key": "objectPrefix/pic.png", "Content-Type": "image/png"})
r = requests.post(f"{ENDPOINT}/{B}", data=fields, files={"file": ("pic.png", b"p" * (100 * 1024))},
                  timeout=60)
ok(r.status_code == 204, f"minio form: {r.status_code} {r.text}")
ok(s3.head_object(Bucket=B, Key="objectPrefix/pic.png")["ContentLength"] == 100 * 1024, "minio form stored")
fields["Content-Type"] = "text/html"
r = requests.post(f"{ENDPOINT}/{B}", data=fields, files={"file": ("x.html", b"p" * (100 * 1024))},
                  timeout=60)
ok(r.status_code == 403 and code_of(r) == "AccessDenied", f"minio form, wrong type: {r.status_code} {r.text}")

print(f"s3_post: {s3check.checks} checks passed")
