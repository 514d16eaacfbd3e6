//! Fuzz target: `tools::fuzz_entry::kms_request` must return for any input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tools::fuzz_entry::kms_request(data));
