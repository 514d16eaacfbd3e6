"""Crash consistency: the server is killed with SIGKILL while 32 clients PUT objects
(single and multipart, every protection mode) and 4 more PUT and DELETE four shared keys
of a bucket that keeps versions, at several points in time and twice aimed
at the commit step (as soon as a temporary file carries its metadata trailer: flush and
rename still to come), then restarted on the same data. Every PUT that was acknowledged reads back byte for byte; every object
that is listed reads back whole and equal to what its client sent (nothing half-written
is visible); leftover temporary files are gone after start-up; multipart uploads left in
progress list cleanly, take more parts, and complete or abort. In the versioned bucket
every acknowledged version (and delete marker) is listed once, with its id, and reads back;
each key has one latest version, and GET of the key serves it.
"""

import base64
import hashlib
import os
import signal
import threading
import time
import types

import pytest

from cipherstore_harness import kms_default


STORES = ["fs"]
SERVER = {"cache_ttl": "3600"}
KiB, MiB = 1 << 10, 1 << 20
CLIENTS = 32
MODES = ["default", "SSE-C", "SSE-KP"]
BUCKET = {"default": "crash-default", "SSE-C": "crash-ssec", "SSE-KP": "crash-kp"}
KEY = os.urandom(32)
SSEC = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(KEY).decode(),
        "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(KEY).digest()).decode()}


def extra(mode):
    return SSEC if mode == "SSE-C" else {}


def content(key, size):
    """Deterministic bytes for `key`: what its client sends, so anything stored is checkable."""
    seed = hashlib.sha256(key.encode()).digest()
    block = hashlib.shake_256(seed).digest(min(size, 64 * KiB))
    return (block * (size // len(block) + 1))[:size]


def client(srv, n, rnd, stop, acked, intended):
    s3 = srv.boto3("alice")
    mode = MODES[n % len(MODES)]
    bucket = BUCKET[mode]
    i = 0
    while not stop.is_set():
        key = f"r{rnd}/c{n:02}/o{i:04}"
        i += 1
        multipart = n % 8 == 7
        size = rnd_size(n, i) if not multipart else 5 * MiB + 1000
        data = content(key, size)
        intended[(bucket, key)] = (hashlib.sha256(data).hexdigest(), mode)
        try:
            if multipart:
                uid = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra(mode))["UploadId"]
                parts = [data[:5 * MiB], data[5 * MiB:]]
                done = [{"PartNumber": k + 1, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=uid,
                                                                     PartNumber=k + 1, Body=p, **extra(mode))["ETag"]}
                        for k, p in enumerate(parts)]
                s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                             MultipartUpload={"Parts": done}, **extra(mode))
            else:
                s3.put_object(Bucket=bucket, Key=key, Body=data, **extra(mode))
            acked[(bucket, key)] = (hashlib.sha256(data).hexdigest(), mode)
        except Exception:  # noqa: BLE001 - the server is being killed
            if stop.is_set():
                return
            time.sleep(0.05)


VERSIONED = "crash-versioned"
VERSIONED_CLIENTS = 4


def versioned_client(srv, n, rnd, stop, acked, intended):
    """PUTs and DELETEs four keys shared with the other versioned clients; notes each
    acknowledged version: (key, version id) → body digest, or None for a delete marker."""
    s3 = srv.boto3("alice")
    i = 0
    while not stop.is_set():
        key = f"shared/k{(n + i) % 4}"
        i += 1
        try:
            if i % 5 == 0:
                r = s3.delete_object(Bucket=VERSIONED, Key=key)
                acked[(key, r["VersionId"])] = None
            else:
                data = content(f"{key} r{rnd} c{n} {i}", [3 * KiB, 200 * KiB][i % 2])
                intended.add(hashlib.sha256(data).hexdigest())
                r = s3.put_object(Bucket=VERSIONED, Key=key, Body=data)
                acked[(key, r["VersionId"])] = hashlib.sha256(data).hexdigest()
        except Exception:  # noqa: BLE001 - the server is being killed
            if stop.is_set():
                return
            time.sleep(0.05)


def check_versions(srv, s3, acked, intended):
    """The versioned bucket after the crashes, against what its clients were told."""
    check = srv.check
    entries = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=VERSIONED, MaxKeys=100):
        entries += [(v["Key"], v["VersionId"], v["IsLatest"], False) for v in page.get("Versions", [])]
        entries += [(m["Key"], m["VersionId"], m["IsLatest"], True) for m in page.get("DeleteMarkers", [])]
    ids = [(k, v) for k, v, _, _ in entries]
    check("versions: no version is listed twice", len(ids) == len(set(ids)), f"{len(ids)} listed")
    missing = [kv for kv in acked if kv not in set(ids)]
    check("versions: every acknowledged version and marker is listed", not missing, str(missing[:5]))
    kinds = {(k, v): m for k, v, _, m in entries}
    wrong_kind = [kv for kv, d in acked.items() if kv in kinds and kinds[kv] != (d is None)]
    check("versions: markers list as markers, versions as versions", not wrong_kind, str(wrong_kind[:5]))
    bad = []
    for k, v, _, marker in entries:
        if marker:
            continue
        got = hashlib.sha256(s3.get_object(Bucket=VERSIONED, Key=k, VersionId=v)["Body"].read()).hexdigest()
        if got != acked.get((k, v), got) or got not in intended:
            bad.append((k, v))
    check("versions: every listed version reads back as sent", not bad, str(bad[:5]))
    for key in sorted({k for k, _, _, _ in entries}):
        latest = [(v, m) for k, v, is_latest, m in entries if k == key and is_latest]
        check(f"versions: {key} has one latest version", len(latest) == 1, str(latest))
        if len(latest) == 1 and not latest[0][1]:
            got = s3.get_object(Bucket=VERSIONED, Key=key)
            check(f"versions: GET {key} serves its latest version", got["VersionId"] == latest[0][0])
    print(f"versions: {len(acked)} acknowledged, {len(entries)} listed", flush=True)


# The ends of a stored object's metadata trailer, without and with a version block
# (docs/FORMAT.md).
MAGICS = (b"CSMETA01", b"CSMETA02")


def kill_in_commit(srv, tmp, seconds):
    """SIGKILLs the server as soon as a temporary file ends with its metadata trailer (the
    commit step: fsync and rename pending); returns that file's name, or None if none was
    seen within `seconds` (the server is killed then anyway)."""
    deadline = time.monotonic() + seconds
    hit = None
    while hit is None and time.monotonic() < deadline:
        for p in tmp.iterdir():
            try:
                with open(p, "rb") as f:
                    f.seek(-8, os.SEEK_END)
                    if f.read() in MAGICS:
                        hit = p.name
                        break
            except OSError:
                continue  # renamed away meanwhile, or shorter than the trailer
        else:
            time.sleep(0.0005)
    srv.process.send_signal(signal.SIGKILL)
    return hit


def rnd_size(n, i):
    return [3 * KiB, 200 * KiB, 2 * MiB + 17, 9 * MiB][(n + i) % 4]


@pytest.fixture(scope="module")
def suite(srv):
    """What every test of the module uses."""
    s3 = srv.boto3("alice")
    crn = srv.create_root("crash-root")
    for b in BUCKET.values():
        s3.create_bucket(Bucket=b)
    s3.create_bucket(Bucket=VERSIONED)
    s3.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
    versions_acked, versions_intended = {}, set()
    kms_default(s3, BUCKET["SSE-KP"], crn)
    acked, intended = {}, {}
    return types.SimpleNamespace(acked=acked, intended=intended, s3=s3, versions_acked=versions_acked, versions_intended=versions_intended)


def test_killed_six_times_mid_write(srv, suite):
    acked, check, intended, versions_acked, versions_intended = suite.acked, srv.check, suite.intended, suite.versions_acked, suite.versions_intended
    # Kill points: early (bodies in flight), later (commits of many small objects too),
    # then aimed at the commit step.
    tmp = srv.data / "d" / "store" / "tmp"
    commit_hits = []
    for rnd, delay in enumerate([0.4, 1.3, 2.5, 4.0, "commit", "commit"]):
        stop = threading.Event()
        threads = [threading.Thread(target=client, args=(srv, n, rnd, stop, acked, intended), daemon=True)
                   for n in range(CLIENTS)]
        threads += [threading.Thread(target=versioned_client, daemon=True,
                                     args=(srv, n, rnd, stop, versions_acked, versions_intended))
                    for n in range(VERSIONED_CLIENTS)]
        for t in threads:
            t.start()
        if delay == "commit":
            time.sleep(1.0)
            commit_hits.append(kill_in_commit(srv, tmp, 20))
        else:
            time.sleep(delay)
            srv.process.send_signal(signal.SIGKILL)
        srv.process.wait()
        stop.set()
        for t in threads:
            t.join(timeout=60)
        srv.log_file.close()
        leftovers = list(tmp.iterdir())
        srv.__enter__()
        when = f"in the commit of {commit_hits[-1]}" if delay == "commit" else f"after {delay} s"
        print(f"round {rnd}: killed {when} with {len(leftovers)} temporary files left", flush=True)
        check(f"round {rnd}: temporary files removed at start-up", not list(tmp.iterdir()),
              f"{len(leftovers)} before, {sorted(p.name for p in tmp.iterdir())} after")
    check("the commit step was hit by the aimed kills", any(commit_hits), str(commit_hits))
    check("some PUTs were acknowledged", len(acked) > 50, str(len(acked)))
    print(f"{len(acked)} acknowledged PUTs, {len(intended)} attempted", flush=True)


def test_every_acknowledged_put_reads_back(srv, suite):
    acked, check = suite.acked, srv.check
    s3 = srv.boto3("alice")
    bad = []
    for (bucket, key), (digest, mode) in sorted(acked.items()):
        try:
            got = s3.get_object(Bucket=bucket, Key=key, **extra(mode))["Body"].read()
            if hashlib.sha256(got).hexdigest() != digest:
                bad.append((key, "differs"))
        except Exception as e:  # noqa: BLE001
            bad.append((key, str(e)[:200]))
    check("every acknowledged PUT reads back byte for byte", not bad, str(bad[:5]))
    suite.__dict__.update(s3=s3)


def test_every_listed_object_is_whole(srv, suite):
    check, intended, s3 = srv.check, suite.intended, suite.s3
    listed, unreadable = 0, []
    for mode, bucket in BUCKET.items():
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                listed += 1
                want = intended.get((bucket, o["Key"]))
                try:
                    got = s3.get_object(Bucket=bucket, Key=o["Key"], **extra(mode))["Body"].read()
                    if want is None or hashlib.sha256(got).hexdigest() != want[0]:
                        unreadable.append((o["Key"], "not what its client sent"))
                except Exception as e:  # noqa: BLE001
                    unreadable.append((o["Key"], str(e)[:200]))
    check("every listed object is whole", not unreadable, str(unreadable[:5]))
    suite.__dict__.update(listed=listed)


def test_versions_and_listing_after_the_kills(srv, suite):
    acked, check, listed, s3, versions_acked, versions_intended = suite.acked, srv.check, suite.listed, suite.s3, suite.versions_acked, suite.versions_intended
    check_versions(srv, s3, versions_acked, versions_intended)
    check("listing shows every acknowledged object", listed >= len(acked), f"{listed} listed")


def test_uploads_left_in_progress_resume_or_abort(srv, suite):
    check, listed, s3 = srv.check, suite.listed, suite.s3
    # Uploads left in progress: listed, resumable, then completed or aborted.
    resumed = aborted = 0
    for mode, bucket in BUCKET.items():
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        for k, u in enumerate(uploads):
            key, uid = u["Key"], u["UploadId"]
            parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid).get("Parts", [])
            if k % 2 == 0:
                data = content(key, 5 * MiB + 1000)
                done = [{"PartNumber": n + 1, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n + 1,
                                                                     Body=p, **extra(mode))["ETag"]}
                        for n, p in enumerate([data[:5 * MiB], data[5 * MiB:]])]
                s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                             MultipartUpload={"Parts": done}, **extra(mode))
                got = s3.get_object(Bucket=bucket, Key=key, **extra(mode))["Body"].read()
                check(f"resumed upload {key} completes", got == data)
                resumed += 1
            else:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
                aborted += 1
            check(f"upload {key} lists {len(parts)} parts cleanly", all(p["Size"] > 0 for p in parts))
        left = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        check(f"{bucket}: no uploads left after resume and abort", not left, str(left[:3]))
    print(f"{listed} objects listed, {resumed} uploads resumed, {aborted} aborted", flush=True)
