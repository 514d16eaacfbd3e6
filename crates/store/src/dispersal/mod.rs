//! Dispersal (docs/FORMAT.md §7, docs/ARCHITECTURE.md): a [`Store`] that keeps every
//! object's and part's stored bytes as `n` Reed-Solomon slices on `n` independent targets,
//! any `k` of which rebuild them, and keeps records in another store (the embedded
//! filesystem store, or etcd through the cluster store) with a manifest in front of each.
//! This is IBM COS's model: an AONT-RS package split so that no `k − 1` targets hold enough
//! of it to undo the transform, which makes the keyless default confidential, and any
//! `n − k` targets may be lost.
//!
//! - [`code`]: the Reed-Solomon code, stripes and shard checks;
//! - [`manifest`]: where a record's slices are, carried in front of the record;
//! - [`targets`]: the slice targets (directories, S3 buckets);
//! - [`writer`], [`reader`]: dispersing and gathering bytes;
//! - [`health`]: targets up or down, counters for `/metrics`.
//!
//! Buckets, uploads, listings and annexes are the record store's. Records written before
//! dispersal was turned on carry no manifest, and their bytes are read from the record
//! store as before.

pub mod code;
mod gf;
pub mod health;
pub mod manifest;
mod reader;
pub mod rebuild;
pub mod targets;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;

use code::Code;
use health::Health;
use manifest::{Manifest, unwrap, wrap};
use targets::Targets;
use writer::{DispersingWriter, ObjectDispersal, Sink};

use super::{
    ListedVersion, Named, ObjectWriter, PartWriter, Store, StoreError, StoredObject, StoredPart,
    VersionCursor, Wanted,
};
use crate::VersionStore;
use crate::{AnnexEdit, BucketStore, Completion, ObjectStore, Page, Removal, Removed, Result, UploadStore};

/// The manifest of the current object of `key` in `inner`, if it is dispersed.
async fn current_in(inner: &dyn Store, bucket: &str, key: &str) -> Option<Manifest> {
    inner.head(bucket, key).await.ok().as_deref().and_then(DispersedStore::manifest_of)
}

/// What the writers and readers of one store share.
pub(crate) struct Shared {
    pub(crate) code: Code,
    pub(crate) write_threshold: usize,
    pub(crate) targets: Targets,
    pub(crate) health: Arc<Health>,
}

impl Shared {
    /// Removes the slices of every piece of `manifest`.
    fn remove(&self, manifest: &Manifest) {
        for piece in &manifest.pieces {
            self.targets.remove(&piece.blob);
        }
    }
}

/// How to disperse.
#[derive(Debug, Clone)]
pub struct DispersalConfig {
    /// `k`: slices that rebuild an object.
    pub threshold: usize,
    /// `w`: slices that must be durable for a write to succeed (`k ≤ w ≤ n`).
    pub write_threshold: usize,
    /// The `n` targets (directories or S3 buckets), slice `i` in `targets[i]`.
    pub targets: Vec<targets::TargetConfig>,
    /// Time between background scrubs in `serve` (`None`: never).
    pub scrub_interval: Option<std::time::Duration>,
    /// Bytes per second a background scrub reads at most.
    pub scrub_rate: u64,
}

/// Errors of a dispersal configuration.
#[derive(Debug, thiserror::Error)]
pub enum DispersalError {
    /// Threshold, width and write threshold do not fit together.
    #[error("{0}")]
    Shape(String),
    /// The code could not be made.
    #[error(transparent)]
    Code(#[from] code::CodeError),
    /// A target could not be set up.
    #[error(transparent)]
    Target(#[from] targets::TargetError),
}

/// A store whose bytes are dispersed over `n` targets and whose records live in `inner`.
pub struct DispersedStore {
    inner: Arc<dyn Store>,
    shared: Arc<Shared>,
}

impl DispersedStore {
    /// Disperses over `config`'s targets, keeping records in `inner`. S3 targets need a
    /// Tokio runtime to be current (their clients run on it).
    pub fn new(inner: Arc<dyn Store>, config: &DispersalConfig) -> Result<Self, DispersalError> {
        let n = config.targets.len();
        let (k, w) = (config.threshold, config.write_threshold);
        if !(1 <= k && k <= w && w <= n) || k == n {
            return Err(DispersalError::Shape(format!(
                "dispersal needs 1 ≤ threshold ({k}) ≤ write_threshold ({w}) ≤ width ({n} targets), and threshold < width"
            )));
        }
        let code = Code::new(k, n)?;
        let shared = Shared {
            code,
            write_threshold: w,
            targets: Targets::connect(&config.targets)?,
            health: Arc::new(Health::new(n)),
        };
        Ok(Self { inner, shared: Arc::new(shared) })
    }

    /// The targets' health, for `/metrics`.
    pub fn health(&self) -> Arc<Health> {
        self.shared.health.clone()
    }

    /// The manifest in front of a stored record, if any.
    fn manifest_of(record: &[u8]) -> Option<Manifest> {
        unwrap(record).ok().flatten().map(|(m, _)| m)
    }

    /// The record as the object layer wrote it.
    fn plain(record: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        match unwrap(&record)? {
            Some((_, inner)) => Ok(inner.to_vec()),
            None => Ok(record),
        }
    }

    /// The current object's manifest, to remove its slices once it is replaced.
    async fn current(&self, bucket: &str, key: &str) -> Option<Manifest> {
        current_in(self.inner.as_ref(), bucket, key).await
    }
}

#[async_trait::async_trait]
impl BucketStore for DispersedStore {
    async fn create_bucket(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        self.inner.create_bucket(name, record).await
    }

    async fn bucket(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.bucket(name).await
    }

    async fn update_bucket(&self, name: &str, expected: &[u8], record: &[u8]) -> Result<(), StoreError> {
        self.inner.update_bucket(name, expected, record).await
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete_bucket(name).await
    }

    async fn list_buckets(&self) -> Result<Vec<Named>, StoreError> {
        self.inner.list_buckets().await
    }
}

#[async_trait::async_trait]
impl ObjectStore for DispersedStore {
    async fn put(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError> {
        let sink = Sink::Object(self.inner.put(bucket, key).await?);
        let writer = DispersingWriter::new(self.shared.clone(), sink);
        // Which object an unversioned commit replaces is looked up then; a versioned
        // commit replaces none for good but the null version the store reports.
        let replaces = (self.inner.clone(), bucket.to_owned(), key.to_owned());
        Ok(Box::new(ObjectDispersal { writer, replaces }))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<StoredObject, StoreError> {
        let stored = self.inner.get(bucket, key).await?;
        let Some((manifest, record)) = unwrap(&stored.record)? else { return Ok(stored) };
        let record = record.to_vec();
        let reader = reader::DispersedReader::new(self.shared.clone(), manifest)
            .map_err(|e| StoreError::Corrupt { path: format!("{bucket}/{key}"), reason: e.to_string() })?;
        Ok(StoredObject { record, body: Box::new(reader), annex: stored.annex, version: stored.version })
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        Self::plain(self.inner.head(bucket, key).await?)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<bool, StoreError> {
        let old = self.current(bucket, key).await;
        let deleted = self.inner.delete(bucket, key).await?;
        if let Some(old) = old {
            self.shared.remove(&old);
        }
        Ok(deleted)
    }

    async fn list(&self, bucket: &str, page: Page<'_>) -> Result<Vec<Named>, StoreError> {
        let mut page = self.inner.list(bucket, page).await?;
        for named in &mut page {
            named.record = Self::plain(std::mem::take(&mut named.record))?;
        }
        Ok(page)
    }
}

#[async_trait::async_trait]
impl VersionStore for DispersedStore {
    async fn get_version(&self, bucket: &str, key: &str, wanted: &Wanted) -> Result<StoredObject> {
        let stored = self.inner.get_version(bucket, key, wanted).await?;
        let Some((manifest, record)) = unwrap(&stored.record)? else { return Ok(stored) };
        let record = record.to_vec();
        let reader = reader::DispersedReader::new(self.shared.clone(), manifest)
            .map_err(|e| StoreError::Corrupt { path: format!("{bucket}/{key}"), reason: e.to_string() })?;
        Ok(StoredObject { record, body: Box::new(reader), annex: stored.annex, version: stored.version })
    }

    async fn delete_version(&self, bucket: &str, key: &str, removal: Removal<'_>) -> Result<Removed> {
        let Removal { wanted, allow } = removal;
        // The object layer judges the record it wrote, not the manifest around it.
        let mut judge = |record: &[u8], annex: Option<&[u8]>| allow(&Self::plain(record.to_vec())?, annex);
        let Some((version, record)) =
            self.inner.delete_version(bucket, key, Removal { wanted, allow: &mut judge }).await?
        else {
            return Ok(None);
        };
        if let Some(m) = Self::manifest_of(&record) {
            self.shared.remove(&m);
        }
        Ok(Some((version, Self::plain(record)?)))
    }

    async fn list_versions(&self, bucket: &str, page: Page<'_, VersionCursor>) -> Result<Vec<ListedVersion>> {
        let mut page = self.inner.list_versions(bucket, page).await?;
        for listed in &mut page {
            listed.record = Self::plain(std::mem::take(&mut listed.record))?;
        }
        Ok(page)
    }

    async fn set_annex(&self, bucket: &str, key: &str, edit: AnnexEdit<'_>) -> Result<()> {
        let AnnexEdit { at, change } = edit;
        // An annex is not dispersed: it is the record's neighbour, as small as a record. It
        // binds the record the object layer wrote, not the manifest around it.
        let mut plain = |record: &[u8], annex: Option<&[u8]>| change(&Self::plain(record.to_vec())?, annex);
        self.inner.set_annex(bucket, key, AnnexEdit { at, change: &mut plain }).await
    }
}

#[async_trait::async_trait]
impl UploadStore for DispersedStore {
    async fn create_upload(&self, bucket: &str, upload_id: &str, record: &[u8]) -> Result<(), StoreError> {
        self.inner.create_upload(bucket, upload_id, record).await
    }

    async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.upload(bucket, upload_id).await
    }

    async fn put_part(&self, bucket: &str, upload_id: &str, number: u32) -> Result<Box<dyn PartWriter>> {
        // A part it replaces keeps its slices: a completion may already have read its
        // manifest. The sweep removes slices no record names.
        let sink = Sink::Part(self.inner.put_part(bucket, upload_id, number).await?);
        Ok(Box::new(DispersingWriter::new(self.shared.clone(), sink)))
    }

    async fn list_parts(&self, bucket: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError> {
        let mut parts = self.inner.list_parts(bucket, upload_id).await?;
        for part in &mut parts {
            if let Some((manifest, record)) = unwrap(&part.record)? {
                part.stored = manifest.len();
                part.record = record.to_vec();
            }
        }
        Ok(parts)
    }

    async fn list_uploads(&self, bucket: &str) -> Result<Vec<Named>, StoreError> {
        self.inner.list_uploads(bucket).await
    }

    async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), StoreError> {
        let parts = self.inner.list_parts(bucket, upload_id).await?;
        self.inner.abort_upload(bucket, upload_id).await?;
        for part in parts {
            if let Some(m) = Self::manifest_of(&part.record) {
                self.shared.remove(&m);
            }
        }
        Ok(())
    }

    async fn complete_upload(
        &self,
        bucket: &str,
        done: Completion<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Completion { upload_id, key, parts, record, version } = done;
        let stored = self.inner.list_parts(bucket, upload_id).await?;
        let mut by_number: HashMap<u32, Manifest> = HashMap::new();
        for part in &stored {
            if let Some(m) = Self::manifest_of(&part.record) {
                by_number.insert(part.number, m);
            }
        }
        let mut manifest = Manifest { k: self.shared.code.k(), n: self.shared.code.n(), pieces: Vec::new() };
        for number in parts {
            let Some(m) = by_number.get(number) else {
                return Err(StoreError::Corrupt {
                    path: format!("upload {upload_id} part {number}"),
                    reason: "the part has no dispersal manifest (written before dispersal was on?)"
                        .to_owned(),
                });
            };
            if (m.k, m.n) != (manifest.k, manifest.n) {
                return Err(StoreError::Corrupt {
                    path: format!("upload {upload_id} part {number}"),
                    reason: "the part was dispersed with another threshold or width; upload it again"
                        .to_owned(),
                });
            }
            manifest.pieces.extend(m.pieces.iter().cloned());
        }
        // Without versions the object replaced goes; with them, only a null version replaced.
        let replaces = if version.is_none() { self.current(bucket, key).await } else { None };
        let removed = self
            .inner
            .complete_upload(bucket, Completion { record: &wrap(&manifest, record)?, ..done })
            .await?;
        if let Some(old) = replaces.or_else(|| removed.as_deref().and_then(Self::manifest_of)) {
            self.shared.remove(&old);
        }
        // Parts uploaded but left out of the object went with the upload.
        for (number, m) in &by_number {
            if !parts.contains(number) {
                self.shared.remove(m);
            }
        }
        removed.map(Self::plain).transpose()
    }
}
