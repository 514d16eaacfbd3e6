//! A policy's answer to one request, as AWS evaluates a resource policy: a matching
//! `Deny` statement wins over everything; otherwise a matching `Allow` allows; otherwise
//! the policy is silent. A statement matches when its principal, action, resource and
//! every condition do. Also whether a policy is public (open to anyone, not narrowed to
//! fixed addresses or accounts), for GetBucketPolicyStatus and the public access block.

use super::context::Context;
use super::document::{Policy, Principals, Statement};
use super::pattern;
use crate::snapshot::Principal;

/// One request as a policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The caller; `None` for an anonymous request.
    pub caller: Option<&'a Principal>,
    /// The S3 action, `s3:GetObject`.
    pub action: &'a str,
    /// The resource, `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    /// The condition keys of the request.
    pub context: &'a Context,
}

/// What a policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A `Deny` statement matches.
    Denied,
    /// An `Allow` statement matches and none denies; `public` when only statements open
    /// to anyone do.
    Allowed {
        /// Allowed only by public statements.
        public: bool,
    },
    /// No statement matches.
    Silent,
}

impl Policy {
    /// The policy's answer to `request`.
    pub fn evaluate(&self, request: &Request<'_>) -> Verdict {
        let mut allowed: Option<bool> = None;
        for s in &self.statements {
            if !s.matches(request) {
                continue;
            }
            if !s.allow {
                return Verdict::Denied;
            }
            let public = s.is_public();
            allowed = Some(allowed.map_or(public, |p| p && public));
        }
        match allowed {
            Some(public) => Verdict::Allowed { public },
            None => Verdict::Silent,
        }
    }

    /// Whether a `Deny` statement matches `request` (the `Allow` statements unread).
    pub fn denies(&self, request: &Request<'_>) -> bool {
        self.statements.iter().any(|s| !s.allow && s.matches(request))
    }

    /// Whether any statement allows anyone (AWS's "public" policy).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(Statement::is_public)
    }
}

impl Statement {
    fn matches(&self, r: &Request<'_>) -> bool {
        let named = match &self.principals {
            Principals::Anyone => true,
            Principals::Listed { users, canonical_ids } => {
                r.caller.is_some_and(|c| users.contains(&c.user) || canonical_ids.contains(&c.canonical_id))
            }
        };
        if named == self.not_principal {
            return false;
        }
        let action = self.actions.iter().any(|a| pattern::matches(a, r.action, true));
        if action == self.not_action {
            return false;
        }
        let resource = self.resources.iter().any(|p| pattern::matches(p, r.resource, false));
        if resource == self.not_resource {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(r.context))
    }

    fn is_public(&self) -> bool {
        let open = self.principals == Principals::Anyone || self.not_principal;
        self.allow && open && !self.conditions.iter().any(|c| c.narrows_callers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn user(name: &str) -> Principal {
        Principal {
            user: name.into(),
            canonical_id: format!("id-{name}"),
            display_name: name.into(),
            create_buckets: false,
            grants: BTreeMap::new(),
        }
    }

    fn ask(p: &Policy, caller: Option<&Principal>, action: &str, resource: &str, cx: &Context) -> Verdict {
        p.evaluate(&Request { caller, action, resource, context: cx })
    }

    const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
      {"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/public/*"},
      {"Sid":"AliceHome","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:user/alice"},"Action":["s3:GetObject","s3:PutObject"],
       "Resource":"arn:aws:s3:::b/home/alice/*"},
      {"Sid":"AliceList","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:user/alice"},"Action":"s3:ListBucket",
       "Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":"home/alice/*"}}},
      {"Sid":"TlsOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],
       "Condition":{"Bool":{"aws:SecureTransport":"false"}}},
      {"Sid":"EncryptedOnly","Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
       "Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}},
      {"Sid":"NotBob","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::1:user/bob"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/bob/*"}
    ]}"#;

    #[test]
    fn statements_allow_deny_or_stay_silent_cell_by_cell() {
        let p = Policy::parse(POLICY, "b").unwrap();
        let (alice, bob) = (user("alice"), user("bob"));
        let mut tls = Context::new();
        tls.set("aws:SecureTransport", "true");
        let mut plain = tls.clone();
        plain.set("aws:SecureTransport", "false");
        let mut sealed = tls.clone();
        sealed.set("s3:x-amz-server-side-encryption", "AES256");
        let mut listing = tls.clone();
        listing.set("s3:prefix", "home/alice/docs/");
        let mut other_listing = tls.clone();
        other_listing.set("s3:prefix", "home/bob/");
        let public = Verdict::Allowed { public: true };
        let private = Verdict::Allowed { public: false };
        use Verdict::*;
        let cells: &[(Option<&Principal>, &str, &str, &Context, Verdict)] = &[
            (None, "s3:GetObject", "arn:aws:s3:::b/public/cat.jpg", &tls, public),
            (None, "s3:GetObject", "arn:aws:s3:::b/public/cat.jpg", &plain, Denied),
            (None, "s3:GetObject", "arn:aws:s3:::b/private/x", &tls, Silent),
            (None, "s3:PutObject", "arn:aws:s3:::b/public/x", &sealed, Silent),
            (Some(&alice), "s3:GetObject", "arn:aws:s3:::b/home/alice/a", &tls, private),
            (Some(&alice), "s3:getobject", "arn:aws:s3:::b/home/alice/a", &tls, private),
            (Some(&alice), "s3:PutObject", "arn:aws:s3:::b/home/alice/a", &tls, Denied),
            (Some(&alice), "s3:PutObject", "arn:aws:s3:::b/home/alice/a", &sealed, private),
            (Some(&alice), "s3:GetObject", "arn:aws:s3:::b/home/bob/a", &tls, Silent),
            (Some(&alice), "s3:ListBucket", "arn:aws:s3:::b", &listing, private),
            (Some(&alice), "s3:ListBucket", "arn:aws:s3:::b", &other_listing, Silent),
            (Some(&alice), "s3:ListBucket", "arn:aws:s3:::b", &tls, Silent),
            (Some(&bob), "s3:GetObject", "arn:aws:s3:::b/home/alice/a", &tls, Silent),
            (Some(&bob), "s3:GetObject", "arn:aws:s3:::b/public/a", &tls, public),
            (Some(&bob), "s3:DeleteObject", "arn:aws:s3:::b/bob/a", &tls, Silent),
            (Some(&alice), "s3:DeleteObject", "arn:aws:s3:::b/bob/a", &tls, Denied),
            (None, "s3:DeleteObject", "arn:aws:s3:::b/bob/a", &tls, Denied),
        ];
        for (i, (caller, action, resource, cx, want)) in cells.iter().enumerate() {
            let who = caller.map_or("anonymous", |c| c.user.as_str());
            assert_eq!(ask(&p, *caller, action, resource, cx), *want, "cell {i}: {who} {action} {resource}");
        }
        assert!(p.is_public());
    }

    #[test]
    fn canonical_ids_name_callers_and_source_ip_blocks_are_not_public() {
        let p = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"CanonicalUser":"id-carol"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
              {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
            "b",
        )
        .unwrap();
        let cx = Context::new();
        assert_eq!(
            ask(&p, Some(&user("carol")), "s3:GetObject", "arn:aws:s3:::b/k", &cx),
            Verdict::Allowed { public: false }
        );
        assert_eq!(ask(&p, Some(&user("dave")), "s3:GetObject", "arn:aws:s3:::b/k", &cx), Verdict::Silent);
        assert!(!p.is_public());
        let mut inside = Context::new();
        inside.set("aws:SourceIp", "10.2.3.4");
        assert_eq!(
            ask(&p, None, "s3:ListBucket", "arn:aws:s3:::b", &inside),
            Verdict::Allowed { public: false }
        );
    }
}
