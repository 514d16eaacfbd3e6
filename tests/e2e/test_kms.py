"""The key service (`serve --kms-listen`) driven by IBM's own Key Protect SDK (PyPI
`keyprotect`), authenticated as IBM Cloud IAM clients are (`IAMAuthenticator` with the
token URL pointed at the service): tokens, roles, the key lifecycle, DEK wrap/unwrap/
rewrap across a rotation, aliases, registrations made by S3 buckets, deletion refused by
registration and by Object Lock, restore, purge, policies (rotation by policy with a
month of a few seconds, dual authorization for deletion with two identities), and every
bad input refused by name.
Tests run in order on one server and share what they made through `suite`."""

import base64
import io
import json
import os
import time

import pytest
import requests
from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
from keyprotect.ibm_key_protect_api_v2 import IbmKeyProtectApiV2

from cipherstore_harness import free_port, until, wait_port

KMS_PORT = free_port()
PURGE_WAIT = 3
MONTH = 4
SERVER = {"extra_args": ("--kms-listen", f"127.0.0.1:{KMS_PORT}"),
          "env": {"CIPHERSTORE_KMS_PURGE_WAIT_SECONDS": str(PURGE_WAIT), "CIPHERSTORE_KMS_MONTH_SECONDS": str(MONTH)}}
URL = f"https://127.0.0.1:{KMS_PORT}"
DEK = b"plaintext-data-key"


def body(obj):
    return io.BytesIO(json.dumps(obj).encode())


def reason(fn):
    """(status, Key Protect reason code) of the ApiException `fn` raises; None if none."""
    try:
        fn()
    except ApiException as e:
        try:
            code = e.http_response.json()["resources"][0]["reasons"][0]["code"]
        except (ValueError, KeyError, IndexError, TypeError):
            code = None
        return e.code, code
    return None


@pytest.fixture(scope="module")
def kp(srv, suite):
    """API keys of each role (two managers: two identities), an SDK client for each, and
    the instance id, in `suite`."""
    os.environ["REQUESTS_CA_BUNDLE"] = str(srv.ca)
    wait_port(KMS_PORT)
    suite.instance = srv.keyctl("instance").strip()
    suite.apikeys, suite.ids, suite.clients = {}, {}, {}
    for name, role in [("reader", "reader"), ("writer", "writer"), ("manager", "manager"), ("manager2", "manager")]:
        out = srv.iam("apikey", "create", f"kp-{name}", "--role", role, "--json")
        issued = json.loads(out.stdout)
        suite.apikeys[name], suite.ids[name] = issued["apikey"], issued["identity"]
        service = IbmKeyProtectApiV2(authenticator=IAMAuthenticator(issued["apikey"], url=URL))
        service.set_service_url(URL)
        suite.clients[name] = service
    # A change made by the CLI is in force within seconds (the server follows the store).
    form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": suite.apikeys["manager2"]}
    until(lambda: requests.post(f"{URL}/identity/token", data=form, timeout=10).status_code == 200, timeout=20)
    yield suite
    os.environ.pop("REQUESTS_CA_BUNDLE", None)


def test_tokens_are_iam_tokens(srv, kp):
    check = srv.check
    form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": kp.apikeys["reader"]}
    r = requests.post(f"{URL}/identity/token", data=form, timeout=10)
    check("token: 200", r.status_code == 200, r.text)
    token = r.json()
    claims = json.loads(base64.urlsafe_b64decode(token["access_token"].split(".")[1] + "=="))
    check("token: a JWT valid one hour", claims["exp"] - claims["iat"] == 3600 and token["expires_in"] == 3600, str(claims))
    check("token: names the identity", claims["iam_id"] == kp.ids["reader"], str(claims))
    check("token: no-store", r.headers.get("Cache-Control") == "no-store", str(r.headers))
    bad = requests.post(f"{URL}/identity/token", data={**form, "apikey": "csk_" + "A" * 43}, timeout=10)
    check("token: unknown API key 400 in IAM's shape", bad.status_code == 400 and "errorMessage" in bad.json(), bad.text)
    wrong = requests.post(f"{URL}/identity/token", data={**form, "grant_type": "password"}, timeout=10)
    check("token: other grant types refused", wrong.status_code == 400 and "grant_type" in wrong.json()["errorMessage"], wrong.text)
    headers = {"Bluemix-Instance": kp.instance}
    check("no token: 401", requests.get(f"{URL}/api/v2/keys", headers=headers, timeout=10).status_code == 401)
    forged = token["access_token"][:-4] + ("AAAA" if not token["access_token"].endswith("AAAA") else "BBBB")
    r = requests.get(f"{URL}/api/v2/keys", headers={**headers, "Authorization": f"Bearer {forged}"}, timeout=10)
    check("forged token: 401", r.status_code == 401, r.text)
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    r = requests.get(f"{URL}/api/v2/keys", headers=auth, timeout=10)
    check("no Bluemix-Instance: 400 naming it", r.status_code == 400 and "Bluemix-Instance" in r.text, r.text)
    r = requests.get(f"{URL}/api/v2/keys", headers={**auth, "Bluemix-Instance": "someone-else"}, timeout=10)
    check("another instance: 401", r.status_code == 401, r.text)
    r = requests.get(f"{URL}/api/v2/keys", headers={**auth, **headers, "X-Kms-Key-Ring": "other"}, timeout=10)
    check("another key ring: 404 naming it", r.status_code == 404 and "other" in r.text, r.text)
    r = requests.get(f"{URL}/api/v2/keys", headers={**auth, **headers, "X-Kms-Key-Ring": "default"}, timeout=10)
    check("the default key ring: 200", r.status_code == 200, r.text)
    r = requests.get(f"{URL}/api/v2/kmip_adapters", headers={**auth, **headers}, timeout=10)
    check("unserved route: 404 in Key Protect's shape", r.status_code == 404 and r.json()["metadata"]["collectionType"]
          == "application/vnd.ibm.kms.error+json", r.text)
    # A disabled API key: its token is refused at once, and it gets no new one.
    listing = {**auth, **headers}
    srv.iam("apikey", "disable", "kp-reader")
    refused = until(lambda: requests.get(f"{URL}/api/v2/keys", headers=listing, timeout=10).status_code == 401, timeout=20)
    check("disabled API key: its token refused", refused)
    r = requests.post(f"{URL}/identity/token", data=form, timeout=10)
    check("disabled API key: no token", r.status_code == 400, r.text)
    srv.iam("apikey", "enable", "kp-reader")
    back = until(lambda: requests.get(f"{URL}/api/v2/keys", headers=listing, timeout=10).status_code == 200, timeout=20)
    check("enabled again: the token works", back)


def test_create_list_get_and_roles(srv, kp):
    check, w, r = srv.check, kp.clients["writer"], kp.clients["reader"]
    new = {"metadata": {"collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1},
           "resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "kp-root",
                          "description": "root key for the e2e suite", "extractable": False}]}
    got = reason(lambda: r.create_key(kp.instance, body(new)))
    check("reader cannot create: 403", got == (403, "FORBIDDEN_ERR"), str(got))
    resp = w.create_key(kp.instance, body(new), prefer="return=representation")
    key = resp.get_result()["resources"][0]
    check("create: 201", resp.get_status_code() == 201, str(resp.get_status_code()))
    check("create: an active root key", key["state"] == 1 and key["extractable"] is False and key["name"] == "kp-root",
          str(key))
    check("create: created by the writer", key["createdBy"] == kp.ids["writer"], str(key))
    kp.key_id, kp.crn = key["id"], key["crn"]
    listed = r.get_keys(kp.instance).get_result()
    check("list: the key", any(k["id"] == kp.key_id for k in listed["resources"]), str(listed))
    head = r.get_key_collection_metadata(kp.instance)
    check("HEAD: Key-Total", int(head.get_headers()["Key-Total"]) >= 1, str(head.get_headers()))
    got = r.get_key(kp.key_id, kp.instance).get_result()["resources"][0]
    check("get: by id", got["id"] == kp.key_id and got["description"] == "root key for the e2e suite", str(got))
    meta = r.get_key_metadata(kp.key_id, kp.instance).get_result()["resources"][0]
    check("metadata: no payload", "payload" not in meta and meta["state"] == 1, str(meta))
    got = reason(lambda: r.get_key("00000000-0000-4000-8000-000000000000", kp.instance))
    check("get: unknown key 404", got == (404, "KEY_NOT_FOUND_ERR"), str(got))
    bad = dict(new, resources=[dict(new["resources"][0], extractable=True, name="std")])
    got = reason(lambda: w.create_key(kp.instance, body(bad)))
    check("standard keys refused: 400", got == (400, "KEY_ROOT_REQ_ERR"), str(got))
    got = reason(lambda: w.create_key(kp.instance, body({"resources": [{"name": "x", "colour": "red"}]})))
    check("unknown field refused: 400", got == (400, "BAD_BODY_ERR"), str(got))
    got = reason(lambda: w.create_key(kp.instance, body(new)))
    check("duplicate name: 409", got and got[0] == 409, str(got))
    # An imported key: its material base64 in the payload.
    material = base64.b64encode(os.urandom(32)).decode()
    imported = {"resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "kp-byok", "payload": material,
                               "extractable": False}]}
    key = w.create_key(kp.instance, body(imported)).get_result()["resources"][0]
    check("import: imported", key["imported"] is True and key["state"] == 1, str(key))
    kp.byok, kp.byok_material = key["id"], material


def test_wrap_unwrap_rewrap_across_a_rotation(srv, kp):
    check, r, w = srv.check, kp.clients["reader"], kp.clients["writer"]
    aad = ["bucket=photos", "tenant-7"]
    wrapped = r.wrap_key(kp.key_id, kp.instance, key_action_wrap_body=body(
        {"plaintext": base64.b64encode(DEK).decode(), "aad": aad})).get_result()
    v1 = wrapped["keyVersion"]["id"]
    out = r.unwrap_key(kp.key_id, kp.instance, key_action_unwrap_body=body(
        {"ciphertext": wrapped["ciphertext"], "aad": aad})).get_result()
    check("unwrap: the DEK", base64.b64decode(out["plaintext"]) == DEK, str(out))
    check("unwrap: no rewrap before a rotation", "rewrappedKeyVersion" not in out and out["keyVersion"]["id"] == v1, str(out))
    got = reason(lambda: r.unwrap_key(kp.key_id, kp.instance, key_action_unwrap_body=body(
        {"ciphertext": wrapped["ciphertext"], "aad": aad[:1]})))
    check("unwrap: other AAD refused 422", got and got[0] == 422, str(got))
    tampered = base64.b64decode(wrapped["ciphertext"])
    tampered = base64.b64encode(tampered[:-1] + bytes([tampered[-1] ^ 1])).decode()
    got = reason(lambda: r.unwrap_key(kp.key_id, kp.instance, key_action_unwrap_body=body(
        {"ciphertext": tampered, "aad": aad})))
    check("unwrap: tampered ciphertext 422", got and got[0] == 422, str(got))
    got = reason(lambda: r.unwrap_key(kp.key_id, kp.instance, key_action_unwrap_body=body({"ciphertext": "!!"})))
    check("unwrap: not base64 400", got and got[0] in (400, 409), str(got))
    gen = r.wrap_key(kp.key_id, kp.instance, key_action_wrap_body=body({})).get_result()
    check("wrap without plaintext: a fresh 32-byte DEK", len(base64.b64decode(gen["plaintext"])) == 32, str(gen.keys()))
    # Rotation: writer yes, reader no; old ciphertexts still unwrap, with a rewrapped one.
    got = reason(lambda: r.rotate_key(kp.key_id, kp.instance, key_action_rotate_body=body({})))
    check("reader cannot rotate: 403", got and got[0] == 403, str(got))
    resp = w.rotate_key(kp.key_id, kp.instance, key_action_rotate_body=body({}))
    check("rotate: 204", resp.get_status_code() == 204, str(resp.get_status_code()))
    out = r.unwrap_key(kp.key_id, kp.instance, key_action_unwrap_body=body(
        {"ciphertext": wrapped["ciphertext"], "aad": aad})).get_result()
    check("unwrap after rotation: the DEK", base64.b64decode(out["plaintext"]) == DEK, str(out))
    check("unwrap after rotation: rewrapped by the new version",
          out.get("rewrappedKey") and out["rewrappedKeyVersion"]["id"] != v1 and out["keyVersion"]["id"] == v1, str(out))
    again = r.unwrap_key(kp.key_id, kp.instance, key_action_unwrap_body=body(
        {"ciphertext": out["ciphertext"], "aad": aad})).get_result()
    check("the rewrapped key unwraps, needing no rewrap", base64.b64decode(again["plaintext"]) == DEK
          and "rewrappedKeyVersion" not in again, str(again))
    rew = r.rewrap_key(kp.key_id, kp.instance, key_action_rewrap_body=body(
        {"ciphertext": wrapped["ciphertext"], "aad": aad})).get_result()
    check("rewrap: old version to new", rew["keyVersion"]["id"] == v1 and rew["rewrappedKeyVersion"]["id"] != v1, str(rew))
    versions = r.get_key_versions(kp.key_id, kp.instance, total_count=True).get_result()
    check("versions: two", versions["metadata"]["totalCount"] == 2 and len(versions["resources"]) == 2, str(versions))
    key = r.get_key(kp.key_id, kp.instance).get_result()["resources"][0]
    check("get: rotated", "lastRotateDate" in key and key["keyVersion"]["id"] != v1, str(key))
    # An imported key rotates with new material only.
    got = reason(lambda: w.rotate_key(kp.byok, kp.instance, key_action_rotate_body=body({})))
    check("imported key rotates only with material: 409", got and got[0] == 409, str(got))
    new_material = base64.b64encode(os.urandom(32)).decode()
    w.rotate_key(kp.byok, kp.instance, key_action_rotate_body=body({"payload": new_material}))
    kp.ciphertext, kp.aad = wrapped["ciphertext"], aad


def test_disable_enable_and_aliases(srv, kp):
    check, r, w, m = srv.check, kp.clients["reader"], kp.clients["writer"], kp.clients["manager"]
    got = reason(lambda: w.disable_key(kp.key_id, kp.instance))
    check("writer cannot disable: 403", got and got[0] == 403, str(got))
    check("disable: 204", m.disable_key(kp.key_id, kp.instance).get_status_code() == 204)
    check("disabled: state 2", r.get_key(kp.key_id, kp.instance).get_result()["resources"][0]["state"] == 2)
    got = reason(lambda: r.wrap_key(kp.key_id, kp.instance, key_action_wrap_body=body({})))
    check("disabled: wrap refused 409", got == (409, "KEY_ACTION_INVALID_STATE_ERR"), str(got))
    got = reason(lambda: m.disable_key(kp.key_id, kp.instance))
    check("disable twice: 409", got and got[0] == 409, str(got))
    check("enable: 204", m.enable_key(kp.key_id, kp.instance).get_status_code() == 204)
    out = r.unwrap_key(kp.key_id, kp.instance, key_action_unwrap_body=body(
        {"ciphertext": kp.ciphertext, "aad": kp.aad})).get_result()
    check("enabled: unwraps again", base64.b64decode(out["plaintext"]) == DEK, str(out))
    resp = w.create_key_alias(kp.key_id, "kp-alias_1", kp.instance)
    check("alias: 201", resp.get_status_code() == 201 and resp.get_result()["resources"][0]["alias"] == "kp-alias_1",
          str(resp.get_result()))
    got = r.get_key("kp-alias_1", kp.instance).get_result()["resources"][0]
    check("get by alias", got["id"] == kp.key_id and "kp-alias_1" in got["aliases"], str(got))
    got = reason(lambda: w.create_key_alias(kp.byok, "kp-alias_1", kp.instance))
    check("alias taken: 409", got and got[0] == 409, str(got))
    got = reason(lambda: w.create_key_alias(kp.key_id, "no spaces!", kp.instance))
    check("bad alias refused", got and got[0] in (400, 409), str(got))
    check("alias delete: 204", w.delete_key_alias(kp.key_id, "kp-alias_1", kp.instance).get_status_code() == 204)
    got = reason(lambda: r.get_key("kp-alias_1", kp.instance))
    check("deleted alias names nothing: 404", got and got[0] == 404, str(got))


def test_registrations_block_deletion_then_delete_restore_purge(srv, kp):
    check, r, m = srv.check, kp.clients["reader"], kp.clients["manager"]
    s3 = srv.boto3("alice")
    s3.create_bucket(Bucket="kp-reg")
    s3.put_object(Bucket="kp-reg", Key="doc", Body=b"registered", ServerSideEncryption="aws:kms", SSEKMSKeyId=kp.crn)
    regs = r.get_registrations(kp.key_id, kp.instance).get_result()["resources"]
    check("registration: the bucket", any(x["resourceCrn"].endswith(":bucket:kp-reg") and not x["preventKeyDeletion"]
                                         for x in regs), str(regs))
    every = r.get_registrations_all_keys(kp.instance).get_result()["resources"]
    check("registrations of every key: the bucket", any(x["keyId"] == kp.key_id for x in every), str(every))
    got = reason(lambda: m.delete_key(kp.key_id, kp.instance))
    check("delete with registrations: 409", got == (409, "PROTECTED_RESOURCE_ERR"), str(got))
    got = reason(lambda: kp.clients["writer"].delete_key(kp.key_id, kp.instance, force=True))
    check("writer cannot delete: 403", got and got[0] == 403, str(got))
    # A bucket under Object Lock: never, force or not.
    s3.create_bucket(Bucket="kp-locked", ObjectLockEnabledForBucket=True)
    s3.put_object(Bucket="kp-locked", Key="doc", Body=b"kept", ServerSideEncryption="aws:kms", SSEKMSKeyId=kp.crn)
    regs = r.get_registrations(kp.key_id, kp.instance).get_result()["resources"]
    check("registration: retention shown", any(x["resourceCrn"].endswith(":bucket:kp-locked") and x["preventKeyDeletion"]
                                              for x in regs), str(regs))
    locked = r.get_registrations(kp.key_id, kp.instance, prevent_key_deletion=True).get_result()["resources"]
    check("registrations filtered by retention", [x["resourceCrn"].rsplit(":", 1)[1] for x in locked] == ["kp-locked"],
          str(locked))
    crn_query = requests.utils.quote(f"crn:v1:cipherstore:{kp.instance}:bucket:kp-r*")
    some = r.get_registrations_all_keys(kp.instance, url_encoded_resource_crn_query=crn_query).get_result()["resources"]
    check("registrations filtered by CRN", [x["resourceCrn"].rsplit(":", 1)[1] for x in some] == ["kp-reg"], str(some))
    got = reason(lambda: m.delete_key(kp.key_id, kp.instance, force=True))
    check("delete under Object Lock: 409 even forced", got == (409, "PREV_KEY_DEL_ERR"), str(got))
    # The bytkey with no bucket: delete, every use refused, restore, purge.
    resp = m.delete_key(kp.byok, kp.instance, prefer="return=representation")
    key = resp.get_result()["resources"][0]
    check("delete: state 5, restorable", key["state"] == 5 and key["deleted"] and key["restoreAllowed"], str(key))
    got = reason(lambda: r.wrap_key(kp.byok, kp.instance, key_action_wrap_body=body({})))
    check("deleted: wrap 410", got == (410, "KEY_DELETED_ERR"), str(got))
    resp = m.restore_key(kp.byok, kp.instance)
    key = resp.get_result()["resources"][0]
    check("restore: 201, active", resp.get_status_code() == 201 and key["state"] == 1, str(key))
    gen = r.wrap_key(kp.byok, kp.instance, key_action_wrap_body=body({})).get_result()
    check("restored: wraps", "ciphertext" in gen, str(gen))
    m.delete_key(kp.byok, kp.instance)
    got = reason(lambda: m.purge_key(kp.byok, kp.instance))
    check("purge before the wait: 409", got and got[0] == 409, str(got))
    time.sleep(PURGE_WAIT + 1)
    resp = m.purge_key(kp.byok, kp.instance)
    check("purge: 200", resp.get_status_code() == 200, str(resp.get_status_code()))
    got = reason(lambda: r.get_key(kp.byok, kp.instance))
    check("purged: 404", got and got[0] == 404, str(got))
    got = reason(lambda: m.restore_key(kp.byok, kp.instance))
    check("purged: no restore", got and got[0] == 404, str(got))
    # A key with registrations, forced: its bucket's data is refused, then back on restore.
    s3.delete_object(Bucket="kp-reg", Key="doc")
    s3.put_object(Bucket="kp-reg", Key="doc", Body=b"registered", ServerSideEncryption="aws:kms", SSEKMSKeyId=kp.crn)
    new = {"resources": [{"type": "application/vnd.ibm.kms.key+json", "name": "kp-second", "extractable": False}]}
    second = kp.clients["writer"].create_key(kp.instance, body(new)).get_result()["resources"][0]
    s3.create_bucket(Bucket="kp-second")
    s3.put_object(Bucket="kp-second", Key="doc", Body=b"second", ServerSideEncryption="aws:kms", SSEKMSKeyId=second["crn"])
    m.delete_key(second["id"], kp.instance, force=True)
    time.sleep(1.5)  # the gateway's bucket key cache (1 s in the suites)
    refused = False
    try:
        s3.get_object(Bucket="kp-second", Key="doc")["Body"].read()
    except Exception:  # noqa: BLE001 - any refusal
        refused = True
    check("deleted key: its bucket's objects refused", refused)
    m.restore_key(second["id"], kp.instance)
    got = s3.get_object(Bucket="kp-second", Key="doc")["Body"].read()
    check("restored key: its bucket's objects read again", got == b"second", repr(got))


def test_policies_and_dual_authorization(srv, kp):
    check, r, w, m, m2 = (srv.check, kp.clients["reader"], kp.clients["writer"], kp.clients["manager"],
                          kp.clients["manager2"])
    made = w.create_key_with_policies_overrides(kp.instance, body({"resources": [{
        "type": "application/vnd.ibm.kms.key+json", "name": "kp-dual", "extractable": False,
        "dualAuthDelete": {"enabled": True}, "rotation": {"enabled": False, "interval_month": 6}}]}))
    key = made.get_result()["resources"][0]
    check("create with policies: dual authorization on", made.get_status_code() == 201
          and key["dualAuthDelete"]["enabled"] is True, str(key))
    dual = key["id"]
    policies = r.get_policy(dual, kp.instance).get_result()["resources"]
    kinds = sorted(k for p in policies for k in ("rotation", "dualAuthDelete") if k in p)
    check("policies: both", kinds == ["dualAuthDelete", "rotation"], str(policies))
    only = r.get_policy(dual, kp.instance, policy="dualAuthDelete").get_result()["resources"]
    check("policies: one by name", len(only) == 1 and only[0]["dualAuthDelete"]["enabled"] is True, str(only))
    put = {"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
           "resources": [{"type": "application/vnd.ibm.kms.policy+json", "dualAuthDelete": {"enabled": True}}]}
    got = reason(lambda: r.put_policy(dual, kp.instance, put, policy="dualAuthDelete"))
    check("reader cannot set policies: 403", got and got[0] == 403, str(got))
    bad = {"resources": [{"type": "application/vnd.ibm.kms.policy+json", "rotation": {"interval_month": 13}}]}
    got = reason(lambda: m.put_policy(dual, kp.instance, bad, policy="rotation"))
    check("rotation interval 13 refused: 400", got and got[0] == 400, str(got))
    got = reason(lambda: m.delete_key(dual, kp.instance))
    check("dual authorization: deletion refused without one", got == (409, "AUTHORIZATIONS_NOT_MET"), str(got))
    check("setKeyForDeletion: 204", m.set_key_for_deletion(dual, kp.instance).get_status_code() == 204)
    key = r.get_key(dual, kp.instance).get_result()["resources"][0]
    check("key shows the authorization", key["dualAuthDelete"].get("keySetForDeletion") is True, str(key))
    got = reason(lambda: m.delete_key(dual, kp.instance))
    check("the authorizer cannot delete it alone", got == (409, "AUTHORIZATIONS_NOT_MET"), str(got))
    check("unsetKeyForDeletion: 204", m.unset_key_for_deletion(dual, kp.instance).get_status_code() == 204)
    got = reason(lambda: m2.delete_key(dual, kp.instance))
    check("withdrawn: the second identity cannot delete", got == (409, "AUTHORIZATIONS_NOT_MET"), str(got))
    m.set_key_for_deletion(dual, kp.instance)
    resp = m2.delete_key(dual, kp.instance, prefer="return=representation")
    check("a second identity deletes it", resp.get_status_code() == 200
          and resp.get_result()["resources"][0]["state"] == 5, str(resp.get_result()))
    # The instance's policy applies to keys without their own.
    inst = {"metadata": {"collectionType": "application/vnd.ibm.kms.policy+json", "collectionTotal": 1},
            "resources": [{"policy_type": "dualAuthDelete", "policy_data": {"enabled": True}}]}
    got = reason(lambda: w.put_instance_policy(kp.instance, inst, policy="dualAuthDelete"))
    check("writer cannot set instance policies: 403", got and got[0] == 403, str(got))
    check("instance policy: 204", m.put_instance_policy(kp.instance, inst, policy="dualAuthDelete").get_status_code() == 204)
    listed = r.get_instance_policy(kp.instance).get_result()["resources"]
    check("instance policy: shown", any(p["policy_type"] == "dualAuthDelete" and p["policy_data"]["enabled"]
                                       for p in listed), str(listed))
    plain = w.create_key(kp.instance, body({"resources": [{"name": "kp-plain", "extractable": False}]})).get_result()
    plain_id = plain["resources"][0]["id"]
    check("a new key follows the instance policy", plain["resources"][0]["dualAuthDelete"]["enabled"] is True, str(plain))
    got = reason(lambda: m.delete_key(plain_id, kp.instance))
    check("instance dual authorization holds", got == (409, "AUTHORIZATIONS_NOT_MET"), str(got))
    off = {"resources": [{"policy_type": "dualAuthDelete", "policy_data": {"enabled": False}}]}
    m.put_instance_policy(kp.instance, off, policy="dualAuthDelete")
    check("instance policy off: deleted by one", m.delete_key(plain_id, kp.instance).get_status_code() == 204)
    net = {"resources": [{"policy_type": "allowedNetwork", "policy_data": {"enabled": True}}]}
    got = reason(lambda: m.put_instance_policy(kp.instance, net, policy="allowedNetwork"))
    check("unoffered instance policy: 400", got and got[0] == 400, str(got))


def test_rotation_by_policy(srv, kp):
    check, r, w, m = srv.check, kp.clients["reader"], kp.clients["writer"], kp.clients["manager"]
    key = w.create_key(kp.instance, body({"resources": [{"name": "kp-rotating", "extractable": False}]}))
    rid = key.get_result()["resources"][0]["id"]
    wrapped = r.wrap_key(rid, kp.instance, key_action_wrap_body=body({"plaintext": base64.b64encode(DEK).decode()}))
    ciphertext = wrapped.get_result()["ciphertext"]
    put = {"resources": [{"type": "application/vnd.ibm.kms.policy+json", "rotation": {"enabled": True, "interval_month": 1}}]}
    m.put_policy(rid, kp.instance, put, policy="rotation")

    def versions():
        return r.get_key_versions(rid, kp.instance, total_count=True).get_result()["metadata"]["totalCount"]
    check("rotated by its policy within a (shortened) month", until(lambda: versions() >= 2, timeout=MONTH * 5), str(versions()))
    out = r.unwrap_key(rid, kp.instance, key_action_unwrap_body=body({"ciphertext": ciphertext})).get_result()
    check("the DEK wrapped before still unwraps, rewrapped", base64.b64decode(out["plaintext"]) == DEK
          and "rewrappedKeyVersion" in out, str(out))
    events = [json.loads(line) for line in srv.keyctl("audit").splitlines() if line.strip()]
    check("audit: rotation by policy", any(e["action"] == "key.rotate" and e.get("initiator") == "rotation-policy"
                                           for e in events), str(events[-5:]))
    off = {"resources": [{"type": "application/vnd.ibm.kms.policy+json", "rotation": {"enabled": False, "interval_month": 1}}]}
    m.put_policy(rid, kp.instance, off, policy="rotation")
    time.sleep(1)
    settled = versions()
    time.sleep(MONTH + 2)
    check("policy off: no more rotations", versions() == settled, f"{settled} then {versions()}")


def encrypt_for_token(token, material, sha256=True, nonce=None):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    public = serialization.load_pem_public_key(base64.b64decode(token["payload"]))
    h = hashes.SHA256() if sha256 else hashes.SHA1()
    payload = public.encrypt(material, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
    iv = os.urandom(12)
    sealed = AESGCM(material).encrypt(iv, nonce or base64.b64decode(token["nonce"]), None)
    return {"payload": base64.b64encode(payload).decode(), "encryptedNonce": base64.b64encode(sealed).decode(),
            "iv": base64.b64encode(iv).decode(),
            "encryptionAlgorithm": "RSAES_OAEP_SHA_256" if sha256 else "RSAES_OAEP_SHA_1"}


def test_import_with_an_import_token(srv, kp):
    check, r, w = srv.check, kp.clients["reader"], kp.clients["writer"]
    got = reason(lambda: r.post_import_token(kp.instance, expiration=600, max_allowed_retrievals=2))
    check("reader cannot make an import token: 403", got and got[0] == 403, str(got))
    made = w.post_import_token(kp.instance, expiration=600, max_allowed_retrievals=2).get_result()
    check("import token made", made["maxAllowedRetrievals"] == 2 and made["remainingRetrievals"] == 2
          and "payload" not in made, str(made))
    token = w.get_import_token(kp.instance).get_result()
    check("import token retrieved: public key and nonce", token["remainingRetrievals"] == 1
          and "BEGIN PUBLIC KEY" in base64.b64decode(token["payload"]).decode(), str(token.keys()))
    material = os.urandom(32)
    fields = encrypt_for_token(token, material)
    key = w.create_key(kp.instance, body({"resources": [{"type": "application/vnd.ibm.kms.key+json",
                                                          "name": "kp-tokened", "extractable": False, **fields}]}))
    made_key = key.get_result()["resources"][0]
    check("a key imported with the token", key.get_status_code() == 201 and made_key["imported"] is True, str(made_key))
    out = r.wrap_key(made_key["id"], kp.instance, key_action_wrap_body=body({})).get_result()
    check("the imported key wraps", "ciphertext" in out, str(out))
    # SHA-1 OAEP, as older clients encrypt; a nonce that is not the token's is refused.
    token = w.get_import_token(kp.instance).get_result()
    fields = encrypt_for_token(token, os.urandom(32), sha256=False)
    ok = w.create_key(kp.instance, body({"resources": [{"name": "kp-tokened-sha1", "extractable": False, **fields}]}))
    check("RSAES_OAEP_SHA_1 accepted", ok.get_status_code() == 201, str(ok.get_status_code()))
    bad = encrypt_for_token(token, os.urandom(32), nonce=b"not the nonce")
    got = reason(lambda: w.create_key(kp.instance, body({"resources": [{"name": "kp-bad-nonce", "extractable": False,
                                                                         **bad}]})))
    check("a wrong nonce refused: 400", got and got[0] == 400, str(got))
    got = reason(lambda: w.get_import_token(kp.instance))
    check("retrievals used up: 404", got and got[0] == 404, str(got))
    got = reason(lambda: w.post_import_token(kp.instance, expiration=10))
    check("a token living 10 s refused: 400", got and got[0] == 400, str(got))
    half = dict(fields)
    del half["iv"]
    got = reason(lambda: w.create_key(kp.instance, body({"resources": [{"name": "kp-half", "extractable": False,
                                                                         **half}]})))
    check("token material without its iv: 400", got and got[0] == 400, str(got))


def test_key_rings(srv, kp):
    check, r, w, m = srv.check, kp.clients["reader"], kp.clients["writer"], kp.clients["manager"]
    got = reason(lambda: w.create_key_ring("team-a", kp.instance))
    check("writer cannot make a key ring: 403", got and got[0] == 403, str(got))
    check("key ring made: 201", m.create_key_ring("team-a", kp.instance).get_status_code() == 201)
    got = reason(lambda: m.create_key_ring("team-a", kp.instance))
    check("the same ring again: 409", got and got[0] == 409, str(got))
    got = reason(lambda: m.create_key_ring("no spaces", kp.instance))
    check("a bad ring id refused: 400", got and got[0] == 400, str(got))
    rings = [x["id"] for x in r.list_key_rings(kp.instance).get_result()["resources"]]
    check("rings listed", rings == ["default", "team-a"], str(rings))
    made = w.create_key(kp.instance, body({"resources": [{"name": "kp-ringed", "extractable": False}]}),
                        x_kms_key_ring="team-a").get_result()["resources"][0]
    check("a key made in the ring", made["keyRingID"] == "team-a", str(made))
    inside = [k["name"] for k in r.get_keys(kp.instance, x_kms_key_ring="team-a").get_result()["resources"]]
    check("listing one ring: only its keys", inside == ["kp-ringed"], str(inside))
    default = [k["name"] for k in r.get_keys(kp.instance, x_kms_key_ring="default").get_result()["resources"]]
    check("listing default: not that key", "kp-ringed" not in default and "kp-root" in default, str(default))
    got = reason(lambda: r.get_key(made["id"], kp.instance, x_kms_key_ring="default"))
    check("a key asked in another ring: 404", got and got[0] == 404, str(got))
    got = reason(lambda: w.create_key(kp.instance, body({"resources": [{"name": "kp-nowhere", "extractable": False}]}),
                                      x_kms_key_ring="no-such-ring"))
    check("a key made in no ring: 404", got == (404, "KEY_RING_NOT_FOUND_ERR"), str(got))
    got = reason(lambda: m.delete_key_ring("team-a", kp.instance))
    check("a ring with live keys is not deleted: 409", got and got[0] == 409, str(got))
    moved = m.patch_key(made["id"], kp.instance, key_patch_body=body({"keyRingID": "default"}),
                        x_kms_key_ring="team-a").get_result()["resources"][0]
    check("patch: the key moved to default", moved["keyRingID"] == "default", str(moved))
    check("the empty ring deleted: 204", m.delete_key_ring("team-a", kp.instance).get_status_code() == 204)
    got = reason(lambda: m.delete_key_ring("default", kp.instance))
    check("the default ring is never deleted", got and got[0] == 409, str(got))


def test_audit_trail_names_callers_and_holds_no_secret(srv, kp):
    check = srv.check
    events = [json.loads(line) for line in srv.keyctl("audit").splitlines() if line.strip()]
    by = {(e["action"], e.get("initiator")) for e in events}
    check("audit: create by the writer", ("key.create", kp.ids["writer"]) in by, str(by))
    check("audit: rotate by the writer", ("key.rotate", kp.ids["writer"]) in by, str(by))
    check("audit: delete and restore by the manager", ("key.delete", kp.ids["manager"]) in by
          and ("key.restore", kp.ids["manager"]) in by, str(by))
    check("audit: purge", any(e["action"] == "key.purge" for e in events), str(by))
    text = (srv.data / "keys" / "audit.jsonl").read_text()
    log = (srv.data / "server.log").read_text()
    for name, secret in [("an API key", kp.apikeys["writer"]), ("the DEK", DEK.decode()),
                         ("the DEK's base64", base64.b64encode(DEK).decode()), ("the imported material", kp.byok_material)]:
        check(f"no {name} in the audit trail", secret not in text)
        check(f"no {name} in the server log", secret not in log)
    check("no bearer token in the server log", "eyJ" not in log)


def token_of(kp, who):
    form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": kp.apikeys[who]}
    return requests.post(f"{URL}/identity/token", data=form, timeout=10).json()["access_token"]


def test_events_through_the_api(srv, kp):
    check = srv.check
    headers = {"Bluemix-Instance": kp.instance, "Authorization": f"Bearer {token_of(kp, 'manager')}"}
    r = requests.get(f"{URL}/api/v2/keys/{kp.key_id}/events?totalCount=true", headers=headers, timeout=10)
    check("events: 200", r.status_code == 200, r.text)
    events = r.json()["resources"]
    seen = {(e["action"], e["outcome"], e.get("initiator")) for e in events}
    check("events: the key's creation by the writer", ("key.create", "success", kp.ids["writer"]) in seen, str(seen))
    check("events: wraps and unwraps by the reader", ("key.wrap", "success", kp.ids["reader"]) in seen
          and ("key.unwrap", "success", kp.ids["reader"]) in seen, str(seen))
    check("events: a refused unwrap", ("key.unwrap", "failure", kp.ids["reader"]) in seen, str(seen))
    check("events: only this key's", all(e["key"] == kp.crn for e in events), str(events[:3]))
    check("events: counted", r.json()["metadata"]["totalCount"] == len(events), str(r.json()["metadata"]))
    page = requests.get(f"{URL}/api/v2/events?limit=2&offset=1", headers=headers, timeout=10).json()
    check("events of every key: paged", len(page["resources"]) == 2, str(page))
    reader = {**headers, "Authorization": f"Bearer {token_of(kp, 'reader')}"}
    r = requests.get(f"{URL}/api/v2/events", headers=reader, timeout=10)
    check("events: readers refused 403", r.status_code == 403, r.text)
