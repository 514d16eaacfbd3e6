//! A bucket policy document read and checked as AWS checks one at PutBucketPolicy:
//! `Version`, `Id`, `Statement` (one or a list) with `Sid`, `Effect`,
//! `Principal`/`NotPrincipal`, `Action`/`NotAction`, `Resource`/`NotResource` and
//! `Condition`. Anything wrong is a [`Malformed`] naming it (S3's MalformedPolicy).

use serde_json::{Map, Value};

use super::actions::{self, Target};
use super::condition::{self, Condition};
use super::pattern;

/// Largest policy document accepted (AWS's bucket policy limit).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Why a policy document is refused; the text names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(String);

impl Malformed {
    pub(crate) fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

/// Who a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principals {
    /// `"*"`: everyone, anonymous callers included.
    Anyone,
    /// Users by name (`arn:aws:iam::ACCOUNT:user/NAME`) and by canonical id.
    Listed { users: Vec<String>, canonical_ids: Vec<String> },
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) allow: bool,
    pub(crate) principals: Principals,
    pub(crate) not_principal: bool,
    /// Action patterns (`s3:Get*`), compared without case.
    pub(crate) actions: Vec<String>,
    pub(crate) not_action: bool,
    /// Resource patterns (`arn:aws:s3:::bucket/home/*`).
    pub(crate) resources: Vec<String>,
    pub(crate) not_resource: bool,
    pub(crate) conditions: Vec<Condition>,
}

/// A checked bucket policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) statements: Vec<Statement>,
    /// Every condition key its conditions read (normalized), so a request gathers only
    /// those.
    keys: Vec<String>,
}

const STATEMENT_FIELDS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

impl Policy {
    /// Reads and checks the policy document `text` for the bucket `bucket`.
    pub fn parse(text: &str, bucket: &str) -> Result<Self, Malformed> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(Malformed::new(format!(
                "Policy document is {} bytes; at most {MAX_POLICY_BYTES} are allowed",
                text.len()
            )));
        }
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| Malformed::new(format!("Policies must be valid JSON: {e}")))?;
        let Value::Object(doc) = doc else {
            return Err(Malformed::new("Policies must be valid JSON and the first byte must be '{'"));
        };
        for field in doc.keys() {
            if !["Version", "Id", "Statement"].contains(&field.as_str()) {
                return Err(Malformed::new(format!("Policy has an unknown field: {field}")));
            }
        }
        match doc.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(v) => {
                return Err(Malformed::new(format!(
                    "The policy must contain a valid version string (2012-10-17 or 2008-10-17), not {v}"
                )));
            }
        }
        if doc.get("Id").is_some_and(|id| !id.is_string()) {
            return Err(Malformed::new("Id must be a string"));
        }
        let list = match doc.get("Statement") {
            None => return Err(Malformed::new("Missing required field Statement")),
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => return Err(Malformed::new("Statement must be an object or a list of objects")),
        };
        if list.is_empty() {
            return Err(Malformed::new("Could not parse the policy: Statement is empty"));
        }
        let mut statements = Vec::with_capacity(list.len());
        for (i, s) in list.into_iter().enumerate() {
            let Value::Object(s) = s else {
                return Err(Malformed::new(format!("Statement {} must be an object", i + 1)));
            };
            let st = statement(s, bucket).map_err(|e| match s.get("Sid").and_then(Value::as_str) {
                Some(sid) => Malformed::new(format!("{e} (statement {sid})")),
                None => Malformed::new(format!("{e} (statement {})", i + 1)),
            })?;
            if let Some(sid) = &st.sid
                && statements.iter().any(|o: &Statement| o.sid.as_ref() == Some(sid))
            {
                return Err(Malformed::new(format!(
                    "Statement IDs (SID) in a single policy must be unique: {sid} appears twice"
                )));
            }
            statements.push(st);
        }
        let mut keys: Vec<String> =
            statements.iter().flat_map(|s| &s.conditions).map(|c| c.key().to_owned()).collect();
        keys.sort();
        keys.dedup();
        Ok(Self { statements, keys })
    }

    /// The condition keys its conditions read, each once, in order (lower case up to
    /// the first `/`).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }

    /// Users the policy names (by user name), for the caller to check they exist.
    pub fn named_users(&self) -> impl Iterator<Item = &str> {
        self.statements
            .iter()
            .flat_map(|s| match &s.principals {
                Principals::Listed { users, .. } => users.as_slice(),
                Principals::Anyone => &[],
            })
            .map(String::as_str)
    }

    /// Canonical ids the policy names, for the caller to check they exist.
    pub fn named_canonical_ids(&self) -> impl Iterator<Item = &str> {
        self.statements
            .iter()
            .flat_map(|s| match &s.principals {
                Principals::Listed { canonical_ids, .. } => canonical_ids.as_slice(),
                Principals::Anyone => &[],
            })
            .map(String::as_str)
    }

    /// Whether any condition reads a condition key starting with `prefix` (lower case),
    /// such as `s3:existingobjecttag/`: the caller then gathers those values first.
    pub fn reads_key_prefix(&self, prefix: &str) -> bool {
        self.keys.iter().any(|k| k.starts_with(prefix))
    }

    /// How many statements it has.
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Whether it has no statement (never true of a parsed policy).
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

fn statement(s: &Map<String, Value>, bucket: &str) -> Result<Statement, Malformed> {
    for field in s.keys() {
        if !STATEMENT_FIELDS.contains(&field.as_str()) {
            return Err(Malformed::new(format!("Statement has an unknown field: {field}")));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) if sid.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ') => {
            Some(sid.clone())
        }
        Some(_) => return Err(Malformed::new("Sid must be a string of letters, digits and spaces")),
    };
    let allow = match s.get("Effect") {
        None => return Err(Malformed::new("Missing required field Effect")),
        Some(Value::String(e)) if e == "Allow" => true,
        Some(Value::String(e)) if e == "Deny" => false,
        Some(e) => return Err(Malformed::new(format!("Invalid effect: {e} (Allow or Deny)"))),
    };
    let (principal, not_principal) = one_of(s, "Principal", "NotPrincipal")?;
    let principals = principals(principal)?;
    if not_principal && principals == Principals::Anyone {
        return Err(Malformed::new("NotPrincipal cannot be \"*\": it would match no one"));
    }
    let (action, not_action) = one_of(s, "Action", "NotAction")?;
    let actions = strings(action, "Action")?;
    for a in &actions {
        check_action(a)?;
    }
    let (resource, not_resource) = one_of(s, "Resource", "NotResource")?;
    let resources = strings(resource, "Resource")?;
    for r in &resources {
        check_resource(r, bucket)?;
    }
    if !not_action && !not_resource {
        check_actions_apply(&actions, &resources, bucket)?;
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(block) => condition::parse_block(block)?,
    };
    Ok(Statement {
        sid,
        allow,
        principals,
        not_principal,
        actions,
        not_action,
        resources,
        not_resource,
        conditions,
    })
}

/// The value of exactly one of two exclusive fields, and whether it was the second.
fn one_of<'a>(s: &'a Map<String, Value>, a: &str, not_a: &str) -> Result<(&'a Value, bool), Malformed> {
    match (s.get(a), s.get(not_a)) {
        (Some(v), None) => Ok((v, false)),
        (None, Some(v)) => Ok((v, true)),
        (None, None) => Err(Malformed::new(format!("Missing required field {a}"))),
        (Some(_), Some(_)) => Err(Malformed::new(format!("A statement cannot have both {a} and {not_a}"))),
    }
}

/// One string or a non-empty list of strings.
fn strings(v: &Value, field: &str) -> Result<Vec<String>, Malformed> {
    let out: Vec<String> = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| Malformed::new(format!("{field} must be a string or a list of strings")))?,
        _ => return Err(Malformed::new(format!("{field} must be a string or a list of strings"))),
    };
    if out.is_empty() {
        return Err(Malformed::new(format!("{field} is empty")));
    }
    if let Some(var) = out.iter().find(|s| s.contains("${")) {
        return Err(Malformed::new(format!("Policy variables are not supported: {var}")));
    }
    Ok(out)
}

fn principals(v: &Value) -> Result<Principals, Malformed> {
    let invalid = |p: &str| {
        Malformed::new(format!(
            "Invalid principal in policy: {p} (name users as \"*\", {{\"AWS\": \"arn:aws:iam::ACCOUNT:user/NAME\"}}, \
             {{\"AWS\": \"CANONICAL_ID\"}} or {{\"CanonicalUser\": \"CANONICAL_ID\"}})"
        ))
    };
    let map = match v {
        Value::String(s) if s == "*" => return Ok(Principals::Anyone),
        Value::Object(m) if !m.is_empty() => m,
        other => return Err(invalid(&other.to_string())),
    };
    let (mut users, mut canonical_ids) = (Vec::new(), Vec::new());
    for (kind, ids) in map {
        let ids = strings(ids, &format!("Principal {kind}"))?;
        for id in ids {
            match kind.as_str() {
                "AWS" if id == "*" => return Ok(Principals::Anyone),
                "AWS" if id.starts_with("arn:") => users.push(user_of_arn(&id).ok_or_else(|| invalid(&id))?),
                "AWS" | "CanonicalUser" if !id.is_empty() && id != "*" && !id.contains(['*', '?']) => {
                    canonical_ids.push(id)
                }
                _ => return Err(invalid(&format!("{kind}: {id}"))),
            }
        }
    }
    Ok(Principals::Listed { users, canonical_ids })
}

/// The user name in `arn:aws:iam::ACCOUNT:user/[PATH/]NAME` (any partition, any account).
fn user_of_arn(arn: &str) -> Option<String> {
    let mut parts = arn.splitn(6, ':');
    let (_arn, _partition, service, region, _account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if service != "iam" || !region.is_empty() {
        return None;
    }
    let name = resource.strip_prefix("user/")?.rsplit('/').next()?;
    (!name.is_empty() && !name.contains(['*', '?'])).then(|| name.to_owned())
}

fn check_action(a: &str) -> Result<(), Malformed> {
    if a == "*" {
        return Ok(());
    }
    let invalid = || Malformed::new(format!("Policy has invalid action: {a}"));
    let (service, name) = a.split_once(':').ok_or_else(invalid)?;
    if !service.eq_ignore_ascii_case("s3") || name.is_empty() {
        return Err(invalid());
    }
    if pattern::is_wild(name) || actions::exists(name) { Ok(()) } else { Err(invalid()) }
}

fn check_resource(r: &str, bucket: &str) -> Result<(), Malformed> {
    let invalid = || {
        Malformed::new(format!(
            "Policy has invalid resource: {r} (resources of bucket {bucket} are arn:aws:s3:::{bucket} and arn:aws:s3:::{bucket}/KEY)"
        ))
    };
    if r == "*" {
        return Ok(());
    }
    let rest = r.strip_prefix("arn:aws:s3:::").ok_or_else(invalid)?;
    let bucket_part = rest.split('/').next().unwrap_or_default();
    // A pattern must be able to name this bucket or something in it.
    let reaches = pattern::matches(bucket_part, bucket, false)
        || (bucket_part.contains('*') && pattern::matches(rest, &format!("{bucket}/x"), false));
    if reaches { Ok(()) } else { Err(invalid()) }
}

/// AWS's "Action does not apply to any resource(s) in statement": every action named
/// exactly must act on a kind of resource the statement lists.
fn check_actions_apply(actions: &[String], resources: &[String], bucket: &str) -> Result<(), Malformed> {
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let bucket_ok = resources.iter().any(|r| pattern::matches(r, &bucket_arn, false));
    let object_ok = resources.iter().any(|r| r.contains('/') || r.contains('*'));
    for a in actions {
        let Some((_, name)) = a.split_once(':') else { continue };
        if pattern::is_wild(name) {
            continue;
        }
        let applies = match actions::target(name) {
            Some(Target::Bucket) => bucket_ok,
            Some(Target::Object) => object_ok,
            None => false,
        };
        if !applies {
            return Err(Malformed::new(format!(
                "Action does not apply to any resource(s) in statement: {a}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(doc: &str) -> Result<Policy, Malformed> {
        Policy::parse(doc, "photos")
    }

    #[test]
    fn a_full_policy_reads() {
        let p = parse(
            r#"{"Version":"2012-10-17","Id":"x","Statement":[
              {"Sid":"Public","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/public/*"},
              {"Sid":"Alice","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123:user/alice","arn:aws:iam::123:user/team/bob"]},
               "Action":["s3:ListBucket","s3:Get*"],"Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]},
              {"Effect":"Deny","NotPrincipal":{"CanonicalUser":"c0ffee"},"NotAction":"s3:GetObject","Resource":"arn:aws:s3:::photos/*",
               "Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
        )
        .unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p.named_users().collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(p.named_canonical_ids().collect::<Vec<_>>(), ["c0ffee"]);
        assert!(!p.reads_key_prefix("s3:existingobjecttag/"));
        let one =
            parse(r#"{"Statement":{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"*","Resource":"*"}}"#)
                .unwrap();
        assert_eq!(one.statements[0].principals, Principals::Anyone);
    }

    #[test]
    fn every_mistake_is_named() {
        let s = |body: &str| format!(r#"{{"Version":"2012-10-17","Statement":[{{{body}}}]}}"#);
        let ok =
            r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*""#;
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "valid JSON"),
            ("[1]".into(), "first byte"),
            (r#"{"Version":"2012-10-17"}"#.into(), "Missing required field Statement"),
            (r#"{"Version":"2020-01-01","Statement":[]}"#.into(), "valid version string"),
            (r#"{"Statement":[],"Extra":1}"#.into(), "unknown field: Extra"),
            (r#"{"Statement":[]}"#.into(), "Statement is empty"),
            (
                s(r#""Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*""#),
                "Missing required field Effect",
            ),
            (
                s(
                    r#""Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*""#,
                ),
                "Invalid effect",
            ),
            (
                s(r#""Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*""#),
                "Missing required field Principal",
            ),
            (
                s(r#""Effect":"Allow","Principal":"*","Resource":"arn:aws:s3:::photos/*""#),
                "Missing required field Action",
            ),
            (
                s(r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject""#),
                "Missing required field Resource",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":"*","Action":"s3:GetObjekt","Resource":"arn:aws:s3:::photos/*""#,
                ),
                "invalid action: s3:GetObjekt",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":"*","Action":"ec2:RunInstances","Resource":"arn:aws:s3:::photos/*""#,
                ),
                "invalid action",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*""#,
                ),
                "invalid resource: arn:aws:s3:::other/*",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos""#,
                ),
                "does not apply",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::photos/*""#,
                ),
                "does not apply",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":"me","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*""#,
                ),
                "Invalid principal",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*""#,
                ),
                "Invalid principal",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:role/x"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*""#,
                ),
                "Invalid principal",
            ),
            (
                s(
                    r#""Effect":"Deny","NotPrincipal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*""#,
                ),
                "NotPrincipal",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","NotAction":"s3:PutObject","Resource":"arn:aws:s3:::photos/*""#,
                ),
                "both Action and NotAction",
            ),
            (
                s(r#""Effect":"Allow","Principal":"*","Action":[],"Resource":"arn:aws:s3:::photos/*""#),
                "Action is empty",
            ),
            (
                s(
                    r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/${aws:username}/*""#,
                ),
                "Policy variables",
            ),
            (
                s(&format!(r#"{ok},"Condition":{{"StringEquals":{{"s3:nope":"x"}}}}"#)),
                "invalid condition key",
            ),
            (s(&format!(r#"{ok},"Colour":"red""#)), "unknown field: Colour"),
            (format!(r#"{{"Statement":[{{"Sid":"A",{ok}}},{{"Sid":"A",{ok}}}]}}"#), "must be unique"),
            (format!(r#"{{"Statement":[{{"Sid":"a-b",{ok}}}]}}"#), "Sid must be"),
            (r#"{"Statement":["x"]}"#.to_string(), "Statement 1 must be an object"),
        ];
        for (doc, want) in cases {
            let e = parse(&doc).expect_err(&doc);
            assert!(e.to_string().contains(want), "{doc}\n  gave: {e}\n  want: {want}");
        }
        let big = format!(r#"{{"Statement":[{}]}}"#, vec![format!("{{{ok}}}"); 300].join(","));
        assert!(parse(&big).unwrap_err().to_string().contains("at most 20480"));
    }

    #[test]
    fn wildcard_resources_and_actions_are_accepted_where_they_reach_the_bucket() {
        for r in ["*", "arn:aws:s3:::*", "arn:aws:s3:::pho*", "arn:aws:s3:::photos/*", "arn:aws:s3:::ph?tos"]
        {
            let doc = format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"{r}"}}]}}"#
            );
            assert!(parse(&doc).is_ok(), "{r}");
        }
        let doc = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:getobject","Resource":"arn:aws:s3:::photos/a"}]}"#;
        assert!(parse(doc).is_ok());
    }
}
