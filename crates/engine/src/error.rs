//! The engine's error type: every way an object can fail to encode or decode.

/// Errors from parsing, encrypting and decrypting cipherstore objects. Texts name the
/// problem, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input does not start with the cipherstore magic.
    #[error("not a cipherstore object (the magic bytes do not match)")]
    NotCipherstore,
    /// A format version this build does not read.
    #[error("unsupported format version {0} (this build reads version 1)")]
    UnsupportedVersion(u8),
    /// A protection mode this build does not read.
    #[error("unsupported protection mode {0}")]
    UnsupportedMode(u8),
    /// The header breaks a rule of docs/FORMAT.md.
    #[error("malformed header: {0}")]
    MalformedHeader(&'static str),
    /// Fewer bytes than the header promises.
    #[error("truncated object: expected {expected} bytes, found {found}")]
    Truncated {
        /// Stored size the header implies.
        expected: u64,
        /// Stored size seen.
        found: u64,
    },
    /// More bytes than the header promises.
    #[error("corrupted object: expected {expected} bytes, found {found} (data was appended)")]
    TrailingData {
        /// Stored size the header implies.
        expected: u64,
        /// Stored size seen.
        found: u64,
    },
    /// A unit failed its integrity check.
    #[error("integrity check failed in unit {unit}: the object was altered, truncated or reordered")]
    Corrupted {
        /// Index of the first unit that failed.
        unit: u64,
    },
    /// The supplied key is not the one the object was written with.
    #[error("wrong key: this object was encrypted with a different key")]
    WrongKey,
    /// The sealed data key in the header failed authentication.
    #[error("corrupted object: the key envelope in the header failed authentication")]
    EnvelopeCorrupted,
    /// The object needs a key and none was given.
    #[error("this object is encrypted with a customer or bucket key (SSE-C, SSE-KP): a key is required")]
    KeyRequired,
    /// A key was given for an object that is not protected by one.
    #[error("a key was given, but this object is not encrypted with a customer or bucket key")]
    KeyNotExpected,
    /// The requested byte range does not overlap the object.
    #[error("range not satisfiable: start {start} is beyond the object's {len} bytes")]
    RangeNotSatisfiable {
        /// First byte asked for.
        start: u64,
        /// Object length.
        len: u64,
    },
    /// Sealed metadata failed to open: altered, or sealed under another key or label.
    #[error("the sealed metadata failed authentication: it was altered, or belongs to another key or record")]
    MetadataCorrupted,
    /// A caller passed a value outside the format's limits.
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// A primitive failed where the input could not have caused it.
    #[error("internal cryptographic failure")]
    Internal,
}

impl From<super::primitives::PrimitiveError> for Error {
    fn from(_: super::primitives::PrimitiveError) -> Self {
        Self::Internal
    }
}
