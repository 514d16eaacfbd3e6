#!/usr/bin/env python3
"""Driver of scripts/soak: CLIENTS threads of mixed PUT / GET / DELETE / multipart in every
protection mode against one server for SECONDS, every read verified against what was
written; the server's RSS sampled throughout. Fails on any error, any mismatch, or
memory of the server's own (anonymous RSS: mapped object files' pages are page cache)
that keeps growing (last quarter above the second by more than 20% + 32 MiB; the first
is warm-up)."""

import argparse
import base64
import hashlib
import os
import random
import sys
import threading
import time

from cipherstore_harness import Server, memory_mib

KiB, MiB = 1 << 10, 1 << 20
MODES = ["default", "SSE-C", "SSE-KP"]
SIZES = [1 * KiB, 64 * KiB, 1 * MiB, 6 * MiB]


def rss_mib(pid):
    """(RSS, its anonymous part) in MiB. The rest is file pages: GETs of 256 KiB or more
    map the object's file, and its page-cache pages count while mapped, though they are
    shared and the kernel's to drop; the anonymous part is the server's own memory."""
    m = memory_mib(pid)
    return m["rss"], m["anon"]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {"put": 0, "get": 0, "delete": 0, "multipart": 0}
        self.errors, self.mismatches, self.bytes = [], 0, 0

    def add(self, op, n=0):
        with self.lock:
            self.ops[op] += 1
            self.bytes += n


def client(srv, n, deadline, stats, ssec):
    rnd = random.Random(n)
    s3 = srv.boto3("alice")
    mode = MODES[n % len(MODES)]
    bucket = {"default": "soak-default", "SSE-C": "soak-ssec", "SSE-KP": "soak-kp"}[mode]
    extra = ssec if mode == "SSE-C" else {}
    mine = {}
    i = 0
    while time.monotonic() < deadline:
        i += 1
        roll = rnd.random()
        try:
            if roll < 0.40 or not mine:
                key = f"c{n:02}/o{i}"
                data = os.urandom(rnd.choice(SIZES))
                s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)
                mine[key] = hashlib.sha256(data).digest()
                stats.add("put", len(data))
            elif roll < 0.80:
                key = rnd.choice(list(mine))
                got = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
                if hashlib.sha256(got).digest() != mine[key]:
                    with stats.lock:
                        stats.mismatches += 1
                stats.add("get", len(got))
            elif roll < 0.95:
                key = rnd.choice(list(mine))
                s3.delete_object(Bucket=bucket, Key=key)
                del mine[key]
                try:
                    s3.head_object(Bucket=bucket, Key=key, **extra)
                    with stats.lock:
                        stats.mismatches += 1
                except s3.exceptions.ClientError as e:
                    if e.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                        raise
                stats.add("delete")
            else:
                key = f"c{n:02}/mp{i}"
                parts = [os.urandom(5 * MiB), os.urandom(rnd.choice(SIZES))]
                uid = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
                done = [{"PartNumber": k + 1, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=k + 1,
                                                                     Body=p, **extra)["ETag"]} for k, p in enumerate(parts)]
                s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": done}, **extra)
                mine[key] = hashlib.sha256(b"".join(parts)).digest()
                stats.add("multipart", sum(map(len, parts)))
        except Exception as e:  # noqa: BLE001 - every error is counted and reported
            with stats.lock:
                stats.errors.append(f"client {n}: {type(e).__name__}: {str(e)[:200]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--clients", type=int, default=64)
    a = ap.parse_args()
    key = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with Server(a.bin, cache_ttl="30", base=base) as srv:
        s3 = srv.boto3("alice")
        crn = srv.create_root("soak-root")
        for b in ("soak-default", "soak-ssec", "soak-kp"):
            s3.create_bucket(Bucket=b)
        s3.put_bucket_encryption(Bucket="soak-kp", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}}]})
        stats = Stats()
        t0 = time.monotonic()
        deadline = t0 + a.seconds
        threads = [threading.Thread(target=client, args=(srv, n, deadline, stats, ssec), daemon=True)
                   for n in range(a.clients)]
        for t in threads:
            t.start()
        samples = []
        while any(t.is_alive() for t in threads):
            samples.append((time.monotonic() - t0, rss_mib(srv.process.pid)))
            with stats.lock:
                done = sum(stats.ops.values())
            print(f"  {samples[-1][0]:6.0f} s  {done:7d} ops  RSS {samples[-1][1][0]:6.1f} MiB "
                  f"(anonymous {samples[-1][1][1]:6.1f})  "
                  f"errors {len(stats.errors)}  mismatches {stats.mismatches}", file=sys.stderr, flush=True)
            time.sleep(5)
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        # The first quarter is warm-up (allocator arenas fill as clients start); growth
        # is judged between the second quarter and the last.
        q = max(1, len(samples) // 4)

        def quarters(i):
            """Second quarter, last quarter and peak of column i (0: RSS, 1: anonymous)."""
            return (sum(r[i] for _, r in samples[q:2 * q]) / q, sum(r[i] for _, r in samples[-q:]) / q,
                    max(r[i] for _, r in samples))
        first, last, peak = quarters(0)
        anon_first, anon_last, anon_peak = quarters(1)
        flat = anon_last <= anon_first * 1.2 + 32
        total = sum(stats.ops.values())
        print(f"\nsoak: {a.clients} clients, {elapsed:.0f} s, every mode")
        print(f"operations: {total} ({', '.join(f'{k} {v}' for k, v in stats.ops.items())}), "
              f"{total / elapsed:.0f} ops/s, {stats.bytes / elapsed / MiB:.1f} MiB/s moved")
        print(f"errors: {len(stats.errors)}, mismatches: {stats.mismatches}")
        print(f"server RSS: second quarter {first:.0f} MiB, last quarter {last:.0f} MiB, peak {peak:.0f} MiB")
        print(f"  of which anonymous (the server's own): second quarter {anon_first:.0f} MiB, last quarter "
              f"{anon_last:.0f} MiB, peak {anon_peak:.0f} MiB ({'flat' if flat else 'GROWING'})")
        for e in stats.errors[:10]:
            print("  " + e)
        ok = not stats.errors and stats.mismatches == 0 and flat and total > 0
    print("soak passed" if ok and srv.failed == 0 else "soak FAILED")
    return 0 if ok and srv.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
