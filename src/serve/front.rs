//! The HTTP front of the service, before `s3s`: answers `GET /health` and `GET /metrics`
//! (unsigned requests only, so a bucket named `health` still works for its owner),
//! refuses SSE-C on plain HTTP (400, the key is never looked at), logs one structured line
//! per request (no headers, so no keys) and feeds the metrics.

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use s3s::service::S3Service;
use s3s::{Body, HttpError, HttpResponse, S3Error, S3ErrorCode};

use s3::chunk_framing::CheckedBody;

use super::metrics::Metrics;
use keys::KeySource;

/// One listener's view of the service.
#[derive(Clone)]
pub(crate) struct Front {
    /// The S3 service.
    pub s3: S3Service,
    /// Shared counters.
    pub metrics: Arc<Metrics>,
    /// The key manager, for its metrics and health.
    pub keys: Option<Arc<dyn KeySource>>,
    /// The admin HTTP API, when a token turns it on.
    pub admin: Option<Arc<super::admin::AdminApi>>,
    /// Whether this listener is plain HTTP.
    pub plain: bool,
    /// The client of this connection (bucket policies' `aws:SourceIp`).
    pub peer: Option<std::net::SocketAddr>,
}

fn signed(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(http::header::AUTHORIZATION)
        || req.uri().query().is_some_and(|q| q.contains("X-Amz-Signature") || q.contains("Signature="))
}

/// Whether a request carries SSE-C key material (object or copy source).
fn carries_sse_c(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| {
        let k = k.as_str();
        k.starts_with("x-amz-server-side-encryption-customer-")
            || k.starts_with("x-amz-copy-source-server-side-encryption-customer-")
    })
}

fn length(headers: &HeaderMap, name: &str) -> u64 {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Several `Content-Encoding` lines become one, their values joined by commas, as AWS
/// stores them (and as SigV4's canonical form already reads repeated headers).
fn join_content_encodings(headers: &mut HeaderMap) {
    let name = http::header::CONTENT_ENCODING;
    if headers.get_all(&name).iter().nth(1).is_none() {
        return;
    }
    let mut joined = Vec::new();
    for v in headers.get_all(&name) {
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(v.as_bytes().trim_ascii());
    }
    if let Ok(v) = http::HeaderValue::from_bytes(&joined) {
        headers.insert(name, v);
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> HttpResponse {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}

impl Front {
    async fn handle(self, mut req: Request<Incoming>) -> Result<HttpResponse, HttpError> {
        let start = Instant::now();
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(s3::access::Origin { ip: peer.ip(), secure: !self.plain });
        }
        join_content_encodings(req.headers_mut());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let bytes_in = match length(req.headers(), "x-amz-decoded-content-length") {
            0 => length(req.headers(), "content-length"),
            n => n,
        };
        let response = if let Some(admin) = self.admin.as_ref().filter(|_| path.starts_with("/_admin/")) {
            Ok(admin.handle(req, self.peer, self.plain).await)
        } else if method == Method::GET && path == "/health" && !signed(&req) {
            Ok(text(StatusCode::OK, "text/plain", "ok\n".to_owned()))
        } else if method == Method::GET && path == "/metrics" && !signed(&req) {
            let keys = self.keys.as_ref().map(|k| k.metrics());
            Ok(text(StatusCode::OK, "text/plain; version=0.0.4", self.metrics.render(keys)))
        } else if self.plain && carries_sse_c(req.headers()) {
            self.metrics.refused_plain_sse_c();
            let e = S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "SSE-C requests must be made over HTTPS: the customer key would travel in clear",
            );
            e.to_http_response().map_err(|e| HttpError::new(Box::new(e)))
        } else {
            let streaming = req
                .headers()
                .get("x-amz-content-sha256")
                .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
            if streaming {
                self.s3.call(req.map(|b| Body::http_body(CheckedBody::new(b)))).await
            } else {
                self.s3.call(req.map(Body::from)).await
            }
        };
        let elapsed = start.elapsed();
        let (status, bytes_out) = match &response {
            Ok(r) => (r.status().as_u16(), length(r.headers(), "content-length")),
            Err(_) => (500, 0),
        };
        self.metrics.record(method.as_str(), status, elapsed, bytes_in, bytes_out);
        tracing::info!(
            target: "cipherstore::request",
            method = %method,
            path = %path,
            status,
            micros = elapsed.as_micros() as u64,
            bytes_in,
            bytes_out,
            tls = !self.plain,
        );
        response
    }
}

impl hyper::service::Service<Request<Incoming>> for Front {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<HttpResponse, HttpError>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        Box::pin(self.clone().handle(req))
    }
}
