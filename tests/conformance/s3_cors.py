"""S3 CORS through boto3: Put/Get/DeleteBucketCors round trip, presigned GET and PUT with an
Origin get Access-Control-Allow-Origin, malformed XML is MalformedXML, bad rules are refused,
and another user may neither read nor change the rules. Exits non-zero on any failure.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (the bucket owner),
KURA_OTHER_KEY_ID, KURA_OTHER_SECRET (another user).
"""
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
APP = "https://app.example.org"


def error_code(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def fetch(url, method="GET", data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


s3 = client()
other = client(aws_access_key_id=os.environ["KURA_OTHER_KEY_ID"],
               aws_secret_access_key=os.environ["KURA_OTHER_SECRET"])
B = "web"
s3.create_bucket(Bucket=B)
s3.put_object(Bucket=B, Key="page.txt", Body=b"hello")

ok(error_code(s3.get_bucket_cors, Bucket=B) == ("NoSuchCORSConfiguration", 404),
   "a bucket without rules: NoSuchCORSConfiguration")
rules = [
    {"ID": "app", "AllowedOrigins": [APP], "AllowedMethods": ["GET", "PUT", "HEAD"],
     "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
]
s3.put_bucket_cors(Bucket=B, CORSConfiguration={"CORSRules": rules})
got = s3.get_bucket_cors(Bucket=B)["CORSRules"]
ok(len(got) == 2 and got[0]["AllowedOrigins"] == [APP] and got[0]["ExposeHeaders"] == ["ETag"]
   and got[0]["MaxAgeSeconds"] == 600 and got[0]["ID"] == "app" and got[1]["AllowedMethods"] == ["HEAD"],
   f"GetBucketCors returns the rules as put: {got}")

# a presigned GET from the allowed origin gets the CORS headers; another origin does not
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "page.txt"}, ExpiresIn=300)
status, h, body = fetch(url, headers={"Origin": APP})
ok(status == 200 and body == b"hello", "presigned GET works")
ok(h.get("Access-Control-Allow-Origin") == APP, f"presigned GET with Origin gets ACAO: {h}")
ok(h.get("Access-Control-Expose-Headers") == "ETag", "and the exposed headers")
ok("Origin" in h.get("Vary", ""), "and Vary: Origin")
status, h, _ = fetch(url, headers={"Origin": "https://evil.example"})
ok(status == 200 and "Access-Control-Allow-Origin" not in h, "another origin gets no ACAO")
status, h, _ = fetch(url)
ok("Access-Control-Allow-Origin" not in h, "no Origin, no ACAO")

# a presigned PUT from the allowed origin too
url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "up.txt"}, ExpiresIn=300)
status, h, _ = fetch(url, method="PUT", data=b"from the browser", headers={"Origin": APP})
ok(status == 200 and h.get("Access-Control-Allow-Origin") == APP, f"presigned PUT with Origin gets ACAO: {status} {h} {_}")
ok(s3.get_object(Bucket=B, Key="up.txt")["Body"].read() == b"from the browser", "the PUT stored its bytes")

# errors carry the headers too: a presigned GET of a missing key
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "missing"}, ExpiresIn=300)
status, h, _ = fetch(url, headers={"Origin": APP})
ok(status == 404 and h.get("Access-Control-Allow-Origin") == APP, "a 404 with Origin gets ACAO")

# rules AWS refuses are refused, and change nothing
for bad, code in [
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}, "InvalidRequest"),
    ({"AllowedOrigins": ["https://*.*.example"], "AllowedMethods": ["GET"]}, "InvalidRequest"),
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["x-*-*"]}, "InvalidRequest"),
]:
    ok(error_code(s3.put_bucket_cors, Bucket=B, CORSConfiguration={"CORSRules": [bad]})[0] == code,
       f"{bad} -> {code}")
ok(error_code(s3.put_bucket_cors, Bucket=B,
              CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101})[0]
   == "InvalidRequest", "101 rules -> InvalidRequest")
# AWS's 64 KB: rules read for every request with Origin are kept small (100 rules of 150
# origins, about 800 KB, were stored before)
big = [{"AllowedOrigins": [f"https://o{i}-{j}.example" for j in range(150)], "AllowedMethods": ["GET"]}
       for i in range(100)]
ok(error_code(s3.put_bucket_cors, Bucket=B, CORSConfiguration={"CORSRules": big})[0] == "InvalidRequest",
   "a configuration over 64 KB -> InvalidRequest")
# an XML body over the 2 MB every XML operation may send: a clear 400, not a 500
huge = [{"AllowedOrigins": [f"https://o{i}-{j}.example" for j in range(400)], "AllowedMethods": ["GET"],
         "AllowedHeaders": ["x-" + "h" * 40 + str(j) for j in range(50)]} for i in range(100)]
ok(error_code(s3.put_bucket_cors, Bucket=B, CORSConfiguration={"CORSRules": huge})
   == ("MaxMessageLengthExceeded", 400), "an XML body over 2 MB -> 400 MaxMessageLengthExceeded")
ok(len(s3.get_bucket_cors(Bucket=B)["CORSRules"]) == 2, "refused rules changed nothing")


# malformed XML: the body is replaced before signing (boto3 would not send it)
def garble(request, **kw):
    request.data = b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
    for h in list(request.headers.keys()):
        if h.lower() in ("content-md5", "content-length") or h.lower().startswith("x-amz-checksum") \
                or h.lower() == "x-amz-sdk-checksum-algorithm":
            del request.headers[h]


s3.meta.events.register("before-sign.s3.PutBucketCors", garble)
code = error_code(s3.put_bucket_cors, Bucket=B,
                  CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]})
ok(code == ("MalformedXML", 400), f"malformed CORS XML -> MalformedXML: {code}")
s3.meta.events.unregister("before-sign.s3.PutBucketCors", garble)
ok(len(s3.get_bucket_cors(Bucket=B)["CORSRules"]) == 2, "malformed XML changed nothing")

# another user may neither change, read nor delete the rules
open_rules = {"CORSRules": [{"AllowedOrigins": ["https://evil.example"], "AllowedMethods": ["GET"]}]}
ok(error_code(other.put_bucket_cors, Bucket=B, CORSConfiguration=open_rules)[0] == "AccessDenied",
   "non-owner PutBucketCors -> AccessDenied")
ok(error_code(other.get_bucket_cors, Bucket=B)[0] == "AccessDenied", "non-owner GetBucketCors -> AccessDenied")
ok(error_code(other.delete_bucket_cors, Bucket=B)[0] == "AccessDenied", "non-owner DeleteBucketCors -> AccessDenied")
ok(s3.get_bucket_cors(Bucket=B)["CORSRules"][0]["AllowedOrigins"] == [APP], "the rules are unchanged")
ok(error_code(s3.put_bucket_cors, Bucket="no-such-bucket", CORSConfiguration=open_rules)[0] == "NoSuchBucket",
   "PutBucketCors on a missing bucket -> NoSuchBucket")

s3.delete_bucket_cors(Bucket=B)
ok(error_code(s3.get_bucket_cors, Bucket=B)[0] == "NoSuchCORSConfiguration", "DeleteBucketCors clears the rules")
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "page.txt"}, ExpiresIn=300)
status, h, _ = fetch(url, headers={"Origin": APP})
ok(status == 200 and "Access-Control-Allow-Origin" not in h, "no rules, no ACAO")
s3.delete_bucket_cors(Bucket=B)  # deleting nothing succeeds, as in S3

print(f"cors: {s3check.checks} checks passed")
