"""Disk faults: the data directory on a small tmpfs (mounted here; needs root). Writes
that do not fit get a clean 507 InsufficientStorage, leave no object, no part and no
temporary data behind, and the service keeps serving reads and takes writes again once
space is freed. On the filesystem store.
"""

import base64
import hashlib
import os
import shutil
import subprocess
import types

import pytest

from cipherstore_harness import Server, error_code

pytestmark = pytest.mark.fs
MiB = 1 << 20
SIZE_MIB = 24


def used(path):
    return shutil.disk_usage(path).used


@pytest.fixture(scope="module")
def srv(binary):
    """A server whose data directory is a tmpfs of SIZE_MIB."""
    server = Server(binary, cluster=False, dispersal=False)
    data = server.data / "d"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m,mode=0700", "tmpfs", str(data)], check=True)
    try:
        with server:
            yield server
    finally:
        subprocess.run(["umount", "-l", str(data)])


@pytest.fixture(scope="module")
def suite(srv):
    """Four objects stored while there is room."""
    s3 = srv.boto3("alice")
    s3.create_bucket(Bucket="full")
    kept = {f"kept{i}": os.urandom(2 * MiB) for i in range(4)}
    for k, v in kept.items():
        s3.put_object(Bucket="full", Key=k, Body=v)
    return types.SimpleNamespace(s3=s3, kept=kept, data=srv.data / "d", tmp=srv.data / "d" / "store" / "tmp")


def test_writes_that_do_not_fit_leave_nothing(srv, suite):
    check, s3, data, tmp = srv.check, suite.s3, suite.data, suite.tmp
    key = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}
    before = used(data)
    # A single PUT, an SSE-C PUT and an upload part, each larger than the space left.
    big = os.urandom((SIZE_MIB - 8) * MiB)
    for name, fn in [
        ("PUT", lambda: s3.put_object(Bucket="full", Key="big", Body=big)),
        ("SSE-C PUT", lambda: s3.put_object(Bucket="full", Key="big-c", Body=big, **ssec)),
    ]:
        code = error_code(fn)
        check(f"{name} that does not fit: InsufficientStorage", code == "InsufficientStorage", str(code))
    uid = s3.create_multipart_upload(Bucket="full", Key="mp")["UploadId"]
    code = error_code(lambda: s3.upload_part(Bucket="full", Key="mp", UploadId=uid, PartNumber=1, Body=big))
    check("UploadPart that does not fit: InsufficientStorage", code == "InsufficientStorage", str(code))
    check("no part recorded", not s3.list_parts(Bucket="full", Key="mp", UploadId=uid).get("Parts"))
    s3.abort_multipart_upload(Bucket="full", Key="mp", UploadId=uid)
    for k in ("big", "big-c"):
        check(f"nothing visible at {k}", error_code(lambda: s3.head_object(Bucket="full", Key=k)) in ("404", "NoSuchKey"))
    check("no temporary data left", not list(tmp.iterdir()), str(list(tmp.iterdir())))
    check("space given back", used(data) <= before + MiB, f"{before} -> {used(data)}")


def test_reads_and_writes_that_fit_go_on(srv, suite):
    check, s3 = srv.check, suite.s3
    for k, v in suite.kept.items():
        check(f"GET {k} while the store is near full", s3.get_object(Bucket="full", Key=k)["Body"].read() == v)
    s3.put_object(Bucket="full", Key="small", Body=b"fits")
    check("a write that fits succeeds", s3.get_object(Bucket="full", Key="small")["Body"].read() == b"fits")


def test_writes_resume_once_space_is_freed(srv, suite):
    check, s3 = srv.check, suite.s3
    # Fill it up completely, then free space: writes resume.
    n = 0
    while error_code(lambda: s3.put_object(Bucket="full", Key=f"fill{n}", Body=os.urandom(MiB))) is None:
        n += 1
    check("filling the store ends in InsufficientStorage", n < SIZE_MIB, str(n))
    check("still no temporary data left", not list(suite.tmp.iterdir()))
    for k in suite.kept:
        s3.delete_object(Bucket="full", Key=k)
    s3.put_object(Bucket="full", Key="after", Body=os.urandom(3 * MiB))
    check("writes resume once space is freed", s3.head_object(Bucket="full", Key="after")["ContentLength"] == 3 * MiB)
    log = srv.log_path.read_text()
    check("the condition is logged", "out of space" in log)
