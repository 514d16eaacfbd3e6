//! The routes of Key Protect's v2 API this service answers ([`Route`]), read from a
//! method, a path and a query string: 404 for a path it does not serve, 405 for a method a
//! path does not take, 400 for a query parameter that does not parse.

use super::error::KpError;

/// An action on one key (`POST /api/v2/keys/{id}/actions/{action}`, or the older
/// `POST /api/v2/keys/{id}?action={action}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Wrap a DEK.
    Wrap,
    /// Unwrap a DEK.
    Unwrap,
    /// Rewrap a DEK under the current version.
    Rewrap,
    /// Make a new version.
    Rotate,
    /// Re-enable a suspended key.
    Enable,
    /// Suspend a key.
    Disable,
    /// Authorize a dual-authorization key's deletion (the first identity).
    SetForDeletion,
    /// Withdraw that authorization.
    UnsetForDeletion,
}

impl KeyAction {
    fn parse(name: &str) -> Result<Self, KpError> {
        Ok(match name {
            "wrap" => Self::Wrap,
            "unwrap" => Self::Unwrap,
            "rewrap" => Self::Rewrap,
            "rotate" => Self::Rotate,
            "enable" => Self::Enable,
            "disable" => Self::Disable,
            "setKeyForDeletion" => Self::SetForDeletion,
            "unsetKeyForDeletion" => Self::UnsetForDeletion,
            "restore" | "sync" => {
                return Err(KpError::new(
                    404,
                    "NOT_FOUND_ERR",
                    format!("the action {name:?} is not offered by this key service yet (docs/KEYS.md)"),
                ));
            }
            other => {
                return Err(KpError::new(
                    400,
                    "KEY_ACTION_INVALID_VALUE_ERR",
                    format!("unknown key action {other:?}"),
                ));
            }
        })
    }

    /// Its name in the API and the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wrap => "wrap",
            Self::Unwrap => "unwrap",
            Self::Rewrap => "rewrap",
            Self::Rotate => "rotate",
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::SetForDeletion => "setKeyForDeletion",
            Self::UnsetForDeletion => "unsetKeyForDeletion",
        }
    }
}

/// One operation asked of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /identity/token`: an API key for a bearer token.
    Token,
    /// `GET /api/v2/keys`.
    ListKeys,
    /// `HEAD /api/v2/keys`: the count in `Key-Total`.
    CountKeys,
    /// `POST /api/v2/keys`.
    CreateKey,
    /// `GET /api/v2/keys/{id}`.
    GetKey(String),
    /// `GET /api/v2/keys/{id}/metadata`.
    KeyMetadata(String),
    /// `DELETE /api/v2/keys/{id}`.
    DeleteKey(String),
    /// `DELETE /api/v2/keys/{id}/purge`.
    PurgeKey(String),
    /// `POST /api/v2/keys/{id}/restore`.
    RestoreKey(String),
    /// `GET /api/v2/keys/{id}/versions`.
    Versions(String),
    /// `POST /api/v2/keys/{id}/actions/{action}`.
    Action(String, KeyAction),
    /// `GET /api/v2/keys/{id}/registrations`, or for every key `GET /api/v2/keys/registrations`.
    Registrations(Option<String>),
    /// `POST /api/v2/keys/{id}/aliases/{alias}`.
    CreateAlias(String, String),
    /// `DELETE /api/v2/keys/{id}/aliases/{alias}`.
    DeleteAlias(String, String),
    /// `POST /api/v2/keys_with_policy_overrides`.
    CreateKeyWithPolicies,
    /// `GET /api/v2/keys/{id}/policies`.
    GetKeyPolicies(String),
    /// `PUT /api/v2/keys/{id}/policies`.
    PutKeyPolicies(String),
    /// `GET /api/v2/instance/policies`.
    GetInstancePolicies,
    /// `PUT /api/v2/instance/policies`.
    PutInstancePolicies,
    /// `GET /api/v2/keys/{id}/events`, or of every key `GET /api/v2/events` (cipherstore's:
    /// the audit trail, as Key Protect sends to Activity Tracker).
    Events(Option<String>),
    /// `POST /api/v2/bucket_keys/{bucket}` (cipherstore's, for gateways without an HSM): a
    /// bucket key, read, made on first write, or made for a new bucket.
    BucketKey(String),
    /// `DELETE /api/v2/bucket_keys/{bucket}`: a deleted bucket's keys forgotten.
    RemoveBucketKey(String),
    /// `GET /api/v2/bucket_keys/{bucket}/root`: the root key a bucket was first bound to.
    BucketRoot(String),
    /// `PUT /api/v2/bucket_keys/{bucket}/retention`: the bucket is under Object Lock.
    RetainBucket(String),
    /// `GET /api/v2/default_key`: the instance default root key, made on first use.
    DefaultKey,
    /// `GET /api/v2/key_rings`.
    ListRings,
    /// `POST /api/v2/key_rings/{id}`.
    CreateRing(String),
    /// `DELETE /api/v2/key_rings/{id}`.
    DeleteRing(String),
    /// `PATCH /api/v2/keys/{id}`: move the key to another ring.
    PatchKey(String),
    /// `POST /api/v2/import_token`.
    CreateImportToken,
    /// `GET /api/v2/import_token`.
    GetImportToken,
}

/// A policy a query names (`?policy=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyName {
    /// `rotation`.
    Rotation,
    /// `dualAuthDelete`.
    DualAuthDelete,
}

/// The query parameters the routes read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `force=true`.
    pub force: bool,
    /// `limit` (default 200, at most 5,000).
    pub limit: usize,
    /// `offset`.
    pub offset: usize,
    /// `state=1,5`: Key Protect's numeric states.
    pub states: Option<Vec<u8>>,
    /// `totalCount=true`.
    pub total_count: bool,
    /// `action=…` (the older form of actions).
    pub action: Option<String>,
    /// `preventKeyDeletion=…`: only registrations with (or without) retention.
    pub prevent_key_deletion: Option<bool>,
    /// `urlEncodedResourceCRNQuery=…`: only registrations whose resource CRN matches
    /// (`*` matches any run of characters).
    pub crn_query: Option<String>,
    /// `policy=…`: one policy of a key or of the instance.
    pub policy: Option<PolicyName>,
}

/// Decodes `%XX` escapes (and `+` as a space when `form`); `None` if malformed or not UTF-8.
pub fn percent_decode(s: &str, form: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if form => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn flag(name: &str, v: &str) -> Result<bool, KpError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(KpError::bad(format!("query parameter {name} must be true or false"))),
    }
}

fn number(name: &str, v: &str, max: usize) -> Result<usize, KpError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| KpError::bad(format!("query parameter {name} must be a whole number up to {max}")))
}

/// Whether `crn` matches a CRN query where `*` matches any run of characters.
pub fn crn_matches(query: &str, crn: &str) -> bool {
    let mut parts = query.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = crn.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Reads the query string.
pub fn query(q: &str) -> Result<Query, KpError> {
    let mut out = Query { limit: 200, ..Query::default() };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v, true)
            .ok_or_else(|| KpError::bad(format!("query parameter {k} is not valid")))?;
        if v.is_empty() {
            // IBM's SDKs send unset lists as empty values (`state=`).
            continue;
        }
        match k {
            "force" => out.force = flag(k, &v)?,
            "totalCount" => out.total_count = flag(k, &v)?,
            "limit" => out.limit = number(k, &v, 5000)?,
            "offset" => out.offset = number(k, &v, usize::MAX)?,
            "action" => out.action = Some(v),
            "preventKeyDeletion" => out.prevent_key_deletion = Some(flag(k, &v)?),
            "urlEncodedResourceCRNQuery" => {
                let decoded = percent_decode(&v, false).ok_or_else(|| {
                    KpError::bad("urlEncodedResourceCRNQuery is not a valid URL-encoded CRN")
                })?;
                out.crn_query = Some(decoded);
            }
            "state" => {
                let states = v
                    .split(',')
                    .map(|s| s.parse::<u8>().ok().filter(|n| [0, 1, 2, 3, 5].contains(n)))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| {
                        KpError::bad("query parameter state is a comma-separated list of 0, 1, 2, 3 and 5")
                    })?;
                out.states = Some(states);
            }
            "policy" => {
                out.policy = Some(match v.as_str() {
                    "rotation" => PolicyName::Rotation,
                    "dualAuthDelete" => PolicyName::DualAuthDelete,
                    other => {
                        return Err(KpError::bad(format!(
                            "policy {other:?} is not offered by this key service (rotation, dualAuthDelete)"
                        )));
                    }
                });
            }
            // Accepted and without effect here: filters this service does not keep.
            "extractable" | "filter" | "sort" | "search" | "allKeyStates" => {}
            other => return Err(KpError::bad(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(out)
}

fn not_allowed(method: &str, path: &str) -> KpError {
    KpError::new(405, "METHOD_NOT_ALLOWED_ERR", format!("{method} is not allowed on {path}"))
}

/// The route of `method` on `path` (`query` for the older `?action=` form).
pub fn route(method: &str, path: &str, query: &Query) -> Result<Route, KpError> {
    if path == "/identity/token" {
        return if method == "POST" { Ok(Route::Token) } else { Err(not_allowed(method, path)) };
    }
    let not_found = || KpError::new(404, "NOT_FOUND_ERR", format!("no route {path} on this key service"));
    let rest = path.strip_prefix("/api/v2/").ok_or_else(not_found)?;
    let segs = rest
        .trim_end_matches('/')
        .split('/')
        .map(|s| percent_decode(s, false).filter(|d| !d.is_empty() && d.len() <= 240))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(not_found)?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let id = |s: &str| s.to_owned();
    let r = match (method, segs.as_slice()) {
        ("GET", ["keys"]) => Route::ListKeys,
        ("HEAD", ["keys"]) => Route::CountKeys,
        ("POST", ["keys"]) => Route::CreateKey,
        (_, ["keys"]) => return Err(not_allowed(method, path)),
        ("GET", ["keys", "registrations"]) => Route::Registrations(None),
        ("GET", ["keys", k]) => Route::GetKey(id(k)),
        ("DELETE", ["keys", k]) => Route::DeleteKey(id(k)),
        ("PATCH", ["keys", k]) => Route::PatchKey(id(k)),
        ("POST", ["keys", k]) => match &query.action {
            Some(a) => Route::Action(id(k), KeyAction::parse(a)?),
            None => return Err(KpError::bad("POST on a key needs ?action=… (or use …/actions/{action})")),
        },
        (_, ["keys", _]) => return Err(not_allowed(method, path)),
        ("GET", ["keys", k, "metadata"]) => Route::KeyMetadata(id(k)),
        ("DELETE", ["keys", k, "purge"]) => Route::PurgeKey(id(k)),
        ("POST", ["keys", k, "restore"]) => Route::RestoreKey(id(k)),
        ("GET", ["keys", k, "versions"]) => Route::Versions(id(k)),
        ("GET", ["keys", k, "registrations"]) => Route::Registrations(Some(id(k))),
        (_, ["keys", _, "metadata" | "purge" | "restore" | "versions" | "registrations"]) => {
            return Err(not_allowed(method, path));
        }
        ("POST", ["keys", k, "actions", a]) => Route::Action(id(k), KeyAction::parse(a)?),
        (_, ["keys", _, "actions", _]) => return Err(not_allowed(method, path)),
        ("POST", ["keys_with_policy_overrides"]) => Route::CreateKeyWithPolicies,
        (_, ["keys_with_policy_overrides"]) => return Err(not_allowed(method, path)),
        ("GET", ["keys", k, "policies"]) => Route::GetKeyPolicies(id(k)),
        ("PUT", ["keys", k, "policies"]) => Route::PutKeyPolicies(id(k)),
        (_, ["keys", _, "policies"]) => return Err(not_allowed(method, path)),
        ("POST", ["bucket_keys", b]) => Route::BucketKey(id(b)),
        ("DELETE", ["bucket_keys", b]) => Route::RemoveBucketKey(id(b)),
        (_, ["bucket_keys", _]) => return Err(not_allowed(method, path)),
        ("GET", ["bucket_keys", b, "root"]) => Route::BucketRoot(id(b)),
        ("PUT", ["bucket_keys", b, "retention"]) => Route::RetainBucket(id(b)),
        (_, ["bucket_keys", _, "root" | "retention"]) => return Err(not_allowed(method, path)),
        ("POST", ["import_token"]) => Route::CreateImportToken,
        ("GET", ["import_token"]) => Route::GetImportToken,
        (_, ["import_token"]) => return Err(not_allowed(method, path)),
        ("GET", ["key_rings"]) => Route::ListRings,
        (_, ["key_rings"]) => return Err(not_allowed(method, path)),
        ("POST", ["key_rings", r]) => Route::CreateRing(id(r)),
        ("DELETE", ["key_rings", r]) => Route::DeleteRing(id(r)),
        (_, ["key_rings", _]) => return Err(not_allowed(method, path)),
        ("GET", ["default_key"]) => Route::DefaultKey,
        (_, ["default_key"]) => return Err(not_allowed(method, path)),
        ("GET", ["events"]) => Route::Events(None),
        ("GET", ["keys", k, "events"]) => Route::Events(Some(id(k))),
        (_, ["events"] | ["keys", _, "events"]) => return Err(not_allowed(method, path)),
        ("GET", ["instance", "policies"]) => Route::GetInstancePolicies,
        ("PUT", ["instance", "policies"]) => Route::PutInstancePolicies,
        (_, ["instance", "policies"]) => return Err(not_allowed(method, path)),
        ("POST", ["keys", k, "aliases", a]) => Route::CreateAlias(id(k), id(a)),
        ("DELETE", ["keys", k, "aliases", a]) => Route::DeleteAlias(id(k), id(a)),
        (_, ["keys", _, "aliases", _]) => return Err(not_allowed(method, path)),
        _ => {
            return Err(KpError::new(
                404,
                "NOT_FOUND_ERR",
                format!("no route {path} on this key service (KMIP is not offered yet: docs/KEYS.md)"),
            ));
        }
    };
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: &str, path: &str) -> Result<Route, KpError> {
        route(method, path, &Query::default())
    }

    #[test]
    fn every_route_and_refusal() {
        assert_eq!(r("POST", "/identity/token"), Ok(Route::Token));
        assert_eq!(r("GET", "/api/v2/keys"), Ok(Route::ListKeys));
        assert_eq!(r("HEAD", "/api/v2/keys"), Ok(Route::CountKeys));
        assert_eq!(r("GET", "/api/v2/keys/abc"), Ok(Route::GetKey("abc".into())));
        assert_eq!(r("GET", "/api/v2/keys/my%20key/metadata"), Ok(Route::KeyMetadata("my key".into())));
        assert_eq!(
            r("POST", "/api/v2/keys/k/actions/unwrap"),
            Ok(Route::Action("k".into(), KeyAction::Unwrap))
        );
        assert_eq!(r("GET", "/api/v2/keys/registrations"), Ok(Route::Registrations(None)));
        assert_eq!(
            r("DELETE", "/api/v2/keys/k/aliases/a-1"),
            Ok(Route::DeleteAlias("k".into(), "a-1".into()))
        );
        let old = Query { action: Some("rotate".into()), ..Query::default() };
        assert_eq!(route("POST", "/api/v2/keys/k", &old), Ok(Route::Action("k".into(), KeyAction::Rotate)));
        assert_eq!(r("PUT", "/api/v2/keys").unwrap_err().status, 405);
        assert_eq!(r("GET", "/identity/token").unwrap_err().status, 405);
        assert_eq!(r("GET", "/api/v2/key_rings"), Ok(Route::ListRings));
        assert_eq!(r("PATCH", "/api/v2/keys/k"), Ok(Route::PatchKey("k".into())));
        assert_eq!(r("GET", "/api/v2/kmip_adapters").unwrap_err().status, 404);
        assert_eq!(r("GET", "/api/v2/keys/%zz").unwrap_err().status, 404);
        assert_eq!(
            r("POST", "/api/v2/keys/k/actions/explode").unwrap_err().code,
            "KEY_ACTION_INVALID_VALUE_ERR"
        );
        assert_eq!(
            r("POST", "/api/v2/keys/k/actions/setKeyForDeletion"),
            Ok(Route::Action("k".into(), KeyAction::SetForDeletion))
        );
        assert_eq!(r("PUT", "/api/v2/keys/k/policies"), Ok(Route::PutKeyPolicies("k".into())));
        assert_eq!(r("GET", "/api/v2/instance/policies"), Ok(Route::GetInstancePolicies));
        assert_eq!(r("GET", "/api/v2/events"), Ok(Route::Events(None)));
        assert_eq!(r("GET", "/api/v2/keys/k/events"), Ok(Route::Events(Some("k".into()))));
        assert_eq!(r("DELETE", "/api/v2/instance/policies").unwrap_err().status, 405);
        assert_eq!(query("policy=allowedNetwork").unwrap_err().status, 400);
        assert_eq!(r("POST", "/api/v2/keys/k").unwrap_err().status, 400);
    }

    #[test]
    fn queries_parse_or_name_the_bad_parameter() {
        assert_eq!(query("state=&limit=").unwrap().states, None);
        assert_eq!(query("state=&limit=").unwrap().states, None);
        let q = query("force=true&limit=10&offset=5&state=1,5&totalCount=true").unwrap();
        assert_eq!(
            (q.force, q.limit, q.offset, q.states, q.total_count),
            (true, 10, 5, Some(vec![1, 5]), true)
        );
        for (bad, name) in
            [("force=yes", "force"), ("limit=5001", "limit"), ("state=4", "state"), ("bogus=1", "bogus")]
        {
            assert!(query(bad).unwrap_err().message.contains(name), "{bad}");
        }
        assert_eq!(percent_decode("a%2Bb+c", true).as_deref(), Some("a+b c"));
        let q = query(
            "preventKeyDeletion=true&urlEncodedResourceCRNQuery=crn%253Av1%253A*%253Abucket%253Aphotos",
        )
        .unwrap();
        assert_eq!(
            (q.prevent_key_deletion, q.crn_query.as_deref()),
            (Some(true), Some("crn:v1:*:bucket:photos"))
        );
        assert!(crn_matches("crn:v1:*:bucket:photos", "crn:v1:cipherstore:local:bucket:photos"));
        assert!(!crn_matches("crn:v1:*:bucket:photos", "crn:v1:cipherstore:local:bucket:photos2"));
        assert!(crn_matches(
            "crn:v1:cipherstore:local:bucket:photos",
            "crn:v1:cipherstore:local:bucket:photos"
        ));
        assert!(crn_matches("*", "anything"));
        assert_eq!(percent_decode("%f", false), None);
    }
}
