"""End-to-end check with the real clients people point at S3 endpoints, over HTTPS:
aws cli (`s3 cp`, `s3 sync`, `s3api`, a 40 MiB multipart upload with --sse-c), rclone
(`sync`/`copy` with and without --s3-sse-customer-key, multipart) and IBM's COS SDK
(ibm_boto3: SSE-KP bucket creation and HeadBucket). Byte-exact round trips are checked
by hash.
"""

import base64
import filecmp
import hashlib
import os
import pathlib
import subprocess
import sys
import time
import types

import pytest

from cipherstore_harness import USERS

STORES = ["fs", "cluster"]
pytestmark = pytest.mark.clients
VENV_BIN = pathlib.Path(sys.executable).parent

MiB = 1 << 20


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def same_tree(a, b):
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


def make_tree(root):
    root.mkdir(parents=True)
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"hello\n" * 1000)
    (root / "empty").write_bytes(b"")
    (root / "sub" / "b.bin").write_bytes(os.urandom(3 * MiB + 5))
    (root / "sub" / "deeper" / "ключ.dat").write_bytes(os.urandom(1000))
    (root / "spaces in name.txt").write_bytes(b"spaces")
    # aws s3 sync uploads a file whose mtime is newer than the object's LastModified, which
    # has one-second resolution: files made in the same second as their upload would look
    # newer. An hour in the past keeps "sync again uploads nothing" about the server.
    past = time.time() - 3600
    for p in root.rglob("*"):
        os.utime(p, (past, past))


@pytest.fixture(scope="module")
def suite(srv):
    """What every test of the module uses."""
    work = srv.data / "clients"
    work.mkdir()
    env = srv.client_env("alice")

    def run(*cmd, ok=True):
        r = subprocess.run(list(cmd), env=env, capture_output=True, text=True)
        if ok and r.returncode != 0:
            print(f"command failed: {' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}", flush=True)
        return r

    def awscli(*args, ok=True):
        return run(str(VENV_BIN / "aws"), "--endpoint-url", srv.endpoint, *args, ok=ok)
    return types.SimpleNamespace(awscli=awscli, env=env, run=run, work=work)


def test_aws_cli(srv, suite):
    awscli, check, work = suite.awscli, srv.check, suite.work
    # aws cli: buckets, cp, sync, s3api, multipart with SSE-C.
    check("aws s3 mb", awscli("s3", "mb", "s3://cli-bucket").returncode == 0)
    big = work / "big.bin"
    with open(big, "wb") as f:
        for _ in range(40):
            f.write(os.urandom(MiB))
    key = work / "ssec.key"
    key.write_bytes(os.urandom(32))
    ssec = ["--sse-c", "AES256", "--sse-c-key", f"fileb://{key}"]
    check("aws s3 cp 40 MiB --sse-c (multipart)",
          awscli("s3", "cp", str(big), "s3://cli-bucket/big.bin", *ssec).returncode == 0)
    head = awscli("s3api", "head-object", "--bucket", "cli-bucket", "--key", "big.bin",
                  "--sse-customer-algorithm", "AES256", "--sse-customer-key", f"fileb://{key}")
    check("aws s3api head-object with the key", head.returncode == 0 and '"ContentLength": 41943040' in head.stdout,
          head.stdout)
    import json
    etag = json.loads(head.stdout or "{}").get("ETag", "").strip('"')
    check("aws cli upload was multipart", etag.endswith("-5"), etag)
    back = work / "big.back"
    check("aws s3 cp back with --sse-c",
          awscli("s3", "cp", "s3://cli-bucket/big.bin", str(back), *ssec).returncode == 0
          and sha256(back) == sha256(big))
    check("aws s3 cp without the key fails",
          awscli("s3", "cp", "s3://cli-bucket/big.bin", str(work / "nokey"), ok=False).returncode != 0)
    tree = work / "tree"
    make_tree(tree)
    check("aws s3 sync up", awscli("s3", "sync", str(tree), "s3://cli-bucket/tree/").returncode == 0)
    down = work / "tree-down"
    check("aws s3 sync down", awscli("s3", "sync", "s3://cli-bucket/tree/", str(down)).returncode == 0
          and same_tree(tree, down))
    again = awscli("s3", "sync", str(tree), "s3://cli-bucket/tree/")
    check("aws s3 sync again uploads nothing", again.returncode == 0 and "upload:" not in again.stdout, again.stdout)
    ls = awscli("s3", "ls", "--recursive", "s3://cli-bucket/tree/")
    check("aws s3 ls --recursive", ls.returncode == 0 and ls.stdout.count("\n") == 5, ls.stdout)
    listed = awscli("s3api", "list-objects-v2", "--bucket", "cli-bucket", "--prefix", "tree/sub/", "--delimiter", "/")
    check("aws s3api list-objects-v2", listed.returncode == 0 and "tree/sub/b.bin" in listed.stdout
          and "tree/sub/deeper/" in listed.stdout)
    plain_big = work / "plain.bin"
    with open(plain_big, "wb") as f:
        f.write(os.urandom(20 * MiB))
    check("aws s3 cp 20 MiB (multipart, default protection)",
          awscli("s3", "cp", str(plain_big), "s3://cli-bucket/plain.bin").returncode == 0)
    check("aws s3 cp back", awscli("s3", "cp", "s3://cli-bucket/plain.bin", str(work / "plain.back")).returncode == 0
          and sha256(work / "plain.back") == sha256(plain_big))
    check("aws s3 rm --recursive", awscli("s3", "rm", "--recursive", "s3://cli-bucket/").returncode == 0)
    check("aws s3 rb", awscli("s3", "rb", "s3://cli-bucket").returncode == 0)
    suite.__dict__.update(tree=tree)


def test_rclone(srv, suite):
    check, env, run, tree, work = srv.check, suite.env, suite.run, suite.tree, suite.work
    rclone = str(VENV_BIN / "rclone")
    # rclone: sync and copy, default protection and SSE-C, multipart forced small.
    ak, sk = USERS["alice"]
    env.update({"RCLONE_CONFIG_CS_TYPE": "s3", "RCLONE_CONFIG_CS_PROVIDER": "Other",
                "RCLONE_CONFIG_CS_ACCESS_KEY_ID": ak, "RCLONE_CONFIG_CS_SECRET_ACCESS_KEY": sk,
                "RCLONE_CONFIG_CS_ENDPOINT": srv.endpoint, "RCLONE_CONFIG_CS_REGION": "us-east-1",
                "RCLONE_CONFIG": "/dev/null"})
    rc = [rclone, "--ca-cert", str(srv.ca), "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "-q"]
    check("rclone mkdir", run(*rc, "mkdir", "cs:rclone-bucket").returncode == 0)
    (tree / "rclone-big.bin").write_bytes(os.urandom(12 * MiB))
    check("rclone sync up", run(*rc, "sync", str(tree), "cs:rclone-bucket/plain").returncode == 0)
    rdown = work / "rclone-down"
    check("rclone sync down", run(*rc, "sync", "cs:rclone-bucket/plain", str(rdown)).returncode == 0
          and same_tree(tree, rdown))
    check("rclone check", run(*rc, "check", str(tree), "cs:rclone-bucket/plain").returncode == 0)
    ckey = os.urandom(32)
    sse = ["--s3-sse-customer-algorithm", "AES256",
           "--s3-sse-customer-key-base64", base64.b64encode(ckey).decode(),
           "--s3-sse-customer-key-md5", base64.b64encode(hashlib.md5(ckey).digest()).decode()]
    check("rclone copy up with SSE-C", run(*rc, *sse, "copy", str(tree), "cs:rclone-bucket/secret").returncode == 0)
    sdown = work / "rclone-secret"
    check("rclone copy down with SSE-C", run(*rc, *sse, "copy", "cs:rclone-bucket/secret", str(sdown)).returncode == 0
          and same_tree(tree, sdown))
    nokey = run(*rc, "copy", "cs:rclone-bucket/secret/a.txt", str(work / "rclone-nokey"), ok=False)
    check("rclone without the SSE-C key fails", nokey.returncode != 0)
    check("rclone purge", run(*rc, "purge", "cs:rclone-bucket").returncode == 0)
    suite.__dict__.update(ak=ak, sk=sk)


def test_ibm_cos_sdk(srv, suite):
    ak, check, sk = suite.ak, srv.check, suite.sk
    # IBM COS SDK: SSE-KP bucket bound to an HSM root key.
    import ibm_boto3
    from ibm_botocore.client import Config as IbmConfig
    crn = srv.create_root("ibm-root")
    ibm = ibm_boto3.client("s3", endpoint_url=srv.endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                           region_name="us-east-1", verify=str(srv.ca),
                           config=IbmConfig(signature_version="s3v4", s3={"addressing_style": "path"}))
    ibm.create_bucket(Bucket="ibm-vault", IBMSSEKPEncryptionAlgorithm="AES256", IBMSSEKPCustomerRootKeyCrn=crn)
    hb = ibm.head_bucket(Bucket="ibm-vault")
    check("ibm_boto3 head_bucket IBMSSEKPEnabled", hb.get("IBMSSEKPEnabled") is True and hb.get("IBMSSEKPCrkId") == crn,
          str({k: v for k, v in hb.items() if k != "ResponseMetadata"}))
    payload = os.urandom(2 * MiB)
    ibm.put_object(Bucket="ibm-vault", Key="k", Body=payload)
    got = ibm.get_object(Bucket="ibm-vault", Key="k")
    check("ibm_boto3 SSE-KP round trip", got["Body"].read() == payload)
    ibm.upload_fileobj(__import__("io").BytesIO(payload * 6), "ibm-vault", "multi",
                       Config=ibm_boto3.s3.transfer.TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    got = ibm.get_object(Bucket="ibm-vault", Key="multi")
    check("ibm_boto3 multipart SSE-KP", got["Body"].read() == payload * 6
          and got["ResponseMetadata"]["HTTPHeaders"].get("ibm-sse-kp-crk-id") == crn)
    try:
        ibm.create_bucket(Bucket="ibm-bad", IBMSSEKPEncryptionAlgorithm="AES256",
                          IBMSSEKPCustomerRootKeyCrn=crn.replace(crn[-12:], "000000000000"))
        code = None
    except Exception as e:
        code = getattr(e, "response", {}).get("Error", {}).get("Code")
    check("ibm_boto3 unknown root key is 400", code == "InvalidArgument", str(code))
