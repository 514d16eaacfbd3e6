//! Bearer tokens for the key service, as IBM Cloud IAM issues them: `POST /identity/token`
//! exchanges an API key ([`super::apikey`]) for a JSON Web Token signed with HMAC-SHA-256
//! under the directory's token key (shared by every key service host through the identity
//! store), valid for [`LIFETIME`] seconds. IBM's SDKs read `exp` and `iat` from it to know
//! when to fetch another.
//!
//! A token names its API key; each request checks the signature (constant time), the
//! expiry, and that the API key still exists and is enabled, and takes the key's role as
//! it is now, so disabling or deleting a key, or changing its role, holds at once.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use super::role::Role;

/// How long a token is valid, in seconds (IBM IAM: one hour).
pub const LIFETIME: u64 = 3600;
/// The longest token read.
pub const MAX_TOKEN: usize = 4096;
/// The directory's name for the token key when it is sealed (the seal's associated data).
pub const TOKEN_KEY_NAME: &str = "iam-token-signing-key";

/// Who is calling the key service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The API key's id.
    pub apikey_id: String,
    /// The API key's name.
    pub name: String,
    /// The identity it acts as (`iam-ServiceId-…`, `iam-<user>`): dual authorization
    /// counts identities.
    pub identity: String,
    /// Its role on the key service.
    pub role: Role,
}

/// Why a token or an API key was refused (never with the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// No such API key, or the wrong secret.
    #[error("the API key is not valid")]
    UnknownApiKey,
    /// The API key is disabled.
    #[error("the API key is disabled")]
    Disabled,
    /// Not a token this service signed, or damaged.
    #[error("the bearer token is not valid")]
    Invalid,
    /// The token has expired.
    #[error("the bearer token has expired")]
    Expired,
    /// The token's API key was deleted or disabled since it was issued.
    #[error("the bearer token's API key was deleted or disabled")]
    Revoked,
    /// No token key is available (no key service has started yet).
    #[error("no token signing key: start a key service (serve --kms-listen) first")]
    NoTokenKey,
}

/// A token just issued.
#[derive(Debug)]
pub struct Issued {
    /// The JWT.
    pub access_token: String,
    /// Issued at, Unix seconds.
    pub issued: u64,
    /// Expires at, Unix seconds.
    pub expires: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iam_id: String,
    sub: String,
    id: String,
    iat: u64,
    exp: u64,
    iss: String,
    jti: String,
}

/// Signs and checks tokens with one key.
pub(crate) struct Signer {
    key: aws_lc_rs::hmac::Key,
}

impl Signer {
    pub(crate) fn new(key: &[u8]) -> Self {
        Self { key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key) }
    }

    pub(crate) fn issue(&self, caller: &Caller, now: u64) -> Issued {
        let mut jti = [0u8; 12];
        engine::primitives::fill_random(&mut jti);
        let header = Header { alg: "HS256".into(), typ: "JWT".into() };
        let claims = Claims {
            iam_id: caller.identity.clone(),
            sub: caller.name.clone(),
            id: caller.apikey_id.clone(),
            iat: now,
            exp: now + LIFETIME,
            iss: "cipherstore".into(),
            jti: base::hex::encode(&jti),
        };
        // Serialising these two plain structs cannot fail.
        let header = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
        let claims = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signed = format!("{header}.{claims}");
        let tag = aws_lc_rs::hmac::sign(&self.key, signed.as_bytes());
        Issued {
            access_token: format!("{signed}.{}", B64.encode(tag.as_ref())),
            issued: now,
            expires: now + LIFETIME,
        }
    }

    /// The API key id a token names, if its signature, form and expiry hold at `now`.
    pub(crate) fn check(&self, token: &str, now: u64) -> Result<String, TokenRefusal> {
        if token.len() > MAX_TOKEN {
            return Err(TokenRefusal::Invalid);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenRefusal::Invalid);
        };
        let sig = B64.decode(s).map_err(|_| TokenRefusal::Invalid)?;
        let signed = &token[..h.len() + 1 + c.len()];
        aws_lc_rs::hmac::verify(&self.key, signed.as_bytes(), &sig).map_err(|_| TokenRefusal::Invalid)?;
        let header: Header = serde_json::from_slice(&B64.decode(h).map_err(|_| TokenRefusal::Invalid)?)
            .map_err(|_| TokenRefusal::Invalid)?;
        if header.alg != "HS256" {
            return Err(TokenRefusal::Invalid);
        }
        let claims: Claims = serde_json::from_slice(&B64.decode(c).map_err(|_| TokenRefusal::Invalid)?)
            .map_err(|_| TokenRefusal::Invalid)?;
        if now >= claims.exp {
            return Err(TokenRefusal::Expired);
        }
        if claims.iat > now + 60 || claims.exp.saturating_sub(claims.iat) > LIFETIME {
            return Err(TokenRefusal::Invalid);
        }
        Ok(claims.id)
    }
}

/// The API key id a token signed under `key` names, if it holds at `now` (signature, form,
/// expiry; not whether the API key still exists). For fuzzing and tests.
pub fn verify(key: &[u8], token: &str, now: u64) -> Result<String, TokenRefusal> {
    Signer::new(key).check(token, now)
}

/// The API keys and the token key, indexed for requests (part of the snapshot).
#[derive(Default)]
pub(crate) struct Tokens {
    pub(crate) signer: Option<Signer>,
    /// Enabled API keys by digest of their secret.
    pub(crate) by_digest: std::collections::HashMap<String, Arc<Caller>>,
    /// Every API key by id, with whether it is enabled.
    pub(crate) by_id: std::collections::HashMap<String, (Arc<Caller>, bool)>,
}

impl Tokens {
    /// Exchanges an API key for a token.
    pub(crate) fn exchange(&self, apikey: &str, now: u64) -> Result<(Issued, Arc<Caller>), TokenRefusal> {
        let signer = self.signer.as_ref().ok_or(TokenRefusal::NoTokenKey)?;
        if apikey.len() > 256 {
            return Err(TokenRefusal::UnknownApiKey);
        }
        let caller = self.by_digest.get(&super::apikey::digest(apikey)).ok_or(TokenRefusal::UnknownApiKey)?;
        match self.by_id.get(&caller.apikey_id) {
            Some((_, true)) => Ok((signer.issue(caller, now), caller.clone())),
            _ => Err(TokenRefusal::Disabled),
        }
    }

    /// The caller a bearer token names.
    pub(crate) fn caller(&self, token: &str, now: u64) -> Result<Arc<Caller>, TokenRefusal> {
        let signer = self.signer.as_ref().ok_or(TokenRefusal::NoTokenKey)?;
        let id = signer.check(token, now)?;
        match self.by_id.get(&id) {
            Some((caller, true)) => Ok(caller.clone()),
            _ => Err(TokenRefusal::Revoked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            apikey_id: "ApiKey-1".into(),
            name: "svc".into(),
            identity: "iam-ServiceId-1".into(),
            role: Role::Writer,
        }
    }

    #[test]
    fn tokens_verify_only_under_their_key_and_until_they_expire() {
        let signer = Signer::new(&[7; 32]);
        let t = signer.issue(&caller(), 1_000);
        assert_eq!(t.expires, 1_000 + LIFETIME);
        assert_eq!(signer.check(&t.access_token, 1_001).unwrap(), "ApiKey-1");
        assert_eq!(signer.check(&t.access_token, 1_000 + LIFETIME), Err(TokenRefusal::Expired));
        assert_eq!(Signer::new(&[8; 32]).check(&t.access_token, 1_001), Err(TokenRefusal::Invalid));
        // The claims as IBM's SDK reads them (it does not check the signature).
        let claims = t.access_token.split('.').nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&B64.decode(claims).unwrap()).unwrap();
        assert_eq!((v["iat"].as_u64(), v["exp"].as_u64()), (Some(1_000), Some(1_000 + LIFETIME)));
        // Claims changed under the old signature, 'none', truncation and junk are refused.
        let forged_claims = B64.encode(serde_json::to_vec(&serde_json::json!({
            "iam_id": "x", "sub": "x", "id": "ApiKey-2", "iat": 1000, "exp": 9_999_999, "iss": "cipherstore", "jti": "0"
        })).unwrap());
        let mut parts: Vec<&str> = t.access_token.split('.').collect();
        parts[1] = &forged_claims;
        assert_eq!(signer.check(&parts.join("."), 1_001), Err(TokenRefusal::Invalid));
        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{claims}.");
        assert_eq!(signer.check(&unsigned, 1_001), Err(TokenRefusal::Invalid));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "...",
            &t.access_token[..t.access_token.len() - 2],
            &"x".repeat(MAX_TOKEN + 1),
        ] {
            assert_eq!(signer.check(bad, 1_001), Err(TokenRefusal::Invalid), "{bad:.20}");
        }
    }
}
