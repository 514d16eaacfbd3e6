"""S3 Object Lock with boto3, in every protection mode (default
AONT-RS, SSE-C, SSE-KMS under an HSM root key, SSE-S3): CreateBucket with Object Lock
(versioning on, not to be suspended); Put/GetObjectLockConfiguration with a default
retention; retention and legal hold headers on PUT, copy and multipart uploads and on GET
and HEAD answers; Put/GetObjectRetention (extend always, shorten only GOVERNANCE with
x-amz-bypass-governance-retention, COMPLIANCE never); Put/GetObjectLegalHold; DELETE and
DeleteObjects of a locked version refused (delete markers allowed), allowed once the
retention has expired; tags of a locked version changed without losing its lock; errors as
AWS names them. Then IBM's key rule: the root keys bound to a bucket under Object Lock can
be neither deleted (--force included) nor disabled, the refusal names the bucket and is
audited, and rotation still works. Retention dates are seconds ahead, so the suite waits
for real expiries. On the filesystem, dispersed and cluster stores.
"""

import datetime
import json
import subprocess
import time

import botocore
import pytest

from cipherstore_harness import error_code, protection_modes

STORES = ["fs", "dispersed-3of5", "cluster"]
MODES = ["default", "SSE-C", "SSE-KMS", "SSE-S3"]

MiB = 1 << 20


def status_of(fn):
    """(HTTP status, S3 error code) of a call; (200, None) if it succeeded."""
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    return 200, None


def ahead(seconds):
    """A whole-second UTC instant `seconds` from now."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(seconds=seconds)


def scenario(srv, s3, mode, bucket, put_kw, get_kw, copy_kw):
    check = srv.check
    say = f"{mode}:"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    check(f"{say} Object Lock at creation turns versioning on",
          s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled")
    config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    check(f"{say} GetObjectLockConfiguration: Enabled, no rule",
          config.get("ObjectLockEnabled") == "Enabled" and "Rule" not in config, str(config))
    check(f"{say} versioning cannot be suspended: 409 InvalidBucketState",
          status_of(lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}))
          == (409, "InvalidBucketState"))

    # GOVERNANCE: holds, yields to bypass, shortens only with bypass.
    until = ahead(3600)
    r = s3.put_object(Bucket=bucket, Key="gov", Body=b"governed", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=until, **put_kw)
    gov = r["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="gov", **get_kw)
    check(f"{say} HEAD shows the retention",
          head.get("ObjectLockMode") == "GOVERNANCE" and head.get("ObjectLockRetainUntilDate") == until,
          str({k: v for k, v in head.items() if k.startswith("ObjectLock")}))
    got = s3.get_object(Bucket=bucket, Key="gov", **get_kw)
    check(f"{say} GET serves a locked version with its retention",
          got["Body"].read() == b"governed" and got.get("ObjectLockMode") == "GOVERNANCE"
          and got.get("ObjectLockRetainUntilDate") == until)
    ret = s3.get_object_retention(Bucket=bucket, Key="gov", VersionId=gov)["Retention"]
    check(f"{say} GetObjectRetention", ret == {"Mode": "GOVERNANCE", "RetainUntilDate": until}, str(ret))
    check(f"{say} DELETE of a retained version: 403 AccessDenied",
          status_of(lambda: s3.delete_object(Bucket=bucket, Key="gov", VersionId=gov)) == (403, "AccessDenied"))
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "gov", "VersionId": gov}]})
    check(f"{say} DeleteObjects of a retained version: AccessDenied for that key",
          [(e["Key"], e["Code"]) for e in r.get("Errors", [])] == [("gov", "AccessDenied")], str(r))
    r = s3.delete_object(Bucket=bucket, Key="gov")
    check(f"{say} DELETE without a version id makes a delete marker", r.get("DeleteMarker") is True, str(r))
    check(f"{say} the locked version is still there, readable",
          s3.get_object(Bucket=bucket, Key="gov", VersionId=gov, **get_kw)["Body"].read() == b"governed")
    shorter = ahead(1800)
    check(f"{say} shortening GOVERNANCE without bypass: 403",
          status_of(lambda: s3.put_object_retention(
              Bucket=bucket, Key="gov", VersionId=gov,
              Retention={"Mode": "GOVERNANCE", "RetainUntilDate": shorter})) == (403, "AccessDenied"))
    longer = ahead(7200)
    s3.put_object_retention(Bucket=bucket, Key="gov", VersionId=gov,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": longer})
    check(f"{say} extending GOVERNANCE needs no bypass",
          s3.get_object_retention(Bucket=bucket, Key="gov", VersionId=gov)["Retention"]["RetainUntilDate"] == longer)
    check(f"{say} GOVERNANCE made COMPLIANCE without bypass: 403",
          status_of(lambda: s3.put_object_retention(
              Bucket=bucket, Key="gov", VersionId=gov,
              Retention={"Mode": "COMPLIANCE", "RetainUntilDate": ahead(9000)})) == (403, "AccessDenied"))
    check(f"{say} a retention mode that is neither: 400 MalformedXML",
          status_of(lambda: s3.put_object_retention(
              Bucket=bucket, Key="gov", VersionId=gov,
              Retention={"Mode": "FOREVER", "RetainUntilDate": ahead(9000)})) == (400, "MalformedXML"))
    s3.put_object_retention(Bucket=bucket, Key="gov", VersionId=gov, BypassGovernanceRetention=True,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": shorter})
    check(f"{say} shortening GOVERNANCE with bypass",
          s3.get_object_retention(Bucket=bucket, Key="gov", VersionId=gov)["Retention"]["RetainUntilDate"] == shorter)
    # Tags of a locked, noncurrent version change; its lock stays.
    s3.put_object_tagging(Bucket=bucket, Key="gov", VersionId=gov, Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
    check(f"{say} a noncurrent locked version's tags change",
          s3.get_object_tagging(Bucket=bucket, Key="gov", VersionId=gov)["TagSet"] == [{"Key": "t", "Value": "1"}])
    check(f"{say} … and it keeps its retention",
          s3.get_object_retention(Bucket=bucket, Key="gov", VersionId=gov)["Retention"]["RetainUntilDate"] == shorter)
    r = s3.delete_object(Bucket=bucket, Key="gov", VersionId=gov, BypassGovernanceRetention=True)
    check(f"{say} DELETE of a GOVERNANCE version with bypass", r.get("VersionId") == gov, str(r))
    check(f"{say} … it is gone",
          status_of(lambda: s3.head_object(Bucket=bucket, Key="gov", VersionId=gov, **get_kw))[0] == 404)

    # COMPLIANCE: extends, never shortens, never yields.
    until = ahead(3600)
    comp = s3.put_object(Bucket=bucket, Key="comp", Body=b"complied", ObjectLockMode="COMPLIANCE",
                         ObjectLockRetainUntilDate=until, **put_kw)["VersionId"]
    for label, retention in (("shortened", {"Mode": "COMPLIANCE", "RetainUntilDate": ahead(60)}),
                             ("made GOVERNANCE", {"Mode": "GOVERNANCE", "RetainUntilDate": ahead(7200)})):
        check(f"{say} COMPLIANCE cannot be {label}, bypass or not",
              status_of(lambda: s3.put_object_retention(Bucket=bucket, Key="comp", VersionId=comp,
                                                        BypassGovernanceRetention=True, Retention=retention))
              == (403, "AccessDenied"))
    check(f"{say} a COMPLIANCE version is not deleted with bypass",
          status_of(lambda: s3.delete_object(Bucket=bucket, Key="comp", VersionId=comp,
                                             BypassGovernanceRetention=True)) == (403, "AccessDenied"))
    extended = ahead(5400)
    s3.put_object_retention(Bucket=bucket, Key="comp", VersionId=comp,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": extended})
    check(f"{say} COMPLIANCE extends",
          s3.get_object_retention(Bucket=bucket, Key="comp", VersionId=comp)["Retention"]
          == {"Mode": "COMPLIANCE", "RetainUntilDate": extended})

    # Legal hold: holds whatever the retention, until turned off.
    held = s3.put_object(Bucket=bucket, Key="held", Body=b"on hold", ObjectLockLegalHoldStatus="ON",
                         **put_kw)["VersionId"]
    check(f"{say} GetObjectLegalHold ON",
          s3.get_object_legal_hold(Bucket=bucket, Key="held", VersionId=held)["LegalHold"] == {"Status": "ON"})
    check(f"{say} HEAD shows the legal hold",
          s3.head_object(Bucket=bucket, Key="held", **get_kw).get("ObjectLockLegalHoldStatus") == "ON")
    check(f"{say} a held version is not deleted, bypass or not",
          status_of(lambda: s3.delete_object(Bucket=bucket, Key="held", VersionId=held,
                                             BypassGovernanceRetention=True)) == (403, "AccessDenied"))
    check(f"{say} a version without retention: NoSuchObjectLockConfiguration",
          status_of(lambda: s3.get_object_retention(Bucket=bucket, Key="held", VersionId=held))
          == (404, "NoSuchObjectLockConfiguration"))
    check(f"{say} a version whose legal hold was never set: NoSuchObjectLockConfiguration",
          status_of(lambda: s3.get_object_legal_hold(Bucket=bucket, Key="comp", VersionId=comp))
          == (404, "NoSuchObjectLockConfiguration"))
    s3.put_object_legal_hold(Bucket=bucket, Key="held", VersionId=held, LegalHold={"Status": "OFF"})
    check(f"{say} GetObjectLegalHold OFF once turned off",
          s3.get_object_legal_hold(Bucket=bucket, Key="held", VersionId=held)["LegalHold"] == {"Status": "OFF"})
    check(f"{say} … and HEAD says OFF",
          s3.head_object(Bucket=bucket, Key="held", VersionId=held, **get_kw).get("ObjectLockLegalHoldStatus")
          == "OFF")
    s3.delete_object(Bucket=bucket, Key="held", VersionId=held)
    check(f"{say} once released, the version deletes",
          status_of(lambda: s3.head_object(Bucket=bucket, Key="held", VersionId=held, **get_kw))[0] == 404)

    # A retention that expires: the version deletes afterwards.
    soon = ahead(3)
    short = s3.put_object(Bucket=bucket, Key="short", Body=b"brief", ObjectLockMode="COMPLIANCE",
                          ObjectLockRetainUntilDate=soon, **put_kw)["VersionId"]
    check(f"{say} before it expires, refused",
          status_of(lambda: s3.delete_object(Bucket=bucket, Key="short", VersionId=short))[0] == 403)

    # Multipart: the headers of CreateMultipartUpload lock the completed object.
    mp_until = ahead(3600)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ObjectLockMode="GOVERNANCE",
                                    ObjectLockRetainUntilDate=mp_until, **put_kw)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"m" * (5 * MiB), **get_kw)
    mp = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}, **get_kw)["VersionId"]
    check(f"{say} a multipart object gets the retention asked at its start",
          s3.get_object_retention(Bucket=bucket, Key="mp", VersionId=mp)["Retention"]
          == {"Mode": "GOVERNANCE", "RetainUntilDate": mp_until})
    check(f"{say} … and is refused deletion",
          status_of(lambda: s3.delete_object(Bucket=bucket, Key="mp", VersionId=mp))[0] == 403)

    # Copy: the target gets the request's lock, never the source's.
    c_until = ahead(3600)
    r = s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "comp", "VersionId": comp},
                       ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=c_until, **copy_kw)
    copied = r["VersionId"]
    check(f"{say} a copy gets the retention it asks for",
          s3.get_object_retention(Bucket=bucket, Key="copied", VersionId=copied)["Retention"]
          == {"Mode": "GOVERNANCE", "RetainUntilDate": c_until})
    r = s3.copy_object(Bucket=bucket, Key="copied2", CopySource={"Bucket": bucket, "Key": "comp", "VersionId": comp},
                       **copy_kw)
    check(f"{say} a copy asking for none has none (no bucket default)",
          status_of(lambda: s3.get_object_retention(Bucket=bucket, Key="copied2", VersionId=r["VersionId"]))
          == (404, "NoSuchObjectLockConfiguration"))

    # The bucket's default retention applies to writes that ask for none.
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    config = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    check(f"{say} the default retention reads back",
          config.get("Rule", {}).get("DefaultRetention") == {"Mode": "GOVERNANCE", "Days": 1}, str(config))
    before = datetime.datetime.now(datetime.timezone.utc)
    dflt = s3.put_object(Bucket=bucket, Key="default", Body=b"by default", **put_kw)["VersionId"]
    ret = s3.get_object_retention(Bucket=bucket, Key="default", VersionId=dflt)["Retention"]
    day = datetime.timedelta(days=1)
    check(f"{say} a write without headers gets the default: GOVERNANCE, a day",
          ret["Mode"] == "GOVERNANCE"
          and before + day - datetime.timedelta(seconds=5) <= ret["RetainUntilDate"]
          <= datetime.datetime.now(datetime.timezone.utc) + day + datetime.timedelta(seconds=5), str(ret))
    check(f"{say} … which holds",
          status_of(lambda: s3.delete_object(Bucket=bucket, Key="default", VersionId=dflt))[0] == 403)
    s3.delete_object(Bucket=bucket, Key="default", VersionId=dflt, BypassGovernanceRetention=True)

    # Bad requests, as AWS names them.
    check(f"{say} a retain-until date in the past: InvalidArgument",
          error_code(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x", ObjectLockMode="GOVERNANCE",
                                           ObjectLockRetainUntilDate=ahead(-60), **put_kw)) == "InvalidArgument")
    check(f"{say} a mode without a date: InvalidArgument",
          error_code(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x", ObjectLockMode="GOVERNANCE",
                                           **put_kw)) == "InvalidArgument")
    check(f"{say} retention of a version that is not there: NoSuchVersion",
          error_code(lambda: s3.put_object_retention(
              Bucket=bucket, Key="comp", VersionId="0" * 32,
              Retention={"Mode": "GOVERNANCE", "RetainUntilDate": ahead(60)})) == "NoSuchVersion")
    check(f"{say} a default retention of 0 days: InvalidRetentionPeriod",
          error_code(lambda: s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
              "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 0}}}))
          == "InvalidRetentionPeriod")

    # The short retention has expired by now (the steps above take seconds).
    while datetime.datetime.now(datetime.timezone.utc) <= soon:
        time.sleep(0.2)
    s3.delete_object(Bucket=bucket, Key="short", VersionId=short)
    check(f"{say} after its retention expired, the version deletes",
          status_of(lambda: s3.head_object(Bucket=bucket, Key="short", VersionId=short, **get_kw))[0] == 404)
    return comp


def without_lock(srv, s3):
    """Object Lock requests in a bucket without it, and enabling it on a versioned bucket."""
    check = srv.check
    s3.create_bucket(Bucket="unlocked")
    s3.put_object(Bucket="unlocked", Key="k", Body=b"k")
    check("no lock: GetObjectLockConfiguration 404 ObjectLockConfigurationNotFoundError",
          status_of(lambda: s3.get_object_lock_configuration(Bucket="unlocked"))
          == (404, "ObjectLockConfigurationNotFoundError"))
    check("no lock: PUT with retention headers is refused (InvalidRequest)",
          error_code(lambda: s3.put_object(Bucket="unlocked", Key="x", Body=b"x", ObjectLockMode="GOVERNANCE",
                                           ObjectLockRetainUntilDate=ahead(60))) == "InvalidRequest")
    check("no lock: PutObjectRetention is refused (InvalidRequest)",
          error_code(lambda: s3.put_object_retention(Bucket="unlocked", Key="k", Retention={
              "Mode": "GOVERNANCE", "RetainUntilDate": ahead(60)})) == "InvalidRequest")
    enable = {"ObjectLockEnabled": "Enabled"}
    check("an unversioned bucket cannot take Object Lock: 409 InvalidBucketState",
          status_of(lambda: s3.put_object_lock_configuration(Bucket="unlocked", ObjectLockConfiguration=enable))
          == (409, "InvalidBucketState"))
    s3.put_bucket_versioning(Bucket="unlocked", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket="unlocked", ObjectLockConfiguration=enable)
    check("a versioned bucket takes Object Lock",
          s3.get_object_lock_configuration(Bucket="unlocked")["ObjectLockConfiguration"]["ObjectLockEnabled"]
          == "Enabled")
    s3.put_object_retention(Bucket="unlocked", Key="k", VersionId="null",
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": ahead(3600)})
    check("the null version written before takes a retention",
          status_of(lambda: s3.delete_object(Bucket="unlocked", Key="k", VersionId="null"))[0] == 403)


def key_rule(srv, s3, crn):
    """IBM's rule: a root key bound to a bucket under Object Lock is neither deleted nor
    disabled; rotation works; the refusal is audited. A key of an unlocked bucket still
    deletes with --force."""
    check = srv.check

    def keys(*args):
        config = ["--config", str(srv.data / "config.toml")] if (srv.data / "config.toml").exists() else []
        return subprocess.run([srv.binary, "keys", *config, *args], env=srv.env, capture_output=True, text=True)

    for args in (("delete", crn, "--force"), ("delete", crn), ("disable", crn)):
        r = keys(*args)
        check(f"keys: `keys {' '.join(args[:1] + args[2:])}` of a key under Object Lock is refused, naming the bucket",
              r.returncode != 0 and "lock-kms" in r.stderr and "Object Lock" in r.stderr, r.stdout + r.stderr)
    shown = json.loads(keys("show", crn, "--json").stdout)
    check("keys: `keys show` lists the bucket as retained", shown.get("retained") == ["lock-kms"], str(shown))
    r = keys("rotate", crn)
    check("keys: rotation still works", r.returncode == 0, r.stderr)
    audit = [json.loads(line) for line in keys("audit").stdout.splitlines()]
    refused = [e for e in audit if e["key"] == crn and e["outcome"] == "failure"
               and e["action"] in ("key.delete", "key.disable")]
    check("keys: each refusal is in the audit trail, with the bucket",
          len(refused) == 3 and all("lock-kms" in e["buckets"] for e in refused), str(refused))
    check("keys: objects under the key still read",
          s3.get_object(Bucket="lock-kms", Key="comp")["Body"].read() == b"complied")
    # A root key of a bucket without Object Lock is still crypto-shredded with --force.
    other = srv.create_root("unlocked-root")
    s3.create_bucket(Bucket="kms-unlocked")
    s3.put_object(Bucket="kms-unlocked", Key="k", Body=b"k", ServerSideEncryption="aws:kms", SSEKMSKeyId=other)
    r = keys("delete", other, "--force")
    check("keys: a key of an unlocked bucket deletes with --force", r.returncode == 0, r.stderr)


@pytest.fixture(scope="module")
def s3(srv):
    return srv.boto3("alice")


@pytest.fixture(scope="module")
def crn(srv):
    return srv.create_root("lock-root")


@pytest.mark.parametrize("mode", MODES)
def test_object_lock_in_each_protection_mode(srv, s3, crn, mode):
    scenario(srv, s3, mode, *protection_modes(crn, "lock")[mode])


def test_buckets_without_object_lock(srv, s3):
    without_lock(srv, s3)


def test_root_keys_of_locked_buckets_are_kept(srv, s3, crn):
    key_rule(srv, s3, crn)
