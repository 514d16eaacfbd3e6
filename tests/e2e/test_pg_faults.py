"""Faults of a cluster whose records are on PostgreSQL under Patroni
(`CLUSTER_META=postgres scripts/cluster up`), through its two gateways, under load:

- the primary killed (Patroni and its server, as a crash) while writers PUT through both
  gateways: Patroni promotes the standby; meanwhile requests get only 503 with
  Retry-After (or a closed connection), never another error; every acknowledged object is
  whole afterwards, including those acknowledged just before the kill (synchronous
  replication); writes go on through the same gateways without a restart;
- the old primary started again rejoins as the standby; the standby killed: writes go on
  on the primary alone (Patroni stops waiting for it), and it rejoins when started;
- a List of everything written matches what was acknowledged.

Collected only when the session's cluster keeps its records on PostgreSQL (its
cluster.env says META=postgres); scripts/test starts such a cluster for this suite and
the other cluster suites.
"""

import hashlib
import os
import pathlib
import subprocess
import threading
import time
import types

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from cipherstore_harness import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.disruptive, pytest.mark.postgres]
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suite(cluster, binary):
    env = cluster.env
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, read_timeout=60,
                 connect_timeout=10)

    def client(endpoint):
        return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=env["AK"],
                            aws_secret_access_key=env["SK"], region_name="us-east-1", verify=env["CA"],
                            config=cfg)

    pg_dir = (cluster.dir / "pg.dir").read_text().strip()

    def ctl(action, name):
        subprocess.run([str(ROOT / "scripts/cluster"), action, name, str(cluster.dir)], check=True,
                       env={**os.environ, "CIPHERSTORE_BIN": str(binary)}, stdout=subprocess.DEVNULL)

    def leader(seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out = subprocess.run([str(ROOT / "scripts/dev/patroni"), "leader", pg_dir], capture_output=True,
                                 text=True)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
            time.sleep(0.5)
        raise AssertionError("no PostgreSQL primary")

    a, b = client(env["ENDPOINT_A"]), client(env["ENDPOINT_B"])
    a.create_bucket(Bucket="pg-faults")
    return types.SimpleNamespace(a=a, b=b, ctl=ctl, leader=leader, acknowledged={})


class Writers:
    """Two threads PUTting 4 KiB objects through gateway A and gateway B as fast as they
    can, recording what was acknowledged and every refusal's (status, Retry-After)."""

    def __init__(self, suite, name):
        self.suite, self.name = suite, name
        self.stop = threading.Event()
        self.refusals = []
        self.ok_times = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(c, i)) for i, c in enumerate((suite.a, suite.b))]

    def run(self, c, w):
        n = 0
        while not self.stop.is_set():
            key, body = f"{self.name}/{w}/{n:06d}", os.urandom(4096)
            n += 1
            try:
                c.put_object(Bucket="pg-faults", Key=key, Body=body)
                with self.lock:
                    self.suite.acknowledged[key] = hashlib.sha256(body).hexdigest()
                    self.ok_times.append(time.monotonic())
            except ClientError as e:
                meta = e.response.get("ResponseMetadata", {})
                with self.lock:
                    self.refusals.append((meta.get("HTTPStatusCode"), meta.get("HTTPHeaders", {}).get("retry-after")))
                time.sleep(0.2)
            except (ConnectionClosedError, EndpointConnectionError, ReadTimeoutError):
                with self.lock:
                    self.refusals.append(("closed", None))
                time.sleep(0.2)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def acknowledged_since(self, t):
        with self.lock:
            return sum(1 for x in self.ok_times if x > t)

    def wait_for_writes_after(self, t, count=20, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.acknowledged_since(t) >= count:
                return True
            time.sleep(0.5)
        return False


def all_whole(suite):
    for key, digest in suite.acknowledged.items():
        got = suite.b.get_object(Bucket="pg-faults", Key=key)["Body"].read()
        if hashlib.sha256(got).hexdigest() != digest:
            return key
    return None


def test_the_primary_killed_under_load(check, suite):
    primary = suite.leader()
    with Writers(suite, "primary-killed") as w:
        time.sleep(3)
        before = len(suite.acknowledged)
        check("writes flow before the fault", before > 10, str(before))
        killed_at = time.monotonic()
        suite.ctl("kill", primary)
        promoted = suite.leader()
        check("Patroni promoted the standby", promoted != primary, promoted)
        check("writes go on through the same gateways after the switch",
              w.wait_for_writes_after(time.monotonic()), f"{w.acknowledged_since(killed_at)} since the kill")
        switch = time.monotonic() - killed_at
    bad = [r for r in w.refusals if not (r[0] == "closed" or (r[0] == 503 and r[1]))]
    check("during the switch only 503 with Retry-After (or a closed connection)", not bad, str(bad[:5]))
    check("the switch took under a minute", switch < 60, f"{switch:.1f} s")
    check("every acknowledged object is whole after the failover", all_whole(suite) is None)
    print(f"failover: {switch:.1f} s, {len(w.refusals)} refused, {len(suite.acknowledged)} acknowledged")
    suite.ctl("start", primary)


def test_the_standby_killed_and_back(check, suite):
    primary = suite.leader()
    standby = "pg-1" if primary == "pg-0" else "pg-0"
    with Writers(suite, "standby-killed") as w:
        time.sleep(2)
        suite.ctl("kill", standby)
        t = time.monotonic()
        check("writes go on with the standby down", w.wait_for_writes_after(t, seconds=90),
              f"{w.acknowledged_since(t)} acknowledged")
        suite.ctl("start", standby)
        t = time.monotonic()
        check("writes go on once the standby is back", w.wait_for_writes_after(t))
    bad = [r for r in w.refusals if not (r[0] == "closed" or (r[0] == 503 and r[1]))]
    check("refusals were only 503 with Retry-After", not bad, str(bad[:5]))
    check("the primary did not change", suite.leader() == primary)
    check("every acknowledged object is whole", all_whole(suite) is None)
    listed = set()
    for page in suite.a.get_paginator("list_objects_v2").paginate(Bucket="pg-faults"):
        listed.update(o["Key"] for o in page.get("Contents", []))
    check("a List shows exactly the acknowledged objects (and any refused write that committed)",
          set(suite.acknowledged) <= listed, f"{len(set(suite.acknowledged) - listed)} missing")


def test_meta_copy_moves_the_records_to_etcd_and_a_gateway_serves_them(check, suite, cluster, binary, tmp_path):
    """`cipherstore meta copy` from this cluster's PostgreSQL to its etcd (the cluster's
    gateways idle: the migration, backwards), `meta verify`, a refusal to copy into records, a changed
    record found by `verify`, and a gateway started on the copy serving the objects."""
    text = (cluster.dir / "gateway.toml").read_text()
    etcd_toml = tmp_path / "etcd.toml"
    # The same file without [store.postgres]: records in the etcd namespace that already
    # keeps this cluster's key state and identities (and holds no records yet).
    etcd_toml.write_text(text.split("[store.postgres]")[0])
    pg_toml = str(cluster.dir / "gateway.toml")

    def meta(*args):
        return subprocess.run([str(binary), "meta", *args], capture_output=True, text=True)

    copied = meta("copy", "--from", pg_toml, "--to", str(etcd_toml))
    check("meta copy succeeds and verifies", copied.returncode == 0 and "verified:" in copied.stdout,
          copied.stdout + copied.stderr)
    check("meta copy names the two sides and no password",
          "PostgreSQL 127.0.0.1:" in copied.stderr and "etcd" in copied.stderr
          and (pathlib.Path(cluster.env["PG_PASSWORD_FILE"]).read_text().strip() not in copied.stdout + copied.stderr),
          copied.stderr)
    again = meta("copy", "--from", pg_toml, "--to", str(etcd_toml))
    check("a second copy is refused: the destination holds records",
          again.returncode != 0 and "already holds records" in again.stderr, again.stderr)
    check("meta verify finds them equal", meta("verify", "--from", pg_toml, "--to", str(etcd_toml)).returncode == 0)

    # A gateway on the copy serves every acknowledged object.
    keys_env = dict(os.environ)
    for line in (cluster.dir / "keys.env").read_text().splitlines():
        k, v = line.removeprefix("export ").split("=", 1)
        keys_env[k] = v
    port = free_port()
    gw = subprocess.Popen([str(binary), "serve", "--config", str(etcd_toml), "--listen", f"127.0.0.1:{port}",
                           "--data-dir", str(tmp_path / "gw"), "--users", str(cluster.dir / "users"),
                           "--tls-cert", str(cluster.dir / "gw-a/tls/cert.pem"),
                           "--tls-key", str(cluster.dir / "gw-a/tls/key.pem")],
                          env=keys_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = boto3.client("s3", endpoint_url=f"https://127.0.0.1:{port}", aws_access_key_id=cluster.env["AK"],
                         aws_secret_access_key=cluster.env["SK"], region_name="us-east-1",
                         verify=cluster.env["CA"], config=Config(s3={"addressing_style": "path"}))
        deadline = time.monotonic() + 60
        while True:
            try:
                c.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        sample = sorted(suite.acknowledged)[::max(1, len(suite.acknowledged) // 50)]
        whole = all(hashlib.sha256(c.get_object(Bucket="pg-faults", Key=k)["Body"].read()).hexdigest()
                    == suite.acknowledged[k] for k in sample)
        check(f"a gateway on the etcd copy serves the objects ({len(sample)} checked)", sample and whole)
        c.put_object(Bucket="pg-faults", Key="written-on-the-copy", Body=b"x")
        differs = meta("verify", "--from", pg_toml, "--to", str(etcd_toml))
        check("meta verify finds a record that differs (exit status 1, the key named)",
              differs.returncode == 1 and "written-on-the-copy" in differs.stderr, differs.stderr)
    finally:
        gw.terminate()
        gw.wait(timeout=30)


def test_both_servers_down_and_back(check, suite):
    """Both PostgreSQL servers killed: requests get 503 with Retry-After (HEAD included:
    records are there); both started again: Patroni elects a primary and the same gateways
    serve every acknowledged object."""
    suite.ctl("kill", "pg-0")
    suite.ctl("kill", "pg-1")
    some = next(iter(suite.acknowledged))
    for name, call in [("PUT", lambda: suite.a.put_object(Bucket="pg-faults", Key="both-down", Body=b"x")),
                       ("HEAD", lambda: suite.b.head_object(Bucket="pg-faults", Key=some))]:
        try:
            call()
            status = (200, None)
        except ClientError as e:
            meta = e.response.get("ResponseMetadata", {})
            status = (meta.get("HTTPStatusCode"), meta.get("HTTPHeaders", {}).get("retry-after"))
        except (ConnectionClosedError, ReadTimeoutError):
            status = ("closed", None)
        check(f"both down: {name} refused with 503 and Retry-After", status[0] == 503 and status[1], str(status))
    suite.ctl("start", "pg-0")
    suite.ctl("start", "pg-1")
    suite.leader(seconds=90)
    deadline = time.monotonic() + 60
    while True:
        try:
            suite.a.put_object(Bucket="pg-faults", Key="both-back", Body=b"back")
            break
        except (ClientError, ConnectionClosedError, ReadTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    check("both back: every acknowledged object whole through the same gateways", all_whole(suite) is None)
