//! `type: public_key`: a publishable key (Knock's public API key). In `production` it identifies
//! the application only; in `development` it also authenticates the user named by
//! `user_id_from` ("use your public key to authenticate all users", Knock docs).

use std::sync::Arc;

use super::api_key::KeyRing;
use super::{Attempt, Extracted, Identity, RequestParts, Sources};
use crate::config::{FieldError, Mode, PublicKeyConfig};
use crate::reason::Reason;

/// A compiled `public_key` authenticator.
pub struct PublicKey {
    pub(super) name: String,
    from: Sources,
    keys: KeyRing,
    /// Set only in development mode.
    user_id_from: Option<Sources>,
    method: Arc<str>,
}

impl PublicKey {
    /// Compiles `authenticators.<name>` for `mode`.
    pub fn compile(
        name: &str,
        cfg: &PublicKeyConfig,
        mode: Mode,
        path: &str,
    ) -> Result<Self, FieldError> {
        let user_id_from = match &cfg.user_id_from {
            Some(s) => Some(Sources::compile(&s.0, &format!("{path}.user_id_from"))?),
            None => None,
        };
        Ok(PublicKey {
            name: name.to_string(),
            from: Sources::compile(&cfg.from.0, &format!("{path}.from"))?,
            keys: KeyRing::compile(name, &cfg.keys, path)?,
            user_id_from: user_id_from.filter(|_| mode == Mode::Development),
            method: "public_key".into(),
        })
    }

    /// Where the key is read. Not `user_id_from`, which is optional: a route without that
    /// parameter yields no user id (the spec's `knock_socket` route).
    pub(super) fn sources(&self) -> Vec<&Sources> {
        vec![&self.from]
    }

    /// Verifies the request's public key (and reads the claimed user in development mode).
    pub(super) fn verify(&self, req: &RequestParts<'_>) -> Attempt {
        let cred = match self.from.extract(req) {
            Extracted::Absent => return Attempt::Absent,
            Extracted::Malformed => return Attempt::Fail(Reason::MalformedCredentials),
            Extracted::Present(key) => match self.keys.find(&key) {
                Some(cred) => cred,
                None => return Attempt::Fail(Reason::InvalidApiKey),
            },
        };
        let mut id = Identity::app(self.method.clone(), cred);
        if let Some(src) = &self.user_id_from {
            match src.extract(req) {
                Extracted::Present(u) => id.user_id = Some(u.into_owned()),
                Extracted::Malformed => return Attempt::Fail(Reason::MalformedCredentials),
                Extracted::Absent => {}
            }
        }
        Attempt::Pass(id)
    }
}
