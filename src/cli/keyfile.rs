//! Reading a 256-bit key from a file: 32 raw bytes, 64 hex digits or base64, with the
//! buffer wiped afterwards and a warning when the file is readable by others.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine as _;
use zeroize::Zeroizing;

use engine::SecretKey;
use engine::key::KEY_LEN;

/// Reads and decodes the key in `path`.
pub(super) fn read_key(path: &Path) -> anyhow::Result<SecretKey> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open key file {}", path.display()))?;
    if let Ok(meta) = file.metadata()
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "cipherstore: warning: key file {} is readable by other users (chmod 600 it)",
            path.display()
        );
    }
    let mut raw = Zeroizing::new(Vec::with_capacity(128));
    file.by_ref()
        .take(4096)
        .read_to_end(&mut raw)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    decode_key(&raw).with_context(|| format!("key file {}", path.display()))
}

/// Decodes key file contents.
pub(super) fn decode_key(raw: &[u8]) -> anyhow::Result<SecretKey> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if raw.len() == KEY_LEN {
        key.copy_from_slice(raw);
        return Ok(SecretKey::from_bytes(*key));
    }
    let text = raw.trim_ascii();
    if base::hex::decode_into(text, &mut key[..]) {
        return Ok(SecretKey::from_bytes(*key));
    }
    let mut decoded = Zeroizing::new(Vec::new());
    if base64::engine::general_purpose::STANDARD.decode_vec(text, &mut decoded).is_ok()
        && decoded.len() == KEY_LEN
    {
        key.copy_from_slice(&decoded);
        return Ok(SecretKey::from_bytes(*key));
    }
    bail!(
        "expected a 256-bit key: 32 raw bytes, 64 hex digits or 44 base64 characters (found {} bytes)",
        raw.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_hex_and_base64_keys_decode_alike() {
        let raw = [0xA5u8; 32];
        let want = SecretKey::from_bytes(raw);
        assert_eq!(decode_key(&raw).unwrap(), want);
        assert_eq!(decode_key(format!("{}\n", "a5".repeat(32)).as_bytes()).unwrap(), want);
        assert_eq!(decode_key("A5".repeat(32).as_bytes()).unwrap(), want);
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(decode_key(format!("{b64}\n").as_bytes()).unwrap(), want);
        let err = decode_key(b"short").unwrap_err().to_string();
        assert!(err.contains("expected a 256-bit key"), "{err}");
        assert!(!err.contains("short"), "key text must not be echoed: {err}");
    }
}
