//! ETags as S3 computes them: the plaintext's MD5 for a single object; the MD5 of the
//! parts' MD5s and `-N` for a multipart one; random 32 hex digits for SSE-C objects, whose
//! ETags must not reveal an MD5 of the plaintext. An SSE-C part's ETag is a function of its
//! plaintext's MD5 keyed by the customer's key, so a part re-sent with the same bytes and
//! key keeps its ETag (clients complete with the first answer's) and reveals nothing to
//! anyone without the key.

use engine::CustomerKey;
use engine::md5::Md5;
use serde::{Deserialize, Serialize};

use super::record::Protection;

/// An object's or part's ETag as S3 reports it, without the quotes HTTP puts around it:
/// 32 hex digits, and `-N` after them for an object made of N parts. Kept in records as
/// that text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ETag(String);

impl ETag {
    /// A delete marker's: it has no bytes, so no ETag (kept as empty text).
    pub fn none() -> Self {
        Self(String::new())
    }

    /// The ETag as kept (no quotes).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ETag as HTTP headers and XML carry it, in quotes.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// Whether `sent` (as a client sends an ETag: quoted or not) names this one.
    pub fn is(&self, sent: &str) -> bool {
        sent.trim_matches('"') == self.0
    }
}

impl From<String> for ETag {
    /// An ETag already computed (records written before this type, test fixtures).
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for ETag {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl std::fmt::Display for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A random 32-hex-digit ETag.
pub fn random() -> ETag {
    let mut b = [0u8; 16];
    engine::primitives::fill_random(&mut b);
    ETag(base::hex::encode(&b))
}

/// The ETag of an object or part protected by `protection` whose plaintext MD5 is `md5`
/// (hex; `None` if it was not computed).
pub fn of(protection: &Protection, md5: Option<String>) -> ETag {
    match (protection, md5) {
        (Protection::SseC { .. }, _) | (_, None) => random(),
        (_, Some(m)) => ETag(m),
    }
}

/// The ETag of a part protected by `protection` whose plaintext MD5 is `md5` (hex), sealed
/// with `key` (SSE-C's and SSE-KP's): for SSE-C, HKDF-SHA-256 of the customer key with the
/// MD5 as info; else as [`of`].
pub fn of_part(protection: &Protection, md5: Option<String>, key: Option<&CustomerKey>) -> ETag {
    match (protection, md5, key) {
        (Protection::SseC { .. }, Some(m), Some(k)) => {
            let mut out = [0u8; 16];
            let md5 = base::hex::decode(&m).unwrap_or_default();
            match engine::primitives::hkdf_sha256(
                k.key.expose(),
                PART_ETAG_SALT,
                &[&k.context, &md5],
                &mut out,
            ) {
                Ok(()) => ETag(base::hex::encode(&out)),
                Err(_) => random(),
            }
        }
        (_, m, _) => of(protection, m),
    }
}

/// The HKDF salt of SSE-C part ETags (domain separation from every other derivation).
const PART_ETAG_SALT: &[u8] = b"cipherstore sse-c part etag v1";

/// Whether objects protected by `protection` need the plaintext's MD5 for their ETag.
pub fn needs_md5(protection: &Protection) -> bool {
    !matches!(protection, Protection::SseC { .. })
}

/// The ETag of a multipart object from its parts' ETags, in object order.
pub fn multipart<'a>(protection: &Protection, parts: impl ExactSizeIterator<Item = &'a str>) -> ETag {
    let count = parts.len();
    let mut md5 = Md5::new();
    for etag in parts {
        md5.update(&base::hex::decode(etag).unwrap_or_default());
    }
    let whole = of(protection, Some(base::hex::encode(&md5.finalize())));
    ETag(format!("{}-{count}", whole.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_is_md5_of_part_md5s() {
        // MD5("") and MD5("a") as parts.
        let parts = ["d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661"];
        let mut md5 = Md5::new();
        for p in parts {
            md5.update(&base::hex::decode(p).unwrap());
        }
        let want = base::hex::encode(&md5.finalize());
        assert_eq!(multipart(&Protection::Aont, parts.into_iter()).as_str(), format!("{want}-2"));
        let ssec = multipart(&Protection::SseC { key_md5: "m".into() }, parts.into_iter());
        assert!(ssec.as_str().ends_with("-2") && !ssec.as_str().starts_with(&want));
        assert_eq!(random().as_str().len(), 32);
        assert_eq!(of(&Protection::Aont, Some("x".into())).as_str(), "x");
        let e = ETag::from("abc".to_owned());
        assert!(e.is("\"abc\"") && e.is("abc") && !e.is("abd"));
        assert_eq!(e.quoted(), "\"abc\"");
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"abc\"", "kept as its text");
        assert!(!needs_md5(&Protection::SseC { key_md5: "m".into() }));
    }

    #[test]
    fn sse_c_part_etags_follow_bytes_and_key_and_hide_the_md5() {
        let ssec = Protection::SseC { key_md5: "m".into() };
        let key = |b: u8| CustomerKey::new(engine::SecretKey::from_bytes([b; 32]));
        let md5 = |s: &str| Some(base::hex::encode(&Md5::digest(s.as_bytes())));
        let a = of_part(&ssec, md5("part"), Some(&key(1)));
        assert_eq!(a, of_part(&ssec, md5("part"), Some(&key(1))), "same bytes, same key");
        assert_ne!(a, of_part(&ssec, md5("other"), Some(&key(1))), "other bytes");
        assert_ne!(a, of_part(&ssec, md5("part"), Some(&key(2))), "other key");
        assert_ne!(Some(a.as_str().to_owned()), md5("part"), "not the plaintext's MD5");
        assert_eq!(a.as_str().len(), 32);
        let plain = Protection::Aont;
        assert_eq!(of_part(&plain, md5("part"), None).as_str(), md5("part").unwrap_or_default());
    }
}
