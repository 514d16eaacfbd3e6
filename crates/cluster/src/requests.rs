//! What the cluster store asks of its backends, counted for the whole process and shown at
//! `/metrics`: blob requests by kind and metadata service requests by kind. Per-operation
//! costs (a PUT is one blob request and two etcd round trips, a HEAD no blob request…)
//! are read from these by `scripts/bench-cluster`.

use std::sync::atomic::{AtomicU64, Ordering};

/// One kind of backend request.
pub struct Kind {
    /// Metric name.
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    count: AtomicU64,
}

impl Kind {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Self { name, help, count: AtomicU64::new(0) }
    }

    /// Counts `n` requests.
    pub fn add(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Requests so far.
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Blob PUTs of whole blobs.
pub static BLOB_PUT: Kind =
    Kind::new("cipherstore_backend_put_total", "Whole blobs written to the blob backend.");
/// Requests of streamed blob writes: start, each part, completion.
pub static BLOB_MULTIPART: Kind = Kind::new(
    "cipherstore_backend_multipart_requests_total",
    "Blob backend requests of streamed writes (start, parts, completion).",
);
/// Ranged blob reads.
pub static BLOB_GET: Kind = Kind::new("cipherstore_backend_get_total", "Ranged reads from the blob backend.");
/// Blob HEADs.
pub static BLOB_HEAD: Kind =
    Kind::new("cipherstore_backend_head_total", "Blob length lookups at the blob backend.");
/// Blob deletes.
pub static BLOB_DELETE: Kind =
    Kind::new("cipherstore_backend_delete_total", "Blob deletes at the blob backend.");
/// Blob listings.
pub static BLOB_LIST: Kind =
    Kind::new("cipherstore_backend_list_total", "Blob listings (sweeps) at the blob backend.");
/// Metadata range reads.
pub static KV_RANGE: Kind = Kind::new("cipherstore_etcd_range_total", "Range reads from etcd.");
/// Metadata transactions.
pub static KV_TXN: Kind =
    Kind::new("cipherstore_etcd_txn_total", "Transactions committed or refused by etcd.");

/// Every kind, in the order `/metrics` shows them.
pub fn all() -> [&'static Kind; 8] {
    [&BLOB_PUT, &BLOB_MULTIPART, &BLOB_GET, &BLOB_HEAD, &BLOB_DELETE, &BLOB_LIST, &KV_RANGE, &KV_TXN]
}
