"""`cipherstore serve` for the end-to-end suites: a free loopback port over HTTPS, two
users (alice, bob), a SoftHSM2 token of its own, and checks that count and report
failures. The HSM is that token unless CIPHERSTORE_E2E_HSM_ENV names a file of `export`
lines an hsm/ script printed (`hsm/opencryptoki up DIR > FILE`: the servers then share
that module's token); CIPHERSTORE_E2E_HSM_WRAP forces a wrapping method (`aes-gcm`, ...).
The store is the filesystem one, unless:
- `cluster` (or CIPHERSTORE_E2E_CLUSTER) names a directory `scripts/cluster up` made: the
  server is then a gateway of that cluster store (blobs on its Ceph, records in its etcd,
  under a namespace of the server's own, or in a PostgreSQL schema of its own);
- `dispersal=(k, n, w)` (or CIPHERSTORE_E2E_DISPERSAL="k/n"): object bytes are dispersed
  over n target directories of the server's own (`srv.targets`; or S3 buckets given as
  `remote_targets`), any k of which rebuild them.

    with Server(binary) as srv:
        alice = srv.boto3("alice")
        srv.check("name", condition, "detail")
"""

import atexit
import json
import os
import pathlib
import random
import shlex
import shutil
import socket
import subprocess
import tempfile
import time

# tests/harness/cipherstore_harness/server.py: the repository is three folders up.
REPO = pathlib.Path(__file__).resolve().parents[3]
USERS = {"alice": ("alice-key", "alice-secret-123"), "bob": ("bob-key", "bob-secret-4567")}


def own_backend_bucket(cluster, name):
    """Creates bucket `name` on the blob backend of the cluster in directory `cluster` (as
    `scripts/cluster up` left it in cluster.env) and returns it; None for a cluster
    directory without cluster.env (the shared bucket is used then)."""
    env_file = cluster / "cluster.env"
    if not env_file.exists():
        return None
    import boto3
    from botocore.config import Config
    env = dict(line.split("=", 1) for line in env_file.read_text().split() if "=" in line)
    backend = boto3.client("s3", endpoint_url=env["BACKEND_ENDPOINT"], aws_access_key_id=env["BACKEND_AK"],
                           aws_secret_access_key=env["BACKEND_SK"], region_name="us-east-1",
                           config=Config(s3={"addressing_style": "path"}))
    backend.create_bucket(Bucket=name)
    return name


# How long a server may take from its start to accepting connections (a cluster gateway
# reaches etcd, PostgreSQL and its HSM first; on a loaded machine that takes seconds).
START_SECONDS = 60


def memory_mib(pid):
    """A process's memory from /proc, in MiB: `rss` (resident now), `anon` (its anonymous
    part: the process's own memory; the rest is file pages, such as mapped object files'
    page cache, which the kernel may drop) and `peak` (the most resident so far). NaN for
    what cannot be read (the process is gone)."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "VmHWM": "peak"}
    out = dict.fromkeys(fields.values(), float("nan"))
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in fields:
                    out[fields[key]] = int(value.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


# Where free_port() looks: below the kernel's ephemeral range (ip_local_port_range,
# 32768-60999 by default), from which outgoing connections take their local ports, and
# clear of the fixed ports the project's clusters use (9100s, 12379-13301, 15432-15443,
# 17480s, 19100-19543; Ceph's daemons 6800-7568).
PORTS = range(20000, 30000)
_handed_out = set()
_pick = random.Random()


def free_port():
    """A port on 127.0.0.1 that nothing is bound to now, for a server about to start.

    The port is let go again before the server binds it. One from the ephemeral range
    (what binding to port 0 gives) could meanwhile become the local port of any outgoing
    connection on the machine (a server's own to etcd, the harness's to radosgw), and the
    server would then fail with `cannot listen`; one below that range cannot. Never the
    same port twice in one test process."""
    for _ in range(1000):
        port = _pick.choice(PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port on 127.0.0.1 in {PORTS.start}-{PORTS.stop - 1}")


class Server:
    def __init__(self, binary, cache_ttl="1", extra_args=(), config=None, base=None, dispersal=None,
                 remote_targets=None, cluster=None, env=None, hsm=True):
        self.binary = str(binary)
        self.passed = 0
        self.failed = 0
        # What each failed check said, in order (pytest reports those of each test).
        self.failures = []
        self.data = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-e2e-", dir=base))
        # Removed when the test process ends, unless a check failed here (kept for a look)
        # or CIPHERSTORE_KEEP_TEST_DATA is set.
        atexit.register(self._remove_data)
        users = self.data / "users.txt"
        users.write_text("".join(f"{ak} {sk}\n" for ak, sk in USERS.values()))
        self.port = free_port()
        hsm_env = os.environ.get("CIPHERSTORE_E2E_HSM_ENV")
        if not hsm:
            # No HSM of its own (a gateway using a remote key service).
            exports = ""
        elif hsm_env:
            exports = pathlib.Path(hsm_env).read_text()
        else:
            exports = subprocess.run([str(REPO / "hsm/create-token"), str(self.data / "hsm"), "e2e"],
                                     capture_output=True, text=True, check=True).stdout
        self.env = dict(os.environ)
        if not hsm:
            for k in [k for k in self.env if k.startswith(("CIPHERSTORE_HSM_", "CIPHERSTORE_PKCS11_"))]:
                del self.env[k]
        if os.environ.get("CIPHERSTORE_E2E_HSM_WRAP"):
            self.env["CIPHERSTORE_HSM_WRAP"] = os.environ["CIPHERSTORE_E2E_HSM_WRAP"]
        for line in exports.splitlines():
            if line.startswith("export "):
                # Shell quoting, as `eval "$(hsm/… up DIR)"` would read it.
                k, v = shlex.split(line[len("export "):])[0].split("=", 1)
                self.env[k] = v
        self.env["CIPHERSTORE_KEYS_DIR"] = str(self.data / "keys")
        self.env["CIPHERSTORE_KEY_CACHE_TTL"] = cache_ttl
        self.env.update(env or {})
        self.args = ["serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data / "d"),
                     "--users", str(users), *extra_args]
        # None: as the environment says; False: not a cluster gateway, whatever it says.
        if cluster is None:
            cluster = os.environ.get("CIPHERSTORE_E2E_CLUSTER")
        self.cluster = cluster or None
        if cluster:
            # The cluster's store section, with a namespace and a blob bucket of this
            # server's own: a sweep takes every blob its namespace's records do not name
            # for an orphan, so namespaces must not share a bucket.
            store = (pathlib.Path(cluster) / "gateway.toml").read_text()
            own = f"e2e-{os.getpid()}-{self.port}"
            bucket = own_backend_bucket(pathlib.Path(cluster), own)

            def line_of(line):
                if line.startswith("namespace"):
                    return f'namespace = "/cipherstore/{own}/"'
                if line.strip() == "[store.postgres]":  # records on PostgreSQL: a schema of its own
                    return f'{line}\nschema = "{own.replace("-", "_")}"'
                if line.startswith("bucket") and bucket:
                    return f'bucket = "{bucket}"'
                return line
            store = "\n".join(line_of(line) for line in store.splitlines()) + "\n"
            config = (config or "") + "\n" + store
        # None: as the environment says; False: not dispersed, whatever it says.
        if dispersal is None and os.environ.get("CIPHERSTORE_E2E_DISPERSAL"):
            k, n = map(int, os.environ["CIPHERSTORE_E2E_DISPERSAL"].split("/"))
            dispersal = (k, n, None)
        self.targets = []
        if dispersal:
            k, n, w, *more = dispersal
            # remote_targets: {i: (TOML inline table, the directory its slices land in)}
            # for targets that are S3 buckets; the others are directories of our own.
            remote = remote_targets or {}
            self.targets = [remote[i][1] if i in remote else self.data / "targets" / str(i) for i in range(n)]
            for i, t in enumerate(self.targets):
                if i not in remote:
                    t.mkdir(parents=True)
            listed = [remote[i][0] if i in remote else json.dumps(str(t)) for i, t in enumerate(self.targets)]
            section = (f"\n[store.dispersal]\nwidth = {n}\nthreshold = {k}\n"
                       + (f"write_threshold = {w}\n" if w else "")
                       + "targets = [" + ", ".join(listed) + "]\n"
                       + "".join(line + "\n" for line in more))
            config = (config or "") + section
        if config is not None:
            (self.data / "config.toml").write_text(config)
            self.args += ["--config", str(self.data / "config.toml")]
        self.ca = self.data / "d" / "tls" / "cert.pem"
        self.process = None
        self.started = False  # once it has listened, its port is the one clients know

    @property
    def endpoint(self):
        """The server's HTTPS URL (its port may move before its first start)."""
        return f"https://127.0.0.1:{self.port}"

    def _remove_data(self):
        if self.failed == 0 and not os.environ.get("CIPHERSTORE_KEEP_TEST_DATA"):
            shutil.rmtree(self.data, ignore_errors=True)
        else:
            print(f"test data kept in {self.data}", flush=True)

    def keyctl(self, *args):
        # With a configuration file, the CLI reads it as the server does: a cluster
        # gateway's key state is in etcd, not in the keys directory.
        config = ["--config", str(self.data / "config.toml")] if (self.data / "config.toml").exists() else []
        return subprocess.run([self.binary, "keys", *config, *args], env=self.env, capture_output=True, text=True,
                              check=True).stdout

    def create_root(self, name):
        return json.loads(self.keyctl("create", name, "--json"))["crn"]

    def __enter__(self):
        # Output goes to a file: a pipe nobody drains would stall the server once full.
        self.log_path = self.data / "server.log"
        self.log_file = open(self.log_path, "a")  # appended across restarts
        # The port came from free_port(), which let it go again: until the server binds it,
        # another process may take it (free_port() keeps clear of the ports outgoing
        # connections are given, but not of other programs choosing ports as it does). A
        # first start refused for that alone is retried on another port; any other failure
        # says what the server printed.
        attempts = 0
        while True:
            attempts += 1
            started = self.log_path.stat().st_size if self.log_path.exists() else 0
            self.process = subprocess.Popen([self.binary, *self.args], stdout=self.log_file,
                                            stderr=subprocess.STDOUT, text=True, env=self.env)
            if self._wait_listening(START_SECONDS):
                self.started = True
                return self
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
                why = f"not listening on port {self.port} after {START_SECONDS} s"
            else:
                why = f"exited with status {self.process.returncode}"
            with open(self.log_path, errors="replace") as f:
                f.seek(started)
                printed = f.read()
            # Only a first start moves: after it, clients know the port.
            if f"cannot listen on 127.0.0.1:{self.port}" in printed and not self.started and attempts < 3:
                self._move_to(free_port())
                continue
            self.log_file.close()
            self.failed += 1  # keeps the data directory for a look
            raise RuntimeError(f"the server did not start ({why}); it printed:\n{printed[-4000:]}")

    def _wait_listening(self, seconds):
        """True once the server's certificate exists and its port accepts connections;
        False if it exits first or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.ca.exists():
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return True
                except OSError:
                    pass
            time.sleep(0.1)
        return False

    def _move_to(self, port):
        """Listens on `port` from the next start on (restarts keep it)."""
        self.args[self.args.index(f"127.0.0.1:{self.port}")] = f"127.0.0.1:{port}"
        self.port = port

    def __exit__(self, *exc):
        if self.log_file.closed:
            return False  # stopped already (a suite stops it to look at what it left)
        self.process.terminate()
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_file.close()
        out = self.log_path.read_text(errors="replace")
        self.log = out
        self.check("graceful shutdown", self.process.returncode == 0, out[-2000:])
        return False

    def metric(self, name):
        """The value of one unlabelled counter or gauge from /metrics (None if absent)."""
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=str(self.ca))
        text = urllib.request.urlopen(f"{self.endpoint}/metrics", context=ctx).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def metric_labelled(self, name, **labels):
        """The value of the series of `name` with exactly `labels` from /metrics (None if absent)."""
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=str(self.ca))
        text = urllib.request.urlopen(f"{self.endpoint}/metrics", context=ctx).read().decode()
        want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[1])
        return None

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append(f"{name} {detail}".strip())
            print(f"FAIL {name} {detail}", flush=True)

    def boto3(self, user, module=None, **config):
        import boto3
        from botocore.config import Config
        ak, sk = USERS[user]
        mod = module or boto3
        cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config)
        return mod.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                          region_name="us-east-1", verify=str(self.ca), config=cfg)

    def client(self, ak=None, sk=None, endpoint=None):
        """A boto3 S3 client with access key `ak` and secret `sk` (an unsigned, anonymous one
        without them), on this server's HTTPS endpoint or `endpoint`."""
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
        cfg = {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}}
        if ak is None:
            cfg["signature_version"] = UNSIGNED
        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, aws_access_key_id=ak or "x",
                            aws_secret_access_key=sk or "x", region_name="us-east-1", verify=str(self.ca),
                            config=Config(**cfg))

    def iam(self, *args, check=True):
        """`cipherstore iam` against this server's own identities (its --config, else its
        data directory)."""
        config = ["--config", str(self.data / "config.toml")] if (self.data / "config.toml").exists() else []
        return subprocess.run([self.binary, "iam", *config, "--data-dir", str(self.data / "d"), *args],
                              env=self.env, capture_output=True, text=True, check=check)

    def client_env(self, user):
        """Environment for command-line clients (aws cli) acting as `user`."""
        ak, sk = USERS[user]
        env = dict(os.environ)
        env.update({"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk, "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_CA_BUNDLE": str(self.ca), "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
        return env

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def wait_port(port, timeout=10):
    """Waits until something accepts connections on 127.0.0.1:`port` (or `timeout` passes)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def until(cond, timeout=40, every=0.5):
    """Waits until cond() is true (or `timeout` seconds pass); returns its last value."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value or time.monotonic() > end:
            return value
        time.sleep(every)


def refused_503(srv, name, fn):
    """fn must fail with 503 ServiceUnavailable and a Retry-After header (a check of `srv`)."""
    try:
        fn()
        srv.check(name + ": refused", False)
    except Exception as e:  # botocore ClientError
        meta = getattr(e, "response", {}).get("ResponseMetadata", {})
        srv.check(name + ": 503 with Retry-After",
                  meta.get("HTTPStatusCode") == 503 and "retry-after" in meta.get("HTTPHeaders", {}), repr(e))


def error_code(fn):
    import botocore
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    return None


def kms_default(s3, bucket, crn):
    """Makes aws:kms under root key `crn` the default encryption of `bucket`."""
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": crn}}]})


def protection_modes(crn, prefix):
    """The four protection modes as boto3 keyword arguments, each with a bucket of its own:
    {mode: (bucket, PUT kwargs, GET kwargs, copy kwargs)} for default AONT-RS, SSE-C (a
    random customer key), SSE-KMS under root key `crn`, and SSE-S3."""
    import base64
    import hashlib
    key = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}
    copy_ssec = {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": ssec["SSECustomerKey"],
                 "CopySourceSSECustomerKeyMD5": ssec["SSECustomerKeyMD5"]}
    kms = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": crn}
    sse_s3 = {"ServerSideEncryption": "AES256"}
    return {
        "default": (f"{prefix}-default", {}, {}, {}),
        "SSE-C": (f"{prefix}-ssec", ssec, ssec, {**ssec, **copy_ssec}),
        "SSE-KMS": (f"{prefix}-kms", kms, {}, kms),
        "SSE-S3": (f"{prefix}-sses3", sse_s3, {}, sse_s3),
    }
