//! Authenticators: one module per kind behind the [`Authenticator`] trait
//! (extract credential -> verify -> identity or reason).

pub mod api_key;
pub mod client_secret;
pub mod hmac_token;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod public_key;
pub mod source;

use std::sync::Arc;

use async_trait::async_trait;

pub use source::{Extracted, RequestParts, Source, Sources};

use crate::reason::Reason;

/// Who a request was authenticated as. Forwarded upstream as identity headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The authenticated user id; `None` when the credential identifies an application only
    /// (production `public_key`, `api_key`, `client_secret`).
    pub user_id: Option<String>,
    /// Authenticator kinds joined by `+`, e.g. `jwt` or `public_key+jwt`.
    pub method: Arc<str>,
    /// Authenticator name plus `/key-or-client-name`; all-of alternatives join with `,`.
    pub credential: Arc<str>,
    /// Claims to forward or bind, as (claim name, string value).
    pub claims: Vec<(Arc<str>, String)>,
}

impl Identity {
    /// An identity with no user id and no claims.
    pub fn app(method: Arc<str>, credential: Arc<str>) -> Self {
        Identity {
            user_id: None,
            method,
            credential,
            claims: Vec::new(),
        }
    }

    /// The value of claim `name`, if it was captured.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Combines the identities of an all-of alternative. Differing user ids fail with
    /// `identity_mismatch` (spec, "Routes").
    pub fn merge(self, other: Identity) -> Result<Identity, Reason> {
        let user_id = match (self.user_id, other.user_id) {
            (Some(a), Some(b)) if a != b => return Err(Reason::IdentityMismatch),
            (a, b) => a.or(b),
        };
        let mut claims = self.claims;
        claims.extend(other.claims);
        Ok(Identity {
            user_id,
            method: format!("{}+{}", self.method, other.method).into(),
            credential: format!("{},{}", self.credential, other.credential).into(),
            claims,
        })
    }

    /// Refuses identities that cannot be forwarded verbatim as header values
    /// (CR, LF, NUL or other control characters in the user id or a claim).
    pub fn check_forwardable(&self) -> Result<(), Reason> {
        let clean = |s: &str| s.bytes().all(|b| b >= 0x20 && b != 0x7f);
        let uid_ok = self
            .user_id
            .as_deref()
            .is_none_or(|u| !u.is_empty() && clean(u));
        if uid_ok && self.claims.iter().all(|(_, v)| clean(v)) {
            Ok(())
        } else {
            Err(Reason::MalformedCredentials)
        }
    }
}

/// The outcome of one authenticator on one request.
#[derive(Debug)]
pub enum Verdict {
    /// Its credential is not present in the request.
    Absent,
    /// Verified.
    Pass(Identity),
    /// Present but refused, with the reason.
    Fail(Reason),
}

/// A configured authenticator. Implementations are immutable after load; `verify` holds no
/// lock across an await and does no I/O for static keys.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The name given in `authenticators:`.
    fn name(&self) -> &str;
    /// The `type` (`jwt`, `public_key`, ...), forwarded in the method header.
    fn kind(&self) -> &'static str;
    /// Whether one of its sources is `Authorization: Bearer` (for `WWW-Authenticate`).
    fn uses_bearer(&self) -> bool;
    /// Whether one of its sources reads a Socket.IO CONNECT packet.
    fn uses_socketio(&self) -> bool {
        false
    }
    /// Path parameters its sources read (validated against each route that uses it).
    fn path_params(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether its keys are available (JWK sets), for `/readyz`.
    fn ready(&self) -> bool {
        true
    }
    /// Its JWK-set provider, whose fetch loop the server runs.
    fn provider(&self) -> Option<Arc<jwks::JwksProvider>> {
        None
    }
    /// Config problems that do not stop loading (`keygate check` prints them; load logs them).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// Verifies the request's credential.
    async fn verify(&self, req: &RequestParts<'_>) -> Verdict;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: Option<&str>, m: &str) -> Identity {
        Identity {
            user_id: user.map(str::to_string),
            method: m.into(),
            credential: m.into(),
            claims: vec![],
        }
    }

    #[test]
    fn merge_joins_methods_and_rejects_different_users() {
        let m = id(None, "public_key").merge(id(Some("u1"), "jwt")).unwrap();
        assert_eq!(&*m.method, "public_key+jwt");
        assert_eq!(m.user_id.as_deref(), Some("u1"));
        assert_eq!(
            id(Some("a"), "x").merge(id(Some("b"), "y")),
            Err(Reason::IdentityMismatch)
        );
    }

    #[test]
    fn control_characters_are_not_forwardable() {
        assert!(id(Some("u\r\nx: y"), "jwt").check_forwardable().is_err());
        assert!(id(Some("u\0"), "jwt").check_forwardable().is_err());
        assert!(id(Some("user-1"), "jwt").check_forwardable().is_ok());
    }
}
