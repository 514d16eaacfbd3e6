//! A statement's `Condition` block: operators (`StringEquals`, `NumericLessThan`,
//! `DateGreaterThan`, `Bool`, `IpAddress`, `Null`, ... with `IfExists` and the
//! `ForAllValues:`/`ForAnyValue:` set qualifiers), the condition keys this store knows,
//! values checked when the policy is put, and the evaluation against a [`Context`] with
//! IAM's rules: every operator and key must hold (AND), any listed value may match (OR);
//! a key the request lacks fails a positive operator and satisfies a negated one.

use std::net::IpAddr;

use serde_json::Value;

use super::context::{Context, normalized};
use super::document::Malformed;
use super::pattern;

/// How values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    StringIgnoreCase,
    StringLike,
    Numeric(Order),
    Date(Order),
    Bool,
    Ip,
    Arn,
    ArnLike,
    Null,
}

/// A comparison of numbers or dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Equals,
    Less,
    LessEquals,
    Greater,
    GreaterEquals,
}

/// How several values of a key in the request are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    /// One value (or the key's values taken as alternatives).
    Single,
    /// Every value in the request must match.
    ForAll,
    /// At least one value in the request must match.
    ForAny,
}

/// A value of a condition, parsed as its operator reads it.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Text(String),
    Number(f64),
    Time(i64),
    Flag(bool),
    Net(IpAddr, u8),
}

/// One operator applied to one key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    kind: Kind,
    negated: bool,
    if_exists: bool,
    set: Set,
    key: String,
    values: Vec<Operand>,
}

/// The condition keys a bucket policy may name (lower case); `*/` entries take any suffix.
const KEYS: &[&str] = &[
    "aws:calledvia",
    "aws:currenttime",
    "aws:epochtime",
    "aws:multifactorauthage",
    "aws:multifactorauthpresent",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principalorgid",
    "aws:principaltag/",
    "aws:principaltype",
    "aws:referer",
    "aws:requestedregion",
    "aws:requesttag/",
    "aws:resourcetag/",
    "aws:securetransport",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceip",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:tagkeys",
    "aws:tokenissuetime",
    "aws:useragent",
    "aws:userid",
    "aws:username",
    "aws:viaawsservice",
    "s3:authtype",
    "s3:delimiter",
    "s3:existingobjecttag/",
    "s3:locationconstraint",
    "s3:max-keys",
    "s3:object-lock-legal-hold",
    "s3:object-lock-mode",
    "s3:object-lock-remaining-retention-days",
    "s3:object-lock-retain-until-date",
    "s3:prefix",
    "s3:requestobjecttag/",
    "s3:requestobjecttagkeys",
    "s3:resourceaccount",
    "s3:signatureage",
    "s3:signatureversion",
    "s3:tlsversion",
    "s3:versionid",
    "s3:x-amz-acl",
    "s3:x-amz-content-sha256",
    "s3:x-amz-copy-source",
    "s3:x-amz-grant-full-control",
    "s3:x-amz-grant-read",
    "s3:x-amz-grant-read-acp",
    "s3:x-amz-grant-write",
    "s3:x-amz-grant-write-acp",
    "s3:x-amz-metadata-directive",
    "s3:x-amz-object-ownership",
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:x-amz-server-side-encryption-customer-algorithm",
    "s3:x-amz-storage-class",
];

fn known_key(key: &str) -> bool {
    KEYS.iter().any(|k| match k.strip_suffix('/') {
        Some(prefix) => key.strip_prefix(prefix).is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')),
        None => *k == key,
    })
}

/// The operator named `name`: its kind, whether negated, whether `...IfExists`.
fn operator(name: &str) -> Option<(Kind, bool, bool)> {
    let (base, if_exists) = match name.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (name, false),
    };
    use Kind::*;
    use Order::*;
    let (kind, negated) = match base {
        "StringEquals" => (String, false),
        "StringNotEquals" => (String, true),
        "StringEqualsIgnoreCase" => (StringIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (StringIgnoreCase, true),
        "StringLike" => (StringLike, false),
        "StringNotLike" => (StringLike, true),
        "NumericEquals" => (Numeric(Equals), false),
        "NumericNotEquals" => (Numeric(Equals), true),
        "NumericLessThan" => (Numeric(Less), false),
        "NumericLessThanEquals" => (Numeric(LessEquals), false),
        "NumericGreaterThan" => (Numeric(Greater), false),
        "NumericGreaterThanEquals" => (Numeric(GreaterEquals), false),
        "DateEquals" => (Date(Equals), false),
        "DateNotEquals" => (Date(Equals), true),
        "DateLessThan" => (Date(Less), false),
        "DateLessThanEquals" => (Date(LessEquals), false),
        "DateGreaterThan" => (Date(Greater), false),
        "DateGreaterThanEquals" => (Date(GreaterEquals), false),
        "Bool" => (Bool, false),
        "IpAddress" => (Ip, false),
        "NotIpAddress" => (Ip, true),
        "ArnEquals" => (Arn, false),
        "ArnNotEquals" => (Arn, true),
        "ArnLike" => (ArnLike, false),
        "ArnNotLike" => (ArnLike, true),
        "Null" if !if_exists => (Null, false),
        _ => return None,
    };
    Some((kind, negated, if_exists))
}

/// Reads a statement's `Condition` object.
pub(crate) fn parse_block(block: &Value) -> Result<Vec<Condition>, Malformed> {
    let Value::Object(ops) = block else {
        return Err(Malformed::new("Condition must be an object of operators"));
    };
    let mut out = Vec::new();
    for (name, keys) in ops {
        let (set, bare) = if let Some(b) = name.strip_prefix("ForAllValues:") {
            (Set::ForAll, b)
        } else if let Some(b) = name.strip_prefix("ForAnyValue:") {
            (Set::ForAny, b)
        } else {
            (Set::Single, name.as_str())
        };
        let (kind, negated, if_exists) =
            operator(bare).ok_or_else(|| Malformed::new(format!("Invalid Condition type : {name}")))?;
        let Value::Object(keys) = keys else {
            return Err(Malformed::new(format!("Condition {name} must map condition keys to values")));
        };
        if keys.is_empty() {
            return Err(Malformed::new(format!("Condition {name} names no condition key")));
        }
        for (key, values) in keys {
            let key_n = normalized(key);
            if !known_key(&key_n) {
                return Err(Malformed::new(format!("Policy has an invalid condition key: {key}")));
            }
            let texts = texts(values).ok_or_else(|| {
                Malformed::new(format!(
                    "Condition {name} on {key} needs a string, number, boolean or a list of them"
                ))
            })?;
            if texts.is_empty() {
                return Err(Malformed::new(format!("Condition {name} on {key} has no value")));
            }
            let values = texts
                .into_iter()
                .map(|t| {
                    operand(kind, &t).ok_or_else(|| {
                        Malformed::new(format!("Invalid value for condition {name} on {key}: {t}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Condition { kind, negated, if_exists, set, key: key_n, values });
        }
    }
    Ok(out)
}

/// The values as text: one scalar or a list of scalars.
fn texts(v: &Value) -> Option<Vec<String>> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match v {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

fn operand(kind: Kind, text: &str) -> Option<Operand> {
    Some(match kind {
        Kind::String | Kind::StringLike | Kind::Arn | Kind::ArnLike => Operand::Text(text.to_owned()),
        Kind::StringIgnoreCase => Operand::Text(text.to_lowercase()),
        Kind::Numeric(_) => Operand::Number(number(text)?),
        Kind::Date(_) => Operand::Time(date(text)?),
        Kind::Bool | Kind::Null => Operand::Flag(flag(text)?),
        Kind::Ip => {
            let (ip, len) = cidr(text)?;
            Operand::Net(ip, len)
        }
    })
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn flag(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// An instant as IAM writes it: RFC 3339 / ISO 8601 (`2026-12-06T15:00:00Z`), a date
/// (`2026-12-06`, its midnight UTC) or Unix seconds; whole seconds.
pub fn date(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let parsed = time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339))
        .ok()?;
    Some(parsed.unix_timestamp())
}

/// An address block (`10.0.0.0/8`, `2001:db8::/32`) or one address (a /32 or /128).
fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match text.trim().split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
        None => (text.trim().parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((addr, len))
}

fn in_block(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        // An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d).
        (IpAddr::V6(a), IpAddr::V4(_)) => {
            a.to_ipv4_mapped().is_some_and(|a| in_block(IpAddr::V4(a), net, len))
        }
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

impl Condition {
    /// Whether the condition holds for the request.
    pub(crate) fn holds(&self, cx: &Context) -> bool {
        let present = cx.get(&self.key).filter(|v| !v.is_empty());
        if self.kind == Kind::Null {
            let absent = present.is_none();
            return self.values.contains(&Operand::Flag(absent));
        }
        let Some(found) = present else {
            return match self.set {
                Set::ForAll => true,
                Set::ForAny => false,
                Set::Single => self.if_exists || self.negated,
            };
        };
        // A negated operator holds for a request value that matches none of the values.
        let one = |v: &str| self.matches_any(v) != self.negated;
        match self.set {
            Set::ForAll => found.iter().all(|v| one(v)),
            Set::ForAny => found.iter().any(|v| one(v)),
            Set::Single => {
                if self.negated {
                    found.iter().all(|v| one(v))
                } else {
                    found.iter().any(|v| one(v))
                }
            }
        }
    }

    /// Whether the request value `v` matches any of the condition's values.
    fn matches_any(&self, v: &str) -> bool {
        match self.kind {
            Kind::String | Kind::Arn => self.values.iter().any(|o| matches!(o, Operand::Text(t) if t == v)),
            Kind::StringIgnoreCase => {
                let v = v.to_lowercase();
                self.values.iter().any(|o| matches!(o, Operand::Text(t) if *t == v))
            }
            Kind::StringLike | Kind::ArnLike => {
                self.values.iter().any(|o| matches!(o, Operand::Text(t) if pattern::matches(t, v, false)))
            }
            Kind::Numeric(order) => number(v).is_some_and(|n| {
                self.values.iter().any(|o| matches!(o, Operand::Number(x) if compare(order, n, *x)))
            }),
            Kind::Date(order) => date(v).is_some_and(|d| {
                self.values
                    .iter()
                    .any(|o| matches!(o, Operand::Time(x) if compare(order, d as f64, *x as f64)))
            }),
            Kind::Bool => flag(v).is_some_and(|b| self.values.contains(&Operand::Flag(b))),
            Kind::Ip => v.parse::<IpAddr>().is_ok_and(|ip| {
                self.values.iter().any(|o| matches!(o, Operand::Net(n, l) if in_block(ip, *n, *l)))
            }),
            Kind::Null => false,
        }
    }

    /// The key the condition reads (normalized).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Whether the condition narrows who may be the caller to fixed addresses or
    /// accounts, so a statement open to everyone is not public (AWS's rule, simplified:
    /// `aws:SourceIp` within a block smaller than the whole space, or a fixed value of a
    /// key naming the caller's account, network or identity).
    pub(crate) fn narrows_callers(&self) -> bool {
        if self.negated || self.if_exists || self.set != Set::Single {
            return false;
        }
        match self.kind {
            Kind::Ip => {
                self.key == "aws:sourceip"
                    && self.values.iter().all(|o| matches!(o, Operand::Net(_, l) if *l > 0))
            }
            Kind::String | Kind::StringIgnoreCase | Kind::Arn => {
                const FIXED: &[&str] = &[
                    "aws:principalaccount",
                    "aws:principalarn",
                    "aws:principalorgid",
                    "aws:sourceaccount",
                    "aws:sourcearn",
                    "aws:sourcevpc",
                    "aws:sourcevpce",
                    "aws:userid",
                    "aws:username",
                ];
                FIXED.contains(&self.key.as_str())
            }
            _ => false,
        }
    }
}

fn compare(order: Order, a: f64, b: f64) -> bool {
    match order {
        Order::Equals => a == b,
        Order::Less => a < b,
        Order::LessEquals => a <= b,
        Order::Greater => a > b,
        Order::GreaterEquals => a >= b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(block: Value) -> Condition {
        let mut c = parse_block(&block).unwrap();
        assert_eq!(c.len(), 1);
        c.remove(0)
    }

    fn cx(pairs: &[(&str, &str)]) -> Context {
        let mut c = Context::new();
        for (k, v) in pairs {
            c.set(k, *v);
        }
        c
    }

    #[test]
    fn string_operators_positive_negated_and_absent() {
        let eq = one(json!({"StringEquals": {"s3:x-amz-server-side-encryption": ["AES256", "aws:kms"]}}));
        let ne = one(json!({"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}}));
        let ne_if = one(json!({"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "AES256"}}));
        let eq_if = one(json!({"StringEqualsIfExists": {"s3:x-amz-server-side-encryption": "AES256"}}));
        let aes = cx(&[("s3:x-amz-server-side-encryption", "AES256")]);
        let kms = cx(&[("s3:x-amz-server-side-encryption", "aws:kms")]);
        let none = Context::new();
        assert!(eq.holds(&aes) && eq.holds(&kms) && !eq.holds(&none));
        assert!(!ne.holds(&aes) && ne.holds(&kms) && ne.holds(&none));
        assert!(!ne_if.holds(&aes) && ne_if.holds(&kms) && ne_if.holds(&none));
        assert!(eq_if.holds(&aes) && !eq_if.holds(&kms) && eq_if.holds(&none));
        let ic = one(json!({"StringEqualsIgnoreCase": {"aws:username": "Alice"}}));
        assert!(ic.holds(&cx(&[("aws:username", "aLiCe")])));
        let like = one(json!({"StringLike": {"s3:prefix": ["home/*", "shared/?"]}}));
        assert!(like.holds(&cx(&[("s3:prefix", "home/alice/")])));
        assert!(like.holds(&cx(&[("s3:prefix", "shared/x")])));
        assert!(!like.holds(&cx(&[("s3:prefix", "shared/xy")])));
        let not_like = one(json!({"StringNotLike": {"s3:prefix": "home/*"}}));
        assert!(
            !not_like.holds(&cx(&[("s3:prefix", "home/a")])) && not_like.holds(&cx(&[("s3:prefix", "x")]))
        );
    }

    #[test]
    fn numbers_dates_bools_addresses_and_null() {
        let lt = one(json!({"NumericLessThanEquals": {"s3:max-keys": 10}}));
        assert!(lt.holds(&cx(&[("s3:max-keys", "10")])) && !lt.holds(&cx(&[("s3:max-keys", "11")])));
        assert!(!lt.holds(&cx(&[("s3:max-keys", "ten")])));
        let ne = one(json!({"NumericNotEquals": {"s3:max-keys": "5"}}));
        assert!(ne.holds(&cx(&[("s3:max-keys", "6")])) && !ne.holds(&cx(&[("s3:max-keys", "5")])));
        let gt = one(json!({"NumericGreaterThan": {"s3:object-lock-remaining-retention-days": 3}}));
        assert!(gt.holds(&cx(&[("s3:object-lock-remaining-retention-days", "4")])));
        let before = one(json!({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}));
        assert!(before.holds(&cx(&[("aws:CurrentTime", "2026-12-06T15:00:00Z")])));
        assert!(!before.holds(&cx(&[("aws:CurrentTime", "2031-01-01T00:00:00Z")])));
        let after = one(json!({"DateGreaterThanEquals": {"aws:EpochTime": "2026-12-06"}}));
        assert!(after.holds(&cx(&[("aws:EpochTime", "1796569200")])));
        assert!(!after.holds(&cx(&[("aws:EpochTime", "1700000000")])));
        let tls = one(json!({"Bool": {"aws:SecureTransport": "false"}}));
        assert!(
            tls.holds(&cx(&[("aws:SecureTransport", "false")]))
                && !tls.holds(&cx(&[("aws:SecureTransport", "true")]))
        );
        let ip = one(json!({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}));
        assert!(
            ip.holds(&cx(&[("aws:SourceIp", "10.1.2.3")]))
                && ip.holds(&cx(&[("aws:SourceIp", "2001:db8::1")]))
        );
        assert!(ip.holds(&cx(&[("aws:SourceIp", "::ffff:10.9.9.9")])));
        assert!(!ip.holds(&cx(&[("aws:SourceIp", "127.0.0.1")])));
        let not_ip = one(json!({"NotIpAddress": {"aws:SourceIp": "127.0.0.1"}}));
        assert!(
            !not_ip.holds(&cx(&[("aws:SourceIp", "127.0.0.1")]))
                && not_ip.holds(&cx(&[("aws:SourceIp", "127.0.0.2")]))
        );
        let null = one(json!({"Null": {"s3:x-amz-server-side-encryption": "true"}}));
        assert!(
            null.holds(&Context::new()) && !null.holds(&cx(&[("s3:x-amz-server-side-encryption", "AES256")]))
        );
        let not_null = one(json!({"Null": {"s3:x-amz-server-side-encryption": false}}));
        assert!(!not_null.holds(&Context::new()));
    }

    #[test]
    fn set_qualifiers_read_every_value() {
        let all = one(json!({"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["a", "b"]}}));
        let any = one(json!({"ForAnyValue:StringEquals": {"s3:RequestObjectTagKeys": ["a"]}}));
        let mut ab = Context::new();
        ab.set_all("s3:RequestObjectTagKeys", vec!["a".into(), "b".into()]);
        let mut ac = Context::new();
        ac.set_all("s3:RequestObjectTagKeys", vec!["a".into(), "c".into()]);
        assert!(all.holds(&ab) && !all.holds(&ac) && all.holds(&Context::new()));
        assert!(any.holds(&ab) && any.holds(&ac) && !any.holds(&Context::new()));
    }

    #[test]
    fn bad_conditions_are_refused_naming_what_is_wrong() {
        let bad = [
            (json!({"StringEqualz": {"s3:prefix": "a"}}), "Invalid Condition type : StringEqualz"),
            (json!({"StringEquals": {"s3:prefixx": "a"}}), "invalid condition key: s3:prefixx"),
            (
                json!({"NumericLessThan": {"s3:max-keys": "ten"}}),
                "Invalid value for condition NumericLessThan on s3:max-keys: ten",
            ),
            (json!({"DateLessThan": {"aws:CurrentTime": "soon"}}), "soon"),
            (json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}), "10.0.0.0/33"),
            (json!({"Bool": {"aws:SecureTransport": "yes"}}), "yes"),
            (json!({"NullIfExists": {"s3:prefix": "true"}}), "NullIfExists"),
            (json!({"StringEquals": {"s3:prefix": {"a": 1}}}), "needs a string"),
            (json!({"StringEquals": {"s3:prefix": []}}), "has no value"),
            (json!({"StringEquals": {}}), "names no condition key"),
            (json!({"StringEquals": {"s3:ExistingObjectTag/": "x"}}), "invalid condition key"),
            (json!(["StringEquals"]), "must be an object"),
        ];
        for (block, want) in bad {
            let e = parse_block(&block).unwrap_err();
            assert!(e.to_string().contains(want), "{block}: {e}");
        }
        assert!(parse_block(&json!({"StringEquals": {"s3:ExistingObjectTag/Class": "x"}})).is_ok());
    }

    #[test]
    fn source_ip_blocks_narrow_callers_but_the_whole_space_does_not() {
        assert!(one(json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})).narrows_callers());
        assert!(!one(json!({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}})).narrows_callers());
        assert!(!one(json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})).narrows_callers());
        assert!(!one(json!({"StringEquals": {"s3:prefix": "a"}})).narrows_callers());
    }
}
