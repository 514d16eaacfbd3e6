//! How a bucket key is wrapped under a root key inside the token: the four methods a
//! PKCS#11 module may offer, which one a token can do (read from its mechanism list), and
//! the byte layout of the two methods the token does not frame itself.
//!
//! - `aes-key-wrap-pad`: `C_WrapKey` with `CKM_AES_KEY_WRAP_PAD` (RFC 5649; SoftHSM2).
//! - `aes-key-wrap`: `C_WrapKey` with `CKM_AES_KEY_WRAP` (RFC 3394: a 32-byte key needs no
//!   padding).
//! - `aes-gcm`: `C_Encrypt` with `CKM_AES_GCM`, a random 96-bit nonce and the binding
//!   context as additional data: `nonce ‖ ciphertext ‖ tag`.
//! - `aes-cbc-hmac-sha256`: `C_Encrypt` with `CKM_AES_CBC` under the root key (a bucket key
//!   is two whole blocks: no padding, and so no padding to check), then
//!   `C_Sign` with `CKM_SHA256_HMAC` under the root key's MAC companion (a second token
//!   object, also sensitive and never extractable) over the domain, the context, the IV and
//!   the ciphertext (encrypt-then-MAC): `iv ‖ ciphertext ‖ mac`. Unwrapping verifies the
//!   MAC in the token (`C_Verify`) before anything is decrypted.
//!
//! The two key-wrap methods cannot bind a context (the token frames the output); the
//! other two refuse a wrapped key moved to another bucket or key version.

use std::fmt;

use cryptoki::mechanism::MechanismType;
use serde::{Deserialize, Serialize};

use super::error::KeysError;

/// A way of wrapping bucket keys under a root key; recorded per root key version and per
/// wrapped key, so every gateway unwraps what another wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WrapMethod {
    /// RFC 5649 through `C_WrapKey` (`CKM_AES_KEY_WRAP_PAD`): every key wrapped before the
    /// method was recorded.
    #[default]
    #[serde(rename = "aes-key-wrap-pad")]
    AesKeyWrapPad,
    /// RFC 3394 through `C_WrapKey` (`CKM_AES_KEY_WRAP`).
    #[serde(rename = "aes-key-wrap")]
    AesKeyWrap,
    /// AES-256-GCM through `C_Encrypt`, the binding context as additional data.
    #[serde(rename = "aes-gcm")]
    AesGcm,
    /// AES-256-CBC through `C_Encrypt`, then HMAC-SHA-256 through `C_Sign`.
    #[serde(rename = "aes-cbc-hmac-sha256")]
    AesCbcHmacSha256,
}

/// What a method needs a mechanism to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `C_WrapKey` and `C_UnwrapKey`.
    Wrap,
    /// `C_Encrypt` and `C_Decrypt`.
    Encrypt,
    /// `C_Sign` and `C_Verify`.
    Sign,
    /// `C_GenerateKey`.
    Generate,
}

/// GCM nonce length.
pub const GCM_NONCE_LEN: usize = 12;
/// GCM tag length.
pub const GCM_TAG_LEN: usize = 16;
/// CBC IV length.
pub const CBC_IV_LEN: usize = 16;
/// HMAC-SHA-256 output length.
pub const MAC_LEN: usize = 32;
/// The MAC companion object's `CKA_ID` is the root key's followed by this.
pub const MAC_ID_SUFFIX: &[u8] = b"/mac";
/// What the MAC covers first, so a MAC made for anything else never verifies here.
const MAC_DOMAIN: &[u8] = b"cipherstore wrapped key v1 aes-cbc-hmac-sha256";

impl WrapMethod {
    /// Every method, in the order they are preferred when a token offers several: the
    /// token's own key wrapping first (the root key only ever wraps and unwraps), then the
    /// ones that bind the context.
    pub const PREFERENCE: [WrapMethod; 4] =
        [Self::AesKeyWrapPad, Self::AesKeyWrap, Self::AesGcm, Self::AesCbcHmacSha256];

    /// The name used in settings, `keys show` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesKeyWrapPad => "aes-key-wrap-pad",
            Self::AesKeyWrap => "aes-key-wrap",
            Self::AesGcm => "aes-gcm",
            Self::AesCbcHmacSha256 => "aes-cbc-hmac-sha256",
        }
    }

    /// Parses a method's name (`auto` is not a method: see [`choose`]).
    pub fn parse(name: &str) -> Result<Self, KeysError> {
        Self::PREFERENCE.into_iter().find(|m| m.name() == name.trim()).ok_or_else(|| {
            KeysError::Config(format!(
                "unknown wrapping method {name:?}: use auto or one of {}",
                Self::PREFERENCE.map(Self::name).join(", ")
            ))
        })
    }

    /// The mechanisms the method needs, and for what.
    pub fn needs(self) -> &'static [(MechanismType, Use)] {
        match self {
            Self::AesKeyWrapPad => &[(MechanismType::AES_KEY_WRAP_PAD, Use::Wrap)],
            Self::AesKeyWrap => &[(MechanismType::AES_KEY_WRAP, Use::Wrap)],
            Self::AesGcm => &[(MechanismType::AES_GCM, Use::Encrypt)],
            Self::AesCbcHmacSha256 => &[
                (MechanismType::AES_CBC, Use::Encrypt),
                (MechanismType::SHA256_HMAC, Use::Sign),
                (MechanismType::GENERIC_SECRET_KEY_GEN, Use::Generate),
            ],
        }
    }

    /// Whether the root key is used through `C_Encrypt`/`C_Decrypt` (its template allows
    /// encryption, not wrapping).
    pub fn encrypts(self) -> bool {
        matches!(self, Self::AesGcm | Self::AesCbcHmacSha256)
    }

    /// Whether the root key has a MAC companion object.
    pub fn has_mac_key(self) -> bool {
        self == Self::AesCbcHmacSha256
    }
}

impl fmt::Display for WrapMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The method to use on a token: `forced` if given and the token can do it, else the first
/// of [`WrapMethod::PREFERENCE`] it can do. `can(mechanism, use)` says whether the token
/// offers a mechanism for a use. The error names what is missing.
pub fn choose(
    forced: Option<WrapMethod>,
    can: impl Fn(MechanismType, Use) -> bool,
) -> Result<WrapMethod, KeysError> {
    let missing = |m: WrapMethod| -> Vec<String> {
        m.needs().iter().filter(|(t, u)| !can(*t, *u)).map(|(t, u)| format!("{t} for {u:?}")).collect()
    };
    if let Some(m) = forced {
        let lacks = missing(m);
        return if lacks.is_empty() {
            Ok(m)
        } else {
            Err(KeysError::Config(format!(
                "the token cannot wrap with {m} (set in the configuration): it lacks {}",
                lacks.join(", ")
            )))
        };
    }
    WrapMethod::PREFERENCE.into_iter().find(|m| missing(*m).is_empty()).ok_or_else(|| {
        KeysError::Config(format!(
            "the token offers no way to wrap keys: it needs one of {}",
            WrapMethod::PREFERENCE.map(|m| format!("{m} ({})", missing(m).join(", "))).join("; ")
        ))
    })
}

/// The context a bucket key is bound to: the bucket, the root key and its version.
pub fn bucket_context(bucket: &str, key_id: &str, version: u32) -> Vec<u8> {
    let mut out = b"cipherstore bucket key v1".to_vec();
    for part in [bucket.as_bytes(), key_id.as_bytes(), version.to_string().as_bytes()] {
        out.push(0);
        out.extend_from_slice(part);
    }
    out
}

/// What the MAC of an `aes-cbc-hmac-sha256` wrapped key covers.
pub fn mac_input(context: &[u8], iv: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAC_DOMAIN.len() + 8 + context.len() + iv.len() + ciphertext.len());
    out.extend_from_slice(MAC_DOMAIN);
    out.extend_from_slice(&(context.len() as u64).to_be_bytes());
    out.extend_from_slice(context);
    out.extend_from_slice(iv);
    out.extend_from_slice(ciphertext);
    out
}

/// Splits an `aes-cbc-hmac-sha256` wrapped key into IV, ciphertext and MAC; `None`
/// when it is too short or the ciphertext is not whole blocks.
pub fn split_cbc(wrapped: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    if wrapped.len() < CBC_IV_LEN + 16 + MAC_LEN {
        return None;
    }
    let (iv, rest) = wrapped.split_at(CBC_IV_LEN);
    let (ct, mac) = rest.split_at(rest.len() - MAC_LEN);
    (ct.len() % 16 == 0).then_some((iv, ct, mac))
}

/// Splits an `aes-gcm` wrapped key into nonce and ciphertext-with-tag; `None` when too short.
pub fn split_gcm(wrapped: &[u8]) -> Option<(&[u8], &[u8])> {
    (wrapped.len() > GCM_NONCE_LEN + GCM_TAG_LEN).then(|| wrapped.split_at(GCM_NONCE_LEN))
}

/// The MAC companion's `CKA_ID` for root key object `id`.
pub fn mac_id(id: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend_from_slice(MAC_ID_SUFFIX);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serialise_as_named() {
        for m in WrapMethod::PREFERENCE {
            assert_eq!(WrapMethod::parse(m.name()).unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{}\"", m.name()));
        }
        let e = WrapMethod::parse("rot13").unwrap_err().to_string();
        assert!(e.contains("aes-gcm") && e.contains("rot13"), "{e}");
        assert_eq!(WrapMethod::default(), WrapMethod::AesKeyWrapPad, "what unrecorded keys used");
    }

    #[test]
    fn the_first_usable_method_is_chosen_and_a_forced_one_is_checked() {
        let softhsm = |_: MechanismType, _: Use| true;
        assert_eq!(choose(None, softhsm).unwrap(), WrapMethod::AesKeyWrapPad);
        assert_eq!(choose(Some(WrapMethod::AesGcm), softhsm).unwrap(), WrapMethod::AesGcm);
        // opencryptoki's software token: CBC and HMAC, no key wrap, no GCM.
        let ock = |t: MechanismType, _: Use| {
            [MechanismType::AES_CBC, MechanismType::SHA256_HMAC, MechanismType::GENERIC_SECRET_KEY_GEN]
                .contains(&t)
        };
        assert_eq!(choose(None, ock).unwrap(), WrapMethod::AesCbcHmacSha256);
        let e = choose(Some(WrapMethod::AesGcm), ock).unwrap_err().to_string();
        assert!(e.contains("CKM_AES_GCM"), "{e}");
        // Key wrap offered but only for encryption does not count.
        let enc_only = |t: MechanismType, u: Use| t == MechanismType::AES_KEY_WRAP && u == Use::Encrypt;
        let e = choose(None, enc_only).unwrap_err().to_string();
        assert!(e.contains("no way to wrap") && e.contains("CKM_AES_KEY_WRAP_PAD"), "{e}");
    }

    #[test]
    fn framing_refuses_short_or_ragged_input() {
        assert!(split_cbc(&[0; 16 + 48 + 32]).is_some());
        assert!(split_cbc(&[0; 16 + 47 + 32]).is_none());
        assert!(split_cbc(&[0; 16 + 32]).is_none());
        assert!(split_gcm(&[0; 12 + 32 + 16]).is_some());
        assert!(split_gcm(&[0; 28]).is_none());
        let a = mac_input(b"ab", b"c", b"d");
        let b = mac_input(b"a", b"bc", b"d");
        assert_ne!(a, b, "the context's length is covered");
        assert_ne!(bucket_context("a", "k", 1), bucket_context("a", "k", 2));
        assert_eq!(mac_id(b"x"), b"x/mac");
    }
}
