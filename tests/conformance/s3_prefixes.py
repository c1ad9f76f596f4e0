"""Empty prefixes, conditional writes and the bucket/copy rules of the core, driven by boto3,
with attacks. Exits non-zero on any failure; prints the number of checks.

Environment: KURA_S3_ENDPOINT, AWS_CA_BUNDLE, and the keys ADMIN_ID/ADMIN_SECRET (owner of
everything) and BOB_ID/BOB_SECRET (a user with a bucket of his own and no rights on admin's).
"""
import os
import sys
import threading

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]
checks = 0


def client(key_id, secret):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def ok(cond, what):
    global checks
    checks += 1
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def error_code(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def prefixes(s3, bucket, prefix=""):
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix=prefix)
    return sorted(p["Prefix"] for p in r.get("CommonPrefixes", []))


def keys(s3, bucket):
    r = s3.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in r.get("Contents", []))


s3 = client(os.environ["ADMIN_ID"], os.environ["ADMIN_SECRET"])
bob = client(os.environ["BOB_ID"], os.environ["BOB_SECRET"])

# --- empty prefixes vanish with their last key; delimiter listings show no stale prefix
B = "pfx"  # made by the test, mode 700: bob has no rights in it
for k in ("a/x", "a/deep/er/y", "b/z"):
    s3.put_object(Bucket=B, Key=k, Body=b"1")
ok(prefixes(s3, B) == ["a/", "b/"], "two prefixes listed")
s3.delete_object(Bucket=B, Key="a/deep/er/y")
ok(prefixes(s3, B, "a/") == [], "a/deep/ gone with its last key")
s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "a/x"}]})
ok(prefixes(s3, B) == ["b/"], f"a/ gone after DeleteObjects: {prefixes(s3, B)}")
# a marker folder stays when its last key goes; deleting the marker of a non-empty folder
# leaves a prefix that goes with its last key (as in S3)
s3.put_object(Bucket=B, Key="keep/", Body=b"")
s3.put_object(Bucket=B, Key="keep/f", Body=b"1")
s3.delete_object(Bucket=B, Key="keep/f")
ok("keep/" in prefixes(s3, B), "a marker folder survives its last key")
s3.put_object(Bucket=B, Key="keep/f", Body=b"1")
s3.delete_object(Bucket=B, Key="keep/")
ok("keep/" in prefixes(s3, B), "deleting the marker keeps a prefix with keys")
s3.delete_object(Bucket=B, Key="keep/f")
ok("keep/" not in prefixes(s3, B), "the unmarked prefix goes with its last key")
# a marker written onto an implicit prefix makes it stay
s3.put_object(Bucket=B, Key="mark/later/f", Body=b"1")
s3.put_object(Bucket=B, Key="mark/later/", Body=b"")
s3.delete_object(Bucket=B, Key="mark/later/f")
ok(prefixes(s3, B, "mark/") == ["mark/later/"], "a marker PUT onto a prefix makes it explicit")

# --- a key ending in / with content is refused clearly, and changes nothing
code, status = error_code(s3.put_object, Bucket=B, Key="withbody/", Body=b"data")
ok((code, status) == ("InvalidArgument", 400), f"a/b/ with content: {code} {status}")
ok("withbody/" not in prefixes(s3, B), "a refused marker made no folder")
# '..' and empty segments are refused and make no folder
for bad in ("../escape", "x/../../y", "x//y", "./x"):
    code, status = error_code(s3.put_object, Bucket=B, Key=bad, Body=b"1")
    ok(status == 400, f"key {bad!r} refused: {code} {status}")
ok(prefixes(s3, B) == ["b/", "mark/"], f"no folder from refused keys: {prefixes(s3, B)}")

# --- attacks: a user without rights can neither delete to prune nor mark another's folder
code, _ = error_code(bob.delete_object, Bucket=B, Key="b/z")
ok(code == "AccessDenied", f"bob may not delete admin's key: {code}")
ok(prefixes(s3, B) == ["b/", "mark/"], "bob's refused delete pruned nothing")
code, _ = error_code(bob.put_object, Bucket=B, Key="b/", Body=b"")
ok(code == "AccessDenied", f"bob may not mark admin's prefix: {code}")
s3.delete_object(Bucket=B, Key="b/z")
ok("b/" not in prefixes(s3, B), "bob's refused marker did not make b/ explicit")
code, _ = error_code(bob.put_object, Bucket=B, Key="b/new/k", Body=b"1")
ok(code == "AccessDenied", f"bob may not write into admin's bucket: {code}")
ok("b/" not in prefixes(s3, B), "bob's refused write made no folder")

# --- a refused CopyObject leaves no folder behind
BB = "bobs"
bob.create_bucket(Bucket=BB)
s3.put_object(Bucket=B, Key="secret/s", Body=b"s")
code, _ = error_code(bob.copy_object, Bucket=BB, Key="stolen/deep/s",
                     CopySource={"Bucket": B, "Key": "secret/s"})
ok(code == "AccessDenied", f"bob may not copy admin's key: {code}")
ok(prefixes(bob, BB) == [], f"the refused copy made no folder: {prefixes(bob, BB)}")
bob.put_object(Bucket=BB, Key="mine", Body=b"m")
bob.copy_object(Bucket=BB, Key="c/d/mine", CopySource={"Bucket": BB, "Key": "mine"})
ok(prefixes(bob, BB) == ["c/"], "an allowed copy makes its prefix")
bob.delete_object(Bucket=BB, Key="c/d/mine")
ok(prefixes(bob, BB) == [], "and it goes with the copy")

# --- DeleteBucket: empty but for implicit folders succeeds, else BucketNotEmpty
s3.create_bucket(Bucket="gone")
s3.put_object(Bucket="gone", Key="p/q/r", Body=b"1")
ok(error_code(s3.delete_bucket, Bucket="gone")[0] == "BucketNotEmpty", "non-empty bucket kept")
s3.delete_object(Bucket="gone", Key="p/q/r")
s3.delete_bucket(Bucket="gone")
ok(error_code(s3.head_bucket, Bucket="gone")[1] == 404, "emptied bucket deleted")
code, _ = error_code(bob.delete_bucket, Bucket=B)
ok(code == "AccessDenied", f"bob may not delete admin's bucket: {code}")

# --- DeleteBucket racing PutObject never deletes an acknowledged object
for i in range(25):
    name = f"race{i}"
    s3.create_bucket(Bucket=name)
    result = {}

    def put():
        result["put"] = error_code(s3.put_object, Bucket=name, Key=f"d{i}/k", Body=b"v")

    def rb():
        result["rb"] = error_code(s3.delete_bucket, Bucket=name)

    t1, t2 = threading.Thread(target=put), threading.Thread(target=rb)
    t1.start(); t2.start(); t1.join(); t2.join()
    if result["put"][0] is None:
        ok(result["rb"][0] == "BucketNotEmpty", f"race {i}: put won, rb said {result['rb']}")
        ok(s3.get_object(Bucket=name, Key=f"d{i}/k")["Body"].read() == b"v",
           f"race {i}: the acknowledged object is there")
    else:
        ok(result["rb"][0] is None and result["put"][0] == "NoSuchBucket",
           f"race {i}: rb won, put said {result['put']}")

# --- conditional writes (AWS 2024): 412 at the checks, 409 when a concurrent write wins
C = "cond"  # made by the test, mode 700
e1 = s3.put_object(Bucket=C, Key="k", Body=b"one", IfNoneMatch="*")["ETag"]
code, status = error_code(s3.put_object, Bucket=C, Key="k", Body=b"two", IfNoneMatch="*")
ok((code, status) == ("PreconditionFailed", 412), f"If-None-Match * on an existing key: {code} {status}")
ok(s3.get_object(Bucket=C, Key="k")["Body"].read() == b"one", "the refused write changed nothing")
e2 = s3.put_object(Bucket=C, Key="k", Body=b"two", IfMatch=e1)["ETag"]
ok(e2 != e1, "If-Match with the current ETag writes")
code, status = error_code(s3.put_object, Bucket=C, Key="k", Body=b"three", IfMatch=e1)
ok((code, status) == ("PreconditionFailed", 412), f"If-Match with a stale ETag: {code} {status}")
code, status = error_code(s3.put_object, Bucket=C, Key="absent", Body=b"x", IfMatch=e1)
ok((code, status) == ("NoSuchKey", 404), f"If-Match on a missing key: {code} {status}")
ok(s3.get_object(Bucket=C, Key="k")["Body"].read() == b"two", "still the second version")
# a user who may not write the key learns nothing from its ETag
code, _ = error_code(bob.put_object, Bucket=C, Key="k", Body=b"x", IfMatch='"0"')
ok(code == "AccessDenied", f"bob's conditional write: {code}")


def multipart(key, body, **cond):
    up = s3.create_multipart_upload(Bucket=C, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=C, Key=key, UploadId=up, PartNumber=1, Body=body)
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    return s3.complete_multipart_upload(Bucket=C, Key=key, UploadId=up,
                                        MultipartUpload=parts, **cond)


multipart("mp", b"first", IfNoneMatch="*")
code, status = error_code(multipart, "mp", b"second", IfNoneMatch="*")
ok((code, status) == ("PreconditionFailed", 412), f"CompleteMultipartUpload If-None-Match: {code} {status}")
cur = s3.head_object(Bucket=C, Key="mp")["ETag"]
code, status = error_code(multipart, "mp", b"second", IfMatch='"00000000000000000000000000000000"')
ok((code, status) == ("PreconditionFailed", 412), f"CompleteMultipartUpload stale If-Match: {code} {status}")
multipart("mp", b"second", IfMatch=cur)
ok(s3.get_object(Bucket=C, Key="mp")["Body"].read() == b"second", "If-Match multipart wrote")

# two writers at once with If-None-Match: * on a fresh key: exactly one wins
for i in range(10):
    key = f"once{i}"
    body = os.urandom(256 * 1024)
    results = []

    def writer(tag):
        results.append((tag, error_code(s3.put_object, Bucket=C, Key=key, Body=tag + body,
                                        IfNoneMatch="*")))

    ts = [threading.Thread(target=writer, args=(t,)) for t in (b"A", b"B")]
    [t.start() for t in ts]
    [t.join() for t in ts]
    won = [t for t, (code, _) in results if code is None]
    lost = [r for _, r in results if r[0] is not None]
    ok(len(won) == 1, f"exactly one If-None-Match writer wins: {results}")
    ok(lost[0] in (("PreconditionFailed", 412), ("ConditionalRequestConflict", 409)),
       f"the loser gets 412 or 409: {lost}")
    ok(s3.get_object(Bucket=C, Key=key)["Body"].read()[:1] == won[0], "the winner's bytes stay")

# compare-and-swap: two writers with the same If-Match, exactly one wins
for i in range(10):
    key = f"cas{i}"
    base = s3.put_object(Bucket=C, Key=key, Body=b"base")["ETag"]
    body = os.urandom(256 * 1024)
    results = []

    def swapper(tag):
        results.append((tag, error_code(s3.put_object, Bucket=C, Key=key, Body=tag + body,
                                        IfMatch=base)))

    ts = [threading.Thread(target=swapper, args=(t,)) for t in (b"A", b"B")]
    [t.start() for t in ts]
    [t.join() for t in ts]
    won = [t for t, (code, _) in results if code is None]
    lost = [r for _, r in results if r[0] is not None]
    ok(len(won) == 1, f"exactly one If-Match writer wins: {results}")
    ok(lost[0] in (("PreconditionFailed", 412), ("ConditionalRequestConflict", 409)),
       f"the loser gets 412 or 409: {lost}")
    ok(s3.get_object(Bucket=C, Key=key)["Body"].read()[:1] == won[0], "the winner's bytes stay")

print(f"{checks} checks passed")
