//! The admin HTTP API's requests, free of HTTP: a method, a path under `/_admin/v1/` and a
//! JSON body parsed into a [`Call`] (every fault named: 400 for a bad body, 404 for an
//! unknown route, 405 for a method a route does not take), and a call run against
//! [`Admin`] into a status and a JSON body. docs/ACCESS.md lists the routes; the binary's
//! `serve/admin.rs` adds the token check and the HTTP around it.

use serde::Deserialize;
use zeroize::Zeroizing;

use super::admin::{Admin, NewKey, parse_expiry};
use super::directory::NewUser;
use super::error::IamError;
use super::role::Role;

/// Where the API's routes begin.
pub const PREFIX: &str = "/_admin/v1/";

/// The largest request body read.
pub const MAX_BODY: usize = 64 * 1024;

/// One operation asked of the API.
pub enum Call {
    /// `GET users`.
    ListUsers,
    /// `POST users`.
    CreateUser(NewUser),
    /// `GET users/NAME`.
    ShowUser(String),
    /// `DELETE users/NAME`.
    DeleteUser(String),
    /// `GET keys`, `GET users/NAME/keys`.
    ListKeys(Option<String>),
    /// `POST users/NAME/keys`.
    CreateKey(NewKey),
    /// `PATCH keys/ID` with `{"enabled": …}`.
    SetKeyEnabled(String, bool),
    /// `DELETE keys/ID`.
    DeleteKey(String),
    /// `PUT users/NAME/roles/BUCKET` with `{"role": …}`.
    Grant(String, String, Role),
    /// `DELETE users/NAME/roles/BUCKET`.
    Revoke(String, String),
}

/// A refusal, as the API answers it: `{"error":{"code":…,"message":…}}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// A stable code (`NoSuchUser`, `MalformedJSON`, …).
    pub code: &'static str,
    /// What is wrong, never a secret.
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({"error": {"code": self.code, "message": self.message}}).to_string()
    }
}

impl From<IamError> for ApiError {
    fn from(e: IamError) -> Self {
        let (status, code) = match &e {
            IamError::Invalid { .. } => (400, "InvalidArgument"),
            IamError::UserExists(_) => (409, "UserExists"),
            IamError::CanonicalIdTaken(..) => (409, "CanonicalIdTaken"),
            IamError::AccessKeyTaken(_) => (409, "AccessKeyTaken"),
            IamError::NoSuchUser(_) => (404, "NoSuchUser"),
            IamError::NoSuchAccessKey(_) => (404, "NoSuchAccessKey"),
            IamError::NoSuchGrant(..) => (404, "NoSuchRole"),
            IamError::ApiKeyExists(_) => (409, "ApiKeyExists"),
            IamError::NoSuchApiKey(_) => (404, "NoSuchApiKey"),
            IamError::Unavailable(_) => (503, "ServiceUnavailable"),
            IamError::Stored { .. } | IamError::Io { .. } | IamError::Seal { .. } => (500, "InternalError"),
        };
        Self::new(status, code, e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    name: String,
    canonical_id: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
    #[serde(default = "yes")]
    create_buckets: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    expires: Option<String>,
}

/// A secret read from a body, wiped when dropped.
struct Secret(Zeroizing<String>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnabledBody {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    // serde_json's message names the field and position, never the value.
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, "MalformedJSON", format!("the body: {e}")))
}

fn no_body(body: &[u8]) -> Result<(), ApiError> {
    match body.iter().all(u8::is_ascii_whitespace) {
        true => Ok(()),
        false => Err(ApiError::new(400, "UnexpectedBody", "this request takes no body")),
    }
}

/// The call `method` on `path` with `body` asks for.
pub fn parse(method: &str, path: &str, body: &[u8]) -> Result<Call, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(413, "BodyTooLarge", format!("a body has at most {MAX_BODY} bytes")));
    }
    let rest = path
        .strip_prefix(PREFIX)
        .ok_or_else(|| ApiError::new(404, "NoSuchRoute", format!("routes begin with {PREFIX}")))?;
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ApiError::new(404, "NoSuchRoute", format!("no route {path}")));
    }
    let wrong = || ApiError::new(405, "MethodNotAllowed", format!("{method} is not a method of {path}"));
    let call = match (parts.as_slice(), method) {
        (["users"], "GET") => Call::ListUsers,
        (["users"], "POST") => {
            let b: UserBody = json(body)?;
            Call::CreateUser(NewUser {
                name: b.name,
                canonical_id: b.canonical_id,
                display_name: b.display_name,
                email: b.email,
                create_buckets: b.create_buckets,
            })
        }
        (["users"], _) => return Err(wrong()),
        (["users", name], "GET") => Call::ShowUser((*name).to_owned()),
        (["users", name], "DELETE") => Call::DeleteUser((*name).to_owned()),
        (["users", _], _) => return Err(wrong()),
        (["users", name, "keys"], "GET") => Call::ListKeys(Some((*name).to_owned())),
        (["users", name, "keys"], "POST") => {
            let b: KeyBody =
                if body.iter().all(u8::is_ascii_whitespace) { KeyBody::default() } else { json(body)? };
            let given = match (b.access_key_id, b.secret_access_key) {
                (Some(ak), Some(Secret(sk))) => Some((ak, sk)),
                (None, None) => None,
                _ => {
                    return Err(ApiError::new(
                        400,
                        "InvalidArgument",
                        "access_key_id and secret_access_key come together, or neither (random ones)",
                    ));
                }
            };
            let expires = b.expires.as_deref().map(parse_expiry).transpose()?;
            Call::CreateKey(NewKey { user: (*name).to_owned(), given, expires })
        }
        (["users", _, "keys"], _) => return Err(wrong()),
        (["users", name, "roles", bucket], "PUT") => {
            let b: RoleBody = json(body)?;
            let role =
                b.role.parse::<Role>().map_err(|e| ApiError::new(400, "InvalidArgument", e.to_string()))?;
            Call::Grant((*name).to_owned(), (*bucket).to_owned(), role)
        }
        (["users", name, "roles", bucket], "DELETE") => {
            Call::Revoke((*name).to_owned(), (*bucket).to_owned())
        }
        (["users", _, "roles", _], _) => return Err(wrong()),
        (["keys"], "GET") => Call::ListKeys(None),
        (["keys"], _) => return Err(wrong()),
        (["keys", ak], "PATCH") => Call::SetKeyEnabled((*ak).to_owned(), json::<EnabledBody>(body)?.enabled),
        (["keys", ak], "DELETE") => Call::DeleteKey((*ak).to_owned()),
        (["keys", _], _) => return Err(wrong()),
        _ => return Err(ApiError::new(404, "NoSuchRoute", format!("no route {path}"))),
    };
    if matches!(method, "GET" | "DELETE") {
        no_body(body)?;
    }
    Ok(call)
}

fn to_body(value: &impl serde::Serialize) -> Result<Zeroizing<String>, ApiError> {
    serde_json::to_string(value)
        .map(Zeroizing::new)
        .map_err(|e| ApiError::new(500, "InternalError", format!("cannot render the answer: {e}")))
}

/// Runs `call` for `by` (the audit trail's initiator): the status and JSON body.
pub async fn run(admin: &Admin, by: &str, call: Call) -> Result<(u16, Zeroizing<String>), ApiError> {
    Ok(match call {
        Call::ListUsers => (200, to_body(&admin.users().await?)?),
        Call::CreateUser(new) => (201, to_body(&admin.create_user(by, new).await?)?),
        Call::ShowUser(name) => (200, to_body(&admin.user(&name).await?)?),
        Call::DeleteUser(name) => {
            let removed = admin.delete_user(by, &name).await?;
            (200, to_body(&serde_json::json!({"deleted": name, "access_keys_removed": removed}))?)
        }
        Call::ListKeys(user) => (200, to_body(&admin.keys(user.as_deref()).await?)?),
        Call::CreateKey(new) => (201, admin.create_key(by, new).await?.to_json()),
        Call::SetKeyEnabled(ak, enabled) => (200, to_body(&admin.set_enabled(by, &ak, enabled).await?)?),
        Call::DeleteKey(ak) => {
            admin.delete_key(by, &ak).await?;
            (200, to_body(&serde_json::json!({"deleted": ak}))?)
        }
        Call::Grant(user, bucket, role) => {
            admin.grant(by, &user, &bucket, role).await?;
            (200, to_body(&serde_json::json!({"user": user, "bucket": bucket, "role": role}))?)
        }
        Call::Revoke(user, bucket) => {
            let was = admin.revoke(by, &user, &bucket).await?;
            (200, to_body(&serde_json::json!({"user": user, "bucket": bucket, "revoked": was}))?)
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    fn status(method: &str, path: &str, body: &str) -> Result<(), (u16, &'static str)> {
        parse(method, path, body.as_bytes()).map(|_| ()).map_err(|e| (e.status, e.code))
    }

    #[test]
    fn every_route_parses_and_every_fault_is_named() {
        let p = "/_admin/v1/";
        let ok: [(&str, String, &str); 12] = [
            ("GET", format!("{p}users"), ""),
            ("POST", format!("{p}users"), r#"{"name":"carol","email":"c@example.com"}"#),
            ("GET", format!("{p}users/carol"), ""),
            ("DELETE", format!("{p}users/carol/"), ""),
            ("GET", format!("{p}users/carol/keys"), ""),
            ("POST", format!("{p}users/carol/keys"), ""),
            ("POST", format!("{p}users/carol/keys"), r#"{"expires":"2999-01-01T00:00:00Z"}"#),
            ("GET", format!("{p}keys"), ""),
            ("PATCH", format!("{p}keys/AK1"), r#"{"enabled":false}"#),
            ("DELETE", format!("{p}keys/AK1"), ""),
            ("PUT", format!("{p}users/carol/roles/photos"), r#"{"role":"reader"}"#),
            ("DELETE", format!("{p}users/carol/roles/photos"), ""),
        ];
        for (m, path, body) in &ok {
            assert_eq!(status(m, path, body), Ok(()), "{m} {path}");
        }
        let bad: [(&str, String, &str, (u16, &str)); 12] = [
            ("GET", "/users".into(), "", (404, "NoSuchRoute")),
            ("GET", format!("{p}groups"), "", (404, "NoSuchRoute")),
            ("GET", format!("{p}users//keys"), "", (404, "NoSuchRoute")),
            ("PUT", format!("{p}users"), "", (405, "MethodNotAllowed")),
            ("POST", format!("{p}keys/AK1"), "", (405, "MethodNotAllowed")),
            ("POST", format!("{p}users"), "{", (400, "MalformedJSON")),
            ("POST", format!("{p}users"), r#"{"name":"x","admin":true}"#, (400, "MalformedJSON")),
            ("POST", format!("{p}users/carol/keys"), r#"{"access_key_id":"AK"}"#, (400, "InvalidArgument")),
            ("POST", format!("{p}users/carol/keys"), r#"{"expires":"soon"}"#, (400, "InvalidArgument")),
            ("PUT", format!("{p}users/carol/roles/b"), r#"{"role":"owner"}"#, (400, "InvalidArgument")),
            ("GET", format!("{p}users"), "{}", (400, "UnexpectedBody")),
            ("PATCH", format!("{p}keys/AK1"), &"x".repeat(MAX_BODY + 1), (413, "BodyTooLarge")),
        ];
        for (m, path, body, want) in &bad {
            assert_eq!(status(m, path, body), Err(*want), "{m} {path} {}", &body[..body.len().min(40)]);
        }
    }

    #[test]
    fn errors_keep_their_status_and_no_secret() {
        let e = ApiError::from(IamError::NoSuchUser("carol".into()));
        assert_eq!((e.status, e.code), (404, "NoSuchUser"));
        let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(body["error"]["code"], "NoSuchUser");
        let secret = "s3cr3t-value-that-must-not-show";
        let e = parse(
            "POST",
            "/_admin/v1/users/carol/keys",
            format!(r#"{{"secret_access_key":"{secret}","x":1}}"#).as_bytes(),
        )
        .err()
        .unwrap();
        assert!(!e.message.contains(secret), "{}", e.message);
    }
}
