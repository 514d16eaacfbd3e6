"""ACLs and object ownership controls, with boto3 and unsigned HTTP, on the filesystem,
dispersed and cluster stores: ACLs off by default (BucketOwnerEnforced: only the owner's
full control accepted, AccessControlListNotSupported otherwise, CreateBucket with an ACL
InvalidBucketAclWithObjectOwnership), then on (ObjectWriter): bucket grants by email and
canonical id enforced cell by cell, objects owned by their writer and opened by their own
ACL, canned ACLs on PutObject, CopyObject and multipart uploads, AuthenticatedUsers and
AllUsers grants against the public access block (BlockPublicAcls refuses, IgnorePublicAcls
ignores), a policy's Deny beating a grant, bad grants refused by name (never a 500), and
ACLs turned off again only once the bucket's own is private.
"""

import json

import pytest

from cipherstore_harness import error_code
from cipherstore_harness import until as harness_until

STORES = ["fs", "dispersed-3of5", "cluster"]
B = "acls"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def until(cond, timeout=5):
    return harness_until(cond, timeout=timeout, every=0.25)


def grants(acl):
    """An ACL answer as (grantee, permission) pairs: canonical ids, or group URIs."""
    return sorted((g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"]) for g in acl["Grants"])


def open_acls(client, block, ignore):
    """The bucket's public access block with BlockPublicAcls and IgnorePublicAcls as asked
    (public policies stay blocked)."""
    client.put_public_access_block(Bucket=B, PublicAccessBlockConfiguration={
        "BlockPublicAcls": block, "IgnorePublicAcls": ignore, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True})


@pytest.fixture(scope="module")
def people(srv):
    """alice owns bucket `acls`; carol and dave are users with canonical ids of their own
    (carol with an email); bob (users file) holds nothing."""
    made = {"alice": srv.boto3("alice"), "bob": srv.boto3("bob"), "anonymous": srv.client()}
    for who in ("carol", "dave"):
        srv.iam("user", "create", who, "--canonical-id", f"{who}-id", "--display-name", who.title(),
                "--email", f"{who}@example.com")
        k = json.loads(srv.iam("hmac", "create", who, "--json").stdout)
        made[who] = srv.client(k["access_key_id"], k["secret_access_key"])
    made["alice"].create_bucket(Bucket=B)
    until(lambda: error_code(lambda: made["carol"].list_buckets()) is None)
    until(lambda: error_code(lambda: made["dave"].list_buckets()) is None)
    made["alice-id"] = made["alice"].get_bucket_acl(Bucket=B)["Owner"]["ID"]
    return made


def test_acls_are_off_until_the_owner_turns_them_on(srv, people):
    check, alice = srv.check, people["alice"]
    owner = people["alice-id"]
    controls = alice.get_bucket_ownership_controls(Bucket=B)["OwnershipControls"]["Rules"]
    check("a new bucket is BucketOwnerEnforced", controls == [{"ObjectOwnership": "BucketOwnerEnforced"}],
          str(controls))
    acl = alice.get_bucket_acl(Bucket=B)
    check("GetBucketAcl: the owner, in full", grants(acl) == [(owner, "FULL_CONTROL")], str(acl))
    check("… named with canonical id and display name",
          acl["Owner"]["ID"] == owner and acl["Owner"].get("DisplayName"), str(acl["Owner"]))
    check("PutObject with public-read: 400 AccessControlListNotSupported",
          error_code(lambda: alice.put_object(Bucket=B, Key="o", Body=b"x", ACL="public-read"))
          == "AccessControlListNotSupported")
    alice.put_object(Bucket=B, Key="o", Body=b"x", ACL="bucket-owner-full-control")
    check("… bucket-owner-full-control is accepted, the object the owner's",
          grants(alice.get_object_acl(Bucket=B, Key="o")) == [(owner, "FULL_CONTROL")])
    check("PutBucketAcl granting another: 400 AccessControlListNotSupported",
          error_code(lambda: alice.put_bucket_acl(Bucket=B, GrantRead="id=\"carol-id\""))
          == "AccessControlListNotSupported")
    alice.put_bucket_acl(Bucket=B, ACL="private")
    check("… private is accepted", grants(alice.get_bucket_acl(Bucket=B)) == [(owner, "FULL_CONTROL")])
    check("CreateBucket with an ACL and ACLs off: 400 InvalidBucketAclWithObjectOwnership",
          error_code(lambda: alice.create_bucket(Bucket="acls-public", ACL="public-read"))
          == "InvalidBucketAclWithObjectOwnership")
    check("reading or changing ownership controls is the owner's",
          error_code(lambda: people["carol"].get_bucket_ownership_controls(Bucket=B)) == "AccessDenied"
          and error_code(lambda: people["carol"].put_bucket_ownership_controls(
              Bucket=B, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})) == "AccessDenied")
    check("an unknown ownership: 400",
          error_code(lambda: alice.put_bucket_ownership_controls(
              Bucket=B, OwnershipControls={"Rules": [{"ObjectOwnership": "Anyone"}]})) in ("MalformedXML",
                                                                                            "InvalidArgument"))
    alice.create_bucket(Bucket="acls-writer", ObjectOwnership="ObjectWriter")
    check("CreateBucket with x-amz-object-ownership",
          alice.get_bucket_ownership_controls(Bucket="acls-writer")["OwnershipControls"]["Rules"]
          == [{"ObjectOwnership": "ObjectWriter"}])


def test_bucket_grants_are_enforced_cell_by_cell(srv, people):
    check, alice, carol, dave, bob, anon = (srv.check, people["alice"], people["carol"], people["dave"],
                                            people["bob"], people["anonymous"])
    alice.put_bucket_ownership_controls(Bucket=B, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    asked = dict(GrantRead='emailAddress="carol@example.com"', GrantWrite='id="dave-id"',
                 GrantReadACP=f'uri="{AUTHENTICATED}"')
    check("a grant to AuthenticatedUsers is public: refused while BlockPublicAcls is on",
          error_code(lambda: alice.put_bucket_acl(Bucket=B, **asked)) == "AccessDenied")
    open_acls(alice, block=False, ignore=False)
    alice.put_bucket_acl(Bucket=B, **asked)
    acl = alice.get_bucket_acl(Bucket=B)
    # Grant headers are the whole list, as on AWS (the owner keeps control by ownership).
    check("grants by email are kept as canonical ids", grants(acl) == sorted([
        ("carol-id", "READ"), ("dave-id", "WRITE"), (AUTHENTICATED, "READ_ACP")]), str(grants(acl)))
    check("… with display names", {g["Grantee"].get("ID"): g["Grantee"].get("DisplayName")
                                   for g in acl["Grants"]}.get("carol-id") == "Carol")
    # (caller, operation, allowed)
    cells = [
        ("carol", lambda c: c.list_objects_v2(Bucket=B), True),
        ("carol", lambda c: c.put_object(Bucket=B, Key="by-carol", Body=b"c"), False),
        ("dave", lambda c: c.put_object(Bucket=B, Key="by-dave", Body=b"d"), True),
        ("dave", lambda c: c.list_objects_v2(Bucket=B), False),
        ("dave", lambda c: c.get_bucket_acl(Bucket=B), True),
        ("bob", lambda c: c.get_bucket_acl(Bucket=B), True),
        ("anonymous", lambda c: c.get_bucket_acl(Bucket=B), False),
        ("carol", lambda c: c.put_bucket_acl(Bucket=B, ACL="private"), False),
        ("bob", lambda c: c.list_objects_v2(Bucket=B), False),
        ("anonymous", lambda c: c.list_objects_v2(Bucket=B), False),
        ("carol", lambda c: c.get_bucket_versioning(Bucket=B), False),
    ]
    clients = {"carol": carol, "dave": dave, "bob": bob, "anonymous": anon}
    for i, (who, op, allowed) in enumerate(cells):
        code = error_code(lambda: op(clients[who]))
        check(f"cell {i}: {who} {'allowed' if allowed else 'refused'}",
              (code is None) if allowed else code == "AccessDenied", str(code))

    # dave's object is dave's (ObjectWriter): carol may not read it until dave grants it.
    acl = dave.get_object_acl(Bucket=B, Key="by-dave")
    check("an object written under ObjectWriter is its writer's",
          acl["Owner"]["ID"] == "dave-id" and grants(acl) == [("dave-id", "FULL_CONTROL")], str(acl))
    check("the bucket's owner keeps full control of it",
          alice.get_object(Bucket=B, Key="by-dave")["Body"].read() == b"d")
    check("carol may not read dave's object", error_code(lambda: carol.get_object(Bucket=B, Key="by-dave"))
          == "AccessDenied")
    dave.put_object_acl(Bucket=B, Key="by-dave", GrantRead='id="carol-id"', GrantFullControl='id="dave-id"')
    check("… until dave's object ACL grants it", carol.get_object(Bucket=B, Key="by-dave")["Body"].read() == b"d")
    check("… which lets her read, not its ACL",
          error_code(lambda: carol.get_object_acl(Bucket=B, Key="by-dave")) == "AccessDenied")
    check("… and HEAD too", carol.head_object(Bucket=B, Key="by-dave")["ContentLength"] == 1)

    # A policy's Deny beats a grant.
    alice.put_bucket_policy(Bucket=B, Policy=json.dumps({"Statement": [{
        "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::000000000000:user/carol"}, "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{B}/*"}]}))
    check("a policy's Deny beats an ACL grant",
          until(lambda: error_code(lambda: carol.get_object(Bucket=B, Key="by-dave")) == "AccessDenied"))
    alice.delete_bucket_policy(Bucket=B)


def test_canned_acls_on_writes_and_the_public_access_block(srv, people):
    check, alice, dave, bob, anon = (srv.check, people["alice"], people["dave"], people["bob"],
                                     people["anonymous"])
    open_acls(alice, block=True, ignore=False)
    check("public-read while BlockPublicAcls is on: 403 AccessDenied",
          error_code(lambda: alice.put_object(Bucket=B, Key="pub", Body=b"p", ACL="public-read")) == "AccessDenied")
    open_acls(alice, block=False, ignore=False)
    alice.put_object(Bucket=B, Key="pub", Body=b"p", ACL="public-read")
    check("a public-read object: anonymous GET 200", anon.get_object(Bucket=B, Key="pub")["Body"].read() == b"p")
    check("… its ACL lists AllUsers READ", (ALL_USERS, "READ") in grants(alice.get_object_acl(Bucket=B, Key="pub")))
    alice.put_object(Bucket=B, Key="auth", Body=b"a", ACL="authenticated-read")
    check("authenticated-read: any signed user reads", bob.get_object(Bucket=B, Key="auth")["Body"].read() == b"a")
    check("… anonymous does not", error_code(lambda: anon.get_object(Bucket=B, Key="auth")) == "AccessDenied")

    # Copies and multipart uploads carry the ACL they ask for.
    alice.copy_object(Bucket=B, Key="pub-copy", CopySource={"Bucket": B, "Key": "auth"}, ACL="public-read")
    check("CopyObject with public-read", anon.get_object(Bucket=B, Key="pub-copy")["Body"].read() == b"a")
    upload = dave.create_multipart_upload(Bucket=B, Key="mp", ACL="public-read")["UploadId"]
    etag = dave.upload_part(Bucket=B, Key="mp", UploadId=upload, PartNumber=1, Body=b"m")["ETag"]
    dave.complete_multipart_upload(Bucket=B, Key="mp", UploadId=upload,
                                   MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]})
    acl = alice.get_object_acl(Bucket=B, Key="mp")
    check("a multipart upload's ACL, and its writer as owner",
          acl["Owner"]["ID"] == "dave-id" and (ALL_USERS, "READ") in grants(acl), str(acl))
    check("… anonymous reads it", anon.get_object(Bucket=B, Key="mp")["Body"].read() == b"m")
    alice.put_object(Bucket=B, Key="bofc", Body=b"b", ACL="bucket-owner-full-control")
    check("bucket-owner-full-control by the owner: one grant",
          grants(alice.get_object_acl(Bucket=B, Key="bofc")) == [(people["alice-id"], "FULL_CONTROL")])

    open_acls(alice, block=False, ignore=True)
    check("IgnorePublicAcls: the public grant no longer counts",
          until(lambda: error_code(lambda: anon.get_object(Bucket=B, Key="pub")) == "AccessDenied"))
    check("… named grants still do", people["carol"].get_object(Bucket=B, Key="by-dave")["Body"].read() == b"d")


def test_bad_grants_are_refused_by_name(srv, people):
    check, alice = srv.check, people["alice"]
    cells = [
        ("unknown email", dict(GrantRead='emailAddress="nobody@example.com"'), "UnresolvableGrantByEmailAddress"),
        ("unknown id", dict(GrantRead='id="ghost"'), "InvalidArgument"),
        ("unknown group", dict(GrantRead='uri="http://acs.amazonaws.com/groups/s3/LogDelivery"'), "InvalidArgument"),
        ("unknown grantee type", dict(GrantRead='name="x"'), "InvalidArgument"),
        ("unbalanced quotes", dict(GrantRead='id="carol-id'), "InvalidArgument"),
        ("canned and grants", dict(ACL="private", GrantRead='id="carol-id"'), "InvalidRequest"),
        ("a canned ACL for an AWS service", dict(ACL="aws-exec-read"), "InvalidArgument"),
    ]
    for name, kw, want in cells:
        code = error_code(lambda: alice.put_object(Bucket=B, Key="bad", Body=b"x", **kw))
        check(f"PutObject with {name}: {want}", code == want, str(code))
    bad_body = {"Owner": {"ID": people["alice-id"]},
                "Grants": [{"Grantee": {"Type": "CanonicalUser"}, "Permission": "READ"}]}
    code = error_code(lambda: alice.put_bucket_acl(Bucket=B, AccessControlPolicy=bad_body))
    check("an ACL body whose grantee has no ID: MalformedACLError", code == "MalformedACLError", str(code))
    check("nothing was written", error_code(lambda: alice.head_object(Bucket=B, Key="bad")) == "404")


def test_acls_off_again_once_the_bucket_acl_is_private(srv, people):
    check, alice, carol = srv.check, people["alice"], people["carol"]
    off = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    check("BucketOwnerEnforced while the bucket ACL grants others: 400",
          error_code(lambda: alice.put_bucket_ownership_controls(Bucket=B, OwnershipControls=off))
          == "InvalidBucketAclWithObjectOwnership")
    alice.put_bucket_acl(Bucket=B, ACL="private")
    alice.delete_bucket_ownership_controls(Bucket=B)
    check("ownership controls deleted: BucketOwnerEnforced",
          alice.get_bucket_ownership_controls(Bucket=B)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]
          == "BucketOwnerEnforced")
    check("ACLs off: carol's object grant no longer counts",
          error_code(lambda: carol.get_object(Bucket=B, Key="by-dave")) == "AccessDenied")
