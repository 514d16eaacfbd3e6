//! Refusals as Key Protect answers them ([`KpError`]): a status, one of Key Protect's
//! reason codes and a message naming what is wrong, in its error collection shape:
//!
//! ```json
//! {"metadata":{"collectionType":"application/vnd.ibm.kms.error+json","collectionTotal":1},
//!  "resources":[{"errorMsg":"…","reasons":[{"code":"…","message":"…","status":404}]}]}
//! ```
//!
//! Every error of the key layer maps to one of them (state conflicts 409, deleted keys
//! 410, a ciphertext that does not open 422, the HSM or the key state out of reach 503);
//! none carries key material, a token or an API key.

use keys::KeysError;

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpError {
    /// HTTP status.
    pub status: u16,
    /// Key Protect's reason code (`KEY_NOT_FOUND_ERR`, …).
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

impl KpError {
    /// A refusal with `status`, `code` and `message`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400: the request is malformed; `message` says which part.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(400, "BAD_BODY_ERR", message)
    }

    fn phrase(&self) -> &'static str {
        match self.status {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            410 => "Gone",
            413 => "Payload Too Large",
            422 => "Unprocessable Entity",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({
            "metadata": {"collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1},
            "resources": [{
                "errorMsg": format!("{}: {}", self.phrase(), self.message),
                "reasons": [{"code": self.code, "message": self.message, "status": self.status}],
            }],
        })
        .to_string()
    }
}

impl From<KeysError> for KpError {
    fn from(e: KeysError) -> Self {
        let (status, code) = match &e {
            KeysError::KeyNotFound(_) => (404, "KEY_NOT_FOUND_ERR"),
            KeysError::KeyDestroyed(_) => (410, "KEY_DELETED_ERR"),
            KeysError::KeySuspended(_) => (409, "KEY_ACTION_INVALID_STATE_ERR"),
            KeysError::Retained { .. } => (409, "PREV_KEY_DEL_ERR"),
            KeysError::KeyInUse { .. } => (409, "PROTECTED_RESOURCE_ERR"),
            KeysError::Refused(_) => (409, "CONFLICT_ERR"),
            KeysError::BucketExists(_) => (409, "BUCKET_KEY_EXISTS_ERR"),
            KeysError::NotAuthorized(_) => (409, "AUTHORIZATIONS_NOT_MET"),
            KeysError::RingNotFound(_) => (404, "KEY_RING_NOT_FOUND_ERR"),
            KeysError::UnwrapFailed(_) => (422, "UNPROCESSABLE_CIPHERTEXT_ERR"),
            KeysError::BucketNotFound(_) => (404, "BUCKET_KEY_NOT_FOUND_ERR"),
            KeysError::Unavailable(_)
            | KeysError::KeyNotInHsm(_)
            | KeysError::Hsm { .. }
            | KeysError::Module { .. }
            | KeysError::TokenNotFound(_)
            | KeysError::BadPin(_)
            | KeysError::PinLocked(_) => (503, "SERVICE_UNAVAILABLE_ERR"),
            KeysError::Config(_) | KeysError::Io { .. } | KeysError::State { .. } => {
                (500, "INTERNAL_SERVER_ERR")
            }
        };
        if status >= 500 {
            tracing::warn!(error = %e, "key service request failed");
        }
        Self::new(status, code, e.to_string())
    }
}

impl From<iam::TokenRefusal> for KpError {
    fn from(e: iam::TokenRefusal) -> Self {
        Self::new(401, "UNAUTHORIZED_ERR", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_key_protects_shape_and_every_key_error_a_status() {
        let e = KpError::from(KeysError::KeyNotFound("abc".into()));
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["metadata"]["collectionType"], "application/vnd.ibm.kms.error+json");
        assert_eq!(v["resources"][0]["reasons"][0]["code"], "KEY_NOT_FOUND_ERR");
        assert_eq!(v["resources"][0]["reasons"][0]["status"], 404);
        assert!(v["resources"][0]["errorMsg"].as_str().unwrap().starts_with("Not Found: "));
        assert_eq!(KpError::from(KeysError::KeyDestroyed("k".into())).status, 410);
        assert_eq!(KpError::from(KeysError::UnwrapFailed("k".into())).status, 422);
        assert_eq!(KpError::from(KeysError::Unavailable("etcd".into())).status, 503);
        assert_eq!(KpError::from(iam::TokenRefusal::Expired).status, 401);
    }
}
