//! Clients of the services a cipherstore cluster is built on (docs/SCALE-OUT.md): the
//! metadata service behind a three-operation trait ([`kv`]: ordered range reads,
//! compare-then-ops transactions, prefix watches) and its etcd implementation ([`etcd`]),
//! blobs on any S3-compatible service ([`blobs`]), synchronous callers over these async
//! clients ([`bridge`]) and request counters for `/metrics` ([`requests`]). The cluster
//! store and the shared key state are both built on this crate.

pub mod blobs;
pub mod bridge;
pub mod etcd;
pub mod kv;
pub mod requests;
