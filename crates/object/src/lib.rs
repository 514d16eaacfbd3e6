//! What an object is: the layer between the S3 API (the `s3` crate) and where bytes and
//! records live ([`store`]). It owns the typed records (object: [`record`],
//! bucket: [`bucket`], multipart upload and part: [`upload`]), how they are stored and
//! tagged ([`codec`], with headers and user metadata sealed by [`private`], and
//! [`legacy`] for records written before the typed form), S3 object tags ([`tags`]), Object Lock ([`lock`]), lifecycle rules ([`lifecycle`]) and their passes over a bucket ([`lifecycle_pass`]), what is kept beside a version
//! after it was written ([`annex`]) and how it changes ([`amend`]), versions and delete markers ([`versions`]), the
//! ETag rules ([`etag`]), the write of a new object ([`write`]: protection chosen, record
//! built, commit), and the plaintext view of a stored object by range ([`plain`], which
//! checks each stored header against the salt its record holds). [`Objects`] reads and
//! writes records through any store. It knows nothing of HTTP.

pub mod amend;
pub mod annex;
pub mod bucket;
pub mod checksum;
pub mod codec;
pub mod complete;
pub mod error;
pub mod etag;
mod legacy;
pub mod lifecycle;
pub mod lifecycle_pass;
pub mod lock;
pub mod objects;
pub mod plain;
pub mod private;
pub mod protection;
pub mod record;
pub mod tags;
pub mod upload;
pub mod versions;
pub mod write;

pub use bucket::{BucketRecord, KmsBinding, Origin, PublicAccessBlock, Versioning};
pub use checksum::{ChecksumAlgorithm, Checksums};
pub use error::ObjectError;
pub use etag::ETag;
pub use lifecycle::{Day, Lifecycle, LifecycleError};
pub use objects::Objects;
pub use plain::PlainSource;
pub use private::Private;
pub use protection::{Policy, ProtectionError, ReadKey, Requested, SentKey, ServerSide, binding};
pub use record::{Headers, Layout, ObjectRecord, PartEntry, Protection, Salt};
pub use tags::{TagError, TagSet};
pub use upload::{Part, PartRecord, UploadRecord, new_upload_id};
pub use write::{NewObject, Pending, PendingPart, SealPlan, Sealed};

// What the store hands through this layer unchanged: the writers a body streams into, the
// page of a listing, and the conditions a store reports (missing buckets, keys, versions and uploads, a full or
// unreachable backend), which the S3 layer turns into its error codes.
pub use store::{ObjectReader, ObjectWriter, Page, PartWriter, Store, StoreError, VersionId};
