"""End-to-end check of server-side encryption under HSM root keys as AWS clients ask for
it, with boto3 and aws cli: SSE-S3 (`AES256`, the instance default root key made on first
use) on PUT, Copy, multipart and as a bucket default; SSE-KMS (`aws:kms`) per object in
any bucket, with key ids as CRNs, names, `alias/…` and KMS ARNs, or none; the precedence
of an IBM SSE-KP bucket (boto3 and ibm_boto3); refusals with AWS's error codes; at most one HSM call per
(bucket, root key) pair after warm-up; the key lifecycle (rotation, suspension, deletion
refused while buckets use a key, naming them); and a server without an HSM, which refuses
these requests with a 400 naming the missing setting.
"""

import base64
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time
import types

import pytest

from cipherstore_harness import error_code

STORES = ["fs", "dispersed-3of5", "cluster"]
SERVER = {"cache_ttl": "300"}

MiB = 1 << 20
MARKER = b"SSE-PLAINTEXT-" + os.urandom(6).hex().encode()


def error_of(fn):
    """(code, message) of a call refused by the server (boto3 or ibm_boto3), or None."""
    try:
        fn()
    except Exception as e:  # botocore's and ibm_botocore's ClientError alike
        response = getattr(e, "response", None)
        if not isinstance(response, dict) or "Error" not in response:
            raise
        return response["Error"]["Code"], response["Error"].get("Message", "")
    return None


def with_headers(client, event, headers):
    """Adds `headers` to every `event` request `client` sends (IBM's SSE-KP headers)."""
    def add(request, **_):
        for k, v in headers.items():
            request.headers[k] = v
    client.meta.events.register(event, add)


def keys(srv, *args):
    """`cipherstore keys …` as (exit code, stdout + stderr)."""
    config = ["--config", str(srv.data / "config.toml")] if (srv.data / "config.toml").exists() else []
    r = subprocess.run([srv.binary, "keys", *config, *args], env=srv.env, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def stored_files(srv):
    return [p for p in (srv.data / "d").rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def suite(srv):
    """What every test of the module uses."""
    alice = srv.boto3("alice")
    alice.create_bucket(Bucket="sse")
    return types.SimpleNamespace(alice=alice, marker=MARKER, cluster=srv.cluster is not None)


def test_sse_s3_on_put(srv, suite):
    alice, check, marker = suite.alice, srv.check, suite.marker
    # SSE-S3 on PUT: the instance default key is made in the HSM on first use.
    code, listed = keys(srv, "list", "--json")
    check("no default key before first use", code == 0 and "cipherstore-default" not in listed, listed)
    r = alice.put_object(Bucket="sse", Key="s3", Body=marker * 100, ServerSideEncryption="AES256")
    check("SSE-S3 PUT echoes AES256", r.get("ServerSideEncryption") == "AES256" and "SSEKMSKeyId" not in r, str(r))
    code, listed = keys(srv, "list", "--json")
    default = [k for k in json.loads(listed) if k["name"] == "cipherstore-default"] if code == 0 else []
    check("keys list shows the instance default key", len(default) == 1 and default[0]["state"] == "active", listed)
    default_crn = default[0]["crn"] if default else ""
    check("the default key protects the bucket", default and "sse" in default[0]["buckets"], listed)
    h = alice.head_object(Bucket="sse", Key="s3")
    check("HEAD reports AES256", h.get("ServerSideEncryption") == "AES256" and "SSEKMSKeyId" not in h, str(h))
    g = alice.get_object(Bucket="sse", Key="s3")
    check("GET of an SSE-S3 object", g["Body"].read() == marker * 100 and g.get("ServerSideEncryption") == "AES256")
    g = alice.get_object(Bucket="sse", Key="s3", Range="bytes=5-20")
    check("ranged GET of an SSE-S3 object", g["Body"].read() == (marker * 100)[5:21])
    r = alice.put_object(Bucket="sse", Key="plain", Body=marker)
    check("no header: default protection, no SSE echoed", "ServerSideEncryption" not in r, str(r))
    suite.__dict__.update(default_crn=default_crn)


def test_sse_s3_on_copy_and_multipart(srv, suite):
    alice, check, marker = suite.alice, srv.check, suite.marker
    # SSE-S3 on Copy and multipart.
    r = alice.copy_object(Bucket="sse", Key="s3-copy", CopySource={"Bucket": "sse", "Key": "plain"},
                          ServerSideEncryption="AES256")
    check("Copy to SSE-S3 echoes AES256", r.get("ServerSideEncryption") == "AES256", str(r))
    check("the copy reads back", alice.get_object(Bucket="sse", Key="s3-copy")["Body"].read() == marker)
    r = alice.copy_object(Bucket="sse", Key="s3", CopySource={"Bucket": "sse", "Key": "s3"}, ServerSideEncryption="AES256")
    check("SSE-S3 copy onto itself (encryption named) is allowed", r.get("ServerSideEncryption") == "AES256", str(r))
    parts = [os.urandom(5 * MiB), marker * 3]
    c = alice.create_multipart_upload(Bucket="sse", Key="s3-mp", ServerSideEncryption="AES256")
    check("CreateMultipartUpload echoes AES256", c.get("ServerSideEncryption") == "AES256", str(c))
    done = []
    for i, p in enumerate(parts, 1):
        u = alice.upload_part(Bucket="sse", Key="s3-mp", UploadId=c["UploadId"], PartNumber=i, Body=p)
        check(f"UploadPart {i} echoes AES256", u.get("ServerSideEncryption") == "AES256", str(u))
        done.append({"ETag": u["ETag"], "PartNumber": i})
    r = alice.complete_multipart_upload(Bucket="sse", Key="s3-mp", UploadId=c["UploadId"],
                                        MultipartUpload={"Parts": done})
    check("CompleteMultipartUpload echoes AES256", r.get("ServerSideEncryption") == "AES256", str(r))
    g = alice.get_object(Bucket="sse", Key="s3-mp")
    check("SSE-S3 multipart reads back", g["Body"].read() == b"".join(parts) and g.get("ServerSideEncryption") == "AES256")


def test_sse_s3_as_the_bucket_default(srv, suite):
    alice, check, marker = suite.alice, srv.check, suite.marker
    # SSE-S3 as the bucket default.
    alice.create_bucket(Bucket="sse-default")
    alice.put_bucket_encryption(Bucket="sse-default", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    rule = alice.get_bucket_encryption(Bucket="sse-default")["ServerSideEncryptionConfiguration"]["Rules"][0]
    check("GetBucketEncryption: AES256", rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}, str(rule))
    r = alice.put_object(Bucket="sse-default", Key="d", Body=marker)
    check("the bucket default applies SSE-S3", r.get("ServerSideEncryption") == "AES256", str(r))
    crn = srv.create_root("tenant-a")
    crn2 = srv.create_root("tenant-b")
    r = alice.put_object(Bucket="sse-default", Key="k", Body=marker, ServerSideEncryption="aws:kms", SSEKMSKeyId=crn)
    check("an object may ask for aws:kms in an SSE-S3 bucket", r.get("SSEKMSKeyId") == crn, str(r))
    alice.delete_bucket_encryption(Bucket="sse-default")
    check("DeleteBucketEncryption", error_code(lambda: alice.get_bucket_encryption(Bucket="sse-default"))
          == "ServerSideEncryptionConfigurationNotFoundError")
    r = alice.put_object(Bucket="sse-default", Key="after", Body=marker)
    check("then new objects get the default protection", "ServerSideEncryption" not in r, str(r))
    check("and SSE-S3 objects stay readable", alice.get_object(Bucket="sse-default", Key="d")["Body"].read() == marker)
    suite.__dict__.update(crn=crn, crn2=crn2)


def test_sse_kms_per_object_in_a_bucket(srv, suite):
    alice, check, crn, crn2, default_crn, marker = suite.alice, srv.check, suite.crn, suite.crn2, suite.default_crn, suite.marker
    # SSE-KMS per object in a bucket bound to nothing, every key id form.
    alice.create_bucket(Bucket="kms-any")
    forms = {"crn": crn, "name": "tenant-a", "alias": "alias/tenant-a",
             "key arn": f"arn:aws:kms:us-east-1:000000000000:key/{crn.rsplit(':', 1)[-1]}",
             "alias arn": "arn:aws:kms:us-east-1:000000000000:alias/tenant-a"}
    for form, key_id in forms.items():
        r = alice.put_object(Bucket="kms-any", Key=f"by-{form}", Body=marker + form.encode(),
                             ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
        check(f"aws:kms with the key's {form}", r.get("ServerSideEncryption") == "aws:kms" and r.get("SSEKMSKeyId") == crn,
              str(r))
    h = alice.head_object(Bucket="kms-any", Key="by-alias")
    check("HEAD names the root key and the bucket key", h.get("SSEKMSKeyId") == crn and h.get("BucketKeyEnabled") is True, str(h))
    r = alice.put_object(Bucket="kms-any", Key="other", Body=marker, ServerSideEncryption="aws:kms", SSEKMSKeyId=crn2)
    check("another root key in the same bucket", r.get("SSEKMSKeyId") == crn2, str(r))
    r = alice.put_object(Bucket="kms-any", Key="no-id", Body=marker, ServerSideEncryption="aws:kms")
    check("aws:kms without a key id: the instance default key", r.get("SSEKMSKeyId") == default_crn, str(r))
    for key in ["by-crn", "other", "no-id"]:
        g = alice.get_object(Bucket="kms-any", Key=key)
        check(f"GET {key} names its own root key", g["Body"].read().startswith(marker)
              and g.get("SSEKMSKeyId") == {"by-crn": crn, "other": crn2, "no-id": default_crn}[key])
    r = alice.copy_object(Bucket="kms-any", Key="moved", CopySource={"Bucket": "kms-any", "Key": "other"},
                          ServerSideEncryption="aws:kms", SSEKMSKeyId=crn)
    check("Copy from one root key to another", r.get("SSEKMSKeyId") == crn, str(r))
    check("the copy reads back", alice.get_object(Bucket="kms-any", Key="moved")["Body"].read() == marker)
    c = alice.create_multipart_upload(Bucket="kms-any", Key="mp", ServerSideEncryption="aws:kms", SSEKMSKeyId=crn2)
    check("CreateMultipartUpload with aws:kms", c.get("SSEKMSKeyId") == crn2, str(c))
    u = alice.upload_part(Bucket="kms-any", Key="mp", UploadId=c["UploadId"], PartNumber=1, Body=marker)
    alice.complete_multipart_upload(Bucket="kms-any", Key="mp", UploadId=c["UploadId"],
                                    MultipartUpload={"Parts": [{"ETag": u["ETag"], "PartNumber": 1}]})
    g = alice.get_object(Bucket="kms-any", Key="mp")
    check("aws:kms multipart reads back", g["Body"].read() == marker and g.get("SSEKMSKeyId") == crn2)


def test_a_bucket_default_kms_key_and_objects_asking_another(srv, suite):
    alice, check, crn, crn2, marker = suite.alice, srv.check, suite.crn, suite.crn2, suite.marker
    # A bucket default aws:kms key, and objects asking for another.
    alice.create_bucket(Bucket="kms-default")
    alice.put_bucket_encryption(Bucket="kms-default", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/tenant-a"}}]})
    rule = alice.get_bucket_encryption(Bucket="kms-default")["ServerSideEncryptionConfiguration"]["Rules"][0]
    check("GetBucketEncryption names the root key's CRN",
          rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}, str(rule))
    r = alice.put_object(Bucket="kms-default", Key="x", Body=marker, ServerSideEncryption="aws:kms")
    check("aws:kms without a key id: the bucket's default key", r.get("SSEKMSKeyId") == crn, str(r))
    r = alice.put_object(Bucket="kms-default", Key="y", Body=marker, ServerSideEncryption="aws:kms", SSEKMSKeyId=crn2)
    check("aws:kms with another key than the bucket default", r.get("SSEKMSKeyId") == crn2, str(r))
    alice.put_bucket_encryption(Bucket="kms-default", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn2}}]})
    r = alice.put_object(Bucket="kms-default", Key="z", Body=marker)
    check("the bucket default moves to another key", r.get("SSEKMSKeyId") == crn2, str(r))
    check("objects under the earlier default stay readable",
          alice.get_object(Bucket="kms-default", Key="x")["Body"].read() == marker)


def test_refusals_with_aws_s_codes(srv, suite):
    alice, check, crn = suite.alice, srv.check, suite.crn
    # Refusals, with AWS's codes.
    ckey = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(ckey).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(ckey).digest()).decode()}
    got = error_of(lambda: alice.put_object(Bucket="kms-any", Key="bad", Body=b"x", ServerSideEncryption="aws:kms",
                                            SSEKMSKeyId="alias/no-such-key"))
    check("unknown KMS key: 400 KMS.NotFoundException", got and got[0] == "KMS.NotFoundException", str(got))
    got = error_of(lambda: alice.put_object(Bucket="kms-any", Key="bad", Body=b"x", ServerSideEncryption="aws:kms:dsse"))
    check("aws:kms:dsse refused clearly", got and got[0] == "InvalidArgument" and "dsse" in got[1], str(got))
    got = error_of(lambda: alice.put_object(Bucket="kms-any", Key="bad", Body=b"x", ServerSideEncryption="aws:kms", **ssec))
    check("SSE-C with aws:kms: 400", got and got[0] == "InvalidArgument", str(got))
    got = error_of(lambda: alice.put_object(Bucket="kms-any", Key="bad", Body=b"x", ServerSideEncryption="AES256", **ssec))
    check("SSE-C with AES256: 400", got and got[0] == "InvalidArgument", str(got))
    got = error_of(lambda: alice.put_object(Bucket="kms-any", Key="bad", Body=b"x", SSEKMSKeyId=crn))
    check("a key id without aws:kms: 400", got and got[0] == "InvalidArgument", str(got))
    check("nothing stored by refused requests", error_code(lambda: alice.head_object(Bucket="kms-any", Key="bad")) == "404")
    got = error_of(lambda: alice.put_bucket_encryption(Bucket="kms-any", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms:dsse"}}]}))
    check("PutBucketEncryption aws:kms:dsse refused", got and got[0] == "InvalidArgument", str(got))


def test_an_ibm_sse_kp_bucket(srv, suite):
    alice, check, crn, crn2, marker = suite.alice, srv.check, suite.crn, suite.crn2, suite.marker
    # An IBM SSE-KP bucket: its own root key only.
    kp = srv.boto3("alice")
    with_headers(kp, "before-sign.s3.CreateBucket",
                 {"ibm-sse-kp-encryption-algorithm": "AES256", "ibm-sse-kp-customer-root-key-crn": crn})
    kp.create_bucket(Bucket="kp-bound")
    r = alice.put_object(Bucket="kp-bound", Key="own", Body=marker, ServerSideEncryption="aws:kms", SSEKMSKeyId=crn)
    check("SSE-KP bucket: aws:kms with its own key", r.get("SSEKMSKeyId") == crn, str(r))
    r = alice.put_object(Bucket="kp-bound", Key="none", Body=marker, ServerSideEncryption="aws:kms")
    check("SSE-KP bucket: aws:kms without a key id is its key", r.get("SSEKMSKeyId") == crn, str(r))
    got = error_of(lambda: alice.put_object(Bucket="kp-bound", Key="bad", Body=b"x", ServerSideEncryption="aws:kms",
                                            SSEKMSKeyId=crn2))
    check("SSE-KP bucket refuses another key (as IBM)", got and got[0] == "InvalidArgument" and "SSE-KP" in got[1], str(got))
    got = error_of(lambda: alice.put_object(Bucket="kp-bound", Key="bad", Body=b"x", ServerSideEncryption="AES256"))
    check("SSE-KP bucket refuses SSE-S3", got and got[0] == "InvalidArgument" and "SSE-KP" in got[1], str(got))
    got = error_of(lambda: alice.put_bucket_encryption(Bucket="kp-bound", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}))
    check("SSE-KP bucket refuses an SSE-S3 default", got and got[0] == "InvalidArgument", str(got))


def test_the_same_precedence_through_ibm_sdk(srv, suite):
    check, crn, crn2, marker = srv.check, suite.crn, suite.crn2, suite.marker
    # The same precedence through IBM's own SDK.
    import ibm_boto3
    from ibm_botocore.client import Config as IbmConfig
    from cipherstore_harness import USERS
    ak, sk = USERS["alice"]
    ibm = ibm_boto3.client("s3", endpoint_url=srv.endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                           region_name="us-east-1", verify=str(srv.ca),
                           config=IbmConfig(signature_version="s3v4", s3={"addressing_style": "path"}))
    ibm.create_bucket(Bucket="kp-ibm", IBMSSEKPEncryptionAlgorithm="AES256", IBMSSEKPCustomerRootKeyCrn=crn2)
    r = ibm.put_object(Bucket="kp-ibm", Key="plain", Body=marker)
    check("ibm_boto3: an SSE-KP bucket's objects are under its key", r.get("SSEKMSKeyId") == crn2, str(r))
    got = error_of(lambda: ibm.put_object(Bucket="kp-ibm", Key="bad", Body=b"x", ServerSideEncryption="AES256"))
    check("ibm_boto3: SSE-S3 in an SSE-KP bucket is 400", got and got[0] == "InvalidArgument", str(got))
    got = error_of(lambda: ibm.put_object(Bucket="kp-ibm", Key="bad", Body=b"x", ServerSideEncryption="aws:kms",
                                          SSEKMSKeyId=crn))
    check("ibm_boto3: another key in an SSE-KP bucket is 400", got and got[0] == "InvalidArgument", str(got))


def test_at_most_one_hsm_call_per_bucket(srv, suite):
    alice, check, crn, crn2, default_crn, marker = suite.alice, srv.check, suite.crn, suite.crn2, suite.default_crn, suite.marker
    # At most one HSM call per (bucket, root key) pair after warm-up: every pair is warm
    # now, so 60 more writes and reads across five pairs make none.
    before = (srv.metric("cipherstore_hsm_wraps_total"), srv.metric("cipherstore_hsm_unwraps_total"))
    pairs = [("kms-any", crn), ("kms-any", crn2), ("kms-default", crn), ("kms-default", crn2), ("sse", default_crn)]
    for i in range(12):
        for bucket, key_id in pairs:
            alice.put_object(Bucket=bucket, Key=f"warm-{i}", Body=marker, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
            alice.get_object(Bucket=bucket, Key=f"warm-{i}")["Body"].read()
    after = (srv.metric("cipherstore_hsm_wraps_total"), srv.metric("cipherstore_hsm_unwraps_total"))
    check("the HSM counters are exported", None not in before and before[0] >= 5, str(before))
    check("no HSM call for 120 requests over five warm pairs", before == after, f"{before} -> {after}")


def test_aws_cli_as_users_type_it(srv, suite):
    check, crn2, marker = srv.check, suite.crn2, suite.marker
    # aws cli, as users type it.
    env = srv.client_env("alice")
    aws = str(pathlib.Path(sys.executable).parent / "aws")
    src = srv.data / "cli.bin"
    src.write_bytes(marker * 1000)

    def awscli(*args):
        return subprocess.run([aws, "--endpoint-url", srv.endpoint, *args], env=env, capture_output=True, text=True)
    r = awscli("s3", "cp", str(src), "s3://sse/cli-s3", "--sse", "AES256")
    check("aws s3 cp --sse AES256", r.returncode == 0, r.stderr)
    r = awscli("s3", "cp", str(src), "s3://sse/cli-kms", "--sse", "aws:kms", "--sse-kms-key-id", "alias/tenant-b")
    check("aws s3 cp --sse aws:kms --sse-kms-key-id alias/…", r.returncode == 0, r.stderr)
    r = awscli("s3api", "head-object", "--bucket", "sse", "--key", "cli-kms")
    check("aws s3api head-object names the key", r.returncode == 0 and crn2 in r.stdout and '"aws:kms"' in r.stdout, r.stdout)
    r = awscli("s3api", "head-object", "--bucket", "sse", "--key", "cli-s3")
    check("aws s3api head-object says AES256", r.returncode == 0 and '"AES256"' in r.stdout, r.stdout)


def test_key_lifecycle(srv, suite):
    alice, check, marker = suite.alice, srv.check, suite.marker
    # Key lifecycle: deletion refused while buckets use the key, naming them; rotation
    # keeps every object readable.
    code, out = keys(srv, "delete", "tenant-b")
    check("deleting a key that protects objects is refused, naming the buckets",
          code != 0 and "kms-any" in out and "kms-default" in out and "sse" in out, out)
    code, out = keys(srv, "rotate", "cipherstore-default")
    check("the instance default key rotates", code == 0, out)
    for bucket, key in [("sse", "s3"), ("sse", "s3-mp"), ("kms-any", "no-id")]:
        check(f"{bucket}/{key} readable after rotation", len(alice.get_object(Bucket=bucket, Key=key)["Body"].read()) > 0)
    check("SSE-S3 PUT after rotation", alice.put_object(Bucket="sse", Key="rotated", Body=marker,
                                                        ServerSideEncryption="AES256").get("ServerSideEncryption") == "AES256")


def test_the_wrapping_method_and_root_keys_in_the_token(srv, suite):
    check = srv.check
    # The method the token was given (or chose) is the one /metrics and `keys show` name.
    expected = os.environ.get("CIPHERSTORE_E2E_HSM_WRAP") or os.environ.get("CIPHERSTORE_E2E_EXPECT_WRAP")
    methods = ["aes-key-wrap-pad", "aes-key-wrap", "aes-gcm", "aes-cbc-hmac-sha256"]
    on = [m for m in methods if srv.metric_labelled("cipherstore_hsm_wrap_method", method=m) == 1]
    check("/metrics names exactly one wrapping method", len(on) == 1, str(on))
    if expected:
        check(f"the wrapping method is {expected}", on == [expected], str(on))
    code, out = keys(srv, "create", "witness", "--json")
    shown = json.loads(out) if code == 0 else {}
    check("a new root key wraps by the token's method", shown.get("wrap_method") in on, out)

    # An outside witness on whichever module serves: OpenSC's pkcs11-tool sees the root
    # key (and a MAC companion, if any) sensitive and never extractable, and cannot read it.
    env = srv.env
    pin = pathlib.Path(env["CIPHERSTORE_HSM_PIN_FILE"]).read_text().split("\n")[0]
    tool = ["pkcs11-tool", "--module", env["CIPHERSTORE_PKCS11_MODULE"], "--token-label",
            env["CIPHERSTORE_HSM_TOKEN"], "--login", "--pin", pin]
    listed = subprocess.run([*tool, "--list-objects", "--type", "secrkey"], env=env, capture_output=True, text=True)
    label = f"cipherstore:{shown.get('id')}:v1"
    blocks = [b for b in listed.stdout.split("Secret Key Object") if f"label:      {label}" in b]
    want = 2 if shown.get("wrap_method") == "aes-cbc-hmac-sha256" else 1  # with its MAC key
    check(f"pkcs11-tool lists the root key's {want} object(s)", listed.returncode == 0 and len(blocks) == want,
          listed.stdout + listed.stderr)
    for b in blocks:
        check("sensitive and never extractable", "sensitive" in b and "never extractable" in b, b)
    read = subprocess.run([*tool, "--read-object", "--type", "secrkey", "--label", label], env=env,
                          capture_output=True)
    check("pkcs11-tool cannot read the root key's value", read.returncode != 0 or read.stdout == b"",
          read.stdout[:64].hex())


def test_a_wrapping_method_the_token_lacks_is_refused_by_name(srv):
    check = srv.check
    expected = os.environ.get("CIPHERSTORE_E2E_EXPECT_WRAP")
    # Tokens with AES key wrap (SoftHSM2) can do every method: only a wrong name fails there.
    lacking, mechanism = ("aes-key-wrap-pad", "CKM_AES_KEY_WRAP_PAD") if expected else ("rot13", "aes-gcm")
    env = {**srv.env, "CIPHERSTORE_HSM_WRAP": lacking}
    config = ["--config", str(srv.data / "config.toml")] if (srv.data / "config.toml").exists() else []
    r = subprocess.run([srv.binary, "keys", *config, "list"], env=env, capture_output=True, text=True)
    check(f"keys with wrap={lacking}: one line naming {mechanism}",
          r.returncode != 0 and mechanism in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr)
    r = subprocess.run([srv.binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(srv.data / "refused")],
                       env=env, capture_output=True, text=True, timeout=60)
    check(f"serve with wrap={lacking} stops at start, naming {mechanism}",
          r.returncode != 0 and mechanism in r.stderr, r.stdout[-500:] + r.stderr[-500:])


def test_deleting_a_bucket_forgets_its_bucket_keys(srv, suite):
    alice, check, cluster, crn2, marker = suite.alice, srv.check, suite.cluster, suite.crn2, suite.marker
    # Deleting a bucket forgets its bucket keys.
    alice.create_bucket(Bucket="short-lived")
    alice.put_object(Bucket="short-lived", Key="o", Body=b"o", ServerSideEncryption="aws:kms", SSEKMSKeyId=crn2)
    alice.delete_object(Bucket="short-lived", Key="o")
    alice.delete_bucket(Bucket="short-lived")
    shown = json.loads(keys(srv, "show", "tenant-b", "--json")[1])
    check("a deleted bucket's keys are gone from its root keys", "short-lived" not in shown["buckets"], str(shown))

    if not cluster:
        files = stored_files(srv)
        check("no plaintext in any stored file", [p for p in files if marker in p.read_bytes()] == [])


def test_suspension_reaches_the_server_within_a_second(server):
    """A short bucket key cache: suspension reaches the server within a second."""
    with server() as srv:
        check = srv.check
        alice = srv.boto3("alice")
        alice.create_bucket(Bucket="life")
        crn = srv.create_root("suspendable")
        alice.put_object(Bucket="life", Key="o", Body=MARKER, ServerSideEncryption="aws:kms", SSEKMSKeyId=crn)
        alice.put_object(Bucket="life", Key="s3", Body=MARKER, ServerSideEncryption="AES256")
        srv.keyctl("disable", "suspendable")
        time.sleep(1.5)
        check("suspended key: GET 403", error_code(lambda: alice.get_object(Bucket="life", Key="o")) == "AccessDenied")
        check("suspended key: PUT 403", error_code(lambda: alice.put_object(
            Bucket="life", Key="p", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=crn)) == "AccessDenied")
        check("other keys unaffected", alice.get_object(Bucket="life", Key="s3")["Body"].read() == MARKER)
        srv.keyctl("enable", "suspendable")
        time.sleep(1.5)
        check("enabled again: GET", alice.get_object(Bucket="life", Key="o")["Body"].read() == MARKER)
        srv.keyctl("disable", "cipherstore-default")
        time.sleep(1.5)
        check("suspended default key: SSE-S3 PUT 403", error_code(lambda: alice.put_object(
            Bucket="life", Key="q", Body=b"x", ServerSideEncryption="AES256")) == "AccessDenied")
        srv.keyctl("enable", "cipherstore-default")


def test_without_an_hsm_a_clear_400(server):
    """No HSM: a clear 400 naming the setting; everything else works."""
    bare = server()
    for k in [k for k in bare.env if k.startswith("CIPHERSTORE_HSM") or k == "CIPHERSTORE_PKCS11_MODULE"]:
        del bare.env[k]
    with bare as srv:
        check = srv.check
        alice = srv.boto3("alice")
        alice.create_bucket(Bucket="nohsm")
        for alg in ["AES256", "aws:kms"]:
            got = error_of(lambda: alice.put_object(Bucket="nohsm", Key="x", Body=b"x", ServerSideEncryption=alg))
            check(f"no HSM: {alg} is 400 naming the setting",
                  got and got[0] == "InvalidArgument" and "CIPHERSTORE_HSM_TOKEN" in got[1], str(got))
        got = error_of(lambda: alice.put_bucket_encryption(Bucket="nohsm", ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}))
        check("no HSM: PutBucketEncryption AES256 is 400", got and got[0] == "InvalidArgument", str(got))
        check("no HSM: default protection works", alice.put_object(Bucket="nohsm", Key="y", Body=b"y")["ETag"] != "")
