"""Public reads through boto3: ACLs mapped onto modes, public-read buckets and objects, the
bucket policy subset, GetBucketPolicyStatus and the public access block, each checked with an
anonymous reader (plain HTTP, no signature). Exits non-zero on any failure.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (admin, the owner),
KURA_OTHER_KEY_ID, KURA_OTHER_SECRET (bob, another user).
"""
import json
import os
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
import s3check
from s3check import ok

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def client(**kw):
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}), **kw)


def error_code(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def anon(path, method="GET", data=None):
    """An unsigned request: (status, body)."""
    req = urllib.request.Request(ENDPOINT + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


s3 = client()
bob = client(aws_access_key_id=os.environ["KURA_OTHER_KEY_ID"],
             aws_secret_access_key=os.environ["KURA_OTHER_SECRET"])

# ---- a private bucket: nothing is readable anonymously ----
s3.create_bucket(Bucket="priv")
s3.put_object(Bucket="priv", Key="secret.txt", Body=b"secret")
s3.put_object(Bucket="priv", Key="shared.txt", Body=b"shared")
ok(anon("/priv/secret.txt")[0] == 403, "anonymous GET of a private object -> 403")
ok(anon("/priv/missing.txt")[0] == 403, "anonymous GET of a missing key -> 403 (nothing revealed)")
ok(anon("/priv/secret.txt", "HEAD")[0] == 403, "anonymous HEAD of a private object -> 403")
ok(s3.get_bucket_policy_status(Bucket="priv")["PolicyStatus"]["IsPublic"] is False, "a new bucket is not public")

# ---- an object ACL: public-read on one object ----
s3.put_object_acl(Bucket="priv", Key="shared.txt", ACL="public-read")
ok(anon("/priv/shared.txt") == (200, b"shared"), "public-read object is read anonymously")
ok(anon("/priv/shared.txt", "HEAD")[0] == 200, "and HEAD")
ok(anon("/priv/secret.txt")[0] == 403, "its neighbour stays private")
ok(anon("/priv")[0] == 403 and anon("/priv/")[0] == 403, "no anonymous listing")
grants = s3.get_object_acl(Bucket="priv", Key="shared.txt")["Grants"]
ok(any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants),
   f"GetObjectAcl shows AllUsers READ: {grants}")
ok(s3.get_bucket_policy_status(Bucket="priv")["PolicyStatus"]["IsPublic"] is False,
   "a public object does not make its bucket public")
s3.put_object(Bucket="priv", Key="shared.txt", Body=b"shared")
ok(anon("/priv/shared.txt") == (200, b"shared"), "an overwrite keeps the object public (its mode and switch)")
s3.put_object_acl(Bucket="priv", Key="shared.txt", ACL="private")
ok(anon("/priv/shared.txt")[0] == 403, "private again: 403")
grants = s3.get_object_acl(Bucket="priv", Key="shared.txt")["Grants"]
ok(not any(g["Grantee"].get("URI") for g in grants), f"private: owner only: {grants}")
ok(error_code(bob.get_object, Bucket="priv", Key="shared.txt")[0] == "AccessDenied", "private: bob may not read")

# authenticated-read: every user, not anonymous callers
s3.put_object_acl(Bucket="priv", Key="shared.txt", ACL="authenticated-read")
ok(bob.get_object(Bucket="priv", Key="shared.txt")["Body"].read() == b"shared", "authenticated-read: bob reads")
ok(anon("/priv/shared.txt")[0] == 403, "authenticated-read: anonymous may not")

# grant headers and bodies
s3.put_object_acl(Bucket="priv", Key="shared.txt", GrantFullControl='id="admin"', GrantRead=f"uri={ALL_USERS}")
ok(anon("/priv/shared.txt")[0] == 200, "a grant of READ to AllUsers makes the object public")
acl = s3.get_object_acl(Bucket="priv", Key="shared.txt")
s3.put_object_acl(Bucket="priv", Key="shared.txt",
                  AccessControlPolicy={"Owner": acl["Owner"], "Grants": [
                      {"Grantee": {"Type": "CanonicalUser", "ID": "admin"}, "Permission": "FULL_CONTROL"}]})
ok(anon("/priv/shared.txt")[0] == 403, "an AccessControlPolicy body without AllUsers makes it private")

# refused ACLs, each changing nothing
for kw, code in [
    ({"ACL": "public-read-write"}, "NotImplemented"),
    ({"ACL": "aws-exec-read"}, "NotImplemented"),
    ({"GrantWrite": f"uri={ALL_USERS}"}, "NotImplemented"),
    ({"GrantRead": 'id="somebody-else"'}, "NotImplemented"),
    ({"GrantRead": 'emailAddress="a@example.org"'}, "UnresolvableGrantByEmailAddress"),
]:
    ok(error_code(s3.put_object_acl, Bucket="priv", Key="shared.txt", **kw)[0] == code, f"{kw} -> {code}")
ok(error_code(s3.put_bucket_acl, Bucket="priv", ACL="public-read-write")[0] == "NotImplemented",
   "public-read-write bucket -> NotImplemented")
ok(anon("/priv/shared.txt")[0] == 403, "refused ACLs changed nothing")

# another user may not change ACLs (the core's chmod rule)
ok(error_code(bob.put_bucket_acl, Bucket="priv", ACL="public-read")[0] == "AccessDenied",
   "non-owner PutBucketAcl -> AccessDenied")
ok(error_code(bob.put_object_acl, Bucket="priv", Key="secret.txt", ACL="public-read")[0] == "AccessDenied",
   "non-owner PutObjectAcl -> AccessDenied")
ok(anon("/priv/secret.txt")[0] == 403 and anon("/priv/shared.txt")[0] == 403, "and nothing became public")

# ---- a public-read bucket ----
s3.create_bucket(Bucket="pub")
s3.put_object(Bucket="pub", Key="a/b/page.txt", Body=b"public page")
s3.put_bucket_acl(Bucket="pub", ACL="public-read")
ok(anon("/pub/a/b/page.txt") == (200, b"public page"), "public-read bucket: objects read anonymously")
ok(anon("/pub")[0] == 403, "public-read bucket: no anonymous listing")
ok(s3.get_bucket_policy_status(Bucket="pub")["PolicyStatus"]["IsPublic"] is True, "GetBucketPolicyStatus: public")
grants = s3.get_bucket_acl(Bucket="pub")["Grants"]
ok(any(g["Grantee"].get("URI") == ALL_USERS for g in grants), "GetBucketAcl shows AllUsers")

# ---- the public access block ----
s3.put_public_access_block(Bucket="pub", PublicAccessBlockConfiguration={
    "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
got = s3.get_public_access_block(Bucket="pub")["PublicAccessBlockConfiguration"]
ok(got == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
           "RestrictPublicBuckets": True}, f"GetPublicAccessBlock: {got}")
ok(anon("/pub/a/b/page.txt")[0] == 403, "IgnorePublicAcls: the public-read bucket ACL no longer lets anyone read")
ok(s3.get_bucket_policy_status(Bucket="pub")["PolicyStatus"]["IsPublic"] is False, "and the bucket is not public")
ok(error_code(s3.put_object_acl, Bucket="pub", Key="a/b/page.txt", ACL="public-read")[0] == "AccessDenied",
   "BlockPublicAcls: a public-read ACL is refused")
policy = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pub/a/*"}]})
ok(error_code(s3.put_bucket_policy, Bucket="pub", Policy=policy)[0] == "AccessDenied",
   "BlockPublicPolicy: a public policy is refused")
ok(error_code(bob.put_public_access_block, Bucket="pub", PublicAccessBlockConfiguration={
    "BlockPublicAcls": False})[0] == "AccessDenied", "non-owner PutPublicAccessBlock -> AccessDenied")
ok(error_code(bob.delete_public_access_block, Bucket="pub")[0] == "AccessDenied",
   "non-owner DeletePublicAccessBlock -> AccessDenied")
s3.delete_public_access_block(Bucket="pub")
ok(error_code(s3.get_public_access_block, Bucket="pub") == ("NoSuchPublicAccessBlockConfiguration", 404),
   "DeletePublicAccessBlock clears it")
ok(anon("/pub/a/b/page.txt")[0] == 200, "without the block the bucket is public again")
s3.put_bucket_acl(Bucket="pub", ACL="private")
ok(anon("/pub/a/b/page.txt")[0] == 403, "private bucket ACL: 403")
ok(error_code(bob.get_object, Bucket="pub", Key="a/b/page.txt")[0] == "AccessDenied",
   "private bucket ACL: other users may not enter it")
# authenticated-read: every user may list and enter it, anonymous callers still not
s3.put_bucket_acl(Bucket="pub", ACL="authenticated-read")
ok(bob.get_object(Bucket="pub", Key="a/b/page.txt")["Body"].read() == b"public page", "authenticated-read bucket")
ok(anon("/pub/a/b/page.txt")[0] == 403, "authenticated-read bucket: not anonymous callers")

# ---- the bucket policy subset ----
s3.put_object(Bucket="pub", Key="other/x.txt", Body=b"x")
ok(error_code(s3.get_bucket_policy, Bucket="pub")[0] == "NoSuchBucketPolicy", "no policy yet")
s3.put_bucket_policy(Bucket="pub", Policy=policy)
ok(s3.get_bucket_policy(Bucket="pub")["Policy"] == policy, "GetBucketPolicy returns the document as stored")
ok(anon("/pub/a/b/page.txt")[0] == 200, "the policy's prefix is readable anonymously")
ok(anon("/pub/other/x.txt")[0] == 403, "outside the prefix: 403")
# the mode still decides: a file "other" may not read stays closed, policy or not
s3.put_object_acl(Bucket="pub", Key="a/b/page.txt", ACL="private")
ok(anon("/pub/a/b/page.txt")[0] == 403, "a private object under a public policy: 403")
s3.put_object_acl(Bucket="pub", Key="a/b/page.txt", ACL="authenticated-read")
ok(anon("/pub/a/b/page.txt")[0] == 200, "other may read it again: public through the policy")
ok(s3.get_bucket_policy_status(Bucket="pub")["PolicyStatus"]["IsPublic"] is True, "a public policy: IsPublic")
s3.put_public_access_block(Bucket="pub", PublicAccessBlockConfiguration={"RestrictPublicBuckets": True})
ok(anon("/pub/a/b/page.txt")[0] == 403, "RestrictPublicBuckets: the policy is ignored")
s3.delete_public_access_block(Bucket="pub")
for doc, code in [
    ("{not json", "MalformedPolicy"),
    (policy.replace("s3:GetObject", "s3:PutObject"), "NotImplemented"),
    (policy.replace("s3:GetObject", "s3:*"), "NotImplemented"),
    (policy.replace('"*"', '{"AWS": "arn:aws:iam::123456789012:root"}'), "NotImplemented"),
    (policy.replace("arn:aws:s3:::pub/a/*", "arn:aws:s3:::priv/*"), "MalformedPolicy"),
    (policy.replace("Allow", "Deny"), "NotImplemented"),
]:
    ok(error_code(s3.put_bucket_policy, Bucket="pub", Policy=doc)[0] == code, f"policy {doc} -> {code}")
ok(s3.get_bucket_policy(Bucket="pub")["Policy"] == policy, "refused policies changed nothing")
ok(error_code(bob.put_bucket_policy, Bucket="pub", Policy=policy)[0] == "AccessDenied",
   "non-owner PutBucketPolicy -> AccessDenied")
ok(error_code(bob.delete_bucket_policy, Bucket="pub")[0] == "AccessDenied", "non-owner DeleteBucketPolicy -> AccessDenied")
s3.delete_bucket_policy(Bucket="pub")
ok(anon("/pub/a/b/page.txt")[0] == 403, "DeleteBucketPolicy: private again")
ok(s3.get_bucket_policy_status(Bucket="pub")["PolicyStatus"]["IsPublic"] is False, "and not public")

print(f"public: {s3check.checks} checks passed")
