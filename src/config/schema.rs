//! The typed form of the config document (`docs/config.md`, schema version 1). Field names here
//! are the public interface; every struct denies unknown fields. Each struct with defaults has
//! one `Default` impl and `#[serde(default)]`; semantic checks live in `crate::ruleset`.

use indexmap::IndexMap;
use serde::Deserialize;

pub use super::assertion::*;
pub use super::authenticators::*;
use super::forward_auth::ForwardAuthConfig;
use super::routes::RouteConfig;
pub use super::sessions::*;
pub use super::shared::*;
use super::value::{OneOrMany, Str};

/// The whole config document (schema version 1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Must be `1` (required).
    pub version: Option<u32>,
    /// `production` (default) or `development`.
    pub mode: Mode,
    /// Client-facing address (`0.0.0.0:8080`).
    pub listen: Str,
    /// Admin address for `/metrics`, `/healthz`, `/readyz` (`0.0.0.0:9090`).
    pub admin_listen: Str,
    /// Optional TLS termination on `listen`.
    pub tls: Option<TlsConfig>,
    /// The backend keygate forwards to (`url` is required).
    pub upstream: UpstreamConfig,
    /// Identity headers: what is stripped and what is set.
    pub identity: IdentityConfig,
    /// Size, time and connection limits.
    pub limits: LimitsConfig,
    /// Verified-token cache.
    pub token_cache: TokenCacheConfig,
    /// SIGTERM drain time, seconds (25).
    pub shutdown_grace_seconds: u64,
    /// Named authenticators, referenced by routes.
    pub authenticators: IndexMap<String, AuthenticatorConfig>,
    /// The route table.
    pub routes: Vec<RouteConfig>,
    /// What happens to a request no route matches.
    pub unmatched: Unmatched,
    /// keygate answers CORS preflights itself when set (and never forwards them).
    pub cors: Option<CorsConfig>,
    /// Without `cors`: what a CORS preflight gets (`deny`, the default, authenticates it).
    pub cors_preflight: CorsPreflight,
    /// CIDRs of proxies in front of keygate whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Str>,
    /// Failed-authentication throttling per client address; off when absent.
    pub throttle: Option<ThrottleConfig>,
    /// A second listener answering auth decisions for another proxy; off when absent.
    pub forward_auth: Option<ForwardAuthConfig>,
    /// One JSON line per request on stdout (true).
    pub access_log: bool,
    /// Fraction of allowed requests written to the access log, 0.0 to 1.0 (1.0); denials are
    /// always written.
    pub access_log_sample_ratio: f64,
    /// OpenTelemetry traces; nothing is traced or exported without `telemetry.otlp_endpoint`.
    pub telemetry: Option<TelemetryConfig>,
    /// Throttle, quotas and revocations shared through Redis; per replica when absent.
    pub shared_state: Option<SharedStateConfig>,
    /// Long-lived (upgraded) connections: closed when their credential ends.
    pub sessions: SessionsConfig,
    /// Credentials refused before they expire; none when absent.
    pub revocations: Option<RevocationsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: None,
            mode: Mode::default(),
            listen: Str("0.0.0.0:8080".into()),
            admin_listen: Str("0.0.0.0:9090".into()),
            tls: None,
            upstream: UpstreamConfig::default(),
            identity: IdentityConfig::default(),
            limits: LimitsConfig::default(),
            token_cache: TokenCacheConfig::default(),
            shutdown_grace_seconds: 25,
            authenticators: IndexMap::new(),
            routes: Vec::new(),
            unmatched: Unmatched::default(),
            cors: None,
            cors_preflight: CorsPreflight::default(),
            trusted_proxies: Vec::new(),
            throttle: None,
            forward_auth: None,
            access_log: true,
            access_log_sample_ratio: 1.0,
            telemetry: None,
            shared_state: None,
            sessions: SessionsConfig::default(),
            revocations: None,
        }
    }
}

/// Without a `cors` block, what happens to a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`).
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CorsPreflight {
    /// Authenticated like any other request (default).
    #[default]
    Deny,
    /// Forwarded anonymously, stripped to `Host`, `Origin` and `Access-Control-Request-*`, when
    /// it has no body, no `Upgrade`, and asks for a method the matched route allows.
    Forward,
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
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `http://host:port` or `https://host:port`; no path (required).
    pub url: Str,
    /// TCP (and TLS) connect timeout, milliseconds (1000).
    pub connect_timeout_ms: u64,
    /// Timeout for each read from the upstream, milliseconds (60000).
    pub read_timeout_ms: u64,
    /// For an https upstream: PEM file of the CA(s) to trust instead of the system roots
    /// (a private CA, a service-mesh issuer). Needs a restart to change.
    pub ca_file: Option<Str>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: Str::default(),
            connect_timeout_ms: 1000,
            read_timeout_ms: 60000,
            ca_file: None,
        }
    }
}

/// Identity headers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Every header starting with one of these (case-insensitive, `_` = `-`) is removed
    /// (`["x-auth-"]`).
    pub strip_prefixes: Vec<Str>,
    /// Header carrying the authenticated user id (`x-auth-user-id`).
    pub user_id_header: Str,
    /// Header carrying the authenticator kinds, e.g. `public_key+jwt` (`x-auth-method`).
    pub method_header: Str,
    /// Header carrying `authenticator/key-or-client` (`x-auth-credential`).
    pub credential_header: Str,
    /// JWT claim name -> forwarded header name.
    pub claims: IndexMap<String, Str>,
    /// Socket.IO: key set in the CONNECT packet's auth object (`identity`).
    pub socketio_key: Str,
    /// A signed JWT of the identity on every allowed request; off when absent.
    pub assertion: Option<AssertionConfig>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            strip_prefixes: vec![Str("x-auth-".into())],
            user_id_header: Str("x-auth-user-id".into()),
            method_header: Str("x-auth-method".into()),
            credential_header: Str("x-auth-credential".into()),
            claims: IndexMap::new(),
            socketio_key: Str("identity".into()),
            assertion: None,
        }
    }
}

/// Limits.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longer credentials are `malformed_credentials`. Bytes (8192).
    pub max_token_bytes: usize,
    /// Seconds from the 101 within which a Socket.IO websocket must send its CONNECT; an
    /// absolute deadline, not an idle timeout (10).
    pub socketio_connect_timeout_seconds: u64,
    /// Request line + headers, bytes; larger heads get 431 and the connection closes (32768).
    pub max_request_header_bytes: usize,
    /// Deadline for a whole request head, seconds (10): from accept for the first request of a
    /// connection, from its first byte for later ones.
    pub request_header_timeout_seconds: u64,
    /// Client connections held at once; beyond it new connections are closed (10000).
    pub max_connections: usize,
    /// A keep-alive client connection idle this long between requests is closed, seconds (60).
    pub idle_timeout_seconds: u64,
    /// Bodies keygate must read (`bind_json`, `json_body` sources), bytes (65536, the most):
    /// larger ones get 413 `body_too_large`.
    pub max_inspected_body_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_token_bytes: 8192,
            socketio_connect_timeout_seconds: 10,
            max_request_header_bytes: 32768,
            request_header_timeout_seconds: 10,
            max_connections: 10000,
            idle_timeout_seconds: 60,
            max_inspected_body_bytes: 65536,
        }
    }
}

/// Verified-token cache settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenCacheConfig {
    /// Most verified tokens held; 0 disables the cache (100000).
    pub max_entries: u64,
    /// Seconds; an entry never outlives the token's `exp` either (300).
    pub max_ttl_seconds: u64,
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        TokenCacheConfig {
            max_entries: 100_000,
            max_ttl_seconds: 300,
        }
    }
}

/// `cors:` keygate answers CORS preflights itself (Fetch standard, "CORS protocol").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`); `"*"` only without `allow_credentials`.
    pub allowed_origins: Vec<Str>,
    /// Request headers a preflight may ask for (case-insensitive).
    pub allowed_headers: Vec<Str>,
    /// Response headers exposed to the page (`Access-Control-Expose-Headers`).
    pub expose_headers: Vec<Str>,
    /// `Access-Control-Max-Age`, seconds (600).
    pub max_age_seconds: u64,
    /// `Access-Control-Allow-Credentials: true` (false).
    pub allow_credentials: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: Vec::new(),
            allowed_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age_seconds: 600,
            allow_credentials: false,
        }
    }
}

/// `throttle:` more than `max_failures` credential failures (401s with a credential) from one
/// client address within `window_seconds` block it for `block_seconds` (429 `too_many_failures`).
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Failures allowed per window (20).
    pub max_failures: u32,
    /// The window, seconds (60).
    pub window_seconds: u64,
    /// How long an address stays blocked, seconds (60).
    pub block_seconds: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 20,
            window_seconds: 60,
            block_seconds: 60,
        }
    }
}

/// `telemetry:` OpenTelemetry traces (W3C Trace Context in, OTLP/HTTP protobuf out). Needs a
/// restart to change.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base URL (`http://otel-collector:4318`); spans are POSTed to
    /// `<otlp_endpoint>/v1/traces`. Unset: no span is created or exported.
    pub otlp_endpoint: Option<Str>,
    /// Head sampling for traces keygate starts, 0.0 to 1.0 (1.0); a client's sampled flag is
    /// honoured (parent-based).
    pub sample_ratio: f64,
    /// The `service.name` resource attribute (`keygate`).
    pub service_name: Str,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            sample_ratio: 1.0,
            service_name: Str("keygate".into()),
        }
    }
}

/// One source or a list ("the first present").
pub type Sources = OneOrMany<SourceConfig>;
