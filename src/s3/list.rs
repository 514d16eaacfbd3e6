//! ListObjects (v1, markers) and ListObjectsV2 (continuation tokens, start-after): prefix,
//! delimiter (common prefixes) and max-keys, built on the store's ordered listing.

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{CipherS3, error};
use crate::store::keypath::{hex, unhex};

/// Objects fetched from the store per round.
const PAGE: usize = 1000;

/// One listing entry: an object, or a common prefix standing for many.
enum Entry {
    Object(crate::object::objects::Listed),
    Prefix(String),
}

/// Entries after `cursor` (skipping keys under `skip_prefix`), folded by `delimiter`, at
/// most `max`; and whether more follow.
fn collect(
    s: &CipherS3,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    mut cursor: Option<String>,
    mut skip_prefix: Option<String>,
    max: usize,
) -> S3Result<(Vec<Entry>, bool)> {
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        let page = s.objects.list(bucket, prefix, cursor.as_deref(), PAGE).map_err(error::object)?;
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

/// Splits entries into S3 objects and common prefixes.
fn split(entries: Vec<Entry>) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for e in entries {
        match e {
            Entry::Object(m) => contents.push(Object {
                key: Some(m.key),
                size: Some(m.size as i64),
                e_tag: Some(ETag::Strong(m.etag)),
                last_modified: Some(Timestamp::from(UNIX_EPOCH + Duration::from_secs(m.last_modified))),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                ..Default::default()
            }),
            Entry::Prefix(p) => prefixes.push(CommonPrefix { prefix: Some(p) }),
        }
    }
    (contents, prefixes)
}

/// The request parameters both listing versions share, normalised.
struct Query {
    prefix: String,
    delimiter: Option<String>,
    max: usize,
}

impl Query {
    fn new(prefix: &Option<String>, delimiter: &Option<String>, max_keys: Option<i32>) -> Self {
        Self {
            prefix: prefix.clone().unwrap_or_default(),
            delimiter: delimiter.clone().filter(|d| !d.is_empty()),
            max: max_keys.unwrap_or(1000).clamp(0, 1000) as usize,
        }
    }
}

/// Resuming after a common prefix skips every key under it.
fn skip_after(token: Option<&String>, delimiter: Option<&str>) -> Option<String> {
    token.filter(|t| delimiter.is_some_and(|d| t.ends_with(d))).cloned()
}

pub(super) async fn list_objects(
    s: &CipherS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let caller = CipherS3::caller(&req)?;
    let input = req.input;
    s.owned_bucket(&input.bucket, &caller)?;
    let Query { prefix, delimiter, max } = Query::new(&input.prefix, &input.delimiter, input.max_keys);
    let marker = input.marker.clone().filter(|m| !m.is_empty());
    let skip = skip_after(marker.as_ref(), delimiter.as_deref());
    let (entries, truncated) =
        collect(s, &input.bucket, &prefix, delimiter.as_deref(), marker.clone(), skip, max)?;
    let next_marker = truncated.then(|| last_name(&entries).map(str::to_owned)).flatten();
    let (contents, prefixes) = split(entries);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(prefix),
        marker,
        delimiter,
        max_keys: Some(max as i32),
        is_truncated: Some(truncated),
        next_marker,
        contents: Some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    s: &CipherS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let caller = CipherS3::caller(&req)?;
    let input = req.input;
    s.owned_bucket(&input.bucket, &caller)?;
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
    let (entries, truncated) = collect(s, &input.bucket, &prefix, delimiter.as_deref(), cursor, skip, max)?;
    let next = truncated.then(|| last_name(&entries).map(|n| hex(n.as_bytes()))).flatten();
    let (contents, prefixes) = split(entries);
    let key_count = (contents.len() + prefixes.len()) as i32;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(prefix),
        delimiter,
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        is_truncated: Some(truncated),
        continuation_token: input.continuation_token,
        next_continuation_token: next,
        start_after: input.start_after,
        contents: Some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        ..Default::default()
    }))
}
