"""SeaweedFS on loopback, for the suites and the benchmarks that use it: `weed server -s3`
(master, volume server, filer and S3 gateway in one process), S3 over HTTPS with a given
certificate, every listener on its own free port (gRPC ports would otherwise default to
port + 10000), and one identity allowed everything."""

import json

from .server import free_port

LISTENERS = ("master", "volume", "filer", "s3", "https", "master.grpc", "volume.grpc", "filer.grpc", "s3.grpc")


def ports():
    """A free loopback port for every listener."""
    return {name: free_port() for name in LISTENERS}


def write_identities(path, name, access_key, secret_key):
    """The S3 gateway's identities file: one identity, allowed every action."""
    path.write_text(json.dumps({"identities": [{
        "name": name, "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))


def command(weed, data, p, cert, key, identities, volumes):
    """The `weed server` command line: data in `data`, listeners on `p` (from `ports()`),
    S3 over HTTPS with `cert`/`key`, at most `volumes` volumes (SeaweedFS gives every bucket
    its own; PUTs fail when none is writable)."""
    return [
        weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-volume.max={volumes}",
        f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
        f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
        f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
        "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}", f"-s3.port.https={p['https']}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.cert.file={cert}", f"-s3.key.file={key}", f"-s3.config={identities}"]
