#!/usr/bin/env python3
"""Driver of scripts/bench-s3: starts each server in turn on tmpfs, drives it with rclone
over HTTPS, and prints a Markdown table of throughput and ratios (same run)."""

import argparse
import hashlib
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
    """One server under test, as rclone sees it."""

    def __init__(self, name, endpoint, ca, pid, extra=(), metrics=None):
        self.name, self.endpoint, self.ca, self.pid = name, endpoint, ca, pid
        self.extra = list(extra)
        self.metrics = metrics

    def rclone(self, rclone, *args):
        env = dict(os.environ, RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_T_TYPE="s3", RCLONE_CONFIG_T_PROVIDER="Other",
                   RCLONE_CONFIG_T_ACCESS_KEY_ID=AK, RCLONE_CONFIG_T_SECRET_ACCESS_KEY=SK,
                   RCLONE_CONFIG_T_ENDPOINT=self.endpoint, RCLONE_CONFIG_T_REGION="us-east-1")
        cmd = [rclone, "--ca-cert", str(self.ca), "-q", "--s3-disable-checksum", *self.extra, *args]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(args)} failed: {r.stderr[-1500:]}")
        return dt

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


def workload(t, rclone, work, size_mib, small, runs):
    """Best times over `runs` for the four operations; checks every byte read back."""
    big = work / "src.bin"
    best = {"put": 1e9, "get": 1e9, "sput": 1e9, "sget": 1e9}
    hsm = None
    for run in range(runs):
        bucket = f"t:bench{run}"
        t.rclone(rclone, "mkdir", bucket)
        if t.name == "SSE-KP":
            t.bind(f"bench{run}")
        best["put"] = min(best["put"], t.rclone(rclone, "copyto", str(big), f"{bucket}/big", "--s3-upload-cutoff", "5G"))
        out = work / "dl.bin"
        best["get"] = min(best["get"], t.rclone(rclone, "copyto", f"{bucket}/big", str(out), "--multi-thread-streams", "0"))
        if subprocess.run(["cmp", "-s", str(big), str(out)]).returncode != 0:
            raise RuntimeError(f"{t.name}: the 1 GiB object read back differs")
        out.unlink()
        before = t.hsm_calls()
        # --s3-no-head-object: with SSE-C flags rclone otherwise sends a HEAD before every GET
        # (counted in /metrics), which would compare two requests against one.
        flags = ["--transfers", "16", "--checkers", "16", "--no-check-dest", "--s3-no-head", "--s3-no-head-object"]
        best["sput"] = min(best["sput"], t.rclone(rclone, "copy", str(work / "small"), f"{bucket}/small", *flags))
        dl = work / "dl-small"
        best["sget"] = min(best["sget"], t.rclone(rclone, "copy", f"{bucket}/small", str(dl), *flags))
        after = t.hsm_calls()
        if before is not None and run > 0:
            hsm = after - before if hsm is None else max(hsm, after - before)
        n = len(list(dl.iterdir()))
        if n != small:
            raise RuntimeError(f"{t.name}: {n} of {small} small objects read back")
        shutil.rmtree(dl)
        t.rclone(rclone, "purge", bucket)
    return {
        "put": size_mib / best["put"], "get": size_mib / best["get"],
        "sput": small / best["sput"], "sget": small / best["sget"], "hsm": hsm,
    }


def cipherstore(binary, mode, work, env_extra=None):
    # The data directory sits on the same filesystem as the peer's (tmpfs when available).
    srv = Server(binary, cache_ttl="3600", base=str(work))
    srv.env.update(env_extra or {})
    srv.__enter__()
    t = Target(mode, srv.endpoint, srv.ca, srv.process.pid, metrics=f"{srv.endpoint}/metrics")
    if mode == "SSE-C":
        key = os.urandom(32)
        import base64
        t.extra = ["--s3-sse-customer-algorithm", "AES256", "--s3-sse-customer-key-base64",
                   base64.b64encode(key).decode(), "--s3-sse-customer-key-md5",
                   base64.b64encode(hashlib.md5(key).digest()).decode()]
    if mode == "SSE-KP":
        crn = srv.create_root("bench-root")
        s3 = srv.boto3("alice")

        def bind(bucket):
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}}]})
        t.bind = bind
    return srv, t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--plaintext-bin", required=True)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--big-gib", type=int, default=5)
    a = ap.parse_args()
    rclone = str(pathlib.Path(sys.executable).parent / "rclone")
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-bench-s3-", dir=base))
    try:
        log(f"preparing {a.size_mib} MiB and {a.small} x 4 KiB in {work}")
        with open(work / "src.bin", "wb") as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(MiB))
        (work / "small").mkdir()
        for i in range(a.small):
            (work / "small" / f"o{i:05}").write_bytes(os.urandom(4096))
        results, rss = {}, {}
        for mode, binary, env in [("plaintext", a.plaintext_bin, {"CIPHERSTORE_BENCH_PLAINTEXT": "1"}),
                                  ("default", a.bin, {}), ("SSE-C", a.bin, {}), ("SSE-KP", a.bin, {})]:
            log(f"cipherstore {mode}")
            srv, t = cipherstore(binary, mode, work, env)
            try:
                results[mode] = workload(t, rclone, work, a.size_mib, a.small, a.runs)
                rss[mode] = peak_rss_mib(srv.process.pid)
            finally:
                srv.__exit__(None, None, None)
                shutil.rmtree(srv.data, ignore_errors=True)
        log("rclone serve s3 (peer)")
        port = free_port()
        certdir = work / "peer-tls"
        certdir.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(certdir / "key.pem"),
                        "-out", str(certdir / "cert.pem")], check=True, capture_output=True)
        (work / "peer-root").mkdir()
        peer = subprocess.Popen([rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{AK},{SK}",
                                 "--cert", str(certdir / "cert.pem"), "--key", str(certdir / "key.pem"),
                                 "--config", "/dev/null", "-q", str(work / "peer-root")],
                                stdout=subprocess.DEVNULL, stderr=open(work / "peer.log", "w"))
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            t = Target("rclone serve s3", f"https://127.0.0.1:{port}", certdir / "cert.pem", peer.pid)
            results["rclone serve s3"] = workload(t, rclone, work, a.size_mib, a.small, a.runs)
            rss["rclone serve s3"] = peak_rss_mib(peer.pid)
        finally:
            peer.terminate()
            peer.wait()

        big_rss = None
        if a.big_gib > 0:
            log(f"peak RSS during a {a.big_gib} GiB PUT (default protection, streamed from /dev/zero)")
            (work / "src.bin").unlink()
            srv, t = cipherstore(a.bin, "default", work)
            try:
                t.rclone(rclone, "mkdir", "t:big")
                size = a.big_gib << 30
                zero = subprocess.Popen(["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE)
                env = dict(os.environ, RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_T_TYPE="s3",
                           RCLONE_CONFIG_T_PROVIDER="Other", RCLONE_CONFIG_T_ACCESS_KEY_ID=AK,
                           RCLONE_CONFIG_T_SECRET_ACCESS_KEY=SK, RCLONE_CONFIG_T_ENDPOINT=t.endpoint,
                           RCLONE_CONFIG_T_REGION="us-east-1")
                subprocess.run([rclone, "--ca-cert", str(t.ca), "-q", "rcat", "--size", str(size),
                                "--s3-upload-cutoff", "5G", "--s3-chunk-size", "64M", "t:big/big"],
                               stdin=zero.stdout, env=env, check=True)
                zero.wait()
                big_rss = peak_rss_mib(srv.process.pid)
            finally:
                srv.__exit__(None, None, None)
                shutil.rmtree(srv.data, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    plain, peer = results["plaintext"], results["rclone serve s3"]
    print(f"\n{a.size_mib} MiB single object, {a.small} x 4 KiB at 16 transfers, rclone {subprocess.run([rclone, 'version'], capture_output=True, text=True).stdout.split()[1]} as the client, best of {a.runs}\n")
    print("| server | PUT MiB/s | GET MiB/s | 4 KiB PUT ops/s | 4 KiB GET ops/s | PUT vs plaintext | GET vs plaintext | PUT vs rclone | GET vs rclone | small PUT vs rclone | small GET vs rclone | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['put']:.0f} | {r['get']:.0f} | {r['sput']:.0f} | {r['sget']:.0f} | "
              f"{r['put'] / plain['put']:.2f}x | {r['get'] / plain['get']:.2f}x | {r['put'] / peer['put']:.2f}x | "
              f"{r['get'] / peer['get']:.2f}x | {r['sput'] / peer['sput']:.2f}x | {r['sget'] / peer['sget']:.2f}x | {rss[name]:.0f} |")
    kp, dflt = results["SSE-KP"], results["default"]
    print(f"\nSSE-KP small objects vs default: PUT {kp['sput'] / dflt['sput']:.2f}x, GET {kp['sget'] / dflt['sget']:.2f}x; "
          f"HSM calls during the warm small-object phase: {kp['hsm']}")
    if big_rss is not None:
        print(f"Server peak RSS during a {a.big_gib} GiB PUT: {big_rss:.0f} MiB")
    print(json.dumps({"results": results, "rss": rss, "big_rss": big_rss}), file=sys.stderr)


if __name__ == "__main__":
    main()
