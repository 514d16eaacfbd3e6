//! Import tokens, as Key Protect secures key material on its way in: the service makes an
//! RSA-4096 key pair and a nonce (`POST /import_token`); a client retrieves the public key
//! and nonce a limited number of times before the token expires (`GET /import_token`),
//! encrypts its material with RSA-OAEP (SHA-256, or SHA-1 for older clients) and the nonce
//! with AES-256-GCM under the material, and sends both with the key to create or rotate.
//! The service decrypts the material and checks the nonce: only material encrypted for
//! this token, by someone holding the material, is imported.
//!
//! One token per instance, kept in the key state every host shares; its private key is
//! kept sealed as a DEK of the instance default root key (one HSM call to seal, one to
//! open), never in the clear.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::KeysError;
use super::id::KeyRef;
use super::manager::KeyManager;
use base::clock::now_unix;
use engine::SecretKey;
use engine::primitives::{Gcm, NONCE_LEN, TAG_LEN};

/// The longest an import token lives (Key Protect: 24 hours).
pub const MAX_EXPIRATION: u64 = 86_400;
/// The most retrievals a token allows.
pub const MAX_RETRIEVALS: u32 = 500;
/// What seals the token's private key (the DEK's additional data).
const SEAL_AAD: &str = "cipherstore import token private key v1";

/// The instance's import token, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportToken {
    /// When it was made, Unix seconds.
    pub created: u64,
    /// When it stops, Unix seconds.
    pub expires: u64,
    /// How many retrievals it allows.
    pub max_retrievals: u32,
    /// How many are left.
    pub remaining: u32,
    /// The public key, PEM.
    pub public_key_pem: String,
    /// The nonce, base64.
    pub nonce: String,
    /// The private key (PKCS#8), sealed as a DEK of the instance default key.
    pub sealed_private_key: String,
}

/// What a retrieval hands out.
#[derive(Debug, Clone)]
pub struct RetrievedToken {
    /// The token as kept (after this retrieval).
    pub token: ImportToken,
}

/// Material encrypted for the import token.
#[derive(Debug, Clone, Copy)]
pub struct EncryptedMaterial<'a> {
    /// RSA-OAEP ciphertext of the 32-byte material.
    pub payload: &'a [u8],
    /// AES-256-GCM of the token's nonce under the material: ciphertext ‖ tag.
    pub encrypted_nonce: &'a [u8],
    /// The GCM IV (12 bytes).
    pub iv: &'a [u8],
    /// RSA-OAEP with SHA-256 (`RSAES_OAEP_SHA_256`), else SHA-1 (`RSAES_OAEP_SHA_1`).
    pub sha256: bool,
}

fn refused(why: impl Into<String>) -> KeysError {
    KeysError::Refused(why.into())
}

fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

impl KeyManager {
    /// Makes the instance's import token (replacing any): valid `expiration` seconds,
    /// retrievable `max_retrievals` times.
    pub fn create_import_token(
        &self,
        expiration: u64,
        max_retrievals: u32,
    ) -> Result<ImportToken, KeysError> {
        if !(300..=MAX_EXPIRATION).contains(&expiration) {
            return Err(refused(format!("an import token lives 300 to {MAX_EXPIRATION} seconds")));
        }
        if !(1..=MAX_RETRIEVALS).contains(&max_retrievals) {
            return Err(refused(format!("an import token allows 1 to {MAX_RETRIEVALS} retrievals")));
        }
        let private = PrivateDecryptingKey::generate(KeySize::Rsa4096)
            .map_err(|_| refused("cannot make the import token's RSA key"))?;
        let der = Zeroizing::new(
            private.as_der().map_err(|_| refused("cannot encode the import token's key"))?.as_ref().to_vec(),
        );
        let public = private.public_key().as_der().map_err(|_| refused("cannot encode the public key"))?;
        let default = KeyRef::parse(&self.default_key()?);
        let sealed = self.wrap_dek(&default, Some(&der), &[SEAL_AAD.to_owned()])?;
        let mut nonce = [0u8; 32];
        engine::primitives::fill_random(&mut nonce);
        let now = now_unix();
        let token = ImportToken {
            created: now,
            expires: now + expiration,
            max_retrievals,
            remaining: max_retrievals,
            public_key_pem: pem(public.as_ref()),
            nonce: B64.encode(nonce),
            sealed_private_key: sealed.ciphertext,
        };
        self.change(|s| {
            s.import_token = Some(token.clone());
            Ok(())
        })?;
        tracing::info!(expires = token.expires, max_retrievals, "import token made");
        Ok(token)
    }

    /// The import token's state, without a retrieval (`None`: none made).
    pub fn import_token(&self) -> Result<Option<ImportToken>, KeysError> {
        Ok(self.snapshot()?.import_token)
    }

    /// Retrieves the import token (its public key and nonce), counting the retrieval.
    pub fn retrieve_import_token(&self) -> Result<ImportToken, KeysError> {
        self.change(|s| {
            let t = s.import_token.as_mut().ok_or_else(|| refused("no import token: make one first"))?;
            if now_unix() >= t.expires {
                return Err(refused("the import token has expired: make another"));
            }
            if t.remaining == 0 {
                return Err(refused(
                    "the import token has been retrieved as often as it allows: make another",
                ));
            }
            t.remaining -= 1;
            Ok(t.clone())
        })
    }

    /// The material `m` carries, if it was encrypted for the current import token and its
    /// nonce checks.
    pub fn open_import(&self, m: &EncryptedMaterial<'_>) -> Result<SecretKey, KeysError> {
        let token = self.import_token()?.ok_or_else(|| refused("no import token: make one first"))?;
        if now_unix() >= token.expires {
            return Err(refused("the import token has expired: make another and encrypt the material again"));
        }
        let default = KeyRef::parse(&self.default_key()?);
        let der = self.unwrap_dek(&default, &token.sealed_private_key, &[SEAL_AAD.to_owned()])?.plaintext;
        let private = PrivateDecryptingKey::from_pkcs8(&der)
            .map_err(|_| refused("the import token's key does not open"))?;
        let oaep = OaepPrivateDecryptingKey::new(private)
            .map_err(|_| refused("the import token's key is not RSA"))?;
        let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
        let alg = if m.sha256 { &OAEP_SHA256_MGF1SHA256 } else { &OAEP_SHA1_MGF1SHA1 };
        let plain = oaep.decrypt(alg, m.payload, &mut out, None).map_err(|_| {
            refused(
                "the payload does not decrypt with the import token (another token, or another algorithm?)",
            )
        })?;
        let material: [u8; 32] = plain
            .try_into()
            .map_err(|_| refused("the imported material must be a 256-bit AES key (32 bytes)"))?;
        let material = SecretKey::from_bytes(material);
        let iv: [u8; NONCE_LEN] = m.iv.try_into().map_err(|_| refused("iv must be 12 bytes"))?;
        if m.encrypted_nonce.len() < TAG_LEN {
            return Err(refused("encryptedNonce is too short"));
        }
        let (ct, tag) = m.encrypted_nonce.split_at(m.encrypted_nonce.len() - TAG_LEN);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| refused("encryptedNonce is too short"))?;
        let gcm = Gcm::new(engine::Backend::default(), &material)
            .map_err(|_| refused("cannot use the material"))?;
        let mut nonce = ct.to_vec();
        let expected = B64.decode(&token.nonce).unwrap_or_default();
        let ok = gcm.open(&iv, &[], &mut nonce, &tag).is_ok()
            && subtle::ConstantTimeEq::ct_eq(nonce.as_slice(), expected.as_slice()).into();
        if !ok {
            return Err(refused("the encrypted nonce does not match the import token's nonce"));
        }
        Ok(material)
    }
}
