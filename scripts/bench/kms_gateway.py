#!/usr/bin/env python3
"""Driver of `scripts/bench-kms gateway`: what a gateway without an HSM costs its key
service. A key service (`serve --kms-listen`, SoftHSM2) and a gateway using it
(`[keys.service]`, no HSM settings), bucket keys cached for the default 60 s. The same
client writes and reads COUNT 4 KiB SSE-KMS objects in one bucket through the gateway, after
one warm-up object; prints the gateway's calls to the service and the service's HSM
unwraps during the run (the target: at most one each), and the ops/s of the same load
through the key service's own S3 endpoint (a local HSM) as the baseline of the run."""

import argparse
import io
import json
import os
import time

import boto3
from botocore.config import Config
from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
from keyprotect.ibm_key_protect_api_v2 import IbmKeyProtectApiV2

from cipherstore_harness import USERS, Server, free_port, until, wait_port


def client(srv):
    ak, sk = USERS["alice"]
    return boto3.client("s3", endpoint_url=srv.endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                        region_name="us-east-1", verify=str(srv.ca),
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def load(s3, bucket, crn, count, warm=lambda: None):
    """PUT+GET pairs after a warm-up object (`warm` runs after it); ops/s."""
    body = os.urandom(4096)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="warm", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=crn)
    warm()
    start = time.monotonic()
    for i in range(count):
        s3.put_object(Bucket=bucket, Key=f"o{i}", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=crn)
        assert s3.get_object(Bucket=bucket, Key=f"o{i}")["Body"].read() == body
    return 2 * count / (time.monotonic() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args()
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    with Server(args.bin, cache_ttl="60", extra_args=("--kms-listen", f"127.0.0.1:{port}")) as svc:
        os.environ["REQUESTS_CA_BUNDLE"] = str(svc.ca)
        wait_port(port)
        gw_key = json.loads(svc.iam("apikey", "create", "bench-gw", "--role", "writer", "--json").stdout)
        admin = json.loads(svc.iam("apikey", "create", "bench-admin", "--role", "writer", "--json").stdout)
        form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": admin["apikey"]}
        import requests
        until(lambda: requests.post(f"{url}/identity/token", data=form, timeout=10).status_code == 200, timeout=20)
        kp = IbmKeyProtectApiV2(authenticator=IAMAuthenticator(admin["apikey"], url=url))
        kp.set_service_url(url)
        made = kp.create_key("local", io.BytesIO(json.dumps(
            {"resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "bench-root", "extractable": False}]}
        ).encode())).get_result()["resources"][0]
        apikey_file = svc.data / "gw.apikey"
        apikey_file.write_text(gw_key["apikey"])
        config = f'[keys.service]\nurl = "{url}"\napikey_file = "{apikey_file}"\nca = "{svc.ca}"\n'
        with Server(args.bin, cache_ttl="60", config=config, hsm=False, cluster=False, dispersal=False) as gw:
            local = load(client(svc), "local-bucket", made["crn"], args.count)
            seen = {}

            def after_warm_up():
                seen["calls"] = gw.metric("cipherstore_key_service_calls_total")
                seen["unwraps"] = svc.metric("cipherstore_hsm_unwraps_total")
            remote = load(client(gw), "remote-bucket", made["crn"], args.count, after_warm_up)
            calls = gw.metric("cipherstore_key_service_calls_total") - seen["calls"]
            unwraps = svc.metric("cipherstore_hsm_unwraps_total") - seen["unwraps"]
    print(json.dumps({"objects": args.count, "requests": 2 * args.count,
                      "gateway_service_calls_after_warm_up": calls, "service_hsm_unwraps_after_warm_up": unwraps,
                      "ops_per_sec_local_hsm": round(local, 1), "ops_per_sec_remote_service": round(remote, 1),
                      "remote_vs_local": round(remote / local, 3)}))


if __name__ == "__main__":
    main()
