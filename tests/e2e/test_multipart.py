"""End-to-end check, with boto3 over HTTPS, of multipart uploads in every protection mode
(default AONT-RS, SSE-C, SSE-KP), UploadPartCopy, the multipart error rules, conditional
GET/HEAD, Content-MD5 and flexible checksum verification, and bucket encryption (aws:kms
mapped onto HSM root keys).
"""

import base64
import datetime
import hashlib
import os
import types

import pytest

from cipherstore_harness import error_code

STORES = ["fs", "dispersed-3of5", "dispersed-10of16", "cluster", "cluster-dispersed-3of5"]

MiB = 1 << 20


def md5_of_parts(parts):
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


def upload(s3, bucket, key, parts, create=None, **extra):
    """Uploads `parts` (`create`: extra CreateMultipartUpload arguments, `extra`: for
    both calls); returns (upload id, [{ETag, PartNumber}])."""
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key, **(create or {}), **extra)["UploadId"]
    done = []
    for i, p in enumerate(parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=i, Body=p, **extra)
        done.append({"ETag": r["ETag"], "PartNumber": i})
    return uid, done


@pytest.fixture(scope="module")
def suite(srv):
    """What every test of the module uses."""
    alice, bob = srv.boto3("alice"), srv.boto3("bob")
    marker = b"MULTIPART-PLAINTEXT-" + os.urandom(6).hex().encode()
    alice.create_bucket(Bucket="mpu")
    return types.SimpleNamespace(alice=alice, bob=bob, marker=marker)


def test_default_protection_three_parts_the_last_one(srv, suite):
    alice, bob, check, marker = suite.alice, suite.bob, srv.check, suite.marker
    # Default protection, three parts, the last one short.
    parts = [os.urandom(5 * MiB), marker * (5 * MiB // len(marker) + 1), os.urandom(MiB + 17)]
    whole = b"".join(parts)
    uid, done = upload(alice, "mpu", "big", parts, create={"ContentType": "application/x-mp", "Metadata": {"k": "v"}})
    listed = alice.list_parts(Bucket="mpu", Key="big", UploadId=uid)
    check("ListParts", [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(i, len(p)) for i, p in enumerate(parts, 1)],
          str(listed.get("Parts")))
    check("part ETags are MD5s", [p["ETag"].strip('"') for p in listed["Parts"]] == [hashlib.md5(p).hexdigest() for p in parts])
    page = alice.list_parts(Bucket="mpu", Key="big", UploadId=uid, MaxParts=2)
    check("ListParts pagination", page["IsTruncated"] and len(page["Parts"]) == 2 and page["NextPartNumberMarker"] == 2)
    uploads = alice.list_multipart_uploads(Bucket="mpu").get("Uploads", [])
    check("ListMultipartUploads", [(u["Key"], u["UploadId"]) for u in uploads] == [("big", uid)], str(uploads))
    check("other user cannot see uploads", error_code(lambda: bob.list_multipart_uploads(Bucket="mpu")) == "AccessDenied")
    check("other user cannot upload parts", error_code(lambda: bob.upload_part(
        Bucket="mpu", Key="big", UploadId=uid, PartNumber=4, Body=b"x")) == "AccessDenied")
    check("object invisible before Complete", error_code(lambda: alice.head_object(Bucket="mpu", Key="big")) in ("404", "NoSuchKey"))
    check("wrong part ETag is InvalidPart", error_code(lambda: alice.complete_multipart_upload(
        Bucket="mpu", Key="big", UploadId=uid,
        MultipartUpload={"Parts": [{"ETag": '"' + "0" * 32 + '"', "PartNumber": 1}]})) == "InvalidPart")
    check("unknown part is InvalidPart", error_code(lambda: alice.complete_multipart_upload(
        Bucket="mpu", Key="big", UploadId=uid,
        MultipartUpload={"Parts": [{"ETag": done[0]["ETag"], "PartNumber": 9}]})) == "InvalidPart")
    check("parts out of order", error_code(lambda: alice.complete_multipart_upload(
        Bucket="mpu", Key="big", UploadId=uid, MultipartUpload={"Parts": [done[1], done[0]]})) == "InvalidPartOrder")
    check("part number 0 refused", error_code(lambda: alice.upload_part(
        Bucket="mpu", Key="big", UploadId=uid, PartNumber=0, Body=b"x")) in ("InvalidArgument", "ParamValidation"))
    check("part number 10001 refused", error_code(lambda: alice.upload_part(
        Bucket="mpu", Key="big", UploadId=uid, PartNumber=10001, Body=b"x")) == "InvalidArgument")
    check("unknown upload id", error_code(lambda: alice.upload_part(
        Bucket="mpu", Key="big", UploadId="f" * 32, PartNumber=1, Body=b"x")) == "NoSuchUpload")
    check("malformed upload id", error_code(lambda: alice.upload_part(
        Bucket="mpu", Key="big", UploadId="../../etc", PartNumber=1, Body=b"x")) == "NoSuchUpload")
    done_resp = alice.complete_multipart_upload(Bucket="mpu", Key="big", UploadId=uid, MultipartUpload={"Parts": done})
    check("multipart ETag is MD5 of part MD5s -N", done_resp["ETag"].strip('"') == md5_of_parts(parts), done_resp["ETag"])
    got = alice.get_object(Bucket="mpu", Key="big")
    check("multipart GET", hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(whole).digest())
    check("multipart metadata", got["ContentType"] == "application/x-mp" and got["Metadata"] == {"k": "v"})
    check("multipart HEAD size", alice.head_object(Bucket="mpu", Key="big")["ContentLength"] == len(whole))
    a, b = 5 * MiB - 100, 10 * MiB + 100
    r = alice.get_object(Bucket="mpu", Key="big", Range=f"bytes={a}-{b}")
    check("range across three parts", r["Body"].read() == whole[a:b + 1])
    r = alice.get_object(Bucket="mpu", Key="big", PartNumber=2)
    check("GET partNumber=2", r["Body"].read() == parts[1] and r.get("PartsCount") == 3, str(r.get("PartsCount")))
    check("upload gone after Complete", alice.list_multipart_uploads(Bucket="mpu").get("Uploads", []) == [])
    check("ListParts after Complete", error_code(lambda: alice.list_parts(Bucket="mpu", Key="big", UploadId=uid)) == "NoSuchUpload")
    suite.__dict__.update(whole=whole)


def test_small_non_last_parts_abort(srv, suite):
    alice, check, marker = suite.alice, srv.check, suite.marker
    # Small non-last parts, abort.
    uid, done = upload(alice, "mpu", "small", [b"a" * 100, b"b" * 100])
    check("small non-last part is EntityTooSmall", error_code(lambda: alice.complete_multipart_upload(
        Bucket="mpu", Key="small", UploadId=uid, MultipartUpload={"Parts": done})) == "EntityTooSmall")
    one = alice.complete_multipart_upload(Bucket="mpu", Key="small", UploadId=uid, MultipartUpload={"Parts": done[:1]})
    check("a single small part may complete", alice.get_object(Bucket="mpu", Key="small")["Body"].read() == b"a" * 100
          and one["ETag"].strip('"').endswith("-1"))
    uid = alice.create_multipart_upload(Bucket="mpu", Key="aborted")["UploadId"]
    alice.upload_part(Bucket="mpu", Key="aborted", UploadId=uid, PartNumber=1, Body=marker * 1000)
    alice.abort_multipart_upload(Bucket="mpu", Key="aborted", UploadId=uid)
    check("abort removes the upload", alice.list_multipart_uploads(Bucket="mpu").get("Uploads", []) == []
          and error_code(lambda: alice.list_parts(Bucket="mpu", Key="aborted", UploadId=uid)) == "NoSuchUpload")
    check("aborted object absent", error_code(lambda: alice.head_object(Bucket="mpu", Key="aborted")) in ("404", "NoSuchKey"))


def test_upload_part_copy_from_ranges(srv, suite):
    alice, check, whole = suite.alice, srv.check, suite.whole
    # UploadPartCopy from ranges of the multipart object, and a re-uploaded part.
    uid = alice.create_multipart_upload(Bucket="mpu", Key="copied")["UploadId"]
    c1 = alice.upload_part_copy(Bucket="mpu", Key="copied", UploadId=uid, PartNumber=1,
                                CopySource={"Bucket": "mpu", "Key": "big"}, CopySourceRange=f"bytes=0-{6 * MiB - 1}")
    c2 = alice.upload_part_copy(Bucket="mpu", Key="copied", UploadId=uid, PartNumber=2,
                                CopySource={"Bucket": "mpu", "Key": "small"})
    check("copy range outside the source", error_code(lambda: alice.upload_part_copy(
        Bucket="mpu", Key="copied", UploadId=uid, PartNumber=3, CopySource={"Bucket": "mpu", "Key": "small"},
        CopySourceRange="bytes=0-100")) == "InvalidRange")
    alice.complete_multipart_upload(Bucket="mpu", Key="copied", UploadId=uid, MultipartUpload={"Parts": [
        {"ETag": c1["CopyPartResult"]["ETag"], "PartNumber": 1}, {"ETag": c2["CopyPartResult"]["ETag"], "PartNumber": 2}]})
    check("UploadPartCopy", alice.get_object(Bucket="mpu", Key="copied")["Body"].read() == whole[:6 * MiB] + b"a" * 100)
    alice.copy_object(Bucket="mpu", Key="flat", CopySource={"Bucket": "mpu", "Key": "big"})
    check("CopyObject of a multipart object", hashlib.md5(alice.get_object(Bucket="mpu", Key="flat")["Body"].read()).hexdigest()
          == hashlib.md5(whole).hexdigest())


def test_sse_c_multipart(srv, suite):
    alice, check, marker = suite.alice, srv.check, suite.marker
    # SSE-C multipart: the key on every part and on Complete.
    ckey, other = os.urandom(32), os.urandom(32)
    sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": ckey}
    sparts = [marker * (5 * MiB // len(marker) + 1), os.urandom(3 * MiB)]
    uid = alice.create_multipart_upload(Bucket="mpu", Key="secret", **sse)["UploadId"]
    check("SSE-C part without the key is 400", error_code(lambda: alice.upload_part(
        Bucket="mpu", Key="secret", UploadId=uid, PartNumber=1, Body=b"x")) == "InvalidRequest")
    check("SSE-C part with a wrong key is 403", error_code(lambda: alice.upload_part(
        Bucket="mpu", Key="secret", UploadId=uid, PartNumber=1, Body=b"x", SSECustomerAlgorithm="AES256",
        SSECustomerKey=other)) == "AccessDenied")
    sdone = []
    for i, p in enumerate(sparts, 1):
        r = alice.upload_part(Bucket="mpu", Key="secret", UploadId=uid, PartNumber=i, Body=p, **sse)
        check(f"SSE-C part {i} ETag is not its MD5", r["ETag"].strip('"') != hashlib.md5(p).hexdigest()
              and r.get("SSECustomerKeyMD5") == base64.b64encode(hashlib.md5(ckey).digest()).decode())
        sdone.append({"ETag": r["ETag"], "PartNumber": i})
    check("SSE-C Complete without the key is 400", error_code(lambda: alice.complete_multipart_upload(
        Bucket="mpu", Key="secret", UploadId=uid, MultipartUpload={"Parts": sdone})) == "InvalidRequest")
    alice.complete_multipart_upload(Bucket="mpu", Key="secret", UploadId=uid, MultipartUpload={"Parts": sdone}, **sse)
    swhole = b"".join(sparts)
    check("SSE-C multipart GET", alice.get_object(Bucket="mpu", Key="secret", **sse)["Body"].read() == swhole)
    r = alice.get_object(Bucket="mpu", Key="secret", Range=f"bytes={5 * MiB}-{5 * MiB + 99}", **sse)
    check("SSE-C multipart range GET", r["Body"].read() == swhole[5 * MiB:5 * MiB + 100])
    check("SSE-C multipart GET with a wrong key is 403", error_code(lambda: alice.get_object(
        Bucket="mpu", Key="secret", SSECustomerAlgorithm="AES256", SSECustomerKey=other)) == "AccessDenied")
    suite.__dict__.update(ckey=ckey)


def test_conditional_get_and_head(srv, suite):
    alice, check = suite.alice, srv.check
    # Conditional GET and HEAD.
    etag = alice.head_object(Bucket="mpu", Key="small")["ETag"]
    check("If-Match right", alice.get_object(Bucket="mpu", Key="small", IfMatch=etag)["Body"].read() == b"a" * 100)
    check("If-Match wrong is 412", error_code(lambda: alice.get_object(Bucket="mpu", Key="small", IfMatch='"x"')) == "PreconditionFailed")
    check("If-None-Match same is 304", error_code(lambda: alice.get_object(Bucket="mpu", Key="small", IfNoneMatch=etag)) == "304")
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
    check("If-Modified-Since future is 304", error_code(lambda: alice.get_object(Bucket="mpu", Key="small", IfModifiedSince=future)) == "304")
    check("If-Modified-Since past reads", alice.get_object(Bucket="mpu", Key="small", IfModifiedSince=past)["ContentLength"] == 100)
    check("If-Unmodified-Since past is 412", error_code(lambda: alice.get_object(Bucket="mpu", Key="small", IfUnmodifiedSince=past)) == "PreconditionFailed")
    check("HEAD If-None-Match is 304", error_code(lambda: alice.head_object(Bucket="mpu", Key="small", IfNoneMatch=etag)) == "304")
    check("copy source If-Match wrong is 412", error_code(lambda: alice.copy_object(
        Bucket="mpu", Key="c", CopySource={"Bucket": "mpu", "Key": "small"}, CopySourceIfMatch='"x"')) == "PreconditionFailed")


def test_digests(srv, suite):
    alice, check, marker = suite.alice, srv.check, suite.marker
    # Digests: Content-MD5 and flexible checksums, in headers and aws-chunked trailers.
    body = marker * 3000
    alice.put_object(Bucket="mpu", Key="md5", Body=body, ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode())
    check("Content-MD5 right", alice.get_object(Bucket="mpu", Key="md5")["Body"].read() == body)
    check("Content-MD5 wrong is BadDigest", error_code(lambda: alice.put_object(
        Bucket="mpu", Key="md5-bad", Body=body, ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())) == "BadDigest")
    check("nothing stored after BadDigest", error_code(lambda: alice.head_object(Bucket="mpu", Key="md5-bad")) in ("404", "NoSuchKey"))
    for alg in ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]:
        r = alice.put_object(Bucket="mpu", Key=f"sum-{alg}", Body=body, ChecksumAlgorithm=alg)
        check(f"{alg} trailer checksum accepted", r.get(f"Checksum{alg}") is not None
              and alice.get_object(Bucket="mpu", Key=f"sum-{alg}")["Body"].read() == body, str(r.get(f"Checksum{alg}")))
    # The algorithms S3 added later (botocore computes them with awscrt, in trailers):
    # accepted only if the server's digest agrees, returned with checksum mode.
    for alg in ["SHA512", "XXHASH64", "XXHASH3", "XXHASH128"]:
        r = alice.put_object(Bucket="mpu", Key=f"sum-{alg}", Body=body, ChecksumAlgorithm=alg)
        g = alice.get_object(Bucket="mpu", Key=f"sum-{alg}", ChecksumMode="ENABLED")
        check(f"{alg} trailer checksum verified, stored and returned", r.get(f"Checksum{alg}") is not None
              and g.get(f"Checksum{alg}") == r.get(f"Checksum{alg}") and g["Body"].read() == body,
              f"{r.get(f'Checksum{alg}')} {g.get(f'Checksum{alg}')}")
        uid = alice.create_multipart_upload(Bucket="mpu", Key=f"sum-part-{alg}")["UploadId"]
        p = alice.upload_part(Bucket="mpu", Key=f"sum-part-{alg}", UploadId=uid, PartNumber=1, Body=body,
                              ChecksumAlgorithm=alg)
        check(f"{alg} on a part", p.get(f"Checksum{alg}") == r.get(f"Checksum{alg}"), str(p.get(f"Checksum{alg}")))
        alice.abort_multipart_upload(Bucket="mpu", Key=f"sum-part-{alg}", UploadId=uid)
    # Multipart: each part's checksum is kept (sealed) and checked against the list
    # CompleteMultipartUpload sends; the object gets S3's composite checksum.
    ckey2 = os.urandom(32)
    ssec2 = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(ckey2).decode(),
             "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(ckey2).digest()).decode()}
    for label, extra in (("default", {}), ("SSE-C", ssec2)):
        mp_parts = [os.urandom(5 * MiB), marker * 7]
        uid = alice.create_multipart_upload(Bucket="mpu", Key=f"composite-{label}", ChecksumAlgorithm="SHA256",
                                            **extra)["UploadId"]
        done = []
        for i, p in enumerate(mp_parts, 1):
            r = alice.upload_part(Bucket="mpu", Key=f"composite-{label}", UploadId=uid, PartNumber=i, Body=p,
                                  ChecksumAlgorithm="SHA256", **extra)
            done.append({"ETag": r["ETag"], "PartNumber": i, "ChecksumSHA256": r["ChecksumSHA256"]})
        want = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in mp_parts)).digest()).decode() + "-2"
        bad = [dict(done[0], ChecksumSHA256=base64.b64encode(hashlib.sha256(b"x").digest()).decode()), done[1]]
        check(f"{label}: a part checksum listed wrong at completion → InvalidPart", error_code(
            lambda: alice.complete_multipart_upload(Bucket="mpu", Key=f"composite-{label}", UploadId=uid,
                                                    MultipartUpload={"Parts": bad}, **extra)) == "InvalidPart")
        r = alice.complete_multipart_upload(Bucket="mpu", Key=f"composite-{label}", UploadId=uid,
                                            MultipartUpload={"Parts": done}, **extra)
        check(f"{label}: CompleteMultipartUpload answers the composite SHA256",
              r.get("ChecksumSHA256") == want and r.get("ChecksumType") == "COMPOSITE", f"{r.get('ChecksumSHA256')} {want}")
        h = alice.head_object(Bucket="mpu", Key=f"composite-{label}", ChecksumMode="ENABLED", **extra)
        check(f"{label}: HEAD returns it with checksum mode", h.get("ChecksumSHA256") == want
              and h.get("ChecksumType") == "COMPOSITE", str({k: v for k, v in h.items() if "Checksum" in k}))
        g = alice.get_object(Bucket="mpu", Key=f"composite-{label}", ChecksumMode="ENABLED", **extra)
        check(f"{label}: GET returns it and the bytes", g.get("ChecksumSHA256") == want
              and g["Body"].read() == b"".join(mp_parts))
        again = alice.complete_multipart_upload(Bucket="mpu", Key=f"composite-{label}", UploadId=uid,
                                                MultipartUpload={"Parts": done}, **extra)
        check(f"{label}: a retried completion answers it too", again.get("ChecksumSHA256") == want)
    # Full-object CRCs (what aws cli v2 and other SDKs ask for): made from the parts'
    # CRCs, the value sent checked (awscrt computes it here over the whole object).
    import awscrt.checksums as crt
    for alg, whole_of in (("CRC32", crt.crc32), ("CRC32C", crt.crc32c), ("CRC64NVME", crt.crc64nvme)):
        mp_parts = [os.urandom(5 * MiB), marker * 11]
        width = 8 if alg == "CRC64NVME" else 4
        full = base64.b64encode(whole_of(b"".join(mp_parts)).to_bytes(width, "big")).decode()
        key = f"full-{alg}"
        uid = alice.create_multipart_upload(Bucket="mpu", Key=key, ChecksumAlgorithm=alg,
                                            ChecksumType="FULL_OBJECT")["UploadId"]
        done = []
        for i, p in enumerate(mp_parts, 1):
            r = alice.upload_part(Bucket="mpu", Key=key, UploadId=uid, PartNumber=i, Body=p, ChecksumAlgorithm=alg)
            done.append({"ETag": r["ETag"], "PartNumber": i})
        wrong = base64.b64encode(bytes(width)).decode()
        check(f"{alg}: a wrong full-object checksum at completion → BadDigest", error_code(
            lambda: alice.complete_multipart_upload(Bucket="mpu", Key=key, UploadId=uid, ChecksumType="FULL_OBJECT",
                                                    MultipartUpload={"Parts": done}, **{f"Checksum{alg}": wrong}))
              == "BadDigest")
        r = alice.complete_multipart_upload(Bucket="mpu", Key=key, UploadId=uid, ChecksumType="FULL_OBJECT",
                                            MultipartUpload={"Parts": done}, **{f"Checksum{alg}": full})
        check(f"{alg}: the full-object checksum is checked and answered", r.get(f"Checksum{alg}") == full
              and r.get("ChecksumType") == "FULL_OBJECT", f"{r.get(f'Checksum{alg}')} {full}")
        g = alice.get_object(Bucket="mpu", Key=key, ChecksumMode="ENABLED")
        check(f"{alg}: GET validates against it (botocore) and returns the bytes",
              g["Body"].read() == b"".join(mp_parts) and g.get(f"Checksum{alg}") == full)
    uid = alice.create_multipart_upload(Bucket="mpu", Key="full-sha", ChecksumAlgorithm="SHA256")["UploadId"]
    r = alice.upload_part(Bucket="mpu", Key="full-sha", UploadId=uid, PartNumber=1, Body=b"x", ChecksumAlgorithm="SHA256")
    check("a full-object SHA256 of a multipart upload is refused (S3 defines none)", error_code(
        lambda: alice.complete_multipart_upload(Bucket="mpu", Key="full-sha", UploadId=uid,
                                                ChecksumSHA256=base64.b64encode(hashlib.sha256(b"x").digest()).decode(),
                                                MultipartUpload={"Parts": [{"ETag": r["ETag"], "PartNumber": 1}]}))
          == "InvalidRequest")
    alice.abort_multipart_upload(Bucket="mpu", Key="full-sha", UploadId=uid)
    suite.__dict__.update(body=body)


def test_upload_file_crc32_on_every_part(srv, suite):
    alice, body, check = suite.alice, suite.body, srv.check
    # What boto3's upload_file does by default: CRC32 on every part, composite.
    from boto3.s3.transfer import TransferConfig
    src = srv.data / "upload-file.bin"
    src.write_bytes(os.urandom(12 * MiB))
    alice.upload_file(str(src), "mpu", "uploaded", Config=TransferConfig(multipart_threshold=5 * MiB,
                                                                         multipart_chunksize=5 * MiB))
    h = alice.head_object(Bucket="mpu", Key="uploaded", ChecksumMode="ENABLED")
    check("upload_file: the composite CRC32 of its three parts", h.get("ChecksumCRC32", "").endswith("-3")
          and h.get("ChecksumType") == "COMPOSITE", str({k: v for k, v in h.items() if "Checksum" in k}))
    sha512 = base64.b64encode(hashlib.sha512(body).digest()).decode()
    r = alice.put_object(Bucket="mpu", Key="sum-sha512-header", Body=body, ChecksumSHA512=sha512)
    check("SHA512 in a header, computed here independently", r.get("ChecksumSHA512") == sha512, str(r.get("ChecksumSHA512")))
    for alg, wrong in [("SHA512", base64.b64encode(hashlib.sha512(b"x").digest()).decode()),
                       ("XXHASH64", "AAAAAAAAAAA="), ("XXHASH3", "AAAAAAAAAAA="), ("XXHASH128", "AAAAAAAAAAAAAAAAAAAAAA==")]:
        check(f"wrong {alg} checksum is BadDigest", error_code(lambda: alice.put_object(
            Bucket="mpu", Key="sum-bad", Body=body, **{f"Checksum{alg}": wrong})) == "BadDigest")
    md5_sum = base64.b64encode(hashlib.md5(body).digest()).decode()
    raw = srv.boto3("alice")
    raw.meta.events.register("before-sign.s3.PutObject", lambda request, **_: request.headers.__setitem__(
        "x-amz-checksum-md5", md5_sum))
    r = raw.put_object(Bucket="mpu", Key="sum-md5", Body=body)
    check("MD5 as a flexible checksum in a header", r["ResponseMetadata"]["HTTPHeaders"].get("x-amz-checksum-md5") == md5_sum,
          str(r["ResponseMetadata"]["HTTPHeaders"]))
    odd = srv.boto3("alice")

    def blake9(request, **_):
        # botocore's headers keep duplicates: the SDK's own value goes first.
        del request.headers["x-amz-sdk-checksum-algorithm"]
        request.headers["x-amz-sdk-checksum-algorithm"] = "BLAKE9"
    odd.meta.events.register("before-sign.s3.PutObject", blake9)
    check("an unknown checksum algorithm is refused, not ignored", error_code(lambda: odd.put_object(
        Bucket="mpu", Key="sum-bad", Body=body)) == "InvalidRequest")
    odd2 = srv.boto3("alice")
    odd2.meta.events.register("before-sign.s3.PutObject", lambda request, **_: request.headers.__setitem__(
        "x-amz-checksum-blake9", "AAAA"))
    check("an unknown checksum header is refused, not ignored", error_code(lambda: odd2.put_object(
        Bucket="mpu", Key="sum-bad", Body=body)) == "InvalidRequest")
    check("wrong SHA256 checksum is BadDigest", error_code(lambda: alice.put_object(
        Bucket="mpu", Key="sum-bad", Body=body, ChecksumSHA256=base64.b64encode(hashlib.sha256(b"x").digest()).decode())) == "BadDigest")
    check("wrong CRC32 checksum is BadDigest", error_code(lambda: alice.put_object(
        Bucket="mpu", Key="sum-bad", Body=body, ChecksumCRC32="AAAAAA==")) == "BadDigest")
    # A client whose trailer checksum disagrees with the bytes it sent.
    import botocore.httpchecksum as hc
    honest = hc.Sha256Checksum.b64digest
    hc.Sha256Checksum.b64digest = lambda self: base64.b64encode(hashlib.sha256(b"not the body").digest()).decode()
    try:
        check("wrong trailer checksum is BadDigest", error_code(lambda: alice.put_object(
            Bucket="mpu", Key="sum-bad", Body=body, ChecksumAlgorithm="SHA256")) == "BadDigest")
        uid = alice.create_multipart_upload(Bucket="mpu", Key="sum-bad")["UploadId"]
        check("wrong trailer checksum on a part is BadDigest", error_code(lambda: alice.upload_part(
            Bucket="mpu", Key="sum-bad", UploadId=uid, PartNumber=1, Body=body, ChecksumAlgorithm="SHA256")) == "BadDigest")
        check("no part stored after BadDigest", alice.list_parts(Bucket="mpu", Key="sum-bad", UploadId=uid).get("Parts", []) == [])
        alice.abort_multipart_upload(Bucket="mpu", Key="sum-bad", UploadId=uid)
    finally:
        hc.Sha256Checksum.b64digest = honest
    check("nothing stored after a checksum mismatch", error_code(lambda: alice.head_object(Bucket="mpu", Key="sum-bad")) in ("404", "NoSuchKey"))


def test_bucket_encryption(srv, suite):
    alice, bob, check, marker = suite.alice, suite.bob, srv.check, suite.marker
    # Bucket encryption: aws:kms onto HSM root keys.
    crn = srv.create_root("kms-root")
    crn2 = srv.create_root("other-root")
    alice.create_bucket(Bucket="kms")
    check("no encryption config yet", error_code(lambda: alice.get_bucket_encryption(Bucket="kms"))
          == "ServerSideEncryptionConfigurationNotFoundError")
    r = alice.put_object(Bucket="kms", Key="x", Body=b"x", ServerSideEncryption="aws:kms")
    check("aws:kms in a bucket without a root key: the instance default key",
          r.get("SSEKMSKeyId", "").startswith("crn:") and r["SSEKMSKeyId"] not in (crn, crn2), str(r))
    alice.delete_object(Bucket="kms", Key="x")
    check("unknown KMS key is 400", error_code(lambda: alice.put_bucket_encryption(
        Bucket="kms", ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn.replace(crn[-12:], "000000000000")}}]})) == "KMS.NotFoundException")
    plain_before = alice.put_object(Bucket="kms", Key="before", Body=b"before")
    check("objects before the rule are not KMS", "ServerSideEncryption" not in plain_before)
    alice.put_bucket_encryption(Bucket="kms", ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}, "BucketKeyEnabled": True}]})
    rule = alice.get_bucket_encryption(Bucket="kms")["ServerSideEncryptionConfiguration"]["Rules"][0]
    check("GetBucketEncryption", rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}, str(rule))
    r = alice.put_object(Bucket="kms", Key="doc", Body=marker * 10)
    check("default aws:kms on PUT", r.get("ServerSideEncryption") == "aws:kms" and r.get("SSEKMSKeyId") == crn, str(r))
    g = alice.get_object(Bucket="kms", Key="doc")
    check("aws:kms GET", g["Body"].read() == marker * 10 and g.get("SSEKMSKeyId") == crn)
    r = alice.put_object(Bucket="kms", Key="doc2", Body=b"named", ServerSideEncryption="aws:kms", SSEKMSKeyId=crn)
    check("explicit aws:kms with the bucket's key", r.get("SSEKMSKeyId") == crn)
    r = alice.put_object(Bucket="kms", Key="x", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=crn2)
    check("aws:kms with another root key than the bucket default (as AWS)", r.get("SSEKMSKeyId") == crn2, str(r))
    alice.delete_object(Bucket="kms", Key="x")
    uid, done = upload(alice, "kms", "mp-kms", [os.urandom(5 * MiB), b"end"])
    alice.complete_multipart_upload(Bucket="kms", Key="mp-kms", UploadId=uid, MultipartUpload={"Parts": done})
    g = alice.get_object(Bucket="kms", Key="mp-kms")
    check("SSE-KP multipart", len(g["Body"].read()) == 5 * MiB + 3 and g.get("SSEKMSKeyId") == crn)
    srv.keyctl("disable", "kms-root")
    import time
    time.sleep(1.2)
    check("suspended root refuses multipart start", error_code(lambda: alice.create_multipart_upload(Bucket="kms", Key="y")) == "AccessDenied")
    check("suspended root refuses multipart read", error_code(lambda: alice.get_object(Bucket="kms", Key="mp-kms")) == "AccessDenied")
    srv.keyctl("enable", "kms-root")
    time.sleep(1.2)
    alice.delete_bucket_encryption(Bucket="kms")
    check("DeleteBucketEncryption turns the default off", error_code(lambda: alice.get_bucket_encryption(Bucket="kms"))
          == "ServerSideEncryptionConfigurationNotFoundError")
    r = alice.put_object(Bucket="kms", Key="after", Body=b"after")
    check("new objects no longer KMS", "ServerSideEncryption" not in r)
    check("old KMS objects still readable", alice.get_object(Bucket="kms", Key="doc")["Body"].read() == marker * 10)
    check("other user cannot read the rule", error_code(lambda: bob.get_bucket_encryption(Bucket="kms")) == "AccessDenied")


def test_nothing_under_the_data_directory_holds_plaintext(srv, suite):
    check, ckey, marker = srv.check, suite.ckey, suite.marker
    # Nothing under the data directory holds plaintext or the customer key.
    files = [p for p in (srv.data / "d").rglob("*") if p.is_file()]
    check("no plaintext on disk", [p for p in files if marker in p.read_bytes()] == [])
    forms = [ckey, ckey.hex().encode(), base64.b64encode(ckey)]
    check("no customer key on disk", [p for p in files if any(f in p.read_bytes() for f in forms)] == [])
    check("no upload leftovers", [p for p in (srv.data / "d").rglob("uploads/*")] == [])
