//! Writes the frozen SSE-KP test vector (tests/vectors/sse-kp-4k.cso) from a bucket key
//! file, as the key hierarchy would after unwrapping it: `cargo run --example
//! make_sse_kp_vector -- PLAINTEXT BUCKET_KEY_HEX_FILE CONTEXT OUT`. Used once by
//! scripts/dev/make-vectors; the vector is then frozen.

use std::io::Cursor;

use engine::{Backend, CustomerKey, SealSpec, Sealing, SecretKey};
use pipeline::stream::encrypt_stream;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plain, key_file, context, out] = args.as_slice() else {
        anyhow::bail!("usage: make_sse_kp_vector PLAINTEXT BUCKET_KEY_HEX_FILE CONTEXT OUT");
    };
    let hex = std::fs::read_to_string(key_file)?;
    let hex = hex.trim();
    anyhow::ensure!(hex.len() == 64, "the bucket key file holds 64 hex digits");
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    let key = CustomerKey { key: SecretKey::from_bytes(k), context: context.as_bytes().to_vec() };
    let crn = "crn:v1:cipherstore:vectors:key:00000000-0000-4000-8000-000000000000".to_owned();
    let mut spec = SealSpec::new(Sealing::SseKp { key, crn }, Backend::Accelerated);
    spec.unit_size = 4096;
    let data = std::fs::read(plain)?;
    let mut bytes = Vec::new();
    encrypt_stream(Cursor::new(data.clone()), &mut bytes, &spec, Some(data.len() as u64), &())?;
    std::fs::write(out, bytes)?;
    Ok(())
}
