//! Fuzz target: `cipherstore::fuzz_entry::stored_record` must return for any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cipherstore::fuzz_entry::stored_record(data));
