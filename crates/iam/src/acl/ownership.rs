//! Object ownership controls: who owns the objects written into a bucket and whether its
//! ACLs count. BucketOwnerEnforced (AWS's default for new buckets since 2023, and this
//! store's for every bucket until told otherwise) turns ACLs off: the bucket's owner owns
//! everything, access comes from ownership, roles and policies only.

use serde::{Deserialize, Serialize};

use super::AclError;

/// A bucket's object ownership setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ownership {
    /// ACLs are off; the bucket's owner owns every object.
    #[default]
    BucketOwnerEnforced,
    /// ACLs count; an object written with `bucket-owner-full-control` is the bucket
    /// owner's, any other its writer's.
    BucketOwnerPreferred,
    /// ACLs count; an object is its writer's.
    ObjectWriter,
}

impl Ownership {
    /// The name S3 gives it.
    pub fn as_s3(self) -> &'static str {
        match self {
            Self::BucketOwnerEnforced => "BucketOwnerEnforced",
            Self::BucketOwnerPreferred => "BucketOwnerPreferred",
            Self::ObjectWriter => "ObjectWriter",
        }
    }

    /// The setting S3 names `name`.
    pub fn from_s3(name: &str) -> Result<Self, AclError> {
        match name {
            "BucketOwnerEnforced" => Ok(Self::BucketOwnerEnforced),
            "BucketOwnerPreferred" => Ok(Self::BucketOwnerPreferred),
            "ObjectWriter" => Ok(Self::ObjectWriter),
            other => Err(AclError::Malformed(format!(
                "unknown object ownership {other:?}: BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter"
            ))),
        }
    }

    /// Whether ACLs count in this bucket.
    pub fn acls_enabled(self) -> bool {
        self != Self::BucketOwnerEnforced
    }

    /// The owner of an object `writer` writes into a bucket owned by `bucket_owner`;
    /// `full_control_to_bucket_owner`: the write carried `bucket-owner-full-control`.
    pub fn object_owner<'a>(
        self,
        writer: &'a str,
        bucket_owner: &'a str,
        full_control_to_bucket_owner: bool,
    ) -> &'a str {
        match self {
            Self::BucketOwnerEnforced => bucket_owner,
            Self::BucketOwnerPreferred if full_control_to_bucket_owner => bucket_owner,
            Self::BucketOwnerPreferred | Self::ObjectWriter => writer,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    #[test]
    fn ownership_decides_who_owns_a_written_object() {
        use Ownership::*;
        assert_eq!(BucketOwnerEnforced.object_owner("w", "b", false), "b");
        assert_eq!(BucketOwnerPreferred.object_owner("w", "b", false), "w");
        assert_eq!(BucketOwnerPreferred.object_owner("w", "b", true), "b");
        assert_eq!(ObjectWriter.object_owner("w", "b", true), "w");
        assert!(!BucketOwnerEnforced.acls_enabled() && ObjectWriter.acls_enabled());
        for o in [BucketOwnerEnforced, BucketOwnerPreferred, ObjectWriter] {
            assert_eq!(Ownership::from_s3(o.as_s3()).unwrap(), o);
        }
        assert!(Ownership::from_s3("bucketownerenforced").is_err());
        assert_eq!(Ownership::default(), BucketOwnerEnforced);
    }
}
