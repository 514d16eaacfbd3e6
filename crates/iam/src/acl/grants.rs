//! An access control list as AWS defines it: an owner and grants of five permissions to
//! canonical users and the two global groups; what each permission allows of the S3
//! actions; whether a list is public. Kept in bucket and object records in this form.

use serde::{Deserialize, Serialize};

use super::AclError;

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    /// Everything below.
    FullControl,
    /// A bucket's: list it. An object's: read it.
    Read,
    /// A bucket's: write and delete its objects (objects have none).
    Write,
    /// Read the ACL.
    ReadAcp,
    /// Replace the ACL.
    WriteAcp,
}

impl Permission {
    /// The name S3 gives it (`FULL_CONTROL`, `READ`, ...).
    pub fn as_s3(self) -> &'static str {
        match self {
            Self::FullControl => "FULL_CONTROL",
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::ReadAcp => "READ_ACP",
            Self::WriteAcp => "WRITE_ACP",
        }
    }

    /// The permission S3 names `name`.
    pub fn from_s3(name: &str) -> Result<Self, AclError> {
        Ok(match name {
            "FULL_CONTROL" => Self::FullControl,
            "READ" => Self::Read,
            "WRITE" => Self::Write,
            "READ_ACP" => Self::ReadAcp,
            "WRITE_ACP" => Self::WriteAcp,
            other => return Err(AclError::Malformed(format!("unknown permission {other:?}"))),
        })
    }

    /// Whether a grant of this permission gives `needed`.
    pub fn gives(self, needed: Self) -> bool {
        self == needed || self == Self::FullControl
    }
}

/// The URI of the group of everyone, signed or not.
pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The URI of the group of every signed caller.
pub const AUTHENTICATED_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Who a grant is to. Grants by email are resolved to the user's canonical id when the
/// ACL is set, as AWS does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    /// One user, by canonical id.
    Id(String),
    /// Everyone, anonymous callers included.
    AllUsers,
    /// Every caller who signs with a credential of this store.
    AuthenticatedUsers,
}

impl Grantee {
    /// The group whose URI is `uri`.
    pub fn group(uri: &str) -> Result<Self, AclError> {
        match uri {
            ALL_USERS_URI => Ok(Self::AllUsers),
            AUTHENTICATED_USERS_URI => Ok(Self::AuthenticatedUsers),
            other => Err(AclError::Malformed(format!("unknown grantee group {other:?}"))),
        }
    }

    /// The group's URI (`None` for a user).
    pub fn uri(&self) -> Option<&'static str> {
        match self {
            Self::Id(_) => None,
            Self::AllUsers => Some(ALL_USERS_URI),
            Self::AuthenticatedUsers => Some(AUTHENTICATED_USERS_URI),
        }
    }

    /// Whether the grantee is a group anyone can join (a public grant).
    pub fn is_public(&self) -> bool {
        !matches!(self, Self::Id(_))
    }

    /// Whether `caller` (a canonical id; `None`: anonymous) is this grantee.
    fn covers(&self, caller: Option<&str>) -> bool {
        match self {
            Self::Id(id) => caller == Some(id.as_str()),
            Self::AllUsers => true,
            Self::AuthenticatedUsers => caller.is_some(),
        }
    }
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    /// To whom.
    pub grantee: Grantee,
    /// What.
    pub permission: Permission,
}

/// At most this many grants in one list (AWS's limit).
pub const MAX_GRANTS: usize = 100;

/// An access control list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// The canonical id of the bucket's or object's owner.
    pub owner: String,
    /// The grants, in the order they were given.
    pub grants: Vec<Grant>,
}

impl Acl {
    /// The list every bucket and object has until told otherwise: its owner, in full.
    pub fn private(owner: &str) -> Self {
        Self {
            owner: owner.to_owned(),
            grants: vec![Grant {
                grantee: Grantee::Id(owner.to_owned()),
                permission: Permission::FullControl,
            }],
        }
    }

    /// Checks the list's size; duplicates are dropped (AWS keeps one of each).
    pub fn checked(mut self) -> Result<Self, AclError> {
        let mut seen = std::collections::BTreeSet::new();
        self.grants.retain(|g| seen.insert(g.clone()));
        if self.grants.len() > MAX_GRANTS {
            return Err(AclError::Malformed(format!("{} grants; at most {MAX_GRANTS}", self.grants.len())));
        }
        Ok(self)
    }

    /// Whether any grant is to a public group.
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| g.grantee.is_public())
    }

    /// Whether it grants `caller` (a canonical id; `None`: anonymous) `needed`; grants to
    /// public groups count only unless `ignore_public` (IgnorePublicAcls).
    pub fn allows(&self, caller: Option<&str>, needed: Permission, ignore_public: bool) -> bool {
        self.grants.iter().any(|g| {
            g.permission.gives(needed)
                && g.grantee.covers(caller)
                && !(ignore_public && g.grantee.is_public())
        })
    }

    /// Whether it is exactly the owner in full (what a bucket whose ACLs are disabled may
    /// be given).
    pub fn is_private(&self) -> bool {
        *self == Self::private(&self.owner)
    }
}

/// Which list a request's permission is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The bucket's.
    Bucket,
    /// The object's (the version's).
    Object,
}

/// The ACL permission that allows the S3 action `action` (`s3:GetObject`, ...), and whose
/// list it is in; `None`: no ACL allows it (bucket configuration, policies, tagging, ...).
pub fn needed(action: &str) -> Option<(Level, Permission)> {
    let name = action.strip_prefix("s3:")?;
    Some(match name {
        "ListBucket" | "ListBucketVersions" | "ListBucketMultipartUploads" => {
            (Level::Bucket, Permission::Read)
        }
        "PutObject" | "DeleteObject" | "DeleteObjectVersion" | "AbortMultipartUpload" => {
            (Level::Bucket, Permission::Write)
        }
        "GetBucketAcl" => (Level::Bucket, Permission::ReadAcp),
        "PutBucketAcl" => (Level::Bucket, Permission::WriteAcp),
        "GetObject" | "GetObjectVersion" => (Level::Object, Permission::Read),
        "GetObjectAcl" | "GetObjectVersionAcl" => (Level::Object, Permission::ReadAcp),
        "PutObjectAcl" | "PutObjectVersionAcl" => (Level::Object, Permission::WriteAcp),
        "ListMultipartUploadParts" => (Level::Bucket, Permission::Write),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    fn acl(grants: &[(Grantee, Permission)]) -> Acl {
        Acl {
            owner: "o".into(),
            grants: grants.iter().map(|(g, p)| Grant { grantee: g.clone(), permission: *p }).collect(),
        }
    }

    #[test]
    fn grants_match_their_grantees_and_permissions() {
        let a = acl(&[
            (Grantee::Id("o".into()), Permission::FullControl),
            (Grantee::Id("r".into()), Permission::Read),
            (Grantee::AuthenticatedUsers, Permission::ReadAcp),
            (Grantee::AllUsers, Permission::Write),
        ]);
        use Permission::*;
        // (caller, permission, ignore public) → allowed
        let cells: [(Option<&str>, Permission, bool, bool); 12] = [
            (Some("o"), WriteAcp, false, true),
            (Some("o"), Read, true, true),
            (Some("r"), Read, false, true),
            (Some("r"), WriteAcp, false, false),
            (Some("r"), ReadAcp, false, true),
            (Some("r"), ReadAcp, true, false),
            (None, ReadAcp, false, false),
            (None, Write, false, true),
            (None, Write, true, false),
            (None, Read, false, false),
            (Some("x"), Write, false, true),
            (Some("x"), FullControl, false, false),
        ];
        for (i, (caller, p, ignore, want)) in cells.into_iter().enumerate() {
            assert_eq!(a.allows(caller, p, ignore), want, "cell {i}: {caller:?} {p:?} ignore={ignore}");
        }
        assert!(a.is_public() && !a.is_private());
        assert!(Acl::private("o").is_private() && !Acl::private("o").is_public());
    }

    #[test]
    fn actions_map_to_the_permission_aws_names() {
        assert_eq!(needed("s3:ListBucket"), Some((Level::Bucket, Permission::Read)));
        assert_eq!(needed("s3:PutObject"), Some((Level::Bucket, Permission::Write)));
        assert_eq!(needed("s3:GetObjectVersion"), Some((Level::Object, Permission::Read)));
        assert_eq!(needed("s3:PutObjectAcl"), Some((Level::Object, Permission::WriteAcp)));
        assert_eq!(needed("s3:PutBucketPolicy"), None);
        assert_eq!(needed("s3:PutObjectTagging"), None);
        assert_eq!(needed("GetObject"), None);
    }

    #[test]
    fn duplicates_go_and_the_count_is_bounded() {
        let one = (Grantee::AllUsers, Permission::Read);
        assert_eq!(acl(&[one.clone(), one.clone()]).checked().unwrap().grants.len(), 1);
        let many: Vec<_> =
            (0..=MAX_GRANTS).map(|i| (Grantee::Id(format!("u{i}")), Permission::Read)).collect();
        assert!(acl(&many).checked().is_err());
        for p in ["FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP"] {
            assert_eq!(Permission::from_s3(p).unwrap().as_s3(), p);
        }
        assert!(Permission::from_s3("read").is_err());
        assert!(Grantee::group("http://acs.amazonaws.com/groups/s3/LogDelivery").is_err());
    }
}
