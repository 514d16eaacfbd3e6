//! The project's own tools, outside the shipped binary: the fuzz entry points that fuzz/
//! and tests/fuzz_regressions.rs drive ([`fuzz_entry`]) and SigV4 request signing for
//! tools that act as S3 clients, such as examples/s3_load ([`sigv4`]).

pub mod fuzz_entry;
pub mod sigv4;
