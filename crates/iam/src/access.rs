//! The access decision for one request on a bucket, in AWS's order for a caller of the
//! bucket owner's account:
//! 1. a `Deny` in the bucket policy that matches refuses, whoever asks (the owner
//!    excepted for reading, replacing or deleting the policy itself, so no owner is locked
//!    out of their bucket, as AWS excepts the account's root user);
//! 2. the owner may do everything, a user with a role what the role allows;
//! 3. an `Allow` in the bucket policy allows, unless it is public and the bucket's public
//!    access block restricts public policies (then only the statements naming callers
//!    count);
//! 4. a grant of the ACL that applies (the bucket's, or for reads of an object and its
//!    ACL, the object's; only where the bucket's ACLs are on) allows, public grants
//!    ignored under IgnorePublicAcls;
//! 5. anything else is refused.

use super::acl::{self, Acl};
use super::policy::{Policy, Request, Verdict};
use super::role::Action;
use super::snapshot::{Principal, Standing};

/// What the decision needs of the bucket.
#[derive(Debug, Clone, Copy)]
pub struct BucketAccess<'a> {
    /// The bucket's name.
    pub name: &'a str,
    /// Its owner's canonical id.
    pub owner: &'a str,
    /// Its policy, if it has one.
    pub policy: Option<&'a Policy>,
    /// Its public access block's RestrictPublicBuckets.
    pub restrict_public: bool,
    /// The ACL this request is decided under ([`acl::needed`] says whose: the bucket's or
    /// the object's); `None` where the bucket's ACLs are off.
    pub acl: Option<&'a Acl>,
    /// Its public access block's IgnorePublicAcls.
    pub ignore_public_acls: bool,
}

/// Why a request is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounds {
    /// The caller owns the bucket.
    Owner,
    /// The caller's role on the bucket allows it.
    Role,
    /// The bucket policy allows it.
    Policy,
    /// A grant of the ACL allows it.
    Acl,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// A statement of the bucket policy denies it.
    ExplicitDeny,
    /// Nothing allows it.
    NotAllowed,
}

/// The S3 actions the owner may always take on the policy, whatever it says.
const OWNER_KEEPS: [&str; 3] = ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"];

/// Decides `request`, an action of kind `kind` (the role table's column), on `bucket`.
pub fn decide(request: &Request<'_>, kind: Action, bucket: &BucketAccess<'_>) -> Result<Grounds, Denial> {
    let standing = request.caller.and_then(|c: &Principal| c.standing(bucket.name, bucket.owner));
    let owner = standing == Some(Standing::Owner);
    let by_standing = match standing {
        Some(Standing::Owner) => Some(Grounds::Owner),
        Some(Standing::Role(r)) if r.allows(kind) => Some(Grounds::Role),
        _ => None,
    };
    let Some(policy) = bucket.policy else {
        return by_standing.or_else(|| by_acl(request, bucket)).ok_or(Denial::NotAllowed);
    };
    let kept = owner && OWNER_KEEPS.iter().any(|a| a.eq_ignore_ascii_case(request.action));
    // Allowed already: only a Deny statement can change that, so only those are read.
    if let Some(grounds) = by_standing {
        return if !kept && policy.denies(request) { Err(Denial::ExplicitDeny) } else { Ok(grounds) };
    }
    match policy.evaluate(request) {
        Verdict::Denied => Err(Denial::ExplicitDeny),
        Verdict::Allowed { public } if !(public && bucket.restrict_public) => Ok(Grounds::Policy),
        _ => by_acl(request, bucket).ok_or(Denial::NotAllowed),
    }
}

/// Whether the ACL that applies grants the request's action to its caller.
fn by_acl(request: &Request<'_>, bucket: &BucketAccess<'_>) -> Option<Grounds> {
    let list = bucket.acl?;
    let (_, needed) = acl::needed(request.action)?;
    let caller = request.caller.map(|c| c.canonical_id.as_str());
    list.allows(caller, needed, bucket.ignore_public_acls).then_some(Grounds::Acl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;
    use crate::policy::Context;
    use std::collections::BTreeMap;

    fn user(name: &str, role: Option<Role>) -> Principal {
        Principal {
            user: name.into(),
            canonical_id: format!("id-{name}"),
            display_name: name.into(),
            create_buckets: false,
            grants: role.map(|r| BTreeMap::from([("b".to_owned(), r)])).unwrap_or_default(),
        }
    }

    #[test]
    fn deny_wins_then_ownership_and_roles_then_the_policy() {
        let policy = Policy::parse(
            r#"{"Statement":[
              {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}},
              {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/pub/*"},
              {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:user/eve"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/eve/*"}]}"#,
            "b",
        )
        .unwrap();
        let owner = user("owner", None);
        let reader = user("reader", Some(Role::Reader));
        let eve = user("eve", None);
        let mut tls = Context::new();
        tls.set("aws:SecureTransport", "true");
        let mut plain = Context::new();
        plain.set("aws:SecureTransport", "false");
        let bucket = |restrict| BucketAccess {
            name: "b",
            owner: "id-owner",
            policy: Some(&policy),
            restrict_public: restrict,
            acl: None,
            ignore_public_acls: false,
        };
        let run = |caller: Option<&Principal>,
                   action: &str,
                   resource: &str,
                   kind: Action,
                   cx: &Context,
                   restrict: bool| {
            decide(&Request { caller, action, resource, context: cx }, kind, &bucket(restrict))
        };
        use Denial::*;
        use Grounds::{Owner, Policy as ByPolicy, Role as ByRole};
        let obj = "arn:aws:s3:::b/pub/x";
        type Cell<'a> =
            (Option<&'a Principal>, &'a str, &'a str, Action, &'a Context, bool, Result<Grounds, Denial>);
        let cells: Vec<Cell<'_>> = vec![
            (Some(&owner), "s3:GetObject", obj, Action::Read, &tls, false, Ok(Owner)),
            (Some(&owner), "s3:GetObject", obj, Action::Read, &plain, false, Err(ExplicitDeny)),
            (
                Some(&owner),
                "s3:DeleteBucketPolicy",
                "arn:aws:s3:::b",
                Action::Configure,
                &plain,
                false,
                Ok(Owner),
            ),
            (
                Some(&reader),
                "s3:DeleteBucketPolicy",
                "arn:aws:s3:::b",
                Action::Configure,
                &plain,
                false,
                Err(ExplicitDeny),
            ),
            (Some(&reader), "s3:GetObject", "arn:aws:s3:::b/other", Action::Read, &tls, false, Ok(ByRole)),
            (
                Some(&reader),
                "s3:PutObject",
                "arn:aws:s3:::b/other",
                Action::Write,
                &tls,
                false,
                Err(NotAllowed),
            ),
            (Some(&eve), "s3:PutObject", "arn:aws:s3:::b/eve/k", Action::Write, &tls, true, Ok(ByPolicy)),
            (Some(&eve), "s3:PutObject", "arn:aws:s3:::b/other", Action::Write, &tls, false, Err(NotAllowed)),
            (None, "s3:GetObject", obj, Action::Read, &tls, false, Ok(ByPolicy)),
            (None, "s3:GetObject", obj, Action::Read, &tls, true, Err(NotAllowed)),
            (None, "s3:GetObject", obj, Action::Read, &plain, false, Err(ExplicitDeny)),
            (None, "s3:ListBucket", "arn:aws:s3:::b", Action::List, &tls, false, Err(NotAllowed)),
        ];
        for (i, (caller, action, resource, kind, cx, restrict, want)) in cells.into_iter().enumerate() {
            assert_eq!(
                run(caller, action, resource, kind, cx, restrict),
                want,
                "cell {i}: {action} {resource}"
            );
        }
        let none = BucketAccess {
            name: "b",
            owner: "id-owner",
            policy: None,
            restrict_public: true,
            acl: None,
            ignore_public_acls: false,
        };
        let cx = Context::new();
        let ask = |c: Option<&Principal>| {
            decide(
                &Request { caller: c, action: "s3:GetObject", resource: obj, context: &cx },
                Action::Read,
                &none,
            )
        };
        assert_eq!(ask(Some(&owner)), Ok(Owner));
        assert_eq!(ask(Some(&eve)), Err(NotAllowed));
        assert_eq!(ask(None), Err(NotAllowed));
    }

    #[test]
    fn acl_grants_allow_after_the_policy_and_never_past_a_deny() {
        use crate::acl::{Canned, Grant, Grantee, Permission};
        let deny_plain = Policy::parse(
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
            "b",
        )
        .unwrap();
        let mut public_read = Canned::PublicRead.acl("id-owner", "id-owner");
        public_read
            .grants
            .push(Grant { grantee: Grantee::Id("id-eve".into()), permission: Permission::WriteAcp });
        let eve = user("eve", None);
        let mut tls = Context::new();
        tls.set("aws:SecureTransport", "true");
        let mut plain = Context::new();
        plain.set("aws:SecureTransport", "false");
        let ask = |caller: Option<&Principal>, action: &str, cx: &Context, policy, acl, ignore| {
            let bucket = BucketAccess {
                name: "b",
                owner: "id-owner",
                policy,
                restrict_public: false,
                acl,
                ignore_public_acls: ignore,
            };
            decide(
                &Request { caller, action, resource: "arn:aws:s3:::b/k", context: cx },
                Action::Read,
                &bucket,
            )
        };
        let acl = Some(&public_read);
        assert_eq!(ask(None, "s3:GetObject", &tls, None, acl, false), Ok(Grounds::Acl));
        assert_eq!(
            ask(None, "s3:GetObject", &tls, None, acl, true),
            Err(Denial::NotAllowed),
            "IgnorePublicAcls"
        );
        assert_eq!(ask(None, "s3:GetObject", &tls, None, None, false), Err(Denial::NotAllowed), "ACLs off");
        assert_eq!(ask(None, "s3:GetObjectTagging", &tls, None, acl, false), Err(Denial::NotAllowed));
        assert_eq!(ask(Some(&eve), "s3:PutObjectAcl", &tls, Some(&deny_plain), acl, true), Ok(Grounds::Acl));
        assert_eq!(
            ask(Some(&eve), "s3:PutObjectAcl", &plain, Some(&deny_plain), acl, true),
            Err(Denial::ExplicitDeny)
        );
        assert_eq!(
            ask(Some(&eve), "s3:GetObjectAcl", &tls, Some(&deny_plain), acl, true),
            Err(Denial::NotAllowed)
        );
        assert_eq!(
            ask(None, "s3:GetObject", &plain, Some(&deny_plain), acl, false),
            Err(Denial::ExplicitDeny)
        );
    }
}
