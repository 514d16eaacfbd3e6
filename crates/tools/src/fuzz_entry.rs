//! Entry points that fuzzing (`fuzz/`, `scripts/fuzz`) and its regression tests
//! (`tests/fuzz_regressions.rs`) feed arbitrary bytes to: the format header parser, the
//! segment and chunk decoders (streamed and by range, with and without a key), the SSE-C
//! header rules, stored records (object records of both versions with their tags, bucket,
//! upload and part records, the key state and its wrapped keys' framing), the aws-chunked framing
//! follower, kept identities and users files ([`identities`]), key service requests
//! ([`kms_request`]), and aws-chunked request bodies and lifecycle configurations through the whole
//! S3 service ([`aws_chunked`], [`lifecycle_config`]).
//! Each returns for any input; a panic is a bug.

mod aws_chunked;

pub use aws_chunked::{aws_chunked, cleanup as aws_chunked_cleanup, lifecycle_config};

use bytes::Bytes;

use engine::format::Header;
use engine::{Backend, CustomerKey, Opener, SecretKey};
use object::{BucketRecord, PartRecord, UploadRecord, codec};
use pipeline::{random, stream};
use s3::chunk_framing::Framing;
use s3::parse_sse_c;

/// The key the decoders are tried with besides none.
fn key() -> CustomerKey {
    CustomerKey { key: SecretKey::from_bytes([0x42; 32]), context: b"bucket/key".to_vec() }
}

/// The header parser and the unit layout it implies.
pub fn format_header(data: &[u8]) {
    let _ = Header::total_len(data);
    if let Ok((header, len)) = Header::parse(data) {
        let _ = (header.unit_size, len);
        for key in [None, Some(key())] {
            if let Ok(opener) = Opener::new(data, key.as_ref(), Backend::Accelerated) {
                for stored in [0, len as u64, data.len() as u64, u64::MAX / 2] {
                    if let Ok(layout) = opener.layout(stored) {
                        let _ = layout.units_for_range(0, u64::MAX / 4);
                    }
                }
            }
        }
    }
}

/// Whole objects through the streaming decoder and the by-range decoder.
pub fn decrypt(data: &[u8]) {
    for key in [None, Some(key())] {
        let mut out = Vec::new();
        let _ = stream::decrypt_stream(data, &mut out, key.as_ref(), Backend::Accelerated, &());
        let Ok(total) = Header::total_len(data) else { continue };
        let Some(header) = data.get(..total) else { continue };
        let Ok(opener) = Opener::with_part(header, key.as_ref(), 0, Backend::Accelerated) else { continue };
        let Ok(layout) = opener.layout(data.len() as u64) else { continue };
        let read_at = |buf: &mut [u8], off: u64| -> std::io::Result<usize> {
            let start = usize::try_from(off).unwrap_or(usize::MAX).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        };
        // A window as a store maps it: exactly the bytes asked for, or an error.
        let map = |off: u64, n: usize| -> std::io::Result<random::Window> {
            let start = usize::try_from(off).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
            let bytes = data.get(start..start.saturating_add(n)).ok_or(std::io::ErrorKind::UnexpectedEof)?;
            Ok(Box::new(bytes.to_vec()))
        };
        let len = layout.plaintext_len();
        let mut sink = |_: Bytes| Ok(());
        for source in [random::Stored::ReadAt(&read_at), random::Stored::Mapped(&map)] {
            let _ = random::decrypt_range(source, &opener, &layout, 0, len, &mut sink);
            let _ = random::decrypt_range(source, &opener, &layout, len / 3, len / 2 + 1, &mut sink);
        }
    }
}

/// SSE-C request headers (algorithm, key, key MD5), split from `data` at 0xff bytes.
pub fn sse_headers(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0xff).map(|p| String::from_utf8_lossy(p).into_owned());
    let fields: [Option<String>; 3] = [parts.next(), parts.next(), parts.next()];
    let _ = parse_sse_c([&fields[0], &fields[1], &fields[2]], "bucket", "key");
}

/// Identities as kept (a directory's JSON, indexed with and without a seal, its keys
/// looked up) and the same bytes as a users file, imported.
pub fn identities(data: &[u8]) {
    let seal = iam::Seal::new(&SecretKey::from_bytes([0x42; 32]), "fuzz", Backend::Accelerated).ok();
    if let Ok(directory) = iam::Directory::parse(data, "fuzz") {
        for seal in [None, seal.as_ref()] {
            let (snapshot, _) = iam::Snapshot::build(&directory, seal);
            for ak in directory.credentials.keys() {
                let _ = snapshot.secret(ak, 1);
                let _ = snapshot.principal(ak, u64::MAX).map(|p| p.may(iam::Action::Write, "b", "o"));
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(users) = iam::users::parse(&text, std::path::Path::new("fuzz")) {
        let mut directory = iam::Directory::default();
        let _ = iam::users::import(&mut directory, &users, seal.as_ref(), 1);
    }
}

/// An admin HTTP API request: the first line `METHOD PATH`, the rest its body; parsed into
/// a call (or refused with a status and a JSON body that names the fault).
pub fn admin_request(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let line = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let (method, path) = line.split_once(' ').unwrap_or((&line, ""));
    if let Err(e) = iam::admin_api::parse(method, path, body) {
        assert!((400..600).contains(&e.status), "a refusal is an HTTP error status");
        let _ = e.body();
    }
}

/// Key service requests: the first line is `METHOD PATH[?QUERY]`, the rest the body,
/// read as every route's body (key to create, DEK action, rotation, token form), as a DEK
/// ciphertext and as a bearer token. Refusals are HTTP error statuses.
pub fn kms_request(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let line = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let (method, target) = line.split_once(' ').unwrap_or((&line, ""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match kms::route::query(query) {
        Ok(q) => {
            if let Err(e) = kms::route::route(method, path, &q) {
                assert!((400..500).contains(&e.status), "a refused route is a client error");
                let _ = e.body();
            }
            if let Some(c) = &q.crn_query {
                let _ = kms::route::crn_matches(c, path);
            }
        }
        Err(e) => assert_eq!(e.status, 400, "a bad query is a 400"),
    }
    for refusal in [
        kms::body::new_key(body, false).err(),
        kms::body::new_key(body, true).err(),
        kms::body::key_policies(body, None).err(),
        kms::body::instance_policies(body, None).err(),
        kms::body::bucket_key(body).err(),
        kms::body::patch_key(body).err(),
        kms::body::import_token(body).err(),
        kms::body::dek(body).err(),
        kms::body::rotate(body).err(),
        kms::body::token_form(body).err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(refusal.status, 400, "a bad body is a 400: {}", refusal.message);
    }
    let text = String::from_utf8_lossy(body);
    if let Ok(bytes) = keys::dek::decode(&text) {
        let _ = keys::dek::parse(&bytes);
    }
    let _ = keys::dek::parse(body);
    let _ = iam::token::verify(&[7; 32], &text, 1_000);
}

/// ACL request headers: the first line is `x-amz-acl` (empty: none), each further line a
/// grant header `NAME: VALUE`; what they ask for is made under each object ownership,
/// with and without BlockPublicAcls, and the list made is asked about for every caller.
pub fn acl(data: &[u8]) {
    use iam::acl::{Asked, Ownership, Permission, Rules, make};
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let canned = lines.next().filter(|c| !c.is_empty());
    let grants: Vec<(&str, &str)> =
        lines.filter_map(|l| l.split_once(':')).map(|(h, v)| (h.trim(), v)).collect();
    let Ok(asked) = Asked::from_headers(canned, grants.iter().copied()) else { return };
    for ownership in
        [Ownership::BucketOwnerEnforced, Ownership::BucketOwnerPreferred, Ownership::ObjectWriter]
    {
        for block_public in [false, true] {
            let rules = Rules {
                owner: "w",
                bucket_owner: "b",
                ownership,
                block_public,
                email: &|e| e.contains('@').then(|| e.to_owned()),
                known: &|id| id.len() < 64,
            };
            let Ok(list) = make(asked.clone(), &rules) else { continue };
            let _ = list.is_public();
            for caller in [None, Some("w"), Some("b"), Some("x")] {
                for p in [Permission::Read, Permission::Write, Permission::ReadAcp, Permission::WriteAcp] {
                    let _ = list.allows(caller, p, block_public);
                }
            }
        }
    }
}

/// A bucket policy document (the body of PutBucketPolicy): checked, and if accepted,
/// evaluated for the owner, another user and an anonymous caller against requests whose
/// condition keys take values cut from the same bytes.
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(policy) = iam::policy::Policy::parse(&text, "b") else { return };
    let _ = policy.is_public();
    let user = |name: &str| iam::Principal {
        user: name.into(),
        canonical_id: format!("id-{name}"),
        display_name: name.into(),
        create_buckets: false,
        grants: Default::default(),
    };
    let (owner, other) = (user("owner"), user("alice"));
    let words: Vec<&str> =
        text.split(|c: char| c == '"' || c.is_whitespace()).filter(|w| !w.is_empty()).collect();
    let mut cx = iam::policy::Context::new();
    for (i, key) in [
        "aws:SourceIp",
        "aws:SecureTransport",
        "aws:CurrentTime",
        "s3:prefix",
        "s3:max-keys",
        "s3:x-amz-server-side-encryption",
        "s3:ExistingObjectTag/class",
        "s3:RequestObjectTagKeys",
    ]
    .iter()
    .enumerate()
    {
        if let Some(w) = words.get(i * 3 % words.len().max(1)) {
            cx.set(key, *w);
        }
    }
    for caller in [Some(&owner), Some(&other), None] {
        for (action, resource) in [
            ("s3:GetObject", "arn:aws:s3:::b/k/x"),
            ("s3:ListBucket", "arn:aws:s3:::b"),
            ("s3:PutObject", "arn:aws:s3:::b/"),
        ] {
            let request = iam::policy::Request { caller, action, resource, context: &cx };
            let _ = policy.evaluate(&request);
            let bucket = iam::BucketAccess {
                name: "b",
                owner: "id-owner",
                policy: Some(&policy),
                restrict_public: true,
                acl: None,
                ignore_public_acls: false,
            };
            let _ = iam::decide(&request, iam::Action::Read, &bucket);
        }
    }
}

/// Stored records as a store returns them: an object record (any version; its part
/// manifest, its tag and sealed metadata, with and without a key), a bucket, an upload
/// (and its sealed metadata) and a part record.
pub fn stored_record(data: &[u8]) {
    for key in [None, Some(key())] {
        if let Ok(record) = codec::open(data, "key") {
            let _ = record.unchecked().consistent();
            let _ = record.verify(key.as_ref());
        }
    }
    let _ = BucketRecord::decode(data);
    if let Ok(upload) = UploadRecord::decode(data) {
        for key in [None, Some(key())] {
            let _ = upload.metadata(key.as_ref());
        }
    }
    let _ = PartRecord::decode(data);
    if let Ok(state) = serde_json::from_slice::<keys::state::State>(data) {
        for b in &state.buckets {
            let _ = keys::wrapping::split_cbc(b.wrapped.as_bytes());
            let _ = keys::wrapping::split_gcm(b.wrapped.as_bytes());
        }
        for k in &state.keys {
            let _ = k.method_of(k.current());
        }
    }
    let _ = keys::wrapping::split_cbc(data);
    let _ = keys::wrapping::split_gcm(data);
}

/// An aws-chunked request body through the framing follower, whole and in pieces of the
/// first byte's size: the verdict must not depend on how the body arrives.
pub fn chunk_framing(data: &[u8]) {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let mut whole = Framing::default();
    whole.feed(body);
    let mut pieces = Framing::default();
    for piece in body.chunks(usize::from(split).max(1)) {
        pieces.feed(piece);
    }
    assert_eq!(whole, pieces, "the framing state depends on how the body was split");
    let _ = whole.finish();
}
