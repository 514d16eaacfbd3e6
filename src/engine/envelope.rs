//! Key envelopes, FORMAT.md §3.3: how an object's data key is sealed under a customer key
//! (SSE-C), with a key commitment that makes "wrong key" unambiguous.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::Error;
use super::format::{FIXED_HEADER_LEN, SALT_LEN, SSE_C_ENVELOPE_LEN};
use super::key::{KEY_LEN, SecretKey};
use super::primitives::{Backend, Gcm, TAG_LEN, hkdf_sha256};

const SSE_C_INFO: &[u8] = b"cipherstore/v1/sse-c";
const ZERO_NONCE: [u8; 12] = [0; 12];

/// A customer-supplied key and the context it is bound to (the S3 service passes bucket
/// and object key; the file CLI an empty context).
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
        let mut okm = Zeroizing::new([0u8; 2 * KEY_LEN]);
        hkdf_sha256(self.key.expose(), salt, &[SSE_C_INFO, &self.context], okm.as_mut())?;
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
