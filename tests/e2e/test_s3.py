"""End-to-end check of the S3 endpoint with boto3 over HTTPS: starts `cipherstore serve`
on a free loopback port with two users and its own SoftHSM2 token, drives it as a client
would (default protection, SSE-C, SSE-KP buckets through the root key lifecycle), and
checks the bytes by hash, the errors S3 clients rely on, ownership between users, and that
no plaintext or customer key reaches the data directory.
"""

import base64
import datetime
import hashlib
import os
import time

from cipherstore_harness import error_code

STORES = ["fs", "dispersed-3of5", "dispersed-10of16", "cluster", "cluster-dispersed-3of5"]


def test_buckets_owners_and_objects(srv, suite):
    check = srv.check
    data, ca, endpoint, keyctl = srv.data, srv.ca, srv.endpoint, srv.keyctl
    crn = srv.create_root("e2e-root")
    alice, bob = srv.boto3("alice"), srv.boto3("bob")

    def client(ak, sk):
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                            region_name="us-east-1", verify=str(ca),
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    alice.create_bucket(Bucket="photos")
    check("owner lists bucket", [b["Name"] for b in alice.list_buckets()["Buckets"]] == ["photos"])
    check("other user does not see it", bob.list_buckets()["Buckets"] == [])
    check("recreate own bucket: 200 in us-east-1 (AWS's legacy rule)",
          error_code(lambda: alice.create_bucket(Bucket="photos")) is None)
    check("recreate own bucket elsewhere: BucketAlreadyOwnedByYou",
          error_code(lambda: alice.create_bucket(Bucket="photos", CreateBucketConfiguration={
              "LocationConstraint": "eu-de"})) == "BucketAlreadyOwnedByYou")
    check("take another's bucket", error_code(lambda: bob.create_bucket(Bucket="photos")) == "BucketAlreadyExists")
    check("invalid bucket name", error_code(lambda: alice.create_bucket(Bucket="Bad_Name")) in ("InvalidBucketName",))

    marker = b"PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    blob = marker * 200_000  # 5+ MB, readable marker repeated
    put = alice.put_object(Bucket="photos", Key="dir/big.bin", Body=blob, ContentType="application/x-test",
                           Metadata={"colour": "blue"})
    check("ETag is the MD5 of the plaintext", put["ETag"].strip('"') == hashlib.md5(blob).hexdigest())
    got = alice.get_object(Bucket="photos", Key="dir/big.bin")
    body = got["Body"].read()
    check("GET returns the bytes", hashlib.sha256(body).digest() == hashlib.sha256(blob).digest())
    check("content type round trip", got["ContentType"] == "application/x-test")
    check("user metadata round trip", got["Metadata"] == {"colour": "blue"})
    r = alice.get_object(Bucket="photos", Key="dir/big.bin", Range="bytes=1000000-2000000")
    check("range GET", r["Body"].read() == blob[1000000:2000001] and r["ContentRange"].startswith("bytes 1000000-2000000/"))
    r = alice.get_object(Bucket="photos", Key="dir/big.bin", Range="bytes=-10")
    check("suffix range GET", r["Body"].read() == blob[-10:])
    check("unsatisfiable range", error_code(lambda: alice.get_object(Bucket="photos", Key="dir/big.bin",
                                                                      Range=f"bytes={len(blob)}-")) == "InvalidRange")
    check("HEAD size", alice.head_object(Bucket="photos", Key="dir/big.bin")["ContentLength"] == len(blob))
    suite.__dict__.update(alice=alice, blob=blob, bob=bob, ca=ca, client=client, crn=crn, data=data, endpoint=endpoint, keyctl=keyctl, marker=marker)


def test_standard_headers(srv, suite):
    alice, bob, ca, check, client, endpoint = suite.alice, suite.bob, suite.ca, srv.check, suite.client, suite.endpoint
    # Standard headers: stored with the object, returned by GET and HEAD, carried by
    # copies (replaced with REPLACE) and multipart uploads.
    expires = datetime.datetime(2037, 10, 21, 7, 28, tzinfo=datetime.timezone.utc)
    std = {"CacheControl": "max-age=3600", "ContentDisposition": 'attachment; filename="r.txt"',
           "ContentEncoding": "gzip", "ContentLanguage": "de-CH", "Expires": expires,
           "WebsiteRedirectLocation": "/elsewhere.html"}

    def std_headers_of(resp):
        return {k: resp.get(k) for k in std}

    alice.put_object(Bucket="photos", Key="std", Body=b"headers", ContentType="text/plain", **std)
    got = alice.get_object(Bucket="photos", Key="std")
    check("standard headers on GET", std_headers_of(got) == std and got["ContentType"] == "text/plain",
          str(std_headers_of(got)))
    got["Body"].read()
    check("standard headers on HEAD", std_headers_of(alice.head_object(Bucket="photos", Key="std")) == std)
    alice.copy_object(Bucket="photos", Key="std-copy", CopySource={"Bucket": "photos", "Key": "std"})
    check("copy carries standard headers", std_headers_of(alice.head_object(Bucket="photos", Key="std-copy")) == std)
    alice.copy_object(Bucket="photos", Key="std-replaced", CopySource={"Bucket": "photos", "Key": "std"},
                      MetadataDirective="REPLACE", CacheControl="no-store")
    replaced = alice.head_object(Bucket="photos", Key="std-replaced")
    check("copy with REPLACE replaces standard headers", replaced.get("CacheControl") == "no-store"
          and replaced.get("ContentDisposition") is None and replaced.get("Expires") is None)
    uid = alice.create_multipart_upload(Bucket="photos", Key="std-mp", **std)["UploadId"]
    etag = alice.upload_part(Bucket="photos", Key="std-mp", UploadId=uid, PartNumber=1, Body=b"part")["ETag"]
    alice.complete_multipart_upload(Bucket="photos", Key="std-mp", UploadId=uid,
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    check("multipart carries standard headers", std_headers_of(alice.head_object(Bucket="photos", Key="std-mp")) == std)
    alice.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": k} for k in ("std", "std-copy", "std-replaced", "std-mp")]})
    empty = alice.put_object(Bucket="photos", Key="empty", Body=b"")
    check("empty object", alice.get_object(Bucket="photos", Key="empty")["Body"].read() == b""
          and empty["ETag"].strip('"') == hashlib.md5(b"").hexdigest())
    for k in ["dir/a", "dir/sub/b", "dir/sub/c", "z", "ключ/数据", "../../escape"]:
        alice.put_object(Bucket="photos", Key=k, Body=k.encode())
    check("hostile key round trip", alice.get_object(Bucket="photos", Key="../../escape")["Body"].read() == b"../../escape")
    listing = alice.list_objects_v2(Bucket="photos", Prefix="dir/", Delimiter="/")
    check("delimiter listing", [o["Key"] for o in listing.get("Contents", [])] == ["dir/a", "dir/big.bin"]
          and [p["Prefix"] for p in listing.get("CommonPrefixes", [])] == ["dir/sub/"], str(listing.get("Contents")))
    keys, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = alice.list_objects_v2(Bucket="photos", MaxKeys=3, **kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    want = sorted(["dir/big.bin", "empty", "dir/a", "dir/sub/b", "dir/sub/c", "z", "ключ/数据", "../../escape"],
                  key=lambda k: k.encode())
    check("paginated listing in byte order", keys == want, str(keys))
    paginator = alice.get_paginator("list_objects_v2")
    check("boto3 paginator", sum(len(p.get("Contents", [])) for p in paginator.paginate(Bucket="photos", PaginationConfig={"PageSize": 2})) == len(want))

    v1 = alice.list_objects(Bucket="photos", Prefix="dir/", Delimiter="/")
    check("ListObjects v1 with delimiter", [o["Key"] for o in v1.get("Contents", [])] == ["dir/a", "dir/big.bin"]
          and [p["Prefix"] for p in v1.get("CommonPrefixes", [])] == ["dir/sub/"])
    keys1, v1_marker = [], ""
    while True:
        page = alice.list_objects(Bucket="photos", MaxKeys=3, Marker=v1_marker)
        keys1 += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        v1_marker = page.get("NextMarker") or keys1[-1]
    check("ListObjects v1 pagination", keys1 == want, str(keys1))
    check("other user cannot read", error_code(lambda: bob.get_object(Bucket="photos", Key="z")) == "AccessDenied")
    check("other user cannot list", error_code(lambda: bob.list_objects_v2(Bucket="photos")) == "AccessDenied")
    check("other user cannot delete", error_code(lambda: bob.delete_object(Bucket="photos", Key="z")) == "AccessDenied")
    wrong = client("alice-key", "not-the-secret")
    check("wrong secret refused", error_code(lambda: wrong.list_buckets()) in ("SignatureDoesNotMatch", "AccessDenied"))
    unknown = client("nobody", "whatever-secret")
    # s3s answers NotSignedUp where AWS answers InvalidAccessKeyId.
    code = error_code(lambda: unknown.list_buckets())
    check("unknown user refused", code in ("InvalidAccessKeyId", "AccessDenied", "NotSignedUp", "SignatureDoesNotMatch"), str(code))
    import urllib.request, ssl
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        urllib.request.urlopen(f"{endpoint}/photos/z", context=ctx)
        anon = 200
    except urllib.error.HTTPError as e:
        anon = e.code
    check("anonymous GET refused", anon == 403, str(anon))
    url = alice.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "z"}, ExpiresIn=60)
    check("presigned GET", urllib.request.urlopen(url, context=ctx).read() == b"z")
    url = alice.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "z"}, ExpiresIn=1)
    time.sleep(2.5)
    try:
        urllib.request.urlopen(url, context=ctx)
        expired = 200
    except urllib.error.HTTPError as e:
        expired = e.code
    check("expired presigned GET refused", expired == 403, str(expired))
    check("missing key", error_code(lambda: alice.get_object(Bucket="photos", Key="nope")) == "NoSuchKey")
    check("missing bucket", error_code(lambda: alice.head_object(Bucket="nobucket", Key="x")) in ("NoSuchBucket", "404"))
    suite.__dict__.update(want=want)


def test_sse_c(srv, suite):
    alice, check, marker = suite.alice, srv.check, suite.marker
    # SSE-C: the customer's key on every request, never stored.
    ckey = os.urandom(32)
    other_key = os.urandom(32)
    sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": ckey}
    secret_blob = marker * 50_000 + b"tail"
    put = alice.put_object(Bucket="photos", Key="secret.bin", Body=secret_blob, **sse)
    check("SSE-C echoes algorithm and key MD5", put.get("SSECustomerAlgorithm") == "AES256"
          and put.get("SSECustomerKeyMD5") == base64.b64encode(hashlib.md5(ckey).digest()).decode())
    etag = put["ETag"].strip('"')
    check("SSE-C ETag is random, not the MD5", len(etag) == 32 and etag != hashlib.md5(secret_blob).hexdigest())
    got = alice.get_object(Bucket="photos", Key="secret.bin", **sse)
    check("SSE-C GET with the key", got["Body"].read() == secret_blob and got.get("SSECustomerAlgorithm") == "AES256")
    r = alice.get_object(Bucket="photos", Key="secret.bin", Range="bytes=100-199", **sse)
    check("SSE-C range GET", r["Body"].read() == secret_blob[100:200])
    check("SSE-C GET without the key is 400",
          error_code(lambda: alice.get_object(Bucket="photos", Key="secret.bin")) == "InvalidRequest")
    check("SSE-C GET with a wrong key is 403", error_code(lambda: alice.get_object(
        Bucket="photos", Key="secret.bin", SSECustomerAlgorithm="AES256", SSECustomerKey=other_key)) == "AccessDenied")
    check("SSE-C HEAD without the key is 400",
          error_code(lambda: alice.head_object(Bucket="photos", Key="secret.bin")) in ("InvalidRequest", "400"))
    check("SSE-C HEAD with the key", alice.head_object(Bucket="photos", Key="secret.bin", **sse)["ContentLength"] == len(secret_blob))
    check("key for a non-SSE-C object is 400",
          error_code(lambda: alice.get_object(Bucket="photos", Key="z", **sse)) == "InvalidRequest")
    check("SSE-C algorithm other than AES256 is 400", error_code(lambda: alice.put_object(
        Bucket="photos", Key="x", Body=b"x", SSECustomerAlgorithm="AES128", SSECustomerKey=ckey)) in
          ("InvalidEncryptionAlgorithmError", "InvalidArgument"))
    check("SSE-C listed", "secret.bin" in [o["Key"] for o in alice.list_objects_v2(Bucket="photos")["Contents"]])
    suite.__dict__.update(ckey=ckey, secret_blob=secret_blob, sse=sse)


def test_copy_object(srv, suite):
    alice, blob, bob, check, ckey, secret_blob, sse, want = suite.alice, suite.blob, suite.bob, srv.check, suite.ckey, suite.secret_blob, suite.sse, suite.want
    # CopyObject: decrypt the source, encrypt again for the target.
    src = {"Bucket": "photos", "Key": "dir/big.bin"}
    c = alice.copy_object(Bucket="photos", Key="copy-plain", CopySource=src)
    got = alice.get_object(Bucket="photos", Key="copy-plain")
    check("copy AONT to AONT", got["Body"].read() == blob and got["Metadata"] == {"colour": "blue"}
          and c["CopyObjectResult"]["ETag"].strip('"') == hashlib.md5(blob).hexdigest())
    alice.copy_object(Bucket="photos", Key="copy-replaced", CopySource=src, MetadataDirective="REPLACE",
                      Metadata={"colour": "red"}, ContentType="text/x-replaced")
    got = alice.get_object(Bucket="photos", Key="copy-replaced")
    check("copy with REPLACE metadata", got["Metadata"] == {"colour": "red"} and got["ContentType"] == "text/x-replaced")
    alice.copy_object(Bucket="photos", Key="copy-to-ssec", CopySource=src, **sse)
    check("copy into SSE-C", alice.get_object(Bucket="photos", Key="copy-to-ssec", **sse)["Body"].read() == blob)
    check("copy from SSE-C without the source key is 400", error_code(lambda: alice.copy_object(
        Bucket="photos", Key="x", CopySource={"Bucket": "photos", "Key": "secret.bin"})) == "InvalidRequest")
    alice.copy_object(Bucket="photos", Key="copy-from-ssec", CopySource={"Bucket": "photos", "Key": "secret.bin"},
                      CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=ckey)
    check("copy from SSE-C with the source key",
          alice.get_object(Bucket="photos", Key="copy-from-ssec")["Body"].read() == secret_blob)
    check("copy from another user's bucket is refused", error_code(lambda: bob.copy_object(
        Bucket="photos", Key="x", CopySource=src)) == "AccessDenied")
    want += ["copy-plain", "copy-replaced", "copy-to-ssec", "copy-from-ssec"]
    suite.__dict__.update(want=want)


def test_sse_kp(srv, suite):
    alice, check, crn, keyctl, marker = suite.alice, srv.check, suite.crn, suite.keyctl, suite.marker
    # SSE-KP: a bucket bound to an HSM root key at creation (IBM COS headers).
    def kp_headers(root):
        def add(request, **_):
            request.headers["ibm-sse-kp-encryption-algorithm"] = "AES256"
            request.headers["ibm-sse-kp-customer-root-key-crn"] = root
        return add
    bad_hook = kp_headers(crn.replace(crn[-12:], "000000000000"))
    alice.meta.events.register("before-sign.s3.CreateBucket", bad_hook)
    code = error_code(lambda: alice.create_bucket(Bucket="vault"))
    check("SSE-KP with an unknown key CRN is 400", code == "InvalidArgument", str(code))
    alice.meta.events.unregister("before-sign.s3.CreateBucket", bad_hook)
    hook = kp_headers(crn)
    alice.meta.events.register("before-sign.s3.CreateBucket", hook)
    alice.create_bucket(Bucket="vault")
    alice.meta.events.unregister("before-sign.s3.CreateBucket", hook)
    hb = alice.head_bucket(Bucket="vault")["ResponseMetadata"]["HTTPHeaders"]
    check("HeadBucket says SSE-KP", hb.get("ibm-sse-kp-enabled") == "true" and hb.get("ibm-sse-kp-crk-id") == crn, str(hb))
    kp_blob = marker * 30_000
    put = alice.put_object(Bucket="vault", Key="ledger", Body=kp_blob)
    check("SSE-KP ETag is the MD5", put["ETag"].strip('"') == hashlib.md5(kp_blob).hexdigest())
    check("SSE-KP PUT names the key", put["ResponseMetadata"]["HTTPHeaders"].get("ibm-sse-kp-crk-id") == crn)
    got = alice.get_object(Bucket="vault", Key="ledger")
    check("SSE-KP GET", got["Body"].read() == kp_blob and got["ResponseMetadata"]["HTTPHeaders"].get("ibm-sse-kp-crk-id") == crn)
    alice.copy_object(Bucket="vault", Key="copied", CopySource={"Bucket": "photos", "Key": "z"})
    got = alice.get_object(Bucket="vault", Key="copied")
    check("copy into an SSE-KP bucket", got["Body"].read() == b"z" and got["ResponseMetadata"]["HTTPHeaders"].get("ibm-sse-kp-crk-id") == crn)
    alice.delete_object(Bucket="vault", Key="copied")
    keyctl("disable", "e2e-root")
    time.sleep(1.2)
    check("suspended root key refuses reads", error_code(lambda: alice.get_object(Bucket="vault", Key="ledger")) == "AccessDenied")
    check("suspended root key refuses writes", error_code(lambda: alice.put_object(Bucket="vault", Key="x", Body=b"x")) == "AccessDenied")
    keyctl("enable", "e2e-root")
    time.sleep(1.2)
    check("enabled again", alice.get_object(Bucket="vault", Key="ledger")["Body"].read() == kp_blob)
    keyctl("rotate", "e2e-root")
    time.sleep(1.2)
    check("rotation keeps data readable", alice.get_object(Bucket="vault", Key="ledger")["Body"].read() == kp_blob)


def test_no_plaintext_or_customer_key_stored(srv, suite):
    alice, check, ckey, data, keyctl, marker, want = suite.alice, srv.check, suite.ckey, suite.data, suite.keyctl, suite.marker, suite.want
    # Nothing under the data directory holds the plaintext or the customer key.
    leaked = [p for p in (data / "d").rglob("*") if p.is_file() and marker in p.read_bytes()]
    check("no plaintext on disk", leaked == [], str(leaked))
    forms = [ckey, ckey.hex().encode(), base64.b64encode(ckey)]
    leaked = [p for p in (data / "d").rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms)]
    check("no customer key on disk", leaked == [], str(leaked))
    want.append("secret.bin")

    check("non-empty bucket", error_code(lambda: alice.delete_bucket(Bucket="photos")) == "BucketNotEmpty")
    out = alice.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": k} for k in want]})
    check("DeleteObjects", sorted(d["Key"] for d in out.get("Deleted", [])) == sorted(want) and not out.get("Errors"),
          str(out.get("Errors")))
    check("DeleteObjects emptied the bucket", alice.list_objects_v2(Bucket="photos").get("KeyCount") == 0)
    alice.delete_bucket(Bucket="photos")
    keyctl("delete", "e2e-root", "--force")
    time.sleep(1.2)
    check("deleted root key: data unreadable", error_code(lambda: alice.get_object(Bucket="vault", Key="ledger")) == "AccessDenied")
    alice.delete_object(Bucket="vault", Key="ledger")
    alice.delete_bucket(Bucket="vault")
    check("bucket deleted", alice.list_buckets()["Buckets"] == [])
