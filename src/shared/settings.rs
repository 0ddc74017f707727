//! `shared_state` compiled: the Redis URL checked at load (so `keygate check` refuses a bad
//! one), a redacted form of it for logs, and the text of any error scrubbed of the password.

use std::time::Duration;

use crate::config::{FieldError, OnUnavailable, SharedStateConfig};
use crate::secret::Secret;

/// The compiled `shared_state` block (restart-only). `Debug` never shows the URL's password.
#[derive(Clone)]
pub(crate) struct Settings {
    /// The URL as configured (after `${VAR}` expansion); secret.
    pub(crate) url: Secret,
    /// The URL with any password replaced by `***`, for logs.
    pub(crate) redacted: String,
    /// `key_prefix`.
    pub(crate) prefix: String,
    /// `timeout_ms`.
    pub(crate) timeout: Duration,
    /// `on_unavailable`.
    pub(crate) on_unavailable: OnUnavailable,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.redacted)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("on_unavailable", &self.on_unavailable)
            .finish()
    }
}

impl PartialEq for Settings {
    fn eq(&self, other: &Settings) -> bool {
        self.url == other.url
            && self.prefix == other.prefix
            && self.timeout == other.timeout
            && self.on_unavailable == other.on_unavailable
    }
}

impl Settings {
    /// Checks `shared_state`: a `redis://` or `rediss://` URL the client accepts, a non-empty
    /// prefix, a timeout of 1 to 10000 ms. Errors never contain the URL.
    pub(crate) fn compile(cfg: &SharedStateConfig) -> Result<Settings, FieldError> {
        let url = cfg.redis_url.0.expose();
        let field = "shared_state.redis_url";
        if url.is_empty() {
            return Err(FieldError::new(field, "required (redis://host:6379/0)"));
        }
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(FieldError::new(
                field,
                "must start with redis:// or rediss:// (value not shown: it may hold a password)",
            ));
        }
        ::redis::Client::open(url).map_err(|_| {
            FieldError::new(
                field,
                "not a valid Redis URL (value not shown: it may hold a password)",
            )
        })?;
        if cfg.key_prefix.is_empty() {
            return Err(FieldError::new(
                "shared_state.key_prefix",
                "must not be empty",
            ));
        }
        if !(1..=10_000).contains(&cfg.timeout_ms) {
            return Err(FieldError::new(
                "shared_state.timeout_ms",
                "must be between 1 and 10000",
            ));
        }
        Ok(Settings {
            url: cfg.redis_url.0.clone(),
            redacted: redact_url(url),
            prefix: cfg.key_prefix.0.clone(),
            timeout: Duration::from_millis(cfg.timeout_ms),
            on_unavailable: cfg.on_unavailable,
        })
    }

    /// `text` (an error from the client or the server) with the URL and its password removed.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let url = self.url.expose();
        let mut out = text.replace(url, &self.redacted);
        if let Some(pw) = password(url).filter(|p| !p.is_empty()) {
            out = out.replace(pw, "***");
            if let Ok(decoded) = percent_encoding::percent_decode_str(pw).decode_utf8() {
                if !decoded.is_empty() {
                    out = out.replace(&*decoded, "***");
                }
            }
        }
        out
    }
}

/// The userinfo password of `url`, as written in it.
fn password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    Some(userinfo.split_once(':').map_or(userinfo, |(_, p)| p))
}

/// `url` with the userinfo password (or a lone userinfo, which Redis reads as a password)
/// replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::{SecretStr, Str};

    fn cfg(url: &str) -> SharedStateConfig {
        SharedStateConfig {
            redis_url: SecretStr(Secret::new(url.into())),
            key_prefix: Str("kg:".into()),
            ..SharedStateConfig::default()
        }
    }

    #[test]
    fn urls_are_checked_and_never_shown() {
        let s = Settings::compile(&cfg("redis://:s3cr%40t@127.0.0.1:6380/2")).unwrap();
        assert_eq!(s.redacted, "redis://:***@127.0.0.1:6380/2");
        assert!(!format!("{s:?}").contains("s3cr"));
        let scrubbed = s.scrub("WRONGPASS for s3cr@t at redis://:s3cr%40t@127.0.0.1:6380/2");
        assert!(!scrubbed.contains("s3cr"), "{scrubbed}");
        let named = Settings::compile(&cfg("rediss://app:pw@redis.internal/0")).unwrap();
        assert_eq!(named.redacted, "rediss://app:***@redis.internal/0");
        let plain = Settings::compile(&cfg("redis://127.0.0.1:6379")).unwrap();
        assert_eq!(plain.redacted, "redis://127.0.0.1:6379");
        assert_eq!(plain.scrub("refused"), "refused");
        for bad in ["", "http://:pw@h/0", "redis://:pw@", "pw"] {
            let e = Settings::compile(&cfg(bad)).unwrap_err().to_string();
            assert!(!bad.contains("pw") || !e.contains("pw"), "{e}");
        }
        let mut c = cfg("redis://h/0");
        c.timeout_ms = 0;
        assert!(Settings::compile(&c).is_err());
    }
}
