//! The S3 action names a bucket policy may name (`s3:GetObject`, ...), and whether each
//! acts on a bucket or on objects, so a statement whose actions apply to none of its
//! resources is refused as AWS refuses it. The list is AWS's, operations this store does
//! not serve included: a policy written for AWS is accepted here unchanged.

/// What an action acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The bucket (`arn:aws:s3:::bucket`).
    Bucket,
    /// Objects in it (`arn:aws:s3:::bucket/key`).
    Object,
}

const OBJECT: &[&str] = &[
    "AbortMultipartUpload",
    "BypassGovernanceRetention",
    "DeleteObject",
    "DeleteObjectTagging",
    "DeleteObjectVersion",
    "DeleteObjectVersionTagging",
    "GetObject",
    "GetObjectAcl",
    "GetObjectAttributes",
    "GetObjectLegalHold",
    "GetObjectRetention",
    "GetObjectTagging",
    "GetObjectTorrent",
    "GetObjectVersion",
    "GetObjectVersionAcl",
    "GetObjectVersionAttributes",
    "GetObjectVersionForReplication",
    "GetObjectVersionTagging",
    "GetObjectVersionTorrent",
    "ListMultipartUploadParts",
    "ObjectOwnerOverrideToBucketOwner",
    "PutObject",
    "PutObjectAcl",
    "PutObjectLegalHold",
    "PutObjectRetention",
    "PutObjectTagging",
    "PutObjectVersionAcl",
    "PutObjectVersionTagging",
    "ReplicateDelete",
    "ReplicateObject",
    "ReplicateTags",
    "RestoreObject",
];

const BUCKET: &[&str] = &[
    "CreateBucket",
    "DeleteBucket",
    "DeleteBucketOwnershipControls",
    "DeleteBucketPolicy",
    "DeleteBucketWebsite",
    "GetAccelerateConfiguration",
    "GetAnalyticsConfiguration",
    "GetBucketAcl",
    "GetBucketCORS",
    "GetBucketLocation",
    "GetBucketLogging",
    "GetBucketNotification",
    "GetBucketObjectLockConfiguration",
    "GetBucketOwnershipControls",
    "GetBucketPolicy",
    "GetBucketPolicyStatus",
    "GetBucketPublicAccessBlock",
    "GetBucketRequestPayment",
    "GetBucketTagging",
    "GetBucketVersioning",
    "GetBucketWebsite",
    "GetEncryptionConfiguration",
    "GetIntelligentTieringConfiguration",
    "GetInventoryConfiguration",
    "GetLifecycleConfiguration",
    "GetMetricsConfiguration",
    "GetReplicationConfiguration",
    "ListBucket",
    "ListBucketMultipartUploads",
    "ListBucketVersions",
    "PutAccelerateConfiguration",
    "PutAnalyticsConfiguration",
    "PutBucketAcl",
    "PutBucketCORS",
    "PutBucketLogging",
    "PutBucketNotification",
    "PutBucketObjectLockConfiguration",
    "PutBucketOwnershipControls",
    "PutBucketPolicy",
    "PutBucketPublicAccessBlock",
    "PutBucketRequestPayment",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutBucketWebsite",
    "PutEncryptionConfiguration",
    "PutIntelligentTieringConfiguration",
    "PutInventoryConfiguration",
    "PutLifecycleConfiguration",
    "PutMetricsConfiguration",
    "PutReplicationConfiguration",
];

/// What the S3 action `name` (without `s3:`, any case) acts on; `None`: no such
/// action, or one that acts on neither (`ListAllMyBuckets`).
pub(crate) fn target(name: &str) -> Option<Target> {
    let known = |list: &[&str]| list.iter().any(|a| a.eq_ignore_ascii_case(name));
    if known(OBJECT) {
        Some(Target::Object)
    } else if known(BUCKET) {
        Some(Target::Bucket)
    } else {
        None
    }
}

/// Whether `name` (without `s3:`) is an S3 action at all, including those acting on no
/// bucket.
pub(crate) fn exists(name: &str) -> bool {
    target(name).is_some()
        || ["ListAllMyBuckets", "GetAccountPublicAccessBlock", "PutAccountPublicAccessBlock"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_known_by_name_in_any_case() {
        assert_eq!(target("GetObject"), Some(Target::Object));
        assert_eq!(target("getobject"), Some(Target::Object));
        assert_eq!(target("ListBucket"), Some(Target::Bucket));
        assert_eq!(target("ListAllMyBuckets"), None);
        assert!(exists("ListAllMyBuckets"));
        assert!(!exists("GetObjekt"));
    }
}
