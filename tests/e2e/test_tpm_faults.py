"""The TPM behind tpm2-pkcs11 goes away and comes back under a running server
(`hsm/tpm2 stop-tpm` / `start-tpm`: the simulator stops, its resource manager loses it).
Once the cached bucket key expires, SSE-KP reads and writes get 503 with Retry-After,
write nothing and change no key state, while default-mode requests are unaffected; when
the TPM is back, the same process serves SSE-KP again without a restart (it re-initialises
the PKCS#11 module), counted in /metrics.

Collected only when the suites' HSM is a TPM (CIPHERSTORE_E2E_HSM_ENV from `hsm/tpm2 up`,
as scripts/test runs it): tests/e2e/conftest.py deselects it otherwise.
"""

import json
import pathlib
import subprocess
import time

import pytest

from cipherstore_harness import error_code, refused_503, until
from cipherstore_harness.server import REPO

STORES = ["fs"]
TTL = 2
SERVER = {"cache_ttl": str(TTL)}
pytestmark = pytest.mark.tpm2


def answers(fn):
    try:
        return fn()
    except Exception:
        return None


def test_the_tpm_goes_away_and_comes_back(srv):
    check = srv.check
    tpm = pathlib.Path(srv.env["TPM2_PKCS11_STORE"]).parent
    s3 = srv.boto3("alice")
    crn = srv.create_root("tpm-root")
    kp = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}}]}
    s3.create_bucket(Bucket="tpm")
    s3.put_bucket_encryption(Bucket="tpm", ServerSideEncryptionConfiguration=kp)
    s3.create_bucket(Bucket="plain")
    s3.put_object(Bucket="tpm", Key="a", Body=b"sealed under the TPM")
    read_a = lambda: s3.get_object(Bucket="tpm", Key="a")["Body"].read()  # noqa: E731
    check("SSE-KP works on the TPM", read_a() == b"sealed under the TPM")
    recoveries = srv.metric("cipherstore_hsm_recoveries_total")

    subprocess.run([str(REPO / "hsm/tpm2"), "stop-tpm", str(tpm)], check=True)
    try:
        time.sleep(TTL + 1)
        refused_503(srv, "TPM away: GET", read_a)
        refused_503(srv, "TPM away: PUT", lambda: s3.put_object(Bucket="tpm", Key="b", Body=b"b" * 5000))
        s3.put_object(Bucket="plain", Key="p", Body=b"default mode")
        check("default-mode requests are unaffected",
              s3.get_object(Bucket="plain", Key="p")["Body"].read() == b"default mode")
    finally:
        subprocess.run([str(REPO / "hsm/tpm2"), "start-tpm", str(tpm)], check=True)
    # Re-initialisations back off while they do not help (1, 2, 4, 8, 16 s).
    check("TPM back: GET works without a restart", until(lambda: answers(read_a), timeout=60) == b"sealed under the TPM")
    s3.put_object(Bucket="tpm", Key="c", Body=b"after")
    check("TPM back: PUT works", s3.get_object(Bucket="tpm", Key="c")["Body"].read() == b"after")
    check("nothing written by the refused PUT",
          error_code(lambda: s3.head_object(Bucket="tpm", Key="b")) in ("404", "NoSuchKey"))
    check("the recovery is counted", srv.metric("cipherstore_hsm_recoveries_total") > recoveries)
    state = json.loads((srv.data / "keys" / "state.json").read_text())
    check("the root keys stay active", all(k["state"] == "active" for k in state["keys"]), str(state["keys"]))
