#!/usr/bin/env python3
"""Driver of scripts/bench-ab: a paired comparison of two or more cipherstore binaries,
one server per binary in turn (order reversed every other run), the same phases and
client as scripts/bench-s3. Prints medians, ratios to the first binary, and every run."""

import argparse
import pathlib
import shutil
import statistics
import sys
import tempfile

from s3 import MiB, cipherstore, log, peak_rss_mib

# name: (what, unit, op, prefix, objects, object size, clients)
PHASES = {
    "put": ("1 GiB PUT", "MiB/s", "put", "big", 1, 1024 * MiB, 1),
    "get": ("1 GiB GET", "MiB/s", "get", "big", 1, 1024 * MiB, 1),
    "wput": ("16 × 64 MiB PUT", "MiB/s", "put", "wide", 16, 64 * MiB, 16),
    "wget": ("16 × 64 MiB GET", "MiB/s", "get", "wide", 16, 64 * MiB, 16),
    "sput": ("64 clients × 4 KiB PUT", "ops/s", "put", "small", 10000, 4096, 64),
    "sget": ("64 clients × 4 KiB GET", "ops/s", "get", "small", 10000, 4096, 64),
}


def one_server(binary, a, work):
    """Runs every chosen phase once against a fresh server; returns {phase: (rate, cpu)}
    and the peak RSS."""
    config = f"[limits]\nstream_buffers_mib = {a.budget}\n" if a.budget else None
    srv, t = cipherstore(binary, a.mode, work, a.load, config=config)
    try:
        t.run("abbench", "mkbucket")
        if t.bind:
            t.bind("abbench")
        out = {}
        for name in a.phases:
            _, unit, op, prefix, count, size, clients = PHASES[name]
            seconds = t.run("abbench", op, prefix, count, size, clients)
            done = count * size / MiB if unit == "MiB/s" else count
            # CPU per GiB moved, or per 1,000 requests.
            per = count * size / (1024 * MiB) if unit == "MiB/s" else count / 1000
            out[name] = (done / seconds, t.cpu / per)
        return out, peak_rss_mib(srv.process.pid)
    finally:
        srv.__exit__(None, None, None)
        shutil.rmtree(srv.data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bins", nargs="+", metavar="BIN", help="cipherstore binaries; the first is the baseline")
    ap.add_argument("--load", required=True, help="the s3_load example binary")
    ap.add_argument("--runs", type=int, default=5, help="servers per binary (default 5)")
    ap.add_argument("--phases", default="put,get,wput,wget,sput,sget",
                    help="comma-separated, of: " + ", ".join(PHASES))
    ap.add_argument("--mode", default="default", choices=["default", "SSE-C", "SSE-KP", "plaintext"])
    ap.add_argument("--budget", type=int, help="limits.stream_buffers_mib for every server")
    a = ap.parse_args()
    asked = [p for p in a.phases.split(",") if p]
    unknown = [p for p in asked if p not in PHASES]
    # Run in PHASES order whatever the order asked: each PUT before the GET that reads it.
    a.phases = [p for p in PHASES if p in asked]
    if len(a.bins) < 2 or unknown or a.runs < 1:
        ap.error(f"two binaries or more, known phases and one run at least (unknown: {unknown})")
    # A GET phase reads what its PUT phase wrote in the same server run.
    orphans = [g for g, put in (("get", "put"), ("wget", "wput"), ("sget", "sput"))
               if g in a.phases and put not in a.phases]
    if orphans:
        ap.error(f"GET phases read what their PUT phase wrote: add "
                 f"{', '.join(g[:-3] + 'put' for g in orphans)} to --phases")
    for b in a.bins:
        if not pathlib.Path(b).is_file():
            ap.error(f"no binary at {b}")
    base = "/dev/shm" if pathlib.Path("/dev/shm").is_dir() else None
    work = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-bench-ab-", dir=base))
    rates = {b: {p: [] for p in a.phases} for b in a.bins}
    cpus = {b: {p: [] for p in a.phases} for b in a.bins}
    rss = {b: [] for b in a.bins}
    try:
        for run in range(a.runs):
            order = a.bins if run % 2 == 0 else a.bins[::-1]
            for b in order:
                log(f"run {run + 1}/{a.runs}: {b}")
                out, peak = one_server(b, a, work)
                for p, (rate, cpu) in out.items():
                    rates[b][p].append(rate)
                    cpus[b][p].append(cpu)
                rss[b].append(peak)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    names = [f"{chr(ord('A') + i)}" for i in range(len(a.bins))]
    print(f"\nPaired A/B, {a.mode} mode, {a.runs} runs per binary, medians; "
          f"ratios to A{f', budget {a.budget} MiB' if a.budget else ''}:")
    for n, b in zip(names, a.bins):
        print(f"  {n} = {b}")
    print("\n| phase | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for p in a.phases:
        what, unit = PHASES[p][:2]
        base_rate = statistics.median(rates[a.bins[0]][p])
        cells = [f"{statistics.median(rates[b][p]):.0f} {unit}"
                 + ("" if b == a.bins[0] else f" ({statistics.median(rates[b][p]) / base_rate:.2f}x)") for b in a.bins]
        print(f"| {what} | " + " | ".join(cells) + " |")
    for p in a.phases:
        cells = [f"{statistics.median(cpus[b][p]):.3f}" for b in a.bins]
        per = "GiB" if PHASES[p][1] == "MiB/s" else "1,000 requests"
        print(f"| server CPU s per {per}, {PHASES[p][0]} | " + " | ".join(cells) + " |")
    print("| server peak RSS MiB | " + " | ".join(f"{statistics.median(rss[b]):.0f}" for b in a.bins) + " |")
    print("\nEvery run:")
    for p in a.phases:
        for n, b in zip(names, a.bins):
            print(f"  {PHASES[p][0]:24} {n}: " + ", ".join(f"{x:.0f}" for x in rates[b][p]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
