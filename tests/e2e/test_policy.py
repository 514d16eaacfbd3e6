"""Bucket policies and public access blocks, with boto3 and unsigned HTTP, on the
filesystem, dispersed and cluster stores: documents checked as AWS checks them (MalformedPolicy naming
what is wrong, never a 500), policies that refuse unencrypted uploads and plain-HTTP
requests (the owner included), a prefix opened to one user (listing limited by s3:prefix),
a prefix made public (refused while the public access block blocks public policies; closed
again by RestrictPublicBuckets), an explicit deny beating a role, access decided by an
object's tags, DeleteObjects decided key by key, and s3:BypassGovernanceRetention.
"""

import json
import ssl
import urllib.error
import urllib.request

import pytest

from cipherstore_harness import error_code, free_port
from cipherstore_harness import until as harness_until

STORES = ["fs", "dispersed-3of5", "cluster"]
HTTP_PORT = free_port()
SERVER = {"config": f'http_listen = "127.0.0.1:{HTTP_PORT}"\n'}
B = "pol"


def arn(*parts):
    return [f"arn:aws:s3:::{B}{p}" for p in parts]


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def until(cond, timeout=5):
    return harness_until(cond, timeout=timeout, every=0.25)


def status(srv, method, path):
    """An unsigned request's HTTP status."""
    req = urllib.request.Request(f"{srv.endpoint}{path}", method=method)
    try:
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(srv.ca)), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def message(fn):
    import botocore
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", ""), \
            e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, "", 200


@pytest.fixture(scope="module")
def people(srv):
    """alice owns bucket `pol`; carol and dave are users made with the CLI; dave is a writer
    on the bucket; bob (users file) holds nothing."""
    made = {"alice": srv.boto3("alice"), "bob": srv.boto3("bob"), "anonymous": srv.client()}
    for who in ("carol", "dave"):
        srv.iam("user", "create", who)
        k = json.loads(srv.iam("hmac", "create", who, "--json").stdout)
        made[who] = srv.client(k["access_key_id"], k["secret_access_key"])
        made[f"{who}-key"] = (k["access_key_id"], k["secret_access_key"])
    made["alice"].create_bucket(Bucket=B)
    srv.iam("grant", "dave", "--bucket", B, "--role", "writer")
    until(lambda: error_code(lambda: made["dave"].head_bucket(Bucket=B)) is None)
    until(lambda: error_code(lambda: made["carol"].list_buckets()) is None)
    return made


def test_documents_are_checked_and_refusals_name_the_fault(srv, people):
    check, alice = srv.check, people["alice"]
    ok = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/carol"},
          "Action": "s3:GetObject", "Resource": arn("/*")}
    code, _, http = message(lambda: alice.get_bucket_policy(Bucket=B))
    check("no policy yet: NoSuchBucketPolicy 404", (code, http) == ("NoSuchBucketPolicy", 404), f"{code} {http}")
    bad = {
        "not JSON": ("{", "valid JSON"),
        "no Statement": (json.dumps({"Version": "2012-10-17"}), "Statement"),
        "a bad version": (json.dumps({"Version": "2013-01-01", "Statement": [ok]}), "version"),
        "an unknown action": (doc({**ok, "Action": "s3:GetObjekt"}), "s3:GetObjekt"),
        "another bucket": (doc({**ok, "Resource": "arn:aws:s3:::elsewhere/*"}), "elsewhere"),
        "an action without its resource": (doc({**ok, "Action": "s3:ListBucket"}), "does not apply"),
        "an unknown operator": (doc({**ok, "Condition": {"StringEqualz": {"s3:prefix": "a"}}}), "StringEqualz"),
        "an unknown condition key": (doc({**ok, "Condition": {"StringEquals": {"s3:colour": "a"}}}), "s3:colour"),
        "a bad number": (doc({**ok, "Condition": {"NumericLessThan": {"s3:max-keys": "ten"}}}), "ten"),
        "a bad address": (doc({**ok, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/40"}}}), "10.0.0.0/40"),
        "an unknown user": (doc({**ok, "Principal": {"AWS": "arn:aws:iam::1:user/nobody"}}), "nobody"),
        "an unknown canonical id": (doc({**ok, "Principal": {"CanonicalUser": "no-such-id"}}), "no-such-id"),
        "a service principal": (doc({**ok, "Principal": {"Service": "s3.amazonaws.com"}}), "Invalid principal"),
        "a missing Effect": (doc({k: v for k, v in ok.items() if k != "Effect"}), "Effect"),
        "policy variables": (doc({**ok, "Resource": arn("/${aws:username}/*")}), "variables"),
    }
    for name, (text, names) in bad.items():
        code, msg, http = message(lambda: alice.put_bucket_policy(Bucket=B, Policy=text))
        check(f"{name}: MalformedPolicy 400 naming it", code == "MalformedPolicy" and http == 400 and names in msg,
              f"{code} {http} {msg!r}")
    code = error_code(lambda: alice.put_bucket_policy(Bucket=B, Policy=doc(ok) + " " * 21000))
    check("a document over 20 KiB is refused", code == "MalformedPolicy", str(code))
    check("nothing was kept", error_code(lambda: alice.get_bucket_policy(Bucket=B)) == "NoSuchBucketPolicy")
    check("another user may not put one", error_code(
        lambda: people["bob"].put_bucket_policy(Bucket=B, Policy=doc(ok))) == "AccessDenied")
    check("a writer may not either", error_code(
        lambda: people["dave"].put_bucket_policy(Bucket=B, Policy=doc(ok))) == "AccessDenied")
    text = doc(ok)
    alice.put_bucket_policy(Bucket=B, Policy=text)
    check("GetBucketPolicy answers the document as put", alice.get_bucket_policy(Bucket=B)["Policy"] == text)
    public = alice.get_bucket_policy_status(Bucket=B)["PolicyStatus"]["IsPublic"]
    check("a policy naming one user is not public", public is False, str(public))
    alice.delete_bucket_policy(Bucket=B)
    check("deleted", error_code(lambda: alice.get_bucket_policy(Bucket=B)) == "NoSuchBucketPolicy")


def test_encrypted_uploads_over_tls_only(srv, people):
    check, alice = srv.check, people["alice"]
    alice.put_bucket_policy(Bucket=B, Policy=doc(
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": arn("", "/*"),
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "EncryptedOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": arn("/*"),
         "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}},
        {"Sid": "Aes256Only", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": arn("/*"),
         "Condition": {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "AES256"}}}))
    check("an upload naming no encryption is refused, even to the owner",
          error_code(lambda: alice.put_object(Bucket=B, Key="enc/plain", Body=b"x")) == "AccessDenied")
    check("naming aws:kms is refused by the StringNotEquals statement", error_code(lambda: alice.put_object(
        Bucket=B, Key="enc/kms", Body=b"x", ServerSideEncryption="aws:kms")) == "AccessDenied")
    check("SSE-S3 (AES256) is accepted", error_code(lambda: alice.put_object(
        Bucket=B, Key="enc/ok", Body=b"secret", ServerSideEncryption="AES256")) is None)
    check("a writer is held to it too", error_code(
        lambda: people["dave"].put_object(Bucket=B, Key="enc/dave", Body=b"x")) == "AccessDenied")
    plain = srv.client("alice-key", "alice-secret-123", endpoint=f"http://127.0.0.1:{HTTP_PORT}")
    check("over plain HTTP even the owner's GET is refused",
          error_code(lambda: plain.get_object(Bucket=B, Key="enc/ok")) == "AccessDenied")
    check("over HTTPS it is served", alice.get_object(Bucket=B, Key="enc/ok")["Body"].read() == b"secret")
    check("the owner can always remove the policy (even over plain HTTP)",
          error_code(lambda: plain.delete_bucket_policy(Bucket=B)) is None)
    check("then plain HTTP reads again", plain.get_object(Bucket=B, Key="enc/ok")["Body"].read() == b"secret")


def test_a_prefix_for_one_user(srv, people):
    check, alice, carol = srv.check, people["alice"], people["carol"]
    alice.put_object(Bucket=B, Key="home/carol/seed", Body=b"carol's")
    alice.put_object(Bucket=B, Key="home/dave/seed", Body=b"dave's")
    check("before any policy carol has nothing", error_code(
        lambda: carol.get_object(Bucket=B, Key="home/carol/seed")) == "AccessDenied")
    alice.put_bucket_policy(Bucket=B, Policy=doc(
        {"Sid": "CarolHome", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/carol"},
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": arn("/home/carol/*")},
        {"Sid": "CarolList", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/carol"},
         "Action": "s3:ListBucket", "Resource": arn(""),
         "Condition": {"StringLike": {"s3:prefix": "home/carol/*"}, "NumericLessThanEquals": {"s3:max-keys": 100}}}))
    check("carol reads in her prefix", carol.get_object(Bucket=B, Key="home/carol/seed")["Body"].read() == b"carol's")
    check("and writes there", error_code(lambda: carol.put_object(Bucket=B, Key="home/carol/new", Body=b"n")) is None)
    check("not in dave's", error_code(lambda: carol.get_object(Bucket=B, Key="home/dave/seed")) == "AccessDenied")
    check("nor writes outside", error_code(
        lambda: carol.put_object(Bucket=B, Key="elsewhere", Body=b"n")) == "AccessDenied")
    listed = carol.list_objects_v2(Bucket=B, Prefix="home/carol/", MaxKeys=50)
    check("she lists her prefix", [o["Key"] for o in listed["Contents"]] == ["home/carol/new", "home/carol/seed"],
          str(listed.get("Contents")))
    check("not the whole bucket", error_code(lambda: carol.list_objects_v2(Bucket=B)) == "AccessDenied")
    check("nor with too many keys a page", error_code(
        lambda: carol.list_objects_v2(Bucket=B, Prefix="home/carol/", MaxKeys=500)) == "AccessDenied")
    check("nor bucket settings", error_code(lambda: carol.get_bucket_versioning(Bucket=B)) == "AccessDenied")
    out = carol.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "home/carol/new"}, {"Key": "home/dave/seed"}]})
    deleted = [d["Key"] for d in out.get("Deleted", [])]
    errors = [(e["Key"], e["Code"]) for e in out.get("Errors", [])]
    check("DeleteObjects decides each key", deleted == ["home/carol/new"] and errors == [("home/dave/seed", "AccessDenied")],
          f"{deleted} {errors}")
    check("dave's object is still there", alice.get_object(Bucket=B, Key="home/dave/seed")["Body"].read() == b"dave's")
    check("bob, named nowhere, has nothing", error_code(
        lambda: people["bob"].get_object(Bucket=B, Key="home/carol/seed")) == "AccessDenied")
    alice.delete_bucket_policy(Bucket=B)
    check("policy deleted: carol's access ends", error_code(
        lambda: carol.get_object(Bucket=B, Key="home/carol/seed")) == "AccessDenied")


def test_a_public_prefix_and_the_public_access_block(srv, people):
    check, alice, anonymous = srv.check, people["alice"], people["anonymous"]
    alice.put_object(Bucket=B, Key="public/hello.txt", Body=b"hello world")
    alice.put_object(Bucket=B, Key="private/secret.txt", Body=b"secret")
    block = alice.get_public_access_block(Bucket=B)["PublicAccessBlockConfiguration"]
    check("a new bucket blocks public access", all(block.values()), str(block))
    public = doc({"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                  "Resource": arn("/public/*")})
    code, msg, _ = message(lambda: alice.put_bucket_policy(Bucket=B, Policy=public))
    check("a public policy is refused while BlockPublicPolicy is on", code == "AccessDenied" and "BlockPublicPolicy" in msg,
          f"{code} {msg}")
    check("anonymous: nothing", status(srv, "GET", f"/{B}/public/hello.txt")[0] == 403)
    alice.delete_public_access_block(Bucket=B)
    check("deleted: no block configuration", error_code(
        lambda: alice.get_public_access_block(Bucket=B)) == "NoSuchPublicAccessBlockConfiguration")
    alice.put_bucket_policy(Bucket=B, Policy=public)
    check("the policy is public", alice.get_bucket_policy_status(Bucket=B)["PolicyStatus"]["IsPublic"] is True)
    code, body = status(srv, "GET", f"/{B}/public/hello.txt")
    check("anyone reads the public prefix without signing", (code, body) == (200, b"hello world"), f"{code} {body[:80]}")
    check("boto3 unsigned too", anonymous.get_object(Bucket=B, Key="public/hello.txt")["Body"].read() == b"hello world")
    check("HEAD too", status(srv, "HEAD", f"/{B}/public/hello.txt")[0] == 200)
    check("not the private prefix", status(srv, "GET", f"/{B}/private/secret.txt")[0] == 403)
    check("nor a listing", status(srv, "GET", f"/{B}?list-type=2")[0] == 403)
    check("nor a write", error_code(lambda: anonymous.put_object(Bucket=B, Key="public/x", Body=b"x")) in
          ("AccessDenied", "403"))
    check("nor ListBuckets", status(srv, "GET", "/")[0] == 403)
    check("a Range GET of the public object", error_code(
        lambda: anonymous.get_object(Bucket=B, Key="public/hello.txt", Range="bytes=0-4")) is None)
    alice.put_public_access_block(Bucket=B, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True})
    got = alice.get_public_access_block(Bucket=B)["PublicAccessBlockConfiguration"]
    check("parts left out are off", got == {"BlockPublicAcls": False, "IgnorePublicAcls": False,
                                            "BlockPublicPolicy": False, "RestrictPublicBuckets": True}, str(got))
    check("RestrictPublicBuckets closes the public statement", status(srv, "GET", f"/{B}/public/hello.txt")[0] == 403)
    check("while the owner still reads", alice.get_object(Bucket=B, Key="public/hello.txt")["Body"].read() == b"hello world")
    alice.delete_bucket_policy(Bucket=B)
    alice.put_public_access_block(Bucket=B, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})


def test_an_explicit_deny_beats_a_role_and_tags_decide(srv, people):
    check, alice, dave, bob = srv.check, people["alice"], people["dave"], people["bob"]
    alice.put_object(Bucket=B, Key="kept/a", Body=b"a")
    alice.put_object(Bucket=B, Key="shared/open", Body=b"open", Tagging="class=open")
    alice.put_object(Bucket=B, Key="shared/closed", Body=b"closed", Tagging="class=closed")
    check("dave the writer may delete before the policy", error_code(
        lambda: dave.put_object(Bucket=B, Key="kept/b", Body=b"b")) is None)
    alice.put_bucket_policy(Bucket=B, Policy=doc(
        {"Sid": "KeepKept", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::000000000000:user/dave"},
         "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": arn("/kept/*")},
        {"Sid": "OpenByTag", "Effect": "Allow", "Principal": {"CanonicalUser": "bob-key"}, "Action": "s3:GetObject",
         "Resource": arn("/shared/*"), "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "open"}}},
        {"Sid": "TagOnWrite", "Effect": "Allow", "Principal": {"CanonicalUser": "bob-key"}, "Action": "s3:PutObject",
         "Resource": arn("/inbox/*"), "Condition": {"StringEquals": {"s3:RequestObjectTag/from": "bob"}}}))
    check("the deny beats dave's writer role", error_code(
        lambda: dave.delete_object(Bucket=B, Key="kept/a")) == "AccessDenied")
    check("in DeleteObjects too", [e["Code"] for e in dave.delete_objects(
        Bucket=B, Delete={"Objects": [{"Key": "kept/b"}]}).get("Errors", [])] == ["AccessDenied"])
    check("the rest of his role stands", error_code(lambda: dave.put_object(Bucket=B, Key="kept/c", Body=b"c")) is None)
    check("bob reads an object tagged open", bob.get_object(Bucket=B, Key="shared/open")["Body"].read() == b"open")
    check("not one tagged closed", error_code(lambda: bob.get_object(Bucket=B, Key="shared/closed")) == "AccessDenied")
    check("bob writes to the inbox with the tag asked", error_code(
        lambda: bob.put_object(Bucket=B, Key="inbox/1", Body=b"1", Tagging="from=bob")) is None)
    check("not without it", error_code(lambda: bob.put_object(Bucket=B, Key="inbox/2", Body=b"2")) == "AccessDenied")
    alice.delete_bucket_policy(Bucket=B)


def test_bypass_governance_needs_its_permission(srv, people):
    check, alice, dave, carol = srv.check, people["alice"], people["dave"], people["carol"]
    alice.create_bucket(Bucket="pol-lock", ObjectLockEnabledForBucket=True)
    srv.iam("grant", "dave", "--bucket", "pol-lock", "--role", "writer")
    until(lambda: error_code(lambda: dave.head_bucket(Bucket="pol-lock")) is None)
    v = alice.put_object(Bucket="pol-lock", Key="g", Body=b"g", ObjectLockMode="GOVERNANCE",
                         ObjectLockRetainUntilDate="2099-01-01T00:00:00Z")["VersionId"]
    check("a writer may not bypass", error_code(lambda: dave.delete_object(
        Bucket="pol-lock", Key="g", VersionId=v, BypassGovernanceRetention=True)) == "AccessDenied")
    alice.put_bucket_policy(Bucket="pol-lock", Policy=json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/dave"},
         "Action": "s3:BypassGovernanceRetention", "Resource": "arn:aws:s3:::pol-lock/*"}]}))
    check("granted s3:BypassGovernanceRetention he may", error_code(lambda: dave.delete_object(
        Bucket="pol-lock", Key="g", VersionId=v, BypassGovernanceRetention=True)) is None)
    check("carol, with no role, still may not delete", error_code(lambda: carol.delete_object(
        Bucket="pol-lock", Key="g", BypassGovernanceRetention=True)) == "AccessDenied")


def test_configuration_changes_made_at_once_are_all_kept(srv, people):
    """Two clients change different parts of one bucket's configuration at the same time
    (its policy; its lifecycle rules): each change starts from the record as read, and one
    made from a record another change replaced meanwhile is refused with 409
    OperationAborted instead of silently undoing the other. Retried, every change lands:
    at the end the bucket has both last values."""
    import threading

    import botocore

    check, alice = srv.check, people["alice"]
    bucket = "pol-race"
    alice.create_bucket(Bucket=bucket)
    rounds = 60
    conflicts, failures = [], []

    def policy(i):
        return json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": f"round{i}", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/never-{i}/*"}]})

    def rules(i):
        return {"Rules": [{"ID": f"round{i}", "Status": "Enabled", "Filter": {"Prefix": f"tmp-{i}/"},
                           "Expiration": {"Days": i + 1}}]}

    def retried(call):
        for _ in range(50):
            try:
                return call()
            except botocore.exceptions.ClientError as e:
                err = e.response["Error"]
                if err["Code"] != "OperationAborted":
                    failures.append(f"{err['Code']}: {err.get('Message')}")
                    return None
                conflicts.append(e.response["ResponseMetadata"]["HTTPStatusCode"])
        failures.append("still OperationAborted after 50 tries")

    def policies():
        client = srv.boto3("alice")
        for i in range(rounds):
            retried(lambda: client.put_bucket_policy(Bucket=bucket, Policy=policy(i)))

    def lifecycles():
        client = srv.boto3("alice")
        for i in range(rounds):
            retried(lambda: client.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration=rules(i)))

    threads = [threading.Thread(target=policies), threading.Thread(target=lifecycles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("no change failed otherwise", not failures, "; ".join(failures[:3]))
    check("every conflict was a 409", all(c == 409 for c in conflicts), str(conflicts[:5]))
    last = rounds - 1
    kept_policy = json.loads(alice.get_bucket_policy(Bucket=bucket)["Policy"])
    check("the policy is the last one set", kept_policy["Statement"][0]["Sid"] == f"round{last}",
          kept_policy["Statement"][0].get("Sid"))
    kept_rules = alice.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    check("the lifecycle rules are the last ones set", [r["ID"] for r in kept_rules] == [f"round{last}"],
          str([r["ID"] for r in kept_rules]))
    alice.delete_bucket_policy(Bucket=bucket)
    alice.delete_bucket_lifecycle(Bucket=bucket)
    alice.delete_bucket(Bucket=bucket)


def test_no_secret_or_policy_in_the_log(srv, people):
    log = srv.log_path.read_text(errors="replace")
    srv.check("the log says policies were set", "bucket policy set" in log)
    srv.check("the log names no secret", "alice-secret-123" not in log and people["carol-key"][1] not in log)
