"""Racing CompleteMultipartUpload requests of one upload (tree_races.rs): threads released
together by a barrier, each with its own client. Prints one JSON line per round:
{"won": successes, "lost": [error codes], "late_part": status of a part sent afterwards,
"versions": versions of the key}."""
import json
import os
import sys
import threading

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, bucket = os.environ["KURA_S3_ENDPOINT"], sys.argv[1]


def client():
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))


s3 = client()
body = b"\x05" * 1000
for round_ in range(3):
    up = s3.create_multipart_upload(Bucket=bucket, Key="obj")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="obj", UploadId=up, PartNumber=1, Body=body)["ETag"]
    n = 8
    barrier = threading.Barrier(n)
    clients = [client() for _ in range(n)]
    results = [None] * n

    def complete(i):
        barrier.wait()
        try:
            clients[i].complete_multipart_upload(
                Bucket=bucket, Key="obj", UploadId=up,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
            results[i] = "ok"
        except ClientError as e:
            results[i] = e.response["Error"]["Code"]

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        s3.upload_part(Bucket=bucket, Key="obj", UploadId=up, PartNumber=2, Body=body)
        late = "ok"
    except ClientError as e:
        late = e.response["Error"]["Code"]
    versions = len(s3.list_object_versions(Bucket=bucket, Prefix="obj").get("Versions", []))
    print(json.dumps({"won": results.count("ok"), "lost": [r for r in results if r != "ok"],
                      "late_part": late, "versions": versions}), flush=True)
