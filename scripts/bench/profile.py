#!/usr/bin/env python3
"""Driver of scripts/profile-get: where a GET's server cycles go, per protection mode.

For each mode, starts cipherstore as scripts/bench-s3 does (data on tmpfs, same client),
stores the objects, then records the server with `perf record` while examples/s3_load
GETs them, and prints the top symbols (self time) with the server CPU per GiB or per
1,000 requests of the recorded pass."""

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile

from s3 import MODES, MiB, cipherstore, log


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--plaintext-bin", required=True)
    ap.add_argument("--load", required=True, help="the s3_load example binary")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    ap.add_argument("--shape", choices=["big", "wide", "small"], default="wide",
                    help="big: one 1 GiB object, 1 client; wide: 16 x 64 MiB, 16 clients; "
                         "small: 10,000 x 4 KiB, 64 clients")
    ap.add_argument("--top", type=int, default=25, help="symbols to print per mode")
    ap.add_argument("--passes", type=int, default=1,
                    help="GET passes recorded (more samples for the small shape; figures are per pass)")
    ap.add_argument("--out", default="target/profile-get", help="where perf.data files are kept")
    a = ap.parse_args()
    count, size, conc = {"big": (1, 1024 * MiB, 1), "wide": (16, 64 * MiB, 16), "small": (10000, 4096, 64)}[a.shape]
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    base = "/dev/shm" if pathlib.Path("/dev/shm").is_dir() else None
    work = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-profile-", dir=base))
    try:
        for mode in a.modes.split(","):
            if mode not in MODES:
                sys.exit(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
            srv, t = cipherstore(a.plaintext_bin if mode == "plaintext" else a.bin, mode, work, a.load)
            try:
                t.run("prof", "mkbucket")
                if t.bind:
                    t.bind("prof")
                t.run("prof", "put", a.shape, count, size, conc)
                t.run("prof", "get", a.shape, count, size, conc)  # warm
                data = out / f"{mode}-{a.shape}.data"
                perf = subprocess.Popen(["perf", "record", "-q", "-F", "1999", "-g", "-p", str(t.pid), "-o", str(data)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds = cpu = 0.0
                for _ in range(a.passes):
                    seconds += t.run("prof", "get", a.shape, count, size, conc)
                    cpu += t.cpu
                perf.send_signal(2)
                perf.wait()
                n = count * a.passes
                unit = f"{cpu / (n * size / (1 << 30)):.2f} s per GiB" if a.shape != "small" \
                    else f"{cpu / n * 1000:.3f} s per 1,000 GETs"
                print(f"\n## {mode}, {a.shape} GET x {a.passes}: {seconds:.2f} s wall, server CPU {cpu:.2f} s ({unit})\n")
                rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio", "-g", "none",
                                      "--percent-limit", "0.5", "--sort", "dso,symbol"],
                                     capture_output=True, text=True)
                rows = [line for line in rep.stdout.splitlines() if line.strip() and not line.startswith("#")]
                print("\n".join(rows[:a.top]))
            finally:
                srv.__exit__(None, None, None)
                shutil.rmtree(srv.data, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"perf.data files in {out}: perf report -i {out}/<mode>-{a.shape}.data")


if __name__ == "__main__":
    main()
