//! ListObjectVersions: every version and delete marker of the keys under a prefix, keys
//! in byte order and each key's versions newest first, with delimiter (common prefixes),
//! key-marker and version-id-marker (resuming after that key, or after that version of
//! it), max-keys (each version, marker or common prefix counts one) and
//! `encoding-type=url`. A bucket that never kept versions lists each object as its one
//! version, `null`.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::access::Owned;
use super::list::{Names, Query, owner, skip_after, timestamp};
use super::service::CipherS3;
use super::{error, headers};
use object::versions::ListedVersion;

/// Versions fetched from the store per round.
const PAGE: usize = 1000;

/// One entry of the answer.
enum Entry {
    Version(ListedVersion),
    Prefix(String),
}

/// The entries after (`key_marker`, `version_marker`), folded by `delimiter`, at most
/// `max`; and whether more follow.
async fn collect(
    s: &CipherS3,
    bucket: &str,
    q: &Query,
    key_marker: Option<String>,
    version_marker: Option<String>,
) -> S3Result<(Vec<Entry>, bool)> {
    let mut entries = Vec::new();
    if q.max == 0 {
        return Ok((entries, false));
    }
    let mut skip_prefix = skip_after(key_marker.as_ref(), q.delimiter.as_deref());
    let (mut key, mut version) = (key_marker, version_marker);
    loop {
        let page = s
            .objects
            .list_versions(bucket, &q.prefix, key.as_deref(), version.as_deref(), PAGE)
            .await
            .map_err(error::object)?;
        let exhausted = page.len() < PAGE;
        for v in page {
            key = Some(v.key.clone());
            version = Some(v.version_id.clone());
            if let Some(p) = &skip_prefix {
                if v.key.starts_with(p.as_str()) {
                    continue;
                }
                skip_prefix = None;
            }
            if entries.len() == q.max {
                return Ok((entries, true));
            }
            let common = q.delimiter.as_deref().and_then(|d| {
                v.key[q.prefix.len()..].find(d).map(|i| v.key[..q.prefix.len() + i + d.len()].to_owned())
            });
            match common {
                Some(cp) => {
                    skip_prefix = Some(cp.clone());
                    entries.push(Entry::Prefix(cp));
                }
                None => entries.push(Entry::Version(v)),
            }
        }
        if exhausted {
            return Ok((entries, false));
        }
    }
}

pub(super) async fn list_object_versions(
    s: &CipherS3,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let Owned { input, bucket, .. } = s.owned(req).await?;
    let names = Names::new(input.encoding_type.as_ref())?;
    let query = Query::new(&input.prefix, &input.delimiter, input.max_keys);
    let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
    let version_marker = input.version_id_marker.clone().filter(|v| !v.is_empty());
    if version_marker.is_some() && key_marker.is_none() {
        return Err(s3_error!(InvalidArgument, "a version-id-marker needs a key-marker"));
    }
    let (entries, truncated) = collect(s, &input.bucket, &query, key_marker, version_marker).await?;
    let (next_key, next_version) = match entries.last().filter(|_| truncated) {
        Some(Entry::Version(v)) => (Some(v.key.clone()), Some(v.version_id.clone())),
        Some(Entry::Prefix(p)) => (Some(p.clone()), None),
        None => (None, None),
    };
    let owner = owner(s, &bucket.owner);
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut prefixes = Vec::new();
    for e in entries {
        match e {
            Entry::Version(v) if v.marker => markers.push(DeleteMarkerEntry {
                key: Some(names.write(v.key)),
                version_id: Some(v.version_id),
                is_latest: Some(v.latest),
                last_modified: Some(timestamp(v.last_modified)),
                owner: Some(owner.clone()),
            }),
            Entry::Version(v) => versions.push(ObjectVersion {
                key: Some(names.write(v.key)),
                version_id: Some(v.version_id),
                is_latest: Some(v.latest),
                size: Some(v.size as i64),
                e_tag: headers::e_tag(&v.etag),
                last_modified: Some(timestamp(v.last_modified)),
                storage_class: Some(ObjectVersionStorageClass::from(
                    v.storage_class.unwrap_or_else(|| ObjectVersionStorageClass::STANDARD.to_owned()),
                )),
                owner: Some(owner.clone()),
                ..Default::default()
            }),
            Entry::Prefix(p) => prefixes.push(CommonPrefix { prefix: Some(names.write(p)) }),
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(names.write(query.prefix)),
        delimiter: names.write_opt(query.delimiter),
        key_marker: Some(names.write(input.key_marker.unwrap_or_default())),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(query.max as i32),
        is_truncated: Some(truncated),
        next_version_id_marker: next_version,
        next_key_marker: names.write_opt(next_key),
        versions: (!versions.is_empty()).then_some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: names.echo(),
        ..Default::default()
    }))
}
