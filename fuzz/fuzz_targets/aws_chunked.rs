//! Fuzz target: `cipherstore::fuzz_entry::aws_chunked` must never answer a 500.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cipherstore::fuzz_entry::aws_chunked(data);
});
