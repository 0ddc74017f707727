//! The `identity.assertion` part of the schema (`docs/config.md`, "Signed identity assertion").

use serde::Deserialize;

use super::value::Str;

/// `identity.assertion`: keygate signs a short-lived JWT (RFC 7519, compact JWS RFC 7515) per
/// allowed request, which the backend verifies with the JWK set of the admin port
/// (`GET /.well-known/jwks.json`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct AssertionConfig {
    /// Request header carrying it (`x-auth-assertion`); stripped from clients like every
    /// identity header.
    pub header: Str,
    /// PEM file of keygate's signing key: PKCS#8 EC P-256 (ES256) or Ed25519 (EdDSA); required.
    pub key_file: Str,
    /// `kid` of the JWS header and the JWK; the key's RFC 7638 thumbprint when absent.
    pub kid: Option<Str>,
    /// The `iss` claim (`keygate`).
    pub issuer: Str,
    /// The `aud` claim: who the assertion is for (required).
    pub audience: Option<Str>,
    /// `exp - iat`, seconds (60).
    pub ttl_seconds: u64,
    /// Keys signed with before a rotation: their public halves stay in the JWK set.
    pub previous_keys: Vec<PreviousKeyConfig>,
}

impl Default for AssertionConfig {
    fn default() -> Self {
        AssertionConfig {
            header: Str("x-auth-assertion".into()),
            key_file: Str::default(),
            kid: None,
            issuer: Str("keygate".into()),
            audience: None,
            ttl_seconds: 60,
            previous_keys: Vec::new(),
        }
    }
}

/// A key of `identity.assertion.previous_keys` (published, never signed with).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PreviousKeyConfig {
    /// Its `kid`; the key's RFC 7638 thumbprint when absent.
    pub kid: Option<Str>,
    /// PEM file of the key (private PKCS#8 as `key_file`, or its public SPKI half).
    pub key_file: Str,
}
