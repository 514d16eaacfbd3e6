//! Randomness: keys, salts and nonces come from the operating system's CSPRNG (through
//! aws-lc).

/// Fills `out` from the operating system's CSPRNG (through aws-lc's DRBG).
///
/// A failing system RNG leaves no safe way to continue, so this aborts the process rather
/// than hand out predictable keys.
pub fn fill_random(out: &mut [u8]) {
    if aws_lc_rs::rand::fill(out).is_err() {
        eprintln!("cipherstore: the system random number generator failed; aborting");
        std::process::abort();
    }
}
