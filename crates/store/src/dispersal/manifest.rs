//! The dispersal manifest (docs/FORMAT.md §7.3): which blob's slices hold an object's or
//! part's stored bytes, how they were striped, and each slice's digest or its absence. It
//! travels in front of the object layer's record, in the record store, so a reader finds
//! the slices with the record in one read, and records written without dispersal (no
//! manifest) still open as they are.

use serde::{Deserialize, Serialize};

use super::code::Geometry;
use crate::StoreError;

/// The first bytes of a record that carries a manifest.
pub const MAGIC: &[u8; 8] = b"CSDISP01";
/// The largest manifest accepted (a 10,000-part upload's stays well under it).
const MAX_MANIFEST: usize = 8 << 20;

/// One dispersed run of stored bytes: a whole single object, or one part of a multipart one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// The blob name its slice files carry.
    pub blob: String,
    /// Stored bytes.
    pub len: u64,
    /// Length of the first stripe (the engine header), or 0.
    pub first: u64,
    /// Length of later stripes.
    pub unit: u64,
    /// Per slice (slice `i` on target `i`): the BLAKE3 digest (hex) of its whole slice
    /// file, or `None` if the slice could not be written (or was found lost by a rebuild
    /// that could not restore it).
    pub slices: Vec<Option<String>>,
}

impl Piece {
    /// The piece's stripe geometry.
    pub fn geometry(&self) -> Geometry {
        Geometry { first: self.first, unit: self.unit, len: self.len }
    }

    /// Slices written and not known lost.
    pub fn present(&self) -> usize {
        self.slices.iter().filter(|s| s.is_some()).count()
    }
}

/// Where an object's or part's stored bytes are: its pieces laid end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Threshold: slices that rebuild a stripe.
    pub k: usize,
    /// Width: slices per stripe.
    pub n: usize,
    /// Pieces, in stored-byte order.
    pub pieces: Vec<Piece>,
}

impl Manifest {
    /// Stored bytes in all.
    pub fn len(&self) -> u64 {
        self.pieces.iter().map(|p| p.len).sum()
    }

    /// Whether no byte is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<(), String> {
        if self.k == 0 || self.k >= self.n || self.n > super::code::MAX_WIDTH {
            return Err(format!("threshold {} and width {} make no code", self.k, self.n));
        }
        for p in &self.pieces {
            if p.slices.len() != self.n {
                return Err(format!("blob {} lists {} slices, not {}", p.blob, p.slices.len(), self.n));
            }
            if p.unit == 0 || !p.blob.bytes().all(|c| c.is_ascii_hexdigit()) || p.blob.len() != 32 {
                return Err(format!("piece {:?} is malformed", p.blob));
            }
        }
        Ok(())
    }
}

/// `record` with `manifest` in front: the magic, the manifest's JSON length (u32,
/// little-endian), its JSON, then the record as the object layer made it.
pub fn wrap(manifest: &Manifest, record: &[u8]) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(manifest).map_err(|e| corrupt(&e))?;
    let len = u32::try_from(json.len()).map_err(|e| corrupt(&e))?;
    let mut out = Vec::with_capacity(12 + json.len() + record.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(record);
    Ok(out)
}

/// Splits a stored record into its manifest and the object layer's record; `Ok(None)` for
/// a record stored without dispersal.
pub fn unwrap(stored: &[u8]) -> Result<Option<(Manifest, &[u8])>, StoreError> {
    let Some(rest) = stored.strip_prefix(MAGIC.as_slice()) else { return Ok(None) };
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(|| corrupt(&"cut short"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_MANIFEST {
        return Err(corrupt(&"the manifest is too long"));
    }
    let (json, record) = rest.split_at_checked(len).ok_or_else(|| corrupt(&"cut short"))?;
    let manifest: Manifest = serde_json::from_slice(json).map_err(|e| corrupt(&e))?;
    manifest.check().map_err(|e| corrupt(&e))?;
    Ok(Some((manifest, record)))
}

fn corrupt(why: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt { path: "a dispersal manifest".to_owned(), reason: why.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            k: 3,
            n: 5,
            pieces: vec![Piece {
                blob: "0123456789abcdef0123456789abcdef".to_owned(),
                len: 100,
                first: 46,
                unit: 4144,
                slices: vec![Some("aa".to_owned()), None, Some("bb".to_owned()), Some("cc".to_owned()), None],
            }],
        }
    }

    #[test]
    fn records_round_trip_and_plain_ones_pass() {
        let m = manifest();
        let wrapped = wrap(&m, b"{\"v\":3}").unwrap();
        let (back, record) = unwrap(&wrapped).unwrap().unwrap();
        assert_eq!(back, m);
        assert_eq!(record, b"{\"v\":3}");
        assert_eq!(back.pieces[0].present(), 3);
        assert!(unwrap(b"{\"v\":3}").unwrap().is_none());
    }

    #[test]
    fn damaged_manifests_are_refused() {
        let wrapped = wrap(&manifest(), b"r").unwrap();
        for cut in [8, 11, 20, wrapped.len() - 2] {
            assert!(unwrap(&wrapped[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = manifest();
        bad.pieces[0].slices.pop();
        assert!(unwrap(&wrap(&bad, b"r").unwrap()).is_err());
        let mut bad = manifest();
        bad.k = 5;
        assert!(unwrap(&wrap(&bad, b"r").unwrap()).is_err());
        let mut bad = manifest();
        bad.pieces[0].blob = "../../etc/passwd0123456789abcdef".to_owned();
        assert!(unwrap(&wrap(&bad, b"r").unwrap()).is_err());
    }
}
