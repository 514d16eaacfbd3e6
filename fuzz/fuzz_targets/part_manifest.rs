//! Fuzz target: `cipherstore::fuzz_entry::part_manifest` must return for any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cipherstore::fuzz_entry::part_manifest(data));
