"""SSE-C (a key the S3 client brings with each request) through boto3, as attacks: the right
key reads (GET, ranged GET, HEAD) and the response echoes it; a wrong key is 403, no key 400, a
key whose MD5 is not the key-MD5 400, a key over plain HTTP 400 and nothing stored; HEAD needs
the key; CopyObject SSE-C to plain, plain to SSE-C and onto itself with a new key; multipart
uploads (parts and completion need the upload's key, UploadPartCopy from an SSE-C source); a
presigned GET with the key's headers; WebDAV and the browser app's download refuse the file
and say why; the bytes on disk hold no run of the plaintext, and the database holds neither
the key nor its MD5. Exits non-zero on the first failure.

Argument: `tls` (all of the above), `plain` (the server speaks plain HTTP: SSE-C is refused
and nothing stored), `after` (after `kura encryption disable`: the SSE-C files are as they
were and still open with their key), `forged` and `proxied` (plain HTTP saying
`X-Forwarded-Proto: https`, to a server that does not trust this client as its proxy, or
does: refused, or taken), `logged` (a few SSE-C requests, a copy and a presigned URL for a
server logging at debug, whose log the caller then searches for the keys).

Environment: KURA_S3_ENDPOINT, AWS_CA_BUNDLE (https), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
(admin), KURA_DAV_PASSWORD (admin's password), KURA_FILES (the stored files' folder), KURA_DB
(kura.db). Buckets `sec` (encrypted) and `pub` (plain) exist.
"""
import base64
import hashlib
import io
import os
import sqlite3
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile

import requests
import s3check
from botocore.exceptions import ClientError
from s3check import client, ok

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]
FILES = os.environ["KURA_FILES"]
DB = os.environ["KURA_DB"]
AUTH = "Basic " + base64.b64encode(f"admin:{os.environ['KURA_DAV_PASSWORD']}".encode()).decode()
SEG = 64 * 1024
KEY = bytes(range(32))
OTHER = bytes(range(100, 132))


def b64(b):
    return base64.b64encode(b).decode()


def md5_b64(b):
    return b64(hashlib.md5(b).digest())


def sse(key):
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def copy_sse(key):
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key}


def pattern(n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += b"KNOWN-PATTERN-LINE-%010d\n" % i
        i += 1
    return bytes(out[:n])


def sealed_len(n):
    return 32 + max(1, -(-n // SEG)) * 16 + n


def error(fn, **kw):
    """(code, status) of a refused call; (None, 200) if it succeeded."""
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def stored(bucket, key):
    with open(os.path.join(FILES, bucket, key), "rb") as f:
        return f.read()


def recorded(path):
    """The `sealed` and `etag` columns of a file's row."""
    db = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    try:
        return db.execute("SELECT sealed, etag FROM entries WHERE path = ?", (path,)).fetchone()
    finally:
        db.close()


def http(method, path, headers=None):
    """Status and body of a plain request to the server (TLS checked against AWS_CA_BUNDLE)."""
    h = {"Authorization": AUTH}
    h.update(headers or {})
    req = urllib.request.Request(f"{ENDPOINT}{path}", method=method, headers=h)
    ctx = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE"))
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get(bucket, key, **kw):
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def form_post(key, body):
    """A browser form (POST Object) carrying the SSE-C key as fields; its status."""
    fields = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
              "x-amz-server-side-encryption-customer-key": b64(KEY),
              "x-amz-server-side-encryption-customer-key-md5": md5_b64(KEY)}
    form = s3.generate_presigned_post("pub", key, Fields=fields,
                                      Conditions=[{k: v} for k, v in fields.items()])
    r = requests.post(form["url"], data=list(form["fields"].items()),
                      files=[("file", ("f", body, "application/octet-stream"))],
                      verify=os.environ.get("AWS_CA_BUNDLE") or True, timeout=60)
    return r.status_code


s3 = client()
DATA = pattern(3 * SEG + 100)
mode = sys.argv[1]

if mode == "plain":
    # over plain HTTP the key would cross the network in clear: refused before it is used
    s3.put_object(Bucket="pub", Key="plain.txt", Body=b"plain")
    ok(error(s3.put_object, Bucket="pub", Key="c.bin", Body=DATA, **sse(KEY))
       == ("InvalidRequest", 400), "SSE-C PUT over plain HTTP refused")
    ok(not os.path.exists(os.path.join(FILES, "pub", "c.bin")), "nothing stored over plain HTTP")
    ok(error(s3.head_object, Bucket="pub", Key="c.bin")[1] == 404, "no object either")
    ok(error(s3.get_object, Bucket="pub", Key="plain.txt", **sse(KEY))
       == ("InvalidRequest", 400), "SSE-C GET over plain HTTP refused")
    ok(error(s3.copy_object, Bucket="pub", Key="c2.bin",
             CopySource={"Bucket": "pub", "Key": "plain.txt"}, **copy_sse(KEY))[1] == 400,
       "copy-source SSE-C over plain HTTP refused")
    ok(form_post("form.bin", DATA) == 400, "a form's SSE-C fields over plain HTTP refused")
    ok(not os.path.exists(os.path.join(FILES, "pub", "form.bin")), "no form upload stored")
    print(f"ssec plain: {s3check.checks} checks passed")
    sys.exit(0)

def forwarded(proto):
    """A client whose requests say they came over `proto` (as a proxy's X-Forwarded-Proto)."""
    c = client()
    c.meta.events.register("before-sign.s3",
                           lambda request, **kw: request.headers.__setitem__(
                               "X-Forwarded-Proto", proto))
    return c


if mode in ("forged", "proxied"):
    # plain HTTP with X-Forwarded-Proto: believed only from a trusted proxy
    for proto, key in [("http", "http.bin"), ("https", "https.bin")]:
        c = forwarded(proto)
        believed = mode == "proxied" and proto == "https"
        got = error(c.put_object, Bucket="pub", Key=key, Body=DATA, **sse(KEY))
        ok(got == ((None, 200) if believed else ("InvalidRequest", 400)),
           f"{mode}, X-Forwarded-Proto: {proto}: {got}")
        ok(os.path.exists(os.path.join(FILES, "pub", key)) == believed, f"{key} stored or not")
    if mode == "proxied":
        ok(b"KNOWN-PATTERN" not in stored("pub", "https.bin"), "sealed on disk")
        ok(forwarded("https").get_object(Bucket="pub", Key="https.bin", **sse(KEY))["Body"].read()
           == DATA, "reads with the key through the proxy")
    print(f"ssec {mode}: {s3check.checks} checks passed")
    sys.exit(0)

if mode == "logged":
    # what a server logging at debug sees: keys as headers, a copy source's key, a wrong key,
    # a presigned URL's signature in the query
    s3.put_object(Bucket="pub", Key="logged.bin", Body=DATA, **sse(KEY))
    ok(get("pub", "logged.bin", **sse(KEY)) == DATA, "GET with the key")
    ok(s3.head_object(Bucket="pub", Key="logged.bin", **sse(KEY))["ContentLength"] == len(DATA),
       "HEAD with the key")
    ok(error(s3.get_object, Bucket="pub", Key="logged.bin", **sse(OTHER))[1] == 403,
       "GET with another key: 403")
    s3.copy_object(Bucket="pub", Key="logged-copy.bin",
                   CopySource={"Bucket": "pub", "Key": "logged.bin"}, **copy_sse(KEY), **sse(OTHER))
    ok(get("pub", "logged-copy.bin", **sse(OTHER)) == DATA, "the copy opens with its key")
    s3.put_object(Bucket="pub", Key="plain-logged.bin", Body=b"plain")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "pub",
                                                          "Key": "plain-logged.bin"})
    ctx = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE"))
    with urllib.request.urlopen(url, context=ctx) as resp:
        ok(resp.read() == b"plain", "a presigned GET")
    # the caller looks for this signature in the log
    print("presigned-signature:", urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
          ["X-Amz-Signature"][0])
    print(f"ssec logged: {s3check.checks} checks passed")
    sys.exit(0)

if mode == "after":
    # a conversion of the bucket leaves SSE-C files alone: same bytes, same key
    ok(recorded("/sec/ssec.bin")[0].startswith("c1:"), "still SSE-C after disable")
    ok(get("sec", "ssec.bin", **sse(KEY)) == DATA, "still opens with its key after disable")
    ok(error(s3.get_object, Bucket="sec", Key="ssec.bin") == ("InvalidRequest", 400),
       "still refused without its key after disable")
    print(f"ssec after: {s3check.checks} checks passed")
    sys.exit(0)

# -- the right key: PUT, GET, ranged GET, HEAD, echoed ----------------------------------------
put = s3.put_object(Bucket="pub", Key="ssec.bin", Body=DATA, **sse(KEY))
ok(put["SSECustomerAlgorithm"] == "AES256", "PUT echoes the algorithm")
ok(put["SSECustomerKeyMD5"] == md5_b64(KEY), "PUT echoes the key MD5")
# Kura's rule (docs/encryption.md): the ETag stays the plaintext's MD5
ok(put["ETag"].strip('"') == hashlib.md5(DATA).hexdigest(), "ETag is the plaintext MD5")
r = s3.get_object(Bucket="pub", Key="ssec.bin", **sse(KEY))
ok(r["Body"].read() == DATA, "GET with the key gives the plaintext")
ok(r["SSECustomerKeyMD5"] == md5_b64(KEY) and r["SSECustomerAlgorithm"] == "AES256",
   "GET echoes the key")
n = len(DATA)
for rng, want in [("bytes=0-0", DATA[:1]), (f"bytes={n - 1}-{n - 1}", DATA[-1:]),
                  (f"bytes={SEG - 1}-{2 * SEG}", DATA[SEG - 1:2 * SEG + 1]),
                  ("bytes=-500", DATA[-500:]), (f"bytes={2 * SEG}-", DATA[2 * SEG:])]:
    got = get("pub", "ssec.bin", Range=rng, **sse(KEY))
    ok(got == want, f"ranged GET {rng}")
h = s3.head_object(Bucket="pub", Key="ssec.bin", **sse(KEY))
ok(h["ContentLength"] == n, "HEAD with the key: the plaintext size")
ok(h["SSECustomerKeyMD5"] == md5_b64(KEY), "HEAD echoes the key")

# -- attacks: no key, a wrong key, on GET and HEAD ---------------------------------------------
ok(error(s3.get_object, Bucket="pub", Key="ssec.bin") == ("InvalidRequest", 400),
   "GET without the key: 400")
ok(error(s3.get_object, Bucket="pub", Key="ssec.bin", Range="bytes=0-9")[1] == 400,
   "ranged GET without the key: 400")
ok(error(s3.get_object, Bucket="pub", Key="ssec.bin", **sse(OTHER)) == ("AccessDenied", 403),
   "GET with another key: 403")
ok(error(s3.head_object, Bucket="pub", Key="ssec.bin")[1] == 400, "HEAD without the key: 400")
ok(error(s3.head_object, Bucket="pub", Key="ssec.bin", **sse(OTHER))[1] == 403,
   "HEAD with another key: 403")
ok(error(s3.get_object_attributes, Bucket="pub", Key="ssec.bin",
         ObjectAttributes=["ETag", "ObjectSize"])[1] == 400, "attributes without the key: 400")
s3.put_object(Bucket="pub", Key="plain.bin", Body=DATA)
ok(error(s3.get_object, Bucket="pub", Key="plain.bin", **sse(KEY)) == ("InvalidRequest", 400),
   "a key for an object stored without one: 400")
ok(get("pub", "plain.bin") == DATA, "the plain object reads without a key")

# -- attacks on the headers themselves ---------------------------------------------------------
ok(error(s3.put_object, Bucket="pub", Key="bad-md5.bin", Body=DATA, SSECustomerAlgorithm="AES256",
         SSECustomerKey=b64(KEY), SSECustomerKeyMD5=md5_b64(OTHER)) == ("InvalidArgument", 400),
   "a key-MD5 that is not the key's: 400")
ok(error(s3.put_object, Bucket="pub", Key="short.bin", Body=DATA, **sse(KEY[:16]))
   == ("InvalidArgument", 400), "a 16-byte key: 400")
ok(error(s3.put_object, Bucket="pub", Key="kms.bin", Body=DATA, SSECustomerAlgorithm="aws:kms",
         SSECustomerKey=KEY)[1] == 400, "an algorithm other than AES256: 400")
ok(error(s3.get_object, Bucket="pub", Key="ssec.bin", SSECustomerAlgorithm="AES256",
         SSECustomerKey=b64(KEY), SSECustomerKeyMD5=md5_b64(OTHER)) == ("InvalidArgument", 400),
   "a GET whose key-MD5 is not the key's: 400, even with the right key")
ok(error(s3.put_object, Bucket="pub", Key="no-alg.bin", Body=DATA, SSECustomerKey=KEY)
   == ("InvalidArgument", 400), "a key without the algorithm: 400, not stored without it")
# a copy source's key on a PutObject, which copies nothing: refused (as AWS does), not ignored
src_key = {"x-amz-copy-source-server-side-encryption-customer-algorithm": "AES256",
           "x-amz-copy-source-server-side-encryption-customer-key": b64(KEY),
           "x-amz-copy-source-server-side-encryption-customer-key-MD5": md5_b64(KEY)}
with_src_key = client()
with_src_key.meta.events.register(
    "before-sign.s3", lambda request, **kw: [request.headers.__setitem__(k, v)
                                             for k, v in src_key.items()])
ok(error(with_src_key.put_object, Bucket="pub", Key="src-key.bin", Body=DATA)
   == ("InvalidArgument", 400), "a copy source's key on a PutObject: 400")
ok(error(with_src_key.put_object, Bucket="pub", Key="src-key.bin", Body=DATA, **sse(KEY))
   == ("InvalidArgument", 400), "a copy source's key on a PutObject with its own key: 400")
for k in ["bad-md5.bin", "short.bin", "kms.bin", "no-alg.bin", "src-key.bin"]:
    ok(not os.path.exists(os.path.join(FILES, "pub", k)), f"{k}: nothing stored")

# -- what is stored: sealed bytes, a wrapped key and a salted fingerprint only -----------------
disk = stored("pub", "ssec.bin")
ok(len(disk) == sealed_len(n), "stored in the sealed format, even in a plain bucket")
ok(b"KNOWN-PATTERN" not in disk, "no run of the plaintext on disk")
sealed, etag = recorded("/pub/ssec.bin")
ok(sealed.startswith("c1:"), "recorded as wrapped by the client's key")
for secret in [KEY.hex(), b64(KEY), hashlib.md5(KEY).hexdigest(), md5_b64(KEY),
               hashlib.sha256(KEY).hexdigest()]:
    ok(secret not in sealed, f"the database does not hold {secret}")
# the same key for another object: another salt, another fingerprint (nothing to match up)
s3.put_object(Bucket="sec", Key="ssec.bin", Body=DATA, **sse(KEY))
sec_sealed = recorded("/sec/ssec.bin")[0]
ok(sec_sealed.startswith("c1:"), "in an encrypted bucket the client's key wraps instead")
ok(sec_sealed.split(":")[1:3] != sealed.split(":")[1:3], "salted: fingerprints differ")
ok(b"KNOWN-PATTERN" not in stored("sec", "ssec.bin"), "no plaintext in the encrypted bucket")

# -- CopyObject: SSE-C to plain, plain to SSE-C, onto itself with a new key --------------------
src = {"Bucket": "pub", "Key": "ssec.bin"}
ok(error(s3.copy_object, Bucket="pub", Key="copy-plain.bin", CopySource=src)
   == ("InvalidRequest", 400), "copy of an SSE-C source without its key: 400")
ok(error(s3.copy_object, Bucket="pub", Key="copy-plain.bin", CopySource=src, **copy_sse(OTHER))
   [1] == 403, "copy with another source key: 403")
ok(not os.path.exists(os.path.join(FILES, "pub", "copy-plain.bin")), "no copy made")
s3.copy_object(Bucket="pub", Key="copy-plain.bin", CopySource=src, **copy_sse(KEY))
ok(get("pub", "copy-plain.bin") == DATA, "SSE-C to plain: reads without a key")
ok(stored("pub", "copy-plain.bin") == DATA, "SSE-C to plain: plain on disk (a plain bucket)")
c = s3.copy_object(Bucket="pub", Key="copy-ssec.bin", CopySource={"Bucket": "pub",
                   "Key": "plain.bin"}, **sse(OTHER))
ok(c.get("SSECustomerKeyMD5") == md5_b64(OTHER), "the copy echoes its key")
ok(error(s3.get_object, Bucket="pub", Key="copy-ssec.bin")[1] == 400,
   "plain to SSE-C: needs the key")
ok(get("pub", "copy-ssec.bin", **sse(OTHER)) == DATA, "plain to SSE-C: reads with its key")
ok(b"KNOWN-PATTERN" not in stored("pub", "copy-ssec.bin"), "plain to SSE-C: sealed on disk")
s3.copy_object(Bucket="pub", Key="copy-ssec.bin", CopySource={"Bucket": "pub",
               "Key": "copy-ssec.bin"}, **copy_sse(OTHER), **sse(KEY))
ok(get("pub", "copy-ssec.bin", **sse(KEY)) == DATA, "copied onto itself: the new key reads")
ok(error(s3.get_object, Bucket="pub", Key="copy-ssec.bin", **sse(OTHER))[1] == 403,
   "copied onto itself: the old key no longer does")

# -- multipart: every part and the completion with the upload's key ----------------------------
big = pattern(5 * 1024 * 1024)
mp = s3.create_multipart_upload(Bucket="pub", Key="mp.bin", **sse(KEY))
ok(mp.get("SSECustomerKeyMD5") == md5_b64(KEY), "CreateMultipartUpload echoes the key")
uid = mp["UploadId"]
ok(error(s3.upload_part, Bucket="pub", Key="mp.bin", UploadId=uid, PartNumber=1, Body=big)[1]
   == 400, "a part without the upload's key: 400")
ok(error(s3.upload_part, Bucket="pub", Key="mp.bin", UploadId=uid, PartNumber=1, Body=big,
         **sse(OTHER))[1] == 403, "a part with another key: 403")
p1 = s3.upload_part(Bucket="pub", Key="mp.bin", UploadId=uid, PartNumber=1, Body=big, **sse(KEY))
p2 = s3.upload_part_copy(Bucket="pub", Key="mp.bin", UploadId=uid, PartNumber=2,
                         CopySource=src, CopySourceRange="bytes=0-999", **copy_sse(KEY),
                         **sse(KEY))
parts = {"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]},
                   {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]}
ok(error(s3.complete_multipart_upload, Bucket="pub", Key="mp.bin", UploadId=uid,
         MultipartUpload=parts)[1] == 400, "completion without the upload's key: 400")
ok(error(s3.complete_multipart_upload, Bucket="pub", Key="mp.bin", UploadId=uid,
         MultipartUpload=parts, **sse(OTHER))[1] == 403, "completion with another key: 403")
s3.complete_multipart_upload(Bucket="pub", Key="mp.bin", UploadId=uid, MultipartUpload=parts,
                             **sse(KEY))
ok(get("pub", "mp.bin", **sse(KEY)) == big + DATA[:1000], "the assembled object reads")
ok(error(s3.get_object, Bucket="pub", Key="mp.bin")[1] == 400, "and needs its key")
ok(b"KNOWN-PATTERN" not in stored("pub", "mp.bin"), "no plaintext of the parts on disk")

# -- a presigned GET: the key comes as the headers the URL was signed with ---------------------
url = s3.generate_presigned_url("get_object", Params={"Bucket": "pub", "Key": "ssec.bin",
                                                      **sse(KEY)}, ExpiresIn=300)
ok("customer-key=" not in url.lower(), "the key is not in the URL")
keyed = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
         "x-amz-server-side-encryption-customer-key": b64(KEY),
         "x-amz-server-side-encryption-customer-key-MD5": md5_b64(KEY)}
ctx = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE"))
with urllib.request.urlopen(urllib.request.Request(url, headers=keyed), context=ctx) as resp:
    ok(resp.read() == DATA, "presigned GET with the key's headers")
try:
    urllib.request.urlopen(url, context=ctx)
    ok(False, "presigned GET without the key refused")
except urllib.error.HTTPError as e:
    ok(e.code in (400, 403), f"presigned GET without the key refused ({e.code})")

# -- a browser form with the key as fields -----------------------------------------------------
ok(form_post("form.bin", DATA) == 204, "POST Object with SSE-C fields")
ok(get("pub", "form.bin", **sse(KEY)) == DATA, "the form's upload opens with its key")
ok(error(s3.get_object, Bucket="pub", Key="form.bin")[1] == 400, "and needs it")
ok(b"KNOWN-PATTERN" not in stored("pub", "form.bin"), "sealed on disk")

# -- paths that cannot bring the key refuse the file and say why -------------------------------
status, body = http("GET", "/dav/pub/ssec.bin")
ok(status == 403, f"WebDAV GET refused ({status})")
ok(b"SSE-C" in body and b"KURASEAL" not in body and b"KNOWN" not in body,
   "WebDAV says why and serves nothing of the file")
status, body = http("GET", "/api/user/v1/download?path=/pub/ssec.bin")
ok(status == 403 and b"SSE-C" in body, f"the app's download refused ({status})")
# a zip of the app leaves the SSE-C file out and holds the plain one beside it
status, body = http("GET", "/api/user/v1/zip?dir=/pub&names=ssec.bin/plain.bin")
names = zipfile.ZipFile(io.BytesIO(body)).namelist() if status == 200 else []
ok(names == ["plain.bin"], f"the zip holds the plain file only ({status}, {names})")
status, _ = http("GET", "/dav/pub/plain.bin")
ok(status == 200, "a plain file beside it still reads over WebDAV")
# a WebDAV COPY (into another plain bucket) copies the sealed bytes as they are: the copy is
# SSE-C too and opens with the same key, never with none
s3.create_bucket(Bucket="other")
dest = f"{ENDPOINT}/dav/other/dav-copy.bin"
status, _ = http("COPY", "/dav/pub/ssec.bin", {"Destination": dest})
ok(status == 201, f"WebDAV COPY of an SSE-C file ({status})")
ok(get("other", "dav-copy.bin", **sse(KEY)) == DATA, "the copy opens with the same key")
ok(error(s3.get_object, Bucket="other", Key="dav-copy.bin")[1] == 400, "and needs it")
# the listing still shows it (name and size are metadata, as in AWS)
names = [o["Key"] for o in s3.list_objects_v2(Bucket="pub").get("Contents", [])]
ok("ssec.bin" in names, "listed")

print(f"ssec tls: {s3check.checks} checks passed")
