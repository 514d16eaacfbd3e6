//! Full-object checksums of multipart uploads (`x-amz-checksum-type: FULL_OBJECT`): the
//! CRC32, CRC32C or CRC64NVME of the whole object, made from the parts' own CRCs and
//! lengths by CRC combination (`crc-fast`), with no byte read again. This is how S3 makes
//! them, and how a value a client sends to CompleteMultipartUpload is checked.

use base64::Engine as _;
use crc_fast::CrcAlgorithm;
use object::ChecksumAlgorithm;

/// The CRC algorithms that have full-object checksums.
pub(crate) const NAMES: [ChecksumAlgorithm; 3] =
    [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64nvme];

fn algorithm(name: ChecksumAlgorithm) -> Option<(CrcAlgorithm, usize)> {
    match name {
        ChecksumAlgorithm::Crc32 => Some((CrcAlgorithm::Crc32IsoHdlc, 4)),
        ChecksumAlgorithm::Crc32c => Some((CrcAlgorithm::Crc32Iscsi, 4)),
        ChecksumAlgorithm::Crc64nvme => Some((CrcAlgorithm::Crc64Nvme, 8)),
        _ => None,
    }
}

/// The CRC `name` of the parts laid end to end, from each part's CRC (base64, as S3
/// sends it) and plaintext length; `None` if `name` has no full-object form or a CRC is
/// malformed.
pub(crate) fn combine<'a>(
    name: ChecksumAlgorithm,
    parts: impl IntoIterator<Item = (&'a str, u64)>,
) -> Option<String> {
    let (algorithm, width) = algorithm(name)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut whole: Option<u64> = None;
    for (crc, len) in parts {
        let bytes = b64.decode(crc).ok().filter(|b| b.len() == width)?;
        let value = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        whole = Some(match whole {
            None => value,
            Some(before) => crc_fast::checksum_combine(algorithm, before, value, len),
        });
    }
    let value = whole?;
    Some(b64.encode(&value.to_be_bytes()[8 - width..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::checksum_of;

    #[test]
    fn combined_parts_give_the_whole_objects_crc() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for name in NAMES {
            let whole = checksum_of(name, &data).unwrap();
            for cuts in [vec![0, 100_000], vec![0, 1, 100_000], vec![0, 33_333, 66_000, 99_999, 100_000]] {
                let parts: Vec<(String, u64)> = cuts
                    .windows(2)
                    .map(|w| (checksum_of(name, &data[w[0]..w[1]]).unwrap(), (w[1] - w[0]) as u64))
                    .collect();
                let got = combine(name, parts.iter().map(|(c, l)| (c.as_str(), *l)));
                assert_eq!(got.as_deref(), Some(whole.as_str()), "{name} {cuts:?}");
            }
        }
        assert_eq!(combine(ChecksumAlgorithm::Sha256, [("AAAA", 1)]), None);
        assert_eq!(combine(ChecksumAlgorithm::Crc32, [("not base64!", 1)]), None);
        assert_eq!(combine(ChecksumAlgorithm::Crc32, []), None);
    }
}
