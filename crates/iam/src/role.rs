//! What a caller may be allowed to do on a bucket: the kinds of S3 operation
//! ([`Action`]) and the roles granted on a bucket ([`Role`], IBM COS's reader, writer and
//! manager), with the one table that says which role allows which action.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of S3 operation on a bucket or its objects. Each S3 operation names exactly
/// one (the S3 layer keeps that table, one line per operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// HeadBucket, ListObjects(V2), ListObjectVersions, ListMultipartUploads, ListParts.
    List,
    /// GetObject, HeadObject, the object's tags, retention and legal hold; a copy's source.
    Read,
    /// Reading a bucket's settings: versioning, encryption, lifecycle, Object Lock.
    ReadSettings,
    /// PutObject, CopyObject's target, multipart uploads, object tags, retention, legal
    /// hold.
    Write,
    /// DeleteObject, DeleteObjects.
    Delete,
    /// Changing a bucket's settings: versioning, encryption, lifecycle, Object Lock.
    Configure,
    /// DeleteBucket.
    DeleteBucket,
    /// Sending `x-amz-bypass-governance-retention` (Object Lock's GOVERNANCE bypass).
    BypassGovernance,
}

impl Action {
    /// Every action, for tables and tests.
    pub const ALL: [Action; 8] = [
        Action::List,
        Action::Read,
        Action::ReadSettings,
        Action::Write,
        Action::Delete,
        Action::Configure,
        Action::DeleteBucket,
        Action::BypassGovernance,
    ];

    /// Its name in messages and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Read => "read",
            Action::ReadSettings => "read-settings",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::Configure => "configure",
            Action::DeleteBucket => "delete-bucket",
            Action::BypassGovernance => "bypass-governance",
        }
    }
}

/// A role granted to a user on one bucket. Each role allows what the one before it does,
/// and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Lists and reads objects and the bucket's settings.
    Reader,
    /// Also writes, overwrites and deletes objects.
    Writer,
    /// Also changes the bucket's settings, deletes the bucket and may bypass GOVERNANCE
    /// retention.
    Manager,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Reader, Role::Writer, Role::Manager];

    /// Whether this role allows `action`: the access table (docs/ACCESS.md).
    pub fn allows(self, action: Action) -> bool {
        let least = match action {
            Action::List | Action::Read | Action::ReadSettings => Role::Reader,
            Action::Write | Action::Delete => Role::Writer,
            Action::Configure | Action::DeleteBucket | Action::BypassGovernance => Role::Manager,
        };
        self >= least
    }

    /// Its name, as `iam grant --role` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Manager => "manager",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of reader, writer, manager.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected reader, writer or manager")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownRole(s.chars().take(32).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The access table, cell by cell: role x action.
    #[test]
    fn each_role_allows_exactly_its_actions() {
        use Action::*;
        let table: [(Action, [bool; 3]); 8] = [
            //                  reader writer manager
            (List, [true, true, true]),
            (Read, [true, true, true]),
            (ReadSettings, [true, true, true]),
            (Write, [false, true, true]),
            (Delete, [false, true, true]),
            (Configure, [false, false, true]),
            (DeleteBucket, [false, false, true]),
            (BypassGovernance, [false, false, true]),
        ];
        assert_eq!(table.len(), Action::ALL.len());
        for (action, allowed) in table {
            for (role, want) in Role::ALL.into_iter().zip(allowed) {
                assert_eq!(role.allows(action), want, "{role} {}", action.as_str());
            }
        }
    }

    #[test]
    fn roles_parse_by_name_and_refuse_others() {
        assert_eq!("reader".parse::<Role>(), Ok(Role::Reader));
        assert_eq!("Manager".parse::<Role>(), Ok(Role::Manager));
        assert_eq!("owner".parse::<Role>(), Err(UnknownRole("owner".into())));
        for r in Role::ALL {
            assert_eq!(r.to_string().parse::<Role>(), Ok(r));
        }
    }
}
