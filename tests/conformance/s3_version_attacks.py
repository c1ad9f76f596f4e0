"""Attacks on the S3 versioning API and object lock by an outsider, through boto3 and WebDAV.

- DeleteBucket of a versioned bucket that still holds versions or delete markers is
  BucketNotEmpty (as on AWS); once every version is deleted by id, it goes.
- A bucket with object lock holding a locked version is never deleted (its lock configuration
  would go with it): BucketNotEmpty, and the lock is still there.
- Deleting a private folder (mode 700) does not open the history of the files in it: another
  user who may list the bucket lists none of their versions and reads none by id.
- A default retention is at most 100 years (MinIO's bound): Years=2000000000 was taken, read
  back as negative Days, and every version written after it had a retention nobody could read.
- The history of a deleted bucket is not the next bucket's of the same name: another user who
  creates it and enables versioning lists no version of the old one and reads none by id.

Environment: KURA_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (admin),
KURA_OTHER_KEY_ID, KURA_OTHER_SECRET (bob), KURA_DAV_PASSWORD (admin's password).
Exits non-zero on any failure.
"""
import base64
import datetime
import os
import urllib.error
import urllib.request

import s3check
from s3check import client, error_code as error, ok

ENDPOINT = s3check.ENDPOINT
AUTH = "Basic " + base64.b64encode(f"admin:{os.environ['KURA_DAV_PASSWORD']}".encode()).decode()


def dav(method, path, data=None):
    req = urllib.request.Request(f"{ENDPOINT}/dav/{path}", data=data, method=method,
                                 headers={"Authorization": AUTH, "Content-Type": "application/xml"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def versions(c, bucket):
    r = c.list_object_versions(Bucket=bucket)
    return r.get("Versions", []) + r.get("DeleteMarkers", [])


s3 = client()
bob = client(aws_access_key_id=os.environ["KURA_OTHER_KEY_ID"],
             aws_secret_access_key=os.environ["KURA_OTHER_SECRET"])

# ---- DeleteBucket counts versions and delete markers, as on AWS ----
s3.create_bucket(Bucket="history")
s3.put_bucket_versioning(Bucket="history", VersioningConfiguration={"Status": "Enabled"})
secret = s3.put_object(Bucket="history", Key="secret.txt", Body=b"alice's secret")["VersionId"]
s3.delete_object(Bucket="history", Key="secret.txt")
ok(error(s3.delete_bucket, Bucket="history") == "BucketNotEmpty",
   "a bucket holding a version and a delete marker is not deleted")
ok(s3.get_object(Bucket="history", Key="secret.txt", VersionId=secret)["Body"].read()
   == b"alice's secret", "the refused DeleteBucket kept the version")
for v in versions(s3, "history"):
    s3.delete_object(Bucket="history", Key=v["Key"], VersionId=v["VersionId"])
ok(error(s3.delete_bucket, Bucket="history") is None, "an emptied versioned bucket is deleted")

# ---- a deleted bucket's history is not the next owner's ----
s3.create_bucket(Bucket="inherit")
s3.put_bucket_versioning(Bucket="inherit", VersioningConfiguration={"Status": "Enabled"})
old = s3.put_object(Bucket="inherit", Key="payroll.csv", Body=b"alice's payroll")["VersionId"]
s3.put_object(Bucket="inherit", Key="payroll.csv", Body=b"newer")
s3.delete_object(Bucket="inherit", Key="payroll.csv")
ok(dav("DELETE", "inherit") == 204, "the owner deletes the whole bucket over WebDAV")
bob.create_bucket(Bucket="inherit")
bob.put_bucket_versioning(Bucket="inherit", VersioningConfiguration={"Status": "Enabled"})
ok(versions(bob, "inherit") == [], "the new owner lists none of the old bucket's versions")
ok(error(bob.get_object, Bucket="inherit", Key="payroll.csv", VersionId=old) == "NoSuchVersion",
   "the new owner reads no old version by id")
ok(error(bob.head_object, Bucket="inherit", Key="payroll.csv", VersionId=old) is not None,
   "nor heads it")

# ---- a deleted private folder keeps its files' history private ----
CHMOD_700 = (b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:K="urn:kura:props">'
             b'<D:set><D:prop><K:mode>700</K:mode></D:prop></D:set></D:propertyupdate>')
s3.create_bucket(Bucket="team")
s3.put_bucket_versioning(Bucket="team", VersioningConfiguration={"Status": "Enabled"})
s3.put_object(Bucket="team", Key="open.txt", Body=b"for everyone")
ok(dav("MKCOL", "team/private") == 201, "a folder made over WebDAV")
ok(dav("PROPPATCH", "team/private", CHMOD_700) == 207, "chmod 700")
hidden = s3.put_object(Bucket="team", Key="private/deep/plan.txt", Body=b"hidden plan")["VersionId"]
ok(error(bob.get_object, Bucket="team", Key="private/deep/plan.txt") == "AccessDenied",
   "bob cannot read into the private folder")
ok([v["Key"] for v in versions(bob, "team")] == ["open.txt"], "bob lists only open.txt")
ok(dav("DELETE", "team/private") == 204, "the private folder is deleted")
ok([v["Key"] for v in versions(bob, "team")] == ["open.txt"],
   "after the delete bob still lists none of the private folder's history")
ok(error(bob.get_object, Bucket="team", Key="private/deep/plan.txt", VersionId=hidden)
   in ("AccessDenied", "NoSuchVersion"), "nor reads it by id")
ok(s3.get_object(Bucket="team", Key="private/deep/plan.txt", VersionId=hidden)["Body"].read()
   == b"hidden plan", "the owner still reads it")

# ---- a bucket with object lock holding a locked version is never deleted ----
s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
held = s3.put_object(Bucket="vault", Key="ledger", Body=b"kept", ObjectLockMode="COMPLIANCE",
                     ObjectLockRetainUntilDate=until)["VersionId"]
s3.delete_object(Bucket="vault", Key="ledger")
ok(error(s3.delete_bucket, Bucket="vault") == "BucketNotEmpty",
   "a lock bucket holding a locked version is not deleted")
ok(s3.get_object_lock_configuration(Bucket="vault")["ObjectLockConfiguration"]
   ["ObjectLockEnabled"] == "Enabled", "its lock configuration stays")
ok(s3.get_object_retention(Bucket="vault", Key="ledger", VersionId=held)["Retention"]["Mode"]
   == "COMPLIANCE", "and the version's retention")

# ---- a default retention has a bound ----
for rule in ({"Years": 2000000000}, {"Days": 36501}, {"Years": 101}):
    ok(error(s3.put_object_lock_configuration, Bucket="vault", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": dict(Mode="GOVERNANCE", **rule)}}) == "InvalidArgument",
       f"default retention {rule} refused")
s3.put_object_lock_configuration(Bucket="vault", ObjectLockConfiguration={
    "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Years": 100}}})
ok(s3.get_object_lock_configuration(Bucket="vault")["ObjectLockConfiguration"]["Rule"]
   ["DefaultRetention"]["Days"] == 36500, "100 years is taken")
s3.put_object(Bucket="vault", Key="later", Body=b"x")
ok(s3.get_object_retention(Bucket="vault", Key="later")["Retention"]["Mode"] == "GOVERNANCE",
   "a version written under it has a readable retention")

print(f"{s3check.checks} checks passed")
