//! `type: client_secret`: an `x-client-key` + `x-client-secret` pair for server-to-server
//! calls (DokaAI). Secrets are held as SHA-256 digests; an unknown key and a wrong secret are
//! indistinguishable (`invalid_client`) in answer and in timing.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::{Attempt, Extracted, Identity, RequestParts, Sources};
use crate::config::files::resolve;
use crate::config::{ClientSecretConfig, FieldError};
use crate::reason::Reason;
use crate::secret::{find_digest, parse_digest, sha256};

/// A compiled `client_secret` authenticator.
pub struct ClientSecret {
    pub(super) name: String,
    key_from: Sources,
    secret_from: Sources,
    key_digests: Vec<[u8; 32]>,
    secret_digests: Vec<[u8; 32]>,
    credentials: Vec<Arc<str>>,
    method: Arc<str>,
}

impl ClientSecret {
    /// Compiles `authenticators.<name>`; each client needs `secret`, `secret_file` or
    /// `secret_sha256`.
    pub fn compile(name: &str, cfg: &ClientSecretConfig, path: &str) -> Result<Self, FieldError> {
        if cfg.clients.is_empty() {
            return Err(FieldError::new(
                format!("{path}.clients"),
                "at least one client is required",
            ));
        }
        let mut a = ClientSecret {
            name: name.to_string(),
            key_from: Sources::compile(&cfg.key_from.0, &format!("{path}.key_from"))?,
            secret_from: Sources::compile(&cfg.secret_from.0, &format!("{path}.secret_from"))?,
            key_digests: Vec::new(),
            secret_digests: Vec::new(),
            credentials: Vec::new(),
            method: "client_secret".into(),
        };
        for (i, c) in cfg.clients.iter().enumerate() {
            let p = format!("{path}.clients[{i}]");
            let plain = resolve(
                c.secret.as_ref().map(|s| &s.0),
                c.secret_file.as_deref(),
                &p,
                "secret",
            )?;
            let digest =
                match (plain, &c.secret_sha256) {
                    (Some(s), None) if !s.expose().is_empty() => sha256(s.expose().as_bytes()),
                    (None, Some(h)) => parse_digest(h).ok_or_else(|| {
                        FieldError::new(format!("{p}.secret_sha256"), "expected 64 hex characters")
                    })?,
                    _ => return Err(FieldError::new(
                        p,
                        "exactly one non-empty secret, secret_file or secret_sha256 is required",
                    )),
                };
            let key_digest = sha256(c.key.as_bytes());
            if c.key.is_empty() || a.key_digests.contains(&key_digest) {
                return Err(FieldError::new(
                    format!("{p}.key"),
                    "client keys must be non-empty and unique",
                ));
            }
            a.key_digests.push(key_digest);
            a.secret_digests.push(digest);
            a.credentials.push(format!("{name}/{}", c.name.0).into());
        }
        Ok(a)
    }

    /// Where the key and the secret are read.
    pub(super) fn sources(&self) -> Vec<&Sources> {
        vec![&self.key_from, &self.secret_from]
    }

    /// Verifies the request's key + secret pair.
    pub(super) fn verify(&self, req: &RequestParts<'_>) -> Attempt {
        let (key, secret) = match (self.key_from.extract(req), self.secret_from.extract(req)) {
            (Extracted::Absent, Extracted::Absent) => return Attempt::Absent,
            (Extracted::Present(k), Extracted::Present(s)) => (k, s),
            (Extracted::Malformed, _) | (_, Extracted::Malformed) => {
                return Attempt::Fail(Reason::MalformedCredentials)
            }
            _ => return Attempt::Fail(Reason::InvalidClient), // half a pair
        };
        let presented = sha256(secret.as_bytes());
        // Compare against a real digest even for an unknown key, so timing reveals nothing.
        let idx = find_digest(key.as_bytes(), &self.key_digests);
        let expected = &self.secret_digests[idx.unwrap_or(0)];
        let secret_ok: bool = presented.ct_eq(expected).into();
        match idx {
            Some(i) if secret_ok => Attempt::Pass(Identity::app(
                self.method.clone(),
                self.credentials[i].clone(),
            )),
            _ => Attempt::Fail(Reason::InvalidClient),
        }
    }
}
