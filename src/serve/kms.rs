//! The key service's HTTP front (`serve --kms-listen`): HTTPS with the S3 listener's
//! certificate, each request's body read (64 KiB at most) and handed with the headers the
//! API reads to `kms::KeyService` on a blocking thread (it calls the HSM), the answer sent
//! as JSON with `Cache-Control: no-store`. One log line per request: method, path,
//! status, time; never a header or a body (they carry tokens, API keys and DEKs).

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::{Body, HttpError, HttpResponse};

use kms::{KeyService, KpError};

/// One listener's view of the key service.
#[derive(Clone)]
pub(crate) struct KmsFront {
    /// The service.
    pub service: Arc<KeyService>,
}

fn header<'a>(req: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn respond(r: kms::Response) -> HttpResponse {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = match r.body {
        Some(b) => {
            let mut out = Response::new(Body::from(b.as_str().to_owned()));
            out.headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            out
        }
        None => Response::new(Body::empty()),
    };
    *out.status_mut() = status;
    out.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(total) = r.key_total
        && let Ok(v) = HeaderValue::from_str(&total.to_string())
    {
        out.headers_mut().insert("key-total", v);
    }
    out
}

impl KmsFront {
    async fn handle(self, req: Request<Incoming>) -> Result<HttpResponse, HttpError> {
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let limited = http_body_util::Limited::new(body, kms::body::MAX_BODY + 1);
        let response = match limited.collect().await {
            Err(_) => kms::Response::refusal(&KpError::new(
                413,
                "BODY_TOO_LARGE_ERR",
                format!("a body is at most {} bytes", kms::body::MAX_BODY),
            )),
            Ok(collected) => {
                let bytes = collected.to_bytes();
                let service = self.service.clone();
                let parts = parts.clone();
                tokio::task::spawn_blocking(move || {
                    let req = kms::Request {
                        method: parts.method.as_str(),
                        path: parts.uri.path(),
                        query: parts.uri.query().unwrap_or(""),
                        instance: header(&parts, "bluemix-instance"),
                        authorization: header(&parts, "authorization"),
                        prefer: header(&parts, "prefer"),
                        key_ring: header(&parts, "x-kms-key-ring"),
                        body: &bytes,
                    };
                    service.handle(&req)
                })
                .await
                .unwrap_or_else(|_| {
                    kms::Response::refusal(&KpError::new(
                        500,
                        "INTERNAL_SERVER_ERR",
                        "the request's worker failed",
                    ))
                })
            }
        };
        tracing::info!(
            target: "cipherstore::kms",
            method = %parts.method,
            path = %parts.uri.path(),
            status = response.status,
            micros = start.elapsed().as_micros() as u64,
        );
        Ok(respond(response))
    }
}

impl hyper::service::Service<Request<Incoming>> for KmsFront {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<HttpResponse, HttpError>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        Box::pin(self.clone().handle(req))
    }
}
