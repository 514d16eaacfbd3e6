"""Who may do what, with boto3, on the filesystem, dispersed and cluster stores: users,
access keys and roles made live with `cipherstore iam` (no restart), then the access matrix
— owner, reader, writer, manager, another user and anonymous against every S3 operation,
asserted cell by cell — ListBuckets showing granted buckets, the bucket-creation flag,
disabled, expired and deleted keys refused (presigned URLs too), a revoked role refused
within seconds, roles forgotten with their bucket, secrets sealed at rest, and the IAM
audit trail without secrets.
"""

import datetime
import json
import ssl
import urllib.error
import urllib.request

import pytest

from cipherstore_harness import error_code
from cipherstore_harness import until as harness_until

STORES = ["fs", "dispersed-3of5", "cluster"]
NOTICE = 5  # seconds a change may take to reach the server


def until(cond, timeout=NOTICE):
    """Waits up to NOTICE seconds (by default) for cond(), looking every quarter second."""
    return harness_until(cond, timeout=timeout, every=0.25)


def denied(fn):
    return error_code(fn) in ("AccessDenied", "403")


@pytest.fixture(scope="module")
def people(srv):
    """alice (from the users file) owns bucket `acc`; reader, writer and manager hold those
    roles on it; other holds none. Each made with the CLI while the server runs."""
    made = {"owner": srv.boto3("alice"), "anonymous": srv.client()}
    keys = {}
    for who in ("reader", "writer", "manager", "other"):
        srv.iam("user", "create", who, "--display-name", f"The {who}")
        k = json.loads(srv.iam("hmac", "create", who, "--json").stdout)
        keys[who] = (k["access_key_id"], k["secret_access_key"])
        made[who] = srv.client(*keys[who])
    alice = made["owner"]
    alice.create_bucket(Bucket="acc")
    alice.put_object(Bucket="acc", Key="o", Body=b"shared object")
    for role in ("reader", "writer", "manager"):
        srv.iam("grant", role, "--bucket", "acc", "--role", role)
    # The new keys and roles are in force within seconds.
    until(lambda: error_code(lambda: made["manager"].head_bucket(Bucket="acc")) is None)
    made["keys"] = keys
    return made


def operations(bucket):
    """Every S3 operation the matrix tries: name -> (action, call(client, who))."""
    lifecycle = {"Rules": [{"ID": "r", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                            "Expiration": {"Days": 30}}]}

    def multipart(c, who):
        up = c.create_multipart_upload(Bucket=bucket, Key=f"mp-{who}")
        c.abort_multipart_upload(Bucket=bucket, Key=f"mp-{who}", UploadId=up["UploadId"])

    return {
        "HeadBucket": ("list", lambda c, w: c.head_bucket(Bucket=bucket)),
        "ListObjectsV2": ("list", lambda c, w: c.list_objects_v2(Bucket=bucket)),
        "ListObjects": ("list", lambda c, w: c.list_objects(Bucket=bucket)),
        "ListObjectVersions": ("list", lambda c, w: c.list_object_versions(Bucket=bucket)),
        "ListMultipartUploads": ("list", lambda c, w: c.list_multipart_uploads(Bucket=bucket)),
        "GetObject": ("read", lambda c, w: c.get_object(Bucket=bucket, Key="o")["Body"].read()),
        "HeadObject": ("read", lambda c, w: c.head_object(Bucket=bucket, Key="o")),
        "GetObjectTagging": ("read", lambda c, w: c.get_object_tagging(Bucket=bucket, Key="o")),
        "GetBucketVersioning": ("read", lambda c, w: c.get_bucket_versioning(Bucket=bucket)),
        "GetBucketEncryption": ("read", lambda c, w: c.get_bucket_encryption(Bucket=bucket)),
        "GetBucketLifecycle": ("read", lambda c, w: c.get_bucket_lifecycle_configuration(Bucket=bucket)),
        "GetBucketAcl": ("read", lambda c, w: c.get_bucket_acl(Bucket=bucket)),
        "GetObjectAcl": ("read", lambda c, w: c.get_object_acl(Bucket=bucket, Key="o")),
        "GetBucketOwnershipControls": ("read", lambda c, w: c.get_bucket_ownership_controls(Bucket=bucket)),
        "PutObject": ("write", lambda c, w: c.put_object(Bucket=bucket, Key=f"put-{w}", Body=b"x")),
        "CopyObject": ("write", lambda c, w: c.copy_object(Bucket=bucket, Key=f"copy-{w}",
                                                           CopySource={"Bucket": bucket, "Key": "o"})),
        "MultipartUpload": ("write", multipart),
        "PutObjectTagging": ("write", lambda c, w: c.put_object_tagging(
            Bucket=bucket, Key="o", Tagging={"TagSet": [{"Key": "by", "Value": w}]})),
        "DeleteObject": ("write", lambda c, w: c.delete_object(Bucket=bucket, Key=f"put-{w}")),
        "DeleteObjects": ("write", lambda c, w: c.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": f"copy-{w}"}]})),
        "PutBucketLifecycle": ("manage", lambda c, w: c.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration=lifecycle)),
        "DeleteBucketLifecycle": ("manage", lambda c, w: c.delete_bucket_lifecycle(Bucket=bucket)),
        "PutBucketAcl": ("manage", lambda c, w: c.put_bucket_acl(Bucket=bucket, ACL="private")),
        "PutObjectAcl": ("manage", lambda c, w: c.put_object_acl(Bucket=bucket, Key="o", ACL="private")),
        "PutBucketOwnershipControls": ("manage", lambda c, w: c.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})),
        "PutBucketVersioning": ("manage", lambda c, w: c.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})),
        "DeleteObjectBypassingGovernance": ("manage", lambda c, w: c.delete_object(
            Bucket=bucket, Key=f"absent-{w}", BypassGovernanceRetention=True)),
        "DeleteBucket": ("manage", lambda c, w: c.delete_bucket(Bucket=bucket)),  # not empty: BucketNotEmpty
    }


# Which kinds of operation each principal may do (docs/ACCESS.md).
ALLOWED = {
    "owner": {"list", "read", "write", "manage"},
    "manager": {"list", "read", "write", "manage"},
    "writer": {"list", "read", "write"},
    "reader": {"list", "read"},
    "other": set(),
    "anonymous": set(),
}


def test_the_access_matrix_cell_by_cell(srv, people):
    check = srv.check
    ops = operations("acc")
    for who, allowed in ALLOWED.items():
        c = people[who]
        for name, (kind, call) in ops.items():
            code = error_code(lambda: call(c, who))
            want = kind in allowed
            if want:
                ok = code not in ("AccessDenied", "403")
            else:
                ok = code in ("AccessDenied", "403")
            check(f"{who} x {name}: {'allowed' if want else 'denied'}", ok, str(code))
    check("the bucket survived the matrix", error_code(lambda: people["owner"].head_bucket(Bucket="acc")) is None)


def test_listings_owners_and_bucket_creation(srv, people):
    check = srv.check
    listed = lambda who: [b["Name"] for b in people[who].list_buckets()["Buckets"]]  # noqa: E731
    check("a reader lists the bucket granted", "acc" in listed("reader"), str(listed("reader")))
    check("another user does not", "acc" not in listed("other"), str(listed("other")))
    owner = people["reader"].list_buckets()["Owner"]
    check("ListBuckets names the caller with display name", owner["DisplayName"] == "The reader", str(owner))
    fetched = people["reader"].list_objects_v2(Bucket="acc", FetchOwner=True)["Contents"][0]["Owner"]
    check("objects name the bucket's owner", fetched["ID"] == "alice-key", str(fetched))
    people["other"].create_bucket(Bucket="others-own")
    check("a user owns what they create", "others-own" in listed("other"))
    check("and nobody else sees it", "others-own" not in listed("reader"))
    srv.iam("user", "create", "limited", "--no-create-buckets")
    k = json.loads(srv.iam("hmac", "create", "limited", "--json").stdout)
    limited = srv.client(k["access_key_id"], k["secret_access_key"])
    code = until(lambda: error_code(lambda: limited.create_bucket(Bucket="limited-b")) != "InvalidAccessKeyId" and
                 error_code(lambda: limited.create_bucket(Bucket="limited-b")))
    check("a user without the flag may not create buckets", code == "AccessDenied", str(code))


def test_keys_disabled_expired_deleted_and_presigned(srv, people):
    check = srv.check
    ak, sk = people["keys"]["writer"]
    writer = people["writer"]
    url = writer.generate_presigned_url("get_object", Params={"Bucket": "acc", "Key": "o"}, ExpiresIn=600)

    def fetch():
        try:
            with urllib.request.urlopen(url, context=ssl.create_default_context(cafile=str(srv.ca)), timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    check("a presigned URL carries its signer's rights", fetch() == 200)
    srv.iam("hmac", "disable", ak)
    code = until(lambda: error_code(lambda: writer.list_objects_v2(Bucket="acc")) == "InvalidAccessKeyId" and
                 "InvalidAccessKeyId")
    check(f"a disabled key is refused within {NOTICE} s", code == "InvalidAccessKeyId", str(code))
    check("its presigned URL stops too", fetch() == 403)
    srv.iam("hmac", "enable", ak)
    check("enabled again: accepted", until(lambda: error_code(lambda: writer.list_objects_v2(Bucket="acc")) is None))
    listed = json.loads(srv.iam("hmac", "list", "writer", "--json").stdout)
    check("hmac list shows the key enabled, sealed", listed and listed[0]["enabled"] and listed[0]["sealed"], str(listed))

    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    k = json.loads(srv.iam("hmac", "create", "writer", "--expires", soon, "--json").stdout)
    short = srv.client(k["access_key_id"], k["secret_access_key"])
    check("a key before its expiry works", until(lambda: error_code(lambda: short.list_objects_v2(Bucket="acc")) is None))
    code = until(lambda: error_code(lambda: short.list_objects_v2(Bucket="acc")) == "ExpiredToken" and "ExpiredToken",
                 timeout=10)
    check("after it: ExpiredToken", code == "ExpiredToken", str(code))

    srv.iam("hmac", "delete", k["access_key_id"])
    bad = srv.iam("hmac", "delete", k["access_key_id"], check=False)
    check("deleting it twice names the key", bad.returncode != 0 and k["access_key_id"] in bad.stderr, bad.stderr)
    past = srv.iam("hmac", "create", "writer", "--expires", "2001-01-01T00:00:00Z", check=False)
    check("an expiry in the past is refused", past.returncode != 0 and "past" in past.stderr, past.stderr)


def test_revoked_roles_and_roles_of_deleted_buckets(srv, people):
    check = srv.check
    reader = people["reader"]
    srv.iam("revoke", "reader", "--bucket", "acc")
    check(f"a revoked role is refused within {NOTICE} s",
          until(lambda: denied(lambda: reader.get_object(Bucket="acc", Key="o"))))
    srv.iam("grant", "reader", "--bucket", "acc", "--role", "reader")
    check("granted again: allowed",
          until(lambda: error_code(lambda: reader.get_object(Bucket="acc", Key="o")) is None))

    alice, other = people["owner"], people["other"]
    alice.create_bucket(Bucket="passing")
    srv.iam("grant", "reader", "--bucket", "passing", "--role", "manager")
    until(lambda: error_code(lambda: reader.head_bucket(Bucket="passing")) is None)
    reader.delete_bucket(Bucket="passing")  # a manager may delete the (empty) bucket
    shown = json.loads(srv.iam("user", "show", "reader", "--json").stdout)
    check("the role went with the bucket", "passing" not in shown["roles"], str(shown["roles"]))
    other.create_bucket(Bucket="passing")
    check("a bucket made anew inherits no role", denied(lambda: reader.head_bucket(Bucket="passing")))

    for args, says in [(("grant", "nobody", "--bucket", "acc", "--role", "reader"), "nobody"),
                       (("grant", "reader", "--bucket", "acc", "--role", "owner"), "role"),
                       (("grant", "reader", "--bucket", "Bad_Name", "--role", "reader"), "bucket name"),
                       (("user", "create", "bad name"), "user name"),
                       (("user", "create", "reader"), "already exists"),
                       (("user", "create", "x1", "--email", "no-at-sign"), "email")]:
        r = srv.iam(*args, check=False)
        check(f"iam {' '.join(args)} is refused naming what is wrong", r.returncode != 0 and says in r.stderr, r.stderr)


def test_secrets_sealed_and_changes_audited(srv, people):
    check = srv.check
    secrets = [sk for _, sk in people["keys"].values()] + ["alice-secret-123"]
    audit = (srv.data / "d" / "iam-audit.jsonl").read_text()
    events = [json.loads(line) for line in audit.splitlines()]
    actions = {e["action"] for e in events}
    check("the audit trail records IAM changes",
          {"user.create", "hmac.create", "role.grant", "role.revoke", "hmac.disable", "hmac.enable"} <= actions,
          str(actions))
    check("each event names who, what and the outcome",
          all(e["initiator"] and e["target"] and e["outcome"] for e in events))
    check("no secret in the audit trail", not any(s in audit for s in secrets))
    kept = srv.data / "d" / "iam" / "identities.json"
    if kept.exists():
        text = kept.read_text()
        check("identities are kept sealed at rest (HSM configured)",
              '"sealed"' in text and not any(s in text for s in secrets))
        check("the identities file is private", kept.stat().st_mode & 0o777 == 0o600, oct(kept.stat().st_mode))
    users = json.loads(srv.iam("user", "list", "--json").stdout)
    names = {u["name"] for u in users}
    check("user list shows the imported and created users", {"alice-key", "reader", "writer"} <= names, str(names))
    check("no secret in user list", not any(s in json.dumps(users) for s in secrets))
    log = (srv.data / "server.log").read_text(errors="replace")
    check("no secret in the server log", not any(s in log for s in secrets))
    srv.iam("user", "delete", "other")
    other = people["other"]
    check("a deleted user's keys are refused",
          until(lambda: error_code(lambda: other.list_buckets()) == "InvalidAccessKeyId"))
