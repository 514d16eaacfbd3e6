"""Independent dispersal decoder: gathers a dispersed object's stored bytes from any k of
its slice files, written from docs/FORMAT.md §7 alone with no cipherstore code. The
Reed-Solomon decoding is pyfinite's RSCode (Emin Martinian's pure-Python implementation
of the systematic Vandermonde code over GF(2^8), x^8+x^4+x^3+x^2+1), not ours; shard
checks use the `xxhash` and `blake3` packages.

    python -m cipherstore_harness.independent_dispersal RECORD_FILE TARGET_DIR... [--use 2,3,4]

reads the stored record (the file an fs-store object lives in, or the record bytes alone),
and writes the gathered engine object to stdout.
"""

import argparse
import json
import struct
import sys

import blake3
import xxhash
from pyfinite import rs_code

MAGIC = b"CSDISP01"
CHECK_LEN = 16
CHECK_CONTEXT = "cipherstore 2026 dispersal shard check v1"


def split_record(stored):
    """(manifest, object-layer record) of a stored record that starts with the magic."""
    if not stored.startswith(MAGIC):
        raise ValueError("not a dispersed record")
    (n,) = struct.unpack_from("<I", stored, len(MAGIC))
    at = len(MAGIC) + 4
    return json.loads(stored[at:at + n]), stored[at + n:]


def fs_record(object_file_bytes):
    """The record an fs-store object file carries: bytes, record, u32 length, CSMETA01."""
    if object_file_bytes[-8:] != b"CSMETA01":
        raise ValueError("not an fs-store object file")
    (n,) = struct.unpack_from("<I", object_file_bytes, len(object_file_bytes) - 12)
    return object_file_bytes[len(object_file_bytes) - 12 - n:len(object_file_bytes) - 12]


def shard_len(length, k):
    return max(1, -(-length // k))


def stripes(piece):
    """(index, start, end) of each stripe of a piece: the header, then units."""
    first, unit, length = min(piece["first"], piece["len"]), piece["unit"], piece["len"]
    out = []
    if first > 0:
        out.append((0, 0, first))
    at = first
    while at < length:
        out.append((len(out), at, min(at + unit, length)))
        at += unit
    return out


def shard_at(piece, k, j):
    first = min(piece["first"], piece["len"])
    stripe = stripes(piece)[j]
    length = shard_len(stripe[2] - stripe[1], k)
    head = shard_len(first, k) + CHECK_LEN if first > 0 else 0
    full = shard_len(piece["unit"], k) + CHECK_LEN
    offset = 0 if (first > 0 and j == 0) else head + (j - (1 if first > 0 else 0)) * full
    return offset, length


def check(blob, slice_index, stripe, shard):
    h = blake3.blake3(derive_key_context=CHECK_CONTEXT)
    h.update(struct.pack("<Q", len(blob)) + blob.encode())
    h.update(struct.pack("<QQ", slice_index, stripe))
    h.update(xxhash.xxh3_128_digest(shard))
    return h.digest()[:CHECK_LEN]


def slice_path(target, blob, i):
    return f"{target}/{blob[:2]}/{blob}.{i}"


class Code:
    def __init__(self, k, n):
        self.k, self.n = k, n
        self.rs = rs_code.RSCode(n, k, log2FieldSize=8, systematic=1)

    def decode(self, shards):
        """Data shards from exactly k shards {slice index: bytes}, symbol by symbol."""
        where = sorted(shards)[:self.k]
        if len(where) < self.k:
            raise ValueError(f"only {len(where)} of the {self.k} slices needed")
        if where == list(range(self.k)):
            return [shards[i] for i in where]
        self.rs.PrepareDecoder(where)
        length = len(shards[where[0]])
        out = [bytearray(length) for _ in range(self.k)]
        for t in range(length):
            data = self.rs.Decode([shards[i][t] for i in where])
            for d in range(self.k):
                out[d][t] = data[d]
        return [bytes(o) for o in out]

    def parity(self, data):
        """All n shards of k data shards, by pyfinite's encoder."""
        length = len(data[0])
        out = [bytearray(length) for _ in range(self.n)]
        for t in range(length):
            coded = self.rs.Encode([d[t] for d in data])
            for i in range(self.n):
                out[i][t] = coded[i]
        return [bytes(o) for o in out]


def gather(manifest, targets, use=None, verify_parity=False):
    """The stored bytes of every piece, from the slices `use` (default: all) of `targets`
    (slice i in targets[i]). Shards that fail their check count as missing."""
    k, n = manifest["k"], manifest["n"]
    code = Code(k, n)
    use = range(n) if use is None else use
    out = bytearray()
    for piece in manifest["pieces"]:
        files = {}
        for i in use:
            if piece["slices"][i] is None:
                continue
            try:
                with open(slice_path(targets[i], piece["blob"], i), "rb") as f:
                    files[i] = f.read()
            except OSError:
                pass
        for j, start, end in stripes(piece):
            offset, length = shard_at(piece, k, j)
            shards = {}
            for i, b in files.items():
                shard = b[offset:offset + length]
                if len(shard) == length and b[offset + length:offset + length + CHECK_LEN] == check(piece["blob"], i, j, shard):
                    shards[i] = shard
            data = code.decode(shards)
            if verify_parity:
                full = code.parity(data)
                for i, s in shards.items():
                    if s != full[i]:
                        raise ValueError(f"stripe {j}: slice {i} differs from pyfinite's encoding")
            out += b"".join(data)[:end - start]
    return bytes(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("record", help="an fs-store object file, or a stored record")
    ap.add_argument("targets", nargs="+", help="the target directories, in slice order")
    ap.add_argument("--use", help="slice indexes to read, e.g. 2,3,4 (default: all)")
    a = ap.parse_args()
    raw = open(a.record, "rb").read()
    stored = fs_record(raw) if raw.endswith(b"CSMETA01") else raw
    manifest, _ = split_record(stored)
    use = [int(x) for x in a.use.split(",")] if a.use else None
    sys.stdout.buffer.write(gather(manifest, a.targets, use))


if __name__ == "__main__":
    main()
