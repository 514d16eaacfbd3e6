//! Access control lists as AWS has them: grants ([`Acl`]), canned lists ([`Canned`]),
//! the grant headers ([`headers`]), object ownership controls ([`Ownership`]), and how a
//! request's ACL is made from what it sent ([`Asked`], [`make`]) under a bucket's rules.

mod canned;
mod grants;
pub mod headers;
mod ownership;

pub use canned::Canned;
pub use grants::{
    ALL_USERS_URI, AUTHENTICATED_USERS_URI, Acl, Grant, Grantee, Level, MAX_GRANTS, Permission, needed,
};
pub use ownership::Ownership;

use headers::Named;

/// Why an ACL a request asked for is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A canned name, grant header or grant that is not well formed (400).
    #[error("{0}")]
    Malformed(String),
    /// Well formed, but naming what this store does not have (400 InvalidArgument).
    #[error("{0}")]
    Unsupported(String),
    /// No user has this email address (400 UnresolvableGrantByEmailAddress).
    #[error("no user has the email address {0:?}")]
    UnknownEmail(String),
    /// No user has this canonical id (400 InvalidArgument).
    #[error("no user has the canonical id {0:?}")]
    UnknownId(String),
    /// A canned ACL and grant headers together (400 InvalidRequest).
    #[error("a canned ACL (x-amz-acl) and x-amz-grant-* headers cannot be combined")]
    Both,
    /// The bucket's ACLs are off (BucketOwnerEnforced) and the list is not the owner's
    /// alone (400 AccessControlListNotSupported).
    #[error("the bucket does not allow ACLs (its object ownership is BucketOwnerEnforced)")]
    Disabled,
    /// The list is public and the bucket's public access block has BlockPublicAcls
    /// (403 AccessDenied).
    #[error("the ACL grants public access and the bucket's public access block has BlockPublicAcls")]
    PublicBlocked,
}

/// What a request said about the ACL it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Nothing: the default (private, or for PutBucketAcl/PutObjectAcl, a body).
    Nothing,
    /// `x-amz-acl`.
    Canned(Canned),
    /// `x-amz-grant-*` headers, or the grants of an AccessControlPolicy body.
    Grants(Vec<(Named, Permission)>),
}

impl Asked {
    /// What `x-amz-acl` (`canned`) and the grant headers (`grants`: header name and
    /// value, any order, repeated names allowed) ask for.
    pub fn from_headers<'a>(
        canned: Option<&str>,
        grants: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, AclError> {
        let mut named = Vec::new();
        for (header, value) in grants {
            let Some((_, permission)) =
                headers::GRANT_HEADERS.iter().find(|(h, _)| h.eq_ignore_ascii_case(header))
            else {
                continue;
            };
            for n in headers::parse(header, value)? {
                named.push((n, *permission));
            }
        }
        match (canned, named.is_empty()) {
            (Some(_), false) => Err(AclError::Both),
            (Some(c), true) => Ok(Self::Canned(Canned::parse(c)?)),
            (None, false) => Ok(Self::Grants(named)),
            (None, true) => Ok(Self::Nothing),
        }
    }
}

/// How [`make`] learns about users and the bucket.
pub struct Rules<'a> {
    /// Who will own what the ACL is on.
    pub owner: &'a str,
    /// The bucket's owner.
    pub bucket_owner: &'a str,
    /// The bucket's object ownership.
    pub ownership: Ownership,
    /// The bucket's public access block's BlockPublicAcls.
    pub block_public: bool,
    /// The canonical id of the user with an email address.
    pub email: &'a dyn Fn(&str) -> Option<String>,
    /// Whether a user has a canonical id.
    pub known: &'a dyn Fn(&str) -> bool,
}

/// The ACL `asked` makes under `rules`, checked: every grantee a known user or group,
/// emails resolved to canonical ids, at most [`MAX_GRANTS`] grants; refused when the
/// bucket's ACLs are off and the list is more than the owner's, or public while
/// BlockPublicAcls is on.
pub fn make(asked: Asked, rules: &Rules<'_>) -> Result<Acl, AclError> {
    if !rules.ownership.acls_enabled() {
        // ACLs off: the bucket owner in full, and only what says no more is accepted.
        let fits = match &asked {
            Asked::Nothing => true,
            Asked::Canned(c) => c.fits_owner_enforced(),
            Asked::Grants(named) => named.iter().all(|(n, p)| {
                *p == Permission::FullControl
                    && matches!(n, Named::Grantee(Grantee::Id(id)) if id == rules.bucket_owner)
            }),
        };
        return if fits { Ok(Acl::private(rules.bucket_owner)) } else { Err(AclError::Disabled) };
    }
    let acl = match asked {
        Asked::Nothing => Acl::private(rules.owner),
        Asked::Canned(c) => c.acl(rules.owner, rules.bucket_owner),
        Asked::Grants(named) => {
            let mut grants = Vec::with_capacity(named.len());
            for (n, permission) in named {
                let grantee = match n {
                    Named::Grantee(Grantee::Id(id)) if !(rules.known)(&id) => {
                        return Err(AclError::UnknownId(id));
                    }
                    Named::Grantee(g) => g,
                    Named::Email(e) => Grantee::Id((rules.email)(&e).ok_or(AclError::UnknownEmail(e))?),
                };
                grants.push(Grant { grantee, permission });
            }
            Acl { owner: rules.owner.to_owned(), grants }.checked()?
        }
    };
    if acl.is_public() && rules.block_public {
        return Err(AclError::PublicBlocked);
    }
    Ok(acl)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    fn rules(ownership: Ownership, block_public: bool) -> Rules<'static> {
        Rules {
            owner: "w",
            bucket_owner: "b",
            ownership,
            block_public,
            email: &|e| (e == "x@example.com").then(|| "x".to_owned()),
            known: &|id| ["w", "b", "x"].contains(&id),
        }
    }

    fn headers(canned: Option<&str>, grants: &[(&str, &str)]) -> Result<Asked, AclError> {
        Asked::from_headers(canned, grants.iter().copied())
    }

    #[test]
    fn requests_make_the_lists_they_ask_for_under_the_bucket_rules() {
        use Ownership::*;
        let writer = rules(ObjectWriter, false);
        let acl =
            make(headers(None, &[("x-amz-grant-read", "emailAddress=\"x@example.com\"")]).unwrap(), &writer)
                .unwrap();
        assert_eq!(acl.owner, "w");
        assert!(
            acl.allows(Some("x"), Permission::Read, false) && !acl.allows(Some("w"), Permission::Read, false)
        );
        let acl = make(headers(Some("public-read"), &[]).unwrap(), &writer).unwrap();
        assert!(acl.is_public() && acl.allows(Some("w"), Permission::FullControl, false));
        assert_eq!(make(Asked::Nothing, &writer).unwrap(), Acl::private("w"));

        // Refusals, each named.
        let cells: Vec<(Result<Asked, AclError>, Rules<'_>, AclError)> = vec![
            (headers(Some("public-read"), &[]), rules(BucketOwnerEnforced, false), AclError::Disabled),
            (headers(Some("public-read"), &[]), rules(ObjectWriter, true), AclError::PublicBlocked),
            (
                headers(
                    None,
                    &[("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")],
                ),
                rules(BucketOwnerPreferred, true),
                AclError::PublicBlocked,
            ),
            (
                headers(None, &[("x-amz-grant-read", "id=\"b\"")]),
                rules(BucketOwnerEnforced, false),
                AclError::Disabled,
            ),
            (
                headers(None, &[("x-amz-grant-read", "emailAddress=\"nobody@example.com\"")]),
                rules(ObjectWriter, false),
                AclError::UnknownEmail("nobody@example.com".into()),
            ),
            (
                headers(None, &[("x-amz-grant-write-acp", "id=\"ghost\"")]),
                rules(ObjectWriter, false),
                AclError::UnknownId("ghost".into()),
            ),
        ];
        for (i, (asked, rules, want)) in cells.into_iter().enumerate() {
            assert_eq!(make(asked.unwrap(), &rules), Err(want), "cell {i}");
        }
        assert_eq!(headers(Some("private"), &[("x-amz-grant-read", "id=\"b\"")]), Err(AclError::Both));
        assert_eq!(headers(None, &[("x-amz-meta-a", "b")]), Ok(Asked::Nothing));
    }

    #[test]
    fn with_acls_off_only_the_bucket_owner_in_full_is_kept() {
        let off = rules(Ownership::BucketOwnerEnforced, true);
        for canned in ["private", "bucket-owner-full-control"] {
            assert_eq!(make(headers(Some(canned), &[]).unwrap(), &off), Ok(Acl::private("b")), "{canned}");
        }
        let full = headers(None, &[("x-amz-grant-full-control", "id=\"b\"")]).unwrap();
        assert_eq!(make(full, &off), Ok(Acl::private("b")));
        assert_eq!(make(Asked::Nothing, &off), Ok(Acl::private("b")));
    }
}
