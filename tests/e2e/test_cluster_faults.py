"""Faults of a cluster store (scripts/cluster), through its gateways, as clients see them:

- a gateway SIGKILLed in the middle of a PUT that overwrites a key, and of a multipart
  part: nothing partial is visible, the key still reads its acknowledged bytes whole, the
  restarted gateway serves on; a blob without a record (what a gateway killed between its
  bytes and its commit leaves) is removed by `cipherstore sweep`, which leaves every
  object whole;
- radosgw stopped: GET and PUT get 503 with Retry-After after bounded retries, HEAD and
  List still answer from etcd; radosgw back: served again without restarting a gateway;
- one etcd member killed: reads and writes go on (if it led, after the election the others
  hold, during which requests get 503 with Retry-After); two killed (quorum lost): 503, and the
  write refused meanwhile is absent or whole, never half; members back: served again. With
  the records on PostgreSQL (`CLUSTER_META=postgres`), plain PUTs and GETs go on without
  etcd's quorum: it keeps only the key state, identities and leases. (The PostgreSQL
  servers' own faults: test_pg_faults.py.)
"""

import hashlib
import os
import pathlib
import subprocess
import types
import tempfile
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

# It stops and starts parts of the session's cluster: after every other suite on it.
pytestmark = [pytest.mark.cluster, pytest.mark.disruptive]
ROOT = pathlib.Path(__file__).resolve().parents[2]


def status_of(fn):
    """(HTTP status, Retry-After) of a call that fails, (200, None) if it succeeds, and
    ("closed", None) if the connection closed first (see the quorum check below)."""
    try:
        fn()
        return 200, None
    except ClientError as e:
        meta = e.response.get("ResponseMetadata", {})
        return meta.get("HTTPStatusCode"), meta.get("HTTPHeaders", {}).get("retry-after")
    except ConnectionClosedError:
        return "closed", None


def through_an_election(fn, seconds=20):
    """Calls fn until it succeeds: losing the member that led etcd makes the others elect a
    new leader first, and requests meanwhile get 503 with Retry-After (a client's retry
    covers it). Returns the statuses of the refused tries; raises if it never succeeds."""
    refused = []
    deadline = time.monotonic() + seconds
    while True:
        status = status_of(fn)
        if status[0] == 200:
            return refused
        refused.append(status)
        if time.monotonic() > deadline:
            raise AssertionError(f"still refused after {seconds} s: {refused}")
        time.sleep(1)


def served_again(client, key, seconds=60):
    """Whether a GET of `key` succeeds within `seconds`, trying once a second."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if status_of(lambda: client.get_object(Bucket="faults", Key=key)["Body"].read())[0] == 200:
            return True
        time.sleep(1)
    return False


@pytest.fixture(scope="module")
def suite(cluster, binary):
    """What every test of the module uses."""
    cluster, env, binary = cluster.dir, cluster.env, str(binary)
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, read_timeout=120,
                 connect_timeout=10)

    def client(endpoint, ak=env["AK"], sk=env["SK"], verify=env["CA"]):
        return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                            region_name="us-east-1", verify=verify, config=cfg)

    a, b = client(env["ENDPOINT_A"]), client(env["ENDPOINT_B"])
    backend = client(env["BACKEND_ENDPOINT"], env["BACKEND_AK"], env["BACKEND_SK"], verify=False)
    blob_bucket = env["BACKEND_BUCKET"]

    def ctl(action, name):
        subprocess.run([str(ROOT / "scripts/cluster"), action, name, str(cluster)], check=True,
                       env={**os.environ, "CIPHERSTORE_BIN": binary}, stdout=subprocess.DEVNULL)

    def blobs():
        pages = backend.get_paginator("list_objects_v2").paginate(Bucket=blob_bucket)
        return {o["Key"] for p in pages for o in p.get("Contents", [])}

    acknowledged = {}  # key -> sha256 of what a PUT was acknowledged for

    def put(c, key, body):
        c.put_object(Bucket="faults", Key=key, Body=body)
        acknowledged[key] = hashlib.sha256(body).hexdigest()

    def all_whole(c):
        for key, digest in acknowledged.items():
            got = c.get_object(Bucket="faults", Key=key)["Body"].read()
            if hashlib.sha256(got).hexdigest() != digest:
                return key
        return None

    a.create_bucket(Bucket="faults")
    for i in range(5):
        put(a, f"small-{i}", os.urandom(1000 + i))
    put(a, "victim", b"the acknowledged bytes of victim " * 1000)
    meta = env.get("META") or "etcd"
    return types.SimpleNamespace(a=a, acknowledged=acknowledged, all_whole=all_whole, b=b, backend=backend, binary=binary, blob_bucket=blob_bucket, blobs=blobs, cluster=cluster, ctl=ctl, meta=meta, put=put)


def test_a_gateway_killed_mid_put_and_mid_part(check, suite):
    a, acknowledged, all_whole, b, ctl = suite.a, suite.acknowledged, suite.all_whole, suite.b, suite.ctl
    # 1. Gateway B killed mid-PUT (an overwrite of `victim`, streamed) and mid-part.
    with tempfile.NamedTemporaryFile() as big:
        big.write(os.urandom(1 << 20) * 384)  # 384 MiB: long enough to be cut
        big.flush()
        outcome = {}

        def overwrite():
            try:
                with open(big.name, "rb") as f:
                    b.put_object(Bucket="faults", Key="victim", Body=f)
                outcome["put"] = "acknowledged"
            except Exception as e:  # noqa: BLE001 - the connection dies with the gateway
                outcome["put"] = type(e).__name__

        upload = b.create_multipart_upload(Bucket="faults", Key="parted")["UploadId"]
        first = os.urandom(5 << 20)
        etag1 = b.upload_part(Bucket="faults", Key="parted", UploadId=upload, PartNumber=1, Body=first)["ETag"]

        def part_two():
            try:
                with open(big.name, "rb") as f:
                    b.upload_part(Bucket="faults", Key="parted", UploadId=upload, PartNumber=2, Body=f)
                outcome["part"] = "acknowledged"
            except Exception as e:  # noqa: BLE001
                outcome["part"] = type(e).__name__

        threads = [threading.Thread(target=overwrite), threading.Thread(target=part_two)]
        for t in threads:
            t.start()
        time.sleep(1.5)  # both in flight (at 2.5 s, a fast machine had landed both bodies)
        ctl("kill", "gateway-b")
        for t in threads:
            t.join(timeout=120)
    check("PUT and part cut by the gateway's death", outcome.get("put") != "acknowledged"
          and outcome.get("part") != "acknowledged", str(outcome))
    check("after the kill, the overwritten key reads its acknowledged bytes whole (through A)",
          all_whole(a) is None)
    keys = [o["Key"] for o in a.list_objects_v2(Bucket="faults").get("Contents", [])]
    check("nothing partial listed", sorted(keys) == sorted(acknowledged), str(keys))
    parts = a.list_parts(Bucket="faults", Key="parted", UploadId=upload).get("Parts", [])
    check("the cut part is not listed; the acknowledged one is", [p["PartNumber"] for p in parts] == [1],
          str(parts))
    ctl("start", "gateway-b")
    done = b.complete_multipart_upload(Bucket="faults", Key="parted", UploadId=upload,
                                       MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag1}]})
    acknowledged["parted"] = hashlib.sha256(first).hexdigest()
    check("restarted gateway completes the upload from its acknowledged part", "ETag" in done)
    check("every acknowledged object whole through the restarted gateway", all_whole(b) is None)


def test_sweep_removes_a_blob_without_a_record(check, suite):
    a, all_whole, backend, binary, blob_bucket, blobs, cluster = suite.a, suite.all_whole, suite.backend, suite.binary, suite.blob_bucket, suite.blobs, suite.cluster
    # A blob without a record, as a gateway killed between bytes and commit leaves.
    sweep = [binary, "sweep", "--config", str(cluster / "gateway.toml"), "--grace", "0"]
    # Earlier tests may have left such blobs for real: the gateway killed mid-PUT dies after
    # its 384 MiB landed and before the commit when the machine streams them in before the
    # kill. Sweep those first, so the counts below are this test's alone.
    first = subprocess.run(sweep, capture_output=True, text=True)
    check("a first sweep clears what earlier tests left", first.returncode == 0, first.stdout + first.stderr)
    orphan = "d/" + os.urandom(16).hex()
    backend.put_object(Bucket=blob_bucket, Key=orphan, Body=os.urandom(4096))
    before = blobs()
    dry = subprocess.run(sweep + ["--dry-run"], capture_output=True, text=True)
    check("sweep --dry-run counts the orphan and removes nothing",
          dry.returncode == 0 and "would remove 1 " in dry.stdout and blobs() == before, dry.stdout + dry.stderr)
    real = subprocess.run(sweep, capture_output=True, text=True)
    check("sweep removes exactly the orphan", real.returncode == 0 and "removed 1 " in real.stdout
          and blobs() == before - {orphan}, real.stdout + real.stderr)
    check("every acknowledged object whole after the sweep", all_whole(a) is None)


def test_radosgw_stopped_and_back(check, suite):
    a, acknowledged, all_whole, b, ctl, put = suite.a, suite.acknowledged, suite.all_whole, suite.b, suite.ctl, suite.put
    # 2. radosgw stopped: 503 + Retry-After for what needs blobs; metadata, and small objects
    # kept in their records (up to store.inline_max_bytes), still answer.
    ctl("kill", "rgw")
    t0 = time.monotonic()
    get_status = status_of(lambda: a.get_object(Bucket="faults", Key="victim")["Body"].read())
    took = time.monotonic() - t0
    check("radosgw down: GET gets 503 with Retry-After, after bounded retries",
          get_status[0] == 503 and get_status[1] is not None and took < 60, f"{get_status} in {took:.1f} s")
    put_status = status_of(lambda: b.put_object(Bucket="faults", Key="during-rgw", Body=b"x" * 20_000))
    check("radosgw down: PUT gets 503 with Retry-After", put_status[0] == 503 and put_status[1] is not None,
          str(put_status))
    check("radosgw down: a small object (in its record) is still served",
          hashlib.sha256(a.get_object(Bucket="faults", Key="small-1")["Body"].read()).hexdigest()
          == acknowledged["small-1"])
    put(b, "small-during-rgw", b"kept in its record" * 10)
    check("radosgw down: a small PUT is still accepted, and read back",
          b.get_object(Bucket="faults", Key="small-during-rgw")["Body"].read() == b"kept in its record" * 10)
    check(f"radosgw down: HEAD still answers (from {suite.meta})",
          a.head_object(Bucket="faults", Key="victim")["ContentLength"] == 33000)
    check(f"radosgw down: List still answers (from {suite.meta})",
          len(b.list_objects_v2(Bucket="faults").get("Contents", [])) == len(acknowledged))
    ctl("start", "rgw")
    check("radosgw back: served again without restarting a gateway", served_again(a, "victim"))
    put(b, "after-rgw", b"written after radosgw came back")
    check("every acknowledged object whole after radosgw's outage", all_whole(a) is None)


def test_etcd_members_lost_and_back(check, suite):
    a, all_whole, b, ctl, put = suite.a, suite.all_whole, suite.b, suite.ctl, suite.put
    # 3. etcd: one member lost, service goes on; quorum lost, 503, nothing half-written.
    ctl("kill", "etcd-1")
    refused = through_an_election(lambda: put(a, "one-member-down", os.urandom(3000)))
    check("one etcd member down: refused only with 503 and Retry-After while a leader is elected",
          all(s[0] == 503 and s[1] for s in refused), str(refused))
    check("one etcd member down: writes and reads go on",
          all_whole(b) is None and b.head_object(Bucket="faults", Key="one-member-down")["ContentLength"] == 3000)
    ctl("kill", "etcd-2")
    body = os.urandom(5000)
    put_status = status_of(lambda: a.put_object(Bucket="faults", Key="no-quorum", Body=body))
    get_status = status_of(lambda: b.get_object(Bucket="faults", Key="small-2")["Body"].read())
    # A PUT refused before its body was read (the bucket lookup failed after etcd's
    # request timeout, longer than the client waits for 100-continue) may see the
    # connection close under it instead of the 503: refused either way.
    if suite.meta == "postgres":
        check("quorum lost, records in PostgreSQL: a plain PUT and GET go on",
              put_status[0] == 200 and get_status[0] == 200, f"{put_status} {get_status}")
    else:
        check("quorum lost: PUT refused (503 or connection closed) and GET 503",
              put_status[0] in (503, "closed") and get_status[0] == 503, f"{put_status} {get_status}")
    ctl("start", "etcd-1")
    ctl("start", "etcd-2")
    check("quorum back: served again without restarting a gateway", served_again(b, "small-2"))
    st = status_of(lambda: a.head_object(Bucket="faults", Key="no-quorum"))
    if st[0] == 200:
        whole = a.get_object(Bucket="faults", Key="no-quorum")["Body"].read() == body
        check("the write refused without quorum is whole (it committed before the answer)", whole)
    else:
        check("the write refused without quorum is absent", st[0] == 404, str(st))
    check("every acknowledged object whole after the etcd outage", all_whole(a) is None and all_whole(b) is None)
