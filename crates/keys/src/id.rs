//! Key identifiers: random UUIDs, the CRN-like form objects and buckets carry
//! (`crn:v1:cipherstore:<instance>:key:<uuid>`), the token object id of each version, and
//! the key check value recorded for imported material.

use aes::cipher::{BlockCipherEncrypt, KeyInit};

use super::hsm::ObjectRef;
use engine::SecretKey;
use engine::primitives::fill_random;

/// A root key's id: a random (version 4) UUID, lower-case hyphenated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        fill_random(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = base::hex::encode(&b);
        Self(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
    }

    /// Accepts a bare UUID or a CRN ending in `:key:<uuid>`.
    pub fn parse(s: &str) -> Option<Self> {
        let uuid = s.rsplit_once(":key:").map_or(s, |(_, u)| u).to_ascii_lowercase();
        let ok = uuid.len() == 36
            && uuid
                .char_indices()
                .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() });
        ok.then_some(Self(uuid))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `crn:v1:cipherstore:<instance>:key:<uuid>`.
    pub fn crn(&self, instance: &str) -> String {
        format!("crn:v1:cipherstore:{instance}:key:{}", self.0)
    }

    /// The token object of version `version` of this key.
    pub fn object(&self, version: u32) -> ObjectRef {
        let mut id: Vec<u8> = self.0.bytes().filter(|c| *c != b'-').collect();
        id.extend_from_slice(format!(":v{version}").as_bytes());
        ObjectRef { id, label: format!("cipherstore:{}:v{version}", self.0) }
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a request names a root key: by its id (a bare UUID, or a CRN that ends in one) or by
/// its name. Reading one never fails: what is not an id is a name (no name looks like an
/// id, [`crate::KeyManager::create`] refuses those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// By id (given as the id or as a CRN).
    Id(KeyId),
    /// By name.
    Name(String),
}

impl KeyRef {
    /// The root key `text` names: an id or CRN, else a name.
    pub fn parse(text: &str) -> Self {
        KeyId::parse(text).map_or_else(|| Self::Name(text.to_owned()), Self::Id)
    }

    /// The root key a KMS key id names as AWS clients send one: a root key id, CRN or name,
    /// also inside a KMS ARN (`arn:aws:kms:…:key/<id>`, `…:alias/<name>`) or as
    /// `alias/<name>`.
    pub fn from_kms(key_id: &str) -> Self {
        let tail =
            if key_id.starts_with("arn:") { key_id.rsplit(':').next().unwrap_or(key_id) } else { key_id };
        Self::parse(tail.strip_prefix("key/").or_else(|| tail.strip_prefix("alias/")).unwrap_or(tail))
    }

    /// Whether it names the root key with this id and name.
    pub fn names(&self, id: &KeyId, name: &str) -> bool {
        match self {
            Self::Id(wanted) => wanted == id,
            Self::Name(wanted) => wanted == name,
        }
    }
}

impl From<&KeyId> for KeyRef {
    fn from(id: &KeyId) -> Self {
        Self::Id(id.clone())
    }
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// Key check value of AES key material: the first 3 bytes of AES-256 of a zero block, in
/// hex (the common KCV convention for AES keys).
pub fn key_check_value(material: &SecretKey) -> String {
    let cipher = aes::Aes256::new(material.expose().into());
    let mut block = [0u8; 16].into();
    cipher.encrypt_block(&mut block);
    block[..3].iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_references_as_aws_clients_send_them() {
        let id = KeyId::random();
        let name = |n: &str| KeyRef::Name(n.to_owned());
        assert_eq!(KeyRef::from_kms(&format!("arn:aws:kms:us-east-1:1:key/{id}")), KeyRef::Id(id.clone()));
        assert_eq!(KeyRef::from_kms("arn:aws:kms:us-east-1:1:key/abc"), name("abc"));
        assert_eq!(KeyRef::from_kms("arn:aws:kms:us-east-1:1:alias/backup"), name("backup"));
        assert_eq!(KeyRef::from_kms("alias/backup"), name("backup"));
        assert_eq!(KeyRef::from_kms("crn:v1:x"), name("crn:v1:x"));
        assert_eq!(KeyRef::parse(&id.crn("prod")), KeyRef::Id(id.clone()));
        assert!(KeyRef::parse(&id.crn("prod")).names(&id, "anything"));
        assert!(KeyRef::parse("backup").names(&KeyId::random(), "backup"));
        assert!(!KeyRef::parse("backup").names(&id, "other"));
        assert_eq!(KeyRef::parse("backup").to_string(), "backup");
    }

    #[test]
    fn ids_round_trip_through_crns() {
        let id = KeyId::random();
        assert_eq!(id.as_str().len(), 36);
        assert_eq!(&id.as_str()[14..15], "4");
        assert_eq!(KeyId::parse(&id.crn("prod")), Some(id.clone()));
        assert_eq!(KeyId::parse(&id.as_str().to_uppercase()), Some(id.clone()));
        assert_eq!(KeyId::parse("not-a-key"), None);
        assert_ne!(id.object(1).id, id.object(2).id);
        assert!(id.object(3).label.ends_with(":v3"));
    }

    #[test]
    fn kcv_matches_the_aes_known_answer() {
        // AES-256 of a zero block under a zero key starts dc 95 c0 (FIPS-197 style KAT).
        assert_eq!(key_check_value(&SecretKey::from_bytes([0; 32])), "DC95C0");
    }
}
