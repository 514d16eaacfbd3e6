//! Fuzz target: `tools::fuzz_entry::lifecycle_config` must never answer a 500.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tools::fuzz_entry::lifecycle_config(data);
});
