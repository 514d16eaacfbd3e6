//! ETags as S3 computes them: the plaintext's MD5 for a single object; the MD5 of the
//! parts' MD5s and `-N` for a multipart one; random 32 hex digits for SSE-C objects, whose
//! ETags must not reveal an MD5 of the plaintext.

use engine::md5::Md5;

use super::record::Protection;

/// A random 32-hex-digit ETag.
pub fn random() -> String {
    let mut b = [0u8; 16];
    engine::primitives::fill_random(&mut b);
    base::hex::encode(&b)
}

/// The ETag of an object or part protected by `protection` whose plaintext MD5 is `md5`
/// (hex; `None` if it was not computed).
pub fn of(protection: &Protection, md5: Option<String>) -> String {
    match (protection, md5) {
        (Protection::SseC { .. }, _) | (_, None) => random(),
        (_, Some(m)) => m,
    }
}

/// Whether objects protected by `protection` need the plaintext's MD5 for their ETag.
pub fn needs_md5(protection: &Protection) -> bool {
    !matches!(protection, Protection::SseC { .. })
}

/// The ETag of a multipart object from its parts' ETags, in object order.
pub fn multipart<'a>(protection: &Protection, parts: impl ExactSizeIterator<Item = &'a str>) -> String {
    let count = parts.len();
    let mut md5 = Md5::new();
    for etag in parts {
        md5.update(&base::hex::decode(etag).unwrap_or_default());
    }
    format!("{}-{count}", of(protection, Some(base::hex::encode(&md5.finalize()))))
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
        assert_eq!(multipart(&Protection::Aont, parts.into_iter()), format!("{want}-2"));
        let ssec = multipart(&Protection::SseC { key_md5: "m".into() }, parts.into_iter());
        assert!(ssec.ends_with("-2") && !ssec.starts_with(&want));
        assert_eq!(random().len(), 32);
        assert_eq!(of(&Protection::Aont, Some("x".into())), "x");
        assert!(!needs_md5(&Protection::SseC { key_md5: "m".into() }));
    }
}
