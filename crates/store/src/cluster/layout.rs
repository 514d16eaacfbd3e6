//! The key layout in the metadata service (docs/SCALE-OUT.md §2): buckets `b/`, their
//! objects, uploads and parts, blob references `r/` and retired blobs `g/`, and fresh blob
//! names.

use super::*;

pub(super) fn bucket_key(b: &str) -> Vec<u8> {
    [b"b/", b.as_bytes()].concat()
}
/// The bucket's sequence key: present while the bucket exists (created with it).
pub(super) fn seq_key(b: &str) -> Vec<u8> {
    [b"s/", b.as_bytes()].concat()
}
/// Shards of a bucket's write sequence (docs/SCALE-OUT.md §4): every write bumps one,
/// chosen at random, so writers into one bucket do not all update one key (on PostgreSQL
/// a key every commit writes makes them commit one at a time, §9); a bucket's deletion
/// compares every shard. Bucket names hold no '/', so `s/<bucket>/` is the bucket's alone.
pub(super) const SEQ_SHARDS: u32 = 32;
pub(super) fn seq_shards_of(b: &str) -> Vec<u8> {
    [b"s/", b.as_bytes(), b"/"].concat()
}
pub(super) fn seq_shard_key(b: &str, shard: u32) -> Vec<u8> {
    [seq_shards_of(b).as_slice(), format!("{shard:02}").as_bytes()].concat()
}
/// The operation every write into bucket `b` adds: bumps one shard of its sequence.
pub(super) fn bump(b: &str) -> Op {
    let mut r = [0u8; 4];
    engine::primitives::fill_random(&mut r);
    Op::Put(seq_shard_key(b, u32::from_le_bytes(r) % SEQ_SHARDS), Vec::new())
}
pub(super) fn objects_of(b: &str) -> Vec<u8> {
    [b"o/", b.as_bytes(), b"\0"].concat()
}
pub(super) fn object_key(b: &str, key: &str) -> Vec<u8> {
    [objects_of(b).as_slice(), key.as_bytes()].concat()
}
pub(super) fn uploads_of(b: &str) -> Vec<u8> {
    [b"u/", b.as_bytes(), b"\0"].concat()
}
pub(super) fn upload_key(b: &str, id: &str) -> Vec<u8> {
    [uploads_of(b).as_slice(), id.as_bytes()].concat()
}
pub(super) fn parts_of(b: &str, id: &str) -> Vec<u8> {
    [b"p/", b.as_bytes(), b"\0", id.as_bytes(), b"\0"].concat()
}
pub(super) fn part_key(b: &str, id: &str, number: u32) -> Vec<u8> {
    [parts_of(b, id).as_slice(), format!("{number:05}").as_bytes()].concat()
}
pub(super) fn ref_key(blob: &str) -> Vec<u8> {
    [b"r/", blob.as_bytes()].concat()
}
/// A retired blob: no record names it any more, but a GET that began before may still be
/// reading it, so it is deleted only after the sweep's grace (docs/SCALE-OUT.md §4).
pub(super) fn retired_key(at: u64, blob: &str) -> Vec<u8> {
    format!("g/{at:012}/{blob}").into_bytes()
}
pub(super) const RETIRED: &[u8] = b"g/";

/// The operations that retire `blobs` now: each `r/` key points at its `g/` entry.
pub(super) fn retire(blobs: &[BlobRef]) -> Vec<Op> {
    let now = base::clock::now_unix();
    blobs
        .iter()
        .flat_map(|b| {
            let g = retired_key(now, &b.name);
            [Op::Put(ref_key(&b.name), g.clone()), Op::Put(g, b.len.to_string().into_bytes())]
        })
        .collect()
}

/// A fresh blob name under `dir` (`d` objects, `p` parts): random, saying nothing.
pub(super) fn new_blob(dir: &str) -> String {
    format!("{dir}/{}", crate::new_upload_id())
}
