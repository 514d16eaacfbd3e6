"""HSM faults under a running server, and recovery without a restart.

1. The SoftHSM2 token disappears (its directory moved away). Reads served from the cached
   bucket key keep working until the cache TTL; after it, SSE-KP requests get 503
   ServiceUnavailable with Retry-After and a message about the HSM, never a claim that the
   key was deleted; writes leave nothing behind; the key state stays active; default-mode
   and SSE-C requests are unaffected.
2. The token comes back: the same server process serves SSE-KP reads and writes again (it
   re-initialises the PKCS#11 module and logs in again), counted in /metrics.
3. The operator changes the user PIN (pkcs11-tool --change-pin) and the PIN file: the
   running server keeps working, and logs in with the new PIN after the next fault.
4. The PIN is changed but the PIN file is not: after a fault, 503 naming the refused PIN;
   once the file holds the new PIN, the server recovers without restart.
5. The module returns errors (examples/pkcs11_fault.rs, a PKCS#11 module that forwards to
   SoftHSM2 and fails chosen calls while a file exists): device errors on unwrap, a
   removed device on wrap, a token not present for sessions and logins. Each gets 503
   with Retry-After, writes nothing, changes no key state, and the server serves again as
   soon as the module does.
"""

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

from cipherstore_harness import error_code, kms_default, refused_503

STORES = ["fs"]

TTL = 2
SERVER = {"cache_ttl": str(TTL)}


@contextlib.contextmanager
def token_away(srv):
    tokens = srv.data / "hsm" / "tokens"
    shutil.move(str(tokens), str(tokens) + ".away")
    try:
        yield
    finally:
        shutil.move(str(tokens) + ".away", str(tokens))


def wait_for(fn, seconds=15):
    """Calls fn until it returns without raising (returns its value) or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def change_pin(srv, old, new):
    module = srv.env["CIPHERSTORE_PKCS11_MODULE"]
    subprocess.run(["pkcs11-tool", "--module", module, "--token-label", "e2e", "--login", "--pin", old,
                    "--change-pin", "--new-pin", new], env=srv.env, check=True, capture_output=True)


@pytest.fixture(scope="session")
def shim(binary):
    """The fault-injecting PKCS#11 module, built beside the binary."""
    path = binary.parent / "examples" / "libpkcs11_fault.so"
    if not path.exists():
        pytest.fail(f"{path} is missing: cargo build --release --example pkcs11_fault", pytrace=False)
    return path


def test_module_errors_heal_without_a_restart(server, shim):
    srv = server(cache_ttl=str(TTL))
    fault_file = srv.data / "fault"
    srv.env["PKCS11_FAULT_MODULE"] = srv.env["CIPHERSTORE_PKCS11_MODULE"]
    srv.env["PKCS11_FAULT_FILE"] = str(fault_file)
    srv.env["CIPHERSTORE_PKCS11_MODULE"] = str(shim)
    with srv:
        check = srv.check
        s3 = srv.boto3("alice")
        crn = srv.create_root("module-root")
        kp = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}}]}
        s3.create_bucket(Bucket="mod-faults")
        s3.put_bucket_encryption(Bucket="mod-faults", ServerSideEncryptionConfiguration=kp)
        s3.put_object(Bucket="mod-faults", Key="a", Body=b"through the shim")
        read_a = lambda: s3.get_object(Bucket="mod-faults", Key="a")["Body"].read()
        check("the server works through the fault module", read_a() == b"through the shim")
        failures = srv.metric("cipherstore_hsm_failures_total")

        # Device errors on unwrap.
        fault_file.write_text("0x30 unwrap\n")
        time.sleep(TTL + 1)
        refused_503(srv, "unwrap device error: GET", read_a)
        refused_503(srv, "unwrap device error: PUT",
                    lambda: s3.put_object(Bucket="mod-faults", Key="b", Body=b"b" * 5000))
        check("the failures are counted", srv.metric("cipherstore_hsm_failures_total") > failures)
        fault_file.unlink()
        check("unwrap heals: GET works without a restart", wait_for(read_a) == b"through the shim")
        check("nothing written by the refused PUT",
              error_code(lambda: s3.head_object(Bucket="mod-faults", Key="b")) in ("404", "NoSuchKey"))

        # A removed device while a bucket key is made (wrap).
        s3.create_bucket(Bucket="mod-wrap")
        fault_file.write_text("0x32 wrap\n")
        refused_503(srv, "wrap device removed: PutBucketEncryption",
                    lambda: s3.put_bucket_encryption(Bucket="mod-wrap", ServerSideEncryptionConfiguration=kp))
        state = json.loads((srv.data / "keys" / "state.json").read_text())
        check("no bucket key recorded for the refused bucket",
              [b["bucket"] for b in state["buckets"] if b["bucket"] != ".iam"] == ["mod-faults"],
              str(state["buckets"]))
        code = error_code(lambda: s3.get_bucket_encryption(Bucket="mod-wrap"))
        check("the bucket keeps its previous (default) encryption",
              code == "ServerSideEncryptionConfigurationNotFoundError", str(code))
        fault_file.unlink()
        wait_for(lambda: s3.put_bucket_encryption(Bucket="mod-wrap", ServerSideEncryptionConfiguration=kp))
        s3.put_object(Bucket="mod-wrap", Key="w", Body=b"wrapped later")
        check("wrap heals: the bucket takes SSE-KP without a restart",
              s3.get_object(Bucket="mod-wrap", Key="w")["Body"].read() == b"wrapped later")

        # The token not present for new sessions, logins and lookups.
        fault_file.write_text("0xE0 open login find unwrap\n")
        time.sleep(TTL + 1)
        refused_503(srv, "token not present: GET", read_a)
        time.sleep(1.2)
        refused_503(srv, "token not present after a reconnect attempt: GET", read_a)
        fault_file.unlink()
        check("token present again: GET works without a restart", wait_for(read_a) == b"through the shim")
        state = json.loads((srv.data / "keys" / "state.json").read_text())
        check("the root keys stay active", all(k["state"] == "active" for k in state["keys"]), str(state["keys"]))
        check("no temporary data left", not list((srv.data / "d" / "store" / "tmp").iterdir()))


def test_read_before_the_fault(srv, suite):
    check = srv.check
    s3 = srv.boto3("alice")
    crn = srv.create_root("fault-root")
    s3.create_bucket(Bucket="hsm-faults")
    s3.create_bucket(Bucket="hsm-plain")
    kms_default(s3, "hsm-faults", crn)
    s3.put_object(Bucket="hsm-faults", Key="a", Body=b"kept")
    key = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}
    s3.put_object(Bucket="hsm-plain", Key="c", Body=b"customer", **ssec)
    check("read before the fault", s3.get_object(Bucket="hsm-faults", Key="a")["Body"].read() == b"kept")
    read_a = lambda: s3.get_object(Bucket="hsm-faults", Key="a")["Body"].read()
    suite.__dict__.update(read_a=read_a, s3=s3, ssec=ssec)


def test_the_token_goes_away(srv, suite):
    check, read_a, s3, ssec = srv.check, suite.read_a, suite.s3, suite.ssec
    # 1. The token goes away.
    with token_away(srv):
        check("cached bucket key still serves reads", read_a() == b"kept")
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
    check("no temporary data left", not list((srv.data / "d" / "store" / "tmp").iterdir()))
    state = json.loads((srv.data / "keys" / "state.json").read_text())
    check("the root keys stay active", all(k["state"] == "active" for k in state["keys"]), str(state["keys"]))
    check("the fault is logged", "HSM failure" in srv.log_path.read_text())


def test_back_without_a_restart(srv, suite):
    check, read_a, s3 = srv.check, suite.read_a, suite.s3
    # 2. Back without a restart.
    check("the token is back: reads work again without a restart", wait_for(read_a) == b"kept")
    check("nothing written by the PUT refused during the fault",
          error_code(lambda: s3.head_object(Bucket="hsm-faults", Key="new")) in ("404", "NoSuchKey"))
    s3.put_object(Bucket="hsm-faults", Key="after", Body=b"after the fault")
    check("writes work again", s3.get_object(Bucket="hsm-faults", Key="after")["Body"].read() == b"after the fault")
    recoveries = srv.metric("cipherstore_hsm_recoveries_total")
    check("the recovery is counted", recoveries is not None and recoveries >= 1, str(recoveries))
    check("the recovery is logged", "re-initialising the PKCS#11 module" in srv.log_path.read_text())


def test_pin_changed_pin_file_updated(srv, suite):
    check, read_a = srv.check, suite.read_a
    # 3. PIN changed, PIN file updated: works now and after the next fault.
    pin_file = srv.data / "hsm" / "user.pin"
    pin1 = pin_file.read_text().strip()
    pin2 = os.urandom(8).hex()
    change_pin(srv, pin1, pin2)
    pin_file.write_text(pin2 + "\n")
    time.sleep(TTL + 1)
    check("PIN changed: the logged-in server reads on", read_a() == b"kept")
    with token_away(srv):
        time.sleep(TTL + 1)
        check("PIN changed, token away: 503", error_code(read_a) in ("ServiceUnavailable", "503"))
    check("PIN changed: after the fault it logs in with the PIN file's new PIN", wait_for(read_a) == b"kept")
    suite.__dict__.update(pin1=pin1, pin2=pin2, pin_file=pin_file)


def test_pin_changed_pin_file_stale(srv, suite):
    check, pin1, pin2, pin_file, read_a, s3 = srv.check, suite.pin1, suite.pin2, suite.pin_file, suite.read_a, suite.s3
    # 4. PIN changed, PIN file not updated.
    pin3 = os.urandom(8).hex()
    change_pin(srv, pin2, pin3)
    with token_away(srv):
        time.sleep(TTL + 1)
        error_code(read_a)
    # Back, but the PIN file is stale: every try is refused until a login is attempted
    # (after the re-initialisation back-off) and the token refuses the PIN.
    statuses = []
    deadline = time.monotonic() + 30
    while "refused the PIN" not in srv.log_path.read_text() and time.monotonic() < deadline:
        try:
            read_a()
            statuses.append(200)
        except s3.exceptions.ClientError as e:
            statuses.append(e.response["ResponseMetadata"]["HTTPStatusCode"])
        time.sleep(0.5)
    check("stale PIN file: the log says the PIN was refused", "refused the PIN" in srv.log_path.read_text())
    check("stale PIN file: every read meanwhile 503", set(statuses) <= {503}, str(statuses))
    code = error_code(read_a)
    check("stale PIN file: still 503 after the refusal", code in ("ServiceUnavailable", "503"), str(code))
    check("no PIN in the log", pin1 not in srv.log_path.read_text() and pin3 not in srv.log_path.read_text())
    pin_file.write_text(pin3 + "\n")
    check("PIN file corrected: recovers without a restart", wait_for(read_a) == b"kept")


def test_restarted_it_logs_in_with_the_pin_file(srv):
    check = srv.check
    srv.__exit__(None, None, None)
    srv.__enter__()
    s3 = srv.boto3("alice")
    check("after a restart, reads work", s3.get_object(Bucket="hsm-faults", Key="a")["Body"].read() == b"kept")
