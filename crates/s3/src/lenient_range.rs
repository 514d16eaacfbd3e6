//! Range headers AWS ignores. A `Range` that does not parse as one byte range
//! (`bytes=3-2`, `bytes=a-b`, several ranges `bytes=0-1,5-6`, another unit) on a GET or
//! HEAD of an object is answered with the whole object (200), as AWS S3 does and RFC 9110
//! §14.2 asks, where `s3s` refuses it (400) while parsing the request. The header is
//! usually signed, so it cannot be dropped before the signature check: [`LenientRange`]
//! is an `s3s` route, consulted after the check, that serves such a request again through
//! an inner service without the header and without authentication of its own, the
//! caller's identity carried across as [`Forwarded`], which no client can set.

use http::header::{AUTHORIZATION, RANGE};
use http::{HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::service::S3Service;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

/// The access key the outer service authenticated (`None`: an anonymous request), for a
/// request it forwards.
#[derive(Debug, Clone)]
pub struct Forwarded(pub Option<String>);

/// The route; `inner` is a service over the same [`super::CipherS3`] built without
/// authentication, reachable only from here.
pub struct LenientRange {
    inner: S3Service,
}

impl LenientRange {
    /// A route forwarding to `inner`.
    pub fn new(inner: S3Service) -> Self {
        Self { inner }
    }
}

/// Query parameters of a presigned URL (SigV4, and SigV2's three), which the forwarded
/// request must not carry (the inner service does not check signatures, and a signature
/// would not fit any more).
const PRESIGN_PARAMS: [&str; 10] = [
    "awsaccesskeyid",
    "signature",
    "expires",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
    "x-amz-security-token",
];

/// Whether a Range header is one AWS ignores: anything but a single byte range.
fn ignored(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(RANGE).iter();
    match (values.next(), values.next()) {
        (None, _) => false,
        (Some(v), None) => v.to_str().map_or(true, |s| s3s::dto::Range::parse(s.trim()).is_err()),
        (Some(_), Some(_)) => true,
    }
}

/// Whether `uri` names an object (path style: `/bucket/key…`, the key not empty).
fn names_object(uri: &Uri) -> bool {
    uri.path()
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
}

/// `uri` without the parameters of a presigned URL.
fn without_presign(uri: &Uri) -> S3Result<Uri> {
    let Some(query) = uri.query() else { return Ok(uri.clone()) };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            let name = p.split_once('=').map_or(*p, |(n, _)| n);
            !PRESIGN_PARAMS.iter().any(|x| name.eq_ignore_ascii_case(x))
        })
        .collect();
    let path_and_query =
        if kept.is_empty() { uri.path().to_owned() } else { format!("{}?{}", uri.path(), kept.join("&")) };
    path_and_query.parse().map_err(|_| s3_error!(InvalidURI, "the request URI cannot be forwarded"))
}

#[async_trait::async_trait]
impl S3Route for LenientRange {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, _: &mut http::Extensions) -> bool {
        (method == Method::GET || method == Method::HEAD) && names_object(uri) && ignored(headers)
    }

    async fn check_access(&self, _req: &mut S3Request<Body>) -> S3Result<()> {
        // Anonymous requests too: the bucket's policy decides them, as every request.
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let caller = req.credentials.map(|c| c.access_key);
        let origin = req.extensions.get::<super::access::Origin>().copied();
        let mut headers = req.headers;
        for name in [RANGE, AUTHORIZATION] {
            headers.remove(name);
        }
        let mut forwarded = http::Request::new(req.input);
        *forwarded.method_mut() = req.method;
        *forwarded.uri_mut() = without_presign(&req.uri)?;
        *forwarded.headers_mut() = headers;
        forwarded.extensions_mut().insert(Forwarded(caller));
        if let Some(o) = origin {
            forwarded.extensions_mut().insert(o);
        }
        let response = self
            .inner
            .call(forwarded)
            .await
            .map_err(|e| s3_error!(InternalError, "a forwarded request failed: {e:?}"))?;
        let (parts, body) = response.into_parts();
        let mut out = S3Response::new(body);
        out.status = Some(parts.status);
        out.headers = parts.headers;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unparsable_or_several_ranges_are_ignored() {
        let with = |v: &[&str]| {
            let mut h = HeaderMap::new();
            for x in v {
                h.append(RANGE, x.parse().unwrap());
            }
            ignored(&h)
        };
        for kept in ["bytes=0-9", "bytes=5-", "bytes=-3", "bytes=100-200"] {
            assert!(!with(&[kept]), "{kept}");
        }
        for bad in ["bytes=3-2", "bytes=0-1,5-6", "bytes=a-b", "items=0-1", "bytes="] {
            assert!(with(&[bad]), "{bad}");
        }
        assert!(with(&["bytes=0-1", "bytes=2-3"]), "two Range headers");
        assert!(!with(&[]));
        assert!(names_object(&"/b/k".parse().unwrap()) && names_object(&"/b/dir/k?x=1".parse().unwrap()));
        assert!(!names_object(&"/b".parse().unwrap()) && !names_object(&"/b/".parse().unwrap()));
        let uri: Uri = "/b/k?X-Amz-Signature=s&response-content-type=x%2Fy&X-Amz-Credential=c&Signature=v2&AWSAccessKeyId=a&Expires=1"
            .parse()
            .unwrap();
        assert_eq!(without_presign(&uri).unwrap(), "/b/k?response-content-type=x%2Fy");
        assert_eq!(without_presign(&"/b/k?X-Amz-Date=1".parse().unwrap()).unwrap(), "/b/k");
    }
}
