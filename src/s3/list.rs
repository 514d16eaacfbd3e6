//! ListObjectsV2: prefix, delimiter (common prefixes), max-keys, continuation tokens and
//! start-after, built on the store's ordered listing.

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{CipherS3, error};
use crate::store::keypath::{hex, unhex};

/// Objects fetched from the store per round.
const PAGE: usize = 1000;

/// One listing entry: an object, or a common prefix standing for many.
enum Entry {
    Object(crate::store::ObjectMeta),
    Prefix(String),
}

pub(super) async fn list_objects_v2(
    s: &CipherS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let caller = CipherS3::caller(&req)?;
    let input = req.input;
    s.owned_bucket(&input.bucket, &caller)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
    // The token is the hex of the last key or common prefix returned.
    let token = match &input.continuation_token {
        Some(t) => Some(
            unhex(t)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))?,
        ),
        None => None,
    };
    let mut cursor = token.clone().or_else(|| input.start_after.clone());
    // Resuming after a common prefix skips every key under it.
    let mut skip_prefix = token.filter(|t| delimiter.as_ref().is_some_and(|d| t.ends_with(d.as_str())));
    let mut entries: Vec<Entry> = Vec::new();
    let mut truncated = false;
    'outer: loop {
        let page = s.store.list(&input.bucket, &prefix, cursor.as_deref(), PAGE).map_err(error::store)?;
        let exhausted = page.len() < PAGE;
        for meta in page {
            cursor = Some(meta.key.clone());
            if let Some(p) = &skip_prefix {
                if meta.key.starts_with(p.as_str()) {
                    continue;
                }
                skip_prefix = None;
            }
            let common = delimiter.as_ref().and_then(|d| {
                meta.key[prefix.len()..]
                    .find(d.as_str())
                    .map(|i| meta.key[..prefix.len() + i + d.len()].to_owned())
            });
            if entries.len() == max {
                truncated = true;
                break 'outer;
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
            break;
        }
    }
    let next = truncated
        .then(|| {
            entries.last().map(|e| {
                hex(match e {
                    Entry::Object(m) => m.key.as_bytes(),
                    Entry::Prefix(p) => p.as_bytes(),
                })
            })
        })
        .flatten();
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
