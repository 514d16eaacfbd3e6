//! The admin HTTP API on the S3 listener, under `/_admin/v1/` (no bucket name begins with
//! `_`): the `cipherstore iam` operations (users, access keys, roles) for tools that
//! cannot run the CLI on a gateway. Authenticated by a bearer token read from a file at
//! start (compared in constant time, never logged); refused on the plain-HTTP listener,
//! where the token would travel in clear. Routes and bodies are `iam::admin_api`'s; every
//! change lands in the IAM audit trail with `admin-api@<client address>` as initiator.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::{Body, HttpResponse};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use iam::admin_api::{self, ApiError};
use iam::{Admin, AuditTrail, Identities};

/// The shortest token accepted.
const MIN_TOKEN: usize = 32;

/// The API: the operations and the token that opens them.
pub(crate) struct AdminApi {
    admin: Admin,
    token: Zeroizing<String>,
}

impl AdminApi {
    /// The API over `ids`, its token read from `token_file`, changes audited in `audit`.
    pub(crate) fn open(ids: Arc<Identities>, token_file: &Path, audit: &Path) -> anyhow::Result<Self> {
        let text = Zeroizing::new(
            std::fs::read_to_string(token_file)
                .with_context(|| format!("cannot read the admin token file {}", token_file.display()))?,
        );
        let token = Zeroizing::new(text.trim().to_owned());
        anyhow::ensure!(
            token.len() >= MIN_TOKEN && token.bytes().all(|b| b.is_ascii_graphic()),
            "the admin token in {} must be at least {MIN_TOKEN} visible ASCII characters \
             (e.g. head -c 32 /dev/urandom | base64 > {0}; chmod 600 {0})",
            token_file.display()
        );
        warn_if_readable_by_others(token_file);
        Ok(Self { admin: Admin::new(ids, AuditTrail::new(audit.to_path_buf())), token })
    }

    /// Answers one request (`plain`: it came over plain HTTP).
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        peer: Option<SocketAddr>,
        plain: bool,
    ) -> HttpResponse {
        match self.answer(req, peer, plain).await {
            Ok((status, body)) => json(status, body.as_str().to_owned()),
            Err(e) => {
                let mut r = json(e.status, e.body());
                if e.status == 401 {
                    r.headers_mut()
                        .insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                r
            }
        }
    }

    async fn answer(
        &self,
        req: Request<Incoming>,
        peer: Option<SocketAddr>,
        plain: bool,
    ) -> Result<(u16, Zeroizing<String>), ApiError> {
        let refuse = |status, code, message: &str| ApiError { status, code, message: message.to_owned() };
        if plain {
            return Err(refuse(403, "InsecureTransport", "the admin API answers over HTTPS only"));
        }
        if !self.authorized(req.headers()) {
            return Err(refuse(401, "Unauthorized", "send Authorization: Bearer <the admin token>"));
        }
        let (parts, body) = req.into_parts();
        let limited = http_body_util::Limited::new(body, admin_api::MAX_BODY + 1);
        let bytes = match limited.collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return Err(refuse(413, "BodyTooLarge", "the body is too large or was cut short")),
        };
        let call = admin_api::parse(parts.method.as_str(), parts.uri.path(), &bytes)?;
        let by = format!("admin-api@{}", peer.map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string()));
        admin_api::run(&self.admin, &by, call).await
    }

    /// Whether the request carries the token (compared in constant time).
    fn authorized(&self, headers: &http::HeaderMap) -> bool {
        let Some(sent) =
            headers.get(http::header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        else {
            return false;
        };
        bool::from(sent.trim_ascii().ct_eq(self.token.as_bytes()))
    }
}

fn json(status: u16, body: String) -> HttpResponse {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A token file others may read is reported (the API still starts: the operator decides).
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the admin token file is readable by group or others: chmod 600 it");
    }
}
