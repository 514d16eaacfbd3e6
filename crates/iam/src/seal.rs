//! Secret keys sealed at rest ([`Seal`]): AES-256-GCM under the identity seal key (a key
//! the HSM root key wraps, handed in by whoever opened the HSM), with the access key id as
//! associated data, so a sealed secret moved to another credential does not open. Without
//! a seal key, secrets are kept in the clear ([`StoredSecret::Plain`]).

use zeroize::Zeroizing;

use super::directory::StoredSecret;
use super::error::IamError;
use engine::primitives::{Gcm, NONCE_LEN, TAG_LEN};
use engine::{Backend, SecretKey};

/// Seals and opens secret keys under one key.
pub struct Seal {
    gcm: Gcm,
    /// What the key is (the root key that wraps it), for messages.
    origin: String,
}

impl Seal {
    /// Seals under `key`; `origin` names where it comes from (never the key).
    pub fn new(key: &SecretKey, origin: &str, backend: Backend) -> Result<Self, IamError> {
        let gcm = Gcm::new(backend, key).map_err(|_| IamError::Seal {
            action: "seal",
            access_key: String::new(),
            reason: "cannot schedule the seal key".into(),
        })?;
        Ok(Self { gcm, origin: origin.to_owned() })
    }

    /// Where the seal key comes from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `secret` sealed for `access_key`.
    pub fn seal(&self, access_key: &str, secret: &str) -> Result<StoredSecret, IamError> {
        let mut nonce = [0u8; NONCE_LEN];
        engine::primitives::fill_random(&mut nonce);
        let mut buf = Zeroizing::new(secret.as_bytes().to_vec());
        let tag = self.gcm.seal(&nonce, access_key.as_bytes(), &mut buf).map_err(|_| IamError::Seal {
            action: "seal",
            access_key: access_key.to_owned(),
            reason: "encryption failed".into(),
        })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        Ok(StoredSecret::Sealed(base::hex::encode(&out)))
    }
}

/// The secret of `access_key` as kept, opened with `seal` when it is sealed.
pub(crate) fn open(
    seal: Option<&Seal>,
    access_key: &str,
    kept: &StoredSecret,
) -> Result<Zeroizing<String>, IamError> {
    let fail = |reason: &str| IamError::Seal {
        action: "open",
        access_key: access_key.to_owned(),
        reason: reason.into(),
    };
    let sealed = match kept {
        StoredSecret::Plain(s) => return Ok(Zeroizing::new(s.clone())),
        StoredSecret::Sealed(hex) => hex,
    };
    let seal = seal.ok_or_else(|| fail("it is sealed and no HSM is configured here to open it"))?;
    let bytes = Zeroizing::new(base::hex::decode(sealed).ok_or_else(|| fail("the sealed form is not hex"))?);
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(fail("the sealed form is too short"));
    }
    let (nonce, rest) = bytes.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail("bad nonce"))?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| fail("bad tag"))?;
    let mut plain = Zeroizing::new(body.to_vec());
    seal.gcm
        .open(&nonce, access_key.as_bytes(), &mut plain, &tag)
        .map_err(|_| fail(&format!("it does not open under the seal key of {}", seal.origin)))?;
    let text = String::from_utf8(std::mem::take(&mut *plain)).map_err(|e| {
        let mut bytes = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut bytes);
        fail("the opened secret is not text")
    })?;
    Ok(Zeroizing::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_access_key_and_key() {
        let seal = Seal::new(&SecretKey::random(), "root-a", Backend::default()).unwrap();
        let kept = seal.seal("AKIA1", "s3cr3t-key").unwrap();
        let StoredSecret::Sealed(hex) = &kept else { panic!("not sealed") };
        assert!(!hex.contains(&base::hex::encode(b"s3cr3t-key")));
        assert_eq!(open(Some(&seal), "AKIA1", &kept).unwrap().as_str(), "s3cr3t-key");
        let moved = open(Some(&seal), "AKIA2", &kept).unwrap_err();
        assert!(moved.to_string().contains("root-a"), "{moved}");
        let other = Seal::new(&SecretKey::random(), "root-b", Backend::default()).unwrap();
        assert!(open(Some(&other), "AKIA1", &kept).is_err());
        assert!(open(None, "AKIA1", &kept).unwrap_err().to_string().contains("no HSM"));
        let plain = StoredSecret::Plain("clear-secret".into());
        assert_eq!(open(None, "AKIA1", &plain).unwrap().as_str(), "clear-secret");
        for bad in ["zz", "00", &hex[..hex.len() - 2]] {
            assert!(open(Some(&seal), "AKIA1", &StoredSecret::Sealed(bad.into())).is_err());
        }
    }
}
