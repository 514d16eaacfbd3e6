//! Who may do what, for every request on a bucket (docs/ACCESS.md): the caller (a user,
//! or nobody for an anonymous request), the S3 action each operation is (the table
//! below: `GetObjectInput` is `s3:GetObject`, `s3:GetObjectVersion` with a version id,
//! and a read in the role table), the condition keys a bucket policy may test, gathered
//! from the request only when the bucket has a policy, and the decision
//! ([`iam::decide`]: a policy's Deny, then ownership and roles, then a policy's Allow).
//! Parsed policies are kept per bucket, so a request pays one comparison, not a parse.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use s3s::dto::*;
use s3s::{S3Request, S3Result, s3_error};

use super::{error, lenient_range, object_lock, versioning};
use base::clock::{now_unix, rfc3339};
use iam::acl::Level;
use iam::policy::{Context, Policy, Request};
use iam::{Action, BucketAccess, Denial, Principal};
use object::{BucketRecord, TagSet};

use super::service::CipherS3;

/// Where a request came from, as the listener saw it (set by the HTTP front).
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The client's address.
    pub ip: IpAddr,
    /// Whether it came over TLS.
    pub secure: bool,
}

/// An S3 action: its name in policies and its column in the role table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Op {
    /// `s3:GetObject`.
    pub(crate) name: &'static str,
    /// What a role must allow.
    pub(crate) kind: Action,
}

/// `s3:BypassGovernanceRetention`, asked of a request carrying
/// `x-amz-bypass-governance-retention: true`.
pub(crate) const BYPASS: Op = Op { name: "s3:BypassGovernanceRetention", kind: Action::BypassGovernance };

/// Who asks, and the condition keys of the request for each bucket whose policy reads
/// some (only the keys that policy reads are gathered).
pub(crate) struct Asker {
    /// The user, or `None` for an anonymous request.
    pub(crate) caller: Option<Arc<Principal>>,
    contexts: Vec<(String, Context)>,
}

impl Asker {
    fn new(caller: Option<Arc<Principal>>) -> Self {
        Self { caller, contexts: Vec::new() }
    }

    /// The caller's canonical id (`None`: anonymous).
    pub(crate) fn caller_id(&self) -> Option<&str> {
        self.caller.as_deref().map(|c| c.canonical_id.as_str())
    }

    fn context_mut(&mut self, bucket: &str) -> Option<&mut Context> {
        self.contexts.iter_mut().find(|(b, _)| b == bucket).map(|(_, c)| c)
    }
}

/// A request its caller may make on a bucket, as [`CipherS3::owned`] admitted it.
pub(crate) struct Owned<T> {
    /// Who asks.
    pub(crate) asker: Asker,
    /// What the request asks.
    pub(crate) input: T,
    /// The bucket's record.
    pub(crate) bucket: BucketRecord,
}

/// Bucket policies as parsed, by bucket, with the text each was parsed from.
#[derive(Default)]
pub(crate) struct Policies(Mutex<HashMap<String, Parsed>>);

/// A policy's text and what it parsed to.
type Parsed = (Arc<str>, Arc<Policy>);

impl Policies {
    /// The parsed policy of `bucket`, parsing it once per change of its text (the object
    /// layer hands out the same text while the record is unchanged: one pointer compare).
    pub(crate) fn get(&self, bucket: &str, text: &Arc<str>) -> Result<Arc<Policy>, iam::policy::Malformed> {
        if let Ok(cache) = self.0.lock()
            && let Some((seen, parsed)) = cache.get(bucket)
            && (Arc::ptr_eq(seen, text) || **seen == **text)
        {
            return Ok(parsed.clone());
        }
        let parsed = Arc::new(Policy::parse(text, bucket)?);
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(bucket.to_owned(), (text.clone(), parsed.clone()));
        }
        Ok(parsed)
    }

    /// The parsed policy of `bucket`'s record, if it has one that reads.
    fn of(&self, bucket: &BucketRecord) -> Option<Arc<Policy>> {
        self.get(&bucket.name, bucket.policy.as_ref()?).ok()
    }

    /// Forgets `bucket`'s policy (deleted with its bucket).
    pub(crate) fn forget(&self, bucket: &str) {
        if let Ok(mut cache) = self.0.lock() {
            cache.remove(bucket);
        }
    }
}

impl CipherS3 {
    /// The authenticated caller; anonymous requests are refused (operations no policy
    /// can open: ListBuckets, CreateBucket).
    pub(crate) fn caller<T>(&self, req: &S3Request<T>) -> S3Result<Arc<Principal>> {
        self.requester(req)?.ok_or_else(|| s3_error!(AccessDenied, "anonymous requests are not allowed"))
    }

    /// The user who signed the request, or `None` for an anonymous one.
    pub(crate) fn requester<T>(&self, req: &S3Request<T>) -> S3Result<Option<Arc<Principal>>> {
        let access_key = match (&req.credentials, req.extensions.get::<lenient_range::Forwarded>()) {
            (Some(c), _) => c.access_key.as_str(),
            // Authenticated by the outer service before it forwarded the request.
            (None, Some(lenient_range::Forwarded(Some(k)))) => k.as_str(),
            _ => return Ok(None),
        };
        match &self.identities {
            // Checked again after the signature: a key disabled in between is refused.
            Some(ids) => ids.snapshot().principal(access_key, now_unix()).map(Some).ok_or_else(|| {
                s3_error!(InvalidAccessKeyId, "the access key is unknown, disabled or expired")
            }),
            None => Ok(Some(Arc::new(Principal {
                user: access_key.to_owned(),
                canonical_id: access_key.to_owned(),
                display_name: access_key.to_owned(),
                create_buckets: true,
                grants: Default::default(),
            }))),
        }
    }

    /// Who asks and the bucket's record, for a request its caller may make; AccessDenied
    /// otherwise. Every bucket and object operation asks this first: the one place that
    /// decides who may act on a bucket.
    pub(crate) async fn admit<T: OnBucket>(&self, req: &S3Request<T>) -> S3Result<(Asker, BucketRecord)> {
        let mut asker = Asker::new(self.requester(req)?);
        let bucket = self.objects.bucket(req.input.bucket()).await.map_err(error::object)?;
        self.gather(&mut asker, req, &bucket);
        self.permits(&mut asker, &bucket, req.input.object(), req.input.op()).await?;
        Ok((asker, bucket))
    }

    /// Who asks and the bucket's record, nothing decided yet: for DeleteObjects, whose
    /// keys are decided one by one ([`CipherS3::permits`]).
    pub(crate) async fn enter<T: OnBucket>(&self, req: &S3Request<T>) -> S3Result<(Asker, BucketRecord)> {
        let mut asker = Asker::new(self.requester(req)?);
        let bucket = self.objects.bucket(req.input.bucket()).await.map_err(error::object)?;
        self.gather(&mut asker, req, &bucket);
        Ok((asker, bucket))
    }

    /// [`CipherS3::admit`], keeping the input.
    pub(crate) async fn owned<T: OnBucket>(&self, req: S3Request<T>) -> S3Result<Owned<T>> {
        let (asker, bucket) = self.admit(&req).await?;
        Ok(Owned { asker, input: req.input, bucket })
    }

    /// The record of another bucket the same request reads (a copy's source), if the
    /// asker may do `op` on `key` (version `version`) in it.
    pub(crate) async fn admit_also<T: OnBucket>(
        &self,
        asker: &mut Asker,
        req: &S3Request<T>,
        bucket: &str,
        object: (&str, Option<&str>),
        op: Op,
    ) -> S3Result<BucketRecord> {
        let record = self.objects.bucket(bucket).await.map_err(error::object)?;
        self.gather(asker, req, &record);
        self.permits(asker, &record, Some(object), op).await?;
        Ok(record)
    }

    /// Gathers the condition keys `bucket`'s policy reads from the request into `asker`.
    fn gather<T: OnBucket>(&self, asker: &mut Asker, req: &S3Request<T>, bucket: &BucketRecord) {
        let Some(policy) = self.policies.of(bucket) else { return };
        if asker.context_mut(&bucket.name).is_none() {
            let mut cx = context(req, asker.caller.as_deref(), &policy);
            req.input.conditions(&mut cx);
            asker.contexts.push((bucket.name.clone(), cx));
        }
    }

    /// Whether `asker` may do `op` on `bucket` (or on the object `object` in it); an
    /// explicit deny or no grant is AccessDenied.
    pub(crate) async fn permits(
        &self,
        asker: &mut Asker,
        bucket: &BucketRecord,
        object: Option<(&str, Option<&str>)>,
        op: Op,
    ) -> S3Result<()> {
        let denied = || s3_error!(AccessDenied, "Access Denied");
        let caller = asker.caller.as_deref();
        let policy = match &bucket.policy {
            None => None,
            Some(text) => match self.policies.get(&bucket.name, text) {
                Ok(p) => Some(p),
                Err(e) => {
                    // Checked when it was put: a stored policy that no longer reads
                    // closes the bucket to all but its owner.
                    tracing::warn!(bucket = %bucket.name, error = %e, "a stored bucket policy does not read; only the owner is let in");
                    if caller.is_some_and(|c| c.canonical_id == bucket.owner) {
                        return Ok(());
                    }
                    return Err(denied());
                }
            },
        };
        let resource = match (&policy, object) {
            (None, _) => String::new(),
            (Some(_), None) => format!("arn:aws:s3:::{}", bucket.name),
            (Some(_), Some((key, _))) => format!("arn:aws:s3:::{}/{key}", bucket.name),
        };
        if let (Some(p), Some((key, version))) = (&policy, object)
            && p.reads_key_prefix("s3:existingobjecttag/")
        {
            let tags = existing_tags(self, &bucket.name, key, version).await;
            if asker.context_mut(&bucket.name).is_none() {
                asker.contexts.push((bucket.name.clone(), Context::new()));
            }
            if let Some(cx) = asker.context_mut(&bucket.name) {
                for (k, v) in tags.pairs() {
                    cx.set(&format!("s3:ExistingObjectTag/{k}"), v.clone());
                }
            }
        }
        let caller = asker.caller.as_deref();
        let empty = Context::new();
        let context = asker.contexts.iter().find(|(b, _)| *b == bucket.name).map_or(&empty, |(_, c)| c);
        let request = Request { caller, action: op.name, resource: &resource, context };
        // The bucket's ACL, where ACLs are on and it decides this action.
        let needed = bucket.acls_on().then(|| iam::acl::needed(op.name)).flatten();
        let bucket_acl = matches!(needed, Some((Level::Bucket, _))).then(|| bucket.acl());
        let mut access = BucketAccess {
            name: &bucket.name,
            owner: &bucket.owner,
            policy: policy.as_deref(),
            restrict_public: bucket.public_access_block.is_some_and(|b| b.restrict_public_buckets),
            acl: bucket_acl.as_ref(),
            ignore_public_acls: bucket.public_access_block.is_some_and(|b| b.ignore_public_acls),
        };
        match iam::decide(&request, op.kind, &access) {
            Ok(_) => Ok(()),
            Err(Denial::ExplicitDeny) => Err(denied()),
            Err(Denial::NotAllowed) => {
                // Reads of an object (and of its ACL) may be granted by the object's own
                // ACL: read only for a request nothing else allowed.
                let (Some((Level::Object, _)), Some((key, version))) = (needed, object) else {
                    return Err(denied());
                };
                let Ok(found) = versioning::open(self, &bucket.name, key, version).await else {
                    return Err(denied());
                };
                let object_acl = found.acl(&bucket.owner);
                access.acl = Some(&object_acl);
                iam::decide(&request, op.kind, &access).map(|_| ()).map_err(|_| denied())
            }
        }
    }

    /// Refuses `x-amz-bypass-governance-retention` from a caller who may not bypass
    /// (`s3:BypassGovernanceRetention`: the owner, a manager, or a policy's grant).
    pub(crate) async fn check_bypass(
        &self,
        asker: &mut Asker,
        bucket: &BucketRecord,
        object: Option<(&str, Option<&str>)>,
        bypass: Option<bool>,
    ) -> S3Result<()> {
        if bypass == Some(true) {
            self.permits(asker, bucket, object, BYPASS).await.map_err(|_| {
                s3_error!(AccessDenied, "bypassing GOVERNANCE retention needs s3:BypassGovernanceRetention (the manager role, ownership or a policy's grant)")
            })?;
        }
        Ok(())
    }
}

/// The tags of the object a request names (none if it does not exist).
async fn existing_tags(s: &CipherS3, bucket: &str, key: &str, version: Option<&str>) -> TagSet {
    match versioning::open(s, bucket, key, version).await {
        Ok(object) => object.tags().clone(),
        Err(_) => TagSet::default(),
    }
}

/// Request headers that are condition keys: (`s3:<header>`, header).
const HEADER_KEYS: &[(&str, &str)] = &[
    ("s3:x-amz-server-side-encryption", "x-amz-server-side-encryption"),
    ("s3:x-amz-server-side-encryption-aws-kms-key-id", "x-amz-server-side-encryption-aws-kms-key-id"),
    ("s3:x-amz-server-side-encryption-customer-algorithm", "x-amz-server-side-encryption-customer-algorithm"),
    ("s3:x-amz-acl", "x-amz-acl"),
    ("s3:x-amz-grant-read", "x-amz-grant-read"),
    ("s3:x-amz-grant-write", "x-amz-grant-write"),
    ("s3:x-amz-grant-read-acp", "x-amz-grant-read-acp"),
    ("s3:x-amz-grant-write-acp", "x-amz-grant-write-acp"),
    ("s3:x-amz-grant-full-control", "x-amz-grant-full-control"),
    ("s3:x-amz-copy-source", "x-amz-copy-source"),
    ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
    ("s3:x-amz-storage-class", "x-amz-storage-class"),
    ("s3:x-amz-content-sha256", "x-amz-content-sha256"),
    ("s3:x-amz-object-ownership", "x-amz-object-ownership"),
];

/// The condition keys of a request that `policy` reads: who and from where, when, its
/// headers and query. Only the keys its conditions name are looked at (one pass over
/// them): a policy without conditions costs a request no allocation here.
fn context<T>(req: &S3Request<T>, caller: Option<&Principal>, policy: &Policy) -> Context {
    let mut cx = Context::new();
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let origin = req.extensions.get::<Origin>();
    let signed_in_query = || req.uri.query().is_some_and(|q| q.contains("X-Amz-Signature="));
    let signed = || req.headers.contains_key(http::header::AUTHORIZATION) || signed_in_query();
    let mut tags_done = false;
    for key in policy.keys() {
        match key {
            "aws:currenttime" => cx.set(key, rfc3339(now_unix())),
            "aws:epochtime" => cx.set(key, now_unix().to_string()),
            "aws:principaltype" => cx.set(key, if caller.is_some() { "User" } else { "Anonymous" }),
            "aws:username" => caller.iter().for_each(|c| cx.set(key, c.user.clone())),
            "aws:userid" => caller.iter().for_each(|c| cx.set(key, c.canonical_id.clone())),
            "aws:sourceip" => origin.iter().for_each(|o| cx.set(key, o.ip.to_string())),
            "aws:securetransport" => {
                origin.iter().for_each(|o| cx.set(key, if o.secure { "true" } else { "false" }))
            }
            "aws:useragent" => header("user-agent").iter().for_each(|v| cx.set(key, *v)),
            "aws:referer" => header("referer").iter().for_each(|v| cx.set(key, *v)),
            "s3:object-lock-mode" => header("x-amz-object-lock-mode").iter().for_each(|v| cx.set(key, *v)),
            "s3:object-lock-legal-hold" => {
                header("x-amz-object-lock-legal-hold").iter().for_each(|v| cx.set(key, *v))
            }
            "s3:object-lock-retain-until-date" | "s3:object-lock-remaining-retention-days" => {
                if let Some(until) = header("x-amz-object-lock-retain-until-date") {
                    retention_keys(&mut cx, until, iam::policy::date_of(until));
                }
            }
            "s3:authtype" if signed() => {
                cx.set(key, if signed_in_query() { "REST-QUERY-STRING" } else { "REST-HEADER" })
            }
            "s3:signatureversion" if signed() => cx.set(key, "AWS4-HMAC-SHA256"),
            "s3:versionid" => {
                let asked = req.uri.query().and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "versionId")
                        .map(|(_, v)| v.into_owned())
                });
                asked.into_iter().for_each(|v| cx.set(key, v));
            }
            k if k.starts_with("s3:requestobjecttag") => {
                if !tags_done
                    && let Some(tags) = header("x-amz-tagging").and_then(|q| TagSet::from_query(q).ok())
                {
                    request_tags(&mut cx, &tags);
                }
                tags_done = true;
            }
            k => {
                if let Some((_, name)) = HEADER_KEYS.iter().find(|(hk, _)| *hk == k)
                    && let Some(v) = header(name)
                {
                    cx.set(key, v.trim());
                }
            }
        }
    }
    cx
}

/// `s3:object-lock-retain-until-date` and the days it leaves.
fn retention_keys(cx: &mut Context, until: &str, at: Option<i64>) {
    cx.set("s3:object-lock-retain-until-date", until);
    if let Some(at) = at {
        let left = at.saturating_sub(now_unix() as i64).max(0);
        cx.set("s3:object-lock-remaining-retention-days", (left.saturating_add(86_399) / 86_400).to_string());
    }
}

fn request_tags(cx: &mut Context, tags: &TagSet) {
    for (k, v) in tags.pairs() {
        cx.set(&format!("s3:RequestObjectTag/{k}"), v.clone());
    }
    cx.set_all("s3:RequestObjectTagKeys", tags.pairs().iter().map(|(k, _)| k.clone()).collect());
}

/// An s3s input that names the bucket it acts on (and the object, if any), the S3
/// action it is, and any condition keys only its parsed body holds.
pub(crate) trait OnBucket {
    /// The bucket's name.
    fn bucket(&self) -> &str;
    /// The object's key and version, for object operations.
    fn object(&self) -> Option<(&str, Option<&str>)> {
        None
    }
    /// The action.
    fn op(&self) -> Op;
    /// Adds condition keys read from the parsed input.
    fn conditions(&self, _cx: &mut Context) {}
}

macro_rules! on_bucket {
    ($($input:ty => $kind:ident $name:literal $(with $keys:ident)?),* $(,)?) => {
        $(impl OnBucket for $input {
            fn bucket(&self) -> &str {
                &self.bucket
            }
            fn op(&self) -> Op {
                Op { name: $name, kind: Action::$kind }
            }
            $(fn conditions(&self, cx: &mut Context) {
                $keys(self, cx)
            })?
        })*
    };
}

/// Object operations: `=> Kind "s3:Name"`, or `"s3:Name" / "s3:NameVersion"` for those
/// that name a version; `with f`: condition keys from the parsed input.
macro_rules! on_object {
    ($($input:ty => $kind:ident $name:literal $(/ $versioned:literal)? $(with $keys:ident)?),* $(,)?) => {
        $(impl OnBucket for $input {
            fn bucket(&self) -> &str {
                &self.bucket
            }
            fn object(&self) -> Option<(&str, Option<&str>)> {
                Some((&self.key, on_object!(@version self $(, $versioned)?)))
            }
            fn op(&self) -> Op {
                on_object!(@op self $kind $name $(, $versioned)?)
            }
            $(fn conditions(&self, cx: &mut Context) {
                $keys(self, cx)
            })?
        })*
    };
    (@version $self:ident) => { None };
    (@version $self:ident, $v:literal) => { $self.version_id.as_deref() };
    (@op $self:ident $kind:ident $name:literal) => { Op { name: $name, kind: Action::$kind } };
    (@op $self:ident $kind:ident $name:literal, $v:literal) => {
        Op { name: if $self.version_id.is_some() { $v } else { $name }, kind: Action::$kind }
    };
}

fn retention_asked(input: &PutObjectRetentionInput, cx: &mut Context) {
    if let Some(r) = &input.retention {
        if let Some(m) = &r.mode {
            cx.set("s3:object-lock-mode", m.as_str());
        }
        if let Some(until) = &r.retain_until_date {
            let s = object_lock::millis(until) / 1000;
            retention_keys(cx, &rfc3339(s), Some(s as i64));
        }
    }
}

fn legal_hold_asked(input: &PutObjectLegalHoldInput, cx: &mut Context) {
    if let Some(s) = input.legal_hold.as_ref().and_then(|h| h.status.as_ref()) {
        cx.set("s3:object-lock-legal-hold", s.as_str());
    }
}

fn tags_asked(input: &PutObjectTaggingInput, cx: &mut Context) {
    let pairs = input
        .tagging
        .tag_set
        .iter()
        .map(|t| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default()))
        .collect();
    if let Ok(tags) = TagSet::new(pairs) {
        request_tags(cx, &tags);
    }
}

fn list_asked(i: &ListObjectsInput, cx: &mut Context) {
    list_keys(cx, i.prefix.as_deref(), i.max_keys, i.delimiter.as_deref());
}

fn list_v2_asked(i: &ListObjectsV2Input, cx: &mut Context) {
    list_keys(cx, i.prefix.as_deref(), i.max_keys, i.delimiter.as_deref());
}

fn list_versions_asked(i: &ListObjectVersionsInput, cx: &mut Context) {
    list_keys(cx, i.prefix.as_deref(), i.max_keys, i.delimiter.as_deref());
}

fn list_uploads_asked(i: &ListMultipartUploadsInput, cx: &mut Context) {
    list_keys(cx, i.prefix.as_deref(), i.max_uploads, i.delimiter.as_deref());
}

/// `s3:prefix` (empty when none is asked, as AWS), `s3:max-keys`, `s3:delimiter`.
fn list_keys(cx: &mut Context, prefix: Option<&str>, max: Option<i32>, delimiter: Option<&str>) {
    cx.set("s3:prefix", prefix.unwrap_or_default());
    if let Some(m) = max {
        cx.set("s3:max-keys", m.to_string());
    }
    if let Some(d) = delimiter {
        cx.set("s3:delimiter", d);
    }
}

on_bucket!(
    DeleteBucketEncryptionInput => Configure "s3:PutEncryptionConfiguration",
    DeleteBucketInput => DeleteBucket "s3:DeleteBucket",
    DeleteBucketLifecycleInput => Configure "s3:PutLifecycleConfiguration",
    DeleteBucketPolicyInput => Configure "s3:DeleteBucketPolicy",
    DeletePublicAccessBlockInput => Configure "s3:PutBucketPublicAccessBlock",
    GetBucketEncryptionInput => ReadSettings "s3:GetEncryptionConfiguration",
    GetBucketLifecycleConfigurationInput => ReadSettings "s3:GetLifecycleConfiguration",
    GetBucketPolicyInput => Configure "s3:GetBucketPolicy",
    GetBucketPolicyStatusInput => ReadSettings "s3:GetBucketPolicyStatus",
    GetBucketVersioningInput => ReadSettings "s3:GetBucketVersioning",
    GetObjectLockConfigurationInput => ReadSettings "s3:GetBucketObjectLockConfiguration",
    GetPublicAccessBlockInput => ReadSettings "s3:GetBucketPublicAccessBlock",
    HeadBucketInput => List "s3:ListBucket",
    ListMultipartUploadsInput => List "s3:ListBucketMultipartUploads" with list_uploads_asked,
    ListObjectVersionsInput => List "s3:ListBucketVersions" with list_versions_asked,
    ListObjectsInput => List "s3:ListBucket" with list_asked,
    ListObjectsV2Input => List "s3:ListBucket" with list_v2_asked,
    PutBucketEncryptionInput => Configure "s3:PutEncryptionConfiguration",
    PutBucketLifecycleConfigurationInput => Configure "s3:PutLifecycleConfiguration",
    PutBucketPolicyInput => Configure "s3:PutBucketPolicy",
    PutBucketVersioningInput => Configure "s3:PutBucketVersioning",
    PutObjectLockConfigurationInput => Configure "s3:PutBucketObjectLockConfiguration",
    PutPublicAccessBlockInput => Configure "s3:PutBucketPublicAccessBlock",
    GetBucketAclInput => ReadSettings "s3:GetBucketAcl",
    PutBucketAclInput => Configure "s3:PutBucketAcl",
    GetBucketOwnershipControlsInput => ReadSettings "s3:GetBucketOwnershipControls",
    PutBucketOwnershipControlsInput => Configure "s3:PutBucketOwnershipControls",
    DeleteBucketOwnershipControlsInput => Configure "s3:PutBucketOwnershipControls",
);

on_object!(
    AbortMultipartUploadInput => Write "s3:AbortMultipartUpload",
    CompleteMultipartUploadInput => Write "s3:PutObject",
    CopyObjectInput => Write "s3:PutObject",
    CreateMultipartUploadInput => Write "s3:PutObject",
    DeleteObjectInput => Delete "s3:DeleteObject" / "s3:DeleteObjectVersion",
    DeleteObjectTaggingInput => Write "s3:DeleteObjectTagging" / "s3:DeleteObjectVersionTagging",
    GetObjectInput => Read "s3:GetObject" / "s3:GetObjectVersion",
    GetObjectAclInput => Read "s3:GetObjectAcl" / "s3:GetObjectVersionAcl",
    PutObjectAclInput => Configure "s3:PutObjectAcl" / "s3:PutObjectVersionAcl",
    GetObjectLegalHoldInput => Read "s3:GetObjectLegalHold" / "s3:GetObjectLegalHold",
    GetObjectRetentionInput => Read "s3:GetObjectRetention" / "s3:GetObjectRetention",
    GetObjectTaggingInput => Read "s3:GetObjectTagging" / "s3:GetObjectVersionTagging",
    HeadObjectInput => Read "s3:GetObject" / "s3:GetObjectVersion",
    ListPartsInput => List "s3:ListMultipartUploadParts",
    PutObjectInput => Write "s3:PutObject",
    PutObjectLegalHoldInput => Write "s3:PutObjectLegalHold" / "s3:PutObjectLegalHold" with legal_hold_asked,
    PutObjectRetentionInput => Write "s3:PutObjectRetention" / "s3:PutObjectRetention" with retention_asked,
    PutObjectTaggingInput => Write "s3:PutObjectTagging" / "s3:PutObjectVersionTagging" with tags_asked,
    UploadPartCopyInput => Write "s3:PutObject",
    UploadPartInput => Write "s3:PutObject",
);

/// DeleteObjects: the bucket only; each key is decided as a DeleteObject of its own.
impl OnBucket for DeleteObjectsInput {
    fn bucket(&self) -> &str {
        &self.bucket
    }
    fn op(&self) -> Op {
        delete_op(None)
    }
}

/// The action of reading a copy's source (`s3:GetObject`, or `s3:GetObjectVersion`).
pub(crate) fn read_op(version: Option<&str>) -> Op {
    Op { name: if version.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" }, kind: Action::Read }
}

/// The action of deleting one key of a DeleteObjects.
pub(crate) fn delete_op(version: Option<&str>) -> Op {
    Op {
        name: if version.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" },
        kind: Action::Delete,
    }
}

/// s3s's access hook: lets unsigned (anonymous) requests through to the handlers, where
/// [`CipherS3::admit`] decides them like any other (a bucket policy may open a bucket or a
/// prefix to anyone); signed requests were already authenticated by then.
pub struct AnonymousToHandlers;

#[async_trait::async_trait]
impl s3s::access::S3Access for AnonymousToHandlers {
    async fn check(&self, _cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        Ok(())
    }
}
