//! The encryption engine: pure cryptography on byte slices. It owns the at-rest format
//! (docs/FORMAT.md), AONT-RS segments, STREAM AEAD chunks, SSE-C key envelopes and the
//! choice of primitive implementations. It does no I/O and no key management.

pub mod aont;
pub mod binding;
pub mod codec;
pub mod cpu;
pub mod envelope;
pub mod error;
pub mod format;
pub mod key;
pub mod md5;
pub mod primitives;
mod random;
pub mod sealed_meta;
pub mod stream;

pub use codec::{Opener, SealSpec, Sealer, Sealing};
pub use envelope::CustomerKey;
pub use error::Error;
pub use format::{CipherId, HashId, Header, Mode, UnitLayout};
pub use key::SecretKey;
pub use primitives::{Backend, InOut};
