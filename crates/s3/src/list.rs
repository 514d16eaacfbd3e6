//! ListObjects (v1, markers) and ListObjectsV2 (continuation tokens, start-after): prefix,
//! delimiter (common prefixes), max-keys (0 answers an empty, complete page, as AWS does),
//! `encoding-type=url` and owners, built on the store's ordered listing. The parameters
//! and names are shared with ListObjectVersions ([`super::list_versions`]).

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::access::Owned;
use super::service::CipherS3;
use super::{error, headers};
use base::hex::{decode_lower as unhex, encode as hex};

/// Objects fetched from the store per round.
const PAGE: usize = 1000;

/// One listing entry: an object, or a common prefix standing for many.
enum Entry {
    Object(object::objects::Listed),
    Prefix(String),
}

/// Entries after `cursor` (skipping keys under `skip_prefix`), folded by `delimiter`, at
/// most `max`; and whether more follow (never for `max` 0).
async fn collect(
    s: &CipherS3,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    mut cursor: Option<String>,
    mut skip_prefix: Option<String>,
    max: usize,
) -> S3Result<(Vec<Entry>, bool)> {
    let mut entries: Vec<Entry> = Vec::new();
    if max == 0 {
        return Ok((entries, false));
    }
    loop {
        let page = s
            .objects
            .list(bucket, object::Page::new(prefix, cursor.as_deref(), PAGE))
            .await
            .map_err(error::object)?;
        let exhausted = page.len() < PAGE;
        for meta in page {
            cursor = Some(meta.key.clone());
            if let Some(p) = &skip_prefix {
                if meta.key.starts_with(p.as_str()) {
                    continue;
                }
                skip_prefix = None;
            }
            let common = delimiter.and_then(|d| {
                meta.key[prefix.len()..].find(d).map(|i| meta.key[..prefix.len() + i + d.len()].to_owned())
            });
            if entries.len() == max {
                return Ok((entries, true));
            }
            match common {
                Some(cp) => {
                    skip_prefix = Some(cp.clone());
                    entries.push(Entry::Prefix(cp));
                }
                None => entries.push(Entry::Object(meta)),
            }
        }
        if exhausted {
            return Ok((entries, false));
        }
    }
}

/// The last key or prefix of a page.
fn last_name(entries: &[Entry]) -> Option<&str> {
    entries.last().map(|e| match e {
        Entry::Object(m) => m.key.as_str(),
        Entry::Prefix(p) => p.as_str(),
    })
}

/// How names are written in a listing: as they are, or URL-encoded (`encoding-type=url`:
/// every byte but unreserved characters and `/` as `%XX`, which both `unquote` and
/// `unquote_plus` read back).
#[derive(Clone, Copy)]
pub(super) struct Names {
    url: bool,
}

impl Names {
    pub(super) fn new(encoding_type: Option<&EncodingType>) -> S3Result<Self> {
        match encoding_type.map(EncodingType::as_str) {
            None => Ok(Self { url: false }),
            Some(e) if e.eq_ignore_ascii_case(EncodingType::URL) => Ok(Self { url: true }),
            Some(e) => {
                Err(s3_error!(InvalidArgument, "invalid encoding-type {e:?}: the only one is \"url\""))
            }
        }
    }

    pub(super) fn write(self, name: String) -> String {
        if !self.url {
            return name;
        }
        let mut out = String::with_capacity(name.len());
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    pub(super) fn write_opt(self, name: Option<String>) -> Option<String> {
        name.map(|n| self.write(n))
    }

    /// The `EncodingType` a response echoes.
    pub(super) fn echo(self) -> Option<EncodingType> {
        self.url.then(|| EncodingType::from_static(EncodingType::URL))
    }
}

/// The owner listings name: the bucket's, with the display name its user has.
pub(super) fn owner(s: &CipherS3, id: &str) -> Owner {
    Owner { display_name: Some(s.display_name(id)), id: Some(id.to_owned()) }
}

pub(super) fn timestamp(secs: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Splits entries into S3 objects and common prefixes, naming `owner` on each object.
fn split(entries: Vec<Entry>, names: Names, owner: Option<&Owner>) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for e in entries {
        match e {
            Entry::Object(m) => contents.push(Object {
                key: Some(names.write(m.key)),
                size: Some(m.size as i64),
                e_tag: headers::e_tag(&m.etag),
                last_modified: Some(timestamp(m.last_modified)),
                storage_class: Some(ObjectStorageClass::from(
                    m.storage_class.unwrap_or_else(|| ObjectStorageClass::STANDARD.to_owned()),
                )),
                owner: owner.cloned(),
                ..Default::default()
            }),
            Entry::Prefix(p) => prefixes.push(CommonPrefix { prefix: Some(names.write(p)) }),
        }
    }
    (contents, prefixes)
}

/// The request parameters both listing versions share, normalised.
pub(super) struct Query {
    pub(super) prefix: String,
    pub(super) delimiter: Option<String>,
    pub(super) max: usize,
}

impl Query {
    pub(super) fn new(prefix: &Option<String>, delimiter: &Option<String>, max_keys: Option<i32>) -> Self {
        Self {
            prefix: prefix.clone().unwrap_or_default(),
            delimiter: delimiter.clone().filter(|d| !d.is_empty()),
            max: max_keys.unwrap_or(1000).clamp(0, 1000) as usize,
        }
    }
}

/// Resuming after a common prefix skips every key under it.
pub(super) fn skip_after(token: Option<&String>, delimiter: Option<&str>) -> Option<String> {
    token.filter(|t| delimiter.is_some_and(|d| t.ends_with(d))).cloned()
}

pub(super) async fn list_objects(
    s: &CipherS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let Owned { input, bucket, .. } = s.owned(req).await?;
    let names = Names::new(input.encoding_type.as_ref())?;
    let Query { prefix, delimiter, max } = Query::new(&input.prefix, &input.delimiter, input.max_keys);
    let marker = input.marker.clone().filter(|m| !m.is_empty());
    let skip = skip_after(marker.as_ref(), delimiter.as_deref());
    let (entries, truncated) =
        collect(s, &input.bucket, &prefix, delimiter.as_deref(), marker, skip, max).await?;
    // NextMarker whenever truncated (AWS sends it only with a delimiter; clients take it
    // when present, else the last key, which is the same name).
    let next_marker = truncated.then(|| last_name(&entries).map(str::to_owned)).flatten();
    let (contents, prefixes) = split(entries, names, Some(&owner(s, &bucket.owner)));
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(names.write(prefix)),
        marker: Some(names.write(input.marker.unwrap_or_default())),
        delimiter: names.write_opt(delimiter),
        max_keys: Some(max as i32),
        is_truncated: Some(truncated),
        next_marker: names.write_opt(next_marker),
        contents: Some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: names.echo(),
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    s: &CipherS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let Owned { input, bucket, .. } = s.owned(req).await?;
    let names = Names::new(input.encoding_type.as_ref())?;
    let Query { prefix, delimiter, max } = Query::new(&input.prefix, &input.delimiter, input.max_keys);
    // The token is the hex of the last key or common prefix returned.
    let token = match &input.continuation_token {
        Some(t) => Some(
            unhex(t)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))?,
        ),
        None => None,
    };
    let skip = skip_after(token.as_ref(), delimiter.as_deref());
    let cursor = token.or_else(|| input.start_after.clone());
    let (entries, truncated) =
        collect(s, &input.bucket, &prefix, delimiter.as_deref(), cursor, skip, max).await?;
    let next = truncated.then(|| last_name(&entries).map(|n| hex(n.as_bytes()))).flatten();
    let owner = input.fetch_owner.unwrap_or(false).then(|| owner(s, &bucket.owner));
    let (contents, prefixes) = split(entries, names, owner.as_ref());
    let key_count = (contents.len() + prefixes.len()) as i32;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(names.write(prefix)),
        delimiter: names.write_opt(delimiter),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        is_truncated: Some(truncated),
        continuation_token: input.continuation_token,
        next_continuation_token: next,
        start_after: names.write_opt(input.start_after),
        contents: Some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: names.echo(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_reads_back_with_unquote_and_unquote_plus() {
        let names = Names::new(Some(&EncodingType::from_static(EncodingType::URL))).unwrap();
        assert_eq!(names.write("a b/c+d%é\u{1}".to_owned()), "a%20b/c%2Bd%25%C3%A9%01");
        assert_eq!(names.write("Az09-_.~/".to_owned()), "Az09-_.~/");
        let plain = Names::new(None).unwrap();
        assert_eq!(plain.write("a b".to_owned()), "a b");
        assert!(Names::new(Some(&EncodingType::from("base64".to_owned()))).is_err());
    }
}
