//! S3's checksum algorithms (`x-amz-checksum-<name>`), and an object's or part's checksums
//! by algorithm. Records keep them as a JSON map from the algorithm's lower-case name to
//! its base64 value; the variants are declared in the order of those names, so a map
//! serialises as it always has.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A checksum algorithm S3 clients may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    /// CRC-32 (IEEE).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64nvme,
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
    /// XXH3-128.
    Xxhash128,
    /// XXH3-64.
    Xxhash3,
    /// XXH64.
    Xxhash64,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in the order of their names.
    pub const ALL: [Self; 10] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64nvme,
        Self::Md5,
        Self::Sha1,
        Self::Sha256,
        Self::Sha512,
        Self::Xxhash128,
        Self::Xxhash3,
        Self::Xxhash64,
    ];

    /// The name in `x-amz-checksum-<name>` and in records (lower case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "crc32",
            Self::Crc32c => "crc32c",
            Self::Crc64nvme => "crc64nvme",
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
            Self::Xxhash128 => "xxhash128",
            Self::Xxhash3 => "xxhash3",
            Self::Xxhash64 => "xxhash64",
        }
    }

    /// The algorithm named `name` (any case), if S3 has one of that name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Checksums by algorithm (base64 values; a composite one of a multipart object ends in
/// `-<parts>`).
pub type Checksums = BTreeMap<ChecksumAlgorithm, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_keep_their_order_and_json() {
        let mut names: Vec<&str> = ChecksumAlgorithm::ALL.iter().map(|a| a.name()).collect();
        let declared = names.clone();
        names.sort_unstable();
        assert_eq!(names, declared, "declared in the order of their names");
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::parse(a.name()), Some(a));
            assert_eq!(ChecksumAlgorithm::parse(&a.name().to_uppercase()), Some(a));
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{}\"", a.name()));
        }
        assert_eq!(ChecksumAlgorithm::parse("crc16"), None);
        let map: Checksums =
            [(ChecksumAlgorithm::Sha256, "s".to_owned()), (ChecksumAlgorithm::Crc32, "c".to_owned())].into();
        assert_eq!(serde_json::to_string(&map).unwrap(), r#"{"crc32":"c","sha256":"s"}"#);
        let back: Checksums = serde_json::from_str(r#"{"crc32c":"x","xxhash3":"y"}"#).unwrap();
        assert_eq!(back.len(), 2);
        assert!(serde_json::from_str::<Checksums>(r#"{"crc16":"x"}"#).is_err(), "no such algorithm");
    }
}
