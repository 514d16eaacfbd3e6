"""Tamper suite: stored object files are altered on disk (ciphertext flipped, truncated,
extended; metadata edited; files and bodies swapped between two objects of one bucket, and
between two versions of one key, version block rewritten or not),
in every protection mode, for single-PUT and multipart objects. Every read of an altered
object must fail (never return bytes other than the original), the failure must be
logged and counted in /metrics, and the object must read back intact once restored.
"""

import base64
import hashlib
import json
import os
import ssl
import struct
import types
import zlib
import urllib.request

import pytest

from cipherstore_harness import kms_default

from cipherstore_harness.independent_decoder import open_sealed_metadata

MiB = 1 << 20
USER_METADATA = {"color": "tamper-marker-value"}
CONTENT_TYPE = "application/x-tamper-marker"
TRAILER = 12
MAGIC = b"CSMETA01"


def split(raw):
    """(body, record bytes) of an object file: body, record, u32 length, magic."""
    assert raw[-8:] == MAGIC, "no trailer"
    (meta_len,) = struct.unpack("<I", raw[-TRAILER:-8])
    body_end = len(raw) - TRAILER - meta_len
    return raw[:body_end], raw[body_end:len(raw) - TRAILER]


def join(body, record):
    """An object file of `body` and `record` (bytes as stored, or a dict to serialise)."""
    if isinstance(record, dict):
        record = json.dumps(record, separators=(",", ":")).encode()
    return body + record + struct.pack("<I", len(record)) + MAGIC


def edit(record, change):
    """The sealed record (FORMAT.md §6: {"v":2,"record":{...},"tag":...}) with `change`
    applied to its inner record, the tag left as it was."""
    sealed = json.loads(record)
    change(sealed["record"])
    return sealed


def object_files(root, bucket):
    """Key → path of every object file of `bucket`."""
    out = {}
    for p in (root / "buckets" / bucket / "objects").rglob("*"):
        if p.is_file():
            out[json.loads(split(p.read_bytes())[1])["record"]["key"]] = p
    return out


def flip(data, at):
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


def tampers(a_raw, b_raw):
    """(name, altered bytes of A's file) for every alteration; B is another object."""
    body, meta = split(a_raw)
    b_body, b_meta = split(b_raw)
    edited_user = edit(meta, lambda r: r.setdefault("user", {}).update(color="blue"))
    edited_size = edit(meta, lambda r: r.update(size=r["size"] - 1))
    edited_type = edit(meta, lambda r: r.setdefault("headers", {}).update(content_type="text/html"))
    sealed = json.loads(meta)["sealed"]
    flipped_sealed = dict(json.loads(meta), sealed=("B" if sealed[0] == "A" else "A") + sealed[1:])
    b_sealed = dict(json.loads(meta), sealed=json.loads(b_meta)["sealed"])
    untagged = {k: v for k, v in json.loads(meta).items() if k != "tag"}
    b_record = json.loads(b_meta)
    return [
        ("flip a ciphertext byte", join(flip(body, len(body) // 2), meta)),
        ("flip a header byte", join(flip(body, 9), meta)),
        ("flip the last body byte", join(flip(body, len(body) - 1), meta)),
        ("truncate the body by one byte", join(body[:-1], meta)),
        ("truncate the body to its half", join(body[:len(body) // 2], meta)),
        ("extend the body", join(body + b"\0" * 16, meta)),
        ("edit user metadata", join(body, edited_user)),
        ("edit the size", join(body, edited_size)),
        ("edit the content type", join(body, edited_type)),
        ("edit the sealed metadata (one base64 digit)", join(body, flipped_sealed)),
        ("edit: another object's sealed metadata on this record", join(body, b_sealed)),
        ("drop the metadata tag", join(body, untagged)),
        ("another object's tag on this record", join(body, dict(json.loads(meta), tag=b_record["tag"]))),
        ("swap the whole file with another object's", b_raw),
        ("another object's body under this metadata", join(b_body, meta)),
        ("flip a metadata byte", a_raw[:len(a_raw) - TRAILER - 5] + bytes([a_raw[len(a_raw) - TRAILER - 5] ^ 0x20]) + a_raw[len(a_raw) - TRAILER - 4:]),
    ]


def integrity_failures(srv):
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    text = urllib.request.urlopen(f"{srv.endpoint}/metrics", context=ctx).read().decode()
    for line in text.splitlines():
        if line.startswith("cipherstore_integrity_failures_total "):
            return int(line.split()[1])
    return None


def version_swaps(srv, s3, root, bucket, extra):
    """In a bucket that keeps versions, one version's file put in another's place (even
    with the version block of its trailer rewritten to match) is refused: the tagged
    record names its own version id. Returns how many GETs were refused."""
    check = srv.check
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old, new = os.urandom(MiB + 3), os.urandom(MiB + 3)
    v_old = s3.put_object(Bucket=bucket, Key="ver", Body=old, **extra)["VersionId"]
    v_new = s3.put_object(Bucket=bucket, Key="ver", Body=new, **extra)["VersionId"]
    current = root / "buckets" / bucket / "objects" / ("ver".encode().hex() + ".o")
    kept = current.with_suffix(".v") / f"{v_old}.o"
    old_raw, new_raw = kept.read_bytes(), current.read_bytes()
    check(f"{bucket}: versioned files carry their version block",
          old_raw[-8:] == b"CSMETA02" and old_raw[-45:-13] == v_old.encode(), old_raw[-45:].decode(errors="replace"))

    def reversioned(raw, vid):
        """`raw` with the id in its version block replaced (flags kept)."""
        return raw[:-45] + vid.encode() + raw[-13:]

    refused = 0
    for name, path, raw, asked in (
        ("the newer version's file as the older", kept, new_raw, v_old),
        ("the newer version's file as the older, version block rewritten", kept, reversioned(new_raw, v_old), v_old),
        ("the older version's file as the current", current, old_raw, v_new),
        ("the older version's file as the current, version block rewritten", current, reversioned(old_raw, v_new), v_new),
    ):
        original = path.read_bytes()
        path.write_bytes(raw)
        got = None
        try:
            kw = {"VersionId": asked} if asked else {}
            got = s3.get_object(Bucket=bucket, Key="ver", **kw, **extra)["Body"].read()
        except Exception:  # noqa: BLE001 - any error or cut-off body is a refusal
            pass
        check(f"{bucket}: {name}: GET refused", got is None, f"returned {len(got)} bytes" if got is not None else "")
        refused += got is None
        path.write_bytes(original)
    check(f"{bucket}: both versions served once restored",
          s3.get_object(Bucket=bucket, Key="ver", VersionId=v_old, **extra)["Body"].read() == old
          and s3.get_object(Bucket=bucket, Key="ver", **extra)["Body"].read() == new)
    return refused

pytestmark = pytest.mark.fs
MODES = ["default", "SSE-C", "SSE-KP"]


@pytest.fixture(scope="module")
def suite(srv):
    """Buckets in every mode, and how many GETs of altered files were refused so far."""
    s3 = srv.boto3("alice")
    crn = srv.create_root("tamper-root")
    ssec_key = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(ssec_key).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(ssec_key).digest()).decode()}
    modes = {"default": ("tamper-default", {}), "SSE-C": ("tamper-ssec", ssec), "SSE-KP": ("tamper-kp", {})}
    for bucket, _ in modes.values():
        s3.create_bucket(Bucket=bucket)
    kms_default(s3, "tamper-kp", crn)
    return types.SimpleNamespace(s3=s3, ssec_key=ssec_key, modes=modes, failures=0)


def tamper_mode(srv, s3, mode, bucket, extra, ssec_key):
    """Stores objects in `bucket`, alters their files every way `tampers` knows and swaps
    versions; returns how many GETs were refused."""
    check = srv.check
    root = srv.data / "d" / "store"
    failures = 0
    # Same sizes for A and B, so a swapped body is not betrayed by its length alone.
    objects = {"a": os.urandom(3 * MiB + 5), "b": os.urandom(3 * MiB + 5)}
    part_lists = {}
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata=USER_METADATA,
                      ContentType=CONTENT_TYPE, **extra)
    # A multipart object and a second one of the same shape.
    for key in ("mp-a", "mp-b"):
        parts = [os.urandom(5 * MiB), os.urandom(MiB)]
        uid = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata=USER_METADATA,
                                         ContentType=CONTENT_TYPE, **extra)["UploadId"]
        done = [{"PartNumber": n + 1, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n + 1,
                                                                Body=p, **extra)["ETag"]} for n, p in enumerate(parts)]
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": done}, **extra)
        objects[key] = b"".join(parts)
        part_lists[key] = parts
    files = object_files(root, bucket)
    check(f"{mode}: four object files found", len(files) == 4, str(sorted(files)))
    # Headers and user metadata are sealed (FORMAT.md §3.8): not in clear in any
    # file, served as sent, and opened by the independent decoder where it holds the key.
    for key, path in sorted(files.items()):
        raw = path.read_bytes()
        check(f"{mode} {key}: no metadata in clear in its file",
              b"marker" not in raw and b"tamper" not in split(raw)[1], split(raw)[1][:200].decode(errors="replace"))
        head = s3.head_object(Bucket=bucket, Key=key, **extra)
        check(f"{mode} {key}: HEAD serves the sealed metadata",
              head["Metadata"] == USER_METADATA and head["ContentType"] == CONTENT_TYPE, str(head["Metadata"]))
        decoder_key = {"default": None, "SSE-C": ssec_key}.get(mode, "none")
        if decoder_key != "none":
            opened = open_sealed_metadata(json.loads(split(raw)[1])["sealed"], key=decoder_key,
                                          context=f"{bucket}/{key}".encode())
            # A single PUT keeps the CRC32 the SDK sent with it (sealed, as the headers);
            # a multipart object the composite of its parts' CRC32s.
            def crc32(data):
                return zlib.crc32(data).to_bytes(4, "big")
            if key in part_lists:
                joined = b"".join(crc32(p) for p in part_lists[key])
                crc = base64.b64encode(crc32(joined)).decode() + f"-{len(part_lists[key])}"
            else:
                crc = base64.b64encode(crc32(objects[key])).decode()
            headers = {"content_type": CONTENT_TYPE, "checksums": {"crc32": crc}}
            check(f"{mode} {key}: the independent decoder opens its sealed metadata",
                  opened == {"headers": headers, "user": USER_METADATA}, str(opened))
    for a, b in (("a", "b"), ("mp-a", "mp-b")):
        path = files[a]
        original = path.read_bytes()
        for name, altered in tampers(original, files[b].read_bytes()):
            path.write_bytes(altered)
            got = None
            try:
                got = s3.get_object(Bucket=bucket, Key=a, **extra)["Body"].read()
            except Exception:  # noqa: BLE001 - any error or cut-off body is a refusal
                pass
            check(f"{mode} {a}: {name}: GET refused", got is None, f"returned {len(got)} bytes" if got is not None else "")
            check(f"{mode} {a}: {name}: never altered bytes", got is None or got == objects[a])
            if got is None:
                failures += 1
            if name.startswith(("edit", "drop", "swap the whole", "another object's tag")):
                head_failed = False
                try:
                    s3.head_object(Bucket=bucket, Key=a, **extra)
                except Exception:  # noqa: BLE001
                    head_failed = True
                check(f"{mode} {a}: {name}: HEAD refused", head_failed)
            path.write_bytes(original)
            ok = s3.get_object(Bucket=bucket, Key=a, **extra)["Body"].read() == objects[a]
            check(f"{mode} {a}: restored after {name}", ok)
    failures += version_swaps(srv, s3, root, bucket, extra)
    return failures


@pytest.mark.parametrize("mode", MODES)
def test_altered_files_are_refused(srv, suite, mode):
    bucket, extra = suite.modes[mode]
    suite.failures += tamper_mode(srv, suite.s3, mode, bucket, extra, suite.ssec_key)


def test_integrity_failures_counted_and_logged(srv, suite):
    check, failures = srv.check, suite.failures
    counted = integrity_failures(srv)
    check("integrity failures counted in /metrics", counted is not None and counted >= failures,
          f"{counted} counted, {failures} refused")
    log = srv.log_path.read_text()
    check("integrity failures logged", log.count("integrity failure") >= failures,
          f"{log.count('integrity failure')} log lines")
