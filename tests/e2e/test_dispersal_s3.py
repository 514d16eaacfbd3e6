"""Dispersal over S3 targets (docs/FORMAT.md §7, docs/CONFIGURATION.md): a server whose
object bytes are 3-of-5 slices on three directories and two buckets of two separate
SeaweedFS services over HTTPS (targets 1 and 3: a data slice and a parity slice), driven
by boto3. Round trips in every mode (slices large enough to go to the targets as
multipart uploads), the independent decoder reading the slices fetched from the services,
no plaintext there; a target hung (SIGSTOP: read around after its request timeout), a
target killed in the middle of a PUT, then both (reads exact, writes refused below the
write threshold, nothing left behind); both back, `cipherstore rebuild` refilling them,
the rebuilt S3 slices carrying reads alone; deletes and the orphan sweep reaching the
buckets.

(`rclone serve s3` is no use here: it answers ranged GETs with 200, which the S3 client
rightly refuses.) SeaweedFS is CIPHERSTORE_WEED, or the one scripts/lib.sh installs.
"""

import http.client
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import types
import urllib.parse

import boto3
import pytest
import botocore.config

from cipherstore_harness.independent_decoder import decode as engine_decode
from cipherstore_harness.independent_dispersal import gather
from cipherstore_harness import seaweed
from cipherstore_harness import Server, error_code
from cipherstore_harness.dispersal import MARKER, metrics_text, modes, object_file, plain, rebuild, slice_files

pytestmark = pytest.mark.dispersed
K, N, W = 3, 5, 4
REMOTE = (1, 3)
AK, SK = "slicekey", "slicesecret-0123456789"


class Weed:
    """A SeaweedFS service (`weed server -s3`: master, volume server, filer and S3 gateway
    in one process) of its own, S3 over HTTPS on fixed loopback ports (so it can be stopped
    and started again over the same data), with a bucket `slices`."""

    def __init__(self, weed, work, name):
        self.weed = weed
        self.data = work / name
        self.data.mkdir()
        tls = work / f"{name}-tls"
        tls.mkdir()
        self.cert, self.key = tls / "cert.pem", tls / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-addext", "basicConstraints=critical,CA:FALSE", "-keyout", str(self.key),
                        "-out", str(self.cert)], check=True, capture_output=True)
        self.credentials = work / f"{name}-credentials"
        self.credentials.write_text(f"{AK} {SK}\n")
        self.identities = work / f"{name}-s3.json"
        seaweed.write_identities(self.identities, "cipherstore", AK, SK)
        self.ports = seaweed.ports()
        self.log = work / f"{name}.log"
        self.proc = None
        self.start()
        self.client().create_bucket(Bucket="slices")

    def start(self):
        p = self.ports
        self.proc = subprocess.Popen(
            seaweed.command(self.weed, self.data, p, self.cert, self.key, self.identities, volumes=20),
            stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))
        # The S3 gateway listens before the filer has joined: wait until a listing answers,
        # and, once the bucket exists (a restart), until a write goes through: a restarted
        # service takes writes only after its volume server has joined its master again,
        # and a rebuild's writes must not meet that wait under the targets' 3 s timeout.
        deadline = time.time() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", p["https"]), timeout=0.2).close()
                s3 = self.client()
                if any(b["Name"] == "slices" for b in s3.list_buckets().get("Buckets", [])):
                    s3.put_object(Bucket="slices", Key="ready-probe", Body=b"probe")
                    s3.delete_object(Bucket="slices", Key="ready-probe")
                return
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.log}")
                if time.time() > deadline:
                    raise RuntimeError(f"weed did not answer within 90 s; see {self.log}")
                time.sleep(0.5)

    def stop(self):
        """Kills the service outright, as a crash or a lost machine would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def client(self):
        return boto3.client("s3", endpoint_url=f"https://127.0.0.1:{self.ports['https']}", verify=str(self.cert),
                            aws_access_key_id=AK, aws_secret_access_key=SK, region_name="us-east-1",
                            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5,
                                                          read_timeout=30))

    def slices(self):
        """Every object in the bucket: name -> bytes."""
        s3, out, token = self.client(), {}, {}
        while True:
            page = s3.list_objects_v2(Bucket="slices", **token)
            for o in page.get("Contents", []):
                out[o["Key"]] = s3.get_object(Bucket="slices", Key=o["Key"])["Body"].read()
            if not page.get("IsTruncated"):
                return out
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def mirror(self, into):
        """The bucket's objects as files below `into` (the layout of a directory target)."""
        shutil.rmtree(into, ignore_errors=True)
        for name, body in self.slices().items():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            (into / name).write_bytes(body)
        return into

    def toml(self):
        return (f'{{ endpoint = "https://127.0.0.1:{self.ports["https"]}", bucket = "slices", '
                f'credentials_file = "{self.credentials}", ca_file = "{self.cert}", timeout_secs = 3 }}')


def target_metric(srv, name, i):
    for line in metrics_text(srv).splitlines():
        if line.startswith(f'{name}{{target="{i}"}}'):
            return float(line.split()[1])
    return None


def target_up(srv, i):
    return target_metric(srv, "cipherstore_dispersal_target_up", i)


def look(srv, services):
    """Every target's slice files, the S3 targets' fetched into their mirror directories."""
    for i, s in services.items():
        s.mirror(srv.targets[i])
    return slice_files(srv)


@pytest.fixture(scope="session")
def weed():
    """SeaweedFS's `weed`: CIPHERSTORE_WEED, or the one scripts/lib.sh installs."""
    given = os.environ.get("CIPHERSTORE_WEED")
    if given:
        return given
    lib = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "lib.sh"
    out = subprocess.run(["bash", "-c", f"source {lib} && seaweedfs_weed"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def work():
    path = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-s3-targets-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def services(weed, work):
    """The two SeaweedFS services that hold targets 1 and 3."""
    started = {i: Weed(weed, work, f"target{i}") for i in REMOTE}
    yield started
    for s in started.values():
        s.stop()


@pytest.fixture(scope="module")
def srv(binary, services, work):
    """The server: three target directories and the two S3 targets (their slices listed
    where they are mirrored for a look)."""
    remote = {i: (s.toml(), work / f"mirror{i}") for i, s in services.items()}
    with Server(binary, cluster=False, dispersal=(K, N, W), remote_targets=remote) as server:
        yield server


@pytest.fixture(scope="module")
def suite(services):
    return types.SimpleNamespace(services=services)


def test_every_mode_reads_back_with_two_s3_targets(srv, suite):
    services = suite.services
    check = srv.check
    alice = srv.boto3("alice")
    alice.create_bucket(Bucket="disp")
    objects = {}
    for mode, (put_extra, get_extra) in modes(srv.create_root("dispersed-s3")).items():
        # 30 MiB: each slice is over 8 MiB, so it goes to its target as a multipart upload.
        for size in [0, 20_000, 3 * (1 << 20) + 7, 30 << 20]:
            key = f"{mode}/{size}"
            body = plain(size, key)
            alice.put_object(Bucket="disp", Key=key, Body=body, **put_extra)
            objects[key] = (body, get_extra)
    key = "default/multipart"
    body = plain(5 * (1 << 20) + 12_345, key)
    up = alice.create_multipart_upload(Bucket="disp", Key=key)
    parts = []
    for n, (a, b) in enumerate([(0, 5 << 20), (5 << 20, len(body))], start=1):
        r = alice.upload_part(Bucket="disp", Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body[a:b])
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    alice.complete_multipart_upload(Bucket="disp", Key=key, UploadId=up["UploadId"],
                                    MultipartUpload={"Parts": parts})
    objects[key] = (body, {})

    def read_back(label, keys=None):
        bad = []
        for key in keys or objects:
            body, extra = objects[key]
            try:
                got = alice.get_object(Bucket="disp", Key=key, **extra)["Body"].read()
                if len(body) > 100_000:
                    a, b = len(body) // 3, len(body) // 3 + 1_500_000
                    got_range = alice.get_object(Bucket="disp", Key=key, Range=f"bytes={a}-{b - 1}",
                                                 **extra)["Body"].read()
                    if got_range != body[a:b]:
                        bad.append(f"{key} range")
            except Exception as e:  # a failed read is a failed check, with its cause
                bad.append(f"{key}: {e}")
                continue
            if got != body:
                bad.append(key)
        check(label, not bad, str(bad[:5]))

    read_back("every mode and size, and a multipart object, read back exactly from directory and S3 targets")
    files = look(srv, services)
    check("one slice per object and part on each target, the two S3 buckets included",
          all(len(f) == len(objects) + 1 for f in files), str([len(f) for f in files]))
    check("slices on the S3 targets are named <2 hex>/<blob>.<i>",
          all(p.name.endswith(f".{i}") and p.parent.name == p.name[:2] for i in REMOTE for p in files[i]))
    leaked = [str(p) for i in REMOTE for p in files[i] if MARKER in p.read_bytes()]
    check("no object on the S3 targets holds a plaintext marker", not leaked, str(leaked[:3]))
    manifest = object_file(srv, "disp", "default/20000")
    targets = [str(t) for t in srv.targets]
    check("independent decoder: the S3 targets' slices (1, 3) with slice 4 rebuild the object",
          engine_decode(gather(manifest, targets, [1, 3, 4], verify_parity=True)) == objects["default/20000"][0])

    read_s = [target_metric(srv, "cipherstore_dispersal_target_read_seconds", i) for i in range(5)]
    check("/metrics: the shard read time of every data target (0-2, one on S3) is measured",
          all(t and t > 0 for t in read_s[:3]), str(read_s))
    suite.__dict__.update(alice=alice, objects=objects, read_back=read_back)


def test_a_hung_target(srv, suite):
    check, read_back, services = srv.check, suite.read_back, suite.services
    # A hung target: its requests time out (timeout_secs = 3) and reads go around it.
    os.kill(services[1].proc.pid, signal.SIGSTOP)
    read_back("target 1 hung: reads time out on it and come back exact from parity",
              ["default/20000", "sse-c/3145735", "default/multipart"])
    check("/metrics says the hung target is down", target_up(srv, 1) == 0)
    os.kill(services[1].proc.pid, signal.SIGCONT)


def test_a_target_killed_in_the_middle_of(srv, suite):
    alice, check, objects, read_back, services = suite.alice, srv.check, suite.objects, suite.read_back, suite.services
    # A target killed in the middle of a PUT: the body is sent in two halves through a
    # presigned URL, and the target dies between them, once the server has begun a
    # multipart upload of each slice to the S3 targets (8 MiB each: 24 MiB of body).
    during = plain(30 << 20, "during")
    url = urllib.parse.urlsplit(alice.generate_presigned_url(
        "put_object", Params={"Bucket": "disp", "Key": "during"}, ExpiresIn=300))
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=120,
                                       context=ssl.create_default_context(cafile=str(srv.ca)))
    conn.putrequest("PUT", f"{url.path}?{url.query}")
    conn.putheader("Content-Length", str(len(during)))
    conn.endheaders()
    conn.send(during[:27 << 20])
    time.sleep(1)
    services[3].stop()
    conn.send(during[27 << 20:])
    status = conn.getresponse().status
    conn.close()
    check("target 3 killed during a 30 MiB PUT: the PUT succeeds with the other four", status == 200, status)
    objects["during"] = (during, {})
    read_back("target 3 stopped: everything reads back exactly")


def test_both_s3_targets_gone(srv, suite):
    alice, check, read_back, services = suite.alice, srv.check, suite.read_back, suite.services
    # Both S3 targets gone: three directories are enough to read, not to write.
    services[1].stop()
    read_back("both S3 targets stopped: everything reads back exactly from the three directories")
    before = [len(f) for f in slice_files(srv)[::2]]
    code = error_code(lambda: alice.put_object(Bucket="disp", Key="refused", Body=plain(50_000, "refused")))
    check("both S3 targets stopped: a PUT is refused with 503 (write_threshold 4)", code == "ServiceUnavailable",
          code)
    after = [len(f) for f in slice_files(srv)[::2]]
    check("the refused PUT leaves no slice on the directories", before == after, f"{before} -> {after}")
    check("/metrics says both S3 targets are down", target_up(srv, 1) == 0 and target_up(srv, 3) == 0)


def test_back_refilled_by_a_rebuild(srv, suite):
    check, objects, read_back, services = srv.check, suite.objects, suite.read_back, suite.services
    # Back, refilled by a rebuild; then the rebuilt S3 slices carry reads alone.
    services[1].start()
    services[3].start()
    out = rebuild(srv)
    check("rebuild refills the S3 targets", out.returncode == 0 and "rebuilt per target:  0 " in out.stdout
          and " below full width" in out.stdout and "error" not in out.stdout, out.stdout + out.stderr)
    out = rebuild(srv)
    check("a second rebuild finds nothing to do", out.returncode == 0 and "nothing to do" in out.stdout,
          out.stdout + out.stderr)
    files = look(srv, services)
    check("after the rebuild, every object has a slice on each S3 target",
          all(len(files[i]) == len(objects) + 1 for i in REMOTE), str([len(f) for f in files]))
    for t in (srv.targets[0], srv.targets[2]):
        shutil.rmtree(t)
        t.mkdir()
    read_back("directories 0 and 2 emptied: everything reads back from the S3 targets and directory 4")
    out = rebuild(srv, "--quick")
    pieces = len(objects) + 1
    check("rebuild --quick refills directories 0 and 2 from the S3 targets",
          out.returncode == 0 and f"rebuilt per target:  {pieces} 0 {pieces} 0 0" in out.stdout,
          out.stdout + out.stderr)
    check("/metrics says the S3 targets answer again", target_up(srv, 1) == 1 and target_up(srv, 3) == 1)


def test_deletes_reach_the_buckets(srv, suite):
    alice, check, objects, services = suite.alice, srv.check, suite.objects, suite.services
    # Deletes reach the buckets; the sweep removes what no record names there.
    alice.delete_object(Bucket="disp", Key="during")
    del objects["during"]
    files = look(srv, services)
    check("a delete removes the object's slices from the S3 targets",
          all(len(files[i]) == len(objects) + 1 for i in REMOTE), str([len(f) for f in files]))
    s3 = services[3].client()
    orphan = "ff/" + "ff" * 16 + ".3"
    s3.put_object(Bucket="slices", Key=orphan, Body=b"left by a write that never committed")
    out = rebuild(srv)
    check("the sweep leaves an S3 target's unnamed slice alone within the grace (an hour)",
          out.returncode == 0 and "removed 0 slice files" in out.stdout and orphan in services[3].slices(),
          out.stdout + out.stderr)
    out = subprocess.run([srv.binary, "rebuild", "--config", str(srv.data / "config.toml"), "--data-dir",
                          str(srv.data / "d"), "--quick", "--grace", "0"], capture_output=True, text=True,
                         timeout=300)
    check("with no grace, the sweep removes it from the S3 target",
          out.returncode == 0 and "removed 1 slice files" in out.stdout and orphan not in services[3].slices(),
          out.stdout + out.stderr)


def test_the_log_names_the_s3_targets_and_no_secret(srv, suite):
    check, services = srv.check, suite.services
    srv.__exit__(None, None, None)
    srv.__enter__()
    log = srv.log
    check("the server line names the S3 targets", f"https://127.0.0.1:{services[1].ports['https']} bucket slices" in log)
    check("the log says a target failed and came back",
          "a dispersal target is failing" in log and "a dispersal target is answering again" in log)
    check("no secret key in the log", SK not in log)
