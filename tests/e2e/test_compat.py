"""S3 details SDKs and tools rely on, answered as AWS documents them (issue 15), with boto3
and the aws cli, in every protection mode where they apply (default, SSE-C, SSE-KP and
SSE-S3 buckets):

- conditional GETs: 304 carries ETag and Last-Modified;
- Content-MD5 that is not the base64 of 16 bytes → 400 InvalidDigest (a mismatch stays
  BadDigest); user metadata over 2 KiB → 400 MetadataTooLarge, exactly 2 KiB accepted;
- CopyObject onto itself changing nothing → 400 InvalidRequest (with REPLACE, or a new
  SSE-C key, it is allowed);
- CreateBucket of a bucket you own → 200 without a location constraint (us-east-1),
  409 BucketAlreadyOwnedByYou with one; another user's → 409 BucketAlreadyExists;
- listings: `encoding-type=url` (explicit: names stay encoded; boto3's automatic one:
  decoded back), max-keys=0 (empty, complete), Marker echoed ("" when absent), Owner in
  V1, in V2 only with fetch-owner, ListObjectVersions on an unversioned bucket (every
  object as version "null", paging by key-marker and version-id-marker);
- HEAD and GET with partNumber: that part, `x-amz-mp-parts-count`, 416 InvalidPartNumber
  beyond the last part;
- CompleteMultipartUpload retried after it succeeded (same id and parts): 200 with the same
  ETag, after a restart too; with other parts or another id: NoSuchUpload.
- full-object checksums returned with `x-amz-checksum-mode: ENABLED` (not on ranges),
  carried by copies; storage classes recorded and answered, archive ones refused;
- object tagging: `x-amz-tagging`, Put/Get/DeleteObjectTagging, the count on GET/HEAD,
  AWS's limits, copies (directive), overwrites, a restart; through the aws cli too;
- several Content-Encoding lines: kept joined by commas; GET and HEAD carrying
  x-amz-server-side-encryption: 400 InvalidArgument; listings without encoding-type name
  keys as they are; a part re-sent while its first upload still runs: the upload that
  finishes last is the part (completing with the other's ETag: InvalidPart), as Ceph RGW;
- a Range AWS ignores (`bytes=3-2`, several ranges): the whole object with 200, also
  presigned; anonymous still 403.
"""

import base64
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import types

import botocore

import pytest

from cipherstore_harness import error_code, kms_default

STORES = ["fs", "cluster"]
MODES = ["default", "SSE-C", "SSE-KP", "SSE-S3"]

MiB = 1 << 20


def status_of(fn):
    """(HTTP status, S3 error code or None, response headers) of a boto3 call."""
    try:
        r = fn()
        return r["ResponseMetadata"]["HTTPStatusCode"], None, r["ResponseMetadata"]["HTTPHeaders"]
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Code"), \
            e.response["ResponseMetadata"]["HTTPHeaders"]


@pytest.fixture(scope="module")
def suite(srv):
    """What every test of the module uses."""
    s3, bob = srv.boto3("alice"), srv.boto3("bob")
    crn = srv.create_root("compat-root")
    ckey = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(ckey).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(ckey).digest()).decode()}
    modes = {"default": ("compat-default", {}), "SSE-C": ("compat-ssec", ssec), "SSE-KP": ("compat-kp", {}),
             "SSE-S3": ("compat-sses3", {})}
    for bucket, _ in modes.values():
        s3.create_bucket(Bucket=bucket)
    kms_default(s3, "compat-kp", crn)
    s3.put_bucket_encryption(Bucket="compat-sses3", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})

    completed = {}
    return types.SimpleNamespace(bob=bob, completed=completed, modes=modes, s3=s3)


@pytest.mark.parametrize("mode", MODES)
def test_each_protection_mode(srv, suite, mode):
    bob, check, completed, s3 = suite.bob, srv.check, suite.completed, suite.s3
    bucket, extra = suite.modes[mode]
    put = s3.put_object(Bucket=bucket, Key="obj", Body=b"hello", **extra)
    status, code, headers = status_of(lambda: s3.get_object(Bucket=bucket, Key="obj", IfNoneMatch=put["ETag"],
                                                            **extra))
    check(f"{mode}: If-None-Match → 304 with ETag and Last-Modified",
          status == 304 and headers.get("etag") == put["ETag"] and "last-modified" in headers, str(headers))
    status, _, headers = status_of(lambda: s3.head_object(Bucket=bucket, Key="obj",
                                                          IfModifiedSince="2100-01-01T00:00:00Z", **extra))
    check(f"{mode}: HEAD If-Modified-Since in the future → 304 with validators",
          status == 304 and headers.get("etag") == put["ETag"], str(status))

    # Content-MD5 and metadata limits.
    for bad in ("", "not base64!", base64.b64encode(b"x" * 15).decode()):
        check(f"{mode}: Content-MD5 {bad!r} → InvalidDigest",
              error_code(lambda: s3.put_object(Bucket=bucket, Key="md5", Body=b"abc", ContentMD5=bad,
                                               **extra)) == "InvalidDigest")
    other_md5 = base64.b64encode(hashlib.md5(b"abd").digest()).decode()
    check(f"{mode}: a mismatching Content-MD5 stays BadDigest",
          error_code(lambda: s3.put_object(Bucket=bucket, Key="md5", Body=b"abc", ContentMD5=other_md5,
                                           **extra)) == "BadDigest")
    check(f"{mode}: nothing stored after refused digests",
          error_code(lambda: s3.head_object(Bucket=bucket, Key="md5", **extra)) in ("404", "NoSuchKey"))
    at_limit = {"k": "v" * 2047}
    s3.put_object(Bucket=bucket, Key="meta", Body=b"m", Metadata=at_limit, **extra)
    check(f"{mode}: 2 KiB of user metadata accepted and returned",
          s3.head_object(Bucket=bucket, Key="meta", **extra)["Metadata"] == at_limit)
    check(f"{mode}: user metadata over 2 KiB → MetadataTooLarge",
          error_code(lambda: s3.put_object(Bucket=bucket, Key="meta2", Body=b"m",
                                           Metadata={"k": "v" * 2048}, **extra)) == "MetadataTooLarge")
    check(f"{mode}: CreateMultipartUpload with too much metadata → MetadataTooLarge",
          error_code(lambda: s3.create_multipart_upload(Bucket=bucket, Key="meta3",
                                                        Metadata={"a": "b" * 3000}, **extra))
          == "MetadataTooLarge")

    # Checksums the client sent, returned with x-amz-checksum-mode: ENABLED (whole
    # object only), carried by copies; botocore checks the body against them.
    for alg in ("CRC32", "SHA256"):
        body = os.urandom(3000)
        sent = s3.put_object(Bucket=bucket, Key=f"sum-{alg}", Body=body, ChecksumAlgorithm=alg,
                             **extra).get(f"Checksum{alg}")
        g = s3.get_object(Bucket=bucket, Key=f"sum-{alg}", ChecksumMode="ENABLED", **extra)
        check(f"{mode}: {alg} stored and returned with checksum-mode ENABLED",
              sent and g.get(f"Checksum{alg}") == sent and g.get("ChecksumType") == "FULL_OBJECT"
              and g["Body"].read() == body, str({k: v for k, v in g.items() if k.startswith("Checksum")}))
        h = s3.head_object(Bucket=bucket, Key=f"sum-{alg}", ChecksumMode="ENABLED", **extra)
        check(f"{mode}: HEAD returns the {alg} checksum", h.get(f"Checksum{alg}") == sent, str(h))
        g = s3.get_object(Bucket=bucket, Key=f"sum-{alg}", Range="bytes=0-9", ChecksumMode="ENABLED", **extra)
        check(f"{mode}: no full-object {alg} on a range", f"Checksum{alg}" not in g and g["Body"].read() == body[:10])
        h = s3.head_object(Bucket=bucket, Key=f"sum-{alg}", **extra)
        check(f"{mode}: no {alg} unless asked", f"Checksum{alg}" not in h)
    copy_extra = {f"CopySource{k}": v for k, v in extra.items()}
    s3.copy_object(Bucket=bucket, Key="sum-copy", CopySource={"Bucket": bucket, "Key": "sum-SHA256"},
                   MetadataDirective="REPLACE", ContentType="x/y", **extra, **copy_extra)
    h = s3.head_object(Bucket=bucket, Key="sum-copy", ChecksumMode="ENABLED", **extra)
    check(f"{mode}: a copy keeps its source's checksum", h.get("ChecksumSHA256") == sent, str(h))

    # Storage classes: instant ones recorded and answered, archive ones refused.
    s3.put_object(Bucket=bucket, Key="cls", Body=b"c", StorageClass="STANDARD_IA", **extra)
    check(f"{mode}: StorageClass STANDARD_IA answered on HEAD",
          s3.head_object(Bucket=bucket, Key="cls", **extra).get("StorageClass") == "STANDARD_IA")
    g = s3.get_object(Bucket=bucket, Key="cls", **extra)
    check(f"{mode}: and on GET", g.get("StorageClass") == "STANDARD_IA" and g["Body"].read() == b"c")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="cls")["Contents"]
    check(f"{mode}: and in listings", [o["StorageClass"] for o in listed] == ["STANDARD_IA"], str(listed))
    s3.put_object(Bucket=bucket, Key="cls-std", Body=b"c", StorageClass="STANDARD", **extra)
    check(f"{mode}: STANDARD is not echoed (as AWS)",
          "StorageClass" not in s3.head_object(Bucket=bucket, Key="cls-std", **extra))
    for archive in ("GLACIER", "DEEP_ARCHIVE", "NO_SUCH_CLASS"):
        check(f"{mode}: StorageClass {archive} → InvalidStorageClass",
              error_code(lambda: s3.put_object(Bucket=bucket, Key="cls2", Body=b"c", StorageClass=archive,
                                               **extra)) == "InvalidStorageClass")
    s3.copy_object(Bucket=bucket, Key="cls-copy", CopySource={"Bucket": bucket, "Key": "cls"},
                   StorageClass="ONEZONE_IA", **extra, **copy_extra)
    check(f"{mode}: CopyObject sets the storage class asked",
          s3.head_object(Bucket=bucket, Key="cls-copy", **extra).get("StorageClass") == "ONEZONE_IA")
    s3.copy_object(Bucket=bucket, Key="cls-copy2", CopySource={"Bucket": bucket, "Key": "cls"}, **extra, **copy_extra)
    check(f"{mode}: CopyObject without one gives STANDARD (as AWS)",
          "StorageClass" not in s3.head_object(Bucket=bucket, Key="cls-copy2", **extra))
    up = s3.create_multipart_upload(Bucket=bucket, Key="cls-mp", StorageClass="INTELLIGENT_TIERING", **extra)
    part = s3.upload_part(Bucket=bucket, Key="cls-mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p", **extra)
    s3.complete_multipart_upload(Bucket=bucket, Key="cls-mp", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}, **extra)
    check(f"{mode}: a multipart upload keeps its storage class",
          s3.head_object(Bucket=bucket, Key="cls-mp", **extra).get("StorageClass") == "INTELLIGENT_TIERING")

    # Object tagging: x-amz-tagging on writes, Put/Get/DeleteObjectTagging (no key
    # needed, as AWS), the count on GET/HEAD, AWS's limits, copies and overwrites.
    def tagset(key):
        return [(t["Key"], t["Value"]) for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]]
    s3.put_object(Bucket=bucket, Key="tagged", Body=b"tagged", Tagging="project=blue%20sky&team=a%2Fb", **extra)
    check(f"{mode}: x-amz-tagging on PUT, read back without the object's key",
          tagset("tagged") == [("project", "blue sky"), ("team", "a/b")], str(tagset("tagged")))
    g = s3.get_object(Bucket=bucket, Key="tagged", **extra)
    check(f"{mode}: GET x-amz-tagging-count", g.get("TagCount") == 2 and g["Body"].read() == b"tagged", str(g.get("TagCount")))
    h = s3.head_object(Bucket=bucket, Key="tagged", **extra)
    check(f"{mode}: HEAD x-amz-tagging-count", h["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count") == "2")
    s3.put_object_tagging(Bucket=bucket, Key="tagged", Tagging={"TagSet": [{"Key": "x", "Value": "1"}]})
    check(f"{mode}: PutObjectTagging replaces the set", tagset("tagged") == [("x", "1")])
    g = s3.get_object(Bucket=bucket, Key="tagged", **extra)
    check(f"{mode}: the bytes are untouched and the count follows",
          g.get("TagCount") == 1 and g["Body"].read() == b"tagged" and g["ETag"] == h["ETag"])
    s3.copy_object(Bucket=bucket, Key="tag-copy", CopySource={"Bucket": bucket, "Key": "tagged"},
                   **extra, **copy_extra)
    check(f"{mode}: CopyObject copies the source's current tags", tagset("tag-copy") == [("x", "1")])
    s3.copy_object(Bucket=bucket, Key="tag-copy", CopySource={"Bucket": bucket, "Key": "tagged"},
                   TaggingDirective="REPLACE", Tagging="a=b", **extra, **copy_extra)
    check(f"{mode}: CopyObject with REPLACE takes the request's", tagset("tag-copy") == [("a", "b")])
    s3.delete_object_tagging(Bucket=bucket, Key="tagged")
    check(f"{mode}: DeleteObjectTagging", tagset("tagged") == [] and
          "TagCount" not in s3.get_object(Bucket=bucket, Key="tagged", **extra))
    s3.put_object_tagging(Bucket=bucket, Key="tag-copy", Tagging={"TagSet": [{"Key": "old", "Value": "1"}]})
    s3.put_object(Bucket=bucket, Key="tag-copy", Body=b"new", **extra)
    check(f"{mode}: an object written over starts with its own tags", tagset("tag-copy") == [])
    up = s3.create_multipart_upload(Bucket=bucket, Key="tag-mp", Tagging="m=p", **extra)
    part = s3.upload_part(Bucket=bucket, Key="tag-mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p", **extra)
    s3.complete_multipart_upload(Bucket=bucket, Key="tag-mp", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}, **extra)
    check(f"{mode}: CreateMultipartUpload x-amz-tagging", tagset("tag-mp") == [("m", "p")])
    s3.put_object_tagging(Bucket=bucket, Key="tag-mp", Tagging={"TagSet": [{"Key": "kept", "Value": "yes"}]})
    eleven = "&".join(f"k{i}=v" for i in range(11))
    check(f"{mode}: 11 tags on PUT → BadRequest", error_code(lambda: s3.put_object(
        Bucket=bucket, Key="tag-bad", Body=b"x", Tagging=eleven, **extra)) == "BadRequest")
    check(f"{mode}: 11 tags in PutObjectTagging → BadRequest", error_code(lambda: s3.put_object_tagging(
        Bucket=bucket, Key="tagged", Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}))
          == "BadRequest")
    for bad in ({"Key": "aws:x", "Value": "v"}, {"Key": "k" * 129, "Value": "v"}, {"Key": "k", "Value": "v" * 257},
                {"Key": "k|", "Value": "v"}):
        check(f"{mode}: tag {bad['Key'][:10]}={bad['Value'][:10]} → InvalidTag", error_code(lambda: s3.put_object_tagging(
            Bucket=bucket, Key="tagged", Tagging={"TagSet": [bad]})) == "InvalidTag")
    check(f"{mode}: duplicate tag keys → InvalidTag", error_code(lambda: s3.put_object(
        Bucket=bucket, Key="tag-bad", Body=b"x", Tagging="a=1&a=2", **extra)) == "InvalidTag")
    check(f"{mode}: nothing stored by refused tags",
          error_code(lambda: s3.head_object(Bucket=bucket, Key="tag-bad", **extra)) in ("404", "NoSuchKey"))
    check(f"{mode}: GetObjectTagging of a missing key → NoSuchKey",
          error_code(lambda: s3.get_object_tagging(Bucket=bucket, Key="nope")) == "NoSuchKey")
    check(f"{mode}: PutObjectTagging of a missing key → NoSuchKey", error_code(lambda: s3.put_object_tagging(
        Bucket=bucket, Key="nope", Tagging={"TagSet": []})) == "NoSuchKey")
    check(f"{mode}: another user's GetObjectTagging → AccessDenied",
          error_code(lambda: bob.get_object_tagging(Bucket=bucket, Key="tagged")) == "AccessDenied")
    check(f"{mode}: a version other than null → NoSuchVersion", error_code(lambda: s3.get_object_tagging(
        Bucket=bucket, Key="tagged", VersionId="3HL4kqtJlcpXroDTDmJ")) == "NoSuchVersion")

    # A Range AWS ignores (not one byte range): the whole object, 200, as AWS and
    # RFC 9110; a valid range beyond the end stays 416.
    whole = os.urandom(5000)
    s3.put_object(Bucket=bucket, Key="ranges", Body=whole, **extra)
    for ignored in ("bytes=3-2", "bytes=0-1,5-6", "bytes=a-b", "items=0-10", "bytes="):
        g = s3.get_object(Bucket=bucket, Key="ranges", Range=ignored, ResponseContentType="x/ignored", **extra)
        check(f"{mode}: GET Range {ignored!r} → 200 with the whole object",
              g["ResponseMetadata"]["HTTPStatusCode"] == 200 and g["Body"].read() == whole
              and "ContentRange" not in g and g["ContentType"] == "x/ignored", str(g["ResponseMetadata"]))
    h = s3.head_object(Bucket=bucket, Key="ranges", Range="bytes=9-1", **extra)
    check(f"{mode}: HEAD with an ignored Range → 200, whole length",
          h["ResponseMetadata"]["HTTPStatusCode"] == 200 and h["ContentLength"] == 5000)
    check(f"{mode}: a valid Range beyond the end stays 416 InvalidRange", error_code(
        lambda: s3.get_object(Bucket=bucket, Key="ranges", Range="bytes=6000-", **extra)) == "InvalidRange")
    check(f"{mode}: an ignored Range does not bypass ownership", error_code(
        lambda: bob.get_object(Bucket=bucket, Key="ranges", Range="bytes=3-2", **extra)) == "AccessDenied")

    # CopyObject onto itself.
    copy_extra = {f"CopySource{k}": v for k, v in extra.items()}
    self_copy = error_code(lambda: s3.copy_object(Bucket=bucket, Key="obj",
                                                  CopySource={"Bucket": bucket, "Key": "obj"},
                                                  **copy_extra, **extra))
    if mode == "SSE-C":
        # SSE-C headers on the target are encryption attributes: how keys are rotated.
        check(f"{mode}: copy onto itself with SSE-C headers is allowed", self_copy is None, str(self_copy))
    else:
        check(f"{mode}: copy onto itself changing nothing → InvalidRequest", self_copy == "InvalidRequest",
              str(self_copy))
    s3.copy_object(Bucket=bucket, Key="obj", CopySource={"Bucket": bucket, "Key": "obj"},
                   MetadataDirective="REPLACE", Metadata={"new": "yes"}, **copy_extra, **extra)
    check(f"{mode}: copy onto itself with REPLACE changes the metadata",
          s3.head_object(Bucket=bucket, Key="obj", **extra)["Metadata"] == {"new": "yes"})
    check(f"{mode}: copy onto itself with metadata too large → MetadataTooLarge",
          error_code(lambda: s3.copy_object(Bucket=bucket, Key="obj", CopySource={"Bucket": bucket, "Key": "obj"},
                                            MetadataDirective="REPLACE", Metadata={"x": "y" * 2100},
                                            **copy_extra, **extra)) == "MetadataTooLarge")

    # partNumber on a multipart object and on a single one.
    parts = [os.urandom(5 * MiB), b"tail"]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", **extra)["UploadId"]
    done = [{"PartNumber": n + 1, "ETag": s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n + 1,
                                                            Body=p, **extra)["ETag"]} for n, p in enumerate(parts)]
    first = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": done},
                                         **extra)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": done},
                                         **extra)
    check(f"{mode}: CompleteMultipartUpload retried after success → 200, same ETag",
          again["ETag"] == first["ETag"], f"{again['ETag']} {first['ETag']}")
    check(f"{mode}: a retry naming other parts → NoSuchUpload",
          error_code(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                                          MultipartUpload={"Parts": done[:1]}, **extra))
          == "NoSuchUpload")
    check(f"{mode}: another upload id → NoSuchUpload",
          error_code(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId="0" * 32,
                                                          MultipartUpload={"Parts": done}, **extra))
          == "NoSuchUpload")
    completed[mode] = (bucket, uid, done, first["ETag"], extra)
    head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=2, **extra)
    check(f"{mode}: HEAD partNumber=2 → that part's length and the parts count",
          head["ContentLength"] == 4 and head.get("PartsCount") == 2
          and head["ResponseMetadata"]["HTTPHeaders"].get("content-range") == f"bytes {5 * MiB}-{5 * MiB + 3}/{5 * MiB + 4}",
          str({k: head.get(k) for k in ("ContentLength", "PartsCount")}))
    got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=1, **extra)
    check(f"{mode}: GET partNumber=1 → the first part and the parts count",
          got["Body"].read() == parts[0] and got.get("PartsCount") == 2)
    for call in ("head_object", "get_object"):
        status, code, _ = status_of(lambda: getattr(s3, call)(Bucket=bucket, Key="mp", PartNumber=3, **extra))
        check(f"{mode}: {call} partNumber beyond the last part → 416",
              status == 416 and (code in ("InvalidPartNumber", "416")), f"{status} {code}")
    head = s3.head_object(Bucket=bucket, Key="meta", PartNumber=1, **extra)
    check(f"{mode}: HEAD partNumber=1 of an object written whole: all of it, no parts count",
          head["ContentLength"] == 1 and "PartsCount" not in head)


def test_a_retried_completion_after_a_restart(srv, suite):
    check, completed = srv.check, suite.completed
    # A retried completion is recognised after a restart too (it is in the record).
    srv.__exit__(None, None, None)
    srv.__enter__()
    s3, bob = srv.boto3("alice"), srv.boto3("bob")
    for mode, (bucket, uid, done, etag, extra) in completed.items():
        again = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": done},
                                             **extra)
        check(f"{mode}: CompleteMultipartUpload retried after a restart → same ETag", again["ETag"] == etag)
        kept = [(t["Key"], t["Value"]) for t in s3.get_object_tagging(Bucket=bucket, Key="tag-mp")["TagSet"]]
        check(f"{mode}: tags set by PutObjectTagging survive a restart", kept == [("kept", "yes")], str(kept))
    suite.__dict__.update(bob=bob, s3=s3)


def test_create_bucket_owned_or_taken(srv, suite):
    bob, check, s3 = suite.bob, srv.check, suite.s3
    # CreateBucket of a bucket one owns, and of another user's.
    status, code, _ = status_of(lambda: s3.create_bucket(Bucket="compat-default"))
    check("CreateBucket of one's own bucket in us-east-1 → 200", status == 200 and code is None, f"{status} {code}")
    check("CreateBucket of one's own bucket with a location constraint → BucketAlreadyOwnedByYou",
          error_code(lambda: s3.create_bucket(Bucket="compat-default", CreateBucketConfiguration={
              "LocationConstraint": "eu-west-1"})) == "BucketAlreadyOwnedByYou")
    check("CreateBucket of another user's bucket → BucketAlreadyExists",
          error_code(lambda: bob.create_bucket(Bucket="compat-default")) == "BucketAlreadyExists")


def test_listings(srv, suite):
    check, s3 = srv.check, suite.s3
    # Listings.
    bucket = "compat-list"
    s3.create_bucket(Bucket=bucket)
    names = ["a b/c+d", "dir/x%y", "dir/z", "plain", "sp ace/é"]
    for k in names:
        s3.put_object(Bucket=bucket, Key=k, Body=b"1")
    auto = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    check("boto3's automatic encoding-type=url decodes back to the keys", auto == sorted(names), str(auto))
    explicit = s3.list_objects_v2(Bucket=bucket, EncodingType="url", Delimiter="/", Prefix="")
    check("explicit encoding-type=url: keys and prefixes stay URL-encoded",
          [o["Key"] for o in explicit["Contents"]] == ["plain"]
          and [p["Prefix"] for p in explicit["CommonPrefixes"]] == ["a%20b/", "dir/", "sp%20ace/"]
          and explicit.get("EncodingType") == "url", json.dumps(explicit.get("CommonPrefixes")))
    v1 = s3.list_objects(Bucket=bucket, EncodingType="url", Prefix="dir/")
    check("V1 with encoding-type=url", [o["Key"] for o in v1["Contents"]] == ["dir/x%25y", "dir/z"], str(v1["Contents"]))
    check("encoding-type other than url → InvalidArgument",
          error_code(lambda: s3.list_objects_v2(Bucket=bucket, EncodingType="base64")) == "InvalidArgument")
    for name, call in (("V1", lambda: s3.list_objects(Bucket=bucket, MaxKeys=0)),
                       ("V2", lambda: s3.list_objects_v2(Bucket=bucket, MaxKeys=0))):
        r = call()
        check(f"{name} max-keys=0: empty and complete",
              not r.get("Contents") and r["IsTruncated"] is False and not r.get("NextContinuationToken")
              and not r.get("NextMarker"), str({k: r.get(k) for k in ("IsTruncated", "KeyCount")}))
    v1 = s3.list_objects(Bucket=bucket)
    check("V1 echoes Marker as sent: empty when absent", v1.get("Marker") == "", repr(v1.get("Marker")))
    check("V1 names each object's Owner",
          all(o.get("Owner", {}).get("ID") == "alice-key" for o in v1["Contents"]), str(v1["Contents"][0]))
    v1 = s3.list_objects(Bucket=bucket, Marker="dir/z")
    check("V1 echoes a Marker sent", v1.get("Marker") == "dir/z" and v1["Contents"][0]["Key"] == "plain")
    v2 = s3.list_objects_v2(Bucket=bucket)
    check("V2 without fetch-owner: no Owner", all("Owner" not in o for o in v2["Contents"]))
    v2 = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)
    check("V2 with fetch-owner: Owner", all(o.get("Owner", {}).get("ID") == "alice-key" for o in v2["Contents"]))

    versions = s3.list_object_versions(Bucket=bucket)
    check("ListObjectVersions on an unversioned bucket: every object once, version null, latest",
          [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions["Versions"]]
          == [(k, "null", True) for k in sorted(names)] and not versions.get("DeleteMarkers"),
          str(versions.get("Versions", [])[:1]))
    seen, kw = [], {}
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=2, **kw)
        seen += [v["Key"] for v in page.get("Versions", [])]
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    check("ListObjectVersions pages by key-marker and version-id-marker", seen == sorted(names), str(seen))
    paged = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Delimiter="/",
                                                              PaginationConfig={"PageSize": 1})
    prefixes = [p["Prefix"] for page in paged for p in page.get("CommonPrefixes", [])]
    check("ListObjectVersions folds common prefixes across pages", prefixes == ["a b/", "dir/", "sp ace/"],
          str(prefixes))
    check("version-id-marker without key-marker → InvalidArgument",
          error_code(lambda: s3.list_object_versions(Bucket=bucket, VersionIdMarker="null")) == "InvalidArgument")
    suite.__dict__.update(bucket=bucket)


def test_ignored_range_presigned_and_anonymous(srv, suite):
    check, s3 = srv.check, suite.s3
    # An ignored Range on a presigned GET, and on an anonymous one.
    import requests
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "compat-default", "Key": "ranges"}, ExpiresIn=300)
    r = requests.get(url, headers={"Range": "bytes=0-1,5-6"}, verify=str(srv.ca), timeout=30)
    check("presigned GET with an ignored Range → 200, whole object", r.status_code == 200 and len(r.content) == 5000,
          f"{r.status_code} {r.text[:200]}")
    r = requests.get(f"{srv.endpoint}/compat-default/ranges", headers={"Range": "bytes=3-2"}, verify=str(srv.ca),
                     timeout=30)
    check("anonymous GET with an ignored Range → 403", r.status_code == 403, f"{r.status_code} {r.text[:200]}")


def test_what_other_suites_found(srv, suite):
    check, s3 = srv.check, suite.s3
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=str(srv.ca))

    def raw(method, url, headers, parts):
        """Sends `parts` of a body one after another; returns the connection's response."""
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=30)
        conn.putrequest(method, url.split(str(srv.port), 1)[1])
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        for part in parts:
            if callable(part):
                part()
            else:
                conn.send(part)
        return conn.getresponse()

    bucket = "compat-default"
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "encodings"}, ExpiresIn=300)
    r = raw("PUT", url, [("Content-Encoding", "gzip"), ("Content-Encoding", "br"), ("Content-Length", "3")], [b"abc"])
    check("two Content-Encoding lines are accepted", r.status == 200, f"{r.status} {r.read()[:300]}")
    check("… and answered joined", s3.head_object(Bucket=bucket, Key="encodings").get("ContentEncoding") == "gzip,br")

    def with_header(op, name, value):
        event = f"before-sign.s3.{op}"

        def add(request, **_):
            request.headers[name] = value
        s3.meta.events.register(event, add)
        try:
            fn = s3.get_object if op == "GetObject" else s3.head_object
            return status_of(lambda: fn(Bucket=bucket, Key="encodings"))[:2]
        finally:
            s3.meta.events.unregister(event, add)
    for op in ("GetObject", "HeadObject"):
        for name, value in (("x-amz-server-side-encryption", "AES256"),
                            ("x-amz-server-side-encryption-aws-kms-key-id", "k")):
            want = (400, "InvalidArgument") if op == "GetObject" else (400, "400")
            check(f"{op} with {name}: 400", with_header(op, name, value) == want, str(with_header(op, name, value)))

    # Listings without encoding-type (boto3 asks for url encoding unless told not to).
    from botocore.handlers import set_list_objects_encoding_type_url
    raw_s3 = srv.boto3("alice")
    for op in ("ListObjects", "ListObjectsV2"):
        raw_s3.meta.events.unregister(f"before-parameter-build.s3.{op}", set_list_objects_encoding_type_url)
    names = ["odd/a b+c%d", "odd/q&r<s>", "odd/x y/z"]
    for k in names:
        s3.put_object(Bucket=bucket, Key=k, Body=b"1")
    v1 = [o["Key"] for o in raw_s3.list_objects(Bucket=bucket, Prefix="odd/")["Contents"]]
    v2 = raw_s3.list_objects_v2(Bucket=bucket, Prefix="odd/", Delimiter=" ")
    check("ListObjects without encoding-type: keys as they are", v1 == names, str(v1))
    check("ListObjectsV2 without encoding-type: keys and prefixes as they are",
          [o["Key"] for o in v2["Contents"]] == ["odd/q&r<s>"]
          and v2.get("CommonPrefixes") == [{"Prefix": "odd/a "}, {"Prefix": "odd/x "}],
          str(v2))

    # Part 1 sent twice, the first upload finishing last: that one is the part.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="resent")["UploadId"]
    url = s3.generate_presigned_url("upload_part", ExpiresIn=300, Params={
        "Bucket": bucket, "Key": "resent", "UploadId": upload, "PartNumber": 1})
    second = {}

    def send_second():
        second["etag"] = s3.upload_part(Bucket=bucket, Key="resent", UploadId=upload, PartNumber=1,
                                        Body=b"BBBBBBBB")["ETag"]
    r = raw("PUT", url, [("Content-Length", "8")], [b"AAAA", send_second, b"AAAA"])
    first = r.getheader("ETag")
    check("both uploads of part 1 succeed", r.status == 200 and "etag" in second, f"{r.status}")
    listed = s3.list_parts(Bucket=bucket, Key="resent", UploadId=upload)["Parts"]
    check("the upload that finished last is the part", [p["ETag"] for p in listed] == [first], str(listed))
    check("completing with the other's ETag: 400 InvalidPart",
          status_of(lambda: s3.complete_multipart_upload(
              Bucket=bucket, Key="resent", UploadId=upload,
              MultipartUpload={"Parts": [{"ETag": second["etag"], "PartNumber": 1}]}))[:2] == (400, "InvalidPart"))
    s3.complete_multipart_upload(Bucket=bucket, Key="resent", UploadId=upload,
                                 MultipartUpload={"Parts": [{"ETag": first, "PartNumber": 1}]})
    check("… and with its own it completes", s3.get_object(Bucket=bucket, Key="resent")["Body"].read() == b"A" * 8)

    # Under SSE-C a part re-sent with the same bytes keeps its ETag (keyed by the customer
    # key, not the plaintext's MD5), so completing with the first answer's works.
    ssec_bucket, ssec = suite.modes["SSE-C"]
    upload = s3.create_multipart_upload(Bucket=ssec_bucket, Key="resent", **ssec)["UploadId"]
    body = os.urandom(5 * MiB)
    etags = [s3.upload_part(Bucket=ssec_bucket, Key="resent", UploadId=upload, PartNumber=1, Body=body,
                            **ssec)["ETag"] for _ in range(2)]
    other = s3.upload_part(Bucket=ssec_bucket, Key="other", UploadId=s3.create_multipart_upload(
        Bucket=ssec_bucket, Key="other", **ssec)["UploadId"], PartNumber=1, Body=body[:-1] + b"x", **ssec)["ETag"]
    check("an SSE-C part re-sent keeps its ETag", etags[0] == etags[1], str(etags))
    check("… which is not the plaintext's MD5, and differs for other bytes",
          etags[0].strip('"') != hashlib.md5(body).hexdigest() and other != etags[0])
    tail = s3.upload_part(Bucket=ssec_bucket, Key="resent", UploadId=upload, PartNumber=2, Body=b"tail",
                          **ssec)["ETag"]
    s3.complete_multipart_upload(Bucket=ssec_bucket, Key="resent", UploadId=upload, **ssec, MultipartUpload={
        "Parts": [{"ETag": etags[0], "PartNumber": 1}, {"ETag": tail, "PartNumber": 2}]})
    got = s3.get_object(Bucket=ssec_bucket, Key="resent", **ssec)["Body"].read()
    check("… and the upload completes with the first answer's ETag", got == body + b"tail")


def test_listings_through_the_aws_cli(srv, suite):
    bucket, check = suite.bucket, srv.check
    aws = str(pathlib.Path(sys.executable).parent / "aws")
    # The same through the aws cli.
    env = srv.client_env("alice")

    def cli(*args):
        r = subprocess.run([aws, "--endpoint-url", srv.endpoint, "s3api", *args, "--output", "json"],
                           env=env, capture_output=True, text=True, timeout=120)
        return r.returncode, (json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else r.stderr)

    rc, out = cli("list-object-versions", "--bucket", bucket, "--prefix", "dir/")
    check("aws s3api list-object-versions", rc == 0 and [(v["Key"], v["VersionId"]) for v in out["Versions"]]
          == [("dir/x%y", "null"), ("dir/z", "null")], str(out)[:300])
    rc, out = cli("list-objects", "--bucket", bucket, "--prefix", "sp")
    check("aws s3api list-objects decodes its URL-encoded keys",
          rc == 0 and [o["Key"] for o in out["Contents"]] == ["sp ace/é"], str(out)[:300])
    rc, out = cli("head-object", "--bucket", "compat-default", "--key", "mp", "--part-number", "1")
    check("aws s3api head-object --part-number", rc == 0 and out.get("PartsCount") == 2
          and out.get("ContentLength") == 5 * MiB, str(out)[:300])
    rc, out = cli("put-object-tagging", "--bucket", "compat-default", "--key", "tagged",
                  "--tagging", "TagSet=[{Key=cli,Value=set}]")
    rc2, out2 = cli("get-object-tagging", "--bucket", "compat-default", "--key", "tagged")
    check("aws s3api put-object-tagging and get-object-tagging", rc == 0 and rc2 == 0
          and out2.get("TagSet") == [{"Key": "cli", "Value": "set"}], str(out2)[:300])
    rc, out = cli("put-object", "--bucket", "compat-default", "--key", "m", "--metadata", "k=" + "v" * 2100)
    check("aws s3api put-object with too much metadata → MetadataTooLarge", rc != 0 and "MetadataTooLarge" in out,
          str(out)[:300])
