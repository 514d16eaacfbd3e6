//! Clients of the services a cipherstore cluster is built on (docs/SCALE-OUT.md): the
//! metadata service behind a three-operation trait ([`kv`]: ordered range reads,
//! compare-then-ops transactions, prefix watches) and its implementations on etcd
//! ([`etcd`]) and PostgreSQL ([`postgres`]),
//! blobs on any S3-compatible service ([`blobs`]), synchronous callers over these async
//! clients ([`bridge`]), copies between metadata services ([`copy`]), a lease one gateway at a time holds ([`lease`]), request
//! counters for `/metrics` ([`requests`]) and the pacing of optimistic retries ([`retries`]). The cluster store, the shared key state and the
//! lifecycle worker are built on this crate.

pub mod blobs;
pub mod bridge;
pub mod copy;
pub mod etcd;
pub mod kv;
pub mod lease;
pub mod postgres;
pub mod requests;
pub mod retries;
