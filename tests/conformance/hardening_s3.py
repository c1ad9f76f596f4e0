"""Signed S3 requests that aws-cli will not make: SigV2 with a chosen date, SigV2 and SigV4
presigned URLs with a chosen expiry and response-content-type. Prints one JSON object:
{"status": N, "content_type": "...", "csp": "...", "nosniff": "...", "body": "..."}."""

import base64
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config


def fetch(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, h, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, h, body = e.code, e.headers, e.read()
    print(json.dumps({
        "status": status,
        "content_type": h.get("Content-Type", ""),
        "csp": h.get("Content-Security-Policy", ""),
        "nosniff": h.get("X-Content-Type-Options", ""),
        "body": body[:2000].decode("utf-8", "replace"),
    }))


def sign_v2(secret, string_to_sign):
    mac = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def main():
    mode, port, key, secret, bucket, obj, arg = sys.argv[1:8]
    base = f"http://127.0.0.1:{port}"
    resource = f"/{bucket}/{obj}"
    if mode == "sigv2":
        # arg: the Date header (RFC 1123)
        sig = sign_v2(secret, f"GET\n\n\n{arg}\n{resource}")
        fetch(base + resource, {"Date": arg, "Authorization": f"AWS {key}:{sig}"})
    elif mode == "presign2":
        # arg: Expires (seconds since the epoch)
        sig = sign_v2(secret, f"GET\n\n\n{arg}\n{resource}")
        q = urllib.parse.urlencode({"AWSAccessKeyId": key, "Expires": arg, "Signature": sig})
        fetch(f"{base}{resource}?{q}")
    elif mode == "presign4":
        # arg: ExpiresIn; an optional 8th argument: ResponseContentType
        s3 = boto3.client(
            "s3",
            endpoint_url=base,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        params = {"Bucket": bucket, "Key": obj}
        if len(sys.argv) > 8:
            params["ResponseContentType"] = sys.argv[8]
        url = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=int(arg))
        fetch(url)
    else:
        sys.exit(f"unknown mode {mode}")


main()
