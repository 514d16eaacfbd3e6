#!/usr/bin/env python3
"""Driver of scripts/bench-s3: starts each server in turn with its data on tmpfs, drives it
over HTTPS with the same client (examples/s3_load: one client thread, SigV4, every GET
checked byte for byte), and prints a Markdown table of throughput and ratios taken in
the same run."""

import argparse
import base64
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from s3harness import Server, USERS, free_port  # noqa: E402

MiB = 1 << 20
AK, SK = USERS["alice"]
MODES = ["plaintext", "default", "SSE-C", "SSE-KP"]


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def peak_rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Target:
    """One server under test, as the load generator sees it."""

    def __init__(self, name, endpoint, ca, pid, load, metrics=None):
        self.name, self.endpoint, self.ca, self.pid, self.load = name, endpoint, ca, pid, load
        self.extra = []
        self.metrics = metrics
        self.bind = None

    def run(self, bucket, op, prefix="obj", count=1, size=4096, concurrency=1):
        """Runs one load-generator pass; returns its wall time in seconds."""
        cmd = [self.load, "--endpoint", self.endpoint, "--ca", str(self.ca), "--access-key", AK, "--secret-key", SK,
               "--bucket", bucket, "--prefix", prefix, "--count", str(count), "--size", str(size),
               "--concurrency", str(concurrency), *self.extra, op]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: {op} {prefix} failed: {r.stderr[-1500:]}")
        return json.loads(r.stdout)["seconds"] if op != "mkbucket" else 0.0

    def hsm_calls(self):
        if not self.metrics:
            return None
        import ssl
        import urllib.request
        text = urllib.request.urlopen(self.metrics, context=ssl.create_default_context(cafile=str(self.ca))).read().decode()
        calls = 0
        for line in text.splitlines():
            if line.startswith(("cipherstore_hsm_wraps_total ", "cipherstore_hsm_unwraps_total ")):
                calls += int(line.split()[1])
        return calls


def workload(t, size_mib, small, runs, concurrency):
    """Best times over `runs`: one large object PUT and GET, `small` 4 KiB objects PUT and
    GET at `concurrency`. Every GET is verified by the load generator."""
    best = {"put": 1e9, "get": 1e9, "sput": 1e9, "sget": 1e9}
    hsm = None
    for run in range(runs):
        bucket = f"bench{run}"
        t.run(bucket, "mkbucket")
        if t.bind:
            t.bind(bucket)
        best["put"] = min(best["put"], t.run(bucket, "put", "big", 1, size_mib * MiB))
        best["get"] = min(best["get"], t.run(bucket, "get", "big", 1, size_mib * MiB))
        before = t.hsm_calls()
        best["sput"] = min(best["sput"], t.run(bucket, "put", "small", small, 4096, concurrency))
        best["sget"] = min(best["sget"], t.run(bucket, "get", "small", small, 4096, concurrency))
        after = t.hsm_calls()
        if before is not None and run > 0:
            hsm = after - before if hsm is None else max(hsm, after - before)
    return {
        "put": size_mib / best["put"], "get": size_mib / best["get"],
        "sput": small / best["sput"], "sget": small / best["sget"], "hsm": hsm,
    }


def cipherstore(binary, mode, work, load):
    """Starts cipherstore for `mode`; the data directory sits on `work`'s filesystem."""
    srv = Server(binary, cache_ttl="3600", base=str(work))
    if mode == "plaintext":
        srv.env["CIPHERSTORE_BENCH_PLAINTEXT"] = "1"
    srv.__enter__()
    t = Target(mode, srv.endpoint, srv.ca, srv.process.pid, load, metrics=f"{srv.endpoint}/metrics")
    if mode == "SSE-C":
        t.extra = ["--sse-c-key-base64", base64.b64encode(os.urandom(32)).decode()]
    if mode == "SSE-KP":
        crn = srv.create_root("bench-root")
        s3 = srv.boto3("alice")

        def bind(bucket):
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}}]})
        t.bind = bind
    return srv, t


def rclone_peer(rclone, work, load):
    """Starts `rclone serve s3` over a local directory, with a certificate like ours (P-256)."""
    port = free_port()
    certdir = work / "peer-tls"
    certdir.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE", "-keyout", str(certdir / "key.pem"),
                    "-out", str(certdir / "cert.pem")], check=True, capture_output=True)
    (work / "peer-root").mkdir()
    peer = subprocess.Popen([rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{AK},{SK}",
                             "--cert", str(certdir / "cert.pem"), "--key", str(certdir / "key.pem"),
                             "--config", "/dev/null", "-q", str(work / "peer-root")],
                            stdout=subprocess.DEVNULL, stderr=open(work / "peer.log", "w"))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return peer, Target("rclone serve s3", f"https://127.0.0.1:{port}", certdir / "cert.pem", peer.pid, load)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--plaintext-bin", required=True)
    ap.add_argument("--load", required=True, help="the s3_load example binary")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big-gib", type=int, default=5)
    a = ap.parse_args()
    rclone = str(pathlib.Path(sys.executable).parent / "rclone")
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-bench-s3-", dir=base))
    results, rss = {}, {}
    big_rss = None
    try:
        for mode in MODES:
            log(f"cipherstore {mode}")
            srv, t = cipherstore(a.plaintext_bin if mode == "plaintext" else a.bin, mode, work, a.load)
            try:
                results[mode] = workload(t, a.size_mib, a.small, a.runs, a.concurrency)
                rss[mode] = peak_rss_mib(srv.process.pid)
            finally:
                srv.__exit__(None, None, None)
                shutil.rmtree(srv.data, ignore_errors=True)
        log("rclone serve s3 (peer)")
        peer, t = rclone_peer(rclone, work, a.load)
        try:
            results["rclone serve s3"] = workload(t, a.size_mib, a.small, a.runs, a.concurrency)
            rss["rclone serve s3"] = peak_rss_mib(peer.pid)
        finally:
            peer.terminate()
            peer.wait()
        if a.big_gib > 0:
            log(f"peak RSS during a {a.big_gib} GiB PUT (default protection)")
            srv, t = cipherstore(a.bin, "default", work, a.load)
            try:
                t.run("big", "mkbucket")
                t.run("big", "put", "huge", 1, a.big_gib << 30)
                big_rss = peak_rss_mib(srv.process.pid)
            finally:
                srv.__exit__(None, None, None)
                shutil.rmtree(srv.data, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    plain, peer = results["plaintext"], results["rclone serve s3"]
    print(f"\n{a.size_mib} MiB single object, {a.small} x 4 KiB at {a.concurrency} connections, "
          f"examples/s3_load as the client for every server, best of {a.runs}\n")
    print("| server | PUT MiB/s | GET MiB/s | 4 KiB PUT ops/s | 4 KiB GET ops/s | PUT vs plaintext | GET vs plaintext "
          "| small PUT vs plaintext | small GET vs plaintext | PUT vs rclone | GET vs rclone | small PUT vs rclone "
          "| small GET vs rclone | peak RSS MiB |")
    print("|---" * 14 + "|")
    for name, r in results.items():
        ratios = [r[k] / plain[k] for k in ("put", "get", "sput", "sget")] + [r[k] / peer[k] for k in ("put", "get", "sput", "sget")]
        print(f"| {name} | {r['put']:.0f} | {r['get']:.0f} | {r['sput']:.0f} | {r['sget']:.0f} | "
              + " | ".join(f"{x:.2f}x" for x in ratios) + f" | {rss[name]:.0f} |")
    kp, dflt = results["SSE-KP"], results["default"]
    print(f"\nSSE-KP small objects vs default: PUT {kp['sput'] / dflt['sput']:.2f}x, GET {kp['sget'] / dflt['sget']:.2f}x; "
          f"HSM calls during the warm small-object phase: {kp['hsm']}")
    if big_rss is not None:
        print(f"Server peak RSS during a {a.big_gib} GiB PUT: {big_rss:.0f} MiB")
    print(json.dumps({"results": results, "rss": rss, "big_rss": big_rss}), file=sys.stderr)


if __name__ == "__main__":
    main()
