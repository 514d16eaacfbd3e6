//! Tampering with stored objects: every flipped byte, every cut, every extension, swapped,
//! duplicated and spliced units, and wrong or missing keys are rejected, never decrypted
//! to altered plaintext.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;
use engine::format::Header;
use engine::{Backend, CustomerKey, Error};
use pipeline::PipelineError;

const UNIT: usize = 4096;
const LEN: usize = 3 * UNIT + 100;

struct Case {
    name: &'static str,
    object: Vec<u8>,
    key: Option<CustomerKey>,
}

fn cases() -> Vec<Case> {
    let key = customer_key(1);
    let plain = plaintext(LEN, 42);
    let mut v = Vec::new();
    for len_known in [true, false] {
        v.push(Case { name: "aont", object: encrypt(&aont_spec(UNIT as u32), &plain, len_known), key: None });
        v.push(Case {
            name: "sse-kp",
            object: encrypt(&sse_kp_spec(UNIT as u32, &key), &plain, len_known),
            key: Some(key.clone()),
        });
        v.push(Case {
            name: "sse-c",
            object: encrypt(&sse_c_spec(UNIT as u32, &key), &plain, len_known),
            key: Some(key.clone()),
        });
    }
    v
}

fn rejected(c: &Case, object: &[u8], what: &str) {
    let r = decrypt(object, c.key.as_ref(), Backend::Accelerated);
    assert!(r.is_err(), "{} ({what}): tampered object decrypted", c.name);
}

#[test]
fn untouched_objects_decrypt() {
    for c in cases() {
        assert_eq!(decrypt(&c.object, c.key.as_ref(), Backend::Accelerated).unwrap(), plaintext(LEN, 42));
    }
}

#[test]
fn every_flipped_byte_is_rejected() {
    for c in cases() {
        for i in 0..c.object.len() {
            let mut t = c.object.clone();
            t[i] ^= 0x01;
            rejected(&c, &t, &format!("flip byte {i}"));
        }
    }
}

#[test]
fn every_truncation_and_extension_is_rejected() {
    for c in cases() {
        for cut in 0..c.object.len() {
            rejected(&c, &c.object[..cut], &format!("cut at {cut}"));
        }
        for extra in [&[0u8][..], &[0u8; 16], &[0u8; 48], &c.object[c.object.len() - 200..]] {
            let mut t = c.object.clone();
            t.extend_from_slice(extra);
            rejected(&c, &t, &format!("extended by {}", extra.len()));
        }
    }
}

fn units(c: &Case) -> (usize, usize) {
    let (h, hlen) = Header::parse(&c.object).unwrap();
    (hlen, h.unit_size as usize + h.mode.overhead())
}

#[test]
fn swapped_duplicated_and_dropped_units_are_rejected() {
    for c in cases() {
        let (hlen, su) = units(&c);
        let unit = |i: usize| c.object[hlen + i * su..hlen + (i + 1) * su].to_vec();
        let head = &c.object[..hlen];
        let tail = &c.object[hlen + 3 * su..];
        let build = |order: &[usize]| {
            let mut v = head.to_vec();
            for &i in order {
                v.extend(unit(i));
            }
            v.extend_from_slice(tail);
            v
        };
        rejected(&c, &build(&[1, 0, 2]), "swap units 0 and 1");
        rejected(&c, &build(&[0, 0, 2]), "duplicate unit 0");
        rejected(&c, &build(&[0, 2]), "drop unit 1");
        rejected(&c, &build(&[0, 1, 2, 2]), "repeat a full unit");
        let mut no_tail = head.to_vec();
        for i in 0..3 {
            no_tail.extend(unit(i));
        }
        rejected(&c, &no_tail, "drop the final unit at a boundary");
    }
}

#[test]
fn units_spliced_from_another_object_are_rejected() {
    // Same key, same length, same unit size: only the per-object salt tells them apart.
    let key = customer_key(1);
    let plain = plaintext(LEN, 42);
    for (spec, k) in [
        (aont_spec(UNIT as u32), None),
        (sse_c_spec(UNIT as u32, &key), Some(&key)),
        (sse_kp_spec(UNIT as u32, &key), Some(&key)),
    ] {
        let a = encrypt(&spec, &plain, true);
        let b = encrypt(&spec, &plain, true);
        assert_ne!(a, b, "two encryptions must differ");
        let (_, hlen) = Header::parse(&a).unwrap();
        let mut spliced = a.clone();
        spliced[hlen..hlen + UNIT].copy_from_slice(&b[hlen..hlen + UNIT]);
        assert!(decrypt(&spliced, k, Backend::Accelerated).is_err());
        let mut header_swapped = b[..hlen].to_vec();
        header_swapped.extend_from_slice(&a[hlen..]);
        assert!(decrypt(&header_swapped, k, Backend::Accelerated).is_err());
    }
}

fn engine_error(r: Result<Vec<u8>, PipelineError>) -> Error {
    match r {
        Err(PipelineError::Engine(e)) => e,
        other => panic!("expected an engine error, got {other:?}"),
    }
}

#[test]
fn keys_are_checked_with_clear_errors() {
    let key = customer_key(1);
    let plain = plaintext(LEN, 42);
    let sse = encrypt(&sse_c_spec(UNIT as u32, &key), &plain, true);
    let aont = encrypt(&aont_spec(UNIT as u32), &plain, true);
    assert_eq!(engine_error(decrypt(&sse, Some(&customer_key(2)), Backend::Accelerated)), Error::WrongKey);
    assert_eq!(engine_error(decrypt(&sse, None, Backend::Accelerated)), Error::KeyRequired);
    assert_eq!(engine_error(decrypt(&aont, Some(&key), Backend::Accelerated)), Error::KeyNotExpected);
    let bound = CustomerKey { key: key.key.clone(), context: b"bucket/object".to_vec() };
    assert_eq!(engine_error(decrypt(&sse, Some(&bound), Backend::Accelerated)), Error::WrongKey);
    let kp = encrypt(&sse_kp_spec(UNIT as u32, &bound), &plain, true);
    assert_eq!(decrypt(&kp, Some(&bound), Backend::Portable).unwrap(), plain);
    assert_eq!(engine_error(decrypt(&kp, Some(&key), Backend::Accelerated)), Error::WrongKey, "other bucket");
    assert_eq!(engine_error(decrypt(&kp, None, Backend::Accelerated)), Error::KeyRequired);
}

#[test]
fn foreign_and_damaged_inputs_are_named() {
    assert_eq!(
        engine_error(decrypt(b"PK\x03\x04 a zip file, not ours", None, Backend::Accelerated)),
        Error::NotCipherstore
    );
    assert_eq!(engine_error(decrypt(b"", None, Backend::Accelerated)), Error::NotCipherstore);
    let aont = encrypt(&aont_spec(UNIT as u32), &plaintext(10, 1), true);
    let mut v2 = aont.clone();
    v2[8] = 2;
    assert_eq!(engine_error(decrypt(&v2, None, Backend::Accelerated)), Error::UnsupportedVersion(2));
    assert!(matches!(
        engine_error(decrypt(&aont[..30], None, Backend::Accelerated)),
        Error::Truncated { .. }
    ));
    let corrupted = {
        let mut t = aont.clone();
        let n = t.len();
        t[n - 1] ^= 0x80;
        t
    };
    assert_eq!(engine_error(decrypt(&corrupted, None, Backend::Accelerated)), Error::Corrupted { unit: 0 });
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Arbitrary bytes, with or without a valid magic and version, never panic the
        /// header parser or the decoder, and never decode.
        #[test]
        fn arbitrary_input_is_refused_without_panicking(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), magic: bool) {
            if magic && bytes.len() >= 9 {
                bytes[..8].copy_from_slice(&engine::format::MAGIC);
                bytes[8] = 1;
            }
            let _ = Header::parse(&bytes);
            let key = customer_key(1);
            prop_assert!(decrypt(&bytes, None, Backend::Accelerated).is_err());
            prop_assert!(decrypt(&bytes, Some(&key), Backend::Accelerated).is_err());
        }

        /// Random edits of a valid object (several bytes overwritten at random places)
        /// are always refused.
        #[test]
        fn random_multi_byte_edits_are_refused(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let key = customer_key(1);
            let plain = plaintext(LEN, 42);
            for (object, k) in [
                (encrypt(&aont_spec(UNIT as u32), &plain, true), None),
                (encrypt(&sse_c_spec(UNIT as u32, &key), &plain, false), Some(&key)),
            ] {
                let mut t = object.clone();
                for (at, v) in &edits {
                    let i = at % t.len();
                    t[i] = *v;
                }
                if t != object {
                    prop_assert!(decrypt(&t, k, Backend::Accelerated).is_err());
                }
            }
        }
    }
}
