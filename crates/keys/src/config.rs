//! Where the HSM is and how to log in: PKCS#11 module path, token label (or an RFC 7512
//! `pkcs11:` URI) and a PIN read from an environment variable or a file, never from the
//! command line.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::error::KeysError;
use super::wrapping::WrapMethod;

/// Default module: Debian's SoftHSM2.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Module path variable.
pub const ENV_MODULE: &str = "CIPHERSTORE_PKCS11_MODULE";
/// Token label variable.
pub const ENV_TOKEN: &str = "CIPHERSTORE_HSM_TOKEN";
/// RFC 7512 URI variable (`pkcs11:token=…;…?module-path=…&pin-source=file:…`).
pub const ENV_URI: &str = "CIPHERSTORE_HSM_URI";
/// PIN variable.
pub const ENV_PIN: &str = "CIPHERSTORE_HSM_PIN";
/// PIN file variable.
pub const ENV_PIN_FILE: &str = "CIPHERSTORE_HSM_PIN_FILE";
/// Wrapping method variable (`auto` or a [`WrapMethod`] name).
pub const ENV_WRAP: &str = "CIPHERSTORE_HSM_WRAP";
/// Key generation command variable: the program and its arguments, separated by blanks.
pub const ENV_KEYGEN: &str = "CIPHERSTORE_HSM_KEYGEN";

/// How to reach and log in to the token.
#[derive(Debug, Clone)]
pub struct HsmConfig {
    /// PKCS#11 module (shared library).
    pub module: PathBuf,
    /// Token label.
    pub token: String,
    /// User PIN, as read at start.
    pub pin: SecretString,
    /// Where the PIN came from: read again when the token must be logged in to again
    /// (after an HSM failure), so an operator who changed the PIN updates only the file.
    pub pin_source: Option<PinSource>,
    /// The wrapping method new root key versions must use; `None` chooses the first the
    /// token can do ([`super::wrapping::choose`]).
    pub wrap: Option<WrapMethod>,
    /// For tokens that cannot generate secret keys through PKCS#11 (tpm2-pkcs11): the
    /// program and arguments that make one in the token, with `{label}`, `{id}` (the
    /// object's `CKA_ID` as text) and `{kind}` (`aes256` or `hmac-sha256`) replaced.
    pub keygen: Option<Vec<String>>,
}

/// Where the PIN comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// An environment variable's value.
    Env(String),
    /// A file's first line.
    File(PathBuf),
}

impl PinSource {
    /// Reads the PIN: the first line, which must not be empty.
    pub fn read(&self) -> Result<SecretString, KeysError> {
        let raw = match self {
            Self::Env(name) => std::env::var(name)
                .map_err(|_| KeysError::Config(format!("{name} is not set or not UTF-8")))?,
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(KeysError::io(format!("cannot read the PIN file {}", path.display())))?,
        };
        let pin = raw.lines().next().unwrap_or("").to_owned();
        if pin.is_empty() {
            return Err(KeysError::Config("the PIN is empty".into()));
        }
        Ok(SecretString::from(pin))
    }
}

/// Decodes RFC 3986 percent escapes.
fn unescape(s: &str) -> Result<String, KeysError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex =
                s.get(i + 1..i + 3).ok_or_else(|| KeysError::Config("bad %-escape in pkcs11: URI".into()))?;
            let v = u8::from_str_radix(hex, 16)
                .map_err(|_| KeysError::Config("bad %-escape in pkcs11: URI".into()))?;
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| KeysError::Config("pkcs11: URI is not UTF-8".into()))
}

/// The parts of an RFC 7512 URI cipherstore uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token=` path attribute.
    pub token: Option<String>,
    /// `module-path=` query attribute.
    pub module_path: Option<PathBuf>,
    /// `pin-source=file:…` query attribute.
    pub pin_file: Option<PathBuf>,
}

impl Pkcs11Uri {
    /// Parses `pkcs11:token=…;…?module-path=…&pin-source=…`. A `pin-value` is refused:
    /// PINs do not belong in URIs that end up in shell history and process lists.
    pub fn parse(uri: &str) -> Result<Self, KeysError> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| KeysError::Config("URI must start with pkcs11:".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut out = Self::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| KeysError::Config(format!("bad URI attribute {attr:?}")))?;
            if k == "token" {
                out.token = Some(unescape(v)?);
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (k, v) =
                attr.split_once('=').ok_or_else(|| KeysError::Config(format!("bad URI query {attr:?}")))?;
            match k {
                "module-path" => out.module_path = Some(PathBuf::from(unescape(v)?)),
                "pin-source" => {
                    let v = unescape(v)?;
                    let file = v.strip_prefix("file:").unwrap_or(&v);
                    out.pin_file = Some(PathBuf::from(file.trim_start_matches("//")));
                }
                "pin-value" => {
                    return Err(KeysError::Config(
                        "pin-value in a pkcs11: URI is refused: use pin-source=file:… or CIPHERSTORE_HSM_PIN"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Where to find the HSM, before the PIN is read: from the environment, a configuration
/// file, or both (see [`HsmSettings::or`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSettings {
    /// PKCS#11 module path.
    pub module: Option<PathBuf>,
    /// Token label.
    pub token: Option<String>,
    /// RFC 7512 `pkcs11:` URI (token, module-path, pin-source=file:…).
    pub uri: Option<String>,
    /// File whose first line is the user PIN.
    pub pin_file: Option<PathBuf>,
    /// `auto` (the default: the first method the token can do) or a wrapping method's
    /// name (`aes-key-wrap-pad`, `aes-key-wrap`, `aes-gcm`, `aes-cbc-hmac-sha256`).
    pub wrap: Option<String>,
    /// The command that makes a key in a token that cannot generate secret keys through
    /// PKCS#11 ([`HsmConfig::keygen`]); run without a shell.
    pub keygen_command: Option<Vec<String>>,
    /// The PIN itself is never read from a file of settings, only from [`ENV_PIN`].
    #[serde(skip)]
    pub pin_from_env: bool,
}

impl HsmSettings {
    /// From [`ENV_URI`], [`ENV_TOKEN`], [`ENV_MODULE`], [`ENV_PIN_FILE`] and [`ENV_PIN`].
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            module: var(ENV_MODULE).map(PathBuf::from),
            token: var(ENV_TOKEN),
            uri: var(ENV_URI),
            pin_file: var(ENV_PIN_FILE).map(PathBuf::from),
            wrap: var(ENV_WRAP),
            keygen_command: var(ENV_KEYGEN).map(|v| v.split_whitespace().map(str::to_owned).collect()),
            pin_from_env: var(ENV_PIN).is_some(),
        }
    }

    /// Each setting of `self`, or else `base`'s (environment over configuration file).
    pub fn or(self, base: Self) -> Self {
        Self {
            module: self.module.or(base.module),
            token: self.token.or(base.token),
            uri: self.uri.or(base.uri),
            pin_file: self.pin_file.or(base.pin_file),
            wrap: self.wrap.or(base.wrap),
            keygen_command: self.keygen_command.or(base.keygen_command),
            pin_from_env: self.pin_from_env || base.pin_from_env,
        }
    }

    /// Whether an HSM is configured at all (a token or a URI).
    pub fn is_configured(&self) -> bool {
        self.token.is_some() || self.uri.is_some()
    }

    /// Resolves the settings and reads the PIN.
    pub fn resolve(&self) -> Result<HsmConfig, KeysError> {
        let uri = self.uri.as_deref().map(Pkcs11Uri::parse).transpose()?.unwrap_or_default();
        let token = uri.token.or_else(|| self.token.clone()).ok_or_else(|| {
            KeysError::Config(format!(
                "no token: set {ENV_TOKEN} (a token label) or {ENV_URI} (a pkcs11: URI)"
            ))
        })?;
        let module = uri.module_path.or_else(|| self.module.clone()).unwrap_or_else(|| DEFAULT_MODULE.into());
        let source = match (uri.pin_file, &self.pin_file, self.pin_from_env) {
            (Some(f), _, _) => PinSource::File(f),
            (None, Some(f), _) => PinSource::File(f.clone()),
            (None, None, true) => PinSource::Env(ENV_PIN.into()),
            (None, None, false) => {
                return Err(KeysError::Config(format!("no PIN: set {ENV_PIN_FILE} (a file) or {ENV_PIN}")));
            }
        };
        let wrap = match self.wrap.as_deref().map(str::trim) {
            None | Some("auto") => None,
            Some(name) => Some(WrapMethod::parse(name)?),
        };
        let keygen = match &self.keygen_command {
            Some(c) if c.is_empty() || c[0].is_empty() => {
                return Err(KeysError::Config("keygen_command names no program".into()));
            }
            other => other.clone(),
        };
        Ok(HsmConfig { module, token, pin: source.read()?, pin_source: Some(source), wrap, keygen })
    }
}

impl HsmConfig {
    /// Reads the configuration from the environment: [`ENV_URI`] or [`ENV_TOKEN`], then
    /// [`ENV_MODULE`] (default [`DEFAULT_MODULE`]), and the PIN from [`ENV_PIN_FILE`] or
    /// [`ENV_PIN`].
    pub fn from_env() -> Result<Self, KeysError> {
        HsmSettings::from_env().resolve()
    }

    /// A configuration from explicit parts (tests, embedding).
    pub fn new(module: &Path, token: &str, pin: &str) -> Self {
        Self {
            module: module.to_owned(),
            token: token.to_owned(),
            pin: SecretString::from(pin.to_owned()),
            pin_source: None,
            wrap: None,
            keygen: None,
        }
    }

    /// The same configuration with new root key versions wrapping by `method`.
    pub fn with_wrap(mut self, method: WrapMethod) -> Self {
        self.wrap = Some(method);
        self
    }

    /// The PIN to log in with now: read again from its source, or the one read at start
    /// if the source cannot be read any more.
    pub fn current_pin(&self) -> SecretString {
        match self.pin_source.as_ref().map(PinSource::read) {
            Some(Ok(pin)) => pin,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the PIN source again; logging in with the PIN read at start");
                self.pin.clone()
            }
            None => self.pin.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_refuse_inline_pins() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;object=x?module-path=/usr/lib/x.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("My Token"));
        assert_eq!(u.module_path, Some(PathBuf::from("/usr/lib/x.so")));
        assert_eq!(u.pin_file, Some(PathBuf::from("/run/pin")));
        assert!(Pkcs11Uri::parse("pkcs11:token=a?pin-value=1234").is_err());
        assert!(Pkcs11Uri::parse("http://x").is_err());
        assert!(Pkcs11Uri::parse("pkcs11:token=%zz").is_err());
    }
}
