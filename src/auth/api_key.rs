//! `type: api_key`: a single key for server-to-server calls (Notivize event ingestion).
//! Keys are held as SHA-256 digests (`sha256:` in the config, or hashed at load from
//! `value`/`value_file`) and compared in constant time.

use std::sync::Arc;

use super::{Attempt, Extracted, Identity, RequestParts, Sources};
use crate::config::files::resolve;
use crate::config::{ApiKeyConfig, FieldError, KeyEntry};
use crate::reason::Reason;
use crate::secret::{find_digest, parse_digest, sha256};

/// Named key digests, shared by `api_key` and `public_key`.
#[derive(Debug)]
pub struct KeyRing {
    digests: Vec<[u8; 32]>,
    /// `authenticator/key-name`, precomputed for the credential header.
    credentials: Vec<Arc<str>>,
}

impl KeyRing {
    /// Compiles `keys`; each needs exactly one of `value`, `value_file`, `sha256`.
    pub fn compile(auth: &str, keys: &[KeyEntry], path: &str) -> Result<KeyRing, FieldError> {
        if keys.is_empty() {
            return Err(FieldError::new(
                format!("{path}.keys"),
                "at least one key is required",
            ));
        }
        let mut ring = KeyRing {
            digests: Vec::new(),
            credentials: Vec::new(),
        };
        for (i, k) in keys.iter().enumerate() {
            let p = format!("{path}.keys[{i}]");
            let plain = resolve(
                k.value.as_ref().map(|v| &v.0),
                k.value_file.as_deref(),
                &p,
                "value",
            )?;
            let digest = match (plain, &k.sha256) {
                (Some(_), Some(_)) => {
                    return Err(FieldError::new(
                        p,
                        "give value, value_file or sha256, not several",
                    ))
                }
                (Some(v), None) if v.expose().is_empty() => {
                    return Err(FieldError::new(format!("{p}.value"), "key is empty"))
                }
                (Some(v), None) => sha256(v.expose().as_bytes()),
                (None, Some(h)) => parse_digest(h).ok_or_else(|| {
                    FieldError::new(format!("{p}.sha256"), "expected 64 hex characters")
                })?,
                (None, None) => {
                    return Err(FieldError::new(
                        p,
                        "one of value, value_file, sha256 is required",
                    ))
                }
            };
            if ring.digests.contains(&digest) {
                return Err(FieldError::new(p, "duplicate key"));
            }
            ring.digests.push(digest);
            ring.credentials.push(format!("{auth}/{}", k.name.0).into());
        }
        Ok(ring)
    }

    /// The credential name of the key equal to `presented`, compared in constant time.
    pub fn find(&self, presented: &str) -> Option<Arc<str>> {
        find_digest(presented.as_bytes(), &self.digests).map(|i| self.credentials[i].clone())
    }
}

/// A compiled `api_key` authenticator.
pub struct ApiKey {
    pub(super) name: String,
    from: Sources,
    keys: KeyRing,
    method: Arc<str>,
}

impl ApiKey {
    /// Compiles `authenticators.<name>`.
    pub fn compile(name: &str, cfg: &ApiKeyConfig, path: &str) -> Result<Self, FieldError> {
        Ok(ApiKey {
            name: name.to_string(),
            from: Sources::compile(&cfg.from.0, &format!("{path}.from"))?,
            keys: KeyRing::compile(name, &cfg.keys, path)?,
            method: "api_key".into(),
        })
    }

    /// Where its credential is read.
    pub(super) fn sources(&self) -> Vec<&Sources> {
        vec![&self.from]
    }

    /// Verifies the request's key.
    pub(super) fn verify(&self, req: &RequestParts<'_>) -> Attempt {
        match self.from.extract(req) {
            Extracted::Absent => Attempt::Absent,
            Extracted::Malformed => Attempt::Fail(Reason::MalformedCredentials),
            Extracted::Present(key) => match self.keys.find(&key) {
                Some(cred) => Attempt::Pass(Identity::app(self.method.clone(), cred)),
                None => Attempt::Fail(Reason::InvalidApiKey),
            },
        }
    }
}
