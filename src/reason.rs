//! Why a request was refused: one enum, mapped to HTTP status, JSON body, challenge, metric label
//! and its [`Class`] in exactly one place (`docs/config.md`, "Responses to denied requests").
//!
//! The variant list, its order and its snake_case spellings are derived by `strum`
//! ([`Reason::iter`], [`Reason::COUNT`], [`Reason::as_str`]); nothing else keeps a copy.

use strum::{EnumCount, EnumIter, IntoStaticStr};

pub use strum::IntoEnumIterator;

/// A stable, machine-readable denial reason. The `as_str` spelling is public interface: it is
/// the `reason` field of the JSON body and the `reason` label of `keygate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, EnumCount, IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    /// No credential was present in any configured source.
    MissingCredentials,
    /// A credential was present but could not be parsed (bad header, oversize, not a JWT, ...).
    MalformedCredentials,
    /// A JWT's signature did not verify with any candidate key.
    InvalidSignature,
    /// `exp` is in the past (beyond `leeway_seconds`).
    TokenExpired,
    /// `nbf` is in the future (beyond `leeway_seconds`).
    TokenNotYetValid,
    /// `aud` is not one of `audiences`.
    InvalidAudience,
    /// `iss` is not one of `issuers`.
    InvalidIssuer,
    /// The token's `kid` names no key the authenticator holds.
    UnknownKey,
    /// The token's `alg` is not in `algorithms`, is `none`, or does not fit the key type.
    AlgorithmNotAllowed,
    /// A claim listed in `require` (or the user id claim) is absent.
    MissingClaim,
    /// A claim does not have the configured value, or `exp - iat` exceeds `max_lifetime_seconds`.
    ClaimMismatch,
    /// The credential matches a revocation (`revocations.file`, `keygate revoke`).
    CredentialRevoked,
    /// Authenticators of one alternative disagree on the user id, or a `bind` / `bind_json`
    /// does not hold.
    IdentityMismatch,
    /// The route's `allow_if` condition is false, or could not be evaluated.
    ConditionFailed,
    /// Unknown client key or wrong client secret (deliberately indistinguishable).
    InvalidClient,
    /// The API key (or public key) matches no configured key.
    InvalidApiKey,
    /// The HMAC user token does not match the user id.
    InvalidHmac,
    /// The keys needed to verify the credential are not available (JWK set provider down).
    KeySourceUnavailable,
    /// No route matches and `unmatched: deny`.
    NoRoute,
    /// The path has dot-segments, an encoded `/` or `\`, NUL, `;`, or invalid percent-encoding,
    /// or the request target is neither origin-form nor an accepted absolute-form URI.
    MalformedPath,
    /// The request cannot be read one way only: a forward-auth request whose front proxy's
    /// headers are missing, repeated or malformed, or an ambiguous method override.
    MalformedRequest,
    /// A client-supplied identity header that keygate cannot remove from what the backend
    /// receives (forward-auth: the front proxy forwards the client's headers itself).
    SpoofedIdentity,
    /// Engine.IO long-polling on a route with `socketio: true`, or an Engine.IO version keygate
    /// does not gate.
    WebsocketRequired,
    /// The path matches a route whose `methods` do not include the request's (405, `Allow`).
    MethodNotAllowed,
    /// A CORS preflight whose origin, method or headers the `cors` block does not allow.
    CorsNotAllowed,
    /// A body keygate must read is over `limits.max_inspected_body_bytes` (413).
    BodyTooLarge,
    /// A body keygate must read is not the JSON (or form) it needs.
    MalformedBody,
    /// The request line and headers exceed `limits.max_request_header_bytes` (431).
    RequestHeaderTooLarge,
    /// The request head did not arrive within `limits.request_header_timeout_seconds` (408).
    RequestHeaderTimeout,
    /// The client address is blocked after too many credential failures (429, `Retry-After`).
    TooManyFailures,
    /// The route's `quota` is used up for this window (429, `Retry-After`, `RateLimit`).
    QuotaExceeded,
    /// `shared_state.on_unavailable: deny` and Redis cannot be reached (503).
    SharedStateUnavailable,
}

/// What kind of refusal a [`Reason`] is. Decisions that depend on the kind (may `enforce:
/// observe` forward it? does `throttle` count it?) ask the class, never a list of variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No credential at all (401 `missing_credentials`).
    Absent,
    /// A credential was presented and refused (401): what `throttle` counts.
    Credential,
    /// Authenticated, but not allowed here (403 identity or condition), or the keys to decide
    /// are unavailable (503 `key_source_unavailable`).
    Authorization,
    /// The request's shape: path, method, CORS, head, body, front-proxy headers. Refused even
    /// on `enforce: observe` routes, since the backend would read it another way.
    Request,
    /// A limit on the client or the route (429), or shared state that is down (503).
    Limit,
}

impl Reason {
    /// The stable snake_case spelling used in bodies, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The reason spelled `s`, if any.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::iter().find(|r| r.as_str() == s)
    }

    /// HTTP status: 401 for missing/invalid credentials, 403 for valid-but-not-allowed,
    /// 400 for requests keygate refuses to interpret, 405/408/413/431 for the request's shape,
    /// 429 for limits, 503 when what the decision needs is unavailable.
    pub const fn status(self) -> u16 {
        match self {
            Reason::IdentityMismatch
            | Reason::ConditionFailed
            | Reason::NoRoute
            | Reason::CorsNotAllowed => 403,
            Reason::MalformedPath
            | Reason::MalformedRequest
            | Reason::SpoofedIdentity
            | Reason::WebsocketRequired
            | Reason::MalformedBody => 400,
            Reason::MethodNotAllowed => 405,
            Reason::RequestHeaderTimeout => 408,
            Reason::BodyTooLarge => 413,
            Reason::RequestHeaderTooLarge => 431,
            Reason::TooManyFailures | Reason::QuotaExceeded => 429,
            Reason::KeySourceUnavailable | Reason::SharedStateUnavailable => 503,
            _ => 401,
        }
    }

    /// Its class (see [`Class`]).
    pub const fn class(self) -> Class {
        match self {
            Reason::MissingCredentials => Class::Absent,
            Reason::IdentityMismatch | Reason::ConditionFailed | Reason::KeySourceUnavailable => {
                Class::Authorization
            }
            Reason::TooManyFailures | Reason::QuotaExceeded | Reason::SharedStateUnavailable => {
                Class::Limit
            }
            r if r.status() == 401 => Class::Credential,
            _ => Class::Request,
        }
    }

    /// Whether an `enforce: observe` route forwards the request anyway (credential and
    /// authorization failures); the request's shape and limits are always enforced.
    pub const fn observable(self) -> bool {
        matches!(
            self.class(),
            Class::Absent | Class::Credential | Class::Authorization
        )
    }

    /// Whether `throttle` counts it against the client address: a credential was presented
    /// and refused (a browser calling before it logged in is not an attack).
    pub const fn credential_failure(self) -> bool {
        matches!(self.class(), Class::Credential)
    }

    /// The `error` field of the JSON body, derived from the status.
    pub const fn error(self) -> &'static str {
        match self.status() {
            401 => "unauthorized",
            403 => "forbidden",
            400 => "bad_request",
            405 => "method_not_allowed",
            408 => "request_timeout",
            413 => "content_too_large",
            429 => "too_many_requests",
            431 => "request_header_fields_too_large",
            _ => "unavailable",
        }
    }

    /// The `WWW-Authenticate` challenge of a denial on a route that accepts a Bearer source
    /// (RFC 6750 §3): `Bearer` when no credential was sent, `Bearer error="invalid_token"` for
    /// any other 401; none otherwise.
    pub const fn challenge(self, bearer: bool) -> Option<&'static str> {
        match (bearer, self.status(), self) {
            (true, 401, Reason::MissingCredentials) => Some("Bearer"),
            (true, 401, _) => Some(r#"Bearer error="invalid_token""#),
            _ => None,
        }
    }

    /// The JSON response body, `{"error":"...","reason":"..."}`.
    pub fn body(self) -> String {
        format!(
            r#"{{"error":"{}","reason":"{}"}}"#,
            self.error(),
            self.as_str()
        )
    }

    /// How far verification got before failing. When every alternative of a route fails, the
    /// reason reported is the one of highest rank (the first among equals), so a client learns
    /// the most specific problem and a 503 is never hidden behind a 401.
    pub(crate) const fn rank(self) -> u8 {
        match self {
            Reason::MissingCredentials => 0,
            Reason::MalformedCredentials => 1,
            Reason::InvalidApiKey
            | Reason::InvalidClient
            | Reason::InvalidHmac
            | Reason::UnknownKey
            | Reason::AlgorithmNotAllowed => 2,
            Reason::InvalidSignature => 3,
            Reason::TokenExpired
            | Reason::TokenNotYetValid
            | Reason::InvalidAudience
            | Reason::InvalidIssuer
            | Reason::MissingClaim
            | Reason::ClaimMismatch
            | Reason::CredentialRevoked => 4,
            Reason::IdentityMismatch | Reason::ConditionFailed => 5,
            Reason::KeySourceUnavailable => 6,
            _ => 7,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::iter() {
            let s = r.as_str();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s), "{s} twice");
            assert_eq!(Reason::parse(s), Some(r));
        }
        assert_eq!(seen.len(), Reason::COUNT);
        assert_eq!(Reason::parse("nope"), None);
    }

    #[test]
    fn statuses_follow_the_spec() {
        let table = [
            (Reason::MissingCredentials, 401),
            (Reason::CredentialRevoked, 401),
            (Reason::IdentityMismatch, 403),
            (Reason::ConditionFailed, 403),
            (Reason::NoRoute, 403),
            (Reason::MalformedPath, 400),
            (Reason::MalformedRequest, 400),
            (Reason::SpoofedIdentity, 400),
            (Reason::MalformedBody, 400),
            (Reason::BodyTooLarge, 413),
            (Reason::QuotaExceeded, 429),
            (Reason::SharedStateUnavailable, 503),
            (Reason::KeySourceUnavailable, 503),
        ];
        for (r, s) in table {
            assert_eq!(r.status(), s, "{r}");
        }
        assert_eq!(
            Reason::InvalidClient.body(),
            r#"{"error":"unauthorized","reason":"invalid_client"}"#
        );
    }

    #[test]
    fn classes_decide_observe_and_throttle() {
        for r in Reason::iter() {
            // Only a presented-and-refused credential is a throttle failure.
            assert_eq!(
                r.credential_failure(),
                r.status() == 401 && r != Reason::MissingCredentials,
                "{r}"
            );
            // What observe forwards is exactly what a route's authenticators can produce.
            assert_eq!(r.observable(), r.rank() < 7, "{r}");
        }
        assert!(!Reason::QuotaExceeded.observable());
        assert!(!Reason::MalformedBody.observable());
        assert!(Reason::ConditionFailed.observable());
    }
}
