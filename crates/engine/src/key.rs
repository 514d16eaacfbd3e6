//! Secret 256-bit keys: zeroized on drop, compared in constant time, never printed.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length in bytes of every symmetric key cipherstore uses.
pub const KEY_LEN: usize = 32;

/// A 256-bit secret. Its bytes are wiped when it is dropped, its `Debug` output is
/// redacted, and equality runs in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps key bytes. The caller should wipe its own copy.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn random() -> Self {
        let mut k = [0u8; KEY_LEN];
        super::random::fill_random(&mut k);
        let key = Self(k);
        k.zeroize();
        key
    }

    /// The key bytes; keep the borrow short.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for SecretKey {}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_eq_compares_bytes() {
        let a = SecretKey::from_bytes([7; KEY_LEN]);
        let b = SecretKey::from_bytes([7; KEY_LEN]);
        let c = SecretKey::random();
        assert_eq!(format!("{a:?}"), "SecretKey(<redacted>)");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(SecretKey::random(), SecretKey::random());
    }
}
