//! The compiled `limits:` block (`docs/config.md`, `limits`): sizes in bytes, times as
//! `Duration`, read by the connection guard and the request path.

use std::time::Duration;

use crate::config::LimitsConfig;

/// `limits:`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// `max_token_bytes`: longer credentials are `malformed_credentials`.
    pub(crate) max_token_bytes: usize,
    /// `socketio_connect_timeout_seconds` (at least 1 s): the CONNECT deadline from the 101.
    pub(crate) socketio_connect_timeout: Duration,
    /// `max_request_header_bytes`: request line + headers.
    pub(crate) max_request_header_bytes: usize,
    /// `request_header_timeout_seconds` (at least 1 s): the deadline for a whole request head.
    pub(crate) request_header_timeout: Duration,
    /// `max_connections`: client connections held at once.
    pub(crate) max_connections: usize,
    /// `idle_timeout_seconds` (at least 1 s): how long a keep-alive connection may wait for its
    /// next request head.
    pub(crate) idle_timeout: Duration,
    /// `max_inspected_body_bytes`: the largest body keygate reads (`bind_json`, `json_body`).
    pub(crate) max_inspected_body_bytes: usize,
}

impl Limits {
    /// Converts `limits:` (every value is valid; a zero timeout means 1 s).
    pub(crate) fn compile(cfg: &LimitsConfig) -> Limits {
        let at_least_a_second = |s: u64| Duration::from_secs(s.max(1));
        Limits {
            max_token_bytes: cfg.max_token_bytes,
            socketio_connect_timeout: at_least_a_second(cfg.socketio_connect_timeout_seconds),
            max_request_header_bytes: cfg.max_request_header_bytes,
            request_header_timeout: at_least_a_second(cfg.request_header_timeout_seconds),
            max_connections: cfg.max_connections,
            idle_timeout: at_least_a_second(cfg.idle_timeout_seconds),
            max_inspected_body_bytes: cfg.max_inspected_body_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_become_durations_of_at_least_one_second() {
        let l = Limits::compile(&LimitsConfig {
            socketio_connect_timeout_seconds: 0,
            request_header_timeout_seconds: 7,
            ..LimitsConfig::default()
        });
        assert_eq!(l.socketio_connect_timeout, Duration::from_secs(1));
        assert_eq!(l.request_header_timeout, Duration::from_secs(7));
        assert_eq!(l.max_token_bytes, 8192);
    }
}
