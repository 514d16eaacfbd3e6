#!/usr/bin/env python3
"""Driver of scripts/bench-cluster: a running scripts/cluster (radosgw also on HTTPS) is
driven with one load generator (examples/s3_load: one client thread, SigV4, every GET
checked byte for byte) against radosgw directly (plaintext, the baseline) and against
gateway A in each protection mode, and against a third gateway that keeps every object in
a blob (store.inline_max_bytes = 0: the 4 KiB phases only); then two gateways against
one. With the records on PostgreSQL (scripts/cluster with CLUSTER_META=postgres), one more
gateway keeps its records in the cluster's etcd instead, and the 4 KiB phases compare the
two engines through the same gateway code in the same run. From the gateways' /metrics it
reports blob backend requests and metadata round trips per operation, and from etcd's own
metrics its database bytes per object. Prints Markdown; ratios are to the radosgw
baseline measured in the same run."""

import argparse
import base64
import json
import os
import pathlib
import ssl
import subprocess
import sys
import time
import urllib.request

import boto3
from botocore.config import Config

MiB = 1 << 20


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def metrics(url, ca):
    """A gateway's (or etcd's) counters: name -> value (labels kept in the name)."""
    ctx = ssl.create_default_context(cafile=ca) if url.startswith("https") else None
    text = urllib.request.urlopen(url, context=ctx, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


BLOB = ["cipherstore_backend_put_total", "cipherstore_backend_multipart_requests_total",
        "cipherstore_backend_get_total", "cipherstore_backend_head_total", "cipherstore_backend_delete_total"]
ETCD = ["cipherstore_etcd_range_total", "cipherstore_etcd_txn_total"]


class Target:
    def __init__(self, name, endpoint, ca, ak, sk, load, metrics_urls=()):
        self.name, self.endpoint, self.ca, self.ak, self.sk, self.load = name, endpoint, ca, ak, sk, load
        self.extra = []
        self.metrics_urls = list(metrics_urls)
        cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3})
        self.s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                               region_name="us-east-1", verify=ca, config=cfg)

    def run(self, bucket, op, prefix, count, size, concurrency=1):
        cmd = [self.load, "--endpoint", self.endpoint, "--ca", self.ca, "--access-key", self.ak,
               "--secret-key", self.sk, "--bucket", bucket, "--prefix", prefix, "--count", str(count),
               "--size", str(size), "--concurrency", str(concurrency), *self.extra, op]
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RUST_BACKTRACE": "0"})
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: {op} {prefix} failed: {r.stderr[-1500:]}")
        return json.loads(r.stdout)["seconds"]

    def counters(self):
        total = {}
        for url in self.metrics_urls:
            for k, v in metrics(url, self.ca).items():
                total[k] = total.get(k, 0) + v
        return total

    def empty(self, bucket):
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def per_op(before, after, names, ops):
    return sum(after.get(n, 0) - before.get(n, 0) for n in names) / ops


def measure(t, bucket, size_mib, small, runs, concurrency, sweep):
    """Best throughput over `runs`, and per-operation backend costs from the last run; the
    large-object phases are skipped when `size_mib` is 0."""
    best = {"put": 1e9, "get": 1e9, "sput": 1e9, "sget": 1e9}
    costs = {}
    for run in range(runs):
        c = [t.counters() if t.metrics_urls else {}]

        def phase(key, *args):
            best[key] = min(best[key], t.run(bucket, *args))
            c.append(t.counters() if t.metrics_urls else {})

        if size_mib:
            phase("put", "put", "big", 1, size_mib * MiB)
            phase("get", "get", "big", 1, size_mib * MiB)
        phase("sput", "put", "small", small, 4096, concurrency)
        phase("sget", "get", "small", small, 4096, concurrency)
        if t.metrics_urls:
            t.run(bucket, "head", "small", small, 4096, concurrency)
            c.append(t.counters())
            pages = 0
            for _ in t.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="small/",
                                                                     PaginationConfig={"PageSize": 1000}):
                pages += 1
            c.append(t.counters())
            ops = ([(f"{size_mib} MiB PUT", 1), (f"{size_mib} MiB GET", 1)] if size_mib else []) + [
                ("4 KiB PUT", small), ("4 KiB GET", small), ("HEAD", small), ("List page (1000 keys)", pages)]
            costs = {name: (per_op(c[i], c[i + 1], BLOB, n), per_op(c[i], c[i + 1], ETCD, n))
                     for i, (name, n) in enumerate(ops)}
        t.empty(bucket)
        sweep()
    rate = lambda k, amount: amount / best[k] if best[k] < 1e9 else None  # noqa: E731
    return {"put": rate("put", size_mib), "get": rate("get", size_mib),
            "sput": rate("sput", small), "sget": rate("sget", small), "costs": costs}


def blobs_only_config(text):
    """The cluster's gateway configuration with every object in a blob (inline_max_bytes = 0)."""
    return text.replace("[store]\n", "[store]\ninline_max_bytes = 0\n", 1)


def etcd_records_config(text):
    """The cluster's gateway configuration with the records in etcd: without its
    [store.postgres] section (the last of the file, scripts/cluster)."""
    head, found, _ = text.partition("[store.postgres]\n")
    if not found:
        raise RuntimeError("gateway.toml has no [store.postgres] section")
    return head


def extra_gateway(cluster, binary, port, name, configure):
    """One more gateway of the cluster, its configuration `configure(gateway.toml's text)`;
    its own data directory and log (log/gateway-NAME.log), the cluster's users and keys."""
    config = cluster / f"gateway-{name}.toml"
    config.write_text(configure((cluster / "gateway.toml").read_text()))
    tls = cluster / "gw-a" / "tls"
    cmd = (f'source "{cluster}/keys.env" && exec "{binary}" serve --config "{config}" --listen 127.0.0.1:{port} '
           f'--data-dir "{cluster}/gw-{name}" --users "{cluster}/users" '
           f'--tls-cert "{tls}/cert.pem" --tls-key "{tls}/key.pem"')
    log_file = open(cluster / "log" / f"gateway-{name}.log", "ab")
    proc = subprocess.Popen(["bash", "-c", cmd], stdout=log_file, stderr=log_file)
    ctx = ssl.create_default_context(cafile=str(tls / "cert.pem"))
    for _ in range(600):
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=ctx, timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} gateway exited: see {cluster}/log/gateway-{name}.log")
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"the {name} gateway did not answer within 60 s")


def etcd_db_bytes(endpoints):
    return max(metrics(f"{e}/metrics", None).get("etcd_mvcc_db_total_size_in_use_in_bytes", 0) for e in endpoints)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--env", required=True)
    ap.add_argument("--rgw-ca", required=True)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    a = ap.parse_args()
    env = dict(line.split("=", 1) for line in pathlib.Path(a.env).read_text().split() if "=" in line)
    cluster = pathlib.Path(a.cluster)
    ca = env["CA"]
    etcd = env["ETCD_ENDPOINTS"].split(",")

    def rgw_gc():
        # radosgw frees deleted objects' data in the background hours later: free it now,
        # or the memstore OSD fills up over the runs.
        subprocess.run(["radosgw-admin", "gc", "process", "--include-all"], check=True, capture_output=True,
                       env={**os.environ, "CEPH_CONF": str(cluster / "ceph" / "ceph.conf")})

    def sweeper(config):
        """Frees what a phase left: the sweep of the gateways configured by `config`, then radosgw's gc."""
        def sweep():
            subprocess.run([a.bin, "sweep", "--config", str(config), "--grace", "0"],
                           check=True, capture_output=True)
            rgw_gc()
        return sweep

    sweep = sweeper(cluster / "gateway.toml")

    rgw = Target("radosgw (plaintext)", env["BACKEND_TLS_ENDPOINT"], a.rgw_ca, env["BACKEND_AK"],
                 env["BACKEND_SK"], a.load)
    gw = lambda name, endpoint, urls: Target(name, endpoint, ca, env["AK"], env["SK"], a.load, urls)  # noqa: E731
    url_a, url_b = f"{env['ENDPOINT_A']}/metrics", f"{env['ENDPOINT_B']}/metrics"
    results = {}

    log(f"radosgw directly over HTTPS: {a.size_mib} MiB, {a.small} x 4 KiB at {a.concurrency} connections")
    rgw.s3.create_bucket(Bucket="bench-raw")
    results[rgw.name] = measure(rgw, "bench-raw", a.size_mib, a.small, a.runs, a.concurrency, rgw_gc)

    db_per_object = None
    for mode in ["default", "SSE-C", "SSE-KP"]:
        t = gw(f"gateway, {mode}", env["ENDPOINT_A"], [url_a])
        bucket = f"bench-{mode.lower()}"
        t.s3.create_bucket(Bucket=bucket)
        if mode == "SSE-C":
            t.extra = ["--sse-c-key-base64", base64.b64encode(os.urandom(32)).decode()]
        if mode == "SSE-KP":
            t.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": env["KP_CRN"]}}]})
        log(f"gateway A, {mode}")
        if mode == "default":
            db0 = etcd_db_bytes(etcd)
            t.run(bucket, "put", "sizing", a.small, 4096, a.concurrency)
            db_per_object = (etcd_db_bytes(etcd) - db0) / a.small
            t.empty(bucket)
            sweep()
        results[t.name] = measure(t, bucket, a.size_mib, a.small, a.runs, a.concurrency, sweep)

    def extra_phase(port, name, title, configure):
        """The 4 KiB phases through one more gateway (extra_gateway), stopped after: its
        results, and the etcd database bytes per object of a first sizing pass."""
        proc = extra_gateway(cluster, a.bin, port, name, configure)
        try:
            t = gw(title, f"https://127.0.0.1:{port}", [f"https://127.0.0.1:{port}/metrics"])
            bucket = f"bench-{name}"
            t.s3.create_bucket(Bucket=bucket)
            phase_sweep = sweeper(cluster / f"gateway-{name}.toml")
            db0 = etcd_db_bytes(etcd)
            t.run(bucket, "put", "sizing", a.small, 4096, a.concurrency)
            db_bytes = (etcd_db_bytes(etcd) - db0) / a.small
            t.empty(bucket)
            phase_sweep()
            results[title] = measure(t, bucket, 0, a.small, a.runs, a.concurrency, phase_sweep)
            return results[title], db_bytes
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    port = int(env["ENDPOINT_B"].rsplit(":", 1)[1]) + 1
    log(f"a third gateway keeping every object in a blob (inline_max_bytes = 0), port {port}: 4 KiB phases")
    _, db_per_blob_object = extra_phase(port, "blobs-only", "gateway, default, every object in a blob",
                                        blobs_only_config)
    engines = None
    if env.get("META") == "postgres":
        log(f"records on PostgreSQL against etcd: a gateway with its records in etcd, port {port + 1}: 4 KiB phases")
        engines, db_per_object = extra_phase(port + 1, "etcd-records", "gateway, default, records in etcd",
                                             etcd_records_config)

    log("two gateways against one: 4 KiB PUT and GET, default mode, same total connections")
    one = gw("one gateway", env["ENDPOINT_A"], [url_a])
    one.s3.create_bucket(Bucket="bench-scale")
    two = [gw("gateway A", env["ENDPOINT_A"], [url_a]), gw("gateway B", env["ENDPOINT_B"], [url_b])]
    scale = {}
    for op in ["put", "get"]:
        t1 = one.run("bench-scale", op, "one", a.small, 4096, a.concurrency)
        start = time.monotonic()
        procs = []
        for i, t in enumerate(two):
            cmd = [t.load, "--endpoint", t.endpoint, "--ca", t.ca, "--access-key", t.ak, "--secret-key", t.sk,
                   "--bucket", "bench-scale", "--prefix", f"two{i}", "--count", str(a.small // 2), "--size", "4096",
                   "--concurrency", str(a.concurrency // 2), op]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for p in procs:
            out, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"two gateways {op}: {err[-1500:]}")
        t2 = time.monotonic() - start
        scale[op] = (a.small / t1, (a.small // 2) * 2 / t2)

    base = results[rgw.name]
    print(f"\nscripts/bench-cluster {a.size_mib} {a.small} {a.runs} — one s3_load client over HTTPS, "
          f"best of {a.runs}; 4 KiB objects at {a.concurrency} connections\n")
    print(f"| target | {a.size_mib} MiB PUT MiB/s | GET MiB/s | 4 KiB PUT ops/s | 4 KiB GET ops/s |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        def cell(k, fmt):
            if r[k] is None:
                return "—"
            v = format(r[k], fmt)
            return v if r is base else f"{v} ({r[k] / base[k]:.2f}x)"
        print(f"| {name} | {cell('put', '.0f')} | {cell('get', '.0f')} | {cell('sput', '.0f')} | {cell('sget', '.0f')} |")
    print("\nBackend requests and metadata round trips per operation (gateway A's /metrics):\n")
    names = [n for n in results if results[n]["costs"]]
    print("| operation | " + " | ".join(f"{n}: blob / metadata" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for op in results[names[0]]["costs"]:
        cells = [f"{results[n]['costs'][op][0]:.2f} / {results[n]['costs'][op][1]:.2f}"
                 if op in results[n]["costs"] else "—" for n in names]
        print(f"| {op} | " + " | ".join(cells) + " |")
    print("\nTwo gateways against one (default mode, 4 KiB, same total connections):\n")
    print("| operation | one gateway ops/s | two gateways ops/s | ratio |")
    print("|---|---|---|---|")
    for op, (v1, v2) in scale.items():
        print(f"| {op.upper()} | {v1:.0f} | {v2:.0f} | {v2 / v1:.2f}x |")
    d = results["gateway, default"]
    if engines:
        print("\nRecords on PostgreSQL against records in etcd (default mode, 4 KiB, same run):\n")
        print("| operation | records in etcd ops/s | records on PostgreSQL ops/s | ratio |")
        print("|---|---|---|---|")
        for k, op in [("sput", "PUT"), ("sget", "GET")]:
            print(f"| {op} | {engines[k]:.0f} | {d[k]:.0f} | {d[k] / engines[k]:.2f}x |")
        print(f"\netcd: {db_per_object:.0f} bytes of database per 4 KiB object kept in its record "
              "(the gateway with its records in etcd); scripts/bench-meta measures PostgreSQL's.")
    else:
        etcd_rt = d["costs"]["4 KiB PUT"][1] * d["sput"]
        print(f"\netcd: {db_per_object:.0f} bytes of database per 4 KiB object kept in its record, "
              f"{db_per_blob_object:.0f} per object in a blob (default mode); at the 4 KiB PUT rate "
              f"the gateway drove {etcd_rt:.0f} etcd round trips/s.")


if __name__ == "__main__":
    main()
