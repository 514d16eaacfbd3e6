//! Entries in the metadata service: where an object's or part's bytes are (its blobs,
//! [`BlobRef`]) and its record, or a small object's bytes themselves ([`Located`]), and
//! their encoding (docs/SCALE-OUT.md §1).

use super::*;

/// Where an entry's bytes are: its blobs, end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct BlobRef {
    pub(super) name: String,
    pub(super) len: u64,
}

/// An object's or part's metadata entry: its blobs and its record, or, for a small
/// object, its bytes themselves (`inline`, docs/SCALE-OUT.md §1).
///
/// Encoded as the JSON of this struct; an entry with inline bytes as [`INLINE_TAG`], the
/// JSON's length (u32, big-endian), the JSON, then the bytes as they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Located {
    pub(super) blobs: Vec<BlobRef>,
    /// The object layer's record (base64: the store does not interpret it).
    pub(super) record: String,
    /// The object's annex (tags, retention, legal hold set after it was written), if it
    /// has one (base64, as the object layer gave it; named `tags` since before retention
    /// was kept here): an object's new entry has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tags: Option<String>,
    /// The version it was committed as (its id and flags, [`Version::flags`]); none for an
    /// object written without versioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) version: Option<(String, u8)>,
    #[serde(skip)]
    pub(super) inline: Option<Bytes>,
}

/// The first byte of an entry with inline bytes (a JSON entry starts with `{`).
pub(super) const INLINE_TAG: u8 = 1;

impl Located {
    pub(super) fn new(blobs: Vec<BlobRef>, record: &[u8]) -> Self {
        Self {
            blobs,
            record: base64::engine::general_purpose::STANDARD.encode(record),
            tags: None,
            version: None,
            inline: None,
        }
    }

    /// Its version (the null version's if it was written without one).
    pub(super) fn version(&self, what: &str) -> Result<Version, StoreError> {
        match &self.version {
            None => Ok(Version::unversioned()),
            Some((id, flags)) => {
                Version::from_parts(id, *flags).ok_or_else(|| corrupt(what, &"malformed version"))
            }
        }
    }

    pub(super) fn set_version(&mut self, v: &Version) {
        self.version = Some((v.id.to_string(), v.flags()));
    }

    pub(super) fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let json = serde_json::to_vec(self).map_err(|e| corrupt("an entry", &e))?;
        let Some(bytes) = &self.inline else { return Ok(json) };
        let len = u32::try_from(json.len()).map_err(|e| corrupt("an entry", &e))?;
        let mut out = Vec::with_capacity(5 + json.len() + bytes.len());
        out.push(INLINE_TAG);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(bytes);
        Ok(out)
    }

    pub(super) fn decode(what: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        match bytes.split_first() {
            Some((&INLINE_TAG, rest)) => {
                let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(|| corrupt(what, &"cut short"))?;
                let len = u32::from_be_bytes(*len) as usize;
                let (json, inline) = rest.split_at_checked(len).ok_or_else(|| corrupt(what, &"cut short"))?;
                let mut entry: Self = serde_json::from_slice(json).map_err(|e| corrupt(what, &e))?;
                if !entry.blobs.is_empty() {
                    return Err(corrupt(what, &"both blobs and inline bytes"));
                }
                entry.inline = Some(Bytes::copy_from_slice(inline));
                Ok(entry)
            }
            _ => serde_json::from_slice(bytes).map_err(|e| corrupt(what, &e)),
        }
    }

    pub(super) fn record(&self, what: &str) -> Result<Vec<u8>, StoreError> {
        base64::engine::general_purpose::STANDARD.decode(&self.record).map_err(|e| corrupt(what, &e))
    }

    pub(super) fn annex(&self, what: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.tags.as_ref().map(|t| b64.decode(t).map_err(|e| corrupt(what, &e))).transpose()
    }

    pub(super) fn stored(&self) -> u64 {
        self.inline.as_ref().map_or(0, |b| b.len() as u64) + self.blobs.iter().map(|b| b.len).sum::<u64>()
    }
}
