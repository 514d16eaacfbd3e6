#!/usr/bin/env python3
"""Driver of scripts/bench-versions: one cipherstore (data on tmpfs) per protection mode,
three buckets in it: one keeping versions, one with Object Lock (versions, and a default
GOVERNANCE retention of a day on every PUT) and one neither, driven by the same load
generator (examples/s3_load) in rotating passes: 4 KiB PUT ops/s (from the second run on,
every PUT in the versioned buckets keeps the version it replaces) and GET ops/s, then
ListObjectVersions pages/s over the versioned bucket. Prints Markdown tables of the
figures and the ratios to the unversioned bucket of the same run."""

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

from s3 import cipherstore, log


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--load", required=True, help="the s3_load example binary")
    ap.add_argument("--small", type=int, default=10000, help="4 KiB objects per pass")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--modes", default="default,SSE-C,SSE-KP")
    a = ap.parse_args()
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-bench-versions-", dir=base))
    rows = []
    try:
        for mode in a.modes.split(","):
            log(f"{mode}: {a.runs} runs of {a.small} 4 KiB PUTs and GETs per bucket")
            srv, t = cipherstore(a.bin, mode, work, a.load)
            try:
                s3 = srv.boto3("alice")
                buckets = ("plain", "versioned", "locked")
                for bucket in buckets:
                    t.run(bucket, "mkbucket")
                    if t.bind:
                        t.bind(bucket)
                for bucket in ("versioned", "locked"):
                    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
                s3.put_object_lock_configuration(Bucket="locked", ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
                best = {}
                for run in range(a.runs):
                    # Rotate which bucket goes first, so drift favours none.
                    order = buckets[run % 3:] + buckets[:run % 3]
                    for op in ("put", "get"):
                        for bucket in order:
                            seconds = t.run(bucket, op, "small", a.small, 4096, a.concurrency)
                            best[(bucket, op)] = min(best.get((bucket, op), 1e9), seconds)
                # boto3 parses every page: ListObjectsV2 of the unversioned bucket, the same
                # client, is the baseline that tells its cost from the server's.
                def pages_per_second(paginator, bucket):
                    pages, entries, start = 0, 0, time.monotonic()
                    for page in s3.get_paginator(paginator).paginate(Bucket=bucket, PaginationConfig={"PageSize": 1000}):
                        pages += 1
                        entries += len(page.get("Versions", page.get("Contents", [])))
                    return pages / (time.monotonic() - start), entries
                versions_pps, versions = pages_per_second("list_object_versions", "versioned")
                objects_pps, _ = pages_per_second("list_objects_v2", "plain")
                rows.append((mode, {k: a.small / v for k, v in best.items()}, versions_pps, versions, objects_pps))
            finally:
                srv.__exit__(None, None, None)
                shutil.rmtree(srv.data, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"4 KiB objects, {a.concurrency} clients, best of {a.runs} runs; ListObjectVersions of the versioned "
          "bucket in pages of 1,000 (boto3)\n")
    print("| mode | PUT ops/s unversioned | PUT ops/s versioned | ratio | GET ops/s unversioned | GET ops/s versioned "
          "| ratio | ListObjectVersions pages/s (versions) | ListObjectsV2 pages/s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode, f, pps, versions, objects_pps in rows:
        pu, pv, gu, gv = f[("plain", "put")], f[("versioned", "put")], f[("plain", "get")], f[("versioned", "get")]
        print(f"| {mode} | {pu:.0f} | {pv:.0f} | {pv / pu:.2f}x | {gu:.0f} | {gv:.0f} | {gv / gu:.2f}x "
              f"| {pps:.1f} ({versions}) | {objects_pps:.1f} | {pps / objects_pps:.2f}x |")
    print("\nObject Lock (versions, and a default GOVERNANCE retention of a day on every PUT), same runs\n")
    print("| mode | PUT ops/s unversioned | PUT ops/s Object Lock | ratio | GET ops/s unversioned | GET ops/s Object Lock "
          "| ratio |")
    print("|---|---|---|---|---|---|---|")
    for mode, f, *_ in rows:
        pu, pl, gu, gl = f[("plain", "put")], f[("locked", "put")], f[("plain", "get")], f[("locked", "get")]
        print(f"| {mode} | {pu:.0f} | {pl:.0f} | {pl / pu:.2f}x | {gu:.0f} | {gl:.0f} | {gl / gu:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
