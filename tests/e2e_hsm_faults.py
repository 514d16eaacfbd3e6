#!/usr/bin/env python3
"""HSM faults: the SoftHSM2 token disappears under a running server (its directory moved
away). Reads served from the cached bucket key keep working until the cache TTL; after
it, SSE-KP requests get 503 ServiceUnavailable with Retry-After and a message about the
HSM, never a claim that the key was deleted; writes leave nothing behind; the key state
stays active; default-mode and SSE-C requests are unaffected.

    e2e_hsm_faults.py PATH_TO_CIPHERSTORE_BINARY
"""

import base64
import hashlib
import json
import os
import shutil
import sys
import time

from s3harness import Server, error_code

TTL = 2


def main():
    binary = sys.argv[1]
    with Server(binary, cache_ttl=str(TTL)) as srv:
        check = srv.check
        s3 = srv.boto3("alice")
        crn = srv.create_root("fault-root")
        s3.create_bucket(Bucket="hsm-faults")
        s3.create_bucket(Bucket="hsm-plain")
        s3.put_bucket_encryption(Bucket="hsm-faults", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}}]})
        s3.put_object(Bucket="hsm-faults", Key="a", Body=b"kept")
        key = os.urandom(32)
        ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
                "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}
        s3.put_object(Bucket="hsm-plain", Key="c", Body=b"customer", **ssec)
        check("read before the fault", s3.get_object(Bucket="hsm-faults", Key="a")["Body"].read() == b"kept")

        tokens = srv.data / "hsm" / "tokens"
        shutil.move(str(tokens), str(tokens) + ".away")
        try:
            check("cached bucket key still serves reads", s3.get_object(Bucket="hsm-faults", Key="a")["Body"].read() == b"kept")
            time.sleep(TTL + 1)
            try:
                s3.get_object(Bucket="hsm-faults", Key="a")
                check("GET after the TTL refused", False)
            except s3.exceptions.ClientError as e:
                meta = e.response["ResponseMetadata"]
                check("GET after the TTL: 503", meta["HTTPStatusCode"] == 503, str(meta["HTTPStatusCode"]))
                check("GET after the TTL: Retry-After", "retry-after" in meta["HTTPHeaders"], str(meta["HTTPHeaders"]))
                msg = e.response["Error"].get("Message", "")
                check("the message names the HSM, not a deletion", "HSM" in msg and "deleted" not in msg, msg)
            code = error_code(lambda: s3.put_object(Bucket="hsm-faults", Key="new", Body=b"n" * 1000))
            check("PUT during the fault: ServiceUnavailable", code in ("ServiceUnavailable", "503"), str(code))
            check("GET of the default and SSE-C buckets unaffected",
                  s3.get_object(Bucket="hsm-plain", Key="c", **ssec)["Body"].read() == b"customer")
            s3.put_object(Bucket="hsm-plain", Key="d", Body=b"plain")
            check("PUT to a default bucket unaffected", s3.get_object(Bucket="hsm-plain", Key="d")["Body"].read() == b"plain")
        finally:
            shutil.move(str(tokens) + ".away", str(tokens))
        check("nothing written by the refused PUT", error_code(lambda: s3.head_object(Bucket="hsm-faults", Key="new")) in ("404", "NoSuchKey", "ServiceUnavailable", "503"))
        check("no temporary data left", not list((srv.data / "d" / "store" / "tmp").iterdir()))
        state = json.loads((srv.data / "keys" / "state.json").read_text())
        check("the root key stays active", [k["state"] for k in state["keys"]] == ["active"], str(state["keys"]))
        check("the fault is logged", "HSM failure" in srv.log_path.read_text())
    # Restarted on the restored token, the key works again.
    with srv:
        s3 = srv.boto3("alice")
        check("after a restart on the restored token, reads work",
              s3.get_object(Bucket="hsm-faults", Key="a")["Body"].read() == b"kept")
    print(f"{srv.passed} passed, {srv.failed} failed")
    return 0 if srv.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
