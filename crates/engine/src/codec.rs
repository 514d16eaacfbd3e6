//! Whole objects unit by unit: a [`Sealer`] builds the header and encodes units, an
//! [`Opener`] parses a header, recovers the keys and decodes units. Both are `Sync`, so a
//! pipeline can fan units out across threads; neither does I/O.

use super::aont::AontSuite;
use super::envelope::CustomerKey;
use super::error::Error;
use super::format::{
    CipherId, FIXED_HEADER_LEN, HashId, Header, Mode, SALT_LEN, SSE_C_ENVELOPE_LEN, UnitLayout,
};
use super::key::SecretKey;
use super::primitives::{Backend, DIGEST_LEN, Gcm, InOut, fill_random};
use super::stream::{self, AAD_LEN};

/// Default AONT-RS segment size (FORMAT.md §4).
pub const DEFAULT_SEGMENT_SIZE: u32 = 1 << 20;
/// Default STREAM chunk size (FORMAT.md §4).
pub const DEFAULT_CHUNK_SIZE: u32 = 256 << 10;
/// Default AONT-RS cipher.
pub const DEFAULT_AONT_CIPHER: CipherId = CipherId::Aes256Gcm;
/// Default AONT-RS hash.
pub const DEFAULT_AONT_HASH: HashId = HashId::Blake3;

/// How a new object's bytes are sealed, with the keys that do it: the engine's side of
/// a protection mode (the object layer's `Protection` is the record's side, which names
/// the mode but holds no key).
#[derive(Clone, Debug)]
pub enum Sealing {
    /// AONT-RS (keyless package transform).
    Aont,
    /// STREAM AEAD under a customer key.
    SseC(CustomerKey),
    /// STREAM AEAD under a key derived from a bucket key wrapped by HSM root key `crn`.
    SseKp {
        /// The unwrapped bucket key, bound to its bucket name.
        key: CustomerKey,
        /// The root key's CRN, recorded in the header.
        crn: String,
    },
}

impl Sealing {
    /// The key a reader must supply to open objects written this way.
    pub fn key(&self) -> Option<&CustomerKey> {
        match self {
            Self::Aont => None,
            Self::SseC(k) | Self::SseKp { key: k, .. } => Some(k),
        }
    }
}

/// Everything a [`Sealer`] needs to know.
#[derive(Clone, Debug)]
pub struct SealSpec {
    /// Mode and keys.
    pub protection: Sealing,
    /// Plaintext bytes per unit.
    pub unit_size: u32,
    /// AONT-RS cipher (ignored by STREAM modes).
    pub aont_cipher: CipherId,
    /// AONT-RS hash (ignored by STREAM modes).
    pub aont_hash: HashId,
    /// Multipart part number bound into STREAM chunks (0 for single objects).
    pub part: u32,
    /// Implementation family.
    pub backend: Backend,
}

impl SealSpec {
    /// The defaults for `protection`.
    pub fn new(protection: Sealing, backend: Backend) -> Self {
        let unit_size = match protection {
            Sealing::Aont => DEFAULT_SEGMENT_SIZE,
            Sealing::SseC(_) | Sealing::SseKp { .. } => DEFAULT_CHUNK_SIZE,
        };
        Self {
            protection,
            unit_size,
            aont_cipher: DEFAULT_AONT_CIPHER,
            aont_hash: DEFAULT_AONT_HASH,
            part: 0,
            backend,
        }
    }
}

enum UnitCodec {
    Aont(AontSuite),
    Stream { gcm: Box<Gcm>, aad: [u8; AAD_LEN] },
}

impl UnitCodec {
    fn stream(
        data_key: &SecretKey,
        digest: &[u8; DIGEST_LEN],
        part: u32,
        backend: Backend,
    ) -> Result<Self, Error> {
        Ok(Self::Stream { gcm: Box::new(Gcm::new(backend, data_key)?), aad: stream::aad(digest, part) })
    }
}

/// Encrypts one object: owns its header and per-object keys.
pub struct Sealer {
    header: Header,
    encoded: Vec<u8>,
    digest: [u8; DIGEST_LEN],
    codec: UnitCodec,
}

impl Sealer {
    /// A sealer for an object of `plaintext_len` bytes (`None` when not known up front).
    pub fn new(spec: &SealSpec, plaintext_len: Option<u64>) -> Result<Self, Error> {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt);
        let (mode, cipher, hash) = match spec.protection {
            Sealing::Aont => (Mode::Aont, spec.aont_cipher, spec.aont_hash),
            Sealing::SseC(_) => (Mode::SseC, CipherId::Aes256Gcm, HashId::Sha256),
            Sealing::SseKp { .. } => (Mode::SseKp, CipherId::Aes256Gcm, HashId::Sha256),
        };
        let mut kp_key = None;
        let envelope = match &spec.protection {
            Sealing::Aont => vec![],
            Sealing::SseC(_) => vec![0; SSE_C_ENVELOPE_LEN],
            Sealing::SseKp { key, crn } => {
                let (envelope, dk) = key.seal_kp(&salt, crn)?;
                kp_key = Some(dk);
                envelope
            }
        };
        let mut header =
            Header { mode, cipher, hash, unit_size: spec.unit_size, plaintext_len, salt, envelope };
        header.validate().map_err(|_| Error::InvalidParameter("unit size must be 4 KiB to 16 MiB"))?;
        let data_key = match &spec.protection {
            Sealing::Aont => None,
            Sealing::SseC(ck) => {
                let dk = SecretKey::random();
                let fixed = header.encode();
                header.envelope = ck.seal(&salt, &fixed[..FIXED_HEADER_LEN], &dk, spec.backend)?;
                Some(dk)
            }
            Sealing::SseKp { .. } => kp_key,
        };
        let encoded = header.encode();
        let digest = header.digest(&encoded, spec.backend);
        let codec = match data_key {
            None => UnitCodec::Aont(AontSuite { cipher, hash, backend: spec.backend }),
            Some(dk) => UnitCodec::stream(&dk, &digest, spec.part, spec.backend)?,
        };
        Ok(Self { header, encoded, digest, codec })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The header's bytes, to be written before the first unit.
    pub fn header_bytes(&self) -> &[u8] {
        &self.encoded
    }
    /// Body layout for `plaintext_len` bytes.
    pub fn layout(&self, plaintext_len: u64) -> Result<UnitLayout, Error> {
        self.header.layout_for_plaintext(plaintext_len)
    }
    /// Plaintext bytes per unit.
    pub fn unit_size(&self) -> usize {
        self.header.unit_size as usize
    }
    /// Stored bytes each unit adds.
    pub fn overhead(&self) -> usize {
        self.header.mode.overhead()
    }

    /// Encodes unit `index` in place: `data` (its plaintext, at most one unit) becomes
    /// the unit's stored data and `trailer` ([`Self::overhead`] bytes) receives the rest.
    /// The stored unit is `data ‖ trailer`.
    pub fn seal_unit(
        &self,
        index: u64,
        is_final: bool,
        data: &mut [u8],
        trailer: &mut [u8],
    ) -> Result<(), Error> {
        if data.len() > self.unit_size() {
            return Err(Error::InvalidParameter("unit data is longer than the unit size"));
        }
        match &self.codec {
            UnitCodec::Aont(s) => s.encode(&self.digest, index, is_final, data, trailer_mut(trailer)?)?,
            UnitCodec::Stream { gcm, aad } => {
                stream::seal_chunk(gcm, aad, index, is_final, data, trailer_mut(trailer)?)?
            }
        }
        Ok(())
    }
}

fn trailer_mut<const N: usize>(t: &mut [u8]) -> Result<&mut [u8; N], Error> {
    t.try_into().map_err(|_| Error::InvalidParameter("unit trailer has the wrong size"))
}

/// Decrypts one object: holds its parsed header and recovered keys.
pub struct Opener {
    header: Header,
    header_len: usize,
    digest: [u8; DIGEST_LEN],
    codec: UnitCodec,
}

impl Opener {
    /// Parses the header at the start of `bytes` and recovers the object's keys. `key` is
    /// required for SSE-C objects and refused for AONT-RS ones.
    pub fn new(bytes: &[u8], key: Option<&CustomerKey>, backend: Backend) -> Result<Self, Error> {
        Self::with_part(bytes, key, 0, backend)
    }

    /// Like [`Opener::new`], for part `part` of a multipart object.
    pub fn with_part(
        bytes: &[u8],
        key: Option<&CustomerKey>,
        part: u32,
        backend: Backend,
    ) -> Result<Self, Error> {
        let (header, header_len) = Header::parse(bytes)?;
        let encoded = &bytes[..header_len];
        let digest = header.digest(encoded, backend);
        let codec = match (header.mode, key) {
            (Mode::Aont, None) => {
                UnitCodec::Aont(AontSuite { cipher: header.cipher, hash: header.hash, backend })
            }
            (Mode::Aont, Some(_)) => return Err(Error::KeyNotExpected),
            (Mode::SseC, None) => return Err(Error::KeyRequired),
            (Mode::SseC, Some(ck)) => {
                let dk = ck.open(&header.salt, encoded, &header.envelope, backend)?;
                UnitCodec::stream(&dk, &digest, part, backend)?
            }
            (Mode::SseKp, None) => return Err(Error::KeyRequired),
            (Mode::SseKp, Some(bk)) => {
                let dk = bk.open_kp(&header.salt, &header.envelope)?;
                UnitCodec::stream(&dk, &digest, part, backend)?
            }
        };
        Ok(Self { header, header_len, digest, codec })
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// Encoded header length (where unit 0 starts).
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// Body layout for a stored object of `stored_len` bytes.
    pub fn layout(&self, stored_len: u64) -> Result<UnitLayout, Error> {
        self.header.layout_for_stored(stored_len)
    }

    /// Decodes unit `index` in place from its stored `data ‖ trailer` split; on success
    /// `data` holds the plaintext. On failure nothing in `data` may be released.
    pub fn open_unit(
        &self,
        index: u64,
        is_final: bool,
        data: &mut [u8],
        trailer: &[u8],
    ) -> Result<(), Error> {
        self.open_unit_io(index, is_final, InOut::InPlace(data), trailer)
    }

    /// Decodes unit `index` from its stored data (`io`'s input: in place, or apart, such
    /// as a mapped file, read without a copy) and `trailer` into `io`'s output. On failure
    /// nothing in the output may be released.
    pub fn open_unit_io(
        &self,
        index: u64,
        is_final: bool,
        io: InOut<'_>,
        trailer: &[u8],
    ) -> Result<(), Error> {
        let corrupted = Error::Corrupted { unit: index };
        if io.len() > self.header.unit_size as usize {
            return Err(corrupted);
        }
        let r = match &self.codec {
            UnitCodec::Aont(s) => s.decode_io(
                &self.digest,
                index,
                is_final,
                io,
                trailer.try_into().map_err(|_| corrupted.clone())?,
            ),
            UnitCodec::Stream { gcm, aad } => stream::open_chunk(
                gcm,
                aad,
                index,
                is_final,
                io,
                trailer.try_into().map_err(|_| corrupted.clone())?,
            ),
        };
        r.map_err(|_| corrupted)
    }
}
