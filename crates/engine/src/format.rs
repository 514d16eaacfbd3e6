//! The at-rest header and body layout of docs/FORMAT.md §1, §2 and §4: field encoding,
//! strict bounded parsing, and the O(1) mapping from byte ranges to units.

use super::error::Error;
use super::primitives::{Backend, DIGEST_LEN, HashKind, Hasher};

/// `\x89CST\r\n\x1a\n`.
pub const MAGIC: [u8; 8] = [0x89, b'C', b'S', b'T', 0x0D, 0x0A, 0x1A, 0x0A];
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Length of the header before the key envelope.
pub const FIXED_HEADER_LEN: usize = 46;
/// Largest key envelope a header may carry.
pub const MAX_ENVELOPE_LEN: usize = 1024;
/// Smallest unit size.
pub const MIN_UNIT_SIZE: u32 = 4096;
/// Largest unit size.
pub const MAX_UNIT_SIZE: u32 = 16 << 20;
/// Length of the per-object salt.
pub const SALT_LEN: usize = 16;
/// Stored bytes an AONT-RS segment adds to its plaintext (canary or tag, and tail).
pub const AONT_OVERHEAD: usize = 16 + 32;
/// Stored bytes a STREAM chunk adds to its plaintext (GCM tag).
pub const STREAM_OVERHEAD: usize = 16;
/// Length of the SSE-C key envelope.
pub const SSE_C_ENVELOPE_LEN: usize = 80;
/// Fixed part of the SSE-KP key envelope (commitment and CRN length).
pub const SSE_KP_ENVELOPE_FIXED: usize = 34;
/// Longest root key CRN an SSE-KP envelope may carry.
pub const MAX_CRN_LEN: usize = 512;

const FLAG_LENGTH_KNOWN: u8 = 1;

/// How an object is protected (header byte 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// AONT-RS package transform, keyless.
    Aont = 1,
    /// STREAM AEAD under a data key sealed by a customer key.
    SseC = 2,
    /// STREAM AEAD under a key from the HSM hierarchy (envelope defined with that layer).
    SseKp = 3,
}

/// Cipher ids (header byte 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherId {
    /// AES-256-CTR with a canary (AONT-RS only).
    Aes256Ctr = 1,
    /// AES-256-GCM.
    Aes256Gcm = 2,
}

/// Hash ids (header byte 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashId {
    /// SHA-256.
    Sha256 = 1,
    /// BLAKE3-256.
    Blake3 = 2,
}

impl std::fmt::Display for CipherId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Aes256Ctr => "AES-256-CTR",
            Self::Aes256Gcm => "AES-256-GCM",
        })
    }
}

impl std::fmt::Display for HashId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sha256 => "SHA-256",
            Self::Blake3 => "BLAKE3",
        })
    }
}

impl HashId {
    /// The primitive this id names.
    pub fn kind(self) -> HashKind {
        match self {
            Self::Sha256 => HashKind::Sha256,
            Self::Blake3 => HashKind::Blake3,
        }
    }
}

impl Mode {
    fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(Self::Aont),
            2 => Ok(Self::SseC),
            3 => Ok(Self::SseKp),
            _ => Err(Error::UnsupportedMode(b)),
        }
    }

    /// Per-unit stored overhead in this mode.
    pub fn overhead(self) -> usize {
        match self {
            Self::Aont => AONT_OVERHEAD,
            Self::SseC | Self::SseKp => STREAM_OVERHEAD,
        }
    }

    /// Checks an envelope's length and layout for this mode (FORMAT.md §3.3, §3.4).
    pub fn check_envelope(self, envelope: &[u8]) -> Result<(), Error> {
        let ok = match self {
            Self::Aont => envelope.is_empty(),
            Self::SseC => envelope.len() == SSE_C_ENVELOPE_LEN,
            Self::SseKp => sse_kp_crn(envelope).is_some(),
        };
        if ok { Ok(()) } else { Err(Error::MalformedHeader("envelope does not match the mode")) }
    }
}

impl CipherId {
    fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(Self::Aes256Ctr),
            2 => Ok(Self::Aes256Gcm),
            _ => Err(Error::MalformedHeader("unknown cipher id")),
        }
    }
}

impl HashId {
    fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            1 => Ok(Self::Sha256),
            2 => Ok(Self::Blake3),
            _ => Err(Error::MalformedHeader("unknown hash id")),
        }
    }
}

/// A parsed or to-be-written header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Protection mode.
    pub mode: Mode,
    /// Cipher id.
    pub cipher: CipherId,
    /// Hash id.
    pub hash: HashId,
    /// Plaintext bytes per unit.
    pub unit_size: u32,
    /// Plaintext length, when it was known at write time.
    pub plaintext_len: Option<u64>,
    /// Random per-object salt.
    pub salt: [u8; SALT_LEN],
    /// Mode-specific key envelope.
    pub envelope: Vec<u8>,
}

impl Header {
    /// Checks the rules of FORMAT.md §1 and §4 that do not depend on the byte encoding.
    pub fn validate(&self) -> Result<(), Error> {
        if !(MIN_UNIT_SIZE..=MAX_UNIT_SIZE).contains(&self.unit_size) {
            return Err(Error::MalformedHeader("unit size out of range"));
        }
        match self.mode {
            Mode::Aont => {}
            Mode::SseC | Mode::SseKp => {
                if self.cipher != CipherId::Aes256Gcm || self.hash != HashId::Sha256 {
                    return Err(Error::MalformedHeader("STREAM objects use AES-256-GCM with SHA-256"));
                }
            }
        }
        self.mode.check_envelope(&self.envelope)
    }

    /// The root key CRN an SSE-KP object names.
    pub fn sse_kp_key(&self) -> Option<&str> {
        match self.mode {
            Mode::SseKp => sse_kp_crn(&self.envelope),
            _ => None,
        }
    }

    /// Encoded length of this header.
    pub fn encoded_len(&self) -> usize {
        FIXED_HEADER_LEN + self.envelope.len()
    }

    /// The header's bytes, as written at the start of the object.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.mode as u8);
        out.push(self.cipher as u8);
        out.push(self.hash as u8);
        out.push(if self.plaintext_len.is_some() { FLAG_LENGTH_KNOWN } else { 0 });
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.unit_size.to_le_bytes());
        out.extend_from_slice(&self.plaintext_len.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.salt);
        // Envelope length is bounded by validate(): at most MAX_ENVELOPE_LEN.
        out.extend_from_slice(&(self.envelope.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.envelope);
        out
    }

    /// Total header length announced by the fixed part, so a stream reader knows how many
    /// more bytes to read. Checks the magic and version first.
    pub fn total_len(fixed: &[u8]) -> Result<usize, Error> {
        if fixed.len() < MAGIC.len() || fixed[..MAGIC.len()] != MAGIC {
            return Err(Error::NotCipherstore);
        }
        if fixed.len() < FIXED_HEADER_LEN {
            return Err(Error::Truncated { expected: FIXED_HEADER_LEN as u64, found: fixed.len() as u64 });
        }
        if fixed[8] != VERSION {
            return Err(Error::UnsupportedVersion(fixed[8]));
        }
        let env = u16::from_le_bytes([fixed[44], fixed[45]]) as usize;
        if env > MAX_ENVELOPE_LEN {
            return Err(Error::MalformedHeader("envelope too long"));
        }
        Ok(FIXED_HEADER_LEN + env)
    }

    /// Parses a header from the start of `bytes`; returns it and its encoded length.
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), Error> {
        let total = Self::total_len(bytes)?;
        if bytes.len() < total {
            return Err(Error::Truncated { expected: total as u64, found: bytes.len() as u64 });
        }
        let mode = Mode::from_byte(bytes[9])?;
        let cipher = CipherId::from_byte(bytes[10])?;
        let hash = HashId::from_byte(bytes[11])?;
        let flags = bytes[12];
        if flags & !FLAG_LENGTH_KNOWN != 0 {
            return Err(Error::MalformedHeader("reserved flag bits set"));
        }
        if bytes[13..16] != [0, 0, 0] {
            return Err(Error::MalformedHeader("reserved bytes are not zero"));
        }
        let unit_size = u32::from_le_bytes(le_array(&bytes[16..20]));
        let len = u64::from_le_bytes(le_array(&bytes[20..28]));
        let plaintext_len = if flags & FLAG_LENGTH_KNOWN != 0 {
            Some(len)
        } else if len != 0 {
            return Err(Error::MalformedHeader("length field set but not flagged as known"));
        } else {
            None
        };
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[28..44]);
        let header = Self {
            mode,
            cipher,
            hash,
            unit_size,
            plaintext_len,
            salt,
            envelope: bytes[FIXED_HEADER_LEN..total].to_vec(),
        };
        header.validate()?;
        Ok((header, total))
    }

    /// `D` of FORMAT.md §1: the digest every unit is bound to.
    pub fn digest(&self, encoded: &[u8], backend: Backend) -> [u8; DIGEST_LEN] {
        let kind = match self.mode {
            Mode::Aont => self.hash.kind(),
            Mode::SseC | Mode::SseKp => HashKind::Sha256,
        };
        Hasher::digest(kind, backend, &[encoded])
    }

    /// The body layout for an object of `plaintext_len` bytes.
    pub fn layout_for_plaintext(&self, plaintext_len: u64) -> Result<UnitLayout, Error> {
        UnitLayout::new(self.encoded_len() as u64, self.unit_size, self.mode.overhead(), plaintext_len)
    }

    /// The body layout for a stored object of `stored_len` bytes, checked against the
    /// header's length when it has one.
    pub fn layout_for_stored(&self, stored_len: u64) -> Result<UnitLayout, Error> {
        let hlen = self.encoded_len() as u64;
        let unit = u64::from(self.unit_size);
        let overhead = self.mode.overhead() as u64;
        if let Some(len) = self.plaintext_len {
            let layout = self.layout_for_plaintext(len)?;
            let expected = layout.stored_len();
            return match stored_len.cmp(&expected) {
                std::cmp::Ordering::Less => Err(Error::Truncated { expected, found: stored_len }),
                std::cmp::Ordering::Greater => Err(Error::TrailingData { expected, found: stored_len }),
                std::cmp::Ordering::Equal => Ok(layout),
            };
        }
        let minimum = hlen + overhead;
        if stored_len < minimum {
            return Err(Error::Truncated { expected: minimum, found: stored_len });
        }
        let body = stored_len - hlen;
        let units = body.div_ceil(unit + overhead);
        let last = body - (units - 1) * (unit + overhead);
        if last < overhead || (last == overhead && units > 1) {
            return Err(Error::Corrupted { unit: units - 1 });
        }
        let len = body - units * overhead;
        self.layout_for_plaintext(len)
    }
}

/// The CRN in an SSE-KP envelope (`commitment ‖ u16 length ‖ CRN`), if well formed.
fn sse_kp_crn(envelope: &[u8]) -> Option<&str> {
    let len = u16::from_le_bytes([*envelope.get(32)?, *envelope.get(33)?]) as usize;
    if len == 0 || len > MAX_CRN_LEN || envelope.len() != SSE_KP_ENVELOPE_FIXED + len {
        return None;
    }
    std::str::from_utf8(&envelope[SSE_KP_ENVELOPE_FIXED..]).ok()
}

fn le_array<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

/// Where each unit of an object lies, FORMAT.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitLayout {
    header_len: u64,
    unit_size: u64,
    overhead: u64,
    plaintext_len: u64,
    units: u64,
}

impl UnitLayout {
    /// The layout of an object with this header length, unit size, overhead and length.
    pub fn new(header_len: u64, unit_size: u32, overhead: usize, plaintext_len: u64) -> Result<Self, Error> {
        let unit_size = u64::from(unit_size);
        let units = plaintext_len.div_ceil(unit_size).max(1);
        let layout = Self { header_len, unit_size, overhead: overhead as u64, plaintext_len, units };
        // The stored size must be representable.
        layout
            .units
            .checked_mul(layout.overhead)
            .and_then(|o| o.checked_add(plaintext_len))
            .and_then(|b| b.checked_add(header_len))
            .ok_or(Error::InvalidParameter("object too large"))?;
        Ok(layout)
    }

    /// Number of units (at least one).
    pub fn units(&self) -> u64 {
        self.units
    }
    /// Plaintext length.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }
    /// Header length.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }
    /// Plaintext bytes per full unit.
    pub fn unit_size(&self) -> usize {
        self.unit_size as usize
    }
    /// Stored bytes added per unit.
    pub fn overhead(&self) -> usize {
        self.overhead as usize
    }
    /// Total stored size.
    pub fn stored_len(&self) -> u64 {
        self.header_len + self.plaintext_len + self.units * self.overhead
    }
    /// Whether unit `i` is the final one.
    pub fn is_final(&self, i: u64) -> bool {
        i + 1 == self.units
    }
    /// Plaintext offset of unit `i`.
    pub fn plain_offset(&self, i: u64) -> u64 {
        i * self.unit_size
    }
    /// Plaintext bytes in unit `i`.
    pub fn plain_len(&self, i: u64) -> usize {
        let start = self.plain_offset(i);
        (self.plaintext_len.saturating_sub(start)).min(self.unit_size) as usize
    }
    /// Stored offset of unit `i`.
    pub fn stored_offset(&self, i: u64) -> u64 {
        self.header_len + i * (self.unit_size + self.overhead)
    }
    /// Stored bytes of unit `i`.
    pub fn stored_unit_len(&self, i: u64) -> usize {
        self.plain_len(i) + self.overhead as usize
    }

    /// Units holding the inclusive plaintext range `[start, end]`, with `end` clamped to
    /// the last byte as HTTP does. Returns the unit range and the clamped end.
    pub fn units_for_range(&self, start: u64, end: u64) -> Result<(std::ops::Range<u64>, u64), Error> {
        if start >= self.plaintext_len || start > end {
            return Err(Error::RangeNotSatisfiable { start, len: self.plaintext_len });
        }
        let end = end.min(self.plaintext_len - 1);
        Ok((start / self.unit_size..end / self.unit_size + 1, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(mode: Mode, len: Option<u64>) -> Header {
        Header {
            mode,
            cipher: if mode == Mode::Aont { CipherId::Aes256Ctr } else { CipherId::Aes256Gcm },
            hash: if mode == Mode::Aont { HashId::Blake3 } else { HashId::Sha256 },
            unit_size: 4096,
            plaintext_len: len,
            salt: [7; SALT_LEN],
            envelope: match mode {
                Mode::Aont => vec![],
                Mode::SseC => vec![1; SSE_C_ENVELOPE_LEN],
                Mode::SseKp => [&[1u8; 32][..], &[3, 0], b"crn"].concat(),
            },
        }
    }

    #[test]
    fn header_round_trips() {
        for h in [header(Mode::Aont, Some(5)), header(Mode::SseC, None), header(Mode::SseKp, Some(1))] {
            let bytes = h.encode();
            assert_eq!(bytes.len(), h.encoded_len());
            assert_eq!(Header::parse(&bytes).unwrap(), (h.clone(), bytes.len()));
        }
    }

    #[test]
    fn every_malformed_field_is_an_error() {
        let good = header(Mode::Aont, Some(5)).encode();
        let cases: &[(usize, u8)] = &[
            (0, 0x88),
            (8, 2),
            (9, 0),
            (9, 2),
            (9, 3),
            (9, 9),
            (10, 0),
            (10, 3),
            (11, 0),
            (11, 3),
            (12, 2),
            (13, 1),
            (15, 1),
            (17, 0),
            (19, 2),
            (44, 1),
            (45, 8),
        ];
        for &(at, val) in cases {
            let mut b = good.clone();
            b[at] = val;
            assert!(Header::parse(&b).is_err(), "byte {at} = {val} accepted");
        }
        for cut in 0..good.len() {
            assert!(Header::parse(&good[..cut]).is_err());
        }
        let mut unflagged = good.clone();
        unflagged[12] = 0;
        assert_eq!(
            Header::parse(&unflagged),
            Err(Error::MalformedHeader("length field set but not flagged as known"))
        );
    }

    #[test]
    fn layout_maps_ranges_and_sizes() {
        let h = header(Mode::Aont, Some(10_000));
        let l = h.layout_for_plaintext(10_000).unwrap();
        assert_eq!(l.units(), 3);
        assert_eq!(l.plain_len(2), 10_000 - 8192);
        assert_eq!(l.stored_len(), 46 + 10_000 + 3 * 48);
        assert_eq!(l.stored_offset(1), 46 + 4096 + 48);
        assert_eq!(l.units_for_range(4095, 4096).unwrap(), (0..2, 4096));
        assert_eq!(l.units_for_range(9000, u64::MAX).unwrap(), (2..3, 9999));
        assert!(l.units_for_range(10_000, 10_001).is_err());
        assert_eq!(h.layout_for_stored(l.stored_len()).unwrap(), l);
        assert!(matches!(h.layout_for_stored(l.stored_len() - 1), Err(Error::Truncated { .. })));
        assert!(matches!(h.layout_for_stored(l.stored_len() + 1), Err(Error::TrailingData { .. })));
    }

    #[test]
    fn unknown_length_is_derived_from_stored_size() {
        let h = header(Mode::SseC, None);
        for len in [0u64, 1, 4095, 4096, 4097, 8192, 100_000] {
            let l = h.layout_for_plaintext(len).unwrap();
            assert_eq!(h.layout_for_stored(l.stored_len()).unwrap(), l, "len {len}");
        }
        let hl = h.encoded_len() as u64;
        // A final unit with no plaintext after a full one cannot exist.
        assert!(h.layout_for_stored(hl + 4096 + 16 + 16).is_err());
        assert!(h.layout_for_stored(hl + 15).is_err());
    }

    #[test]
    fn empty_object_has_one_unit() {
        let l = header(Mode::Aont, Some(0)).layout_for_plaintext(0).unwrap();
        assert_eq!((l.units(), l.plain_len(0), l.is_final(0)), (1, 0, true));
    }
}
