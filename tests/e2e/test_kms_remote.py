"""A gateway without an HSM of its own, using a remote key service (`[keys.service]`), as
IBM COS uses Key Protect: only the key service's host holds the module and PIN. The key
service is one server (`--kms-listen`), the gateway another with no HSM settings at all;
the S3 protections under root keys (SSE-KMS, SSE-S3, IBM SSE-KP buckets, Object Lock)
work through the service, the buckets show as the keys' registrations there, deleting and
restoring a key there holds on the gateway, a bucket costs at most one call to the service
and one HSM unwrap after warm-up, and a service that is down is a 503, not a 500."""

import io
import json
import os
import time

import pytest
import requests
from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
from keyprotect.ibm_key_protect_api_v2 import IbmKeyProtectApiV2

from cipherstore_harness import Server, free_port, refused_503, until, wait_port

KMS_PORT = free_port()
URL = f"https://127.0.0.1:{KMS_PORT}"
SERVER = {"extra_args": ("--kms-listen", f"127.0.0.1:{KMS_PORT}")}


def body(obj):
    return io.BytesIO(json.dumps(obj).encode())


@pytest.fixture(scope="module")
def setup(srv, suite, binary, request):
    """The key service (`srv`), a writer API key for the gateway, a manager SDK client, and
    the gateway itself (started here, stopped after the module)."""
    os.environ["REQUESTS_CA_BUNDLE"] = str(srv.ca)
    wait_port(KMS_PORT)
    gw_key = json.loads(srv.iam("apikey", "create", "gateway-1", "--role", "writer", "--json").stdout)
    admin = json.loads(srv.iam("apikey", "create", "kp-admin", "--role", "manager", "--json").stdout)
    form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": admin["apikey"]}
    until(lambda: requests.post(f"{URL}/identity/token", data=form, timeout=10).status_code == 200, timeout=20)
    kp = IbmKeyProtectApiV2(authenticator=IAMAuthenticator(admin["apikey"], url=URL))
    kp.set_service_url(URL)
    apikey_file = srv.data / "gateway.apikey"
    apikey_file.write_text(gw_key["apikey"] + "\n")
    apikey_file.chmod(0o600)
    config = f'[keys.service]\nurl = "{URL}"\napikey_file = "{apikey_file}"\nca = "{srv.ca}"\n'
    gw = Server(binary, config=config, hsm=False, cluster=False, dispersal=False)
    gw.__enter__()
    admin_file = srv.data / "admin.apikey"
    admin_file.write_text(admin["apikey"])
    admin_file.chmod(0o600)
    suite.gw, suite.kp, suite.gw_identity, suite.admin_file = gw, kp, gw_key["identity"], admin_file
    suite.instance = srv.keyctl("instance").strip()
    yield suite
    gw.__exit__(None, None, None)
    os.environ.pop("REQUESTS_CA_BUNDLE", None)
    if gw.failures:
        pytest.fail("the gateway: " + "\n".join(gw.failures), pytrace=False)


def new_key(kp, instance, name):
    made = kp.create_key(instance, body({"resources": [{"type": "application/vnd.ibm.kms.key+json", "name": name,
                                                         "extractable": False}]}))
    return made.get_result()["resources"][0]


def test_the_gateway_has_no_hsm_and_says_so(srv, setup):
    gw, check = setup.gw, srv.check
    log = gw.log_path.read_text()
    check("gateway: SSE-KP through the key service", "the key service at" in log and "no HSM on this gateway" in log,
          log[-1500:])
    check("gateway: no HSM settings in its environment",
          not any(k.startswith(("CIPHERSTORE_HSM_", "CIPHERSTORE_PKCS11_")) for k in gw.env))


def test_protections_through_the_service(srv, setup):
    gw, kp, check = setup.gw, setup.kp, srv.check
    key = new_key(kp, setup.instance, "remote-root")
    setup.crn, setup.key_id = key["crn"], key["id"]
    s3 = gw.boto3("alice")
    s3.create_bucket(Bucket="remote-kms")
    s3.put_object(Bucket="remote-kms", Key="a", Body=b"through the service", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=setup.crn)
    got = s3.get_object(Bucket="remote-kms", Key="a")
    check("SSE-KMS through the service: round trip", got["Body"].read() == b"through the service"
          and got.get("SSEKMSKeyId") == setup.crn, str(got.get("SSEKMSKeyId")))
    s3.create_bucket(Bucket="remote-s3")
    s3.put_object(Bucket="remote-s3", Key="b", Body=b"default key", ServerSideEncryption="AES256")
    check("SSE-S3 through the service (instance default key)",
          s3.get_object(Bucket="remote-s3", Key="b")["Body"].read() == b"default key")
    # An IBM SSE-KP bucket: its bucket key is made at CreateBucket.
    kpb = gw.boto3("alice")
    def sse_kp_headers(request, **_):
        request.headers["ibm-sse-kp-encryption-algorithm"] = "AES256"
        request.headers["ibm-sse-kp-customer-root-key-crn"] = setup.crn
    kpb.meta.events.register("before-sign.s3.CreateBucket", sse_kp_headers)
    kpb.create_bucket(Bucket="remote-kp")
    s3.put_object(Bucket="remote-kp", Key="c", Body=b"sse-kp")
    check("IBM SSE-KP bucket through the service", s3.get_object(Bucket="remote-kp", Key="c")["Body"].read() == b"sse-kp")
    regs = kp.get_registrations(setup.key_id, setup.instance).get_result()["resources"]
    names = sorted(r["resourceCrn"].rsplit(":", 1)[1] for r in regs)
    check("the gateway's buckets are the key's registrations at the service", names == ["remote-kms", "remote-kp"],
          str(names))
    events = [json.loads(line) for line in srv.keyctl("audit").splitlines() if line.strip()]
    check("the service audits bucket keys handed to the gateway", any(
        e["action"] == "bucket-key.hand-out" and e.get("initiator") == setup.gw_identity for e in events), str(events[-3:]))


def test_object_lock_retains_the_key_at_the_service(srv, setup):
    gw, kp, check = setup.gw, setup.kp, srv.check
    s3 = gw.boto3("alice")
    s3.create_bucket(Bucket="remote-locked", ObjectLockEnabledForBucket=True)
    s3.put_object(Bucket="remote-locked", Key="d", Body=b"kept", ServerSideEncryption="aws:kms", SSEKMSKeyId=setup.crn)
    regs = kp.get_registrations(setup.key_id, setup.instance, prevent_key_deletion=True).get_result()["resources"]
    check("retention shown at the service", [r["resourceCrn"].rsplit(":", 1)[1] for r in regs] == ["remote-locked"],
          str(regs))
    try:
        kp.delete_key(setup.key_id, setup.instance, force=True)
        check("a retained key cannot be deleted at the service", False)
    except Exception as e:  # noqa: BLE001 - ApiException
        check("a retained key cannot be deleted at the service", getattr(e, "status_code", None) == 409, repr(e))


def test_deleting_and_restoring_at_the_service_holds_on_the_gateway(srv, setup):
    gw, kp, check = setup.gw, setup.kp, srv.check
    key = new_key(kp, setup.instance, "remote-second")
    s3 = gw.boto3("alice")
    s3.create_bucket(Bucket="remote-second")
    s3.put_object(Bucket="remote-second", Key="e", Body=b"second", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["crn"])
    kp.delete_key(key["id"], setup.instance, force=True)

    def refused():
        try:
            s3.get_object(Bucket="remote-second", Key="e")["Body"].read()
            return False
        except Exception:  # noqa: BLE001 - any refusal
            return True
    check("deleted at the service: refused on the gateway within its cache TTL", until(refused, timeout=10))
    kp.restore_key(key["id"], setup.instance)
    back = until(lambda: not refused(), timeout=10)
    check("restored at the service: read again on the gateway", back)


def test_one_service_call_and_one_hsm_unwrap_per_bucket(srv, setup):
    gw, check = setup.gw, srv.check
    s3 = gw.boto3("alice")
    s3.create_bucket(Bucket="remote-warm")
    s3.put_object(Bucket="remote-warm", Key="0", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=setup.crn)
    calls, unwraps = gw.metric("cipherstore_key_service_calls_total"), srv.metric("cipherstore_hsm_unwraps_total")
    start = time.monotonic()
    for i in range(1, 40):
        s3.put_object(Bucket="remote-warm", Key=str(i), Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=setup.crn)
        s3.get_object(Bucket="remote-warm", Key=str(i))["Body"].read()
    # The suites cache bucket keys for 1 s: one more call per second elapsed, at most.
    allowed = 1 + int(time.monotonic() - start)
    more_calls = gw.metric("cipherstore_key_service_calls_total") - calls
    more_unwraps = srv.metric("cipherstore_hsm_unwraps_total") - unwraps
    check("service calls per bucket after warm-up", more_calls <= allowed, f"{more_calls} calls in {allowed} s")
    check("HSM unwraps per bucket after warm-up", more_unwraps <= allowed, f"{more_unwraps} unwraps")
    check("the gateway reports no HSM of its own", gw.metric("cipherstore_hsm_unwraps_total") is None)


def test_the_keys_cli_against_the_service(srv, setup):
    import subprocess
    check = srv.check
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIPHERSTORE_HSM_", "CIPHERSTORE_PKCS11_"))}

    def cli(*args, ok=True):
        r = subprocess.run([str(setup.gw.binary), "keys", "--service", URL, "--apikey-file", str(setup.admin_file),
                            "--ca", str(srv.ca), *args], env=env, capture_output=True, text=True)
        if ok:
            check(f"keys {' '.join(args)}: exit 0", r.returncode == 0, r.stderr)
        return r
    made = json.loads(cli("create", "cli-remote", "--json").stdout)
    check("CLI create through the service", made["state"] == 1 and made["name"] == "cli-remote", str(made))
    listed = json.loads(cli("list", "--json").stdout)
    check("CLI list through the service", any(k["name"] == "cli-remote" for k in listed), str(listed)[:300])
    check("CLI disable", json.loads(cli("disable", "cli-remote", "--json").stdout)["state"] == 2)
    check("CLI enable", json.loads(cli("enable", "cli-remote", "--json").stdout)["state"] == 1)
    check("CLI delete", json.loads(cli("delete", "cli-remote", "--json").stdout)["state"] == 5)
    check("CLI restore without material", json.loads(cli("restore", "cli-remote", "--json").stdout)["state"] == 1)
    audit = cli("audit").stdout
    check("CLI audit through the service", '"key.restore"' in audit, audit[-300:])
    text = cli("show", "cli-remote").stdout
    check("CLI show as text", "active" in text and "crn:v1:cipherstore" in text, text)
    bad = cli("show", "no-such-key", ok=False)
    check("CLI: an unknown key named, exit 1", bad.returncode != 0 and "no-such-key" in bad.stderr, bad.stderr)
    wrong = subprocess.run([str(setup.gw.binary), "keys", "--service", URL, "--apikey-file", "/dev/null", "--ca",
                            str(srv.ca), "list"], env=env, capture_output=True, text=True)
    check("CLI: a bad API key is refused by name", wrong.returncode != 0 and "API key" in wrong.stderr, wrong.stderr)


def test_a_service_that_is_down_is_a_503(srv, setup):
    gw, check = setup.gw, srv.check
    s3 = gw.boto3("alice")
    s3.create_bucket(Bucket="remote-down")
    srv.process.terminate()
    srv.process.wait(timeout=40)
    try:
        refused_503(srv, "key service down: a new bucket key", lambda: s3.put_object(
            Bucket="remote-down", Key="f", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=setup.crn))
        log = gw.log_path.read_text()
        check("nothing secret in the gateway's log", setup.gw.data.joinpath("d").exists()
              and (srv.data / "gateway.apikey").read_text().strip() not in log)
    finally:
        srv.log_file.close()
        srv.__enter__()
        wait_port(KMS_PORT)
    def put():
        try:
            s3.put_object(Bucket="remote-down", Key="g", Body=b"x", ServerSideEncryption="aws:kms",
                          SSEKMSKeyId=setup.crn)
            return True
        except Exception:  # noqa: BLE001 - refused while the service restarts
            return False
    check("the service back: writes go through again", until(put, timeout=20))
