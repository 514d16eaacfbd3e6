//! A PKCS#11 module for fault tests (tests/e2e/test_hsm_faults.py): it forwards every call to
//! a real module and, while a fault file exists, fails chosen calls with a chosen return
//! value, as a real HSM does when its device errors, is removed or loses its session.
//!
//! Built as `target/release/examples/libpkcs11_fault.so`; configured by environment:
//! - `PKCS11_FAULT_MODULE`: the real module (e.g. /usr/lib/softhsm/libsofthsm2.so);
//! - `PKCS11_FAULT_FILE`: while this file exists, calls fail. Its first line is the return
//!   value (`0x30` CKR_DEVICE_ERROR by default), then the calls to fail, any of `open`
//!   (C_OpenSession), `login`, `find` (C_FindObjectsInit), `wrap` (C_WrapKey, and
//!   C_EncryptInit and C_SignInit, which the wrapping methods without key wrap use),
//!   `unwrap` (C_UnwrapKey, C_DecryptInit, C_VerifyInit); none named means all of them.
//!
//! Not part of cipherstore: FFI is the whole job here, so this file is `unsafe` throughout.

use std::ffi::c_void;
use std::sync::OnceLock;

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_BYTE, CK_FLAGS, CK_FUNCTION_LIST, CK_MECHANISM, CK_NOTIFY, CK_OBJECT_HANDLE, CK_RV,
    CK_SESSION_HANDLE, CK_SLOT_ID, CK_ULONG, CK_USER_TYPE, CK_UTF8CHAR, CKR_ARGUMENTS_BAD, CKR_DEVICE_ERROR,
    CKR_GENERAL_ERROR,
};

/// The real module (kept loaded for the life of the process) and its function list.
struct Real {
    _lib: cryptoki_sys::Pkcs11,
    list: CK_FUNCTION_LIST,
}

/// Our function list: the real one with the faultable entries replaced.
struct Ours(CK_FUNCTION_LIST);

static REAL: OnceLock<Result<Real, String>> = OnceLock::new();
static OURS: OnceLock<Ours> = OnceLock::new();

fn real() -> Option<&'static Real> {
    REAL.get_or_init(|| {
        let path =
            std::env::var("PKCS11_FAULT_MODULE").map_err(|_| "PKCS11_FAULT_MODULE not set".to_owned())?;
        // SAFETY: loading a PKCS#11 module runs its initialisers; the path is the test's
        // own choice of a real module.
        let lib = unsafe { cryptoki_sys::Pkcs11::new(&path) }.map_err(|e| e.to_string())?;
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: C_GetFunctionList writes a pointer to the module's static list.
        let rv = unsafe { lib.C_GetFunctionList(&mut list) };
        if rv != 0 || list.is_null() {
            return Err(format!("C_GetFunctionList of {path} failed: {rv:#x}"));
        }
        // SAFETY: non-null, points to the module's list, which outlives this copy's use
        // because the library stays loaded in REAL.
        let list = unsafe { *list };
        Ok(Real { _lib: lib, list })
    })
    .as_ref()
    .ok()
}

/// The return value to fail `call` with, if the fault file exists and names it.
fn fault(call: &str) -> Option<CK_RV> {
    let path = std::env::var_os("PKCS11_FAULT_FILE")?;
    let text = std::fs::read_to_string(path).ok()?;
    let mut words = text.split_whitespace();
    let rv = match words.next() {
        Some(w) => CK_RV::from_str_radix(w.trim_start_matches("0x"), 16).unwrap_or(CKR_DEVICE_ERROR),
        None => CKR_DEVICE_ERROR,
    };
    let calls: Vec<&str> = words.collect();
    (calls.is_empty() || calls.contains(&call)).then_some(rv)
}

/// Forwards to the real module's entry `$f` unless `$call` is faulted.
macro_rules! forward {
    ($call:literal, $f:ident, $($arg:expr),*) => {{
        if let Some(rv) = fault($call) {
            return rv;
        }
        match real().and_then(|r| r.list.$f) {
            // SAFETY: the real module's own entry point, called with the arguments our
            // caller passed under the same PKCS#11 contract.
            Some(f) => unsafe { f($($arg),*) },
            None => CKR_GENERAL_ERROR,
        }
    }};
}

unsafe extern "C" fn open_session(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    app: *mut c_void,
    notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    forward!("open", C_OpenSession, slot, flags, app, notify, session)
}

unsafe extern "C" fn login(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    forward!("login", C_Login, session, user, pin, len)
}

unsafe extern "C" fn find_objects_init(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    forward!("find", C_FindObjectsInit, session, template, count)
}

unsafe extern "C" fn wrap_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    forward!("wrap", C_WrapKey, session, mechanism, wrapping, key, out, out_len)
}

unsafe extern "C" fn encrypt_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    forward!("wrap", C_EncryptInit, session, mechanism, key)
}

unsafe extern "C" fn sign_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    forward!("wrap", C_SignInit, session, mechanism, key)
}

unsafe extern "C" fn decrypt_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    forward!("unwrap", C_DecryptInit, session, mechanism, key)
}

unsafe extern "C" fn verify_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    forward!("unwrap", C_VerifyInit, session, mechanism, key)
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn unwrap_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    unwrapping: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: CK_ULONG,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    forward!(
        "unwrap",
        C_UnwrapKey,
        session,
        mechanism,
        unwrapping,
        wrapped,
        wrapped_len,
        template,
        count,
        key
    )
}

/// The module's one exported entry point (PKCS#11 v2.40).
///
/// # Safety
/// `list` must be null or valid for one pointer write, as PKCS#11 requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let Some(real) = real() else {
        return CKR_GENERAL_ERROR;
    };
    let ours = OURS.get_or_init(|| {
        let mut l = real.list;
        l.C_GetFunctionList = Some(C_GetFunctionList);
        l.C_OpenSession = Some(open_session);
        l.C_Login = Some(login);
        l.C_FindObjectsInit = Some(find_objects_init);
        l.C_WrapKey = Some(wrap_key);
        l.C_UnwrapKey = Some(unwrap_key);
        l.C_EncryptInit = Some(encrypt_init);
        l.C_SignInit = Some(sign_init);
        l.C_DecryptInit = Some(decrypt_init);
        l.C_VerifyInit = Some(verify_init);
        Ours(l)
    });
    // SAFETY: checked non-null above; the list lives in a static for the process's life,
    // and callers only read through the pointer although the type says mutable.
    unsafe { *list = std::ptr::from_ref(&ours.0).cast_mut() };
    0
}
