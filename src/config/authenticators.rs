//! The `authenticators:` part of the schema: credential sources and the five authenticator
//! kinds (`public_key`, `api_key`, `client_secret`, `hmac_token`, `jwt`), tagged by `type`.

use indexmap::IndexMap;
use serde::Deserialize;

use super::value::{OneOrMany, SecretStr, Str};

/// Where a credential is read from. Exactly one of `header`, `query`, `cookie`, `path_param`,
/// `socketio_auth`, `json_body`; `scheme` goes with `header` or `socketio_auth`.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// `{ header: NAME }`: a request header (case-insensitive name).
    pub header: Option<Str>,
    /// `{ query: NAME }`: a query parameter (form-urlencoded).
    pub query: Option<Str>,
    /// `{ cookie: NAME }`: a cookie.
    pub cookie: Option<Str>,
    /// `{ path_param: NAME }`: a `{NAME}` parameter of the route template.
    pub path_param: Option<Str>,
    /// `{ socketio_auth: FIELD }`: a field of the Socket.IO CONNECT auth object (read only on
    /// routes with `socketio: true`).
    pub socketio_auth: Option<Str>,
    /// `{ json_body: POINTER }`: a string in the JSON request body at this JSON Pointer
    /// (RFC 6901); the body is read up to `limits.max_inspected_body_bytes` and forwarded
    /// unchanged.
    pub json_body: Option<Str>,
    /// With `header`/`socketio_auth`: a prefix such as `Bearer`, compared case-insensitively,
    /// then one space.
    pub scheme: Option<Str>,
}

/// An authenticator, tagged by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthenticatorConfig {
    /// `type: public_key`.
    PublicKey(PublicKeyConfig),
    /// `type: api_key`.
    ApiKey(ApiKeyConfig),
    /// `type: client_secret`.
    ClientSecret(ClientSecretConfig),
    /// `type: hmac_token`.
    HmacToken(HmacTokenConfig),
    /// `type: jwt` (boxed: the largest variant).
    Jwt(Box<JwtConfig>),
}

/// A named key: `value` / `value_file` (plain) or `sha256` (hex digest of the key).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Name used in the credential header (`authenticator/name`) and in logs.
    pub name: Str,
    /// The key itself (secret; `${VAR}` recommended).
    pub value: Option<SecretStr>,
    /// File holding the key (one trailing newline is removed).
    pub value_file: Option<Str>,
    /// Lowercase hex SHA-256 of the key (`keygate hash-secret`).
    pub sha256: Option<Str>,
}

/// `type: public_key`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PublicKeyConfig {
    /// Where the credential is read (the first present source).
    pub from: OneOrMany<SourceConfig>,
    /// The accepted keys.
    pub keys: Vec<KeyEntry>,
    /// Development mode only: where the claimed user id is read from.
    pub user_id_from: Option<OneOrMany<SourceConfig>>,
}

/// `type: api_key`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeyConfig {
    /// Where the credential is read (the first present source).
    pub from: OneOrMany<SourceConfig>,
    /// The accepted keys.
    pub keys: Vec<KeyEntry>,
}

/// `type: client_secret`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSecretConfig {
    /// Where the client key is read.
    pub key_from: OneOrMany<SourceConfig>,
    /// Where the client secret is read.
    pub secret_from: OneOrMany<SourceConfig>,
    /// The known clients.
    pub clients: Vec<ClientEntry>,
}

/// A client of `client_secret`: `secret`, `secret_file` or `secret_sha256`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// Name used in the credential header (`authenticator/name`) and in logs.
    pub name: Str,
    /// The client key (public identifier, e.g. `ck_live_7f3a`).
    pub key: Str,
    /// The secret itself (secret; `${VAR}` recommended).
    pub secret: Option<SecretStr>,
    /// File holding the secret (one trailing newline is removed).
    pub secret_file: Option<Str>,
    /// Lowercase hex SHA-256 of the secret (`keygate hash-secret`).
    pub secret_sha256: Option<Str>,
}

/// `type: hmac_token`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HmacTokenConfig {
    /// The secret itself (secret; `${VAR}` recommended).
    pub secret: Option<SecretStr>,
    /// File holding the secret (one trailing newline is removed).
    pub secret_file: Option<Str>,
    /// How the token is computed from the user id and the secret.
    pub scheme: HmacScheme,
    /// How the 32-byte token is written on the wire: `hex` (default) or `base64`.
    pub encoding: HmacEncoding,
    /// Where the per-user token is read.
    pub token_from: OneOrMany<SourceConfig>,
    /// Where the user id is read.
    pub user_id_from: OneOrMany<SourceConfig>,
}

/// How the per-user token is computed from the user id and the secret.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HmacScheme {
    /// Lowercase hex of HMAC-SHA256(key = secret, message = user_id) (default).
    #[default]
    HmacSha256,
    /// Lowercase hex of SHA-256(user_id || secret): what the Notifizz PHP SDK computes.
    Sha256Concat,
}

/// How an `hmac_token` token is written on the wire.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HmacEncoding {
    /// Hex, either case (default).
    #[default]
    Hex,
    /// Standard base64 (RFC 4648 §4), with or without `=` padding (MagicBell).
    Base64,
}

/// `type: jwt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Where the credential is read (the first present source).
    pub from: OneOrMany<SourceConfig>,
    /// Allowlist, required: RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512.
    pub algorithms: Vec<Str>,
    /// Static keys.
    pub keys: Vec<JwtKeyConfig>,
    /// JWK-set URL (RFC 7517 §5) fetched and rotated by keygate.
    pub jwks_url: Option<Str>,
    /// OpenID discovery document whose `jwks_uri` names the JWK set.
    pub openid_configuration_url: Option<Str>,
    /// Accepted `iss` values; `iss` is required when set.
    pub issuers: Vec<Str>,
    /// Accepted `aud` values (any one); `aud` is required when set.
    pub audiences: Vec<Str>,
    /// Refresh, rate-limit and staleness settings of the JWK-set provider.
    pub jwks: JwksConfig,
    /// Claims that must be present; `[exp]` when not given.
    pub require: Option<Vec<Str>>,
    /// Seconds of clock skew tolerated for `exp` and `nbf` (30).
    pub leeway_seconds: u64,
    /// Seconds; tokens with `exp - iat` above it fail `claim_mismatch`.
    pub max_lifetime_seconds: Option<u64>,
    /// Claim name -> required value (string: equals; list: one of).
    pub claims: IndexMap<String, OneOrMany<Str>>,
    /// The claim holding the user id (`sub`); `""` when the token names no user (the identity
    /// then has none).
    pub user_id_claim: Str,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            from: OneOrMany::default(),
            algorithms: Vec::new(),
            keys: Vec::new(),
            jwks_url: None,
            openid_configuration_url: None,
            issuers: Vec::new(),
            audiences: Vec::new(),
            jwks: JwksConfig::default(),
            require: None,
            leeway_seconds: 30,
            max_lifetime_seconds: None,
            claims: IndexMap::new(),
            user_id_claim: Str("sub".into()),
        }
    }
}

/// A static JWT verification key: exactly one of `pem`, `pem_file`, `jwk`, `jwks_file`,
/// `secret`, `secret_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// Key id matched against the token header `kid` (RFC 7515 §4.1.4).
    pub kid: Option<Str>,
    /// Public key PEM (`PUBLIC KEY` SPKI or `RSA PUBLIC KEY`).
    pub pem: Option<SecretStr>,
    /// File holding a public key PEM.
    pub pem_file: Option<Str>,
    /// An inline public JWK (RFC 7517).
    pub jwk: Option<serde_json::Value>,
    /// A file holding a JWK set.
    pub jwks_file: Option<Str>,
    /// An HS256/384/512 secret, at least 32 bytes (secret; `${VAR}` recommended).
    pub secret: Option<SecretStr>,
    /// File holding the secret (one trailing newline is removed).
    pub secret_file: Option<Str>,
}

/// JWK-set provider settings.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct JwksConfig {
    /// Background refresh period, seconds (3600).
    pub refresh_seconds: u64,
    /// At most one fetch per this many seconds (10).
    pub min_refresh_interval_seconds: u64,
    /// Seconds the last good keys are served while fetches fail (86400).
    pub stale_if_error_seconds: u64,
    /// Fetch timeout, milliseconds (2000).
    pub timeout_ms: u64,
}

impl Default for JwksConfig {
    fn default() -> Self {
        JwksConfig {
            refresh_seconds: 3600,
            min_refresh_interval_seconds: 10,
            stale_if_error_seconds: 86400,
            timeout_ms: 2000,
        }
    }
}
