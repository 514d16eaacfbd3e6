//! AWS Signature Version 4 header signing, for the tools that act as S3 clients of the
//! server: the load generator (`examples/s3_load.rs`) and the aws-chunked fuzz target
//! ([`crate::fuzz_entry`]). The server itself only verifies signatures, through s3s.

use aws_lc_rs::{digest, hmac};

/// Who signs, and where.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Region in the credential scope.
    pub region: String,
    /// The `Host` header value.
    pub host: String,
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds, as `x-amz-date` wants it.
pub fn amz_date(unix: u64) -> String {
    base::clock::rfc3339(unix).replace(['-', ':'], "")
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

impl Signer {
    /// The headers to send for `method path` (no query string) at `date` (see
    /// [`amz_date`]) with `payload_hash` as `x-amz-content-sha256` and `extra` headers
    /// (lower-case names), every one signed; `host`, `x-amz-date` and `authorization`
    /// included.
    pub fn headers(
        &self,
        method: &str,
        path: &str,
        date: &str,
        payload_hash: &str,
        extra: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut headers = vec![
            ("host".to_owned(), self.host.clone()),
            ("x-amz-content-sha256".to_owned(), payload_hash.to_owned()),
            ("x-amz-date".to_owned(), date.to_owned()),
        ];
        headers.extend(extra.iter().cloned());
        headers.sort();
        let signed = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
        // A query (`/b?lifecycle`, `/b?a=1&b`): its parameters sorted, each with its `=`.
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut params: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| if p.contains('=') { p.to_owned() } else { format!("{p}=") })
            .collect();
        params.sort();
        let query = params.join("&");
        let canonical = format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}");
        let day = date.get(..8).unwrap_or(date);
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let hashed = base::hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
        let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{hashed}");
        let mut key = format!("AWS4{}", self.secret_key).into_bytes();
        for part in [day, self.region.as_str(), "s3", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        let signature = base::hex::encode(&hmac_sha256(&key, to_sign.as_bytes()));
        headers.push((
            "authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                self.access_key
            ),
        ));
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_aws_documentation_example() {
        // "GET Object" from the AWS SigV4 examples for S3 (header-based auth), with the
        // Range header left out: the signature below was computed for exactly these parts
        // by an independent implementation (botocore's algorithm, Python).
        let signer = Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
            host: "examplebucket.s3.amazonaws.com".into(),
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let headers = signer.headers("GET", "/test.txt", "20130524T000000Z", empty, &[]);
        let auth = &headers.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
        ));
        assert_eq!(auth.rsplit('=').next().unwrap(), SIGNATURE);
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
    }

    const SIGNATURE: &str = "df548e2ce037944d03f3e68682813b093763996d597cf890ca3d9037fd231eb4";
}
