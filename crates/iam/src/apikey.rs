//! API keys for the key service, as IBM Cloud IAM issues them: a random secret shown once,
//! exchanged at `POST /identity/token` for a short-lived bearer token ([`super::token`]).
//! Each key carries a role on the key service (reader, writer, manager) and acts as one
//! identity (its own, or a user's when it belongs to one). Only the SHA-256 digest of the
//! secret is kept: the secret is 256 random bits, so the digest reveals nothing usable and
//! needs no seal.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::directory::Directory;
use super::error::IamError;
use super::role::Role;

/// What every API key begins with (so scanners can find leaked ones).
pub const PREFIX: &str = "csk_";

/// An API key as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Stable id (`ApiKey-` and 32 hex digits).
    pub id: String,
    /// Unique name operators use.
    pub name: String,
    /// Its role on the key service.
    pub role: Role,
    /// The user it acts as, if any (else it is its own identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// SHA-256 of the secret, hex.
    pub digest: String,
    /// Unix seconds.
    pub created: u64,
    /// Disabled keys are refused, and so are the tokens already issued for them.
    pub enabled: bool,
}

impl ApiKey {
    /// The identity it acts as: `iam-<user>` or `iam-ServiceId-<id>`.
    pub fn identity(&self) -> String {
        match &self.user {
            Some(u) => format!("iam-{u}"),
            None => format!("iam-ServiceId-{}", self.id.trim_start_matches("ApiKey-")),
        }
    }
}

/// An API key asked for.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Unique name.
    pub name: String,
    /// Role on the key service.
    pub role: Role,
    /// The user it acts as.
    pub user: Option<String>,
}

/// A fresh secret and its digest.
pub fn random_secret() -> (Zeroizing<String>, String) {
    use base64::Engine as _;
    let mut raw = Zeroizing::new([0u8; 32]);
    engine::primitives::fill_random(raw.as_mut());
    let secret =
        Zeroizing::new(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*raw)));
    let digest = digest(&secret);
    (secret, digest)
}

/// The kept digest of a secret.
pub fn digest(secret: &str) -> String {
    use sha2::Digest as _;
    base::hex::encode(&sha2::Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` has the kept `digest` (constant time).
pub fn matches(secret: &str, kept_digest: &str) -> bool {
    bool::from(digest(secret).as_bytes().ct_eq(kept_digest.as_bytes()))
}

fn check_name(name: &str) -> Result<(), IamError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IamError::invalid("API key name", "1 to 64 letters, digits, '-', '_', '.' or '@'"))
    }
}

impl Directory {
    /// Adds an API key whose secret has `digest`.
    pub fn add_apikey(&mut self, new: NewApiKey, digest: String, now: u64) -> Result<&ApiKey, IamError> {
        check_name(&new.name)?;
        if self.apikeys.values().any(|k| k.name == new.name) {
            return Err(IamError::ApiKeyExists(new.name));
        }
        if let Some(u) = &new.user {
            self.user(u)?;
        }
        let mut raw = [0u8; 16];
        engine::primitives::fill_random(&mut raw);
        let id = format!("ApiKey-{}", base::hex::encode(&raw));
        let key = ApiKey {
            id: id.clone(),
            name: new.name,
            role: new.role,
            user: new.user,
            digest,
            created: now,
            enabled: true,
        };
        Ok(self.apikeys.entry(id).or_insert(key))
    }

    /// The API key named `name` (or with id `name`).
    pub fn apikey(&self, name: &str) -> Result<&ApiKey, IamError> {
        self.apikeys
            .values()
            .find(|k| k.name == name || k.id == name)
            .ok_or_else(|| IamError::NoSuchApiKey(name.to_owned()))
    }

    /// Enables or disables an API key.
    pub fn set_apikey_enabled(&mut self, name: &str, enabled: bool) -> Result<(), IamError> {
        let id = self.apikey(name)?.id.clone();
        if let Some(k) = self.apikeys.get_mut(&id) {
            k.enabled = enabled;
        }
        Ok(())
    }

    /// Removes an API key (tokens issued for it are refused from now on).
    pub fn delete_apikey(&mut self, name: &str) -> Result<ApiKey, IamError> {
        let id = self.apikey(name)?.id.clone();
        self.apikeys.remove(&id).ok_or_else(|| IamError::NoSuchApiKey(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_their_digest_is_kept() {
        let (a, da) = random_secret();
        let (b, db) = random_secret();
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43, "{}", a.len());
        assert!(matches(&a, &da) && matches(&b, &db));
        assert!(!matches(&a, &db) && !matches("", &da));
        assert!(!da.contains(&a[PREFIX.len()..]));
    }

    #[test]
    fn names_are_unique_and_users_must_exist() {
        let mut d = Directory::default();
        let k = d
            .add_apikey(NewApiKey { name: "svc".into(), role: Role::Writer, user: None }, "00".into(), 1)
            .unwrap();
        assert!(k.identity().starts_with("iam-ServiceId-"));
        let again =
            d.add_apikey(NewApiKey { name: "svc".into(), role: Role::Reader, user: None }, "11".into(), 1);
        assert!(matches!(again, Err(IamError::ApiKeyExists(_))));
        let nobody = d.add_apikey(
            NewApiKey { name: "x".into(), role: Role::Reader, user: Some("ghost".into()) },
            "22".into(),
            1,
        );
        assert!(matches!(nobody, Err(IamError::NoSuchUser(_))));
        for bad in ["", "has space", &"n".repeat(65)] {
            let r =
                d.add_apikey(NewApiKey { name: bad.into(), role: Role::Reader, user: None }, "33".into(), 1);
            assert!(matches!(r, Err(IamError::Invalid { .. })), "{bad:?}");
        }
        d.set_apikey_enabled("svc", false).unwrap();
        assert!(!d.apikey("svc").unwrap().enabled);
        assert_eq!(d.delete_apikey("svc").unwrap().name, "svc");
        assert!(matches!(d.apikey("svc"), Err(IamError::NoSuchApiKey(_))));
    }
}
