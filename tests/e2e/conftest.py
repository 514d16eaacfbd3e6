"""Fixtures of the end-to-end suites.

A suite (one module) names the stores it runs on in `STORES` (default: the filesystem
store) and, optionally, how its server is started in `SERVER` (keyword arguments of
`cipherstore_harness.Server`). Each of its tests that takes `srv` gets the module's server
on one of those stores: one server per module and store, started before the module's
first test and stopped after its last, so tests of a module run in order on shared
state. Tests are marked with their store (`-m "not cluster"`, `-m dispersed`). The
cluster (Ceph RGW, three etcd members) is started once per session, or taken from
CIPHERSTORE_E2E_CLUSTER.

A test that needs a server of its own (another configuration, a restart from nothing)
makes it with `server(...)`, on the same store.

`srv.check(name, condition, detail)` records a failed condition and carries on, so one
test reports every check that failed in it: the test fails if any did.
"""

import os
import pathlib
import shutil
import subprocess
import tempfile
import types

import pytest

from cipherstore_harness import Server
from cipherstore_harness.server import REPO

# Store name: (Server keyword arguments, marks). `cluster: True` is replaced by the
# session's cluster directory.
STORES = {
    "fs": ({}, [pytest.mark.fs]),
    "dispersed-3of5": ({"dispersal": (3, 5, None)}, [pytest.mark.dispersed]),
    "dispersed-10of16": ({"dispersal": (10, 16, None)}, [pytest.mark.dispersed]),
    "cluster": ({"cluster": True}, [pytest.mark.cluster]),
    "cluster-dispersed-3of5": ({"cluster": True, "dispersal": (3, 5, None)},
                               [pytest.mark.cluster, pytest.mark.dispersed]),
}


def tpm_is_the_hsm():
    """Whether the suites' HSM is a TPM (CIPHERSTORE_E2E_HSM_ENV from `hsm/tpm2 up`)."""
    env = os.environ.get("CIPHERSTORE_E2E_HSM_ENV")
    return bool(env) and "TPM2_PKCS11_STORE" in pathlib.Path(env).read_text()


def cluster_meta():
    """Where the session's cluster keeps its records: `postgres` or `etcd` (the META line of
    CIPHERSTORE_E2E_CLUSTER's cluster.env, or CLUSTER_META for a cluster started here)."""
    given = os.environ.get("CIPHERSTORE_E2E_CLUSTER")
    if given:
        env = pathlib.Path(given, "cluster.env")
        if env.exists():
            for line in env.read_text().split():
                if line.startswith("META="):
                    return line.split("=", 1)[1] or "etcd"
        return "etcd"
    return os.environ.get("CLUSTER_META") or "postgres"


def pytest_collection_modifyitems(config, items):
    """Suites that stop parts of the shared cluster (`disruptive`) run after all others;
    suites about a TPM (`tpm2`) run only when the HSM is one, and suites about PostgreSQL's
    faults (`postgres`) only when the cluster's records are there: they are deselected
    (not skipped) otherwise."""
    unwanted = []
    if not tpm_is_the_hsm():
        unwanted.append("tpm2")
    if cluster_meta() != "postgres":
        unwanted.append("postgres")
    for marker in unwanted:
        dropped = [item for item in items if item.get_closest_marker(marker) is not None]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item.get_closest_marker(marker) is None]
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


def pytest_generate_tests(metafunc):
    if "store" in metafunc.fixturenames:
        names = getattr(metafunc.module, "STORES", ["fs"])
        params = [pytest.param(n, marks=STORES[n][1], id=n) for n in names]
        metafunc.parametrize("store", params, scope="module")


@pytest.fixture(scope="session")
def binary():
    path = pathlib.Path(os.environ.get("CIPHERSTORE_BIN") or REPO / "target/release/cipherstore")
    if not path.exists():
        pytest.exit(f"no cipherstore binary at {path}: run `cargo build --release` (or set CIPHERSTORE_BIN)")
    return path


@pytest.fixture(scope="session")
def cluster_dir(binary):
    """A running cluster store's directory: CIPHERSTORE_E2E_CLUSTER's, or one started now
    by scripts/cluster (and stopped after the session)."""
    given = os.environ.get("CIPHERSTORE_E2E_CLUSTER")
    if given:
        yield given
        return
    work = tempfile.mkdtemp(prefix="cipherstore-e2e-cluster-")
    env = {**os.environ, "CIPHERSTORE_BIN": str(binary)}
    subprocess.run([str(REPO / "scripts/cluster"), "up", work], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        yield work
    finally:
        subprocess.run([str(REPO / "scripts/cluster"), "down", work], env=env, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def store_options(request, store, **kwargs):
    """Server keyword arguments for `store`, under `kwargs` (a suite's own dispersal wins)."""
    options, _ = STORES[store]
    kwargs["cluster"] = request.getfixturevalue("cluster_dir") if options.get("cluster") else False
    kwargs.setdefault("dispersal", options.get("dispersal", False))
    return kwargs


@pytest.fixture(scope="module")
def srv(request, binary, store):
    """The module's server on `store`, running."""
    server = Server(binary, **store_options(request, store, **getattr(request.module, "SERVER", {})))
    server.__enter__()
    try:
        yield server
    finally:
        before = len(server.failures)
        server.__exit__(None, None, None)
    if len(server.failures) > before:
        pytest.fail("stopping the server: " + "\n".join(server.failures[before:]), pytrace=False)


@pytest.fixture(scope="module")
def suite(srv):
    """What a module's tests hand on to the ones after them (clients, names, objects)."""
    return types.SimpleNamespace()


@pytest.fixture
def server(request, binary, store):
    """Makes servers of a test's own on the module's store (`server(**Server keyword
    arguments)`, not started: `with server() as srv:`); their checks count as the test's."""
    made = []

    def make(**kwargs):
        made.append(Server(binary, **store_options(request, store, **kwargs)))
        return made[-1]

    make.made = made
    return make


class Checks:
    """`check(name, condition, detail)` for tests without a server of the harness's (the
    cluster's own gateways): failures recorded, the test failed at its end."""

    def __init__(self):
        self.passed = 0
        self.failures = []

    def __call__(self, name, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failures.append(f"{name} {detail}".strip())
            print(f"FAIL {name} {detail}", flush=True)


@pytest.fixture
def check():
    return Checks()


@pytest.fixture(scope="session")
def cluster(cluster_dir):
    """The running cluster: its directory and what `scripts/cluster up` printed (endpoints
    of its two gateways, their credentials and CA, the root key's CRN, the backend's and
    etcd's endpoints), as `cluster.dir` and `cluster.env`."""
    path = pathlib.Path(cluster_dir)
    env = dict(line.split("=", 1) for line in (path / "cluster.env").read_text().split() if "=" in line)
    return types.SimpleNamespace(dir=path, env=env)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    srv = item.funcargs.get("srv")
    before = len(srv.failures) if srv is not None else 0
    result = yield
    failed = srv.failures[before:] if srv is not None else []
    if isinstance(item.funcargs.get("check"), Checks):
        failed += item.funcargs["check"].failures
    for own in getattr(item.funcargs.get("server"), "made", []):
        failed += own.failures
    if failed:
        raise AssertionError(f"{len(failed)} check(s) failed:\n" + "\n".join(failed))
    return result
