//! Where ciphertext and its records live. The store never sees plaintext or keys: it is
//! handed engine objects (header and units) and the records the object layer
//! (the `object` crate) keeps beside them, as bytes it does not interpret. [`Store`] is the
//! interface a second backend (an upstream S3 cluster with records in etcd) will also
//! implement; [`fs::FsStore`] is the embedded filesystem backend. Records travel with
//! each object, not in process memory, so several service instances can share a backend.

mod blocking;
pub mod cluster;
pub mod dispersal;
pub mod fs;
pub mod keypath;
pub mod versions;

/// The store traits and the requests their methods take, for code that calls a concrete
/// store (`use store::prelude::*;`).
pub mod prelude {
    pub use crate::{
        AnnexEdit, BucketStore, Completion, ObjectStore, Page, Removal, Store, UploadStore, VersionStore,
    };
}

use std::io::Write;

pub(crate) use blocking::{blocking, in_place};
pub use versions::{ListedVersion, Version, VersionCursor, VersionId, Wanted};

/// What a store's operations return.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No bucket of that name.
    #[error("no bucket named {0:?}")]
    NoSuchBucket(String),
    /// The bucket exists already.
    #[error("bucket {0:?} already exists")]
    BucketExists(String),
    /// The bucket still holds objects.
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    /// The bucket's record changed since it was read ([`BucketStore::update_bucket`]).
    #[error("bucket {0:?} was changed by another request at the same time")]
    BucketChanged(String),
    /// No object under that key.
    #[error("no object {key:?} in bucket {bucket:?}")]
    NoSuchKey {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// The bucket name breaks S3's naming rules.
    #[error(
        "invalid bucket name {0:?}: 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
    )]
    InvalidBucketName(String),
    /// The key is empty or too long.
    #[error("invalid object key: {0}")]
    InvalidKey(&'static str),
    /// No version of the key with that id.
    #[error("no version {version:?} of {key:?} in bucket {bucket:?}")]
    NoSuchVersion {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The version id asked for.
        version: String,
    },
    /// The object layer refused a change ([`Allow`], [`AnnexChange`]); it knows why.
    #[error("the change was refused")]
    Refused,
    /// No multipart upload with that id in the bucket.
    #[error("no multipart upload {0:?}")]
    NoSuchUpload(String),
    /// A stored file is damaged.
    #[error("damaged store file {path}: {reason}")]
    Corrupt {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A service the store depends on (blob cluster, metadata service) cannot be reached
    /// or cannot answer now: retry later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The filesystem failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// Random access to a stored object's bytes.
pub trait ObjectReader: Send + Sync {
    /// Stored length of the object's bytes.
    fn len(&self) -> u64;
    /// Whether there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A hint: the caller is about to read `range` in order. A store that reads over a
    /// network may fetch it in one request; reads outside it still work.
    fn will_read(&self, _range: std::ops::Range<u64>) {}
    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
    /// Whether [`Self::map`] serves this object's bytes.
    fn mappable(&self) -> bool {
        false
    }
    /// Exactly the bytes `[offset, offset + len)`, mapped in memory and read in place (a
    /// local file's pages), for stores where [`Self::mappable`]; others answer
    /// `Unsupported`.
    fn map(&self, _offset: u64, _len: usize) -> std::io::Result<Mapped> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// A region of an object's stored bytes held in memory (see [`ObjectReader::map`]).
pub type Mapped = Box<dyn AsRef<[u8]> + Send>;

/// Sequential reading over an [`ObjectReader`], for the streaming pipeline.
pub struct SequentialReader<'a> {
    inner: &'a dyn ObjectReader,
    pos: u64,
}

impl<'a> SequentialReader<'a> {
    /// Reads from `offset` on.
    pub fn new(inner: &'a dyn ObjectReader, offset: u64) -> Self {
        Self { inner, pos: offset }
    }
}

impl std::io::Read for SequentialReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// An object being written: visible to nobody until [`ObjectWriter::commit`]; dropped
/// without it, it leaves nothing. The bytes arrive through [`Write`] from the sealing
/// pipeline (a blocking thread); the commit is awaited.
#[async_trait::async_trait]
pub trait ObjectWriter: Write + Send {
    /// Makes the object visible under its key with `record`, replacing any previous one,
    /// durably.
    async fn commit(self: Box<Self>, record: &[u8]) -> Result<(), StoreError>;
    /// Makes the object visible as `version` of its key (its bucket keeps versions),
    /// durably: it becomes the key's current version and the version it replaces stays,
    /// noncurrent; but a null version replaces the key's null version, wherever that is.
    /// Returns the record of the version removed that way, if any (its bytes are gone).
    async fn commit_version(self: Box<Self>, record: &[u8], version: &Version) -> Result<Option<Vec<u8>>>;
}

/// A part being written: invisible until [`PartWriter::commit`], which replaces an
/// earlier part of the same number.
#[async_trait::async_trait]
pub trait PartWriter: Write + Send {
    /// Makes the part visible in its upload with `record`, durably; returns its stored
    /// length. Fails with [`StoreError::NoSuchUpload`] if the upload was completed or
    /// aborted meanwhile.
    async fn commit(self: Box<Self>, record: &[u8]) -> Result<u64, StoreError>;
}

/// Generates a fresh upload id.
pub fn new_upload_id() -> String {
    let mut b = [0u8; 16];
    engine::primitives::fill_random(&mut b);
    base::hex::encode(&b)
}

/// Checks the shape of an upload id (so it can name a directory safely).
pub fn check_upload_id(id: &str) -> Result<(), StoreError> {
    if id.len() == 32 && id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        Ok(())
    } else {
        Err(StoreError::NoSuchUpload(id.chars().take(64).collect()))
    }
}

/// What [`VersionStore::set_annex`] makes of a version's record and present annex: the annex to
/// keep (`None`: none). An error leaves everything as it was and is returned as is.
pub type AnnexChange<'a> =
    &'a mut (dyn FnMut(&[u8], Option<&[u8]>) -> Result<Option<Vec<u8>>, StoreError> + Send);

/// Whether [`VersionStore::delete_version`] may remove a version, given its record and annex; an
/// error keeps it and is returned as is.
pub type Allow<'a> = &'a mut (dyn FnMut(&[u8], Option<&[u8]>) -> Result<(), StoreError> + Send);

/// A stored object: its record, its bytes, and the annex kept beside it.
pub struct StoredObject {
    /// The record, as committed.
    pub record: Vec<u8>,
    /// Bytes.
    pub body: Box<dyn ObjectReader>,
    /// The annex (tags, retention, legal hold) [`VersionStore::set_annex`] last kept for it, as
    /// given; the object layer tells whether it still belongs to this object (it may
    /// predate an overwrite).
    pub annex: Option<Vec<u8>>,
    /// Its version, if it was committed as one; `None`: written without versioning (it is
    /// the key's null version).
    pub version: Option<Version>,
}

/// A named record: an object's in a listing, a bucket's, an upload's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The object key, bucket name or upload id.
    pub name: String,
    /// The record, as committed.
    pub record: Vec<u8>,
    /// An object's annex, if it has one (never for buckets and uploads).
    pub annex: Option<Vec<u8>>,
}

/// One page of a listing: the names that start with `prefix` and sort after the cursor
/// `after` (an object key, or a [`VersionCursor`] for versions), at most `limit` of them.
#[derive(Debug)]
pub struct Page<'a, C: ?Sized = str> {
    /// What every name listed starts with.
    pub prefix: &'a str,
    /// Where the previous page ended; `None`: from the start.
    pub after: Option<&'a C>,
    /// How many at the most.
    pub limit: usize,
}

impl<C: ?Sized> Clone for Page<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: ?Sized> Copy for Page<'_, C> {}

impl<'a, C: ?Sized> Page<'a, C> {
    /// The page of up to `limit` names that start with `prefix`, after `after`.
    pub fn new(prefix: &'a str, after: Option<&'a C>, limit: usize) -> Self {
        Page { prefix, after, limit }
    }
}

/// What completes a multipart upload: the object it makes and the parts it is made of.
#[derive(Debug, Clone, Copy)]
pub struct Completion<'a> {
    /// The upload.
    pub upload_id: &'a str,
    /// The key of the object it makes.
    pub key: &'a str,
    /// The parts, by number, in the order their bytes are laid end to end.
    pub parts: &'a [u32],
    /// The object's record.
    pub record: &'a [u8],
    /// Where the object goes among the key's versions; `None`: it replaces the key's
    /// only version.
    pub version: Option<&'a Version>,
}

/// Which version [`VersionStore::delete_version`] removes, and whether it may.
pub struct Removal<'a> {
    /// The version.
    pub wanted: &'a Wanted,
    /// Judges it, given its record and annex (an error keeps it).
    pub allow: Allow<'a>,
}

/// Which version's annex [`VersionStore::set_annex`] replaces, and with what.
pub struct AnnexEdit<'a> {
    /// The version (`None`: the current one).
    pub at: Option<&'a Wanted>,
    /// Makes the annex to keep from the version's record and present annex.
    pub change: AnnexChange<'a>,
}

/// A version removed for good, and its record.
pub type Removed = Option<(Version, Vec<u8>)>;

/// An uploaded part as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// Part number.
    pub number: u32,
    /// Stored length of its bytes.
    pub stored: u64,
    /// Its record, as committed.
    pub record: Vec<u8>,
}

/// Buckets of objects: stored bytes and the records kept with them, which a store keeps
/// and returns as they were given (it never interprets them; the `object` crate does). A store is
/// the four concerns together, each a trait of its own ([`BucketStore`], [`ObjectStore`],
/// [`VersionStore`], [`UploadStore`]) that a backend implements where the code for it
/// lives; callers hold an `Arc<dyn Store>`.
///
/// One execution model: every operation is async and awaited on the caller's task. A
/// backend on a network (the cluster store) awaits its clients; the filesystem store
/// reads one record inline (a page-cache read) and runs anything that walks directories
/// or waits on the disk (`fsync`) through [`blocking`]. Only bytes cross into synchronous
/// code: an [`ObjectWriter`] is written and an [`ObjectReader`] read by the sealing
/// pipeline on its own threads (rayon for sealing and coding).
pub trait Store: BucketStore + ObjectStore + VersionStore + UploadStore {}

impl<T: BucketStore + ObjectStore + VersionStore + UploadStore> Store for T {}

/// Buckets and their records.
#[async_trait::async_trait]
pub trait BucketStore: Send + Sync {
    /// Creates a bucket; [`StoreError::BucketExists`] if it exists.
    async fn create_bucket(&self, name: &str, record: &[u8]) -> Result<(), StoreError>;
    /// A bucket's record.
    async fn bucket(&self, name: &str) -> Result<Vec<u8>, StoreError>;
    /// Replaces a bucket's record if it is still `expected` (the bytes [`BucketStore::bucket`]
    /// returned); else [`StoreError::BucketChanged`] and nothing changes, so that two
    /// changes made at once from the same old record never lose one of them.
    async fn update_bucket(&self, name: &str, expected: &[u8], record: &[u8]) -> Result<(), StoreError>;
    /// Deletes an empty bucket.
    async fn delete_bucket(&self, name: &str) -> Result<(), StoreError>;
    /// Every bucket's record, by name.
    async fn list_buckets(&self) -> Result<Vec<Named>, StoreError>;
}

/// Objects: the current version of each key, its bytes and record.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// Starts writing `key` in `bucket`.
    async fn put(&self, bucket: &str, key: &str) -> Result<Box<dyn ObjectWriter>, StoreError>;
    /// Opens an object.
    async fn get(&self, bucket: &str, key: &str) -> Result<StoredObject, StoreError>;
    /// An object's record.
    async fn head(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.get(bucket, key).await?.record)
    }
    /// Deletes an object (and the annex beside it); `false` if there was none. Only for
    /// buckets that never kept versions: it removes the current version and nothing else.
    async fn delete(&self, bucket: &str, key: &str) -> Result<bool, StoreError>;
    /// The records of one page of objects (keys that start with the page's prefix and sort
    /// after its cursor), in byte order of their keys: each key's current version, unless
    /// it is a delete marker.
    async fn list(&self, bucket: &str, page: Page<'_>) -> Result<Vec<Named>, StoreError>;
}

/// Versions of a key, and the annex kept beside each.
#[async_trait::async_trait]
pub trait VersionStore: Send + Sync {
    /// Opens one version of a key (a delete marker has no bytes);
    /// [`StoreError::NoSuchVersion`] if it has none such.
    async fn get_version(&self, bucket: &str, key: &str, wanted: &Wanted) -> Result<StoredObject>;
    /// Removes one version of a key for good (the one [`Removal::wanted`] names), with its
    /// annex, if [`Removal::allow`] (given its record
    /// and annex, under the same lock or transaction as the removal) lets it; if it was
    /// the current one, the newest of the others becomes current. Returns it and its
    /// record, or `None` if the key has no such version.
    async fn delete_version(&self, bucket: &str, key: &str, removal: Removal<'_>) -> Result<Removed>;
    /// One page of versions of the keys that start with the page's prefix, after its
    /// cursor: keys in byte order, each key's current version first, then the others
    /// newest first.
    async fn list_versions(&self, bucket: &str, page: Page<'_, VersionCursor>) -> Result<Vec<ListedVersion>>;
    /// Replaces the annex kept beside a version of `key` ([`AnnexEdit::at`]; the current
    /// one if `None`) with what [`AnnexEdit::change`] makes of its record and present annex (`None`: keep
    /// nothing), atomically with respect to other changes of that annex and to removals
    /// of the version; [`StoreError::NoSuchKey`] or [`StoreError::NoSuchVersion`] if
    /// there is no such object. The object's record and bytes are left as they are.
    async fn set_annex(&self, bucket: &str, key: &str, edit: AnnexEdit<'_>) -> Result<()>;
}

/// Multipart uploads: their records, parts, and the object they complete into.
#[async_trait::async_trait]
pub trait UploadStore: Send + Sync {
    /// Starts a multipart upload in `bucket` with `record`.
    async fn create_upload(&self, bucket: &str, upload_id: &str, record: &[u8]) -> Result<(), StoreError>;
    /// An upload's record.
    async fn upload(&self, bucket: &str, upload_id: &str) -> Result<Vec<u8>, StoreError>;
    /// Starts writing part `number` of an upload.
    async fn put_part(&self, bucket: &str, upload_id: &str, number: u32) -> Result<Box<dyn PartWriter>>;
    /// The parts uploaded so far, by number.
    async fn list_parts(&self, bucket: &str, upload_id: &str) -> Result<Vec<StoredPart>, StoreError>;
    /// Every upload in progress in `bucket`, by id.
    async fn list_uploads(&self, bucket: &str) -> Result<Vec<Named>, StoreError>;
    /// Discards an upload and its parts.
    async fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<(), StoreError>;
    /// Makes the object [`Completion::key`] out of the upload's parts (stored bytes laid
    /// end to end, in the completion's order) with its record, replacing any object under
    /// that key (or, with a version, as [`ObjectWriter::commit_version`] places it,
    /// returning what it returns), then discards the upload. All or nothing: on failure
    /// the upload is left as it was.
    async fn complete_upload(
        &self,
        bucket: &str,
        done: Completion<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Checks S3's bucket naming rules.
pub fn check_bucket_name(name: &str) -> Result<(), StoreError> {
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-';
    let b = name.as_bytes();
    let ends_ok = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ip_like = name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    if (3..=63).contains(&b.len())
        && b.iter().all(|&c| ok_char(c))
        && ends_ok(b.first())
        && ends_ok(b.last())
        && !name.contains("..")
        && !ip_like
    {
        Ok(())
    } else {
        Err(StoreError::InvalidBucketName(name.to_owned()))
    }
}

/// Checks an object key's length.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    match key.len() {
        0 => Err(StoreError::InvalidKey("the key is empty")),
        n if n > keypath::MAX_KEY_LEN => Err(StoreError::InvalidKey("the key is longer than 1024 bytes")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my-bucket.1", "a".repeat(63).as_str()] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "ABC", "-abc", "abc-", "a..b", "a_b", "192.168.1.1", "../x", "", &"a".repeat(64)] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(1025)).is_err());
        assert!(check_key(&"k".repeat(1024)).is_ok());
    }
}
