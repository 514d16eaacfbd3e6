//! cipherstore: an S3-compatible object store that encrypts everything it stores.
//!
//! Layers, each knowing nothing of those above it (see docs/ARCHITECTURE.md):
//! - [`engine`]: pure cryptography and the at-rest format;
//! - [`pipeline`]: moving bytes through the engine (memory-mapped files, bounded channels,
//!   a rayon pool);
//! - [`keys`]: root keys in a PKCS#11 HSM, bucket keys, lifecycle and audit trail;
//! - [`s3`]: the HTTPS S3 API over the store and the pipeline;
//! - [`store`]: where ciphertext and its metadata live (filesystem now, upstream S3 later);
//! - [`durable`]: files that appear only when complete; [`hex`]: hex text for bytes;
//!   [`sigv4`]: request signing for the tools that act as S3 clients.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod durable;
pub mod engine;
pub mod fuzz_entry;
pub mod hex;
pub mod keys;
pub mod object;
pub mod pipeline;
pub mod s3;
pub mod serve;
pub mod sigv4;
pub mod store;
