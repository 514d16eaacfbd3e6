#!/usr/bin/env python3
"""Driver of scripts/bench-lifecycle: one cipherstore (fs store on tmpfs, a lifecycle day of
2 s) with a bucket `hot` the load generator (examples/s3_load) writes and reads 4 KiB
objects in, and a bucket `doomed` full of 4 KiB objects. Each run measures PUT then GET
ops/s on `hot` twice: with no rules on `doomed` (idle) and with a rule expiring all of it
(the worker deleting at its default pace, lifecycle.actions_per_sec), in alternating order.
Then the server restarts with the pace lifted, and the rest of `doomed` is expired while
nothing else runs: objects expired per second, from /metrics. Prints Markdown tables."""

import argparse
import os
import pathlib
import shutil
import ssl
import tempfile
import time
import urllib.request

from s3 import cipherstore, log

DAY = 2


def expired(srv):
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    text = urllib.request.urlopen(f"{srv.endpoint}/metrics", context=ctx).read().decode()
    for line in text.splitlines():
        if line.startswith('cipherstore_lifecycle_actions_total{action="expired"} '):
            return int(float(line.split()[1]))
    return 0


def config(rate):
    return f"[lifecycle]\nday_seconds = {DAY}\n" + (f"actions_per_sec = {rate}\n" if rate else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--load", required=True, help="the s3_load example binary")
    ap.add_argument("--doomed", type=int, default=20000, help="4 KiB objects to expire")
    ap.add_argument("--small", type=int, default=5000, help="4 KiB objects per PUT or GET pass")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-bench-lifecycle-", dir=base))
    rule = {"Rules": [{"ID": "all", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}]}
    try:
        srv, t = cipherstore(a.bin, "default", work, a.load, config=config(None))
        try:
            s3 = srv.boto3("alice")
            for bucket in ("hot", "doomed"):
                t.run(bucket, "mkbucket")
            log(f"writing {a.doomed} objects to expire")
            t.run("doomed", "put", "d", a.doomed, 4096, a.concurrency)
            time.sleep(2 * DAY)
            best = {}
            deleted_during = []
            for run in range(a.runs):
                order = ("idle", "busy") if run % 2 == 0 else ("busy", "idle")
                for state in order:
                    if state == "busy":
                        s3.put_bucket_lifecycle_configuration(Bucket="doomed", LifecycleConfiguration=rule)
                        start = expired(srv)
                        while expired(srv) == start:
                            time.sleep(0.1)
                    else:
                        s3.delete_bucket_lifecycle(Bucket="doomed")
                        # The pass stops within 64 actions of the deletion.
                        time.sleep(1.0)
                        while True:
                            before = expired(srv)
                            time.sleep(0.5)
                            if expired(srv) == before:
                                break
                    before = expired(srv)
                    for op in ("put", "get"):
                        seconds = t.run("hot", op, f"r{run}", a.small, 4096, a.concurrency)
                        best[(state, op)] = min(best.get((state, op), 1e9), seconds)
                    if state == "busy":
                        deleted_during.append(expired(srv) - before)
                        log(f"run {run}: the worker expired {deleted_during[-1]} objects during the busy passes")
                    log(f"run {run} {state}: PUT {a.small / best[(state, 'put')]:.0f}, "
                        f"GET {a.small / best[(state, 'get')]:.0f} ops/s (best so far)")
            s3.delete_bucket_lifecycle(Bucket="doomed")
            srv.__exit__(None, None, None)
            (srv.data / "config.toml").write_text(config(100000))
            srv.__enter__()
            s3 = srv.boto3("alice")
            left = sum(page.get("KeyCount", 0) for page in s3.get_paginator("list_objects_v2").paginate(Bucket="doomed"))
            log(f"expiring the {left} objects left with the pace lifted")
            s3.put_bucket_lifecycle_configuration(Bucket="doomed", LifecycleConfiguration=rule)
            while expired(srv) == 0:
                time.sleep(0.05)
            first = time.monotonic()
            deadline = first + 600
            while expired(srv) < left:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {expired(srv)} of {left} objects expired in 600 s")
                time.sleep(0.1)
            seconds = time.monotonic() - first
        finally:
            srv.__exit__(None, None, None)
            shutil.rmtree(srv.data, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"4 KiB objects, {a.concurrency} clients, {a.small} per pass, best of {a.runs} runs; "
          f"the worker at its default pace (200 changes/s) while busy\n")
    print("| operation | ops/s, worker idle | ops/s, worker expiring | ratio |")
    print("|---|---|---|---|")
    for op in ("put", "get"):
        idle, busy = a.small / best[("idle", op)], a.small / best[("busy", op)]
        print(f"| {op.upper()} | {idle:.0f} | {busy:.0f} | {busy / idle:.2f}x |")
    print(f"\nobjects the worker expired during the busy runs: {deleted_during}")
    print(f"\nexpiry with the pace lifted: {left} objects in {seconds:.1f} s, {left / seconds:.0f} objects/s")


if __name__ == "__main__":
    main()
