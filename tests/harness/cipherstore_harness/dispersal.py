"""What the dispersal suites share: plaintext with a marker, the protection modes, the
slice files of each target, an object's stored record and manifest, /metrics, and
`cipherstore rebuild` against a running server's configuration."""

import base64
import hashlib
import os
import ssl
import subprocess
import urllib.request

from .independent_dispersal import fs_record, split_record

MARKER = b"CIPHERSTORE-PLAINTEXT-MARKER-"


def plain(size, seed):
    """Plaintext with the marker every 64 bytes and varying bytes between."""
    block = bytearray()
    i = 0
    while len(block) < size:
        block += MARKER + hashlib.sha256(f"{seed}-{i}".encode()).digest()[:35]
        i += 1
    return bytes(block[:size])


def modes(crn):
    """Per protection mode: what a PUT sends and what a GET sends (SSE-C with a fresh key,
    SSE-KP under root key `crn`)."""
    ckey = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(ckey).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(ckey).digest()).decode()}
    return {"default": ({}, {}), "sse-c": (ssec, ssec),
            "sse-kp": ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": crn}, {})}


def slice_files(srv):
    return [sorted(p for p in t.rglob("*") if p.is_file()) for t in srv.targets]


def object_file(srv, bucket, key):
    """The fs-store file holding `key`'s record (the record names its key)."""
    for p in (srv.data / "d" / "store" / "buckets" / bucket / "objects").rglob("*.o"):
        stored = fs_record(p.read_bytes())
        manifest, inner = split_record(stored)
        if f'"key":"{key}"'.encode() in inner:
            return manifest
    raise KeyError(key)


def metrics_text(srv):
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    return urllib.request.urlopen(f"{srv.endpoint}/metrics", context=ctx).read().decode()


def rebuild(srv, *args):
    """Runs `cipherstore rebuild` against the running server's configuration."""
    return subprocess.run([srv.binary, "rebuild", "--config", str(srv.data / "config.toml"),
                           "--data-dir", str(srv.data / "d"), "--grace", "3600", *args],
                          capture_output=True, text=True, timeout=300)
