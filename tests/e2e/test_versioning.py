"""S3 versioning with boto3, in every protection mode (default
AONT-RS, SSE-C, SSE-KMS under an HSM root key, SSE-S3): Put/GetBucketVersioning; version
ids on PUT, copy and CompleteMultipartUpload; GET, HEAD, DELETE, copy and tagging by
versionId; delete markers (404 with x-amz-delete-marker, 405 when named); the null
version of objects written before versioning and in suspended buckets; ListObjectVersions
with prefix, delimiter, key and version-id markers, max-keys and encoding-type;
DeleteObjects with versions; concurrent PUTs of one key each keeping their version;
buckets holding versions are not empty; malformed and absent version ids. On the
filesystem, dispersed and cluster stores.
"""

import concurrent.futures
import os

import botocore
import pytest

from cipherstore_harness import error_code, protection_modes

STORES = ["fs", "dispersed-3of5", "cluster"]
MODES = ["default", "SSE-C", "SSE-KMS", "SSE-S3"]

MiB = 1 << 20


def response_of(fn):
    """(HTTP status, headers) of a refused call."""
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        meta = e.response["ResponseMetadata"]
        return meta["HTTPStatusCode"], meta.get("HTTPHeaders", {})
    return 200, {}


def versions_of(s3, bucket, **kw):
    """Every (key, version id, latest, is marker) ListObjectVersions gives, in order."""
    r = s3.list_object_versions(Bucket=bucket, **kw)
    entries = [(v["Key"], v["VersionId"], v["IsLatest"], False, v["LastModified"]) for v in r.get("Versions", [])]
    entries += [(m["Key"], m["VersionId"], m["IsLatest"], True, m["LastModified"]) for m in r.get("DeleteMarkers", [])]
    # The two lists interleave by key then position: AWS orders by key, newest first.
    return entries, r


def listed(s3, bucket, prefix=""):
    """(key, version id, latest, marker) of every version under `prefix`, in listing order
    (paged 1000 at a time; both lists merged back in order by a second listing of one
    entry per page)."""
    out = []
    key_marker, version_marker = None, None
    while True:
        kw = {"Prefix": prefix, "MaxKeys": 1}
        if key_marker is not None:
            kw["KeyMarker"] = key_marker
            if version_marker:
                kw["VersionIdMarker"] = version_marker
        r = s3.list_object_versions(Bucket=bucket, **kw)
        for v in r.get("Versions", []):
            out.append((v["Key"], v["VersionId"], v["IsLatest"], False))
        for m in r.get("DeleteMarkers", []):
            out.append((m["Key"], m["VersionId"], m["IsLatest"], True))
        if not r["IsTruncated"]:
            return out
        key_marker, version_marker = r["NextKeyMarker"], r.get("NextVersionIdMarker")


def scenario(srv, s3, mode, bucket, put_kw, get_kw, copy_kw):
    check = srv.check
    say = f"{mode}:"
    s3.create_bucket(Bucket=bucket)
    check(f"{say} a new bucket has no versioning status", "Status" not in s3.get_bucket_versioning(Bucket=bucket))
    r = s3.put_object(Bucket=bucket, Key="k", Body=b"zero", **put_kw)
    check(f"{say} PUT in a bucket never versioned names no version", "VersionId" not in r, str(r.get("VersionId")))
    check(f"{say} its object lists as the null version",
          listed(s3, bucket, "k") == [("k", "null", True, False)], str(listed(s3, bucket, "k")))

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    check(f"{say} versioning Enabled", s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled")
    check(f"{say} the object written before is the null version",
          s3.get_object(Bucket=bucket, Key="k", **get_kw).get("VersionId") == "null")
    id1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one", Tagging="v=1", **put_kw)["VersionId"]
    id2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two", **put_kw)["VersionId"]
    check(f"{say} each PUT makes a new version id", id1 != id2 and "null" not in (id1, id2) and len(id1) == 32,
          f"{id1} {id2}")
    got = s3.get_object(Bucket=bucket, Key="k", **get_kw)
    check(f"{say} GET serves the newest version and names it",
          got["Body"].read() == b"two" and got["VersionId"] == id2, got.get("VersionId"))
    for vid, body in ((id1, b"one"), ("null", b"zero"), (id2, b"two")):
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=vid, **get_kw)
        check(f"{say} GET versionId={vid[:8]} serves that version",
              got["Body"].read() == body and got["VersionId"] == vid, got.get("VersionId"))
        head = s3.head_object(Bucket=bucket, Key="k", VersionId=vid, **get_kw)
        check(f"{say} HEAD versionId={vid[:8]}", head["ContentLength"] == len(body) and head["VersionId"] == vid)
    check(f"{say} ranged GET of an older version",
          s3.get_object(Bucket=bucket, Key="k", VersionId=id1, Range="bytes=1-2", **get_kw)["Body"].read() == b"ne")
    tags = s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=id1)
    check(f"{say} an older version keeps its tags",
          tags["TagSet"] == [{"Key": "v", "Value": "1"}] and tags["VersionId"] == id1, str(tags))
    check(f"{say} versions list newest first",
          listed(s3, bucket, "k") == [("k", id2, True, False), ("k", id1, False, False), ("k", "null", False, False)],
          str(listed(s3, bucket, "k")))

    # Delete markers.
    r = s3.delete_object(Bucket=bucket, Key="k")
    marker = r.get("VersionId")
    check(f"{say} DELETE makes a delete marker", r.get("DeleteMarker") is True and marker not in (None, "null"), str(r))
    status, headers = response_of(lambda: s3.get_object(Bucket=bucket, Key="k", **get_kw))
    check(f"{say} GET of a deleted key: 404 with x-amz-delete-marker",
          status == 404 and headers.get("x-amz-delete-marker") == "true"
          and headers.get("x-amz-version-id") == marker, f"{status} {headers}")
    check(f"{say} HEAD of a deleted key: 404", response_of(lambda: s3.head_object(Bucket=bucket, Key="k", **get_kw))[0] == 404)
    status, headers = response_of(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=marker))
    check(f"{say} GET of the marker by its id: 405", status == 405 and headers.get("x-amz-delete-marker") == "true",
          f"{status} {headers}")
    check(f"{say} older versions still read",
          s3.get_object(Bucket=bucket, Key="k", VersionId=id1, **get_kw)["Body"].read() == b"one")
    check(f"{say} the deleted key is not listed",
          "k" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])])
    check(f"{say} the marker lists as latest",
          listed(s3, bucket, "k")[0] == ("k", marker, True, True), str(listed(s3, bucket, "k")))
    r = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    check(f"{say} removing the marker names it", r.get("DeleteMarker") is True and r.get("VersionId") == marker, str(r))
    check(f"{say} the newest version is current again",
          s3.get_object(Bucket=bucket, Key="k", **get_kw)["Body"].read() == b"two")
    s3.delete_object(Bucket=bucket, Key="k", VersionId=id2)
    check(f"{say} removing the current version promotes the next",
          s3.get_object(Bucket=bucket, Key="k", **get_kw)["Body"].read() == b"one")
    check(f"{say} a removed version is gone",
          error_code(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=id2, **get_kw)) == "NoSuchVersion")

    # Copy from a version; the copy is a version of its own.
    r = s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "k", "VersionId": "null"},
                       **copy_kw)
    check(f"{say} copy from the null version", r.get("CopySourceVersionId") == "null"
          and len(r.get("VersionId", "")) == 32, str({k: r.get(k) for k in ("VersionId", "CopySourceVersionId")}))
    check(f"{say} the copy has that version's bytes",
          s3.get_object(Bucket=bucket, Key="copied", **get_kw)["Body"].read() == b"zero")

    # Multipart.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", **put_kw)["UploadId"]
    parts = [os.urandom(5 * MiB), os.urandom(1234)]
    # Parts and completion carry only an SSE-C key (get_kw), as S3 asks.
    done = [{"PartNumber": n + 1, "ETag": s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n + 1,
                                                            Body=p, **get_kw)["ETag"]} for n, p in enumerate(parts)]
    r = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": done}, **get_kw)
    mp_id = r.get("VersionId")
    check(f"{say} CompleteMultipartUpload names the version", mp_id and len(mp_id) == 32, str(mp_id))
    check(f"{say} GET the multipart version by id",
          s3.get_object(Bucket=bucket, Key="mp", VersionId=mp_id, **get_kw)["Body"].read() == b"".join(parts))

    # Suspended: writes make the null version, replacing the one there was.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    check(f"{say} versioning Suspended", s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Suspended")
    r = s3.put_object(Bucket=bucket, Key="k", Body=b"s1", **put_kw)
    check(f"{say} PUT in a suspended bucket makes the null version", r.get("VersionId") == "null", str(r.get("VersionId")))
    s3.put_object(Bucket=bucket, Key="k", Body=b"s2", **put_kw)
    check(f"{say} it replaces the null version; other versions stay",
          listed(s3, bucket, "k") == [("k", "null", True, False), ("k", id1, False, False)], str(listed(s3, bucket, "k")))
    check(f"{say} the null version is the last written",
          s3.get_object(Bucket=bucket, Key="k", VersionId="null", **get_kw)["Body"].read() == b"s2")
    r = s3.delete_object(Bucket=bucket, Key="k")
    check(f"{say} DELETE in a suspended bucket: a null delete marker",
          r.get("DeleteMarker") is True and r.get("VersionId") == "null", str(r))
    check(f"{say} the null marker replaced the null version",
          listed(s3, bucket, "k") == [("k", "null", True, True), ("k", id1, False, False)], str(listed(s3, bucket, "k")))

    # DeleteObjects with versions.
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": id1},
                                                             {"Key": "k", "VersionId": "null"}]})
    deleted = sorted((d["Key"], d.get("VersionId"), d.get("DeleteMarker", False)) for d in r.get("Deleted", []))
    check(f"{say} DeleteObjects removes named versions",
          deleted == sorted([("k", id1, False), ("k", "null", True)]) and not r.get("Errors"), str(r))
    check(f"{say} no version of k is left", listed(s3, bucket, "k") == [], str(listed(s3, bucket, "k")))

    # Errors.
    check(f"{say} a malformed version id: InvalidArgument",
          error_code(lambda: s3.get_object(Bucket=bucket, Key="mp", VersionId="../../x", **get_kw)) == "InvalidArgument")
    check(f"{say} another service's version id: NoSuchVersion",
          error_code(lambda: s3.get_object(Bucket=bucket, Key="mp", VersionId="3HL4kqtJlcpXroDTDmJ", **get_kw))
          == "NoSuchVersion")
    check(f"{say} an absent version id: NoSuchVersion",
          error_code(lambda: s3.get_object(Bucket=bucket, Key="mp", VersionId="0" * 32, **get_kw)) == "NoSuchVersion")
    check(f"{say} a bucket holding versions is not empty",
          error_code(lambda: s3.delete_bucket(Bucket=bucket)) == "BucketNotEmpty")
    for key, vid, _, _ in listed(s3, bucket):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=vid)
    s3.delete_bucket(Bucket=bucket)
    check(f"{say} emptied of versions, the bucket goes", error_code(lambda: s3.head_bucket(Bucket=bucket)) in ("404", "NoSuchBucket"))


def listings(srv, s3):
    """ListObjectVersions' parameters, paging and concurrency (protection does not matter)."""
    check = srv.check
    s3.create_bucket(Bucket="listing")
    s3.put_bucket_versioning(Bucket="listing", VersioningConfiguration={"Status": "Enabled"})
    made = {}
    for key, n in (("p/a", 5), ("p/b", 3), ("q", 1), ("s p", 2)):
        made[key] = [s3.put_object(Bucket="listing", Key=key, Body=f"{key} {i}".encode())["VersionId"] for i in range(n)]
    expected = [(k, v, i == 0, False) for k in sorted(made) for i, v in enumerate(reversed(made[k]))]
    check("listing: every version, paged one at a time", listed(s3, "listing") == expected, str(listed(s3, "listing")))
    whole, r = versions_of(s3, "listing")
    check("listing: one page holds them all", len(whole) == 11 and not r["IsTruncated"])
    _, r = versions_of(s3, "listing", Delimiter="/")
    check("listing: delimiter folds p/ into a common prefix",
          [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["p/"]
          and [v["Key"] for v in r.get("Versions", [])] == ["q", "s p", "s p"], str(r.get("Versions")))
    _, r = versions_of(s3, "listing", Prefix="p/", KeyMarker="p/a", MaxKeys=2)
    check("listing: a key marker resumes after that key's versions",
          [v["VersionId"] for v in r["Versions"]] == list(reversed(made["p/b"]))[:2] and r["IsTruncated"], str(r))
    _, r = versions_of(s3, "listing", KeyMarker="p/a", VersionIdMarker=made["p/a"][3], MaxKeys=3)
    check("listing: a version-id marker resumes after that version",
          [v["VersionId"] for v in r["Versions"]] == [made["p/a"][2], made["p/a"][1], made["p/a"][0]], str(r))
    _, r = versions_of(s3, "listing", Prefix="s", EncodingType="url")
    check("listing: encoding-type=url", [v["Key"] for v in r["Versions"]] == ["s%20p", "s%20p"], str(r.get("Versions")))
    check("listing: a version-id marker needs a key marker",
          error_code(lambda: s3.list_object_versions(Bucket="listing", VersionIdMarker=made["q"][0])) == "InvalidArgument")

    # 16 PUTs of one key at once: 16 versions, one latest.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: s3.put_object(Bucket="listing", Key="hot", Body=os.urandom(1000))["VersionId"],
                            range(16)))
    hot = listed(s3, "listing", "hot")
    check("concurrency: every concurrent PUT keeps its version",
          sorted(v for _, v, _, _ in hot) == sorted(ids) and len(set(ids)) == 16, str(hot))
    check("concurrency: one of them is latest", sum(1 for e in hot if e[2]) == 1)
    s3.delete_object(Bucket="listing", Key="hot")
    check("concurrency: the plain listing skips the deleted key",
          "hot" not in [o["Key"] for o in s3.list_objects_v2(Bucket="listing").get("Contents", [])])


@pytest.fixture(scope="module")
def s3(srv):
    return srv.boto3("alice")


@pytest.fixture(scope="module")
def modes(srv):
    return protection_modes(srv.create_root("versions-root"), "ver")


@pytest.mark.parametrize("mode", MODES)
def test_versions_in_each_protection_mode(srv, s3, modes, mode):
    scenario(srv, s3, mode, *modes[mode])


def test_listings_markers_and_concurrent_puts(srv, s3):
    listings(srv, s3)
