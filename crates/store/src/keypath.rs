//! Object keys to file paths: a key's bytes in lower-case hex, cut into components of at
//! most [`CHUNK`] hex digits. Only `[0-9a-f]` ever reaches the filesystem, so no key (`..`,
//! `//`, NUL, 1024 bytes, any UTF-8) can escape its bucket or collide with another, and
//! sorting hex strings sorts keys by their bytes, as S3 lists them.

/// Hex digits per path component (64 key bytes; well under any filename limit).
pub const CHUNK: usize = 128;

/// Largest key S3 accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    base::hex::encode(bytes)
}

/// Bytes of a lower-case hex string (`None` if it is not one).
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    base::hex::decode_lower(s)
}

/// The path components of `key` (directories, then the file stem).
pub fn components(key: &str) -> Vec<String> {
    let h = hex(key.as_bytes());
    h.as_bytes().chunks(CHUNK).map(|c| String::from_utf8_lossy(c).into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_keys_map_to_hex_only() {
        for key in
            ["../../etc/passwd", "a//b", "/", ".", "..", "ключ/数据", "\u{0}x", &"z".repeat(MAX_KEY_LEN)]
        {
            let parts = components(key);
            assert!(
                parts
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= CHUNK && p.bytes().all(|c| c.is_ascii_hexdigit()))
            );
            assert_eq!(unhex(&parts.concat()).unwrap(), key.as_bytes());
        }
        assert_eq!(components(&"z".repeat(MAX_KEY_LEN)).len(), 16);
    }

    #[test]
    fn hex_order_is_byte_order() {
        let mut keys = vec!["b", "a", "ab", "a/", "a\u{ff}", "B", "é", "a0"];
        let mut by_hex = keys.clone();
        keys.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
        by_hex.sort_by_key(|k| hex(k.as_bytes()));
        assert_eq!(keys, by_hex);
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
