//! The part manifest of a multipart object: for each part, in order, its number (bound
//! into its chunks), plaintext length, stored length and header salt, kept in the object's
//! metadata (attribute `parts`, as `number:size:stored:salt` entries joined by commas; the
//! salt, [`super::body_salt`], is absent from objects written before it was recorded).
//! Reading locates a plaintext range in O(parts) without touching the stored bytes.

use super::body_salt::{self, Salt};
use crate::engine::Error;
use crate::pipeline::PipelineError;
use crate::store::{ObjectMeta, PartMeta};

/// Attribute holding the manifest.
pub const PARTS: &str = "parts";

/// One part of a multipart object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Part number as uploaded.
    pub number: u32,
    /// Plaintext length.
    pub size: u64,
    /// Stored length.
    pub stored: u64,
    /// The salt its header must carry, when recorded.
    pub salt: Option<Salt>,
}

/// The manifest for `parts`, in their order in the object.
pub fn encode(parts: &[PartMeta]) -> String {
    let entries: Vec<String> = parts
        .iter()
        .map(|p| match p.salt.as_str() {
            "" => format!("{}:{}:{}", p.number, p.size, p.stored),
            salt => format!("{}:{}:{}:{salt}", p.number, p.size, p.stored),
        })
        .collect();
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
        let mut fields = entry.split(':');
        let mut number = || fields.next().map(str::parse::<u64>);
        let (Some(Ok(number)), Some(Ok(size)), Some(Ok(stored))) = (number(), number(), number()) else {
            return Err(bad());
        };
        let salt = fields.next().map(body_salt::parse).transpose()?;
        if fields.next().is_some() {
            return Err(bad());
        }
        let number = u32::try_from(number).map_err(|_| bad())?;
        out.push(Entry { number, size, stored, salt });
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
        let part = |number, size, stored, salt: &str| PartMeta {
            number,
            size,
            stored,
            etag: String::new(),
            last_modified: 0,
            salt: salt.into(),
        };
        let salt = "0f".repeat(16);
        let parts = [part(1, 10, 70, &salt), part(3, 5, 60, "")];
        let text = encode(&parts);
        assert_eq!(text, format!("1:10:70:{salt},3:5:60"));
        let got = parse(&meta(Some(&text), 15)).unwrap().unwrap();
        assert_eq!(
            got,
            vec![
                Entry { number: 1, size: 10, stored: 70, salt: Some([0x0f; 16]) },
                Entry { number: 3, size: 5, stored: 60, salt: None }
            ]
        );
        assert!(parse(&meta(None, 15)).unwrap().is_none());
        let long = format!("1:15:70:{salt}:1");
        for bad in ["", "1:10", "1:10:70:1", "x:1:1", "1:10:70,3:6:60", "99999999999:15:1", &long] {
            assert!(parse(&meta(Some(bad), 15)).is_err(), "{bad}");
        }
    }
}
