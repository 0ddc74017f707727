//! The typed form of `../shared/spec/config-v1.md`. Field names here are the public interface;
//! every struct denies unknown fields. Semantic checks live in `crate::runtime` (compile step).

use indexmap::IndexMap;
use serde::Deserialize;

use super::value::{OneOrMany, SecretStr, Str};

/// The whole config document (schema version 1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Must be `1`.
    pub version: u32,
    /// `production` (default) or `development`.
    #[serde(default)]
    pub mode: Mode,
    /// Client-facing address, e.g. `0.0.0.0:8080`.
    #[serde(default = "d_listen")]
    pub listen: Str,
    /// Admin address for `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "d_admin_listen")]
    pub admin_listen: Str,
    /// Optional TLS termination on `listen`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The backend keygate forwards to.
    pub upstream: UpstreamConfig,
    /// Identity headers: what is stripped and what is set.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Size and time limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Verified-token cache.
    #[serde(default)]
    pub token_cache: TokenCacheConfig,
    /// SIGTERM drain time, seconds.
    #[serde(default = "d_grace")]
    pub shutdown_grace_seconds: u64,
    /// Named authenticators, referenced by routes.
    #[serde(default)]
    pub authenticators: IndexMap<String, AuthenticatorConfig>,
    /// The route table.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// What happens to a request no route matches.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`), which
    /// browsers always send without credentials (Fetch standard, CORS-preflight request).
    #[serde(default)]
    pub cors_preflight: CorsPreflight,
}

/// `cors_preflight: forward` (default): a preflight on a matched route is forwarded without
/// identity (identity headers stripped), so the backend answers CORS for browser clients.
/// `deny`: preflights are authenticated like any request (and so refused).
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CorsPreflight {
    /// Forwarded anonymously when the path matches a route.
    #[default]
    Forward,
    /// Authenticated like any other request.
    Deny,
}

fn d_listen() -> Str {
    Str("0.0.0.0:8080".into())
}
fn d_admin_listen() -> Str {
    Str("0.0.0.0:9090".into())
}
fn d_grace() -> u64 {
    25
}

/// `production`: a public key identifies the application only. `development`: a public key
/// alone authenticates the user named by `user_id_from` (Knock's development pattern).
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A public key identifies the application only (default).
    #[default]
    Production,
    /// A public key alone authenticates the user of its `user_id_from`.
    Development,
}

/// `unmatched: deny` (403 `no_route`) or `anonymous` (forwarded without identity).
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// 403 `no_route` (default).
    #[default]
    Deny,
    /// Forwarded without identity (identity headers still stripped).
    Anonymous,
}

/// PEM files for TLS termination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain served on `listen`.
    pub cert_file: Str,
    /// PEM private key of `cert_file`.
    pub key_file: Str,
}

/// The backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` or `https://host:port`; no path.
    pub url: Str,
    /// TCP (and TLS) connect timeout, milliseconds.
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Timeout for each read from the upstream, milliseconds.
    #[serde(default = "d_read_timeout")]
    pub read_timeout_ms: u64,
    /// For an https upstream: PEM file of the CA(s) to trust instead of the system roots
    /// (a private CA, a service-mesh issuer). Needs a restart to change.
    #[serde(default)]
    pub ca_file: Option<Str>,
}
fn d_connect_timeout() -> u64 {
    1000
}
fn d_read_timeout() -> u64 {
    60000
}

/// Identity headers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Every header starting with one of these (case-insensitive, `_` = `-`) is removed.
    #[serde(default = "d_strip_prefixes")]
    pub strip_prefixes: Vec<Str>,
    /// Header carrying the authenticated user id (default `x-auth-user-id`).
    #[serde(default = "d_user_id_header")]
    pub user_id_header: Str,
    /// Header carrying the authenticator kinds, e.g. `public_key+jwt` (default `x-auth-method`).
    #[serde(default = "d_method_header")]
    pub method_header: Str,
    /// Header carrying `authenticator/key-or-client` (default `x-auth-credential`).
    #[serde(default = "d_credential_header")]
    pub credential_header: Str,
    /// JWT claim name -> forwarded header name.
    #[serde(default)]
    pub claims: IndexMap<String, Str>,
    /// Socket.IO: key set in the CONNECT packet's auth object.
    #[serde(default = "d_socketio_key")]
    pub socketio_key: Str,
}
fn d_strip_prefixes() -> Vec<Str> {
    vec![Str("x-auth-".into())]
}
fn d_user_id_header() -> Str {
    Str("x-auth-user-id".into())
}
fn d_method_header() -> Str {
    Str("x-auth-method".into())
}
fn d_credential_header() -> Str {
    Str("x-auth-credential".into())
}
fn d_socketio_key() -> Str {
    Str("identity".into())
}
impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            strip_prefixes: d_strip_prefixes(),
            user_id_header: d_user_id_header(),
            method_header: d_method_header(),
            credential_header: d_credential_header(),
            claims: IndexMap::new(),
            socketio_key: d_socketio_key(),
        }
    }
}

/// Limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Longer credentials are `malformed_credentials`. Bytes.
    #[serde(default = "d_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Seconds a Socket.IO websocket may stay open without a CONNECT packet.
    #[serde(default = "d_socketio_timeout")]
    pub socketio_connect_timeout_seconds: u64,
}
fn d_max_token_bytes() -> usize {
    8192
}
fn d_socketio_timeout() -> u64 {
    10
}
impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_token_bytes: d_max_token_bytes(),
            socketio_connect_timeout_seconds: d_socketio_timeout(),
        }
    }
}

/// Verified-token cache settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCacheConfig {
    #[serde(default = "d_max_entries")]
    /// Most verified tokens held (0 disables the cache).
    pub max_entries: u64,
    /// Seconds; an entry never outlives the token's `exp` either.
    #[serde(default = "d_max_ttl")]
    pub max_ttl_seconds: u64,
}
fn d_max_entries() -> u64 {
    100_000
}
fn d_max_ttl() -> u64 {
    300
}
impl Default for TokenCacheConfig {
    fn default() -> Self {
        TokenCacheConfig {
            max_entries: d_max_entries(),
            max_ttl_seconds: d_max_ttl(),
        }
    }
}

/// Where a credential is read from. Exactly one of `header`, `query`, `cookie`, `path_param`,
/// `socketio_auth`; `scheme` goes with `header` or `socketio_auth`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `{ header: NAME }`: a request header (case-insensitive name).
    pub header: Option<Str>,
    /// `{ query: NAME }`: a query parameter (form-urlencoded).
    pub query: Option<Str>,
    /// `{ cookie: NAME }`: a cookie.
    pub cookie: Option<Str>,
    /// `{ path_param: NAME }`: a `{NAME}` parameter of the route template.
    pub path_param: Option<Str>,
    /// `{ socketio_auth: FIELD }`: a field of the Socket.IO CONNECT auth object.
    pub socketio_auth: Option<Str>,
    /// With `header`/`socketio_auth`: a prefix such as `Bearer`, compared case-insensitively, then one space.
    pub scheme: Option<Str>,
}

/// One source or a list ("the first present").
pub type Sources = OneOrMany<SourceConfig>;

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    /// Where the credential is read (the first present source).
    pub from: Sources,
    /// The accepted keys.
    pub keys: Vec<KeyEntry>,
    /// Development mode only: where the claimed user id is read from.
    #[serde(default)]
    pub user_id_from: Option<Sources>,
}

/// `type: api_key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Where the credential is read (the first present source).
    pub from: Sources,
    /// The accepted keys.
    pub keys: Vec<KeyEntry>,
}

/// `type: client_secret`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSecretConfig {
    /// Where the client key is read.
    pub key_from: Sources,
    /// Where the client secret is read.
    pub secret_from: Sources,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacTokenConfig {
    /// The secret itself (secret; `${VAR}` recommended).
    pub secret: Option<SecretStr>,
    /// File holding the secret (one trailing newline is removed).
    pub secret_file: Option<Str>,
    /// With `header`/`socketio_auth`: a prefix such as `Bearer`, compared case-insensitively, then one space.
    #[serde(default)]
    pub scheme: HmacScheme,
    /// Where the per-user token is read.
    pub token_from: Sources,
    /// Where the user id is read.
    pub user_id_from: Sources,
}

/// How the per-user token is computed from the user id and the secret.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HmacScheme {
    /// Lowercase hex of HMAC-SHA256(key = secret, message = user_id).
    #[default]
    HmacSha256,
    /// Lowercase hex of SHA-256(user_id || secret): what the Notifizz PHP SDK computes.
    Sha256Concat,
}

/// `type: jwt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Where the credential is read (the first present source).
    pub from: Sources,
    /// Allowlist, required: RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512.
    pub algorithms: Vec<Str>,
    /// The accepted keys.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// JWK-set URL (RFC 7517 §5) fetched and rotated by keygate.
    pub jwks_url: Option<Str>,
    /// OpenID discovery document whose `jwks_uri` names the JWK set.
    pub openid_configuration_url: Option<Str>,
    /// Accepted `iss` values; `iss` is required when set.
    #[serde(default)]
    pub issuers: Vec<Str>,
    /// Accepted `aud` values (any one); `aud` is required when set.
    #[serde(default)]
    pub audiences: Vec<Str>,
    /// Refresh, rate-limit and staleness settings of the JWK-set provider.
    #[serde(default)]
    pub jwks: JwksConfig,
    /// Claims that must be present (e.g. `sub`, `iat`, `exp`, or custom claims).
    #[serde(default)]
    pub require: Vec<Str>,
    /// Seconds of clock skew tolerated for `exp` and `nbf`.
    #[serde(default = "d_leeway")]
    pub leeway_seconds: u64,
    /// Seconds; tokens with `exp - iat` above it fail `claim_mismatch`.
    pub max_lifetime_seconds: Option<u64>,
    /// Claim name -> required value (string: equals; list: one of).
    #[serde(default)]
    pub claims: IndexMap<String, OneOrMany<Str>>,
    #[serde(default = "d_user_id_claim")]
    /// The claim holding the user id (default `sub`).
    pub user_id_claim: Str,
}
fn d_leeway() -> u64 {
    30
}
fn d_user_id_claim() -> Str {
    Str("sub".into())
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
    /// The secret itself (secret; `${VAR}` recommended).
    pub secret: Option<SecretStr>,
    /// File holding the secret (one trailing newline is removed).
    pub secret_file: Option<Str>,
}

/// JWK-set provider settings.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// Background refresh period, seconds.
    #[serde(default = "d_refresh")]
    pub refresh_seconds: u64,
    /// At most one fetch per this many seconds.
    #[serde(default = "d_min_refresh")]
    pub min_refresh_interval_seconds: u64,
    /// Seconds the last good keys are served while fetches fail.
    #[serde(default = "d_stale")]
    pub stale_if_error_seconds: u64,
    /// Fetch timeout, milliseconds.
    #[serde(default = "d_jwks_timeout")]
    pub timeout_ms: u64,
}
fn d_refresh() -> u64 {
    3600
}
fn d_min_refresh() -> u64 {
    10
}
fn d_stale() -> u64 {
    86400
}
fn d_jwks_timeout() -> u64 {
    2000
}
impl Default for JwksConfig {
    fn default() -> Self {
        JwksConfig {
            refresh_seconds: d_refresh(),
            min_refresh_interval_seconds: d_min_refresh(),
            stale_if_error_seconds: d_stale(),
            timeout_ms: d_jwks_timeout(),
        }
    }
}

/// A route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in the credential header (`authenticator/name`) and in logs.
    pub name: Str,
    /// Template: `{name}` one segment, `{*name}` the rest (possibly empty).
    pub path: Str,
    /// Allowed methods; absent means all.
    pub methods: Option<Vec<Str>>,
    /// Who may pass: `anonymous` or alternatives.
    pub auth: AuthSpec,
    /// `user_id` or `claims.<name>` -> `"{param}"`.
    #[serde(default)]
    pub bind: IndexMap<String, Str>,
}

/// `auth: anonymous`, or a list of alternatives (a name, or a list of names that must all pass).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "`anonymous` or a list of authenticator names / lists of names"
)]
pub enum AuthSpec {
    /// `anonymous`, or a single authenticator name.
    Word(String),
    /// Any one of these alternatives.
    Alternatives(Vec<AuthItem>),
}

/// One alternative.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "an authenticator name or a list of names")]
pub enum AuthItem {
    /// One authenticator.
    One(String),
    /// Authenticators that must all pass (their user ids must agree).
    All(Vec<String>),
}
