//! Frozen vectors (the repository's tests/vectors/, written once by
//! scripts/dev/make-vectors and never regenerated) must decrypt byte-exact with every
//! backend, through both pipeline paths: objects written by earlier builds stay readable.
//! Kept in this crate (engine and pipeline only), so that scripts/test's software-AES
//! build of it compiles those two crates, not the service.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use cipherstore_pipeline::{file, stream};
use engine::{Backend, CustomerKey, Opener, SecretKey};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// Decrypts through the stream pipeline from memory.
fn decrypt(object: &[u8], key: Option<&CustomerKey>, backend: Backend) -> Vec<u8> {
    let mut out = Vec::new();
    stream::decrypt_stream(Cursor::new(object.to_vec()), &mut out, key, backend, &()).unwrap();
    out
}

fn key(name: &str, context: &str) -> Option<CustomerKey> {
    if name.is_empty() {
        return None;
    }
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    let text = text.trim();
    assert_eq!(text.len(), 64);
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    Some(CustomerKey { key: SecretKey::from_bytes(k), context: context.as_bytes().to_vec() })
}

#[test]
fn every_frozen_vector_decrypts_exactly() {
    let listing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("vectors.json")).unwrap()).unwrap();
    let entries = listing.as_array().unwrap();
    assert!(entries.len() >= 12);
    for v in entries {
        let object = dir().join(v["object"].as_str().unwrap());
        let expected = std::fs::read(dir().join(v["plaintext"].as_str().unwrap())).unwrap();
        let key = key(v["key"].as_str().unwrap(), v["context"].as_str().unwrap_or(""));
        let bytes = std::fs::read(&object).unwrap();
        for backend in [Backend::Accelerated, Backend::Portable] {
            assert_eq!(decrypt(&bytes, key.as_ref(), backend), expected, "{}", object.display());
            let f = File::open(&object).unwrap();
            let opener = Opener::new(&file::read_header(&f).unwrap(), key.as_ref(), backend).unwrap();
            let out = tempfile::NamedTempFile::new().unwrap();
            file::decrypt_file(&f, &opener, out.as_file(), None, &()).unwrap();
            assert_eq!(std::fs::read(out.path()).unwrap(), expected, "{}", object.display());
        }
    }
}
