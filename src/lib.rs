//! cipherstore: an S3-compatible object store that encrypts everything it stores.
//!
//! Layers, each knowing nothing of those above it (see docs/ARCHITECTURE.md):
//! - [`engine`]: pure cryptography and the at-rest format;
//! - [`pipeline`]: moving bytes through the engine (memory-mapped files, bounded channels,
//!   a rayon pool);
//! - [`keys`]: root keys in a PKCS#11 HSM, bucket keys, lifecycle and audit trail;
//! - [`s3`]: the HTTPS S3 API (HTTP only: headers to typed requests, S3 error codes);
//! - `object` (crate-internal): what an object is — typed records of objects, buckets and
//!   uploads, their tags, the plaintext view of a stored object by range;
//! - [`store`]: where ciphertext and its records live (filesystem now, upstream S3 and
//!   etcd later);
//! - [`durable`]: files that appear only when complete; [`hex`]: hex text for bytes;
//!   [`clock`]: Unix seconds and RFC 3339 text.
//!
//! With the `tools` feature (the project's own fuzzing, tests and load generator): the
//! fuzz entry points (`fuzz_entry`) and request signing for tools that act as S3 clients
//! (`sigv4`).

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod clock;
pub mod durable;
pub mod engine;
#[cfg(feature = "tools")]
pub mod fuzz_entry;
pub mod hex;
pub mod keys;
pub(crate) mod object;
pub mod pipeline;
pub mod s3;
pub mod serve;
#[cfg(feature = "tools")]
pub mod sigv4;
pub mod store;
