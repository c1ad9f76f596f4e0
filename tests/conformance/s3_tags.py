"""S3 object and bucket tagging through boto3: PutObject with Tagging, Get/Put/DeleteObjectTagging,
TagCount on GET (and x-amz-tagging-count on HEAD), CopyObject with the COPY and REPLACE tagging
directives, CreateMultipartUpload with Tagging, AWS's limits (InvalidTag), Put/Get/Delete
BucketTagging (NoSuchTagSet once deleted), and another user refused. Leaves `tagged/doc.txt`
tagged project=kura, year=2026 for the WebDAV half of the test. Exits non-zero on any failure.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (the bucket owner),
KURA_OTHER_KEY_ID, KURA_OTHER_SECRET (another user).
"""
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
import s3check
from s3check import client, error_code, ok

ENDPOINT = os.environ["KURA_S3_ENDPOINT"]


def tags(s3, key, bucket="tagged"):
    r = s3.get_object_tagging(Bucket=bucket, Key=key)
    return {t["Key"]: t["Value"] for t in r["TagSet"]}


s3 = client()
other = client(aws_access_key_id=os.environ["KURA_OTHER_KEY_ID"],
               aws_secret_access_key=os.environ["KURA_OTHER_SECRET"])
s3.create_bucket(Bucket="tagged")

s3.put_object(Bucket="tagged", Key="doc.txt", Body=b"hello", Tagging="project=kura&year=2026")
ok(tags(s3, "doc.txt") == {"project": "kura", "year": "2026"}, "PutObject Tagging stored")
ok(s3.get_object(Bucket="tagged", Key="doc.txt")["TagCount"] == 2, "GET TagCount")
head = s3.head_object(Bucket="tagged", Key="doc.txt")
ok(head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count") == "2", "HEAD tag count")
s3.put_object(Bucket="tagged", Key="plain.txt", Body=b"x")
ok("TagCount" not in s3.get_object(Bucket="tagged", Key="plain.txt"), "no TagCount without tags")

# CopyObject: COPY (default) keeps the source's tags, REPLACE takes the request's
s3.copy_object(Bucket="tagged", Key="copy.txt", CopySource={"Bucket": "tagged", "Key": "doc.txt"})
ok(tags(s3, "copy.txt") == {"project": "kura", "year": "2026"}, "COPY directive keeps tags")
s3.copy_object(Bucket="tagged", Key="re.txt", CopySource={"Bucket": "tagged", "Key": "doc.txt"},
               TaggingDirective="REPLACE", Tagging="a=b")
ok(tags(s3, "re.txt") == {"a": "b"}, "REPLACE directive replaces tags")
s3.copy_object(Bucket="tagged", Key="none.txt", CopySource={"Bucket": "tagged", "Key": "doc.txt"},
               TaggingDirective="REPLACE")
ok(tags(s3, "none.txt") == {}, "REPLACE without Tagging clears tags")
ok(tags(s3, "doc.txt") == {"project": "kura", "year": "2026"}, "the source keeps its tags")

# multipart uploads carry the tags given at their start
mp = s3.create_multipart_upload(Bucket="tagged", Key="big.bin", Tagging="kind=archive")
part = s3.upload_part(Bucket="tagged", Key="big.bin", UploadId=mp["UploadId"], PartNumber=1,
                      Body=b"z" * 1000)
s3.complete_multipart_upload(Bucket="tagged", Key="big.bin", UploadId=mp["UploadId"],
                             MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
ok(tags(s3, "big.bin") == {"kind": "archive"}, "CreateMultipartUpload Tagging")

# Put/DeleteObjectTagging, and AWS's limits
s3.put_object_tagging(Bucket="tagged", Key="plain.txt",
                      Tagging={"TagSet": [{"Key": "é k", "Value": "v & w"}]})
ok(tags(s3, "plain.txt") == {"é k": "v & w"}, "PutObjectTagging unicode")
s3.delete_object_tagging(Bucket="tagged", Key="plain.txt")
ok(tags(s3, "plain.txt") == {}, "DeleteObjectTagging")
eleven = {"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
ok(error_code(s3.put_object_tagging, Bucket="tagged", Key="plain.txt", Tagging=eleven)
   == "InvalidTag", "11 tags refused")
long_key = {"TagSet": [{"Key": "k" * 129, "Value": "v"}]}
ok(error_code(s3.put_object_tagging, Bucket="tagged", Key="plain.txt", Tagging=long_key)
   == "InvalidTag", "129-character key refused")
long_value = {"TagSet": [{"Key": "k", "Value": "v" * 257}]}
ok(error_code(s3.put_object_tagging, Bucket="tagged", Key="plain.txt", Tagging=long_value)
   == "InvalidTag", "257-character value refused")
ok(error_code(s3.put_object, Bucket="tagged", Key="bad.txt", Body=b"x",
              Tagging="&".join(f"k{i}=v" for i in range(11))) == "InvalidTag",
   "PutObject with 11 tags refused")
ok(error_code(s3.head_object, Bucket="tagged", Key="bad.txt") is not None,
   "the refused PutObject stored nothing")
s3.put_object_tagging(Bucket="tagged", Key="plain.txt",
                      Tagging={"TagSet": [{"Key": "k" * 128, "Value": "v" * 256}]})
ok(len(tags(s3, "plain.txt")) == 1, "the limits themselves are allowed")

# bucket tagging
ok(error_code(s3.get_bucket_tagging, Bucket="tagged") == "NoSuchTagSet", "no bucket tags yet")
s3.put_bucket_tagging(Bucket="tagged", Tagging={"TagSet": [{"Key": "team", "Value": "red"}]})
got = s3.get_bucket_tagging(Bucket="tagged")["TagSet"]
ok(got == [{"Key": "team", "Value": "red"}], "bucket tags round trip")
ok(error_code(s3.put_bucket_tagging, Bucket="tagged", Tagging=eleven) == "InvalidTag",
   "11 bucket tags refused")
s3.delete_bucket_tagging(Bucket="tagged")
ok(error_code(s3.get_bucket_tagging, Bucket="tagged") == "NoSuchTagSet", "bucket tags deleted")

# another user reads them only as far as the object (its mode lets others read), changes none
ok(error_code(other.get_object_tagging, Bucket="tagged", Key="doc.txt")
   == error_code(other.get_object, Bucket="tagged", Key="doc.txt"),
   "another user reads tags exactly when the object")
s3.put_object(Bucket="tagged", Key="private.txt", Body=b"p", Tagging="secret=yes")
s3.put_object_acl(Bucket="tagged", Key="private.txt", ACL="private")
ok(error_code(other.get_object, Bucket="tagged", Key="private.txt") == "AccessDenied"
   and error_code(other.get_object_tagging, Bucket="tagged", Key="private.txt") == "AccessDenied",
   "another user cannot read a private object's tags")
ok(error_code(other.put_object_tagging, Bucket="tagged", Key="doc.txt",
              Tagging={"TagSet": [{"Key": "x", "Value": "y"}]}) == "AccessDenied",
   "another user cannot set tags")
ok(error_code(other.put_bucket_tagging, Bucket="tagged",
              Tagging={"TagSet": [{"Key": "x", "Value": "y"}]}) == "AccessDenied",
   "another user cannot tag the bucket")
ok(tags(s3, "doc.txt") == {"project": "kura", "year": "2026"}, "tags unchanged by refusals")
print(f"s3_tags: {s3check.checks} checks passed")
