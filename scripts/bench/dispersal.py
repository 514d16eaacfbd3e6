"""Dispersal through the S3 endpoint (scripts/bench-dispersal): one server storing each
object whole (the single-store default) and one dispersing it 3-of-5 over five target
directories, started in turn (the order reversed every other run), driven by the same
client (examples/s3_load) over HTTPS with the data on tmpfs. Phases: one object PUT and
GET, the same GET with two targets gone (two data slices rebuilt from parity), and 4 KiB
objects PUT and GET by many clients. Prints medians, the dispersed/single ratio, and every
run's figures."""

import argparse
import shutil
import statistics
import tempfile

from s3 import MiB, Target, log
from cipherstore_harness import Server

PHASES = [("put", "1 object PUT", "MiB/s"), ("get", "1 object GET", "MiB/s"),
          ("dget", "GET, 2 of 5 targets gone", "MiB/s"),
          ("sput", "4 KiB PUT", "ops/s"), ("sget", "4 KiB GET", "ops/s")]


def one(binary, load, dispersal, a, work):
    srv = Server(binary, cache_ttl="3600", base=str(work), dispersal=dispersal)
    srv.__enter__()
    try:
        t = Target("dispersed" if dispersal else "single", srv.endpoint, srv.ca, srv.process.pid, load,
                   metrics=f"{srv.endpoint}/metrics")
        t.run("bench", "mkbucket")
        size = a.size_mib * MiB
        out = {}
        out["put"] = a.size_mib / t.run("bench", "put", "big", 1, size)
        out["get"] = a.size_mib / t.run("bench", "get", "big", 1, size)
        if dispersal:
            for target in srv.targets[:2]:
                shutil.rmtree(target)
            out["dget"] = a.size_mib / t.run("bench", "get", "big", 1, size)
            for target in srv.targets[:2]:
                target.mkdir()
        out["sput"] = a.small / t.run("bench", "put", "small", a.small, 4096, a.concurrency)
        out["sget"] = a.small / t.run("bench", "get", "small", a.small, 4096, a.concurrency)
        return out
    finally:
        srv.__exit__(None, None, None)
        srv._remove_data()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("binary")
    ap.add_argument("--load", required=True, help="the s3_load example binary")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=5000, help="4 KiB objects per small phase")
    ap.add_argument("--concurrency", type=int, default=64)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cs-bench-dispersal-", dir="/dev/shm")
    results = {"single": [], "dispersed": []}
    try:
        for run in range(a.runs):
            order = [None, (3, 5, 4)] if run % 2 == 0 else [(3, 5, 4), None]
            for d in order:
                name = "dispersed" if d else "single"
                log(f"run {run + 1}/{a.runs}: {name}")
                results[name].append(one(a.binary, a.load, d, a, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{a.size_mib} MiB objects, {a.small} x 4 KiB by {a.concurrency} clients; medians of {a.runs} runs")
    print(f"| phase | single | dispersed 3 of 5 | ratio |\n|---|---|---|---|")
    single = {k: statistics.median(r[k] for r in results["single"]) for k, _, _ in PHASES if k != "dget"}
    for key, what, unit in PHASES:
        d = statistics.median(r[key] for r in results["dispersed"])
        base = single["get"] if key == "dget" else single[key]
        print(f"| {what} | {base:.0f} {unit} | {d:.0f} {unit} | {d / base:.2f}x |")
    print("\nevery run:")
    for name, runs in results.items():
        for r in runs:
            print(f"  {name}: " + ", ".join(f"{k} {v:.0f}" for k, v in r.items()))


if __name__ == "__main__":
    main()
