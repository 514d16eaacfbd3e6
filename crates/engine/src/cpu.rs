//! Run-time CPU feature detection and the report of which implementation serves each
//! primitive (`cipherstore cpu`).

use serde::Serialize;

use super::codec::{DEFAULT_AONT_CIPHER, DEFAULT_AONT_HASH};
use super::format::{CipherId, HashId};
use super::primitives::{Backend, CtrImpl};

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
cpufeatures::new!(aes, "aes");
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
cpufeatures::new!(pclmulqdq, "pclmulqdq");
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
cpufeatures::new!(avx2, "avx2");
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
cpufeatures::new!(avx512f, "avx512f");
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
cpufeatures::new!(vaes, "vaes");
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
cpufeatures::new!(vpclmulqdq, "vpclmulqdq");
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
cpufeatures::new!(sha, "sha");

/// The CPU features that matter to cipherstore's primitives.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AES-NI.
    pub aes_ni: bool,
    /// Carry-less multiply (GHASH).
    pub pclmulqdq: bool,
    /// AVX2.
    pub avx2: bool,
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// Vector AES.
    pub vaes: bool,
    /// Vector carry-less multiply.
    pub vpclmulqdq: bool,
    /// SHA extensions (SHA-NI).
    pub sha_ni: bool,
}

impl CpuFeatures {
    /// Detects the features of the CPU this runs on.
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    pub fn detect() -> Self {
        Self {
            aes_ni: aes::get(),
            pclmulqdq: pclmulqdq::get(),
            avx2: avx2::get(),
            avx512f: avx512f::get(),
            vaes: vaes::get(),
            vpclmulqdq: vpclmulqdq::get(),
            sha_ni: sha::get(),
        }
    }

    /// Detects the features of the CPU this runs on (none are tracked off x86).
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    pub fn detect() -> Self {
        Self {
            aes_ni: false,
            pclmulqdq: false,
            avx2: false,
            avx512f: false,
            vaes: false,
            vpclmulqdq: false,
            sha_ni: false,
        }
    }
}

/// One primitive and the implementation that serves it.
#[derive(Debug, Clone, Serialize)]
pub struct PrimitiveChoice {
    /// What the engine uses it for.
    pub primitive: &'static str,
    /// Crate and code path.
    pub implementation: String,
}

/// What `cipherstore cpu` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    /// Detected features.
    pub features: CpuFeatures,
    /// Backend in force.
    pub backend: &'static str,
    /// Default AONT-RS algorithms.
    pub aont_default: String,
    /// Implementation per primitive.
    pub primitives: Vec<PrimitiveChoice>,
}

fn aes_path(f: &CpuFeatures) -> &'static str {
    match (f.vaes && f.avx512f, f.vaes && f.avx2, f.aes_ni) {
        (true, _, _) => "VAES-512",
        (_, true, _) => "VAES-256",
        (_, _, true) => "AES-NI",
        _ => "constant-time software (bitsliced)",
    }
}

fn ghash_path(f: &CpuFeatures) -> &'static str {
    match (f.vpclmulqdq && f.avx512f, f.pclmulqdq) {
        (true, _) => "VAES + VPCLMULQDQ (AVX-512)",
        (_, true) => "AES-NI + PCLMULQDQ",
        _ => "constant-time software",
    }
}

impl CpuReport {
    /// Builds the report for this CPU and `backend`.
    pub fn new(backend: Backend) -> Self {
        let f = CpuFeatures::detect();
        let ctr = match CtrImpl::for_backend(backend) {
            CtrImpl::RustCrypto => format!("RustCrypto aes 0.9 + ctr 0.10, {}", aes_path(&f)),
            CtrImpl::AwsLc => "aws-lc-rs AES-CTR".to_owned(),
        };
        let (gcm, sha) = match backend {
            Backend::Accelerated => (
                format!("aws-lc-rs, {}", ghash_path(&f)),
                format!("aws-lc-rs, {}", if f.sha_ni { "SHA-NI" } else { "generic x86-64" }),
            ),
            Backend::Portable => (
                format!("RustCrypto aes-gcm 0.11, {}", aes_path(&f)),
                format!("RustCrypto sha2, {}", if f.sha_ni { "SHA-NI" } else { "software" }),
            ),
        };
        let blake3 = match (f.avx512f, f.avx2) {
            (true, _) => "blake3 crate, AVX-512",
            (_, true) => "blake3 crate, AVX2",
            _ => "blake3 crate, SSE/portable",
        };
        let name = |c: CipherId, h: HashId| format!("{c} + {h}");
        Self {
            features: f,
            backend: backend.name(),
            aont_default: name(DEFAULT_AONT_CIPHER, DEFAULT_AONT_HASH),
            primitives: vec![
                PrimitiveChoice { primitive: "AES-256-CTR (AONT-RS E)", implementation: ctr },
                PrimitiveChoice { primitive: "AES-256-GCM (STREAM, envelopes)", implementation: gcm },
                PrimitiveChoice { primitive: "SHA-256 (header digest, HKDF)", implementation: sha },
                PrimitiveChoice { primitive: "BLAKE3 (AONT-RS H)", implementation: blake3.to_owned() },
            ],
        }
    }
}
