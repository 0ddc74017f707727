//! The config schema of shared state (`docs/config.md`, "Shared state (Redis)"): the
//! `shared_state` block and a route's `quota`. Checked and compiled by `crate::shared`.

use serde::Deserialize;

use super::value::{SecretStr, Str};

/// `shared_state:` throttle counts and blocks, route quotas and revocations kept in Redis and
/// shared by every replica using the same `redis_url` and `key_prefix`. Needs a restart to
/// change.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct SharedStateConfig {
    /// `redis://[user:password@]host:port/db` or `rediss://` (TLS, verified against the system
    /// roots); `${VAR}` is expanded. Secret: never printed, redacted in every error (required).
    pub redis_url: SecretStr,
    /// Prefix of every key and of the pub/sub channel (`keygate:`).
    pub key_prefix: Str,
    /// Deadline of one Redis call on the request path, milliseconds (50).
    pub timeout_ms: u64,
    /// What a request that needs shared state gets while Redis cannot be reached.
    pub on_unavailable: OnUnavailable,
}

impl Default for SharedStateConfig {
    fn default() -> Self {
        SharedStateConfig {
            redis_url: SecretStr::default(),
            key_prefix: Str("keygate:".into()),
            timeout_ms: 50,
            on_unavailable: OnUnavailable::default(),
        }
    }
}

/// `shared_state.on_unavailable`.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Fall back to this replica's own counters and the revocations last seen (default).
    #[default]
    Local,
    /// Refuse requests that need shared state with 503 `shared_state_unavailable`.
    Deny,
}

/// `routes[].quota:` at most `requests` requests per `per_seconds`-second window for each
/// value of `by`; over it, 429 `quota_exceeded`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Requests allowed per window (at least 1).
    pub requests: u64,
    /// The window, seconds (at least 1).
    pub per_seconds: u64,
    /// Who a counter belongs to: `user`, `credential` (default), `client_address` or
    /// `claim:<name>`.
    #[serde(default = "credential")]
    pub by: Str,
}

fn credential() -> Str {
    Str("credential".into())
}
