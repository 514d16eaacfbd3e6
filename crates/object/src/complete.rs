//! Completing a multipart upload: which uploaded parts a CompleteMultipartUpload request
//! chooses, by S3's rules (listed in ascending order, each once; uploaded, with the ETag
//! named if one is; every part but the last at least [`MIN_PART`] bytes), and the object
//! record they make: the part manifest, the multipart ETag, the upload's protection,
//! headers, tags and lock.

use std::collections::BTreeMap;

use super::etag;
use super::private::Private;
use super::record::{Layout, ObjectRecord, PartEntry};
use super::upload::{Part, UploadRecord};

/// Smallest part, except the last (S3's rule).
pub const MIN_PART: u64 = 5 << 20;

/// Why the parts a request names cannot complete the upload. The texts are the ones
/// clients see.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartsError {
    /// The request names no parts.
    #[error("the request names no parts")]
    NoParts,
    /// A part is listed out of ascending order, or twice.
    #[error("parts must be listed in ascending order, each once")]
    Order,
    /// A part that was not uploaded, or whose ETag is not the one named.
    #[error("part {0} was not uploaded or its ETag differs")]
    Missing(u32),
    /// A part other than the last is smaller than [`MIN_PART`].
    #[error("part {number} has {size} bytes; every part but the last needs at least 5 MiB")]
    TooSmall {
        /// Its number.
        number: u32,
        /// Its plaintext size.
        size: u64,
    },
}

/// The parts of `uploaded` that `named` chooses (part number, and the ETag the request
/// names for it, if any), in its order.
pub fn choose<'a>(
    uploaded: &'a BTreeMap<u32, Part>,
    named: &[(u32, Option<&str>)],
) -> Result<Vec<&'a Part>, PartsError> {
    if named.is_empty() {
        return Err(PartsError::NoParts);
    }
    let mut chosen: Vec<&Part> = Vec::with_capacity(named.len());
    for &(number, etag) in named {
        if chosen.last().is_some_and(|p| p.record.number >= number) {
            return Err(PartsError::Order);
        }
        let part = uploaded
            .get(&number)
            .filter(|p| etag.is_none_or(|e| p.record.etag.is(e)))
            .ok_or(PartsError::Missing(number))?;
        chosen.push(part);
    }
    if let Some(small) = chosen.iter().rev().skip(1).find(|p| p.record.size < MIN_PART) {
        return Err(PartsError::TooSmall { number: small.record.number, size: small.record.size });
    }
    Ok(chosen)
}

/// The record of the object that `chosen` parts of `upload` (`upload_id`) make at
/// `now`, with `private` (the upload's headers and user metadata, opened, and the
/// object's checksums).
pub fn record(
    upload: UploadRecord,
    upload_id: &str,
    chosen: &[&Part],
    private: Private,
    now: u64,
) -> ObjectRecord {
    let manifest: Vec<PartEntry> = chosen
        .iter()
        .map(|p| PartEntry {
            number: p.record.number,
            size: p.record.size,
            stored: p.stored,
            salt: p.record.salt,
        })
        .collect();
    let size = manifest.iter().map(|p| p.size).sum();
    let etag = etag::multipart(&upload.protection, chosen.iter().map(|p| p.record.etag.as_str()));
    ObjectRecord {
        headers: private.headers,
        user: private.user,
        upload_id: Some(upload_id.to_owned()),
        storage_class: upload.storage_class,
        tags: upload.tags,
        lock: upload.lock,
        acl: upload.acl,
        ..ObjectRecord::new(upload.key, size, etag, now, upload.protection, Layout::Parts(manifest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Protection;
    use crate::upload::PartRecord;

    fn part(number: u32, size: u64) -> Part {
        Part {
            record: PartRecord {
                number,
                size,
                etag: format!("e{number}").into(),
                last_modified: 0,
                salt: None,
                sealed: None,
            },
            stored: size + 40,
        }
    }

    fn uploaded(parts: &[(u32, u64)]) -> BTreeMap<u32, Part> {
        parts.iter().map(|&(n, s)| (n, part(n, s))).collect()
    }

    #[test]
    fn parts_are_chosen_by_s3s_rules() {
        let up = uploaded(&[(1, MIN_PART), (2, MIN_PART), (3, 10)]);
        let numbers = |c: Vec<&Part>| c.iter().map(|p| p.record.number).collect::<Vec<_>>();
        assert_eq!(numbers(choose(&up, &[(1, None), (3, Some("e3"))]).unwrap()), [1, 3]);
        assert_eq!(choose(&up, &[]).err(), Some(PartsError::NoParts));
        assert_eq!(choose(&up, &[(2, None), (1, None)]).err(), Some(PartsError::Order));
        assert_eq!(choose(&up, &[(1, None), (1, None)]).err(), Some(PartsError::Order));
        assert_eq!(choose(&up, &[(4, None)]).err(), Some(PartsError::Missing(4)));
        assert_eq!(choose(&up, &[(1, Some("other"))]).err(), Some(PartsError::Missing(1)));
        assert_eq!(
            choose(&up, &[(3, None)]).map(|c| c.len()),
            Ok(1),
            "the last part may be small, and so may a single one"
        );
        let small = uploaded(&[(1, 10), (2, 10)]);
        assert_eq!(
            choose(&small, &[(1, None), (2, None)]).err(),
            Some(PartsError::TooSmall { number: 1, size: 10 })
        );
    }

    #[test]
    fn the_record_lays_the_parts_end_to_end() {
        let up = uploaded(&[(1, MIN_PART), (3, 7)]);
        let chosen: Vec<&Part> = up.values().collect();
        let upload =
            UploadRecord::new("id".into(), 5, "key".into(), Protection::Aont, &Private::default(), None)
                .unwrap();
        let r = record(upload, "id", &chosen, Private::default(), 9);
        assert_eq!((r.key.as_str(), r.size, r.last_modified), ("key", MIN_PART + 7, 9));
        assert_eq!(r.upload_id.as_deref(), Some("id"));
        assert!(r.etag.as_str().ends_with("-2"), "{}", r.etag);
        let Layout::Parts(manifest) = &r.layout else { panic!("not a manifest") };
        assert_eq!(
            manifest.iter().map(|p| (p.number, p.stored)).collect::<Vec<_>>(),
            [(1, MIN_PART + 40), (3, 47)]
        );
    }
}
