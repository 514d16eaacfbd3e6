//! Records as cipherstore wrote them before the typed record (FORMAT.md §6.4, "version 1
//! records"): metadata JSON whose protection, salt, part manifest and tag were strings in
//! an `attributes` map. Stores written then are read as they are; nothing is rewritten.
//! Their metadata tag covers this JSON re-serialised without the `meta-tag` attribute,
//! which is exactly what the old writer tagged, so their tags still check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{Headers, Layout, ObjectRecord, PartEntry, Protection, Salt};

/// Attribute naming the protection mode.
const PROTECTION: &str = "protection";
/// Attribute holding an SSE-C object's key MD5 (base64).
const KEY_MD5: &str = "sse-c-key-md5";
/// Attribute holding an SSE-KP object's root key CRN (also a bucket attribute).
pub(super) const ROOT: &str = "sse-kp-root";
/// Attribute holding a single object's header salt (hex).
const SALT: &str = "salt";
/// Attribute holding a multipart object's manifest.
const PARTS: &str = "parts";
/// Attribute holding the metadata tag (hex).
const TAG: &str = "meta-tag";

/// A version 1 object record, field for field (the order matters: the tag covers its JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ObjectMetaV1 {
    key: String,
    size: u64,
    etag: String,
    last_modified: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(default)]
    user: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) attributes: BTreeMap<String, String>,
}

/// Why a version 1 record cannot be read.
pub(super) type Damage = &'static str;

impl ObjectMetaV1 {
    /// The typed record this describes.
    pub(super) fn record(&self) -> Result<ObjectRecord, Damage> {
        let attr = |name: &str| self.attributes.get(name);
        let protection = match (attr(PROTECTION).map(String::as_str), attr(KEY_MD5), attr(ROOT)) {
            (Some("sse-c") | None, Some(md5), None) => Protection::SseC { key_md5: md5.clone() },
            (Some("sse-kp") | None, None, Some(root)) => {
                Protection::SseKp { root: root.clone(), sse_s3: false }
            }
            (Some("aont") | None, None, None) => Protection::Aont,
            (Some("plaintext"), None, None) => Protection::Plaintext,
            _ => return Err("its protection attributes disagree"),
        };
        let layout = match attr(PARTS) {
            Some(manifest) => Layout::Parts(parse_manifest(manifest)?),
            None => Layout::Single { salt: attr(SALT).map(|s| parse_salt(s)).transpose()? },
        };
        Ok(ObjectRecord {
            headers: Headers { content_type: self.content_type.clone(), ..Headers::default() },
            user: self.user.clone(),
            ..ObjectRecord::new(
                self.key.clone(),
                self.size,
                self.etag.clone().into(),
                self.last_modified,
                protection,
                layout,
            )
        })
    }

    /// The bytes its tag covers, and the tag (absent if the record has none).
    pub(super) fn tagged(mut self) -> Result<(Vec<u8>, Option<Vec<u8>>), Damage> {
        let tag =
            self.attributes.remove(TAG).map(|t| base::hex::decode(&t).ok_or("malformed tag")).transpose()?;
        let canonical = serde_json::to_vec(&self).map_err(|_| "cannot re-serialise")?;
        Ok((canonical, tag))
    }
}

fn parse_salt(text: &str) -> Result<Salt, Damage> {
    base::hex::decode_array(text).ok_or("malformed salt")
}

/// Parses a version 1 part manifest: `number:size:stored[:salt]` entries joined by commas.
pub(super) fn parse_manifest(text: &str) -> Result<Vec<PartEntry>, Damage> {
    let bad = "malformed part manifest";
    let mut out = Vec::new();
    for entry in text.split(',') {
        let mut fields = entry.split(':');
        let mut number = || fields.next().map(str::parse::<u64>);
        let (Some(Ok(number)), Some(Ok(size)), Some(Ok(stored))) = (number(), number(), number()) else {
            return Err(bad);
        };
        let salt = fields.next().map(parse_salt).transpose()?;
        if fields.next().is_some() {
            return Err(bad);
        }
        let number = u32::try_from(number).map_err(|_| bad)?;
        out.push(PartEntry { number, size, stored, salt });
    }
    Ok(out)
}

/// A version 1 multipart upload (`upload.json`).
#[derive(Debug, Deserialize)]
pub(super) struct UploadMetaV1 {
    pub(super) upload_id: String,
    pub(super) initiated: u64,
    pub(super) object: ObjectMetaV1,
}

/// Bucket attribute: how the bucket got its root key.
pub(super) const BUCKET_ORIGIN: &str = "sse-kp-origin";
/// Bucket attribute: `false` once DeleteBucketEncryption turned the default off.
pub(super) const BUCKET_DEFAULT: &str = "sse-kp-default";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_and_damage_is_refused() {
        let salt = "0f".repeat(16);
        let got = parse_manifest(&format!("1:10:70:{salt},3:5:60")).unwrap();
        assert_eq!(
            got,
            vec![
                PartEntry { number: 1, size: 10, stored: 70, salt: Some([0x0f; 16]) },
                PartEntry { number: 3, size: 5, stored: 60, salt: None }
            ]
        );
        let long = format!("1:15:70:{salt}:1");
        for bad in ["", "1:10", "1:10:70:1", "x:1:1", "99999999999:15:1", &long] {
            assert!(parse_manifest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn protection_attributes_must_agree() {
        let with = |attrs: &[(&str, &str)]| ObjectMetaV1 {
            key: "k".into(),
            attributes: attrs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            ..Default::default()
        };
        assert_eq!(with(&[]).record().unwrap().protection, Protection::Aont);
        assert_eq!(
            with(&[(PROTECTION, "sse-c"), (KEY_MD5, "m")]).record().unwrap().protection,
            Protection::SseC { key_md5: "m".into() }
        );
        assert_eq!(
            with(&[(PROTECTION, "sse-kp"), (ROOT, "crn")]).record().unwrap().protection,
            Protection::SseKp { root: "crn".into(), sse_s3: false }
        );
        assert!(with(&[(PROTECTION, "aont"), (KEY_MD5, "m")]).record().is_err());
        assert!(with(&[(PROTECTION, "sse-c")]).record().is_err());
        assert!(with(&[(KEY_MD5, "m"), (ROOT, "crn")]).record().is_err());
        assert!(with(&[(SALT, "0707")]).record().is_err());
    }
}
