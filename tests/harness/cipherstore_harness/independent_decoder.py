"""An independent decoder for cipherstore objects, written from docs/FORMAT.md alone.

It shares no code with cipherstore: AES, GCM, SHA-256 and HKDF come from the
`cryptography` package, BLAKE3 from the `blake3` package. It decodes an object and
compares the result with the expected plaintext, and checks that a flipped byte is
rejected.

    python -m cipherstore_harness.independent_decoder OBJECT EXPECTED [--key KEYFILE] [--context TEXT]
    python -m cipherstore_harness.independent_decoder --vectors DIR     # every *.cso in DIR, per DIR/vectors.json
    python -m cipherstore_harness.independent_decoder --record FILE [--key KEYFILE] [--context TEXT]
                                             # the sealed headers and user metadata of an
                                             # object record (FORMAT.md §3.8, §6.1)
"""

import argparse
import base64
import hashlib
import hmac
import json
import pathlib
import struct
import sys

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"\x89CST\r\n\x1a\n"
FIXED = 46


class Rejected(Exception):
    """The object is not valid under FORMAT.md."""


def digest(hash_id, data):
    if hash_id == 1:
        return hashlib.sha256(data).digest()
    if hash_id == 2:
        return blake3.blake3(data).digest()
    raise Rejected(f"unknown hash id {hash_id}")


def parse_header(obj):
    if obj[:8] != MAGIC:
        raise Rejected("bad magic")
    if len(obj) < FIXED:
        raise Rejected("short header")
    version, mode, cipher, hash_id, flags = obj[8:13]
    if version != 1 or obj[13:16] != b"\0\0\0" or flags & ~1:
        raise Rejected("bad version or reserved bits")
    unit, length = struct.unpack_from("<IQ", obj, 16)
    salt = obj[28:44]
    (env_len,) = struct.unpack_from("<H", obj, 44)
    hlen = FIXED + env_len
    if not 4096 <= unit <= 16 << 20 or len(obj) < hlen:
        raise Rejected("bad unit size or envelope")
    if not flags & 1 and length != 0:
        raise Rejected("length without flag")
    return dict(mode=mode, cipher=cipher, hash=hash_id, unit=unit,
                length=length if flags & 1 else None, salt=salt,
                envelope=obj[FIXED:hlen], hlen=hlen, raw=obj[:hlen])


def units(obj, h, overhead):
    """Yields (index, is_final, data, trailer) per FORMAT.md section 2."""
    body = len(obj) - h["hlen"]
    step = h["unit"] + overhead
    n = max(1, -(-body // step))
    if h["length"] is not None:
        want = max(1, -(-h["length"] // h["unit"]))
        if n != want or body != h["length"] + want * overhead:
            raise Rejected("stored size does not match the length")
    for i in range(n):
        u = obj[h["hlen"] + i * step: h["hlen"] + (i + 1) * step]
        if len(u) < overhead or (len(u) == overhead and i > 0):
            raise Rejected("short unit")
        yield i, i == n - 1, u[:-overhead], u[-overhead:]


def aont_decode(obj, h):
    d = digest(h["hash"], h["raw"])
    out = bytearray()
    for i, final, data, trailer in units(obj, h, 48):
        check, tail = trailer[:16], trailer[16:]
        c = data + check
        mask = digest(h["hash"], d + struct.pack("<QB", i, final) + c)
        key = bytes(a ^ b for a, b in zip(tail, mask))
        if h["cipher"] == 1:
            dec = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).decryptor()
            p = dec.update(c) + dec.finalize()
            if not hmac.compare_digest(p[-16:], b"\0" * 16):
                raise Rejected(f"canary mismatch in segment {i}")
            out += p[:-16]
        elif h["cipher"] == 2:
            try:
                out += AESGCM(key).decrypt(b"\0" * 12, c, None)
            except InvalidTag:
                raise Rejected(f"tag mismatch in segment {i}") from None
        else:
            raise Rejected("unknown cipher id")
    return bytes(out)


def sse_c_decode(obj, h, customer_key, context):
    if h["cipher"] != 2 or h["hash"] != 1 or len(h["envelope"]) != 80:
        raise Rejected("bad SSE-C header")
    okm = HKDF(hashes.SHA256(), 64, h["salt"], b"cipherstore/v1/sse-c" + context).derive(customer_key)
    kek, commit = okm[:32], okm[32:]
    env = h["envelope"]
    if not hmac.compare_digest(env[:32], commit):
        raise Rejected("wrong key")
    try:
        dk = AESGCM(kek).decrypt(b"\0" * 12, env[32:], h["raw"][:FIXED])
    except InvalidTag:
        raise Rejected("envelope failed authentication") from None
    return stream_decode(obj, h, dk)


def sse_kp_decode(obj, h, bucket_key, context):
    env = h["envelope"]
    if h["cipher"] != 2 or h["hash"] != 1 or len(env) < 34:
        raise Rejected("bad SSE-KP header")
    (n,) = struct.unpack_from("<H", env, 32)
    if not 1 <= n <= 512 or len(env) != 34 + n:
        raise Rejected("bad SSE-KP envelope")
    env[34:].decode("utf-8")
    okm = HKDF(hashes.SHA256(), 64, h["salt"], b"cipherstore/v1/sse-kp" + context).derive(bucket_key)
    dk, commit = okm[:32], okm[32:]
    if not hmac.compare_digest(env[:32], commit):
        raise Rejected("wrong key")
    return stream_decode(obj, h, dk)


def stream_decode(obj, h, dk):
    aad = hashlib.sha256(h["raw"]).digest() + struct.pack("<I", 0)
    gcm = AESGCM(dk)
    out = bytearray()
    for i, final, data, tag in units(obj, h, 16):
        nonce = struct.pack("<Q", i) + b"\0\0\0" + bytes([final])
        try:
            out += gcm.decrypt(nonce, data + tag, aad)
        except InvalidTag:
            raise Rejected(f"tag mismatch in chunk {i}") from None
    return bytes(out)


OBJECT_LABEL = b"cipherstore/v3/object-metadata\n"


def open_sealed_metadata(sealed_b64, label=OBJECT_LABEL, key=None, context=b""):
    """The headers and user metadata a record seals (FORMAT.md §3.8), as a dict."""
    try:
        sealed = base64.b64decode(sealed_b64, validate=True)
    except ValueError:
        raise Rejected("sealed metadata is not base64") from None
    try:
        if key is None:
            if len(sealed) < 48:
                raise Rejected("sealed metadata too short")
            c, tail = sealed[:-32], sealed[-32:]
            mask = hashlib.sha256(hashlib.sha256(label).digest() + struct.pack("<QB", 0, 1) + c).digest()
            plain = AESGCM(bytes(a ^ b for a, b in zip(tail, mask))).decrypt(b"\0" * 12, c, None)
        else:
            if len(sealed) < 32:
                raise Rejected("sealed metadata too short")
            k = HKDF(hashes.SHA256(), 32, sealed[:16], label + b"\0" + context).derive(key)
            plain = AESGCM(k).decrypt(b"\0" * 12, sealed[16:], label)
    except InvalidTag:
        raise Rejected("sealed metadata failed authentication") from None
    return json.loads(plain)


def decode(obj, key=None, context=b""):
    h = parse_header(obj)
    if h["mode"] == 1:
        if key is not None:
            raise Rejected("key given for an AONT-RS object")
        out = aont_decode(obj, h)
    elif h["mode"] == 2:
        if key is None:
            raise Rejected("SSE-C object needs a key")
        out = sse_c_decode(obj, h, key, context)
    elif h["mode"] == 3:
        if key is None:
            raise Rejected("SSE-KP object needs its bucket key")
        out = sse_kp_decode(obj, h, key, context)
    else:
        raise Rejected(f"unsupported mode {h['mode']}")
    if h["length"] is not None and len(out) != h["length"]:
        raise Rejected("length mismatch")
    return out


def read_key(path):
    raw = pathlib.Path(path).read_bytes()
    if len(raw) == 32:
        return raw
    return bytes.fromhex(raw.decode().strip())


def check(obj_path, expected_path, key=None, context=b""):
    obj = pathlib.Path(obj_path).read_bytes()
    expected = pathlib.Path(expected_path).read_bytes()
    got = decode(obj, key, context)
    if got != expected:
        raise SystemExit(f"FAIL {obj_path}: decoded {len(got)} bytes differ from {expected_path}")
    # A flipped byte in the header, the middle and the last byte must each be rejected.
    for pos in (9 if obj[9] else 20, len(obj) // 2, len(obj) - 1):
        bad = bytearray(obj)
        bad[pos] ^= 1
        try:
            decode(bytes(bad), key, context)
        except Rejected:
            continue
        raise SystemExit(f"FAIL {obj_path}: a flip at byte {pos} was accepted")
    print(f"ok {obj_path}: {len(got)} bytes match")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("object", nargs="?")
    ap.add_argument("expected", nargs="?")
    ap.add_argument("--key")
    ap.add_argument("--context", default="")
    ap.add_argument("--vectors")
    ap.add_argument("--record")
    a = ap.parse_args()
    try:
        if a.record:
            record = json.loads(pathlib.Path(a.record).read_bytes())
            if record.get("v") != 3:
                raise Rejected("not a version 3 object record")
            key = read_key(a.key) if a.key else None
            sealed = record.get("sealed")
            print(json.dumps(open_sealed_metadata(sealed, key=key, context=a.context.encode()) if sealed else {}))
        elif a.vectors:
            root = pathlib.Path(a.vectors)
            listing = json.loads((root / "vectors.json").read_text())
            for v in listing:
                key = read_key(root / v["key"]) if v.get("key") else None
                check(root / v["object"], root / v["plaintext"], key, v.get("context", "").encode())
            print(f"{len(listing)} passed, 0 failed")
        else:
            if not (a.object and a.expected):
                ap.error("give OBJECT and EXPECTED, or --vectors DIR")
            check(a.object, a.expected, read_key(a.key) if a.key else None, a.context.encode())
    except Rejected as e:
        raise SystemExit(f"FAIL: rejected: {e}") from None


if __name__ == "__main__":
    sys.exit(main())
