//! Key envelopes, FORMAT.md §3.3 and §3.4: how an object's data key is sealed under a
//! customer key (SSE-C) or derived from a bucket key (SSE-KP), each with a key commitment
//! that makes "wrong key" unambiguous.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::Error;
use super::format::{FIXED_HEADER_LEN, MAX_CRN_LEN, SALT_LEN, SSE_C_ENVELOPE_LEN, SSE_KP_ENVELOPE_FIXED};
use super::key::{KEY_LEN, SecretKey};
use super::primitives::{Backend, Gcm, TAG_LEN, hkdf_sha256};

const SSE_C_INFO: &[u8] = b"cipherstore/v1/sse-c";
const SSE_KP_INFO: &[u8] = b"cipherstore/v1/sse-kp";
const ZERO_NONCE: [u8; 12] = [0; 12];

/// The key a caller supplies and the context it is bound to: the customer's key for SSE-C
/// (the S3 service binds bucket and object; the file CLI an empty context), or the
/// bucket key for SSE-KP (bound to the bucket name).
#[derive(Clone, Debug)]
pub struct CustomerKey {
    /// The 256-bit key.
    pub key: SecretKey,
    /// Caller-chosen binding, hashed into the key derivation.
    pub context: Vec<u8>,
}

impl CustomerKey {
    /// A customer key with an empty context.
    pub fn new(key: SecretKey) -> Self {
        Self { key, context: Vec::new() }
    }

    fn derive(&self, salt: &[u8; SALT_LEN]) -> Result<(SecretKey, Zeroizing<[u8; KEY_LEN]>), Error> {
        self.derive_with(SSE_C_INFO, salt)
    }

    fn derive_with(
        &self,
        info: &[u8],
        salt: &[u8; SALT_LEN],
    ) -> Result<(SecretKey, Zeroizing<[u8; KEY_LEN]>), Error> {
        let mut okm = Zeroizing::new([0u8; 2 * KEY_LEN]);
        hkdf_sha256(self.key.expose(), salt, &[info, &self.context], okm.as_mut())?;
        let mut kek = [0u8; KEY_LEN];
        kek.copy_from_slice(&okm[..KEY_LEN]);
        let mut commit = Zeroizing::new([0u8; KEY_LEN]);
        commit.copy_from_slice(&okm[KEY_LEN..]);
        let kek_key = SecretKey::from_bytes(kek);
        zeroize::Zeroize::zeroize(&mut kek);
        Ok((kek_key, commit))
    }

    /// Seals `data_key` for a header whose fixed part is `fixed`.
    pub fn seal(
        &self,
        salt: &[u8; SALT_LEN],
        fixed: &[u8],
        data_key: &SecretKey,
        backend: Backend,
    ) -> Result<Vec<u8>, Error> {
        let (kek, commit) = self.derive(salt)?;
        let mut out = Vec::with_capacity(SSE_C_ENVELOPE_LEN);
        out.extend_from_slice(commit.as_ref());
        let mut sealed = Zeroizing::new(*data_key.expose());
        let tag = Gcm::new(backend, &kek)?.seal(&ZERO_NONCE, &fixed[..FIXED_HEADER_LEN], sealed.as_mut())?;
        out.extend_from_slice(sealed.as_ref());
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens an envelope: [`Error::WrongKey`] if the commitment does not match this key,
    /// [`Error::EnvelopeCorrupted`] if the sealed data key fails authentication.
    pub fn open(
        &self,
        salt: &[u8; SALT_LEN],
        fixed: &[u8],
        envelope: &[u8],
        backend: Backend,
    ) -> Result<SecretKey, Error> {
        if envelope.len() != SSE_C_ENVELOPE_LEN {
            return Err(Error::MalformedHeader("SSE-C envelope has the wrong length"));
        }
        let (kek, commit) = self.derive(salt)?;
        let matches: bool = envelope[..KEY_LEN].ct_eq(commit.as_ref()).into();
        if !matches {
            return Err(Error::WrongKey);
        }
        let mut dk = Zeroizing::new([0u8; KEY_LEN]);
        dk.copy_from_slice(&envelope[KEY_LEN..2 * KEY_LEN]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&envelope[2 * KEY_LEN..]);
        Gcm::new(backend, &kek)?
            .open(&ZERO_NONCE, &fixed[..FIXED_HEADER_LEN], dk.as_mut(), &tag)
            .map_err(|_| Error::EnvelopeCorrupted)?;
        Ok(SecretKey::from_bytes(*dk))
    }
}

impl CustomerKey {
    /// SSE-KP: the envelope naming root key `crn`, and the object's data key derived from
    /// this bucket key and the salt.
    pub fn seal_kp(&self, salt: &[u8; SALT_LEN], crn: &str) -> Result<(Vec<u8>, SecretKey), Error> {
        if crn.is_empty() || crn.len() > MAX_CRN_LEN {
            return Err(Error::InvalidParameter("the root key CRN must be 1 to 512 bytes"));
        }
        let (dk, commit) = self.derive_with(SSE_KP_INFO, salt)?;
        let mut out = Vec::with_capacity(SSE_KP_ENVELOPE_FIXED + crn.len());
        out.extend_from_slice(commit.as_ref());
        out.extend_from_slice(&(crn.len() as u16).to_le_bytes());
        out.extend_from_slice(crn.as_bytes());
        Ok((out, dk))
    }

    /// SSE-KP: the data key, if this bucket key (and context) is the one the envelope
    /// commits to; otherwise [`Error::WrongKey`].
    pub fn open_kp(&self, salt: &[u8; SALT_LEN], envelope: &[u8]) -> Result<SecretKey, Error> {
        let (dk, commit) = self.derive_with(SSE_KP_INFO, salt)?;
        let stored = envelope.get(..KEY_LEN).ok_or(Error::MalformedHeader("SSE-KP envelope too short"))?;
        let matches: bool = stored.ct_eq(commit.as_ref()).into();
        if matches { Ok(dk) } else { Err(Error::WrongKey) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_opens_only_with_the_right_key_context_and_header() {
        let ck = CustomerKey::new(SecretKey::from_bytes([1; 32]));
        let dk = SecretKey::random();
        let fixed = [3u8; FIXED_HEADER_LEN];
        let salt = [2u8; SALT_LEN];
        let env = ck.seal(&salt, &fixed, &dk, Backend::Accelerated).unwrap();
        assert_eq!(env.len(), SSE_C_ENVELOPE_LEN);
        assert_eq!(ck.open(&salt, &fixed, &env, Backend::Portable).unwrap(), dk);
        let wrong = CustomerKey::new(SecretKey::from_bytes([9; 32]));
        assert_eq!(wrong.open(&salt, &fixed, &env, Backend::Accelerated).unwrap_err(), Error::WrongKey);
        let other_ctx = CustomerKey { key: ck.key.clone(), context: b"bucket/key".to_vec() };
        assert_eq!(other_ctx.open(&salt, &fixed, &env, Backend::Accelerated).unwrap_err(), Error::WrongKey);
        let mut bad = env.clone();
        bad[40] ^= 1;
        assert_eq!(ck.open(&salt, &fixed, &bad, Backend::Accelerated).unwrap_err(), Error::EnvelopeCorrupted);
        let mut fixed2 = fixed;
        fixed2[20] ^= 1;
        assert_eq!(
            ck.open(&salt, &fixed2, &env, Backend::Accelerated).unwrap_err(),
            Error::EnvelopeCorrupted
        );
    }
}
