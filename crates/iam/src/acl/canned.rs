//! Canned ACLs (`x-amz-acl`): the names AWS gives to common lists, and the list each
//! makes for a given owner and bucket owner.

use super::AclError;
use super::grants::{Acl, Grant, Grantee, Permission};

/// A canned ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canned {
    /// The owner in full.
    Private,
    /// And everyone reads.
    PublicRead,
    /// And everyone reads and writes (buckets).
    PublicReadWrite,
    /// And every signed caller reads.
    AuthenticatedRead,
    /// An object's: and the bucket's owner reads.
    BucketOwnerRead,
    /// An object's: and the bucket's owner in full.
    BucketOwnerFullControl,
}

impl Canned {
    /// The canned ACL named `name`. AWS's `aws-exec-read` and `log-delivery-write` grant
    /// to AWS services this store does not have: refused, named.
    pub fn parse(name: &str) -> Result<Self, AclError> {
        Ok(match name {
            "private" => Self::Private,
            "public-read" => Self::PublicRead,
            "public-read-write" => Self::PublicReadWrite,
            "authenticated-read" => Self::AuthenticatedRead,
            "bucket-owner-read" => Self::BucketOwnerRead,
            "bucket-owner-full-control" => Self::BucketOwnerFullControl,
            "aws-exec-read" | "log-delivery-write" => {
                return Err(AclError::Unsupported(format!(
                    "the canned ACL {name:?} grants to an AWS service this store does not have"
                )));
            }
            other => return Err(AclError::Malformed(format!("unknown canned ACL {other:?}"))),
        })
    }

    /// The list it makes for something owned by `owner` in a bucket owned by
    /// `bucket_owner`.
    pub fn acl(self, owner: &str, bucket_owner: &str) -> Acl {
        let mut acl = Acl::private(owner);
        let mut grant = |grantee, permission| acl.grants.push(Grant { grantee, permission });
        match self {
            Self::Private => {}
            Self::PublicRead => grant(Grantee::AllUsers, Permission::Read),
            Self::PublicReadWrite => {
                grant(Grantee::AllUsers, Permission::Read);
                grant(Grantee::AllUsers, Permission::Write);
            }
            Self::AuthenticatedRead => grant(Grantee::AuthenticatedUsers, Permission::Read),
            Self::BucketOwnerRead if bucket_owner != owner => {
                grant(Grantee::Id(bucket_owner.to_owned()), Permission::Read)
            }
            Self::BucketOwnerFullControl if bucket_owner != owner => {
                grant(Grantee::Id(bucket_owner.to_owned()), Permission::FullControl)
            }
            Self::BucketOwnerRead | Self::BucketOwnerFullControl => {}
        }
        acl
    }

    /// Whether a bucket whose ACLs are disabled (BucketOwnerEnforced) accepts it: only
    /// those that give the bucket's owner everything, as AWS accepts.
    pub fn fits_owner_enforced(self) -> bool {
        matches!(self, Self::Private | Self::BucketOwnerFullControl)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    #[test]
    fn each_canned_acl_makes_the_grants_aws_lists() {
        let p = |s: &str| Canned::parse(s).unwrap();
        assert!(p("private").acl("w", "b").is_private());
        let public = p("public-read").acl("w", "b");
        assert!(public.is_public() && public.allows(None, Permission::Read, false));
        assert!(!public.allows(None, Permission::Write, false));
        assert!(p("public-read-write").acl("w", "b").allows(None, Permission::Write, false));
        let auth = p("authenticated-read").acl("w", "b");
        assert!(
            auth.allows(Some("x"), Permission::Read, false) && !auth.allows(None, Permission::Read, false)
        );
        let bor = p("bucket-owner-read").acl("w", "b");
        assert!(
            bor.allows(Some("b"), Permission::Read, false)
                && !bor.allows(Some("b"), Permission::ReadAcp, false)
        );
        assert!(p("bucket-owner-full-control").acl("w", "b").allows(Some("b"), Permission::WriteAcp, false));
        assert!(
            p("bucket-owner-full-control").acl("b", "b").is_private(),
            "no second grant to the same owner"
        );
        assert!(matches!(Canned::parse("aws-exec-read"), Err(AclError::Unsupported(_))));
        assert!(matches!(Canned::parse("Private"), Err(AclError::Malformed(_))));
        assert!(p("private").fits_owner_enforced() && !p("public-read").fits_owner_enforced());
    }
}
