"""Signatures and aws-chunked framing from a hostile client, over raw HTTPS so every byte
is the test's choice: wrong, unknown, anonymous and expired signatures; presigned URLs
replayed past expiry or altered; invalid bucket names; aws-chunked bodies (signed chunks
and unsigned with trailers) with bad sizes, a missing final chunk, bad chunk signatures,
oversize chunks, wrong decoded lengths and bad trailers. Each gets the right S3 error,
stores nothing, and the server keeps serving. The requests are signed here, by a SigV4
implementation of the test's own (not botocore's), so the framing can be broken at will.
"""

import base64
import datetime
import hashlib
import hmac
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
import zlib
import types

import pytest

from cipherstore_harness import USERS, error_code

STORES = ["fs"]

REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Signer:
    """SigV4 for S3 (AWS docs, "Authenticating requests: AWS Signature Version 4")."""

    def __init__(self, access_key, secret, when=None):
        self.access_key, self.secret = access_key, secret
        now = when or datetime.datetime.now(datetime.timezone.utc)
        self.amzdate = now.strftime("%Y%m%dT%H%M%SZ")
        self.date = now.strftime("%Y%m%d")
        self.scope = f"{self.date}/{REGION}/s3/aws4_request"
        key = _hmac(("AWS4" + secret).encode(), self.date)
        for part in (REGION, "s3", "aws4_request"):
            key = _hmac(key, part)
        self.key = key

    def sign(self, string_to_sign):
        return hmac.new(self.key, string_to_sign.encode(), hashlib.sha256).hexdigest()

    def headers(self, method, path, host, payload_hash, extra):
        """Signed headers for a request; `extra` headers are signed too."""
        headers = {"host": host, "x-amz-date": self.amzdate, "x-amz-content-sha256": payload_hash}
        headers.update({k.lower(): v for k, v in extra.items()})
        names = sorted(headers)
        path_part, _, query = path.partition("?")
        canonical_query = "&".join(sorted(q if "=" in q else q + "=" for q in query.split("&") if q))
        canonical = "\n".join([method, path_part, canonical_query,
                               "".join(f"{n}:{str(headers[n]).strip()}\n" for n in names),
                               ";".join(names), payload_hash])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", self.amzdate, self.scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        self.seed = self.sign(to_sign)
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{self.scope}, "
                                    f"SignedHeaders={';'.join(names)}, Signature={self.seed}")
        return headers

    def chunk_signature(self, previous, data):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", self.amzdate, self.scope, previous, EMPTY_SHA256,
                             hashlib.sha256(data).hexdigest()])
        return self.sign(to_sign)


def signed_chunks(signer, pieces, corrupt=None):
    """aws-chunked body with chunk signatures; `corrupt` is the index of a chunk whose
    signature is wrong. The final zero-length chunk is added."""
    out, previous = b"", signer.seed
    for i, data in enumerate(list(pieces) + [b""]):
        sig = signer.chunk_signature(previous, data)
        previous = sig
        if i == corrupt:
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        out += f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + b"\r\n"
    return out


class Client:
    def __init__(self, srv):
        self.srv = srv
        self.ctx = ssl.create_default_context(cafile=str(srv.ca))
        self.host = f"127.0.0.1:{srv.port}"

    def raw(self, head, body=b"", timeout=15):
        """Sends `head` and `body` on a new TLS connection; returns (status, response bytes)
        or (None, b"") if the server dropped the connection without answering."""
        sock = self.ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.srv.port)),
                                    server_hostname="127.0.0.1")
        sock.settimeout(timeout)
        reply = b""
        try:
            try:
                sock.sendall(head + body)
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                pass  # the server may answer and close before reading everything sent
            while b"\r\n\r\n" not in reply:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
            head_end = reply.find(b"\r\n\r\n")
            if head_end >= 0:
                length = 0
                for line in reply[:head_end].split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                while len(reply) < head_end + 4 + length:
                    data = sock.recv(65536)
                    if not data:
                        break
                    reply += data
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, socket.timeout, TimeoutError):
            pass
        finally:
            sock.close()
        if not reply.startswith(b"HTTP/1.1 "):
            return None, reply
        return int(reply[9:12]), reply

    def request(self, method, path, body=b"", user="alice", secret=None, payload_hash=None, extra=None,
                when=None, content_length=None):
        ak, sk = USERS[user]
        signer = Signer(ak, secret or sk, when)
        payload_hash = payload_hash or hashlib.sha256(body).hexdigest()
        headers = signer.headers(method, path, self.host, payload_hash, extra or {})
        headers["content-length"] = str(len(body) if content_length is None else content_length)
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        return self.raw(head.encode(), body)

    def chunked_put(self, path, pieces, decoded_len=None, corrupt=None, body=None):
        ak, sk = USERS["alice"]
        signer = Signer(ak, sk)
        total = sum(len(p) for p in pieces)
        extra = {"content-encoding": "aws-chunked",
                 "x-amz-decoded-content-length": str(total if decoded_len is None else decoded_len)}
        headers = signer.headers("PUT", path, self.host, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", extra)
        if body is None:
            body = signed_chunks(signer, pieces, corrupt)
        elif callable(body):
            body = body(signer)
        headers["content-length"] = str(len(body))
        head = "PUT " + path + " HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        return self.raw(head.encode(), body)

    def trailer_put(self, path, body, decoded_len, trailer_names="x-amz-checksum-crc32"):
        extra = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded_len),
                 "x-amz-trailer": trailer_names}
        ak, sk = USERS["alice"]
        signer = Signer(ak, sk)
        headers = signer.headers("PUT", path, self.host, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", extra)
        headers["content-length"] = str(len(body))
        head = "PUT " + path + " HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        return self.raw(head.encode(), body)


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def code_of(reply):
    start, end = reply.find(b"<Code>"), reply.find(b"</Code>")
    return reply[start + 6:end].decode() if start >= 0 < end else ""


@pytest.fixture(scope="module")
def suite(srv):
    """A bucket, a raw client, and checks of refused and stored requests."""
    check = srv.check
    s3 = srv.boto3("alice")
    s3.create_bucket(Bucket="framing")
    s3.put_object(Bucket="framing", Key="k", Body=b"served")
    c = Client(srv)

    def refused(name, result, status, codes, key=None):
        got, reply = result
        ok = got == status and (not codes or code_of(reply) in codes)
        check(f"{name}: {status} {'/'.join(codes)}", ok, f"{got} {reply[:400]!r}")
        if key is not None:
            check(f"{name}: nothing stored",
                  error_code(lambda: s3.head_object(Bucket="framing", Key=key)) in ("404", "NoSuchKey"))

    def stored(key, data):
        try:
            return s3.get_object(Bucket="framing", Key=key)["Body"].read() == data
        except Exception:  # noqa: BLE001
            return False
    return types.SimpleNamespace(c=c, refused=refused, s3=s3, stored=stored)


def test_the_test_signer_is_right(srv, suite):
    c, check, stored = suite.c, srv.check, suite.stored
    # The test's signer is right: a control request.
    status, _ = c.request("PUT", "/framing/control", b"signed here")
    check("a request signed by the test's SigV4 is accepted", status == 200 and stored("control", b"signed here"))


def test_signatures(srv, suite):
    c, check, refused = suite.c, srv.check, suite.refused
    # Signatures.
    refused("wrong secret", c.request("PUT", "/framing/w1", b"x", secret="not-the-secret"),
            403, ["SignatureDoesNotMatch"], "w1")
    status, reply = c.raw(f"GET /framing/k HTTP/1.1\r\nHost: {c.host}\r\n\r\n".encode())
    check("anonymous GET refused: 403", status == 403, f"{status} {reply[:200]!r}")
    signer = Signer("no-such-key", "whatever")
    headers = signer.headers("GET", "/framing/k", c.host, EMPTY_SHA256, {})
    head = "GET /framing/k HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    refused("unknown access key", c.raw(head.encode()), 403, ["InvalidAccessKeyId"])
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    refused("a signature 20 minutes old", c.request("PUT", "/framing/w2", b"x", when=old),
            403, ["RequestTimeTooSkewed", "AccessDenied", "SignatureDoesNotMatch"], "w2")
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=20)
    refused("a signature 20 minutes ahead", c.request("PUT", "/framing/w3", b"x", when=future),
            403, ["RequestTimeTooSkewed", "AccessDenied", "SignatureDoesNotMatch"], "w3")
    refused("a body other than the signed one", c.request("PUT", "/framing/w4", b"tampered",
                                                          payload_hash=hashlib.sha256(b"original").hexdigest()),
            400, ["XAmzContentSHA256Mismatch", "BadDigest"], "w4")


def test_presigned_urls(srv, suite):
    c, check, s3 = suite.c, srv.check, suite.s3
    # Presigned URLs: used once, replayed after expiry, altered.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "framing", "Key": "k"}, ExpiresIn=2)
    check("presigned URL works while valid", urllib.request.urlopen(url, context=c.ctx).read() == b"served")

    def presigned_status(u):
        try:
            urllib.request.urlopen(u, context=c.ctx).read()
            return 200
        except urllib.error.HTTPError as e:
            return e.code
    altered = url.replace("/framing/k?", "/framing/control?")
    check("presigned URL for another key refused", presigned_status(altered) == 403)
    time.sleep(3)
    check("presigned URL replayed after expiry refused", presigned_status(url) == 403)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "framing", "Key": "p"}, ExpiresIn=1)
    time.sleep(2)
    req = urllib.request.Request(put_url, data=b"late", method="PUT")
    try:
        urllib.request.urlopen(req, context=c.ctx)
        late = 200
    except urllib.error.HTTPError as e:
        late = e.code
    check("presigned PUT after expiry refused", late == 403, str(late))
    check("presigned PUT after expiry: nothing stored",
          error_code(lambda: s3.head_object(Bucket="framing", Key="p")) in ("404", "NoSuchKey"))


def test_invalid_bucket_names(srv, suite):
    c, refused = suite.c, suite.refused
    # Invalid bucket names.
    for name in ["ab", "UPPER", "under_score", "-dash", "dash-", "a..b", "192.168.1.1", "x" * 64, "xn--punycode"]:
        refused(f"bucket name {name[:20]!r}", c.request("PUT", f"/{name}"), 400, ["InvalidBucketName"])


def test_aws_chunked_with_signed_chunks(srv, suite):
    c, check, refused, stored = suite.c, srv.check, suite.refused, suite.stored
    # aws-chunked with signed chunks.
    pieces = [os.urandom(65536), os.urandom(65536), os.urandom(1000)]
    status, reply = c.chunked_put("/framing/chunked", pieces)
    check("signed aws-chunked upload accepted", status == 200, f"{status} {reply[:300]!r}")
    check("signed aws-chunked upload reads back", stored("chunked", b"".join(pieces)))
    refused("a bad chunk signature (second chunk)", c.chunked_put("/framing/c1", pieces, corrupt=1),
            403, ["SignatureDoesNotMatch"], "c1")
    refused("a bad final-chunk signature", c.chunked_put("/framing/c2", pieces, corrupt=3),
            403, ["SignatureDoesNotMatch"], "c2")

    def without_final(signer):
        return signed_chunks(signer, pieces).rsplit(b"0;chunk-signature=", 1)[0]
    refused("a missing final chunk", c.chunked_put("/framing/c3", pieces, body=without_final),
            400, ["IncompleteBody", "InvalidRequest", "MalformedXML", "InvalidArgument"], "c3")

    def bad_size(signer):
        body = signed_chunks(signer, pieces)
        return b"zz" + body[body.index(b";"):]
    refused("a chunk size that is not hex", c.chunked_put("/framing/c4", pieces, body=bad_size),
            400, [], "c4")

    def short_chunk(signer):
        body = signed_chunks(signer, pieces)
        return b"20000" + body[body.index(b";"):]  # says 128 KiB, holds 64 KiB
    refused("a chunk size larger than its data", c.chunked_put("/framing/c5", pieces, body=short_chunk),
            400, [], "c5")

    def oversize(signer):
        sig = signer.chunk_signature(signer.seed, b"")
        return f"7fffffffffffffff;chunk-signature={sig}\r\n".encode() + b"x" * 1000
    refused("an oversize chunk (2^63 bytes declared)", c.chunked_put("/framing/c6", [b"x" * 1000], body=oversize),
            400, [], "c6")
    refused("a decoded length smaller than the chunks", c.chunked_put("/framing/c7", pieces, decoded_len=1000),
            400, [], "c7")
    refused("a decoded length larger than the chunks", c.chunked_put("/framing/c8", pieces, decoded_len=10 ** 6),
            400, [], "c8")


def test_aws_chunked_unsigned_with_a_checksum_trailer(srv, suite):
    c, check, refused, stored = suite.c, srv.check, suite.refused, suite.stored
    # aws-chunked, unsigned, with a checksum trailer.
    data = os.urandom(70000)
    good = (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n"
            + f"x-amz-checksum-crc32:{crc32_b64(data)}\r\n\r\n".encode())
    status, reply = c.trailer_put("/framing/t0", good, len(data))
    check("unsigned aws-chunked with a CRC32 trailer accepted", status == 200 and stored("t0", data),
          f"{status} {reply[:300]!r}")
    wrong = good.replace(crc32_b64(data).encode(), crc32_b64(b"other").encode())
    refused("a trailer checksum that does not match", c.trailer_put("/framing/t1", wrong, len(data)),
            400, ["BadDigest", "InvalidRequest"], "t1")
    no_trailer = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n"
    refused("a declared trailer that never comes", c.trailer_put("/framing/t2", no_trailer, len(data)),
            400, [], "t2")
    cut = f"{len(data):x}\r\n".encode() + data[:1000]
    refused("a body cut inside a chunk", c.trailer_put("/framing/t3", cut, len(data)), 400, [], "t3")

    check("no temporary data left", not list((srv.data / "d" / "store" / "tmp").iterdir()))
    check("served after the hostile requests", stored("k", b"served"))
