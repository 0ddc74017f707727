//! Why a request was refused: one enum, mapped to HTTP status, JSON body and metric label in
//! exactly one place (`docs/config.md`, "Responses to denied requests").

/// A stable, machine-readable denial reason. The `as_str` spelling is public interface: it is
/// the `reason` field of the JSON body and the `reason` label of `keygate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Authenticators of one alternative disagree on the user id, or a `bind` does not hold.
    IdentityMismatch,
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
    /// The path has dot-segments, an encoded `/` or `\`, NUL, `;`, or invalid percent-encoding.
    MalformedPath,
    /// Engine.IO long-polling on a route with `socketio: true`.
    WebsocketRequired,
    /// The path matches a route whose `methods` do not include the request's (405, `Allow`).
    MethodNotAllowed,
    /// A CORS preflight whose origin, method or headers the `cors` block does not allow.
    CorsNotAllowed,
    /// The request line and headers exceed `limits.max_request_header_bytes` (431).
    RequestHeaderTooLarge,
    /// The request head did not arrive within `limits.request_header_timeout_seconds` (408).
    RequestHeaderTimeout,
    /// The client address is blocked after too many credential failures (429, `Retry-After`).
    TooManyFailures,
}

impl Reason {
    /// Every reason, in documentation order.
    pub const ALL: [Reason; 24] = [
        Reason::MissingCredentials,
        Reason::MalformedCredentials,
        Reason::InvalidSignature,
        Reason::TokenExpired,
        Reason::TokenNotYetValid,
        Reason::InvalidAudience,
        Reason::InvalidIssuer,
        Reason::UnknownKey,
        Reason::AlgorithmNotAllowed,
        Reason::MissingClaim,
        Reason::ClaimMismatch,
        Reason::IdentityMismatch,
        Reason::InvalidClient,
        Reason::InvalidApiKey,
        Reason::InvalidHmac,
        Reason::KeySourceUnavailable,
        Reason::NoRoute,
        Reason::MalformedPath,
        Reason::WebsocketRequired,
        Reason::MethodNotAllowed,
        Reason::CorsNotAllowed,
        Reason::RequestHeaderTooLarge,
        Reason::RequestHeaderTimeout,
        Reason::TooManyFailures,
    ];

    /// The stable snake_case spelling used in bodies, logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::MissingCredentials => "missing_credentials",
            Reason::MalformedCredentials => "malformed_credentials",
            Reason::InvalidSignature => "invalid_signature",
            Reason::TokenExpired => "token_expired",
            Reason::TokenNotYetValid => "token_not_yet_valid",
            Reason::InvalidAudience => "invalid_audience",
            Reason::InvalidIssuer => "invalid_issuer",
            Reason::UnknownKey => "unknown_key",
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::MissingClaim => "missing_claim",
            Reason::ClaimMismatch => "claim_mismatch",
            Reason::IdentityMismatch => "identity_mismatch",
            Reason::InvalidClient => "invalid_client",
            Reason::InvalidApiKey => "invalid_api_key",
            Reason::InvalidHmac => "invalid_hmac",
            Reason::KeySourceUnavailable => "key_source_unavailable",
            Reason::NoRoute => "no_route",
            Reason::MalformedPath => "malformed_path",
            Reason::WebsocketRequired => "websocket_required",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::CorsNotAllowed => "cors_not_allowed",
            Reason::RequestHeaderTooLarge => "request_header_too_large",
            Reason::RequestHeaderTimeout => "request_header_timeout",
            Reason::TooManyFailures => "too_many_failures",
        }
    }

    /// HTTP status: 401 for missing/invalid credentials, 403 for valid-but-not-allowed,
    /// 400 for requests keygate refuses to interpret, 405/431 for the request's shape, 503 when
    /// keys are unavailable.
    pub const fn status(self) -> u16 {
        match self {
            Reason::IdentityMismatch | Reason::NoRoute | Reason::CorsNotAllowed => 403,
            Reason::MalformedPath | Reason::WebsocketRequired => 400,
            Reason::MethodNotAllowed => 405,
            Reason::RequestHeaderTooLarge => 431,
            Reason::RequestHeaderTimeout => 408,
            Reason::TooManyFailures => 429,
            Reason::KeySourceUnavailable => 503,
            _ => 401,
        }
    }

    /// The `error` field of the JSON body, derived from the status.
    pub const fn error(self) -> &'static str {
        match self.status() {
            401 => "unauthorized",
            403 => "forbidden",
            400 => "bad_request",
            405 => "method_not_allowed",
            408 => "request_timeout",
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
            | Reason::ClaimMismatch => 4,
            Reason::IdentityMismatch => 5,
            Reason::KeySourceUnavailable => 6,
            Reason::NoRoute
            | Reason::MalformedPath
            | Reason::WebsocketRequired
            | Reason::MethodNotAllowed
            | Reason::CorsNotAllowed
            | Reason::RequestHeaderTooLarge
            | Reason::RequestHeaderTimeout
            | Reason::TooManyFailures => 7,
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
    fn all_is_in_declaration_order() {
        // `metrics::RouteCounters` indexes its per-reason counters by `reason as usize`.
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r}");
        }
    }

    #[test]
    fn statuses_follow_the_spec() {
        assert_eq!(Reason::MissingCredentials.status(), 401);
        assert_eq!(Reason::IdentityMismatch.status(), 403);
        assert_eq!(Reason::NoRoute.status(), 403);
        assert_eq!(Reason::MalformedPath.status(), 400);
        assert_eq!(Reason::KeySourceUnavailable.status(), 503);
        assert_eq!(
            Reason::InvalidClient.body(),
            r#"{"error":"unauthorized","reason":"invalid_client"}"#
        );
    }
}
