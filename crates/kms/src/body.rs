//! Request bodies, parsed with every fault named (400): the key to create, the DEK to
//! wrap, the ciphertext to unwrap or rewrap, new material for a rotation, and the token
//! request's form. Base64 fields are decoded here into memory that is wiped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::error::KpError;
use super::route::{PolicyName, percent_decode};
use engine::SecretKey;
use keys::BucketKeyMode;
use keys::policy::{PolicyChange, Rotation};

/// The largest body read.
pub const MAX_BODY: usize = 64 * 1024;

/// A key to create.
pub struct NewKey {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Material to import (`payload`, in the clear or for the import token).
    pub material: Option<Material>,
    /// Policies to set on it (`keys_with_policy_overrides`).
    pub policies: Vec<PolicyChange>,
}

/// What a wrap, unwrap or rewrap carries.
pub struct DekBody {
    /// The DEK (`plaintext`), for wrap.
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    /// The ciphertext, for unwrap and rewrap.
    pub ciphertext: Option<String>,
    /// Additional authenticated data (`aad`).
    pub aad: Vec<String>,
}

fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, KpError> {
    serde_json::from_slice(bytes).map_err(|e| {
        // serde's message names the field and the position, never a value.
        KpError::bad(format!("the {what} body is not valid: {e}"))
    })
}

#[derive(Deserialize)]
struct Collection<T> {
    #[serde(default)]
    #[allow(dead_code, reason = "read to accept it, Key Protect's own envelope")]
    metadata: Option<serde_json::Value>,
    resources: Vec<T>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyResource {
    #[serde(rename = "type")]
    #[allow(dead_code, reason = "accepted as Key Protect's clients send it")]
    kind: Option<String>,
    name: String,
    description: Option<String>,
    extractable: Option<bool>,
    payload: Option<Secret>,
    #[serde(rename = "encryptedNonce")]
    encrypted_nonce: Option<String>,
    iv: Option<String>,
    #[serde(rename = "encryptionAlgorithm")]
    encryption_algorithm: Option<String>,
    rotation: Option<RotationFields>,
    #[serde(rename = "dualAuthDelete")]
    dual_auth_delete: Option<Enabled>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationFields {
    enabled: Option<bool>,
    interval_month: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enabled {
    enabled: bool,
}

fn rotation_change(r: &RotationFields) -> Result<PolicyChange, KpError> {
    let enabled = r.enabled.unwrap_or(true);
    let interval_month = match (enabled, r.interval_month) {
        (_, Some(m)) if (1..=12).contains(&m) => m,
        (_, Some(_)) => return Err(KpError::bad("rotation.interval_month must be 1 to 12")),
        (true, None) => return Err(KpError::bad("rotation.interval_month is missing")),
        (false, None) => 1,
    };
    Ok(PolicyChange::Rotation(Rotation { enabled, interval_month }))
}

/// A base64 secret from a body, wiped when dropped.
struct Secret(Zeroizing<String>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

/// Key material a request carries.
pub enum Material {
    /// In the clear (over TLS).
    Plain(SecretKey),
    /// Encrypted for the instance's import token.
    ForToken {
        /// RSA-OAEP ciphertext.
        payload: Zeroizing<Vec<u8>>,
        /// AES-GCM of the token's nonce under the material.
        encrypted_nonce: Vec<u8>,
        /// Its IV.
        iv: Vec<u8>,
        /// RSA-OAEP with SHA-256 (else SHA-1).
        sha256: bool,
    },
}

impl Material {
    /// Whether the body carries material at all.
    fn read(
        payload: Option<&Secret>,
        encrypted_nonce: Option<&str>,
        iv: Option<&str>,
        algorithm: Option<&str>,
    ) -> Result<Option<Self>, KpError> {
        let Some(p) = payload else {
            if encrypted_nonce.is_some() || iv.is_some() {
                return Err(KpError::bad("encryptedNonce and iv come with a payload"));
            }
            return Ok(None);
        };
        let (Some(nonce), Some(iv)) = (encrypted_nonce, iv) else {
            if encrypted_nonce.is_some() || iv.is_some() || algorithm.is_some() {
                return Err(KpError::bad(
                    "material for an import token needs payload, encryptedNonce, iv and encryptionAlgorithm together",
                ));
            }
            return material(p, "payload").map(|m| Some(Self::Plain(m)));
        };
        let sha256 = match algorithm {
            Some("RSAES_OAEP_SHA_256") | None => true,
            Some("RSAES_OAEP_SHA_1") => false,
            Some(_) => {
                return Err(KpError::bad("encryptionAlgorithm is RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1"));
            }
        };
        let decode =
            |v: &str, field: &str| B64.decode(v).map_err(|_| KpError::bad(format!("{field} is not base64")));
        Ok(Some(Self::ForToken {
            payload: Zeroizing::new(decode(&p.0, "payload")?),
            encrypted_nonce: decode(nonce, "encryptedNonce")?,
            iv: decode(iv, "iv")?,
            sha256,
        }))
    }
}

/// 32 bytes of key material from base64.
fn material(s: &Secret, field: &str) -> Result<SecretKey, KpError> {
    let bytes = Zeroizing::new(
        B64.decode(s.0.as_bytes()).map_err(|_| KpError::bad(format!("{field} is not base64")))?,
    );
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KpError::bad(format!("{field} must be a 256-bit AES key (32 bytes, base64)")))?;
    Ok(SecretKey::from_bytes(arr))
}

/// Reads `POST /api/v2/keys` (`overrides`: `POST /api/v2/keys_with_policy_overrides`,
/// which may carry `rotation` and `dualAuthDelete`).
pub fn new_key(bytes: &[u8], overrides: bool) -> Result<NewKey, KpError> {
    let c: Collection<KeyResource> = json(bytes, "key")?;
    let [r] = <[KeyResource; 1]>::try_from(c.resources)
        .map_err(|_| KpError::bad("resources must hold exactly one key"))?;
    if r.extractable == Some(true) {
        return Err(KpError::new(
            400,
            "KEY_ROOT_REQ_ERR",
            "this key service keeps root keys only (extractable: false): standard keys would leave the HSM",
        ));
    }
    if r.name.is_empty() || r.name.len() > 90 || r.name.chars().any(char::is_control) {
        return Err(KpError::bad("name must be 1 to 90 printable characters"));
    }
    if r.description.as_ref().is_some_and(|d| d.len() > keys::manager::MAX_DESCRIPTION) {
        return Err(KpError::bad("description must be at most 240 characters"));
    }
    let material = Material::read(
        r.payload.as_ref(),
        r.encrypted_nonce.as_deref(),
        r.iv.as_deref(),
        r.encryption_algorithm.as_deref(),
    )?;
    let mut policies = Vec::new();
    if r.rotation.is_some() || r.dual_auth_delete.is_some() {
        if !overrides {
            return Err(KpError::bad("policies come with a key at /api/v2/keys_with_policy_overrides"));
        }
        if let Some(rot) = &r.rotation {
            let change = rotation_change(rot)?;
            if material.is_some() && matches!(change, PolicyChange::Rotation(x) if x.enabled) {
                return Err(KpError::bad(
                    "an imported key cannot rotate by policy: its new material comes from its owner",
                ));
            }
            policies.push(change);
        }
        if let Some(d) = &r.dual_auth_delete {
            policies.push(PolicyChange::DualAuthDelete(d.enabled));
        }
    }
    Ok(NewKey { name: r.name, description: r.description, material, policies })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DekFields {
    plaintext: Option<Secret>,
    ciphertext: Option<String>,
    #[serde(default)]
    aad: Vec<String>,
}

/// Reads a wrap, unwrap or rewrap body (an empty body is an empty object).
pub fn dek(bytes: &[u8]) -> Result<DekBody, KpError> {
    let f: DekFields = if bytes.iter().all(u8::is_ascii_whitespace) {
        json(b"{}", "action")?
    } else {
        json(bytes, "action")?
    };
    let plaintext = f
        .plaintext
        .map(|p| {
            B64.decode(p.0.as_bytes())
                .map(Zeroizing::new)
                .map_err(|_| KpError::bad("plaintext is not base64"))
        })
        .transpose()?;
    Ok(DekBody { plaintext, ciphertext: f.ciphertext, aad: f.aad })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateFields {
    payload: Option<Secret>,
    #[serde(rename = "encryptedNonce")]
    encrypted_nonce: Option<String>,
    iv: Option<String>,
    #[serde(rename = "encryptionAlgorithm")]
    encryption_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportTokenFields {
    // Numbers, as IBM's SDKs send them (floats).
    expiration: Option<f64>,
    #[serde(rename = "maxAllowedRetrievals")]
    max_allowed_retrievals: Option<f64>,
}

/// Reads `POST /api/v2/import_token`: its lifetime (default 600 s) and retrievals
/// (default 1).
pub fn import_token(bytes: &[u8]) -> Result<(u64, u32), KpError> {
    let f: ImportTokenFields = if bytes.iter().all(u8::is_ascii_whitespace) {
        json(b"{}", "import token")?
    } else {
        json(bytes, "import token")?
    };
    let whole = |v: f64, lo: f64, hi: f64| (v.fract() == 0.0 && (lo..=hi).contains(&v)).then_some(v);
    let expiration = whole(f.expiration.unwrap_or(600.0), 300.0, keys::import_token::MAX_EXPIRATION as f64)
        .ok_or_else(|| KpError::bad("expiration is a whole number of seconds, 300 to 86400"))?;
    let retrievals =
        whole(f.max_allowed_retrievals.unwrap_or(1.0), 1.0, f64::from(keys::import_token::MAX_RETRIEVALS))
            .ok_or_else(|| KpError::bad("maxAllowedRetrievals is a whole number, 1 to 500"))?;
    Ok((expiration as u64, retrievals as u32))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyPolicyResource {
    #[serde(rename = "type")]
    #[allow(dead_code, reason = "accepted as Key Protect's clients send it")]
    kind: Option<String>,
    rotation: Option<RotationFields>,
    #[serde(rename = "dualAuthDelete")]
    dual_auth_delete: Option<Enabled>,
}

fn only(change: &PolicyChange, name: Option<PolicyName>) -> Result<(), KpError> {
    let matches = matches!(
        (change, name),
        (_, None)
            | (PolicyChange::Rotation(_), Some(PolicyName::Rotation))
            | (PolicyChange::DualAuthDelete(_), Some(PolicyName::DualAuthDelete))
    );
    if matches { Ok(()) } else { Err(KpError::bad("the body sets another policy than ?policy= names")) }
}

/// Reads `PUT /api/v2/keys/{id}/policies`: one or two policies, each one of rotation and
/// dualAuthDelete (`name`: the one `?policy=` allows).
pub fn key_policies(bytes: &[u8], name: Option<PolicyName>) -> Result<Vec<PolicyChange>, KpError> {
    let c: Collection<KeyPolicyResource> = json(bytes, "policy")?;
    if c.resources.is_empty() || c.resources.len() > 2 {
        return Err(KpError::bad("resources must hold one or two policies"));
    }
    let mut out = Vec::new();
    for r in &c.resources {
        let change = match (&r.rotation, &r.dual_auth_delete) {
            (Some(rot), None) => rotation_change(rot)?,
            (None, Some(d)) => PolicyChange::DualAuthDelete(d.enabled),
            _ => {
                return Err(KpError::bad(
                    "each policy resource holds exactly one of rotation and dualAuthDelete",
                ));
            }
        };
        only(&change, name)?;
        out.push(change);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstancePolicyResource {
    policy_type: String,
    policy_data: InstancePolicyData,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstancePolicyData {
    enabled: bool,
    attributes: Option<InstanceAttributes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceAttributes {
    interval_month: Option<u32>,
}

/// Reads `PUT /api/v2/instance/policies`: `dualAuthDelete` and `rotation` policies.
pub fn instance_policies(bytes: &[u8], name: Option<PolicyName>) -> Result<Vec<PolicyChange>, KpError> {
    let c: Collection<InstancePolicyResource> = json(bytes, "instance policy")?;
    if c.resources.is_empty() || c.resources.len() > 2 {
        return Err(KpError::bad("resources must hold one or two policies"));
    }
    let mut out = Vec::new();
    for r in &c.resources {
        let change = match r.policy_type.as_str() {
            "dualAuthDelete" => PolicyChange::DualAuthDelete(r.policy_data.enabled),
            "rotation" => rotation_change(&RotationFields {
                enabled: Some(r.policy_data.enabled),
                interval_month: r.policy_data.attributes.as_ref().and_then(|a| a.interval_month),
            })?,
            other => {
                return Err(KpError::bad(format!(
                    "instance policy {:?} is not offered by this key service (rotation, dualAuthDelete)",
                    other.chars().take(40).collect::<String>()
                )));
            }
        };
        only(&change, name)?;
        out.push(change);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketKeyFields {
    key: String,
    mode: String,
    #[serde(default)]
    retain: bool,
}

/// Reads `POST /api/v2/bucket_keys/{bucket}`: the root key and what is asked.
pub fn bucket_key(bytes: &[u8]) -> Result<(String, BucketKeyMode), KpError> {
    let f: BucketKeyFields = json(bytes, "bucket key")?;
    if f.key.is_empty() || f.key.len() > 512 {
        return Err(KpError::bad("key must name a root key"));
    }
    let mode = match f.mode.as_str() {
        "read" => BucketKeyMode::Read,
        "write" => BucketKeyMode::Write { retain: f.retain },
        "create" => BucketKeyMode::Create,
        _ => return Err(KpError::bad("mode is read, write or create")),
    };
    Ok((f.key, mode))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchFields {
    #[serde(rename = "keyRingID")]
    key_ring_id: String,
}

/// Reads `PATCH /api/v2/keys/{id}`: the key ring to move the key to.
pub fn patch_key(bytes: &[u8]) -> Result<String, KpError> {
    let f: PatchFields = json(bytes, "patch")?;
    keys::rings::check_ring_id(&f.key_ring_id).map_err(|e| KpError::bad(e.to_string()))?;
    Ok(f.key_ring_id)
}

/// Reads a rotate body: new material for an imported key.
pub fn rotate(bytes: &[u8]) -> Result<Option<Material>, KpError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let f: RotateFields = json(bytes, "rotate")?;
    Material::read(
        f.payload.as_ref(),
        f.encrypted_nonce.as_deref(),
        f.iv.as_deref(),
        f.encryption_algorithm.as_deref(),
    )
}

/// Reads the token request's form: the API key, after checking the grant type.
pub fn token_form(bytes: &[u8]) -> Result<Zeroizing<String>, KpError> {
    let text = std::str::from_utf8(bytes).map_err(|_| KpError::bad("the token request is not a form"))?;
    let mut grant = None;
    let mut apikey = None;
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = Zeroizing::new(
            percent_decode(v, true).ok_or_else(|| KpError::bad(format!("form field {k} is not valid")))?,
        );
        match k {
            "grant_type" => grant = Some(v),
            "apikey" => apikey = Some(v),
            _ => {}
        }
    }
    match grant.as_deref().map(String::as_str) {
        Some("urn:ibm:params:oauth:grant-type:apikey") => {}
        Some(_) => {
            return Err(KpError::new(
                400,
                "BXNIM0308E",
                "grant_type must be urn:ibm:params:oauth:grant-type:apikey",
            ));
        }
        None => return Err(KpError::new(400, "BXNIM0308E", "grant_type is missing")),
    }
    apikey.filter(|k| !k.is_empty()).ok_or_else(|| KpError::new(400, "BXNIM0415E", "apikey is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bodies_are_read_or_refused_by_field() {
        let k = new_key(br#"{"metadata":{"collectionType":"application/vnd.ibm.kms.key+json","collectionTotal":1},
            "resources":[{"type":"application/vnd.ibm.kms.key+json","name":"r1","description":"d","extractable":false}]}"#, false)
        .unwrap();
        assert_eq!(
            (k.name.as_str(), k.description.as_deref(), k.material.is_none()),
            ("r1", Some("d"), true)
        );
        let with = new_key(
            format!(r#"{{"resources":[{{"name":"r2","payload":"{}"}}]}}"#, B64.encode([7u8; 32])).as_bytes(),
            false,
        )
        .unwrap();
        assert!(matches!(with.material, Some(Material::Plain(ref m)) if m.expose() == &[7u8; 32]));
        let p = br#"{"resources":[{"name":"p","rotation":{"enabled":true,"interval_month":3},"dualAuthDelete":{"enabled":true}}]}"#;
        assert!(new_key(p, false).err().unwrap().message.contains("keys_with_policy_overrides"));
        let k = new_key(p, true).unwrap();
        assert_eq!(
            k.policies,
            vec![
                PolicyChange::Rotation(Rotation { enabled: true, interval_month: 3 }),
                PolicyChange::DualAuthDelete(true)
            ]
        );
        for (body, says) in [
            (r#"{"resources":[]}"#, "exactly one"),
            (r#"{"resources":[{"name":"x","extractable":true}]}"#, "root keys only"),
            (r#"{"resources":[{"name":"x","payload":"AAAA"}]}"#, "256-bit"),
            (r#"{"resources":[{"name":"x","payload":"!!"}]}"#, "base64"),
            (r#"{"resources":[{"name":"x","color":"red"}]}"#, "color"),
            (r#"{"resources":[{"name":""}]}"#, "name"),
            ("not json", "not valid"),
        ] {
            let e = new_key(body.as_bytes(), false).err().unwrap();
            assert!(e.message.contains(says) && e.status == 400, "{body}: {}", e.message);
        }
    }

    #[test]
    fn policy_bodies() {
        let rot = br#"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},
            "resources":[{"type":"application/vnd.ibm.kms.policy+json","rotation":{"enabled":true,"interval_month":2}}]}"#;
        assert_eq!(
            key_policies(rot, Some(PolicyName::Rotation)).unwrap(),
            vec![PolicyChange::Rotation(Rotation { enabled: true, interval_month: 2 })]
        );
        assert!(key_policies(rot, Some(PolicyName::DualAuthDelete)).is_err());
        for bad in [
            r#"{"resources":[{"rotation":{"interval_month":13}}]}"#,
            r#"{"resources":[{"rotation":{"enabled":true}}]}"#,
            r#"{"resources":[{}]}"#,
            r#"{"resources":[]}"#,
            r#"{"resources":[{"rotation":{"interval_month":1},"dualAuthDelete":{"enabled":true}}]}"#,
        ] {
            assert_eq!(key_policies(bad.as_bytes(), None).err().unwrap().status, 400, "{bad}");
        }
        let inst = br#"{"resources":[{"policy_type":"rotation","policy_data":{"enabled":true,"attributes":{"interval_month":1}}},
            {"policy_type":"dualAuthDelete","policy_data":{"enabled":true}}]}"#;
        assert_eq!(instance_policies(inst, None).unwrap().len(), 2);
        let net = br#"{"resources":[{"policy_type":"allowedNetwork","policy_data":{"enabled":true}}]}"#;
        assert!(instance_policies(net, None).err().unwrap().message.contains("allowedNetwork"));
    }

    #[test]
    fn dek_rotate_and_token_bodies() {
        let d = dek(br#"{"plaintext":"cGxhaW50ZXh0LWRhdGEta2V5","aad":["a"]}"#).unwrap();
        assert_eq!(d.plaintext.unwrap().as_slice(), b"plaintext-data-key");
        assert_eq!(d.aad, vec!["a".to_owned()]);
        assert!(dek(b"").unwrap().plaintext.is_none());
        assert!(dek(br#"{"plaintext":"%%"}"#).err().unwrap().message.contains("plaintext"));
        assert!(dek(br#"{"cipher":"x"}"#).err().unwrap().message.contains("cipher"));
        assert!(rotate(b"{}").unwrap().is_none() && rotate(b"").unwrap().is_none());
        assert!(rotate(br#"{"payload":"AA=="}"#).is_err());
        let key = token_form(b"grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey=csk_abc-_x&response_type=cloud_iam").unwrap();
        assert_eq!(key.as_str(), "csk_abc-_x");
        assert_eq!(token_form(b"apikey=x").err().unwrap().code, "BXNIM0308E");
        assert_eq!(token_form(b"grant_type=password&apikey=x").err().unwrap().code, "BXNIM0308E");
        assert_eq!(
            token_form(b"grant_type=urn:ibm:params:oauth:grant-type:apikey").err().unwrap().code,
            "BXNIM0415E"
        );
    }
}
