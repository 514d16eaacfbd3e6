"""Bucket lifecycle with boto3, on a server whose lifecycle day lasts 4 seconds
(`[lifecycle] day_seconds`; CIPHERSTORE_LIFECYCLE_DAY_SECONDS is checked too), on the
filesystem, dispersed and cluster stores: Put/Get/DeleteBucketLifecycleConfiguration and
their errors as AWS names them; `x-amz-expiration` on PUT, GET, HEAD and
CompleteMultipartUpload; the worker expiring current versions by prefix, tag and size
(And), moving objects to another storage class, making delete markers in versioned buckets, removing noncurrent versions but the
newest N, removing bare delete markers, keeping versions under Object Lock, aborting stale
uploads; its counters in /metrics and its audit trail; and a server killed with SIGKILL in
the middle of a pass: nothing half-deleted, the rest done after the restart.

The buckets are all set up first, so their days run out together while the other checks
run.
"""

import json
import os
import signal
import time

import pytest

from cipherstore_harness import Server, error_code, until

STORES = ["fs", "dispersed-3of5", "cluster"]
DAY = 4
# A pass makes at most 50 changes a second: the crash test's 300 objects take 6 s.
SERVER = {"config": f"[lifecycle]\nday_seconds = {DAY}\nactions_per_sec = 50\n"}


def keys(s3, bucket, prefix=""):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def versions(s3, bucket, prefix=""):
    r = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return r.get("Versions", []), r.get("DeleteMarkers", [])


def rules(s3, bucket, *rules):
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)})


def expire(rule_id, days=1, **filt):
    return {"ID": rule_id, "Status": "Enabled", "Filter": filt, "Expiration": {"Days": days}}


@pytest.fixture(scope="module")
def s3(srv):
    return srv.boto3("alice")


def test_setup_every_scenario(srv, s3, suite):
    """Buckets, rules and objects for the scenarios checked below, written at once."""
    s3.create_bucket(Bucket="lc-plain")
    rules(s3, "lc-plain",
          expire("logs", Prefix="logs/"),
          expire("scratch", And={"Prefix": "tmp/", "Tags": [{"Key": "class", "Value": "scratch"}],
                                 "ObjectSizeGreaterThan": 10}),
          {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": "up/"},
           "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
          {"ID": "cold", "Status": "Enabled", "Filter": {"Prefix": "cold/"},
           "Transitions": [{"Days": 1, "StorageClass": "STANDARD_IA"}]})
    for key, body, tags in [("cold/a", b"c", None), ("logs/a", b"a", None), ("logs/b", b"b" * 100, None), ("keep/a", b"k", None),
                            ("tmp/big-scratch", b"x" * 100, "class=scratch"),
                            ("tmp/small-scratch", b"x", "class=scratch"),
                            ("tmp/big-kept", b"x" * 100, "class=kept")]:
        s3.put_object(Bucket="lc-plain", Key=key, Body=body, **({"Tagging": tags} if tags else {}))
    suite.stale = s3.create_multipart_upload(Bucket="lc-plain", Key="up/stale")["UploadId"]
    suite.other = s3.create_multipart_upload(Bucket="lc-plain", Key="elsewhere/open")["UploadId"]

    s3.create_bucket(Bucket="lc-versioned")
    s3.put_bucket_versioning(Bucket="lc-versioned", VersioningConfiguration={"Status": "Enabled"})
    rules(s3, "lc-versioned",
          {"ID": "all-go", "Status": "Enabled", "Filter": {"Prefix": "a/"}, "Expiration": {"Days": 1},
           "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
          {"ID": "bare-markers", "Status": "Enabled", "Filter": {"Prefix": "a/"},
           "Expiration": {"ExpiredObjectDeleteMarker": True}},
          {"ID": "keep-one", "Status": "Enabled", "Filter": {"Prefix": "n/"},
           "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}})
    for i in range(3):
        s3.put_object(Bucket="lc-versioned", Key="a/k", Body=f"a{i}".encode())
        s3.put_object(Bucket="lc-versioned", Key="n/k", Body=f"n{i}".encode())

    s3.create_bucket(Bucket="lc-locked", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket="lc-locked", ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    rules(s3, "lc-locked", {"ID": "locked", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1},
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 1}})
    for i in range(2):
        s3.put_object(Bucket="lc-locked", Key="k", Body=f"l{i}".encode())
    suite.started = time.monotonic()


def test_configurations_read_back_and_bad_ones_are_refused(srv, s3):
    check = srv.check
    got = s3.get_bucket_lifecycle_configuration(Bucket="lc-plain")["Rules"]
    check("four rules read back", [r["ID"] for r in got] == ["logs", "scratch", "uploads", "cold"], str(got))
    check("the transition reads back as sent",
          got[3].get("Transitions") == [{"Days": 1, "StorageClass": "STANDARD_IA"}], str(got[3]))
    check("the And filter reads back as sent",
          got[1]["Filter"]["And"] == {"Prefix": "tmp/", "Tags": [{"Key": "class", "Value": "scratch"}],
                                      "ObjectSizeGreaterThan": 10}, str(got[1]))
    s3.create_bucket(Bucket="lc-config")
    check("no configuration: NoSuchLifecycleConfiguration",
          error_code(lambda: s3.get_bucket_lifecycle_configuration(Bucket="lc-config"))
          == "NoSuchLifecycleConfiguration")
    bad = [
        ("Days 0", [expire("z", days=0)], "InvalidArgument"),
        ("the same ID twice", [expire("x"), expire("x", days=2)], "InvalidArgument"),
        ("no action", [{"ID": "n", "Status": "Enabled", "Filter": {}}], "InvalidRequest"),
        ("Date not at midnight", [{"ID": "d", "Status": "Enabled", "Filter": {},
                                   "Expiration": {"Date": "2030-01-01T12:00:00Z"}}], "InvalidArgument"),
        ("ExpiredObjectDeleteMarker with a tag", [{"ID": "m", "Status": "Enabled",
                                                   "Filter": {"Tag": {"Key": "a", "Value": "b"}},
                                                   "Expiration": {"ExpiredObjectDeleteMarker": True}}],
         "InvalidRequest"),
        ("sizes crossed", [expire("s", And={"ObjectSizeGreaterThan": 9, "ObjectSizeLessThan": 5})],
         "InvalidRequest"),
        ("an ID of 256 characters", [expire("i" * 256)], "InvalidArgument"),
        ("a transition to an archive class", [{"ID": "t", "Status": "Enabled", "Filter": {},
                                               "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}],
         "InvalidStorageClass"),
        ("an expiration before a transition", [{"ID": "t", "Status": "Enabled", "Filter": {},
                                                "Transitions": [{"Days": 5, "StorageClass": "STANDARD_IA"}],
                                                "Expiration": {"Days": 2}}], "InvalidArgument"),
        ("Filter and Prefix", [{"ID": "p", "Status": "Enabled", "Filter": {}, "Prefix": "x",
                                "Expiration": {"Days": 1}}], "MalformedXML"),
    ]
    for name, rs, code in bad:
        got_code = error_code(lambda: rules(s3, "lc-config", *rs))
        check(f"refused: {name} ({code})", got_code == code, str(got_code))
    check("a refused configuration leaves none",
          error_code(lambda: s3.get_bucket_lifecycle_configuration(Bucket="lc-config"))
          == "NoSuchLifecycleConfiguration")
    rules(s3, "lc-config", expire("later", days=30))
    s3.delete_bucket_lifecycle(Bucket="lc-config")
    check("DeleteBucketLifecycle removes it",
          error_code(lambda: s3.get_bucket_lifecycle_configuration(Bucket="lc-config"))
          == "NoSuchLifecycleConfiguration")
    bob = srv.boto3("bob")
    check("another user's bucket: AccessDenied",
          error_code(lambda: bob.get_bucket_lifecycle_configuration(Bucket="lc-plain")) == "AccessDenied")


def test_expiration_headers(srv, s3):
    check = srv.check
    s3.create_bucket(Bucket="lc-headers")
    rules(s3, "lc-headers", expire("month", days=30), expire("soon", days=2, Prefix="soon/"))
    put = s3.put_object(Bucket="lc-headers", Key="soon/x", Body=b"x")
    exp = put.get("Expiration", "")
    check("PUT: x-amz-expiration names the earliest rule",
          exp.startswith('expiry-date="') and exp.endswith('GMT", rule-id="soon"'), exp)
    check("HEAD: the same", s3.head_object(Bucket="lc-headers", Key="soon/x").get("Expiration") == exp)
    check("GET: the same", s3.get_object(Bucket="lc-headers", Key="soon/x").get("Expiration") == exp)
    up = s3.create_multipart_upload(Bucket="lc-headers", Key="big")["UploadId"]
    part = s3.upload_part(Bucket="lc-headers", Key="big", UploadId=up, PartNumber=1, Body=b"p")
    done = s3.complete_multipart_upload(Bucket="lc-headers", Key="big", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    check("CompleteMultipartUpload: the month rule", done.get("Expiration", "").endswith('rule-id="month"'),
          str(done.get("Expiration")))
    s3.delete_bucket_lifecycle(Bucket="lc-headers")
    check("no rule, no header", "Expiration" not in s3.head_object(Bucket="lc-headers", Key="soon/x"))


def test_current_versions_expire_by_prefix_tag_and_size(srv, s3):
    check = srv.check
    left = until(lambda: (lambda k: k if "logs/a" not in k and "tmp/big-scratch" not in k else None)(
        keys(s3, "lc-plain")))
    check("expired: logs/ and the large scratch object; kept: the rest",
          sorted(left or keys(s3, "lc-plain")) == ["cold/a", "keep/a", "tmp/big-kept", "tmp/small-scratch"],
          str(keys(s3, "lc-plain")))
    check("what is kept still reads", s3.get_object(Bucket="lc-plain", Key="keep/a")["Body"].read() == b"k")


def test_transitions_change_the_storage_class(srv, s3):
    check = srv.check
    cold = until(lambda: s3.head_object(Bucket="lc-plain", Key="cold/a").get("StorageClass") == "STANDARD_IA")
    check("HEAD shows the class the transition gave", cold)
    listed = s3.list_objects_v2(Bucket="lc-plain", Prefix="cold/")["Contents"]
    check("ListObjectsV2 shows it too", listed[0].get("StorageClass") == "STANDARD_IA", str(listed))
    check("the object still reads", s3.get_object(Bucket="lc-plain", Key="cold/a")["Body"].read() == b"c")
    check("the others stay STANDARD", "StorageClass" not in s3.head_object(Bucket="lc-plain", Key="keep/a"))


def test_stale_uploads_are_aborted(srv, s3, suite):
    check = srv.check
    open_ids = until(lambda: (lambda ids: ids if suite.stale not in ids else None)(
        [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="lc-plain").get("Uploads", [])]))
    check("the stale upload under up/ is aborted, the other kept", open_ids == [suite.other], str(open_ids))
    check("its parts can no longer be uploaded",
          error_code(lambda: s3.upload_part(Bucket="lc-plain", Key="up/stale", UploadId=suite.stale,
                                            PartNumber=1, Body=b"x")) == "NoSuchUpload")


def test_versioned_buckets(srv, s3):
    check = srv.check
    gone = until(lambda: versions(s3, "lc-versioned", "a/") == ([], []), timeout=60)
    check("a/: a marker made, the noncurrent versions removed, then the bare marker", gone,
          str(versions(s3, "lc-versioned", "a/")))
    kept = until(lambda: len(versions(s3, "lc-versioned", "n/")[0]) == 2)
    vs, markers = versions(s3, "lc-versioned", "n/")
    check("n/: the current version and the newest noncurrent one kept", kept and not markers, str(vs))
    bodies = sorted(s3.get_object(Bucket="lc-versioned", Key="n/k", VersionId=v["VersionId"])["Body"].read()
                    for v in vs)
    check("n/: the kept ones are the two newest", bodies == [b"n1", b"n2"], str(bodies))


def test_locked_versions_are_kept(srv, s3):
    check = srv.check
    marked = until(lambda: versions(s3, "lc-locked")[1])
    check("a marker hides the expired current version", bool(marked))
    until(lambda: (srv.metric_labelled("cipherstore_lifecycle_actions_total", action="kept_locked") or 0) > 0)
    vs, _ = versions(s3, "lc-locked")
    check("both locked versions kept", len(vs) == 2, str(vs))
    check("kept_locked counted",
          (srv.metric_labelled("cipherstore_lifecycle_actions_total", action="kept_locked") or 0) > 0)


def test_metrics_audit_and_start_up_line(srv, s3):
    check = srv.check
    check("passes counted", (srv.metric("cipherstore_lifecycle_passes_total") or 0) > 0)
    check("this server runs the worker", srv.metric("cipherstore_lifecycle_worker_holder") == 1)
    for action in ["expired", "upload_aborted", "noncurrent_removed", "delete_marker_made",
                   "delete_marker_removed", "transitioned"]:
        n = srv.metric_labelled("cipherstore_lifecycle_actions_total", action=action) or 0
        check(f"/metrics counts {action}", n > 0, str(n))
    trail = srv.data / "d" / "lifecycle-audit.jsonl"
    lines = [json.loads(line) for line in trail.read_text().splitlines()] if trail.exists() else []
    check("the audit trail names each expiry",
          any(e["action"] == "lifecycle.expired" and e["bucket"] == "lc-plain" and e["key"] == "logs/a"
              and e["rule"] == "logs" for e in lines), str(lines[:3]))
    check("the audit trail names the aborted upload",
          any(e["action"] == "lifecycle.upload_aborted" and e["id"] for e in lines))
    log = srv.log_path.read_text(errors="replace")
    check("serve says the day is shortened", "a day lasts 4 s" in log and "for tests only" in log)


def test_killed_mid_pass_leaves_nothing_half_deleted(srv, s3, store):
    check = srv.check
    s3.create_bucket(Bucket="lc-crash")
    for i in range(300):
        s3.put_object(Bucket="lc-crash", Key=f"crash/{i:03}", Body=f"doomed {i}".encode())
    for i in range(20):
        s3.put_object(Bucket="lc-crash", Key=f"stay/{i:03}", Body=f"kept {i}".encode())
    rules(s3, "lc-crash", expire("crash", Prefix="crash/"))
    started = until(lambda: len(keys(s3, "lc-crash", "crash/")) < 280, timeout=60, every=0.2)
    srv.process.send_signal(signal.SIGKILL)
    srv.process.wait()
    srv.log_file.close()
    check("the pass had begun when the server was killed", bool(started))
    srv.__enter__()
    s3 = srv.boto3("alice")
    left = keys(s3, "lc-crash", "crash/")
    check("the kill came mid-pass", 0 < len(left) < 300, str(len(left)))
    unreadable = []
    for k in left:
        try:
            s3.get_object(Bucket="lc-crash", Key=k)["Body"].read()
        except Exception as e:  # noqa: BLE001 - any failure is what this looks for
            unreadable.append((k, str(e)))
    check("every object still listed reads whole", not unreadable, str(unreadable[:3]))
    done = until(lambda: keys(s3, "lc-crash", "crash/") == [], timeout=60)
    check("the restarted server finishes the work", done, str(len(keys(s3, "lc-crash", "crash/"))))
    stay = [s3.get_object(Bucket="lc-crash", Key=f"stay/{i:03}")["Body"].read() for i in range(20)]
    check("objects no rule covers are untouched", stay == [f"kept {i}".encode() for i in range(20)])


@pytest.mark.fs
def test_day_from_the_environment_and_bad_settings(binary, tmp_path):
    old = os.environ.get("CIPHERSTORE_LIFECYCLE_DAY_SECONDS")
    os.environ["CIPHERSTORE_LIFECYCLE_DAY_SECONDS"] = "6"
    try:
        srv = Server(binary, cluster=False)
    finally:
        if old is None:
            del os.environ["CIPHERSTORE_LIFECYCLE_DAY_SECONDS"]
        else:
            os.environ["CIPHERSTORE_LIFECYCLE_DAY_SECONDS"] = old
    with srv:
        pass
    assert "a day lasts 6 s" in srv.log and "a pass every 3 s" in srv.log, srv.log[-800:]
    srv.env["CIPHERSTORE_LIFECYCLE_DAY_SECONDS"] = "1"
    import subprocess
    out = subprocess.run([str(binary), *srv.args], env=srv.env, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "day_seconds" in out.stderr, out.stderr[-800:]
