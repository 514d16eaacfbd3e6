//! ACLs and object ownership controls (docs/ACCESS.md): Get/PutBucketAcl,
//! Get/PutObjectAcl, Get/Put/DeleteBucketOwnershipControls, and the ACL a write
//! (PutObject, CopyObject, CreateMultipartUpload) or CreateBucket asks for with
//! `x-amz-acl` or `x-amz-grant-*`. The lists are made and checked by `iam::acl`; a bucket
//! whose ownership is BucketOwnerEnforced (every bucket until told otherwise) keeps ACLs
//! off. Enforcement is `access`'s.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::access::Owned;
use super::error;
use super::service::CipherS3;
use iam::acl::{self, Acl, AclError, Asked, Canned, Ownership, Rules};
use object::BucketRecord;

/// An ACL refused, as S3 answers it.
pub(crate) fn refused(e: AclError) -> S3Error {
    let code = match &e {
        AclError::Malformed(_) => S3ErrorCode::InvalidArgument,
        AclError::Unsupported(_) => S3ErrorCode::InvalidArgument,
        AclError::UnknownEmail(_) => S3ErrorCode::UnresolvableGrantByEmailAddress,
        AclError::UnknownId(_) => S3ErrorCode::InvalidArgument,
        AclError::Both => S3ErrorCode::InvalidRequest,
        AclError::Disabled => S3ErrorCode::AccessControlListNotSupported,
        AclError::PublicBlocked => S3ErrorCode::AccessDenied,
    };
    S3Error::with_message(code, e.to_string())
}

/// What a request's `x-amz-acl` and `x-amz-grant-*` headers ask for.
pub(crate) fn asked(headers: &http::HeaderMap) -> S3Result<Asked> {
    let text = |name: &str| -> S3Result<Option<&str>> {
        headers
            .get(name)
            .map(|v| v.to_str().map_err(|_| s3_error!(InvalidArgument, "{name} is not visible ASCII")))
            .transpose()
    };
    let canned = text("x-amz-acl")?;
    let mut grants = Vec::new();
    for (name, _) in acl::headers::GRANT_HEADERS {
        for v in headers.get_all(name) {
            let v = v.to_str().map_err(|_| s3_error!(InvalidArgument, "{name} is not visible ASCII"))?;
            grants.push((name, v));
        }
    }
    Asked::from_headers(canned, grants).map_err(refused)
}

/// Makes the ACL `asked` gives something `owner` will own in `bucket`.
fn make(s: &CipherS3, bucket: &BucketRecord, owner: &str, asked: Asked) -> S3Result<Acl> {
    let snapshot = s.identities.as_ref().map(|i| i.snapshot());
    let email = |e: &str| snapshot.as_ref().and_then(|s| s.canonical_id_by_email(e)).map(str::to_owned);
    // Without identities (the users file of old), every id is a user's.
    let known = |id: &str| snapshot.as_ref().is_none_or(|s| s.has_canonical_id(id));
    let rules = Rules {
        owner,
        bucket_owner: &bucket.owner,
        ownership: bucket.ownership(),
        block_public: bucket.public_access_block.is_some_and(|b| b.block_public_acls),
        email: &email,
        known: &known,
    };
    acl::make(asked, &rules).map_err(refused)
}

/// The ACL an object written by `writer` into `bucket` gets from the request's headers:
/// `None` where it is the default (the bucket owner's, private: every object of a bucket
/// whose ACLs are off).
pub(crate) fn for_new_object(
    s: &CipherS3,
    bucket: &BucketRecord,
    writer: Option<&str>,
    headers: &http::HeaderMap,
) -> S3Result<Option<Acl>> {
    let asked = asked(headers)?;
    let to_bucket_owner = asked == Asked::Canned(Canned::BucketOwnerFullControl);
    let writer = writer.unwrap_or(&bucket.owner);
    let owner = bucket.ownership().object_owner(writer, &bucket.owner, to_bucket_owner);
    let made = make(s, bucket, owner, asked)?;
    Ok((made != Acl::private(&bucket.owner)).then_some(made))
}

/// A new bucket's ownership and ACL, from CreateBucket's `x-amz-object-ownership`,
/// `x-amz-acl` and grant headers; an ACL with ACLs off is 400
/// InvalidBucketAclWithObjectOwnership, as AWS answers.
pub(crate) fn for_new_bucket(
    s: &CipherS3,
    bucket: &mut BucketRecord,
    input: &CreateBucketInput,
    headers: &http::HeaderMap,
) -> S3Result<()> {
    if let Some(o) = &input.object_ownership {
        let ownership = Ownership::from_s3(o.as_str()).map_err(|e| s3_error!(InvalidArgument, "{e}"))?;
        bucket.ownership = (ownership != Ownership::BucketOwnerEnforced).then_some(ownership);
    }
    let asked = asked(headers)?;
    let owner = bucket.owner.clone();
    match make(s, bucket, &owner, asked) {
        Ok(made) => {
            bucket.acl = (made != Acl::private(&owner)).then_some(made);
            Ok(())
        }
        Err(e) if *e.code() == S3ErrorCode::AccessControlListNotSupported => Err(S3Error::with_message(
            S3ErrorCode::InvalidBucketAclWithObjectOwnership,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        )),
        Err(e) => Err(e),
    }
}

/// What PutBucketAcl and PutObjectAcl ask for: a canned ACL, grant headers, or an
/// AccessControlPolicy body (one of them).
fn asked_of_put(headers: &http::HeaderMap, body: Option<&AccessControlPolicy>) -> S3Result<Asked> {
    let from_headers = asked(headers)?;
    let Some(policy) = body else {
        return match from_headers {
            Asked::Nothing => {
                Err(s3_error!(MissingSecurityHeader, "an ACL needs x-amz-acl, x-amz-grant-* or a body"))
            }
            asked => Ok(asked),
        };
    };
    if from_headers != Asked::Nothing {
        return Err(s3_error!(UnexpectedContent, "an ACL body and ACL headers cannot be combined"));
    }
    let mut named = Vec::new();
    for g in policy.grants.iter().flatten() {
        let permission = g
            .permission
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedACLError, "a grant names no permission"))?;
        let permission =
            acl::Permission::from_s3(permission.as_str()).map_err(|e| s3_error!(MalformedACLError, "{e}"))?;
        let grantee =
            g.grantee.as_ref().ok_or_else(|| s3_error!(MalformedACLError, "a grant names no grantee"))?;
        let nonempty = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
        let who = match grantee.type_.as_str() {
            Type::CANONICAL_USER => acl::headers::Named::Grantee(acl::Grantee::Id(
                nonempty(&grantee.id)
                    .ok_or_else(|| s3_error!(MalformedACLError, "a CanonicalUser grantee has no ID"))?,
            )),
            Type::AMAZON_CUSTOMER_BY_EMAIL => acl::headers::Named::Email(
                nonempty(&grantee.email_address)
                    .ok_or_else(|| s3_error!(MalformedACLError, "an email grantee has no EmailAddress"))?,
            ),
            Type::GROUP => acl::headers::Named::Grantee(
                acl::Grantee::group(grantee.uri.as_deref().unwrap_or_default())
                    .map_err(|e| s3_error!(MalformedACLError, "{e}"))?,
            ),
            other => return Err(s3_error!(MalformedACLError, "unknown grantee type {other:?}")),
        };
        named.push((who, permission));
    }
    Ok(Asked::Grants(named))
}

/// An ACL as S3 renders it: the owner (canonical id and display name) and the grants.
fn rendered(s: &CipherS3, list: &Acl) -> (Owner, Grants) {
    let owner = Owner { id: Some(list.owner.clone()), display_name: Some(s.display_name(&list.owner)) };
    let grants = list
        .grants
        .iter()
        .map(|g| {
            let grantee = match &g.grantee {
                acl::Grantee::Id(id) => Grantee {
                    type_: Type::from_static(Type::CANONICAL_USER),
                    id: Some(id.clone()),
                    display_name: Some(s.display_name(id)),
                    email_address: None,
                    uri: None,
                },
                group => Grantee {
                    type_: Type::from_static(Type::GROUP),
                    id: None,
                    display_name: None,
                    email_address: None,
                    uri: group.uri().map(str::to_owned),
                },
            };
            Grant {
                grantee: Some(grantee),
                permission: Some(Permission::from(g.permission.as_s3().to_owned())),
            }
        })
        .collect();
    (owner, grants)
}

pub(super) async fn get_bucket(
    s: &CipherS3,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let Owned { bucket, .. } = s.owned(req).await?;
    let (owner, grants) = rendered(s, &bucket.acl());
    Ok(S3Response::new(GetBucketAclOutput { owner: Some(owner), grants: Some(grants) }))
}

pub(super) async fn put_bucket(
    s: &CipherS3,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let headers = req.headers.clone();
    let Owned { input, bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    let asked = asked_of_put(&headers, input.access_control_policy.as_ref())?;
    let owner = bucket.owner.clone();
    let made = make(s, &bucket, &owner, asked)?;
    bucket.acl = (made != Acl::private(&owner)).then_some(made);
    s.objects.update_bucket(&before, &bucket).await.map_err(error::object)?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

pub(super) async fn get_object(
    s: &CipherS3,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let Owned { input, bucket, .. } = s.owned(req).await?;
    let object = super::versioning::open(s, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let (owner, grants) = rendered(s, &object.acl(&bucket.owner));
    Ok(S3Response::new(GetObjectAclOutput {
        owner: Some(owner),
        grants: Some(grants),
        request_charged: None,
    }))
}

pub(super) async fn put_object(
    s: &CipherS3,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let headers = req.headers.clone();
    let Owned { input, bucket, .. } = s.owned(req).await?;
    let asked = asked_of_put(&headers, input.access_control_policy.as_ref())?;
    let object = super::versioning::open(s, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    // The object keeps its owner; the list replaces the grants.
    let owner = object.acl(&bucket.owner).owner;
    let made = make(s, &bucket, &owner, asked)?;
    s.objects
        .set_acl(&input.bucket, &input.key, input.version_id.as_deref(), &made)
        .await
        .map_err(error::object)?;
    Ok(S3Response::new(PutObjectAclOutput { request_charged: None }))
}

pub(super) async fn get_ownership(
    s: &CipherS3,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let Owned { bucket, .. } = s.owned(req).await?;
    let rule = OwnershipControlsRule {
        object_ownership: ObjectOwnership::from(bucket.ownership().as_s3().to_owned()),
    };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
    }))
}

pub(super) async fn put_ownership(
    s: &CipherS3,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let Owned { input, bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    let [rule] = input.ownership_controls.rules.as_slice() else {
        return Err(s3_error!(MalformedXML, "OwnershipControls needs exactly one Rule"));
    };
    let ownership =
        Ownership::from_s3(rule.object_ownership.as_str()).map_err(|e| s3_error!(MalformedXML, "{e}"))?;
    set_ownership(s, &before, &mut bucket, ownership).await?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
}

pub(super) async fn delete_ownership(
    s: &CipherS3,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    let Owned { bucket: before, .. } = s.owned(req).await?;
    let mut bucket = before.clone();
    set_ownership(s, &before, &mut bucket, Ownership::BucketOwnerEnforced).await?;
    let mut response = S3Response::new(DeleteBucketOwnershipControlsOutput::default());
    response.status = Some(http::StatusCode::NO_CONTENT);
    Ok(response)
}

/// Turning ACLs off is refused while the bucket's own ACL grants more than its owner's
/// full control, as AWS refuses it (reset it with PutBucketAcl private first).
async fn set_ownership(
    s: &CipherS3,
    before: &BucketRecord,
    bucket: &mut BucketRecord,
    ownership: Ownership,
) -> S3Result<()> {
    if !ownership.acls_enabled() && !bucket.acl().is_private() {
        return Err(s3_error!(
            InvalidBucketAclWithObjectOwnership,
            "the bucket's ACL grants more than its owner's full control: set it private before BucketOwnerEnforced"
        ));
    }
    bucket.ownership = ownership.acls_enabled().then_some(ownership);
    s.objects.update_bucket(before, bucket).await.map_err(error::object)
}
