//! The explicit grant headers (`x-amz-grant-read`, `-write`, `-read-acp`, `-write-acp`,
//! `-full-control`): each a comma-separated list of `id="…"`, `emailAddress="…"` or
//! `uri="…"` grantees, quotes optional.

use super::AclError;
use super::grants::{Grantee, Permission};

/// The grant headers and the permission each gives.
pub const GRANT_HEADERS: [(&str, Permission); 5] = [
    ("x-amz-grant-read", Permission::Read),
    ("x-amz-grant-write", Permission::Write),
    ("x-amz-grant-read-acp", Permission::ReadAcp),
    ("x-amz-grant-write-acp", Permission::WriteAcp),
    ("x-amz-grant-full-control", Permission::FullControl),
];

/// A grantee as a header names it, before an email is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// A grantee known as it is (a canonical id or a group).
    Grantee(Grantee),
    /// A user by email address.
    Email(String),
}

/// The longest grant header value read (AWS's headers total at most 8 KiB).
const MAX_VALUE: usize = 8 * 1024;

/// The grantees one grant header `value` names, in order.
pub fn parse(header: &str, value: &str) -> Result<Vec<Named>, AclError> {
    if value.len() > MAX_VALUE {
        return Err(AclError::Malformed(format!("{header} is longer than {MAX_VALUE} bytes")));
    }
    let mut out = Vec::new();
    for item in split_outside_quotes(value) {
        let item = item.trim();
        if item.is_empty() {
            return Err(AclError::Malformed(format!("{header} has an empty grantee")));
        }
        let Some((kind, raw)) = item.split_once('=') else {
            return Err(AclError::Malformed(format!("{header}: {item:?} is not type=value")));
        };
        let raw = raw.trim();
        let unquoted = match raw.strip_prefix('"') {
            Some(rest) => rest
                .strip_suffix('"')
                .filter(|v| !v.contains('"'))
                .ok_or_else(|| AclError::Malformed(format!("{header}: unbalanced quotes in {item:?}")))?,
            None if !raw.contains('"') => raw,
            None => return Err(AclError::Malformed(format!("{header}: stray quote in {item:?}"))),
        };
        if unquoted.is_empty() {
            return Err(AclError::Malformed(format!("{header}: {kind} is empty")));
        }
        out.push(match kind.trim() {
            "id" => Named::Grantee(Grantee::Id(unquoted.to_owned())),
            "emailAddress" => Named::Email(unquoted.to_owned()),
            "uri" => Named::Grantee(Grantee::group(unquoted)?),
            other => {
                return Err(AclError::Malformed(format!(
                    "{header}: grantee type {other:?} is none of id, emailAddress, uri"
                )));
            }
        });
    }
    Ok(out)
}

/// `value` split at the commas that are not inside double quotes.
fn split_outside_quotes(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    #[test]
    fn grantees_are_read_as_aws_writes_them() {
        let got = parse(
            "x-amz-grant-read",
            r#"id="abc", emailAddress="a,b@example.com",uri="http://acs.amazonaws.com/groups/global/AllUsers", id=plain"#,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Named::Grantee(Grantee::Id("abc".into())),
                Named::Email("a,b@example.com".into()),
                Named::Grantee(Grantee::AllUsers),
                Named::Grantee(Grantee::Id("plain".into())),
            ]
        );
    }

    #[test]
    fn every_malformed_value_is_refused_by_name() {
        for bad in [
            "",
            "id",
            "id=\"\"",
            "name=\"x\"",
            "id=\"x",
            "id=x\"y",
            "id=\"a\"b\"",
            "id=\"a\",,id=\"b\"",
            "uri=\"http://acs.amazonaws.com/groups/s3/LogDelivery\"",
        ] {
            let e = parse("x-amz-grant-write", bad).unwrap_err();
            assert!(
                e.to_string().contains("x-amz-grant-write") || e.to_string().contains("group"),
                "{bad}: {e}"
            );
        }
        assert!(parse("h", &"id=a,".repeat(2000)).is_err());
    }
}
