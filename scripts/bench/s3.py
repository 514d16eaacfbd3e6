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

from cipherstore_harness import seaweed
from cipherstore_harness import Server, USERS, free_port, memory_mib

MiB = 1 << 20
AK, SK = USERS["alice"]
MODES = ["plaintext", "default", "SSE-C", "SSE-KP"]


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid):
    """User plus system CPU time the process has used so far."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def peak_rss_mib(pid):
    return memory_mib(pid)["peak"]


class Target:
    """One server under test, as the load generator sees it."""

    def __init__(self, name, endpoint, ca, pid, load, metrics=None):
        self.name, self.endpoint, self.ca, self.pid, self.load = name, endpoint, ca, pid, load
        self.extra = []
        self.metrics = metrics
        self.bind = None
        # A failed pass is retried once for the peers only: a failure of ours is a bug to
        # see, not noise to hide.
        self.attempts = 2 if metrics is None else 1

    def run(self, bucket, op, prefix="obj", count=1, size=4096, concurrency=1):
        """Runs one load-generator pass; returns its wall time in seconds. The server's CPU
        time during the pass is left in `self.cpu`."""
        cmd = [self.load, "--endpoint", self.endpoint, "--ca", str(self.ca), "--access-key", AK, "--secret-key", SK,
               "--bucket", bucket, "--prefix", prefix, "--count", str(count), "--size", str(size),
               "--concurrency", str(concurrency), *self.extra, op]
        env = dict(os.environ, RUST_BACKTRACE="0")
        for attempt in range(self.attempts):
            before = cpu_seconds(self.pid)
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode == 0:
                break
            again = attempt + 1 < self.attempts
            log(f"{self.name}: {op} {prefix} failed{', retrying once' if again else ''}: {r.stderr.strip()[-600:]}")
        else:
            raise RuntimeError(f"{self.name}: {op} {prefix} failed: {r.stderr.strip()[-600:]}")
        self.cpu = cpu_seconds(self.pid) - before
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


# Phases: (name, what, unit). Single object, many large objects at once, many small ones.
PHASES = [("put", "1 object PUT", "MiB/s"), ("get", "1 object GET", "MiB/s"),
          ("wput", "wide PUT", "MiB/s"), ("wget", "wide GET", "MiB/s"),
          ("sput", "4 KiB PUT", "ops/s"), ("sget", "4 KiB GET", "ops/s")]


def workload(t, a):
    """Best figures over `a.runs`: one object of `a.size_mib` PUT then GET by one client;
    `a.wide_clients` clients each PUT then GET one `a.wide_mib` MiB object; `a.small` 4 KiB
    objects PUT then GET by `a.concurrency` clients. Every GET is verified by the load
    generator. Returns MiB/s for the large phases, ops/s for the small ones."""
    best = {k: 1e9 for k, _, _ in PHASES}
    cpu = {k: 1e9 for k, _, _ in PHASES}
    hsm = None

    def phase(key, *args):
        seconds = t.run(bucket, *args)
        best[key] = min(best[key], seconds)
        cpu[key] = min(cpu[key], t.cpu)
    for run in range(a.runs):
        bucket = f"bench{run}"
        t.run(bucket, "mkbucket")
        if t.bind:
            t.bind(bucket)
        phase("put", "put", "big", 1, a.size_mib * MiB)
        phase("get", "get", "big", 1, a.size_mib * MiB)
        n, size = a.wide_clients, a.wide_mib * MiB
        phase("wput", "put", "wide", n, size, n)
        phase("wget", "get", "wide", n, size, n)
        before = t.hsm_calls()
        phase("sput", "put", "small", a.small, 4096, a.concurrency)
        phase("sget", "get", "small", a.small, 4096, a.concurrency)
        after = t.hsm_calls()
        if before is not None and run > 0:
            hsm = after - before if hsm is None else max(hsm, after - before)
    wide = a.wide_clients * a.wide_mib
    # Server CPU: seconds per GiB for the large phases, per 1,000 requests for the small.
    per = {"put": a.size_mib / 1024, "get": a.size_mib / 1024, "wput": wide / 1024, "wget": wide / 1024,
           "sput": a.small / 1000, "sget": a.small / 1000}
    return {
        "cpu": {k: cpu[k] / per[k] for k in per},
        "put": a.size_mib / best["put"], "get": a.size_mib / best["get"],
        "wput": wide / best["wput"], "wget": wide / best["wget"],
        "sput": a.small / best["sput"], "sget": a.small / best["sget"], "hsm": hsm,
    }


def cipherstore(binary, mode, work, load, config=None):
    """Starts cipherstore for `mode` (with `config`, a config.toml text, if given); the
    data directory sits on `work`'s filesystem."""
    srv = Server(binary, cache_ttl="3600", base=str(work), config=config)
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


def wait_for_port(port, proc, log_path, seconds=60):
    """Waits until something listens on `port`, or fails naming the peer's log."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode}; see {log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"peer did not listen on {port} within {seconds} s; see {log_path}")


def peer_cert(work, name):
    """A certificate like ours (P-256, for 127.0.0.1) for a peer server."""
    certdir = work / f"{name}-tls"
    certdir.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE", "-keyout", str(certdir / "key.pem"),
                    "-out", str(certdir / "cert.pem")], check=True, capture_output=True)
    return certdir / "cert.pem", certdir / "key.pem"


def rclone_peer(rclone, work, load):
    """Starts `rclone serve s3` over a local directory."""
    port = free_port()
    cert, key = peer_cert(work, "rclone")
    (work / "rclone-root").mkdir()
    log_path = work / "rclone.log"
    peer = subprocess.Popen([rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{AK},{SK}",
                             "--cert", str(cert), "--key", str(key),
                             "--config", "/dev/null", "-q", str(work / "rclone-root")],
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    wait_for_port(port, peer, log_path)
    return peer, Target("rclone serve s3", f"https://127.0.0.1:{port}", cert, peer.pid, load)


def seaweedfs_peer(weed, work, load):
    """Starts SeaweedFS (`weed server -s3`: master, volume server, filer and S3 gateway in
    one process) on loopback, S3 over HTTPS with a certificate like ours, one identity
    with the load generator's credentials, and enough volumes for one bucket per run
    (SeaweedFS gives every bucket its own volumes; PUTs fail when none is writable)."""
    cert, key = peer_cert(work, "seaweedfs")
    data = work / "seaweedfs-data"
    data.mkdir()
    identities = work / "seaweedfs-s3.json"
    seaweed.write_identities(identities, "bench", AK, SK)
    ports = seaweed.ports()
    log_path = work / "seaweedfs.log"
    peer = subprocess.Popen(seaweed.command(weed, data, ports, cert, key, identities, volumes=200),
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    wait_for_port(ports["https"], peer, log_path)
    t = Target("SeaweedFS", f"https://127.0.0.1:{ports['https']}", cert, peer.pid, load)
    # The S3 gateway listens before the filer has joined; wait until a bucket can be made.
    deadline = time.time() + 60
    while True:
        try:
            t.run("warmup", "mkbucket")
            return peer, t
        except RuntimeError:
            if time.time() > deadline or peer.poll() is not None:
                raise
            time.sleep(0.5)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--plaintext-bin", required=True)
    ap.add_argument("--load", required=True, help="the s3_load example binary")
    ap.add_argument("--weed", required=True, help="SeaweedFS's weed binary")
    ap.add_argument("--size-mib", type=int, default=1024, help="the single object's size")
    ap.add_argument("--wide-clients", type=int, default=16, help="clients of the wide phase")
    ap.add_argument("--wide-mib", type=int, default=64, help="each wide client's object size")
    ap.add_argument("--small", type=int, default=10000, help="4 KiB objects per small phase")
    ap.add_argument("--concurrency", type=int, default=64, help="clients of the 4 KiB phases")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big-gib", type=int, default=5)
    a = ap.parse_args()
    rclone = str(pathlib.Path(sys.executable).parent / "rclone")
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-bench-s3-", dir=base))
    results, rss, failed = {}, {}, {}
    big_rss = None
    try:
        for mode in MODES:
            log(f"cipherstore {mode}")
            srv, t = cipherstore(a.plaintext_bin if mode == "plaintext" else a.bin, mode, work, a.load)
            try:
                results[mode] = workload(t, a)
                rss[mode] = peak_rss_mib(srv.process.pid)
            finally:
                srv.__exit__(None, None, None)
                shutil.rmtree(srv.data, ignore_errors=True)
        for name, start in (("SeaweedFS", lambda: seaweedfs_peer(a.weed, work, a.load)),
                            ("rclone serve s3", lambda: rclone_peer(rclone, work, a.load))):
            log(f"{name} (peer)")
            peer, t = start()
            try:
                results[name] = workload(t, a)
                rss[name] = peak_rss_mib(peer.pid)
            except RuntimeError as e:
                # A peer that fails a phase is reported as failed; the run goes on.
                log(f"{name} left out of this run: {e}")
                failed[name] = str(e).splitlines()[0][:300]
            finally:
                stop(peer)
                for d in work.glob(f"{name.split()[0].lower()}-*"):
                    if d.is_dir():
                        shutil.rmtree(d, ignore_errors=True)
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
    report(a, results, rss, big_rss, failed)


def table(rows, header):
    print("| server | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for name, cells in rows:
        print(f"| {name} | " + " | ".join(cells) + " |")


def report(a, results, rss, big_rss, failed):
    print(f"\nexamples/s3_load as the client for every server, best of {a.runs}: one {a.size_mib} MiB object "
          f"(1 client); wide: {a.wide_clients} clients x {a.wide_mib} MiB; {a.small} x 4 KiB at "
          f"{a.concurrency} clients")
    heads = [what for _, what, _ in PHASES]
    # What the server spends leads: on 2 shared vCPUs the client's own TLS takes half the
    # machine, so wall-clock ratios understate a server's cost.
    print("\nServer CPU (user + system, all threads; least over the runs): seconds per GiB for the large "
          "phases, per 1,000 requests for the 4 KiB ones\n")
    table([(name, [f"{r['cpu'][k]:.3f}" for k, _, _ in PHASES]) for name, r in results.items()], heads)
    for label in ("plaintext", "SeaweedFS"):
        if label not in results:
            continue
        base = results[label]["cpu"]
        print(f"\nServer CPU as a ratio to {label}'s (same run; lower is less CPU)\n")
        table([(name, [f"{r['cpu'][k] / base[k]:.2f}x" for k, _, _ in PHASES])
               for name, r in results.items() if name != label], heads)
    print("\nThroughput\n")
    table([(name, [f"{r[k]:.0f}" for k, _, _ in PHASES] + [f"{rss[name]:.0f}"]) for name, r in results.items()]
          + [(name, [f"failed: {why}"]) for name, why in failed.items()],
          [f"{what} {unit}" for _, what, unit in PHASES] + ["peak RSS MiB"])
    for label in ("plaintext", "SeaweedFS", "rclone serve s3"):
        if label not in results:
            continue
        base = results[label]
        print(f"\nThroughput as a ratio to {label}'s (same run)\n")
        table([(name, [f"{r[k] / base[k]:.2f}x" for k, _, _ in PHASES])
               for name, r in results.items() if name != label], heads)
    # 10 Gbit/s is 1.164 GiB/s, or 305,176 requests/s of 4 KiB.
    gib_per_s, ops_per_s = 10e9 / 8 / (1 << 30), 10e9 / 8 / 4096
    print("\nServer cores for 10 Gbit/s (multiply by 10 for 100 Gbit/s), from the CPU figures above: "
          "ingest as the wide phase, reads as the wide GET, and 4 KiB objects\n")
    print("| server | PUT | GET | 4 KiB PUT | 4 KiB GET |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        c = r["cpu"]
        print(f"| {name} | {c['wput'] * gib_per_s:.1f} | {c['wget'] * gib_per_s:.1f} | "
              f"{c['sput'] / 1000 * ops_per_s:.1f} | {c['sget'] / 1000 * ops_per_s:.1f} |")
    kp, dflt, ssec = results["SSE-KP"], results["default"], results["SSE-C"]
    print(f"\nMD5-bound PUTs vs SSE-C's (no MD5): default {dflt['put'] / ssec['put']:.2f}x single, "
          f"{dflt['wput'] / ssec['wput']:.2f}x wide; SSE-KP {kp['put'] / ssec['put']:.2f}x single, "
          f"{kp['wput'] / ssec['wput']:.2f}x wide")
    print(f"SSE-KP small objects vs default: PUT {kp['sput'] / dflt['sput']:.2f}x, GET {kp['sget'] / dflt['sget']:.2f}x; "
          f"HSM calls during the warm small-object phase: {kp['hsm']}")
    if big_rss is not None:
        print(f"Server peak RSS during a {a.big_gib} GiB PUT: {big_rss:.0f} MiB")
    print(json.dumps({"results": results, "rss": rss, "big_rss": big_rss}), file=sys.stderr)


if __name__ == "__main__":
    main()
