//! Authenticators: one module per kind, closed under [`Authenticator`] (the set is fixed by the
//! config schema): extract the credential from its [`Sources`] -> verify -> an [`Identity`] or a
//! [`Reason`].

pub mod api_key;
pub mod client_secret;
pub mod hmac_token;
pub mod jwks;
pub mod jwt;
pub mod public_key;
pub mod source;

use std::sync::Arc;

pub use source::{Extracted, RequestParts, Source, Sources};

use crate::config::{AuthenticatorConfig, FieldError, Mode};
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
    /// When the credential stops being valid, Unix seconds: a JWT's `exp` plus its
    /// authenticator's `leeway_seconds` (the earliest in an all-of alternative); `None` for
    /// credentials that do not expire (keys, client secrets, HMAC tokens). Open sessions are
    /// closed then (`sessions.end_at_expiry`).
    pub valid_until: Option<u64>,
    /// A JWT's `iat`, Unix seconds (revocations by `issued_before`); the earliest in an all-of
    /// alternative.
    pub issued_at: Option<u64>,
    /// A JWT's `jti` (revocations by `jti`); the first in an all-of alternative.
    pub jti: Option<Arc<str>>,
    /// Every verified claim of the JWT, kept only when some route's `allow_if` reads `claims`
    /// (else `None`, so the token cache holds no more than it needs); an all-of alternative
    /// keeps the first JWT's.
    pub full_claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

impl Identity {
    /// An identity with no user id and no claims.
    pub fn app(method: Arc<str>, credential: Arc<str>) -> Self {
        Identity {
            user_id: None,
            method,
            credential,
            claims: Vec::new(),
            valid_until: None,
            issued_at: None,
            jti: None,
            full_claims: None,
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
        let earliest = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut claims = self.claims;
        claims.extend(other.claims);
        Ok(Identity {
            user_id,
            method: format!("{}+{}", self.method, other.method).into(),
            credential: format!("{},{}", self.credential, other.credential).into(),
            claims,
            valid_until: earliest(self.valid_until, other.valid_until),
            issued_at: earliest(self.issued_at, other.issued_at),
            jti: self.jti.or(other.jti),
            full_claims: self.full_claims.or(other.full_claims),
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
pub enum Attempt {
    /// Its credential is not present in the request.
    Absent,
    /// Verified.
    Pass(Identity),
    /// Present but refused, with the reason.
    Fail(Reason),
}

/// An authenticator's `type`, forwarded in the method header (`public_key+jwt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `public_key`.
    PublicKey,
    /// `api_key`.
    ApiKey,
    /// `client_secret`.
    ClientSecret,
    /// `hmac_token`.
    HmacToken,
    /// `jwt`.
    Jwt,
}

impl Kind {
    /// The `type` spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::PublicKey => "public_key",
            Kind::ApiKey => "api_key",
            Kind::ClientSecret => "client_secret",
            Kind::HmacToken => "hmac_token",
            Kind::Jwt => "jwt",
        }
    }
}

/// A compiled authenticator. Immutable after load; only a `jwt` one awaits (when a JWK-set
/// provider must be asked about an unknown `kid`), and none holds a lock across an await.
pub enum Authenticator {
    /// `type: public_key`.
    PublicKey(public_key::PublicKey),
    /// `type: api_key`.
    ApiKey(api_key::ApiKey),
    /// `type: client_secret`.
    ClientSecret(client_secret::ClientSecret),
    /// `type: hmac_token`.
    HmacToken(hmac_token::HmacToken),
    /// `type: jwt`.
    Jwt(Box<jwt::Jwt>),
}

/// What compiling an authenticator needs beside its own config.
pub struct Shared {
    /// `production` or `development`.
    pub mode: Mode,
    /// Claim names to capture (mapped identity headers and `bind`s).
    pub forward: Arc<[Arc<str>]>,
    /// Keep every verified claim in the identity (some route's `allow_if` reads `claims`).
    pub full_claims: bool,
    /// The config's verified-token cache, if enabled.
    pub cache: Option<Arc<jwt::cache::TokenCache>>,
}

impl Authenticator {
    /// Compiles `authenticators.<name>` (`path` names it in errors).
    pub fn compile(
        name: &str,
        cfg: &AuthenticatorConfig,
        shared: &Shared,
        path: &str,
    ) -> Result<Authenticator, FieldError> {
        Ok(match cfg {
            AuthenticatorConfig::PublicKey(c) => Authenticator::PublicKey(
                public_key::PublicKey::compile(name, c, shared.mode, path)?,
            ),
            AuthenticatorConfig::ApiKey(c) => {
                Authenticator::ApiKey(api_key::ApiKey::compile(name, c, path)?)
            }
            AuthenticatorConfig::ClientSecret(c) => {
                Authenticator::ClientSecret(client_secret::ClientSecret::compile(name, c, path)?)
            }
            AuthenticatorConfig::HmacToken(c) => {
                Authenticator::HmacToken(hmac_token::HmacToken::compile(name, c, path)?)
            }
            AuthenticatorConfig::Jwt(c) => Authenticator::Jwt(Box::new(jwt::Jwt::compile(
                name,
                c,
                shared.forward.clone(),
                shared.full_claims,
                shared.cache.clone(),
                path,
            )?)),
        })
    }

    /// The name given in `authenticators:`.
    pub fn name(&self) -> &str {
        match self {
            Authenticator::PublicKey(a) => &a.name,
            Authenticator::ApiKey(a) => &a.name,
            Authenticator::ClientSecret(a) => &a.name,
            Authenticator::HmacToken(a) => &a.name,
            Authenticator::Jwt(a) => &a.name,
        }
    }

    /// Its `type`.
    pub fn kind(&self) -> Kind {
        match self {
            Authenticator::PublicKey(_) => Kind::PublicKey,
            Authenticator::ApiKey(_) => Kind::ApiKey,
            Authenticator::ClientSecret(_) => Kind::ClientSecret,
            Authenticator::HmacToken(_) => Kind::HmacToken,
            Authenticator::Jwt(_) => Kind::Jwt,
        }
    }

    /// The sources a request must offer for it (its credential and, for `hmac_token`, the user
    /// id); routes derive their Bearer challenge and path-parameter checks from them.
    pub fn sources(&self) -> Vec<&Sources> {
        match self {
            Authenticator::PublicKey(a) => a.sources(),
            Authenticator::ApiKey(a) => a.sources(),
            Authenticator::ClientSecret(a) => a.sources(),
            Authenticator::HmacToken(a) => a.sources(),
            Authenticator::Jwt(a) => a.sources(),
        }
    }

    /// Verifies the request's credential.
    pub async fn verify(&self, req: &RequestParts<'_>) -> Attempt {
        match self {
            Authenticator::PublicKey(a) => a.verify(req),
            Authenticator::ApiKey(a) => a.verify(req),
            Authenticator::ClientSecret(a) => a.verify(req),
            Authenticator::HmacToken(a) => a.verify(req),
            Authenticator::Jwt(a) => a.verify(req).await,
        }
    }

    /// Its JWK-set provider, whose fetch loop the server runs.
    pub fn provider(&self) -> Option<&Arc<jwks::JwksProvider>> {
        match self {
            Authenticator::Jwt(a) => a.provider(),
            _ => None,
        }
    }

    /// Whether its keys are available (JWK sets), for `/readyz`.
    pub fn ready(&self) -> bool {
        self.provider().is_none_or(|p| p.ready())
    }

    /// Config problems that do not stop loading (`keygate check` prints them; load logs them).
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Authenticator::Jwt(a) => a.warnings(),
            _ => Vec::new(),
        }
    }
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
            valid_until: None,
            issued_at: None,
            jti: None,
            full_claims: None,
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
