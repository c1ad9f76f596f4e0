"""What the boto3 conformance scripts share: a path-style client of the server under test
(KURA_S3_ENDPOINT), a check that stops the script at its first failure, and the S3 error code
of a call. `checks` counts the checks made, for the scripts' last line."""
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ.get("KURA_S3_ENDPOINT", "")
checks = 0


def client(**kw):
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                      retries={"max_attempts": 1}), **kw)


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
        return e.response["Error"]["Code"]
    return None
