//! Versions of objects, as S3 names them: reading one version, removing one for good,
//! delete markers (a delete in a bucket that keeps versions), and listing versions. The
//! store keeps the versions ([`store::versions`]); this module checks that each
//! record names the version it is filed as, and makes the records of delete markers.

/// The version id S3 gives an object written while versioning was off or suspended.
pub use store::versions::NULL;

use super::bucket::Versioning;
use super::error::ObjectError;
use super::etag::ETag;
use super::objects::{Fetched, Objects};
use super::record::{Layout, ObjectRecord, Protection};
use store::{Page, VersionCursor, Wanted};

/// What a delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The version id of the version it made (a delete marker) or removed, as S3 shows it;
    /// `None` in a bucket that never kept versions.
    pub version_id: Option<String>,
    /// Whether that version is a delete marker.
    pub marker: bool,
}

/// A version as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    /// Key.
    pub key: String,
    /// Version id, as S3 shows it.
    pub version_id: String,
    /// Whether it is the key's current version.
    pub latest: bool,
    /// Whether it is a delete marker.
    pub marker: bool,
    /// Plaintext length.
    pub size: u64,
    /// ETag, without quotes.
    pub etag: ETag,
    /// Unix seconds.
    pub last_modified: u64,
    /// Storage class, when not STANDARD.
    pub storage_class: Option<String>,
}

/// Reads an S3 version id of `key` in `bucket`. One shaped like a version id of any S3
/// service (letters, digits, `.`, `_`, `-`) that cannot be one of ours names no version
/// (NoSuchVersion); anything else is malformed (InvalidArgument).
pub fn wanted(bucket: &str, key: &str, version_id: &str) -> Result<Wanted, ObjectError> {
    if let Some(w) = Wanted::parse(version_id) {
        return Ok(w);
    }
    let plausible = (1..=1024).contains(&version_id.len())
        && version_id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    Err(match plausible {
        true => ObjectError::Store(store::StoreError::NoSuchVersion {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version: version_id.to_owned(),
        }),
        false => ObjectError::InvalidVersion(version_id.chars().take(64).collect()),
    })
}

/// The record of a delete marker of `key` made now.
fn marker_record(key: &str) -> ObjectRecord {
    let now = base::clock::now_unix();
    ObjectRecord::new(key.to_owned(), 0, ETag::none(), now, Protection::Aont, Layout::DeleteMarker)
}

impl Objects {
    /// Opens one version of an object by its S3 version id.
    pub async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Fetched, ObjectError> {
        let stored = self.store.get_version(bucket, key, &wanted(bucket, key, version_id)?).await?;
        Self::fetched(stored, key)
    }

    /// Deletes `key` as a bucket with `versioning` does: removes it (never versioned), or
    /// makes a delete marker its current version. Blocking.
    pub async fn delete_in(
        &self,
        bucket: &str,
        key: &str,
        versioning: Versioning,
    ) -> Result<Deleted, ObjectError> {
        if versioning == Versioning::Off {
            self.store.delete(bucket, key).await?;
            return Ok(Deleted::default());
        }
        store::check_key(key)?;
        let writer = self.store.put(bucket, key).await?;
        let mut record = marker_record(key);
        Objects::commit(writer, &mut record, None, versioning).await?;
        let version_id = record.version_id.map_or_else(|| NULL.to_owned(), |v| v.to_string());
        Ok(Deleted { version_id: Some(version_id), marker: true })
    }

    /// Up to `limit` versions of the keys under `prefix`, after the key `key_marker`
    /// (or, with `version_id_marker`, after that version of it): keys in byte order,
    /// each key's current version first, then the others newest first.
    pub async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        version_id_marker: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListedVersion>, ObjectError> {
        let after = match (key_marker, version_id_marker) {
            (None, _) => None,
            (Some(key), None) => Some(VersionCursor { key: key.to_owned(), after_id: None }),
            (Some(key), Some(v)) => {
                let after_id = match wanted(bucket, key, v)? {
                    Wanted::Id(id) => Some(id),
                    // The null version's place among the others is its stored id.
                    Wanted::Null => match self.store.get_version(bucket, key, &Wanted::Null).await {
                        Ok(stored) => stored.version.map(|v| v.id),
                        Err(store::StoreError::NoSuchVersion { .. }) => None,
                        Err(e) => return Err(e.into()),
                    },
                };
                Some(VersionCursor { key: key.to_owned(), after_id })
            }
        };
        self.store
            .list_versions(bucket, Page::new(prefix, after.as_ref(), limit))
            .await?
            .into_iter()
            .map(|v| {
                let record = Self::open_record(&v.record, &v.key)?;
                Self::check_version(&record, Some(&v.version))?;
                let r = record.unchecked();
                let annex = super::annex::decode(&v.record, v.annex.as_deref())?;
                Ok(ListedVersion {
                    version_id: v.version.s3_id().to_owned(),
                    latest: v.latest,
                    marker: v.version.marker,
                    size: r.size,
                    etag: r.etag.clone(),
                    last_modified: r.last_modified,
                    storage_class: annex.storage_class(r.storage_class.as_deref()).map(str::to_owned),
                    key: v.key,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn marker_records_seal_and_open_as_markers() {
        let r = marker_record("k");
        let sealed = codec::seal(&r, None).unwrap();
        let opened = codec::open(&sealed, "k").unwrap().verify(None).unwrap();
        assert!(opened.is_delete_marker() && opened.size == 0 && opened.version_id.is_none());
        assert!(matches!(wanted("b", "k", "../x"), Err(ObjectError::InvalidVersion(_))));
        assert!(matches!(
            wanted("b", "k", "3HL4kqtJlcpXroDTDmJ"),
            Err(ObjectError::Store(store::StoreError::NoSuchVersion { .. }))
        ));
        assert_eq!(wanted("b", "k", "null").unwrap(), Wanted::Null);
    }
}
