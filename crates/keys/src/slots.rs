//! Finding the token by label among a module's slots, surviving what modules report.
//!
//! `cryptoki` reads a token's whole `CK_TOKEN_INFO` and fails the call when a field does not
//! parse: opencryptoki's software token sets `CKF_CLOCK_ON_TOKEN` and fills `utcTime` with
//! something other than the 16 ASCII digits PKCS#11 describes, so every token lookup failed
//! with "Error parsing string as integer". Only the label and whether the token is
//! initialised matter here: when `cryptoki` cannot parse a slot's token information, both
//! are read straight from `C_GetTokenInfo` through the module's exported symbol. Slots whose
//! token cannot be read at all are skipped (reported if no slot matches), blank and
//! space-padded labels compare trimmed, and the first initialised token with the label wins.

use std::path::Path;

use cryptoki::context::Pkcs11;
use cryptoki::error::Error as CkError;
use cryptoki::slot::Slot;

use super::error::KeysError;

/// What is needed of a slot's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    /// The label, trailing blanks removed.
    pub label: String,
    /// `CKF_TOKEN_INITIALIZED`.
    pub initialized: bool,
}

/// The slot holding the initialised token labelled `label`. The caller holds the module's
/// generation.
pub fn find_token(ctx: &Pkcs11, module: &Path, label: &str) -> Result<Slot, KeysError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| KeysError::Hsm { op: "C_GetSlotList", reason: e.to_string() })?;
    let mut unreadable = Vec::new();
    for slot in slots {
        match summary(ctx, module, slot) {
            Ok(t) if t.initialized && t.label == label => return Ok(slot),
            Ok(_) => {}
            Err(reason) => unreadable.push(format!("slot {}: {reason}", slot.id())),
        }
    }
    if !unreadable.is_empty() {
        tracing::warn!(token = label, slots = %unreadable.join("; "), "some slots' tokens could not be read");
    }
    Err(KeysError::TokenNotFound(label.to_owned()))
}

/// The slot's token label and state, through `cryptoki` or, when it cannot parse the
/// token's information, directly.
fn summary(ctx: &Pkcs11, module: &Path, slot: Slot) -> Result<TokenSummary, String> {
    match ctx.get_token_info(slot) {
        Ok(t) => {
            Ok(TokenSummary { label: t.label().trim_end().to_owned(), initialized: t.token_initialized() })
        }
        Err(CkError::ParseInt(_) | CkError::Utf8(_)) => raw::summary(module, slot.id()),
        Err(e) => Err(e.to_string()),
    }
}

/// Trims a space-padded PKCS#11 label (and any NULs a module wrote instead of blanks).
fn label_of(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).trim_end_matches([' ', '\0']).to_owned()
}

mod raw {
    //! `C_GetTokenInfo` through the module's exported symbol, for the token information
    //! `cryptoki` cannot parse.

    use std::path::Path;

    use cryptoki_sys::{CK_FUNCTION_LIST, CK_SLOT_ID, CK_TOKEN_INFO, CKF_TOKEN_INITIALIZED, CKR_OK};

    use super::{TokenSummary, label_of};

    pub(super) fn summary(module: &Path, slot: u64) -> Result<TokenSummary, String> {
        let slot = CK_SLOT_ID::try_from(slot).map_err(|e| e.to_string())?;
        // SAFETY: loads the same shared object cryptoki already loaded and initialised (the
        // dynamic loader hands back the existing mapping); loading runs no code of ours.
        let lib = unsafe { cryptoki_sys::Pkcs11::new(module) }.map_err(|e| e.to_string())?;
        let get_list = lib.C_GetFunctionList.as_ref().map_err(|e| e.to_string())?;
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: C_GetFunctionList writes a pointer to the module's static function table
        // into `list`, a valid place for it.
        let rv = unsafe { get_list(&mut list) };
        if rv != CKR_OK || list.is_null() {
            return Err(format!("C_GetFunctionList returned {rv:#x}"));
        }
        // SAFETY: `list` is non-null and points to the module's function table, which lives
        // as long as the module stays loaded (cryptoki keeps it loaded for the process).
        let get_info = unsafe { (*list).C_GetTokenInfo }.ok_or("the module has no C_GetTokenInfo")?;
        let mut info = CK_TOKEN_INFO::default();
        // SAFETY: `info` is a valid, writable CK_TOKEN_INFO the call fills; the module was
        // initialised by cryptoki (C_Initialize).
        let rv = unsafe { get_info(slot, &mut info) };
        if rv != CKR_OK {
            return Err(format!("C_GetTokenInfo returned {rv:#x}"));
        }
        Ok(TokenSummary {
            label: label_of(&info.label),
            initialized: info.flags & CKF_TOKEN_INITIALIZED != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_trim_blanks_and_nuls() {
        let mut raw = [b' '; 32];
        raw[..5].copy_from_slice(b"token");
        assert_eq!(label_of(&raw), "token");
        raw[5] = 0;
        assert_eq!(label_of(&raw), "token");
        assert_eq!(label_of(&[b' '; 32]), "");
    }
}
