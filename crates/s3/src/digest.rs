//! Digests of request bodies that S3 asks for: the MD5 (ETag, `Content-MD5`) and the
//! flexible checksums (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256, and those of
//! [`super::more_checksums`]: SHA-512, MD5, XXHASH64, XXHASH3, XXHASH128), expected either
//! in headers or in the trailer of an `aws-chunked` body; an algorithm none of these is
//! refused (400), never accepted unchecked. They are computed as the body
//! streams through and verified before anything is committed: a mismatch rejects the
//! upload with BadDigest and leaves nothing behind. A `Content-MD5` that is not the base64
//! of 16 bytes (or is empty) is refused before the body is read: 400 InvalidDigest.

use base64::Engine as _;
use engine::md5::Md5;
use object::{ChecksumAlgorithm, Checksums};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::Checksum;
use s3s::{S3Result, s3_error};

use super::more_checksums::{self, Hashers};

/// Checksum algorithms, in the order of [`Checksum`]'s fields.
const NAMES: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32c,
    ChecksumAlgorithm::Crc64nvme,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
];

/// What the client said the body's digests are, or will be (trailers).
#[derive(Default)]
pub(crate) struct Expected {
    content_md5: Option<[u8; 16]>,
    declared: Checksum,
    trailer: Option<s3s::TrailingHeaders>,
    enabled: [bool; 5],
    /// Checksums `x-amz-trailer` announced: the trailer must bring them.
    announced: [bool; 5],
    /// The same three for [`more_checksums::NAMES`], whose declared values come from the
    /// headers themselves.
    more_declared: [Option<String>; 5],
    more_enabled: [bool; 5],
    more_announced: [bool; 5],
}

/// The five checksum fields `s3s` models, as (name, field) pairs in [`NAMES`] order, of
/// any request or response type that has them (Checksum, CompletedPart,
/// CompleteMultipartUploadInput, …).
macro_rules! named_fields {
    ($x:expr) => {
        [
            (object::ChecksumAlgorithm::Crc32, &$x.checksum_crc32),
            (object::ChecksumAlgorithm::Crc32c, &$x.checksum_crc32c),
            (object::ChecksumAlgorithm::Crc64nvme, &$x.checksum_crc64nvme),
            (object::ChecksumAlgorithm::Sha1, &$x.checksum_sha1),
            (object::ChecksumAlgorithm::Sha256, &$x.checksum_sha256),
        ]
    };
}
pub(crate) use named_fields;

fn fields(c: &Checksum) -> [&Option<String>; 5] {
    [&c.checksum_crc32, &c.checksum_crc32c, &c.checksum_crc64nvme, &c.checksum_sha1, &c.checksum_sha256]
}

/// The checksums declared in headers, in the order CRC32, CRC32C, CRC64NVME, SHA-1,
/// SHA-256.
pub(crate) fn declared(values: [&Option<String>; 5]) -> Checksum {
    let [crc32, crc32c, crc64nvme, sha1, sha256] = values.map(Clone::clone);
    Checksum {
        checksum_crc32: crc32,
        checksum_crc32c: crc32c,
        checksum_crc64nvme: crc64nvme,
        checksum_sha1: sha1,
        checksum_sha256: sha256,
        checksum_type: None,
    }
}

/// A `Content-MD5` header's 16 bytes; anything else is 400 InvalidDigest.
fn parse_content_md5(sent: &str) -> S3Result<[u8; 16]> {
    base64::engine::general_purpose::STANDARD
        .decode(sent.trim())
        .ok()
        .and_then(|d| <[u8; 16]>::try_from(d).ok())
        .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 must be the base64 of the body's 16-byte MD5"))
}

impl Expected {
    /// From the request: `Content-MD5`, the `x-amz-checksum-*` headers (`declared`), the
    /// SDK's algorithm, and the trailers announced by `x-amz-trailer`.
    pub(crate) fn new(
        content_md5: Option<String>,
        declared: Checksum,
        algorithm: Option<&s3s::dto::ChecksumAlgorithm>,
        headers: &http::HeaderMap,
        trailer: Option<s3s::TrailingHeaders>,
    ) -> S3Result<Self> {
        // An empty header reaches the input as none: the header itself tells.
        let sent = content_md5.or_else(|| {
            headers.get("content-md5").map(|v| v.to_str().map(str::to_owned).unwrap_or_default())
        });
        let content_md5 = sent.map(|sent| parse_content_md5(&sent)).transpose()?;
        let mut enabled = fields(&declared).map(Option::is_some);
        let mut trailed = [false; 5];
        let announced: Vec<String> = headers
            .get_all("x-amz-trailer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_ascii_lowercase())
            .collect();
        for (i, name) in NAMES.iter().enumerate() {
            let header = format!("x-amz-checksum-{name}");
            trailed[i] = announced.contains(&header);
            if trailed[i] || algorithm.is_some_and(|a| a.as_str().eq_ignore_ascii_case(name.name())) {
                enabled[i] = true;
            }
        }
        let mut more_declared: [Option<String>; 5] = Default::default();
        let mut more_enabled = [false; 5];
        let mut more_announced = [false; 5];
        for (i, name) in more_checksums::NAMES.iter().enumerate() {
            let header = format!("x-amz-checksum-{name}");
            more_declared[i] = headers.get(&header).map(|v| v.to_str().unwrap_or_default().to_owned());
            more_announced[i] = announced.contains(&header);
            more_enabled[i] = more_declared[i].is_some()
                || more_announced[i]
                || algorithm.is_some_and(|a| a.as_str().eq_ignore_ascii_case(name.name()));
        }
        // Nothing a client asked to be checked goes unchecked: an algorithm named (by s3s's
        // reading, or in the SDK's own header), a checksum header or an announced trailer
        // of an algorithm not known here is refused.
        let known = |name: &str| ChecksumAlgorithm::parse(name).is_some();
        let sdk = headers.get("x-amz-sdk-checksum-algorithm").map(|v| v.to_str().unwrap_or("?").to_owned());
        for named in algorithm.map(|a| a.as_str().to_owned()).into_iter().chain(sdk) {
            if !known(&named.to_ascii_lowercase()) {
                return Err(s3_error!(InvalidRequest, "checksum algorithm {named:?} is not supported"));
            }
        }
        let not_checksums = ["mode", "type", "algorithm"];
        let sent = headers.keys().filter_map(|h| h.as_str().strip_prefix("x-amz-checksum-"));
        if let Some(unknown) = announced
            .iter()
            .filter_map(|h| h.strip_prefix("x-amz-checksum-"))
            .chain(sent)
            .find(|name| !known(name) && !not_checksums.contains(name))
        {
            return Err(s3_error!(InvalidRequest, "checksum x-amz-checksum-{unknown} is not supported"));
        }
        Ok(Self {
            content_md5,
            declared,
            trailer,
            enabled,
            announced: trailed,
            more_declared,
            more_enabled,
            more_announced,
        })
    }

    /// Whether the MD5 must be computed to check `Content-MD5`.
    pub(crate) fn needs_md5(&self) -> bool {
        self.content_md5.is_some()
    }

    /// The running digests for this body; `md5` also when the ETag needs it.
    pub(crate) fn digests(&self, md5: bool) -> Digests {
        let e = self.enabled;
        let hasher = e.iter().any(|x| *x).then(|| ChecksumHasher {
            crc32: e[0].then(Crc32::new),
            crc32c: e[1].then(Crc32c::new),
            crc64nvme: e[2].then(Crc64Nvme::new),
            sha1: e[3].then(Sha1::new),
            sha256: e[4].then(Sha256::new),
        });
        Digests {
            md5: (md5 || self.needs_md5()).then(Md5::new),
            hasher,
            more: Hashers::new(self.more_enabled),
        }
    }

    /// Checks what was computed against what was declared (headers, then trailers, which
    /// are complete once the body has been read to its end).
    pub(crate) fn verify(&self, computed: &Computed) -> S3Result<()> {
        if let (Some(want), Some(got)) = (&self.content_md5, &computed.md5)
            && want != got
        {
            return Err(s3_error!(
                BadDigest,
                "the Content-MD5 you specified did not match what was received"
            ));
        }
        let trailers = self.trailer.as_ref().and_then(|t| t.read(Clone::clone));
        for (i, name) in NAMES.iter().enumerate() {
            let want = fields(&self.declared)[i].clone().or_else(|| {
                let h = trailers.as_ref()?.get(format!("x-amz-checksum-{name}"))?;
                h.to_str().ok().map(str::to_owned)
            });
            if want.is_none() && self.announced[i] {
                return Err(s3_error!(
                    InvalidRequest,
                    "x-amz-trailer announced x-amz-checksum-{name}, but the body's trailer did not bring it"
                ));
            }
            check(*name, want, fields(&computed.checksum)[i].as_deref())?;
        }
        for (i, name) in more_checksums::NAMES.iter().enumerate() {
            let want = self.more_declared[i].clone().or_else(|| {
                let h = trailers.as_ref()?.get(format!("x-amz-checksum-{name}"))?;
                h.to_str().ok().map(str::to_owned)
            });
            if want.is_none() && self.more_announced[i] {
                return Err(s3_error!(
                    InvalidRequest,
                    "x-amz-trailer announced x-amz-checksum-{name}, but the body's trailer did not bring it"
                ));
            }
            check(*name, want, computed.more[i].as_deref())?;
        }
        Ok(())
    }
}

/// The checksum `name` of `data`, base64.
pub(crate) fn checksum_of(name: ChecksumAlgorithm, data: &[u8]) -> Option<String> {
    if let Some(i) = NAMES.iter().position(|n| *n == name) {
        let mut hasher = ChecksumHasher {
            crc32: (i == 0).then(Crc32::new),
            crc32c: (i == 1).then(Crc32c::new),
            crc64nvme: (i == 2).then(Crc64Nvme::new),
            sha1: (i == 3).then(Sha1::new),
            sha256: (i == 4).then(Sha256::new),
        };
        hasher.update(data);
        return fields(&hasher.finalize())[i].clone();
    }
    let i = more_checksums::NAMES.iter().position(|n| *n == name)?;
    let mut enabled = [false; 5];
    enabled[i] = true;
    let mut hashers = Hashers::new(enabled)?;
    hashers.update(data);
    hashers.finish()[i].take()
}

/// The composite checksums of a multipart object, as S3 makes them: for each algorithm
/// every part has, the checksum of the parts' checksums (decoded, end to end), then `-`
/// and the number of parts.
pub(crate) fn composite(parts: &[Checksums]) -> Checksums {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(first) = parts.first() else { return Checksums::new() };
    first
        .keys()
        .filter_map(|name| {
            let mut joined = Vec::new();
            for p in parts {
                joined.extend(b64.decode(p.get(name)?).ok()?);
            }
            Some((*name, format!("{}-{}", checksum_of(*name, &joined)?, parts.len())))
        })
        .collect()
}

/// BadDigest if a checksum the client declared (`want`) is not what the body gave.
fn check(name: ChecksumAlgorithm, want: Option<String>, got: Option<&str>) -> S3Result<()> {
    if let (Some(want), Some(got)) = (want, got)
        && want.trim() != got
    {
        return Err(s3_error!(
            BadDigest,
            "the {} checksum you specified did not match what was received",
            name.name().to_ascii_uppercase()
        ));
    }
    Ok(())
}

/// Digests running over a body.
pub(crate) struct Digests {
    md5: Option<Md5>,
    hasher: Option<ChecksumHasher>,
    more: Option<Hashers>,
}

/// Digests of a whole body.
#[derive(Default)]
pub(crate) struct Computed {
    /// The MD5, if it was asked for.
    pub md5: Option<[u8; 16]>,
    /// The checksums that were enabled (base64).
    pub checksum: Checksum,
    /// Those of [`more_checksums::NAMES`] that were enabled (base64).
    pub more: [Option<String>; 5],
}

impl Computed {
    /// The MD5 as an ETag (32 hex digits).
    pub(crate) fn md5_hex(&self) -> Option<String> {
        self.md5.map(|m| base::hex::encode(&m))
    }
}

impl Digests {
    /// Adds bytes.
    pub(crate) fn update(&mut self, data: &[u8]) {
        if let Some(m) = &mut self.md5 {
            m.update(data);
        }
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
        if let Some(h) = &mut self.more {
            h.update(data);
        }
    }

    /// The results.
    pub(crate) fn finish(self) -> Computed {
        Computed {
            md5: self.md5.map(Md5::finalize),
            checksum: self.hasher.map(ChecksumHasher::finalize).unwrap_or_default(),
            more: self.more.map(Hashers::finish).unwrap_or_default(),
        }
    }
}

/// The [`Expected`] digests of a PutObject or UploadPart input (the fields both carry):
/// Content-MD5, the declared flexible checksums and the checksum algorithm, from the
/// request's headers and trailer.
macro_rules! expected {
    ($input:expr, $headers:expr, $trailing:expr) => {
        $crate::digest::Expected::new(
            $input.content_md5.clone(),
            $crate::digest::declared([
                &$input.checksum_crc32,
                &$input.checksum_crc32c,
                &$input.checksum_crc64nvme,
                &$input.checksum_sha1,
                &$input.checksum_sha256,
            ]),
            $input.checksum_algorithm.as_ref(),
            $headers,
            $trailing,
        )
    };
}
pub(crate) use expected;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_checksums_are_checksums_of_the_parts_checksums() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let (crc32, sha256) = (ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Sha256);
        let part = |data: &[u8]| -> Checksums {
            [crc32, sha256, ChecksumAlgorithm::Xxhash64]
                .iter()
                .map(|&n| (n, checksum_of(n, data).unwrap()))
                .collect()
        };
        let parts = [part(b"one"), part(b"two")];
        let got = composite(&parts);
        let mut joined = b64.decode(&parts[0][&sha256]).unwrap();
        joined.extend(b64.decode(&parts[1][&sha256]).unwrap());
        use sha2::Digest as _;
        assert_eq!(got[&sha256], format!("{}-2", b64.encode(sha2::Sha256::digest(&joined))));
        assert_eq!(got.len(), 3);
        assert_eq!(checksum_of(crc32, b"hello world").as_deref(), Some("DUoRhQ=="));
        // An algorithm one part lacks is no composite.
        let partial = [part(b"one"), [(crc32, checksum_of(crc32, b"two").unwrap())].into()];
        assert_eq!(composite(&partial).keys().collect::<Vec<_>>(), [&crc32]);
        assert!(composite(&[]).is_empty());
    }

    #[test]
    fn digests_are_checked_against_headers() {
        let body = b"hello world";
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(body));
        let headers = http::HeaderMap::new();
        // CRC32 of "hello world", base64 of big-endian 0x0d4a1185.
        let mut declared = Checksum { checksum_crc32: Some("DUoRhQ==".into()), ..Default::default() };
        let ok = Expected::new(Some(md5.clone()), declared.clone(), None, &headers, None).unwrap();
        let mut d = ok.digests(false);
        d.update(&body[..5]);
        d.update(&body[5..]);
        let computed = d.finish();
        assert_eq!(computed.checksum.checksum_crc32.as_deref(), Some("DUoRhQ=="));
        assert!(ok.verify(&computed).is_ok());

        let mut other = ok.digests(false);
        other.update(b"hello World");
        let err = ok.verify(&other.finish()).unwrap_err();
        assert_eq!(err.code().as_str(), "BadDigest");

        declared.checksum_crc32 = Some("AAAAAA==".into());
        let wrong = Expected::new(None, declared, None, &headers, None).unwrap();
        let err = wrong.verify(&computed).unwrap_err();
        assert_eq!(err.code().as_str(), "BadDigest");

        for malformed in
            ["", "  ", "not base64!", "AAAA", &base64::engine::general_purpose::STANDARD.encode([0u8; 17])]
        {
            let e = Expected::new(Some(malformed.to_owned()), Checksum::default(), None, &headers, None);
            assert_eq!(
                e.err().map(|e| e.code().as_str().to_owned()).as_deref(),
                Some("InvalidDigest"),
                "{malformed:?}"
            );
        }
        let mut empty = http::HeaderMap::new();
        empty.insert("content-md5", http::HeaderValue::from_static(""));
        let e = Expected::new(None, Checksum::default(), None, &empty, None);
        assert_eq!(e.err().map(|e| e.code().as_str().to_owned()).as_deref(), Some("InvalidDigest"));
    }
}
