//! The S3 API over HTTP (the `s3s` crate: routing, DTOs, SigV4): requests parsed, the
//! object layer ([`object`]) called, answers rendered. This layer never calls a cipher and
//! never parses a stored record.
//!
//! - [`router`](CipherS3) sends each operation to the file of its family: `bucket`,
//!   `objects` (PUT, GET, HEAD, DELETE), `copy`, `list`, `list_versions`, `multipart`,
//!   `encryption`, `tagging`, `versioning`, `object_lock`, `lifecycle`; every other operation answers
//!   NotImplemented.
//! - `service` holds [`CipherS3`], the state every request shares; [`access`] asks every
//!   bucket and object operation first who the caller is and whether ownership, a role or
//!   the bucket policy lets them do it; `policy` serves bucket policies and public
//!   access blocks; [`auth`] answers s3s's secret-key look-ups from the identities [`iam`]
//!   keeps.
//! - Protection rules: `sse` (SSE-C headers), `kp` (SSE-KP, aws:kms, SSE-S3 onto root
//!   keys); `read_key` (which key opens a stored object).
//! - Bodies: `body` moves them between async HTTP and the synchronous pipeline, `digest`
//!   checks their MD5 and flexible checksums (`more_checksums`, `full_object`),
//!   [`chunk_framing`] follows aws-chunked framing before s3s decodes it.
//! - Headers: `headers` (standard headers, Last-Modified), `conditions` (If-*),
//!   [`lenient_range`] (GETs whose Range AWS ignores); `error` turns object, key, store and
//!   pipeline errors into S3 error codes.

pub mod access;
pub(crate) mod acl;
pub mod auth;
pub(crate) mod body;
pub(crate) mod bucket;
pub mod chunk_framing;
pub(crate) mod conditions;
pub(crate) mod copy;
pub(crate) mod digest;
pub(crate) mod encryption;
pub(crate) mod error;
pub(crate) mod full_object;
pub(crate) mod headers;
pub(crate) mod kp;
pub mod lenient_range;
pub(crate) mod lifecycle;
pub(crate) mod list;
pub(crate) mod list_versions;
pub(crate) mod more_checksums;
pub(crate) mod multipart;
pub(crate) mod object_lock;
pub(crate) mod objects;
pub(crate) mod policy;
pub(crate) mod read_key;
mod router;
pub(crate) mod service;
pub(crate) mod sse;
pub(crate) mod tagging;
pub(crate) mod versioning;

pub use error::integrity_failures;
pub use service::CipherS3;
pub use sse::parse as parse_sse_c;
