//! Data encryption keys wrapped for the key service's callers (Key Protect's `wrap`,
//! `unwrap` and `rewrap` actions): the self-describing ciphertext they receive.
//!
//! A caller's DEK (1 to [`MAX_DEK`] bytes) is sealed with AES-256-GCM under a fresh
//! 256-bit key-encryption key, and that KEK is wrapped in the HSM under one version of the
//! root key, by the method that version was made for — the same root key → key hierarchy
//! as bucket keys, so one HSM call per wrap or unwrap whatever the DEK's length and
//! whatever wrapping the token offers. The ciphertext (base64 of the layout below) names
//! the version and method, so it unwraps after rotations and on any gateway:
//!
//! ```text
//! "CSD1" | version u32 BE | method u8 | len u16 BE | KEK as wrapped in the HSM [len]
//!        | nonce [12] | sealed DEK | tag [16]
//! ```
//!
//! The HSM binds the KEK to [`kek_context`] (key id and version) where the method binds a
//! context; the GCM seal covers the header and the caller's additional authenticated data
//! (each item length-prefixed), so a ciphertext moved to another key, version or AAD does
//! not open.

use base64::Engine as _;
use zeroize::Zeroizing;

use super::wrapping::WrapMethod;
use engine::primitives::{Gcm, NONCE_LEN, TAG_LEN};
use engine::{Backend, SecretKey};

/// The first bytes of every ciphertext.
const MAGIC: &[u8; 4] = b"CSD1";
/// The largest DEK accepted (Key Protect accepts up to 7,168 bytes of base64).
pub const MAX_DEK: usize = 4096;
/// The most additional-data items, and the longest one.
pub const MAX_AAD_ITEMS: usize = 255;
/// The longest additional-data item, in bytes.
pub const MAX_AAD_ITEM: usize = 255;
/// The longest ciphertext read (base64 characters).
pub const MAX_CIPHERTEXT: usize = 16 * 1024;

/// Why a ciphertext or a DEK was refused (never with key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DekError {
    /// The plaintext DEK is empty or too long.
    #[error("the data encryption key must be 1 to {MAX_DEK} bytes (it is {0})")]
    DekLength(usize),
    /// The additional authenticated data has too many or too long items.
    #[error(
        "additionalAuthenticatedData: at most {MAX_AAD_ITEMS} items of at most {MAX_AAD_ITEM} bytes each"
    )]
    Aad,
    /// Not base64.
    #[error("the ciphertext is not base64")]
    NotBase64,
    /// Not one of ours, or cut short.
    #[error("the ciphertext is not one this key service made (or it was cut short)")]
    Malformed,
    /// The method byte names no method.
    #[error("the ciphertext names an unknown wrapping method ({0})")]
    UnknownMethod(u8),
}

/// A ciphertext's parts, borrowed from its decoded bytes.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The root key version whose token object wrapped the KEK.
    pub version: u32,
    /// How it wrapped it.
    pub method: WrapMethod,
    /// The KEK as wrapped in the HSM.
    pub wrapped_kek: &'a [u8],
    header: &'a [u8],
    nonce: [u8; NONCE_LEN],
    sealed: &'a [u8],
    tag: [u8; TAG_LEN],
}

fn method_code(m: WrapMethod) -> u8 {
    match m {
        WrapMethod::AesKeyWrapPad => 1,
        WrapMethod::AesKeyWrap => 2,
        WrapMethod::AesGcm => 3,
        WrapMethod::AesCbcHmacSha256 => 4,
    }
}

fn method_of(code: u8) -> Result<WrapMethod, DekError> {
    WrapMethod::PREFERENCE.into_iter().find(|m| method_code(*m) == code).ok_or(DekError::UnknownMethod(code))
}

/// What the HSM binds a KEK to: the root key and its version.
pub fn kek_context(key_id: &str, version: u32) -> Vec<u8> {
    let mut out = b"cipherstore dek kek v1".to_vec();
    for part in [key_id.as_bytes(), version.to_string().as_bytes()] {
        out.push(0);
        out.extend_from_slice(part);
    }
    out
}

/// Checks a DEK's length and the AAD's shape before any HSM call.
pub fn check(dek: &[u8], aad: &[String]) -> Result<(), DekError> {
    if dek.is_empty() || dek.len() > MAX_DEK {
        return Err(DekError::DekLength(dek.len()));
    }
    check_aad(aad)
}

/// Checks the AAD's shape.
pub fn check_aad(aad: &[String]) -> Result<(), DekError> {
    if aad.len() > MAX_AAD_ITEMS || aad.iter().any(|a| a.len() > MAX_AAD_ITEM) {
        return Err(DekError::Aad);
    }
    Ok(())
}

fn associated(header: &[u8], key_id: &str, aad: &[String]) -> Vec<u8> {
    let mut out = header.to_vec();
    out.extend_from_slice(&(key_id.len() as u32).to_be_bytes());
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&(aad.len() as u32).to_be_bytes());
    for a in aad {
        out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        out.extend_from_slice(a.as_bytes());
    }
    out
}

/// Seals `dek` under `kek` into a ciphertext, the KEK already wrapped (`wrapped_kek`) by
/// `version` of root key `key_id` by `method`.
pub fn seal(
    kek: &SecretKey,
    key_id: &str,
    version: u32,
    method: WrapMethod,
    wrapped_kek: &[u8],
    dek: &[u8],
    aad: &[String],
) -> Result<String, DekError> {
    check(dek, aad)?;
    let wlen = u16::try_from(wrapped_kek.len()).map_err(|_| DekError::Malformed)?;
    let mut out = Vec::with_capacity(11 + wrapped_kek.len() + NONCE_LEN + dek.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_be_bytes());
    out.push(method_code(method));
    out.extend_from_slice(&wlen.to_be_bytes());
    out.extend_from_slice(wrapped_kek);
    let mut nonce = [0u8; NONCE_LEN];
    engine::primitives::fill_random(&mut nonce);
    let gcm = Gcm::new(Backend::default(), kek).map_err(|_| DekError::Malformed)?;
    let ad = associated(&out, key_id, aad);
    let mut buf = Zeroizing::new(dek.to_vec());
    let tag = gcm.seal(&nonce, &ad, &mut buf).map_err(|_| DekError::Malformed)?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    out.extend_from_slice(&tag);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

/// Decodes a ciphertext's base64.
pub fn decode(ciphertext: &str) -> Result<Vec<u8>, DekError> {
    if ciphertext.len() > MAX_CIPHERTEXT {
        return Err(DekError::Malformed);
    }
    base64::engine::general_purpose::STANDARD.decode(ciphertext.trim()).map_err(|_| DekError::NotBase64)
}

/// Splits decoded ciphertext bytes into their parts (no cryptography yet).
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, DekError> {
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(DekError::Malformed)?;
    let (version, rest) = rest.split_first_chunk::<4>().ok_or(DekError::Malformed)?;
    let (code, rest) = rest.split_first().ok_or(DekError::Malformed)?;
    let (wlen, rest) = rest.split_first_chunk::<2>().ok_or(DekError::Malformed)?;
    let wlen = usize::from(u16::from_be_bytes(*wlen));
    if rest.len() < wlen + NONCE_LEN + 1 + TAG_LEN {
        return Err(DekError::Malformed);
    }
    let (wrapped_kek, rest) = rest.split_at(wlen);
    let (nonce, rest) = rest.split_first_chunk::<NONCE_LEN>().ok_or(DekError::Malformed)?;
    let (sealed, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or(DekError::Malformed)?;
    let header_len = bytes.len() - rest.len() - NONCE_LEN;
    Ok(Parsed {
        version: u32::from_be_bytes(*version),
        method: method_of(*code)?,
        wrapped_kek,
        header: &bytes[..header_len],
        nonce: *nonce,
        sealed,
        tag: *tag,
    })
}

impl Parsed<'_> {
    /// Opens the DEK with the unwrapped KEK; `None` if the tag does not verify (wrong key,
    /// wrong AAD, tampered).
    pub fn open(&self, kek: &SecretKey, key_id: &str, aad: &[String]) -> Option<Zeroizing<Vec<u8>>> {
        let gcm = Gcm::new(Backend::default(), kek).ok()?;
        let ad = associated(self.header, key_id, aad);
        let mut buf = Zeroizing::new(self.sealed.to_vec());
        gcm.open(&self.nonce, &ad, &mut buf, &self.tag).ok()?;
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(dek: &[u8], aad: &[String]) -> (SecretKey, String) {
        let kek = SecretKey::random();
        let ct = seal(&kek, "k-1", 3, WrapMethod::AesGcm, b"wrapped-kek-bytes", dek, aad).unwrap();
        (kek, ct)
    }

    #[test]
    fn a_ciphertext_opens_with_its_kek_key_and_aad_only() {
        let aad = vec!["bucket=a".to_owned(), "tenant".to_owned()];
        let (kek, ct) = sealed(b"eighteen-byte-dek!", &aad);
        let bytes = decode(&ct).unwrap();
        let p = parse(&bytes).unwrap();
        assert_eq!(
            (p.version, p.method, p.wrapped_kek),
            (3, WrapMethod::AesGcm, b"wrapped-kek-bytes".as_slice())
        );
        assert_eq!(p.open(&kek, "k-1", &aad).unwrap().as_slice(), b"eighteen-byte-dek!");
        assert!(p.open(&kek, "k-2", &aad).is_none(), "another key id");
        assert!(p.open(&kek, "k-1", &aad[..1]).is_none(), "other AAD");
        assert!(p.open(&SecretKey::random(), "k-1", &aad).is_none(), "other KEK");
        // Every byte flipped is refused, by the parser or by the tag.
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 1;
            if let Ok(p) = parse(&t) {
                assert!(p.open(&kek, "k-1", &aad).is_none(), "byte {i}");
            }
        }
    }

    #[test]
    fn bad_inputs_are_refused_by_name() {
        assert_eq!(check(b"", &[]), Err(DekError::DekLength(0)));
        assert_eq!(check(&[0; MAX_DEK + 1], &[]), Err(DekError::DekLength(MAX_DEK + 1)));
        assert_eq!(check(b"k", &["x".repeat(256)]), Err(DekError::Aad));
        assert_eq!(decode("not base64!"), Err(DekError::NotBase64));
        assert!(matches!(parse(b"CSD1"), Err(DekError::Malformed)));
        assert!(matches!(parse(b"XXXX\0\0\0\x01\x01\0\0"), Err(DekError::Malformed)));
        let (_, ct) = sealed(b"k", &[]);
        let mut bytes = decode(&ct).unwrap();
        bytes[8] = 9;
        assert!(matches!(parse(&bytes), Err(DekError::UnknownMethod(9))));
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
