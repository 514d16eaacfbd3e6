//! The service itself ([`KeyService`]): one request in (method, path, query, the
//! `Bluemix-Instance`, `Authorization` and `Prefer` headers, the body), one response out,
//! free of HTTP and blocking (the HSM is called in place; the binary runs it on a blocking
//! thread). Order of checks: route, instance, bearer token, role, body, then the key
//! manager with the caller's identity as the audit trail's initiator.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::access::{allows, least_role};
use super::body;
use super::error::KpError;
use super::route::{self, KeyAction, Query, Route};
use super::view;
use iam::Identities;
use keys::{KeyManager, KeyRef, NewRootKey};

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// The instance id clients send as `Bluemix-Instance` (the key manager's instance).
    pub instance: String,
    /// How long after deletion a key may be purged (Key Protect: 4 hours).
    pub purge_wait: Duration,
}

/// Key Protect's wait between deleting and purging a key.
pub const PURGE_WAIT: Duration = Duration::from_secs(4 * 3600);

/// One request, as the HTTP front read it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path, still percent-encoded.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
    /// `Bluemix-Instance`.
    pub instance: Option<&'a str>,
    /// `Authorization`.
    pub authorization: Option<&'a str>,
    /// `Prefer`.
    pub prefer: Option<&'a str>,
    /// `X-Kms-Key-Ring`: every key is in the ring `default` (key rings are not offered yet).
    pub key_ring: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// One response.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// JSON body (it may hold a DEK or a token: wiped when dropped).
    pub body: Option<Zeroizing<String>>,
    /// `Key-Total`, for `HEAD /api/v2/keys`.
    pub key_total: Option<usize>,
}

impl Response {
    fn json(status: u16, v: &Value) -> Self {
        Self { status, body: Some(Zeroizing::new(v.to_string())), key_total: None }
    }

    fn empty(status: u16) -> Self {
        Self { status, body: None, key_total: None }
    }

    /// A refusal as a response.
    pub fn refusal(e: &KpError) -> Self {
        Self { status: e.status, body: Some(Zeroizing::new(e.body())), key_total: None }
    }
}

/// The key service over a key manager and the identities that hold its API keys.
pub struct KeyService {
    manager: Arc<KeyManager>,
    ids: Arc<Identities>,
    options: ServiceOptions,
}

fn policy_name(q: &Query) -> Option<&'static str> {
    q.policy.map(|p| match p {
        route::PolicyName::Rotation => "rotation",
        route::PolicyName::DualAuthDelete => "dualAuthDelete",
    })
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

impl KeyService {
    /// The service; call [`Identities::ensure_token_key`] before serving.
    pub fn new(manager: Arc<KeyManager>, ids: Arc<Identities>, options: ServiceOptions) -> Self {
        Self { manager, ids, options }
    }

    /// The instance id clients send.
    pub fn instance(&self) -> &str {
        &self.options.instance
    }

    /// Answers one request. Blocking: it may call the HSM.
    pub fn handle(&self, req: &Request<'_>) -> Response {
        match self.answer(req) {
            Ok(r) => r,
            Err(e) if req.path == "/identity/token" => {
                // IBM IAM's error shape (its SDKs read errorMessage).
                let v = json!({"errorCode": e.code, "errorMessage": e.message, "context": {}});
                Response::json(e.status, &v)
            }
            Err(e) => Response::refusal(&e),
        }
    }

    fn answer(&self, req: &Request<'_>) -> Result<Response, KpError> {
        if req.body.len() > body::MAX_BODY {
            return Err(KpError::new(
                413,
                "BODY_TOO_LARGE_ERR",
                format!("a body is at most {} bytes", body::MAX_BODY),
            ));
        }
        let query = route::query(req.query)?;
        let route = route::route(req.method, req.path, &query)?;
        let Some(least) = least_role(&route) else {
            return self.token(req.body);
        };
        match req.instance {
            None => {
                return Err(KpError::new(400, "BAD_REQUEST_ERR", "the Bluemix-Instance header is missing"));
            }
            Some(i) if i != self.options.instance => {
                return Err(KpError::new(
                    401,
                    "UNAUTHORIZED_ERR",
                    format!(
                        "instance {:?} is not served here (`cipherstore keys instance` prints the one that is)",
                        i.chars().take(64).collect::<String>()
                    ),
                ));
            }
            Some(_) => {}
        }
        let token = req
            .authorization
            .and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")))
            .ok_or_else(|| {
                KpError::new(
                    401,
                    "UNAUTHORIZED_ERR",
                    "send Authorization: Bearer <token from /identity/token>",
                )
            })?;
        let caller = self.ids.snapshot().bearer(token.trim(), base::clock::now_unix())?;
        if !allows(caller.role, least) {
            tracing::info!(identity = %caller.identity, role = %caller.role, needs = %least, path = req.path, "key service request refused: role");
            return Err(KpError::new(
                403,
                "FORBIDDEN_ERR",
                format!("API key {:?} has role {}; this operation needs {least}", caller.name, caller.role),
            ));
        }
        keys::audit::as_initiator(&caller.identity, || {
            self.check_ring(&route, req.key_ring)?;
            self.run(route, &query, req)
        })
    }

    /// `X-Kms-Key-Ring`, where given, must name a ring, and the key a route acts on must
    /// be in it (else the key is not found there, as Key Protect answers).
    fn check_ring(&self, route: &Route, ring: Option<&str>) -> Result<(), KpError> {
        let Some(ring) = ring else { return Ok(()) };
        let m = &self.manager;
        if !matches!(route, Route::CreateRing(_)) && !m.rings()?.iter().any(|r| r.id == ring) {
            return Err(keys::KeysError::RingNotFound(ring.chars().take(100).collect()).into());
        }
        let key = match route {
            Route::GetKey(k)
            | Route::KeyMetadata(k)
            | Route::DeleteKey(k)
            | Route::PurgeKey(k)
            | Route::RestoreKey(k)
            | Route::Versions(k)
            | Route::Action(k, _)
            | Route::CreateAlias(k, _)
            | Route::DeleteAlias(k, _)
            | Route::GetKeyPolicies(k)
            | Route::PutKeyPolicies(k)
            | Route::PatchKey(k)
            | Route::Registrations(Some(k))
            | Route::Events(Some(k)) => k,
            _ => return Ok(()),
        };
        let shown = m.show(&KeyRef::parse(key))?;
        if shown.key_ring != ring {
            return Err(KpError::new(
                404,
                "KEY_NOT_FOUND_ERR",
                format!("no key {key:?} in key ring {ring:?}"),
            ));
        }
        Ok(())
    }

    fn token(&self, bytes: &[u8]) -> Result<Response, KpError> {
        let apikey = body::token_form(bytes)?;
        let (issued, caller) = self
            .ids
            .snapshot()
            .exchange_apikey(&apikey, base::clock::now_unix())
            .map_err(|e| KpError::new(400, "BXNIM0415E", e.to_string()))?;
        tracing::info!(identity = %caller.identity, "key service token issued");
        let v = json!({
            "access_token": issued.access_token,
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": issued.expires - issued.issued,
            "expiration": issued.expires,
            "scope": "ibm openid",
        });
        Ok(Response::json(200, &v))
    }

    /// The key material a body carries, opened with the import token where it was
    /// encrypted for it (a payload or nonce that does not check is a 400).
    fn material(&self, m: Option<body::Material>) -> Result<Option<engine::SecretKey>, KpError> {
        Ok(match m {
            None => None,
            Some(body::Material::Plain(k)) => Some(k),
            Some(body::Material::ForToken { payload, encrypted_nonce, iv, sha256 }) => {
                let m = keys::import_token::EncryptedMaterial {
                    payload: &payload,
                    encrypted_nonce: &encrypted_nonce,
                    iv: &iv,
                    sha256,
                };
                Some(self.manager.open_import(&m).map_err(|e| match e {
                    keys::KeysError::Refused(why) => KpError::bad(why),
                    other => other.into(),
                })?)
            }
        })
    }

    fn token_json(t: &keys::import_token::ImportToken, secrets: bool) -> Value {
        let mut v = json!({
            "creationDate": base::clock::rfc3339(t.created),
            "expirationDate": base::clock::rfc3339(t.expires),
            "maxAllowedRetrievals": t.max_retrievals,
            "remainingRetrievals": t.remaining,
        });
        if secrets {
            v["payload"] = json!(b64(t.public_key_pem.as_bytes()));
            v["nonce"] = json!(t.nonce);
        }
        v
    }

    fn key_json(&self, k: &keys::KeyView) -> Value {
        view::key(k, keys::manager::RESTORE_WINDOW_SECS, self.options.purge_wait.as_secs())
    }

    fn keys_json(&self, k: &keys::KeyView, status: u16) -> Response {
        Response::json(status, &view::collection(view::KEY_TYPE, vec![self.key_json(k)], None))
    }

    fn run(&self, route: Route, q: &Query, req: &Request<'_>) -> Result<Response, KpError> {
        let m = &self.manager;
        let key = |id: &str| KeyRef::parse(id);
        let representation = req.prefer.is_some_and(|p| p.contains("return=representation"));
        Ok(match route {
            Route::Token => return self.token(req.body),
            Route::ListKeys | Route::CountKeys => {
                let wanted = q.states.clone().unwrap_or_else(|| vec![0, 1, 2, 3]);
                let all: Vec<_> = m
                    .list()?
                    .into_iter()
                    .filter(|k| wanted.contains(&view::state_code(k.state)))
                    .filter(|k| req.key_ring.is_none_or(|r| k.key_ring == r))
                    .collect();
                if route == Route::CountKeys {
                    return Ok(Response { status: 200, body: None, key_total: Some(all.len()) });
                }
                let total = all.len();
                let page = all.iter().skip(q.offset).take(q.limit).map(|k| self.key_json(k)).collect();
                Response::json(200, &view::collection(view::KEY_TYPE, page, q.total_count.then_some(total)))
            }
            Route::CreateKey | Route::CreateKeyWithPolicies => {
                let new = body::new_key(req.body, route == Route::CreateKeyWithPolicies)?;
                let created = m.create_key(&NewRootKey {
                    name: &new.name,
                    description: new.description.as_deref(),
                    material: self.material(new.material)?.as_ref(),
                    ring: req.key_ring,
                })?;
                let r = KeyRef::parse(&created.id);
                for change in &new.policies {
                    m.set_key_policy(&r, *change)?;
                }
                let shown = if new.policies.is_empty() { created } else { m.show(&r)? };
                self.keys_json(&shown, 201)
            }
            Route::GetKeyPolicies(id) => {
                Response::json(200, &view::key_policies(&m.show(&key(&id))?, policy_name(q)))
            }
            Route::PutKeyPolicies(id) => {
                for change in body::key_policies(req.body, q.policy)? {
                    m.set_key_policy(&key(&id), change)?;
                }
                Response::json(200, &view::key_policies(&m.show(&key(&id))?, policy_name(q)))
            }
            Route::BucketKey(bucket) => {
                let (root, mode) = body::bucket_key(req.body)?;
                let (k, crn) = m.hand_out_bucket_key(&bucket, &KeyRef::parse(&root), mode)?;
                Response::json(200, &json!({"keyCrn": crn, "bucketKey": b64(k.expose())}))
            }
            Route::RemoveBucketKey(bucket) => {
                m.remove_bucket_key(&bucket)?;
                Response::empty(204)
            }
            Route::BucketRoot(bucket) => Response::json(200, &json!({"keyCrn": m.bucket_root(&bucket)?})),
            Route::RetainBucket(bucket) => {
                m.retain_bucket(&bucket)?;
                Response::empty(204)
            }
            Route::DefaultKey => Response::json(200, &json!({"keyCrn": m.default_key()?})),
            Route::CreateImportToken => {
                let (expiration, retrievals) = body::import_token(req.body)?;
                Response::json(200, &Self::token_json(&m.create_import_token(expiration, retrievals)?, false))
            }
            Route::GetImportToken => {
                let t = m.retrieve_import_token().map_err(|e| match e {
                    keys::KeysError::Refused(why) => KpError::new(404, "IMPORT_TOKEN_NOT_FOUND_ERR", why),
                    other => other.into(),
                })?;
                Response::json(200, &Self::token_json(&t, true))
            }
            Route::ListRings => {
                let rings = m.rings()?;
                let total = rings.len();
                let page = rings
                    .iter()
                    .skip(q.offset)
                    .take(q.limit)
                    .map(|r| {
                        json!({"id": r.id, "creationDate": base::clock::rfc3339(r.created), "createdBy": r.created_by})
                    })
                    .collect();
                let kind = "application/vnd.ibm.kms.key_ring+json";
                Response::json(200, &view::collection(kind, page, q.total_count.then_some(total)))
            }
            Route::CreateRing(id) => {
                keys::rings::check_ring_id(&id).map_err(|e| KpError::bad(e.to_string()))?;
                m.create_ring(&id)?;
                Response::empty(201)
            }
            Route::DeleteRing(id) => {
                m.delete_ring(&id, q.force)?;
                Response::empty(204)
            }
            Route::PatchKey(id) => {
                let to = body::patch_key(req.body)?;
                m.move_key(&key(&id), &to)?;
                self.keys_json(&m.show(&key(&id))?, 200)
            }
            Route::Events(id) => {
                let (events, total) = m.events(id.as_deref().map(key).as_ref(), q.offset, q.limit)?;
                let kind = "application/vnd.cipherstore.event+json";
                Response::json(200, &view::collection(kind, events, q.total_count.then_some(total)))
            }
            Route::GetInstancePolicies => {
                Response::json(200, &view::instance_policies(&m.instance_policies()?, policy_name(q)))
            }
            Route::PutInstancePolicies => {
                for change in body::instance_policies(req.body, q.policy)? {
                    m.set_instance_policy(change)?;
                }
                Response::empty(204)
            }
            Route::GetKey(id) | Route::KeyMetadata(id) => self.keys_json(&m.show(&key(&id))?, 200),
            Route::DeleteKey(id) => {
                let deleted = m.delete_restorable(&key(&id), q.force)?;
                if representation { self.keys_json(&deleted, 200) } else { Response::empty(204) }
            }
            Route::PurgeKey(id) => self.keys_json(&m.purge(&key(&id), self.options.purge_wait)?, 200),
            Route::RestoreKey(id) => self.keys_json(&m.restore(&key(&id), None)?, 201),
            Route::Versions(id) => {
                let k = m.show(&key(&id))?;
                let total = k.versions.len();
                let page = k
                    .versions
                    .iter()
                    .rev()
                    .skip(q.offset)
                    .take(q.limit)
                    .map(|v| json!({"id": view::version_id(&k.id, v.version), "creationDate": base::clock::rfc3339(v.created)}))
                    .collect();
                let kind = "application/vnd.ibm.kms.key.version+json";
                Response::json(200, &view::collection(kind, page, q.total_count.then_some(total)))
            }
            Route::Action(id, action) => self.action(&key(&id), action, req.body)?,
            Route::Registrations(id) => {
                let regs = m.registrations(id.as_deref().map(key).as_ref())?;
                let names: std::collections::HashMap<String, String> =
                    m.list()?.into_iter().map(|k| (k.id, k.name)).collect();
                let instance = &self.options.instance;
                let chosen: Vec<_> = regs
                    .iter()
                    .filter(|r| q.prevent_key_deletion.is_none_or(|p| p == r.prevent_key_deletion))
                    .filter(|r| {
                        q.crn_query
                            .as_deref()
                            .is_none_or(|c| route::crn_matches(c, &view::bucket_crn(instance, &r.bucket)))
                    })
                    .collect();
                let page = chosen
                    .iter()
                    .skip(q.offset)
                    .take(q.limit)
                    .map(|r| view::registration(r, instance, names.get(&r.key_id).map(String::as_str)))
                    .collect();
                let kind = "application/vnd.ibm.kms.registration+json";
                Response::json(200, &view::collection(kind, page, q.total_count.then_some(chosen.len())))
            }
            Route::CreateAlias(id, alias) => {
                let k = m.add_alias(&key(&id), &alias)?;
                let v = json!({"alias": alias, "keyId": k.id, "createdBy": keys::audit::initiator(), "creationDate": k.updated});
                Response::json(201, &view::collection("application/vnd.ibm.kms.alias+json", vec![v], None))
            }
            Route::DeleteAlias(id, alias) => {
                m.remove_alias(&key(&id), &alias)?;
                Response::empty(204)
            }
        })
    }

    fn action(&self, key: &KeyRef, action: KeyAction, bytes: &[u8]) -> Result<Response, KpError> {
        let m = &self.manager;
        let need_ciphertext = |b: &body::DekBody| {
            b.ciphertext.clone().ok_or_else(|| KpError::bad(format!("{} needs a ciphertext", action.name())))
        };
        Ok(match action {
            KeyAction::Wrap => {
                let b = body::dek(bytes)?;
                if b.ciphertext.is_some() {
                    return Err(KpError::bad("wrap takes a plaintext, not a ciphertext"));
                }
                let w = m.wrap_dek(key, b.plaintext.as_deref().map(Vec::as_slice), &b.aad)?;
                let mut v = json!({"ciphertext": w.ciphertext, "keyVersion": view::version_ref(&w.key_id, w.version)});
                if let Some(p) = &w.generated {
                    v["plaintext"] = json!(b64(p));
                }
                Response::json(200, &v)
            }
            KeyAction::Unwrap => {
                let b = body::dek(bytes)?;
                let u = m.unwrap_dek(key, &need_ciphertext(&b)?, &b.aad)?;
                let mut v = json!({"plaintext": b64(&u.plaintext), "keyVersion": view::version_ref(&u.key_id, u.version)});
                if let Some(r) = &u.rewrapped {
                    v["ciphertext"] = json!(r.ciphertext);
                    v["rewrappedKey"] = json!(r.ciphertext);
                    v["rewrappedKeyVersion"] = view::version_ref(&r.key_id, r.version);
                }
                Response::json(200, &v)
            }
            KeyAction::Rewrap => {
                let b = body::dek(bytes)?;
                let (w, old) = m.rewrap_dek(key, &need_ciphertext(&b)?, &b.aad)?;
                let v = json!({
                    "ciphertext": w.ciphertext,
                    "keyVersion": view::version_ref(&w.key_id, old),
                    "rewrappedKeyVersion": view::version_ref(&w.key_id, w.version),
                });
                Response::json(200, &v)
            }
            KeyAction::Rotate => {
                let material = self.material(body::rotate(bytes)?)?;
                m.rotate(key, material.as_ref())?;
                Response::empty(204)
            }
            KeyAction::SetForDeletion => {
                m.authorize_deletion(key)?;
                Response::empty(204)
            }
            KeyAction::UnsetForDeletion => {
                m.withdraw_deletion(key)?;
                Response::empty(204)
            }
            KeyAction::Enable | KeyAction::Disable => {
                // A deleted key is refused by the manager itself (410).
                if action == KeyAction::Enable {
                    m.enable(key)?
                } else {
                    m.disable(key)?
                };
                Response::empty(204)
            }
        })
    }
}
