//! The part manifest of a multipart object: for each part, in order, its number (bound
//! into its chunks), plaintext length and stored length, kept in the object's metadata
//! (attribute `parts`, as `number:size:stored` entries joined by commas). Reading locates
//! a plaintext range in O(parts) without touching the stored bytes.

use crate::engine::Error;
use crate::pipeline::PipelineError;
use crate::store::{ObjectMeta, PartMeta};

/// Attribute holding the manifest.
pub const PARTS: &str = "parts";

/// One part of a multipart object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Part number as uploaded.
    pub number: u32,
    /// Plaintext length.
    pub size: u64,
    /// Stored length.
    pub stored: u64,
}

/// The manifest for `parts`, in their order in the object.
pub fn encode(parts: &[PartMeta]) -> String {
    let entries: Vec<String> =
        parts.iter().map(|p| format!("{}:{}:{}", p.number, p.size, p.stored)).collect();
    entries.join(",")
}

/// The manifest of `meta`'s object; `None` for an object written by a single PUT.
pub fn parse(meta: &ObjectMeta) -> Result<Option<Vec<Entry>>, PipelineError> {
    let Some(text) = meta.attributes.get(PARTS) else {
        return Ok(None);
    };
    // A damaged manifest is a damaged object.
    let bad = || PipelineError::Engine(Error::Corrupted { unit: 0 });
    let mut out = Vec::new();
    for entry in text.split(',') {
        let mut fields = entry.split(':').map(str::parse::<u64>);
        let (Some(Ok(number)), Some(Ok(size)), Some(Ok(stored)), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let number = u32::try_from(number).map_err(|_| bad())?;
        out.push(Entry { number, size, stored });
    }
    let total = out.iter().try_fold(0u64, |acc, e| acc.checked_add(e.size)).ok_or_else(bad)?;
    if total != meta.size || out.is_empty() {
        return Err(bad());
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(parts: Option<&str>, size: u64) -> ObjectMeta {
        ObjectMeta {
            key: "k".into(),
            size,
            etag: String::new(),
            last_modified: 0,
            content_type: None,
            user: Default::default(),
            attributes: parts.map(|p| (PARTS.to_owned(), p.to_owned())).into_iter().collect(),
        }
    }

    #[test]
    fn manifests_round_trip_and_damage_is_refused() {
        let parts = [
            PartMeta { number: 1, size: 10, stored: 70, etag: String::new(), last_modified: 0 },
            PartMeta { number: 3, size: 5, stored: 60, etag: String::new(), last_modified: 0 },
        ];
        let text = encode(&parts);
        assert_eq!(text, "1:10:70,3:5:60");
        let got = parse(&meta(Some(&text), 15)).unwrap().unwrap();
        assert_eq!(
            got,
            vec![Entry { number: 1, size: 10, stored: 70 }, Entry { number: 3, size: 5, stored: 60 }]
        );
        assert!(parse(&meta(None, 15)).unwrap().is_none());
        for bad in ["", "1:10", "1:10:70:1", "x:1:1", "1:10:70,3:6:60", "99999999999:15:1"] {
            assert!(parse(&meta(Some(bad), 15)).is_err(), "{bad}");
        }
    }
}
