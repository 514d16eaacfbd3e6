"""Secrets and file modes after a run that touches every protection mode: no customer
key, SSE-C object data key or key-encryption key (recovered here from each stored header
with the customer key, as docs/FORMAT.md §3.3 derives them), HSM PIN or user secret
appears (raw, hex or base64) in any log or in any file under
the data directory, key directory or HSM directory (other than the files that hold the
PIN and the users by design), with the server logging at debug level; and every file the
server created is 0600, every directory 0700. On the filesystem store.
"""

import base64
import hashlib
import os
import stat
import types

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cipherstore_harness import Server, USERS, kms_default
from cipherstore_harness.independent_decoder import FIXED, Rejected, parse_header

pytestmark = pytest.mark.fs
MiB = 1 << 20


def forms(secret):
    """The encodings a leak could take."""
    out = {secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
           base64.urlsafe_b64encode(secret)}
    return {f for f in out if len(f) >= 8}


def sse_c_keys(store, customer_keys, contexts):
    """The (data key, key-encryption key) of every SSE-C object whose file starts with an
    SSE-C header that one of `customer_keys` opens under one of `contexts`."""
    found = []
    for path in store.rglob("*"):
        if not path.is_file():
            continue
        try:
            h = parse_header(path.read_bytes())
        except (Rejected, Exception):  # noqa: BLE001 - not an object file
            continue
        if h["mode"] != 2:
            continue
        for key in customer_keys:
            for context in contexts:
                okm = HKDF(hashes.SHA256(), 64, h["salt"], b"cipherstore/v1/sse-c" + context).derive(key)
                kek, commit = okm[:32], okm[32:]
                if h["envelope"][:32] == commit:
                    dk = AESGCM(kek).decrypt(b"\0" * 12, h["envelope"][32:], h["raw"][:FIXED])
                    found.append((f"{path.name}", dk, kek))
    return found


@pytest.fixture(scope="module")
def srv(binary):
    """A server logging at debug level."""
    server = Server(binary, cluster=False, dispersal=False)
    server.env["CIPHERSTORE_LOG"] = "debug"
    with server:
        yield server


@pytest.fixture(scope="module")
def suite():
    return types.SimpleNamespace(keys=[os.urandom(32) for _ in range(2)])


def ssec(k):
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(k).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(k).digest()).decode()}


def test_every_protection_mode_round_trips(srv, suite):
    check, keys = srv.check, suite.keys
    s3 = srv.boto3("alice")
    crn = srv.create_root("secrets-root")
    s3.create_bucket(Bucket="sec-plain")
    s3.create_bucket(Bucket="sec-kp")
    kms_default(s3, "sec-kp", crn)
    body = os.urandom(MiB + 7)
    for bucket in ("sec-plain", "sec-kp"):
        s3.put_object(Bucket=bucket, Key="plain", Body=body)
        s3.put_object(Bucket=bucket, Key="ssec", Body=body, **ssec(keys[0]))
        check(f"{bucket}: SSE-C round trip", s3.get_object(Bucket=bucket, Key="ssec", **ssec(keys[0]))["Body"].read() == body)
        check(f"{bucket}: round trip", s3.get_object(Bucket=bucket, Key="plain")["Body"].read() == body)
        # A wrong key, a copy under a second key, a multipart upload under SSE-C.
        try:
            s3.get_object(Bucket=bucket, Key="ssec", **ssec(keys[1]))
            check(f"{bucket}: wrong key refused", False)
        except Exception:  # noqa: BLE001
            check(f"{bucket}: wrong key refused", True)
        s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "ssec"},
                       CopySourceSSECustomerAlgorithm="AES256",
                       CopySourceSSECustomerKey=base64.b64encode(keys[0]).decode(),
                       CopySourceSSECustomerKeyMD5=base64.b64encode(hashlib.md5(keys[0]).digest()).decode(),
                       **ssec(keys[1]))
        uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", **ssec(keys[1]))["UploadId"]
        etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=body, **ssec(keys[1]))["ETag"]
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, **ssec(keys[1]),
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        check(f"{bucket}: multipart SSE-C round trip",
              s3.get_object(Bucket=bucket, Key="mp", **ssec(keys[1]))["Body"].read() == body)


def test_no_secret_in_any_log_or_file(srv, suite):
    check, keys = srv.check, suite.keys
    pin = (srv.data / "hsm" / "user.pin").read_bytes().strip()
    so_pin = (srv.data / "hsm" / "so.pin").read_bytes().strip()
    # The server stops; everything it and the tools left is scanned.
    srv.__exit__(None, None, None)
    secrets = {f"customer key {i}": forms(k) for i, k in enumerate(keys)}
    contexts = [f"{b}/{k}".encode() for b in ("sec-plain", "sec-kp") for k in ("ssec", "copy", "mp")]
    data_keys = sse_c_keys(srv.data / "d" / "store", keys, contexts)
    check("the data keys of all six SSE-C objects recovered from their headers", len(data_keys) == 6,
          str([n for n, _, _ in data_keys]))
    for n, (name, dk, kek) in enumerate(data_keys):
        secrets[f"data key of SSE-C object {n}"] = forms(dk)
        secrets[f"key-encryption key of SSE-C object {n}"] = forms(kek)
    secrets["HSM user PIN"] = {pin}
    secrets["HSM SO PIN"] = {so_pin}
    for user, (_, secret) in USERS.items():
        secrets[f"{user}'s secret key"] = {secret.encode()}
    by_design = {srv.data / "hsm" / "user.pin", srv.data / "hsm" / "so.pin", srv.data / "users.txt"}
    scanned = 0
    for path in srv.data.rglob("*"):
        if not path.is_file() or path in by_design:
            continue
        data = path.read_bytes()
        scanned += 1
        for name, encodings in secrets.items():
            leaked = [e for e in encodings if e in data]
            check(f"no {name} in {path.relative_to(srv.data)}", not leaked)
    check("files scanned, the server log among them", scanned > 10 and srv.log_path.stat().st_size > 0, str(scanned))
    log = srv.log_path.read_text()
    check("the log is at debug level", " DEBUG " in log or '"level":"DEBUG"' in log)


def test_files_0600_and_directories_0700(srv):
    check = srv.check
    # Modes of what the server created: the data directory and the key directory.
    for top in (srv.data / "d", srv.data / "keys"):
        for path in [top, *top.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            want = 0o700 if path.is_dir() else 0o600
            check(f"mode of {path.relative_to(srv.data)} is {want:o}", mode & 0o077 == 0, f"{mode:o}")
