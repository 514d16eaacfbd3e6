"""The admin HTTP API (`/_admin/v1/`, docs/ACCESS.md) on the filesystem and cluster
stores: the bearer token required (401 without it or with another, 403 on plain HTTP),
users, access keys and roles made, shown, changed and deleted with changes taking effect
on S3 within seconds, every refusal a 4xx naming what is wrong, the changes in the IAM
audit trail with the API as initiator, and no secret in any answer but the one that makes
the key, nor in the audit trail or the log.
"""

import json
import pathlib
import secrets
import ssl
import tempfile
import urllib.error
import urllib.request

import pytest

from cipherstore_harness import error_code, free_port
from cipherstore_harness import until as harness_until

STORES = ["fs", "cluster"]
TOKEN = secrets.token_urlsafe(32)
TOKEN_FILE = pathlib.Path(tempfile.mkdtemp(prefix="cipherstore-admin-")) / "admin.token"
TOKEN_FILE.write_text(TOKEN + "\n")
TOKEN_FILE.chmod(0o600)
HTTP_PORT = free_port()
SERVER = {"extra_args": ["--admin-token-file", str(TOKEN_FILE)],
          "config": f'http_listen = "127.0.0.1:{HTTP_PORT}"\n'}
B = "adm"


def until(cond, timeout=5):
    return harness_until(cond, timeout=timeout, every=0.25)


def call(srv, method, route, body=None, token=TOKEN, base=None):
    """(status, parsed JSON body, headers) of one admin API request."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(f"{base or srv.endpoint}/_admin/v1/{route}", data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    context = ssl.create_default_context(cafile=str(srv.ca))
    try:
        with urllib.request.urlopen(req, context=None if base else context, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null"), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), e.headers


def test_the_token_is_required(srv):
    check = srv.check
    status, body, headers = call(srv, "GET", "users", token=None)
    check("no token: 401 Unauthorized with WWW-Authenticate",
          status == 401 and body["error"]["code"] == "Unauthorized" and headers.get("WWW-Authenticate") == "Bearer",
          f"{status} {body}")
    check("another token: 401", call(srv, "GET", "users", token="x" * 43)[0] == 401)
    check("the token with a suffix: 401", call(srv, "GET", "users", token=TOKEN + "x")[0] == 401)
    status, body, _ = call(srv, "GET", "users", base=f"http://127.0.0.1:{HTTP_PORT}")
    check("plain HTTP: 403 InsecureTransport", (status, body["error"]["code"]) == (403, "InsecureTransport"),
          f"{status} {body}")
    check("S3 still answers beside it", srv.boto3("alice").list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200)


def test_users_keys_and_roles_through_the_api(srv):
    check = srv.check
    alice = srv.boto3("alice")
    alice.create_bucket(Bucket=B)
    alice.put_object(Bucket=B, Key="o", Body=b"owned by alice")

    status, user, _ = call(srv, "POST", "users", {"name": "carol", "email": "carol@example.com",
                                                   "display_name": "Carol"})
    check("POST users: 201 and the user", status == 201 and user["name"] == "carol"
          and user["email"] == "carol@example.com" and len(user["canonical_id"]) >= 32, f"{status} {user}")
    status, body, _ = call(srv, "POST", "users", {"name": "carol"})
    check("the same name again: 409 UserExists", (status, body["error"]["code"]) == (409, "UserExists"))
    status, body, _ = call(srv, "POST", "users", {"name": "bad name"})
    check("a bad name: 400 naming it", status == 400 and "user name" in body["error"]["message"], str(body))
    status, body, _ = call(srv, "POST", "users", b"{not json")
    check("a body that is not JSON: 400 MalformedJSON", (status, body["error"]["code"]) == (400, "MalformedJSON"))
    status, body, _ = call(srv, "POST", "users", {"name": "x2", "admin": True})
    check("an unknown field: 400 MalformedJSON", status == 400 and "admin" in body["error"]["message"], str(body))

    status, key, _ = call(srv, "POST", "users/carol/keys", {})
    check("POST users/carol/keys: 201 with the secret, once",
          status == 201 and key["access_key_id"] and len(key["secret_access_key"]) == 40, f"{status}")
    ak, sk = key["access_key_id"], key["secret_access_key"]
    carol = srv.client(ak, sk)
    check("the new key signs S3 requests within 5 s",
          until(lambda: error_code(lambda: carol.list_buckets()) is None))
    status, shown, _ = call(srv, "GET", "users/carol")
    check("GET users/carol lists the key, not its secret",
          status == 200 and [k["access_key_id"] for k in shown["access_keys"]] == [ak]
          and sk not in json.dumps(shown), str(shown))
    status, keys, _ = call(srv, "GET", "keys")
    check("GET keys lists every key, no secret", status == 200 and ak in [k["access_key_id"] for k in keys]
          and sk not in json.dumps(keys))

    check("carol has no role yet", error_code(lambda: carol.get_object(Bucket=B, Key="o")) == "AccessDenied")
    status, body, _ = call(srv, "PUT", f"users/carol/roles/{B}", {"role": "reader"})
    check("PUT a role", status == 200 and body == {"user": "carol", "bucket": B, "role": "reader"}, str(body))
    check("… carol reads within 5 s",
          until(lambda: error_code(lambda: carol.get_object(Bucket=B, Key="o")) is None))
    status, body, _ = call(srv, "PUT", f"users/carol/roles/{B}", {"role": "owner"})
    check("an unknown role: 400", status == 400 and "owner" in body["error"]["message"], str(body))
    status, body, _ = call(srv, "DELETE", f"users/carol/roles/{B}")
    check("DELETE the role", status == 200 and body["revoked"] == "reader", str(body))
    check("… refused within 5 s", until(lambda: error_code(lambda: carol.get_object(Bucket=B, Key="o"))
                                        == "AccessDenied"))
    status, body, _ = call(srv, "DELETE", f"users/carol/roles/{B}")
    check("no role to revoke: 404 NoSuchRole", (status, body["error"]["code"]) == (404, "NoSuchRole"))

    status, body, _ = call(srv, "PATCH", f"keys/{ak}", {"enabled": False})
    check("PATCH keys/ID disables", status == 200 and body["enabled"] is False, str(body))
    check("… refused within 5 s",
          until(lambda: error_code(lambda: carol.list_buckets()) == "InvalidAccessKeyId"))
    call(srv, "PATCH", f"keys/{ak}", {"enabled": True})
    check("… enabled again", until(lambda: error_code(lambda: carol.list_buckets()) is None))

    given = {"access_key_id": "CAROLGIVEN0000000001", "secret_access_key": "g" * 40,
             "expires": "2999-01-01T00:00:00Z"}
    status, body, _ = call(srv, "POST", "users/carol/keys", given)
    check("a key with a given id and secret and an expiry",
          status == 201 and body["access_key_id"] == given["access_key_id"]
          and body["expires"] == "2999-01-01T00:00:00Z", str(body)[:200])
    status, body, _ = call(srv, "POST", "users/carol/keys", {"access_key_id": "ONLYTHEID"})
    check("an id without its secret: 400", status == 400, str(body))

    for method, route, want in (("GET", "groups", (404, "NoSuchRoute")), ("PUT", "users", (405, "MethodNotAllowed")),
                                ("GET", "users/nobody", (404, "NoSuchUser")),
                                ("DELETE", "keys/NOSUCHKEY", (404, "NoSuchAccessKey"))):
        status, body, _ = call(srv, method, route)
        check(f"{method} {route}: {want}", (status, body["error"]["code"]) == want, f"{status} {body}")

    status, body, _ = call(srv, "DELETE", f"keys/{ak}")
    check("DELETE keys/ID", status == 200, str(body))
    check("… refused within 5 s",
          until(lambda: error_code(lambda: carol.list_buckets()) == "InvalidAccessKeyId"))
    users = json.loads(srv.iam("user", "list", "--json").stdout)
    check("the CLI sees what the API made", "carol" in {u["name"] for u in users})
    status, body, _ = call(srv, "DELETE", "users/carol")
    check("DELETE users/carol, with its keys", status == 200 and body["access_keys_removed"] == 1, str(body))

    audit = (srv.data / "d" / "iam-audit.jsonl").read_text()
    events = [json.loads(line) for line in audit.splitlines()]
    by_api = [e for e in events if e["initiator"].startswith("admin-api@127.0.0.1")]
    check("the audit trail records the API's changes as the API's",
          {"user.create", "hmac.create", "role.grant", "role.revoke", "hmac.disable", "hmac.enable",
           "hmac.delete", "user.delete"} <= {e["action"] for e in by_api}, str({e["action"] for e in by_api}))
    check("… failures too", any(e["outcome"].startswith("failure") for e in by_api))
    log = (srv.data / "server.log").read_text(errors="replace")
    for place, text in (("audit trail", audit), ("server log", log)):
        check(f"no secret and no token in the {place}",
              sk not in text and given["secret_access_key"] not in text and TOKEN not in text)


@pytest.fixture(scope="module", autouse=True)
def remove_token_file():
    yield
    TOKEN_FILE.unlink(missing_ok=True)
