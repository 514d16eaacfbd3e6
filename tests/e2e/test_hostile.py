"""Hostile input: clients that never finish the TLS handshake or their headers, bodies
that stall, 10,000 idle connections at once, malformed XML and oversized headers and keys.
Each gets the right S3 error or is dropped within the configured timeouts, the server's
memory stays bounded, and other clients are served throughout.
"""

import hashlib
import os
import resource
import socket
import ssl
import time
import urllib.request
import types

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import pytest

from cipherstore_harness import USERS, error_code, memory_mib

STORES = ["fs"]

IDLE = 10_000
TIMEOUT = 2
SERVER = {"config": f"[limits]\nheader_timeout_secs = {TIMEOUT}\nbody_idle_timeout_secs = {TIMEOUT}\n"}


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def closed_by_server(sock, wait):
    """Whether the server closes `sock` (EOF, reset, or an error response) within `wait`."""
    sock.settimeout(wait)
    try:
        data = sock.recv(4096)
        return data == b"" or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 4")
    except (ConnectionResetError, ssl.SSLError):
        return True
    except (socket.timeout, TimeoutError):
        return False


def signed_headers(srv, method, path, length, body=None):
    """Signed request headers; with `body`, its SHA-256 is signed (as SDKs do for XML)."""
    ak, sk = USERS["alice"]
    url = f"{srv.endpoint}{path}"
    payload = hashlib.sha256(body).hexdigest() if body is not None else "UNSIGNED-PAYLOAD"
    req = AWSRequest(method=method, url=url, data=body or b"", headers={"x-amz-content-sha256": payload,
                                                                        "Content-Length": str(length)})
    S3SigV4Auth(Credentials(ak, sk), "s3", "us-east-1").add_auth(req)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def suite(srv):
    """What every test of the module uses."""
    s3 = srv.boto3("alice")
    s3.create_bucket(Bucket="hostile")
    s3.put_object(Bucket="hostile", Key="k", Body=b"served")
    ctx = ssl.create_default_context(cafile=str(srv.ca))

    def tls():
        raw = socket.create_connection(("127.0.0.1", srv.port))
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    return types.SimpleNamespace(ctx=ctx, s3=s3, tls=tls)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # old TLS versions, on purpose
def test_tls_1_2_and_1_3_only(srv, suite):
    check = srv.check
    # TLS 1.2 and 1.3 only.
    for version, name in [(ssl.TLSVersion.TLSv1, "1.0"), (ssl.TLSVersion.TLSv1_1, "1.1")]:
        old_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old_ctx.load_verify_locations(cafile=str(srv.ca))
        old_ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old_ctx.maximum_version = version
        try:
            old_ctx.set_ciphers("ALL:@SECLEVEL=0")
            old_ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port)), server_hostname="127.0.0.1").close()
            refused = False
        except (ssl.SSLError, OSError):
            refused = True
        check(f"TLS {name} refused", refused)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ok_ctx = ssl.create_default_context(cafile=str(srv.ca))
        ok_ctx.minimum_version = ok_ctx.maximum_version = version
        conn = ok_ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port)), server_hostname="127.0.0.1")
        check(f"{version.name} accepted", conn.version() in ("TLSv1.2", "TLSv1.3"), str(conn.version()))
        conn.close()


def test_a_tcp_connection_that_never_starts_tls(srv, suite):
    check = srv.check
    # A TCP connection that never starts TLS.
    raw = socket.create_connection(("127.0.0.1", srv.port))
    check("no TLS handshake: dropped after the timeout", closed_by_server(raw, TIMEOUT + 3))
    raw.close()


def test_headers_that_never_end(srv, suite):
    check, tls = srv.check, suite.tls
    # Headers that never end.
    t0 = time.monotonic()
    s = tls()
    s.sendall(b"GET /hostile/k HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    check("unfinished headers: dropped after the timeout", closed_by_server(s, TIMEOUT + 3))
    check("unfinished headers: not before the timeout", time.monotonic() - t0 >= TIMEOUT - 0.5)
    s.close()


def test_an_idle_keep_alive_connection(srv, suite):
    check, tls = srv.check, suite.tls
    # An idle keep-alive connection after one request.
    s = tls()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = s.recv(4096)
    check("health on a raw connection", first.startswith(b"HTTP/1.1 200"), first[:40].decode(errors="replace"))
    check("idle keep-alive connection: closed after the timeout", closed_by_server(s, TIMEOUT + 3))
    s.close()


def test_a_stalled_body_times_out_and_stores_nothing(srv, suite):
    check, s3, tls = srv.check, suite.s3, suite.tls
    # A body that stalls: RequestTimeout, and nothing stored.
    s = tls()
    s.sendall(signed_headers(srv, "PUT", "/hostile/stalled", 1 << 20) + b"x" * 1000)
    s.settimeout(TIMEOUT + 5)
    reply = b""
    try:
        reply = s.recv(4096)
    except (socket.timeout, TimeoutError):
        pass
    check("stalled body: RequestTimeout", b"RequestTimeout" in reply, reply[:200].decode(errors="replace"))
    s.close()
    check("stalled body: nothing stored",
          error_code(lambda: s3.head_object(Bucket="hostile", Key="stalled")) in ("404", "NoSuchKey"))
    check("stalled body: no temporary data left", not list((srv.data / "d" / "store" / "tmp").iterdir()))


def test_malformed_xml_and_oversized_input(srv, suite):
    check, s3, tls = srv.check, suite.s3, suite.tls
    # Malformed XML and oversized input.
    uid = s3.create_multipart_upload(Bucket="hostile", Key="mp")["UploadId"]
    bad = b"<CompleteMultipartUpl<<"
    xml_req = signed_headers(srv, "POST", f"/hostile/mp?uploadId={uid}", len(bad), bad)
    s = tls()
    s.sendall(xml_req + bad)
    s.settimeout(10)
    reply = s.recv(4096)
    check("malformed CompleteMultipartUpload XML: 400 MalformedXML", reply.startswith(b"HTTP/1.1 400") and b"MalformedXML" in reply,
          reply[:300].decode(errors="replace"))
    s.close()
    s = tls()
    bad = b"<Delete><Object><Key>"
    s.sendall(signed_headers(srv, "POST", "/hostile?delete", len(bad), bad) + bad)
    reply = s.recv(4096)
    check("malformed DeleteObjects XML: 400", reply.startswith(b"HTTP/1.1 400"), reply[:300].decode(errors="replace"))
    s.close()
    s3.abort_multipart_upload(Bucket="hostile", Key="mp", UploadId=uid)
    s = tls()
    s.settimeout(10)
    try:
        s.sendall(b"GET /hostile/k HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"a" * (1 << 20) + b"\r\n\r\n")
        reply = s.recv(4096)
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        reply = b""
    check("a 1 MiB header: refused or dropped", reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply[:80].decode(errors="replace"))
    s.close()
    code = error_code(lambda: s3.put_object(Bucket="hostile", Key="k" * 2000, Body=b"x"))
    check("a 2000-byte key: KeyTooLongError", code == "KeyTooLongError", str(code))
    check("served after the hostile requests", s3.get_object(Bucket="hostile", Key="k")["Body"].read() == b"served")


def test_10000_idle_connections_at_once(srv, suite):
    check, ctx, s3 = srv.check, suite.ctx, suite.s3
    # 10,000 idle connections at once.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, IDLE + 1000)), hard))
    pid = srv.process.pid
    rss0, fds0 = memory_mib(pid)["rss"], open_fds(pid)
    idle = []
    for i in range(IDLE):
        try:
            idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        except OSError as e:
            print(f"connection {i}: {e}", flush=True)
            break
    check(f"{IDLE} idle connections opened", len(idle) == IDLE, str(len(idle)))
    time.sleep(0.5)
    rss1 = memory_mib(pid)["rss"]
    served = s3.get_object(Bucket="hostile", Key="k")["Body"].read() == b"served"
    check("served while 10,000 connections sit idle", served)
    check("memory bounded with 10,000 idle connections", rss1 - rss0 < 256, f"{rss0:.0f} -> {rss1:.0f} MiB")
    time.sleep(TIMEOUT + 3)
    dropped = sum(1 for s in idle[:200] if closed_by_server(s, 0.5))
    for s in idle:
        s.close()
    check("idle connections dropped after the timeout", dropped == min(200, len(idle)), f"{dropped} of 200 sampled")
    time.sleep(1)
    fds2 = open_fds(pid)
    check("descriptors released", fds2 <= fds0 + 20, f"{fds0} -> {fds2}")
    print(f"RSS {rss0:.0f} MiB idle, {rss1:.0f} MiB with {len(idle)} connections; fds {fds0} -> {fds2}")
    health = urllib.request.urlopen(f"{srv.endpoint}/health", context=ctx).read()
    check("healthy at the end", health == b"ok\n")
