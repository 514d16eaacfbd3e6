//! Ties an object's stored bytes to its metadata. The random salt of the engine header
//! (FORMAT.md §1) is recorded in the tagged metadata: attribute `salt` for a single
//! object, the fourth field of each part manifest entry for a multipart one. Opening the
//! bytes compares the header's salt with the recorded one, which catches a body replaced by
//! another object's body under unchanged metadata: nothing else does for keyless AONT-RS
//! objects (SSE-C and SSE-KP bytes are bound to their bucket and key by their keys).
//! Objects written before salts were recorded carry none and are not checked.

use crate::engine::Error;
use crate::engine::format::SALT_LEN;
use crate::pipeline::PipelineError;
use crate::store::ObjectMeta;

/// Attribute holding a single object's salt (hex).
pub const SALT: &str = "salt";

/// A header salt.
pub type Salt = [u8; SALT_LEN];

fn damaged() -> PipelineError {
    PipelineError::Engine(Error::Corrupted { unit: 0 })
}

/// Records `salt` in `meta` (before the metadata tag is computed).
pub fn record(meta: &mut ObjectMeta, salt: &Salt) {
    meta.attributes.insert(SALT.to_owned(), crate::hex::encode(salt));
}

/// Parses a recorded salt; a malformed one is a damaged object.
pub fn parse(text: &str) -> Result<Salt, PipelineError> {
    crate::hex::decode_array(text).ok_or_else(damaged)
}

/// The salt recorded for a single object, if any.
pub fn recorded(meta: &ObjectMeta) -> Result<Option<Salt>, PipelineError> {
    meta.attributes.get(SALT).map(|t| parse(t)).transpose()
}

/// Checks the salt found in the stored header against the recorded one.
pub fn check(found: &Salt, recorded: Option<&Salt>) -> Result<(), PipelineError> {
    match recorded {
        Some(r) if r != found => Err(damaged()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_salts_are_checked_and_damage_refused() {
        let mut meta = ObjectMeta { key: "k".into(), ..Default::default() };
        assert_eq!(recorded(&meta).unwrap(), None);
        let salt = [7u8; SALT_LEN];
        record(&mut meta, &salt);
        let got = recorded(&meta).unwrap().unwrap();
        assert!(check(&salt, Some(&got)).is_ok());
        assert!(check(&[8u8; SALT_LEN], Some(&got)).is_err());
        assert!(check(&[8u8; SALT_LEN], None).is_ok());
        meta.attributes.insert(SALT.into(), "0707".into());
        assert!(recorded(&meta).is_err());
    }
}
