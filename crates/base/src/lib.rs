//! Small things every layer of cipherstore uses: hex text for bytes ([`hex`]), Unix
//! seconds and RFC 3339 text ([`clock`]), and files that appear only when complete
//! ([`durable`]).

pub mod clock;
pub mod durable;
pub mod hex;
