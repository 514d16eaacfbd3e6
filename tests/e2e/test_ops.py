"""End-to-end check of the operations surface: a TOML configuration file (with flags
overriding it), `/health` and Prometheus `/metrics`, the optional plain-HTTP listener
(which refuses SSE-C with 400), the object size limit, JSON logs without key material,
and a clear error for a mistyped configuration.
"""

import base64
import json
import os
import ssl
import subprocess
import urllib.request

from cipherstore_harness import error_code, free_port

STORES = ["fs", "cluster"]
MiB = 1 << 20
HTTP_PORT = free_port()
SERVER = {"config": f"""
# The flag --listen given by the harness overrides this.
listen = "127.0.0.1:1"
http_listen = "127.0.0.1:{HTTP_PORT}"
log = "info"
log_format = "json"

[limits]
max_object_size = {6 * MiB}
# Two 4 MiB batches: eight uploads at once must share them.
stream_buffers_mib = 8
"""}


def test_health_and_size_limits(srv, suite):
    http_port = HTTP_PORT
    check = srv.check
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    health = urllib.request.urlopen(f"{srv.endpoint}/health", context=ctx).read()
    check("GET /health", health == b"ok\n", str(health))
    plain_health = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health").read()
    check("GET /health on plain HTTP", plain_health == b"ok\n")

    alice = srv.boto3("alice")
    alice.create_bucket(Bucket="ops")
    alice.put_object(Bucket="ops", Key="small", Body=b"x" * 1000)
    check("PUT over the limit is EntityTooLarge", error_code(lambda: alice.put_object(
        Bucket="ops", Key="big", Body=os.urandom(7 * MiB))) == "EntityTooLarge")
    check("nothing stored after EntityTooLarge", error_code(lambda: alice.head_object(Bucket="ops", Key="big")) in ("404", "NoSuchKey"))
    uid = alice.create_multipart_upload(Bucket="ops", Key="mp")["UploadId"]
    check("part over the limit is EntityTooLarge", error_code(lambda: alice.upload_part(
        Bucket="ops", Key="mp", UploadId=uid, PartNumber=1, Body=os.urandom(7 * MiB))) == "EntityTooLarge")
    alice.abort_multipart_upload(Bucket="ops", Key="mp", UploadId=uid)
    suite.__dict__.update(alice=alice, ctx=ctx)


def test_the_plain_http_listener_refuses_sse_c(srv, suite):
    alice, check, http_port = suite.alice, srv.check, HTTP_PORT
    # The plain-HTTP listener: signed requests work, SSE-C is refused before use.
    import boto3
    from botocore.config import Config
    plain = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{http_port}", aws_access_key_id="alice-key",
                         aws_secret_access_key="alice-secret-123", region_name="us-east-1",
                         config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    check("plain HTTP GET", plain.get_object(Bucket="ops", Key="small")["Body"].read() == b"x" * 1000)
    ckey = os.urandom(32)
    code = error_code(lambda: plain.put_object(Bucket="ops", Key="s", Body=b"s", SSECustomerAlgorithm="AES256",
                                               SSECustomerKey=ckey))
    check("SSE-C over plain HTTP is 400", code == "InvalidRequest", str(code))
    check("nothing stored by the refused SSE-C PUT", error_code(lambda: alice.head_object(Bucket="ops", Key="s")) in ("404", "NoSuchKey"))
    alice.put_object(Bucket="ops", Key="s", Body=b"s", SSECustomerAlgorithm="AES256", SSECustomerKey=ckey)
    code = error_code(lambda: plain.get_object(Bucket="ops", Key="s", SSECustomerAlgorithm="AES256", SSECustomerKey=ckey))
    check("SSE-C GET over plain HTTP is 400", code == "InvalidRequest", str(code))
    suite.ckey = ckey


def test_uploads_share_the_buffer_budget(srv, suite):
    alice, check, ctx = suite.alice, srv.check, suite.ctx
    # Eight 5 MiB uploads at once through an 8 MiB budget (batches shrink to what is
    # left, one unit at least): all complete, exact, and every batch's memory is given
    # back.
    import concurrent.futures
    import hashlib
    bodies = {f"wide/{i}": os.urandom(5 * MiB) for i in range(8)}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        etags = dict(zip(bodies, pool.map(lambda kv: alice.put_object(Bucket="ops", Key=kv[0], Body=kv[1])["ETag"],
                                          bodies.items())))
    check("concurrent uploads through a small buffer budget all land",
          all(etags[k].strip('"') == hashlib.md5(b).hexdigest() for k, b in bodies.items()))
    # Downloads share the budget: eight at once, beyond it, go on in smaller batches.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        back = list(pool.map(lambda k: alice.get_object(Bucket="ops", Key=k)["Body"].read(), bodies))
    check("and read back exact, eight at once", back == list(bodies.values()))

    metrics = urllib.request.urlopen(f"{srv.endpoint}/metrics", context=ctx).read().decode()
    check("metrics show the buffer budget", f"cipherstore_stream_buffer_limit_bytes {8 * MiB}" in metrics)
    check("no buffer held once uploads are done", "cipherstore_stream_buffer_bytes 0" in metrics)
    check("metrics count requests", 'cipherstore_requests_total{method="PUT",status="200"}' in metrics, metrics[:500])
    check("metrics count refused SSE-C", "cipherstore_plain_http_sse_c_refused_total 2" in metrics)
    check("metrics have a latency histogram", "cipherstore_request_duration_seconds_count" in metrics)
    check("metrics have HSM and cache counters", "cipherstore_key_cache_hits_total" in metrics
          and "cipherstore_hsm_unwraps_total" in metrics)


def test_json_logs_and_configuration_errors(srv, suite, binary):
    check, ckey = srv.check, suite.ckey
    # The log as written until the server stops (it is started again for what follows).
    srv.__exit__(None, None, None)
    log = srv.log
    srv.__enter__()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("target") == "cipherstore::request"]
    check("JSON request log lines", len(requests) >= 10 and all("status" in r["fields"] for r in requests), log[-1000:])
    forms = [ckey.hex(), base64.b64encode(ckey).decode()]
    check("no customer key in the log", not any(f in log for f in forms))

    # A mistyped configuration file is refused with the key named.
    bad = srv.data / "bad.toml"
    bad.write_text('lisen = "127.0.0.1:9000"\n')
    r = subprocess.run([str(binary), "serve", "--config", str(bad), "--data-dir", str(srv.data / "x")],
                       capture_output=True, text=True, timeout=30)
    check("mistyped config refused", r.returncode != 0 and "lisen" in r.stderr, r.stderr)
    bad.write_text('[limits]\nstream_buffers_mib = 1\n')
    r = subprocess.run([str(binary), "serve", "--config", str(bad), "--data-dir", str(srv.data / "x")],
                       capture_output=True, text=True, timeout=30)
    check("a buffer budget below one batch refused", r.returncode != 0 and "stream_buffers_mib" in r.stderr, r.stderr)
