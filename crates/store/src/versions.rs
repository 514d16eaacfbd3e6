//! Object versions as the stores keep them (S3 versioning). A key's versions are its
//! current one, which GET without a version id serves, and its noncurrent ones, newest
//! first. Each version has an id that sorts by the time it was made, newest first
//! ([`Version::new`]); S3 shows it as that id, or as `null` for the null version (the
//! one an unversioned or suspended bucket writes, at most one per key). A delete marker is
//! a version without bytes.
//!
//! The stores know nothing else of versioning: when a bucket's versioning is on is the
//! object layer's to say, by committing with a [`Version`] (see
//! [`super::ObjectWriter::commit_version`]) or without one (the current object replaced,
//! as before versioning existed).

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a version id: 16 hex digits of time, 16 of randomness.
pub const ID_LEN: usize = 32;

/// A version's id: [`ID_LEN`] lower-case hex digits, 16 of time (so that ids sort newest
/// first) and 16 of randomness. Records keep it as that text; reading one checks it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct VersionId(String);

impl VersionId {
    /// A new id made now: it sorts before every id made earlier (by this clock) and after
    /// every id made later.
    pub fn new() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let mut random = [0u8; 8];
        engine::primitives::fill_random(&mut random);
        Self(format!("{:016x}{}", u64::MAX - nanos, base::hex::encode(&random)))
    }

    /// The id of the null version of an object written before its bucket had versioning:
    /// older than any id made since.
    fn unversioned() -> Self {
        Self(format!("{:016x}{:016x}", u64::MAX, 0))
    }

    /// Reads an id; `None` if `text` does not have an id's shape.
    pub fn parse(text: &str) -> Option<Self> {
        is_id(text).then(|| Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for VersionId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for VersionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("malformed version id"))
    }
}

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its id.
    pub id: VersionId,
    /// The null version: S3 names it `null`; a key has at most one.
    pub null: bool,
    /// A delete marker: no bytes; GET of the key answers 404 while it is current.
    pub marker: bool,
}

impl Version {
    /// A new version made now: its id sorts before every id made earlier (by this clock)
    /// and after every id made later.
    pub fn new(null: bool, marker: bool) -> Self {
        Self { id: VersionId::new(), null, marker }
    }

    /// The version of an object written before its bucket had versioning: the null
    /// version, older than any version made since.
    pub fn unversioned() -> Self {
        Self { id: VersionId::unversioned(), null: true, marker: false }
    }

    /// The id S3 shows: `null` for the null version.
    pub fn s3_id(&self) -> &str {
        if self.null { NULL } else { self.id.as_str() }
    }

    /// Whether it is the version `wanted` names.
    pub fn is(&self, wanted: &Wanted) -> bool {
        match wanted {
            Wanted::Null => self.null,
            Wanted::Id(id) => !self.null && self.id == *id,
        }
    }

    /// The flags as one byte (bit 0: null, bit 1: delete marker), as stores keep them.
    pub fn flags(&self) -> u8 {
        u8::from(self.null) | (u8::from(self.marker) << 1)
    }

    /// A version from its id and [`Version::flags`]; `None` if either is malformed.
    pub fn from_parts(id: &str, flags: u8) -> Option<Self> {
        let id = VersionId::parse(id).filter(|_| flags < 4)?;
        Some(Self { id, null: flags & 1 != 0, marker: flags & 2 != 0 })
    }
}

/// How S3 names the null version.
pub const NULL: &str = "null";

/// Whether `id` has the shape of a version id.
pub fn is_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The version a request names by its S3 id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// `null`.
    Null,
    /// Any other id (checked to be one: so it can name a file).
    Id(VersionId),
}

impl Wanted {
    /// The error for a key that has no such version.
    pub fn missing(&self, bucket: &str, key: &str) -> super::StoreError {
        let version = match self {
            Self::Null => NULL.to_owned(),
            Self::Id(id) => id.to_string(),
        };
        super::StoreError::NoSuchVersion { bucket: bucket.to_owned(), key: key.to_owned(), version }
    }

    /// Reads an S3 version id; `None` if it cannot be one of ours.
    pub fn parse(s3_id: &str) -> Option<Self> {
        match s3_id {
            NULL => Some(Self::Null),
            id => VersionId::parse(id).map(Self::Id),
        }
    }
}

/// One entry of a version listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    /// The object key.
    pub key: String,
    /// The version.
    pub version: Version,
    /// Whether it is the key's current version.
    pub latest: bool,
    /// Its record, as committed.
    pub record: Vec<u8>,
    /// Its annex, if it has one.
    pub annex: Option<Vec<u8>>,
}

/// Where a version listing resumes: after this key (all its versions), or after this
/// version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionCursor {
    /// The key.
    pub key: String,
    /// The version of `key` last listed (its id as stored); `None`: after all of them.
    pub after_id: Option<VersionId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_newest_first_and_read_back() {
        let a = Version::new(false, false);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Version::new(true, true);
        assert!(b.id < a.id, "{} then {}", a.id, b.id);
        assert!(a.id < Version::unversioned().id);
        assert_eq!(Version::from_parts(b.id.as_str(), b.flags()), Some(b.clone()));
        assert_eq!(b.s3_id(), "null");
        assert_eq!(a.s3_id(), a.id.as_str());
        assert_eq!(Version::from_parts("xyz", 0), None);
        assert_eq!(Version::from_parts(a.id.as_str(), 4), None);
        assert_eq!(Wanted::parse("null"), Some(Wanted::Null));
        assert_eq!(Wanted::parse(a.id.as_str()), Some(Wanted::Id(a.id.clone())));
        let json = serde_json::to_string(&a.id).unwrap();
        assert_eq!(serde_json::from_str::<VersionId>(&json).unwrap(), a.id, "kept as its text");
        assert!(
            serde_json::from_str::<VersionId>("\"../../x\"").is_err(),
            "a malformed id in a record is refused"
        );
        assert_eq!(Wanted::parse("../../x"), None);
        assert!(a.is(&Wanted::Id(a.id.clone())) && !a.is(&Wanted::Null) && b.is(&Wanted::Null));
    }
}
