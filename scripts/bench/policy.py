#!/usr/bin/env python3
"""Driver of scripts/bench-policy: what a bucket policy costs a request. One cipherstore
(data on tmpfs, default protection), two buckets of the same owner: one without a policy,
one with a 20-statement policy of the kinds operators write (TLS only, a refused
encryption, prefixes for named users, address blocks, time windows, listing limits), which
every request evaluates in full (a Deny is looked for in every statement, even for the
owner). The same load generator (examples/s3_load) runs 4 KiB PUT then GET passes over
both buckets in rotating order; prints the best ops/s of each, server CPU per request and
the ratios governed/plain of the same run."""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

from s3 import cipherstore, log

USERS = [f"tenant{i}" for i in range(1, 7)]


def twenty_statements(bucket):
    """A 20-statement policy that allows the load generator's owner everything it did
    before and makes every request evaluate every statement."""
    arn = f"arn:aws:s3:::{bucket}"
    s = [
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [arn, f"{arn}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "NoDsse", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"{arn}/*",
         "Condition": {"StringEquals": {"s3:x-amz-server-side-encryption": "aws:kms:dsse"}}},
        {"Sid": "NoHugeListings", "Effect": "Deny", "Principal": "*", "Action": "s3:ListBucket", "Resource": arn,
         "Condition": {"NumericGreaterThan": {"s3:max-keys": 5000}}},
        {"Sid": "FrozenArchive", "Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject", "s3:DeleteObject"],
         "Resource": f"{arn}/archive/2019/*", "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}},
    ]
    for i, user in enumerate(USERS, 1):
        principal = {"AWS": f"arn:aws:iam::000000000000:user/{user}"}
        s.append({"Sid": f"Home{i}", "Effect": "Allow", "Principal": principal,
                  "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": f"{arn}/home/{user}/*"})
        s.append({"Sid": f"List{i}", "Effect": "Allow", "Principal": principal, "Action": "s3:ListBucket",
                  "Resource": arn, "Condition": {"StringLike": {"s3:prefix": [f"home/{user}/*", f"shared/{user}/*"]}}})
    for i in range(1, 5):
        s.append({"Sid": f"Office{i}", "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
                  "Resource": [arn, f"{arn}/reports/*"],
                  "Condition": {"IpAddress": {"aws:SourceIp": [f"10.{i}.0.0/16", f"fd00:{i}::/32"]},
                                "DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}})
    assert len(s) == 20, len(s)
    return json.dumps({"Version": "2012-10-17", "Statement": s})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--load", required=True, help="the s3_load example binary")
    ap.add_argument("--small", type=int, default=10000, help="4 KiB objects per pass")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-bench-policy-", dir=base))
    try:
        srv, t = cipherstore(a.bin, "default", work, a.load)
        try:
            for user in USERS:
                subprocess.run([a.bin, "iam", "--data-dir", str(srv.data / "d"), "user", "create", user],
                               env=srv.env, check=True, capture_output=True)
            s3 = srv.boto3("alice")
            buckets = ("plain", "governed")
            for bucket in buckets:
                t.run(bucket, "mkbucket")
            text = twenty_statements("governed")
            s3.put_bucket_policy(Bucket="governed", Policy=text)
            log(f"a {len(text)}-byte policy of 20 statements on bucket governed; {a.runs} runs of {a.small} "
                f"4 KiB PUTs and GETs per bucket, {a.concurrency} clients")
            best, cpu, pairs = {}, {}, {"put": [], "get": []}
            for run in range(a.runs):
                # Pairs back to back, the order alternating: this machine drifts and jitters
                # by more than the effect measured, so each pair's ratio is kept too.
                order = buckets[run % 2:] + buckets[:run % 2]
                for op in ("put", "get"):
                    pair = {}
                    for bucket in order:
                        seconds = t.run(bucket, op, "small", a.small, 4096, a.concurrency)
                        pair[bucket] = (seconds, t.cpu)
                        if seconds < best.get((bucket, op), 1e9):
                            best[(bucket, op)] = seconds
                            cpu[(bucket, op)] = t.cpu
                    pairs[op].append((pair["plain"][0] / pair["governed"][0], pair["governed"][1] / pair["plain"][1]))
        finally:
            srv.__exit__(None, None, None)
            shutil.rmtree(srv.data, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"4 KiB objects, {a.concurrency} clients, {a.runs} pairs of passes (order alternating); best ops/s of "
          "each bucket, server CPU per 1,000 requests in its best pass, and the median over pairs of the ratio "
          "governed/plain\n")
    print("| op | ops/s, no policy | ops/s, 20-statement policy | ratio of bests | median pair ratio (min-max) "
          "| server CPU ms / 1,000, no policy | with policy | median pair CPU ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for op in ("put", "get"):
        p, g = a.small / best[("plain", op)], a.small / best[("governed", op)]
        cp, cg = cpu[("plain", op)] * 1e6 / a.small, cpu[("governed", op)] * 1e6 / a.small
        speed = sorted(r for r, _ in pairs[op])
        work = sorted(c for _, c in pairs[op])
        print(f"| {op.upper()} | {p:.0f} | {g:.0f} | {g / p:.2f}x | {statistics.median(speed):.2f}x "
              f"({speed[0]:.2f}-{speed[-1]:.2f}) | {cp:.0f} | {cg:.0f} | {statistics.median(work):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
