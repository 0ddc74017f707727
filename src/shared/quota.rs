//! Route quotas (`docs/config.md`, "Shared state (Redis)", `routes[].quota`): compiled once per
//! route, the counter key of a request, and the IETF `RateLimit-Policy` / `RateLimit` header
//! fields (draft-ietf-httpapi-ratelimit-headers-10, sections 2 and 3: a Structured Fields List
//! of one item, the policy name as an sf-string, `q` quota, `w` window seconds, `r` remaining,
//! `t` seconds until the window resets). No partition key (`pk`) is sent: the counter's owner
//! is the client itself, and naming it would disclose how keygate keys it.
//!
//! Windows are fixed, not sliding: a counter starts at a key's first request and lives
//! `per_seconds` (Redis `INCR` + `PEXPIRE` in one script, so every replica shares the window
//! Redis keeps, with no clock agreement needed). That is one counter and one round trip per
//! request, and an exact reset time for `t` and `Retry-After`. The price is the known boundary
//! burst (up to 2x `requests` across the end of one window and the start of the next); a
//! sliding log would cost a sorted-set entry per request, and the two-window approximation a
//! second key read per request, for a difference no client can rely on anyway.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::auth::Identity;
use crate::config::{FieldError, QuotaConfig};

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10 §2).
pub(crate) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10 §3).
pub(crate) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Who one counter belongs to (`quota.by`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum By {
    /// The authenticated user id.
    User,
    /// `x-auth-credential`: `authenticator/key-or-client`.
    Credential,
    /// The client address (behind `trusted_proxies`, the first untrusted hop).
    ClientAddress,
    /// A captured claim of the verified JWT.
    Claim(String),
}

impl By {
    /// Parses `user`, `credential`, `client_address` or `claim:<name>`.
    pub(crate) fn parse(s: &str) -> Result<By, String> {
        match s {
            "user" => Ok(By::User),
            "credential" => Ok(By::Credential),
            "client_address" => Ok(By::ClientAddress),
            _ => match s.strip_prefix("claim:") {
                Some(c) if !c.is_empty() => Ok(By::Claim(c.to_string())),
                _ => Err(format!(
                    "`{s}`: expected user, credential, client_address or claim:<name>"
                )),
            },
        }
    }
}

/// A route's compiled `quota`.
#[derive(Debug)]
pub(crate) struct Quota {
    /// The route's name (the policy name and the metric label).
    pub(crate) route: Arc<str>,
    /// Requests allowed per window.
    pub(crate) requests: u64,
    /// The window.
    pub(crate) window: Duration,
    /// Who a counter belongs to.
    pub(crate) by: By,
    /// The `RateLimit-Policy` value, built once.
    policy: HeaderValue,
    /// `keygate_quota_exceeded_total{route}`, resolved on the first refusal (compiling a
    /// config registers no series: a reload that fails leaves `/metrics` as it was).
    exceeded: std::sync::OnceLock<prometheus::IntCounter>,
}

impl Quota {
    /// Compiles `routes[i].quota` of route `route` (`p` is its field path, for errors).
    pub(crate) fn compile(cfg: &QuotaConfig, route: &str, p: &str) -> Result<Quota, FieldError> {
        if cfg.requests == 0 {
            return Err(FieldError::new(
                format!("{p}.requests"),
                "must be at least 1",
            ));
        }
        if cfg.per_seconds == 0 {
            return Err(FieldError::new(
                format!("{p}.per_seconds"),
                "must be at least 1",
            ));
        }
        let by = By::parse(&cfg.by).map_err(|m| FieldError::new(format!("{p}.by"), m))?;
        let policy = format!(
            "{};q={};w={}",
            sf_string(route),
            cfg.requests,
            cfg.per_seconds
        );
        let policy = HeaderValue::from_str(&policy).map_err(|_| {
            FieldError::new(
                p,
                "the route name must be printable ASCII to name a RateLimit policy",
            )
        })?;
        Ok(Quota {
            route: route.into(),
            requests: cfg.requests,
            window: Duration::from_secs(cfg.per_seconds),
            by,
            policy,
            exceeded: std::sync::OnceLock::new(),
        })
    }

    /// Counts one refusal in `keygate_quota_exceeded_total{route}`.
    pub(crate) fn count_exceeded(&self) {
        self.exceeded
            .get_or_init(|| {
                crate::metrics::metrics()
                    .quota_exceeded
                    .with_label_values(&[&self.route])
            })
            .inc();
    }

    /// The counter key of a request: 16 bytes of SHA-256 over the route, the kind of `by` and
    /// its value, so keys are short and carry no user id or credential name in clear. Without
    /// the value `by` names (an anonymous request, no user id, the claim absent) the client
    /// address is used, so leaving a claim out never escapes the quota; `None` when not even
    /// that is known.
    pub(crate) fn key(&self, id: Option<&Identity>, client: Option<IpAddr>) -> Option<[u8; 16]> {
        let value = match (&self.by, id) {
            (By::User, Some(id)) => id.user_id.as_deref().map(|u| ("user", u.to_string())),
            (By::Credential, Some(id)) => Some(("credential", id.credential.to_string())),
            (By::Claim(c), Some(id)) => id.claim(c).map(|v| ("claim", format!("{c}\0{v}"))),
            _ => None,
        };
        let (kind, value) = match value {
            Some(v) => v,
            None => ("client_address", client?.to_string()),
        };
        let text = format!("{}\0{kind}\0{value}", self.route);
        let digest = crate::secret::sha256(text.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Some(key)
    }

    /// The header fields of a window in which `count` requests were made (this one included),
    /// `reset` before the window ends.
    pub(crate) fn state(&self, count: u64, reset: Duration) -> RateLimit {
        let t = reset_seconds(reset);
        let r = self.requests.saturating_sub(count);
        let value = format!("{};r={r};t={t}", sf_string(&self.route));
        RateLimit {
            policy: self.policy.clone(),
            limit: HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
            reset: t,
            over: count > self.requests,
        }
    }
}

/// Whole seconds until `reset`, rounded up and at least 1 (`Retry-After`, the `t` parameter).
fn reset_seconds(reset: Duration) -> u64 {
    (reset.as_millis().div_ceil(1000) as u64).max(1)
}

/// `s` as a Structured Fields String (RFC 8941 §3.3.3): quoted, `"` and `\` escaped.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A quota's state after one request: the `RateLimit-Policy` and `RateLimit` fields, and
/// whether the request is over the quota.
#[derive(Debug, Clone)]
pub(crate) struct RateLimit {
    policy: HeaderValue,
    limit: HeaderValue,
    /// Seconds until the window resets (at least 1): `t` and `Retry-After`.
    pub(crate) reset: u64,
    /// The request is over the quota.
    pub(crate) over: bool,
}

impl RateLimit {
    /// `RateLimit-Policy` and `RateLimit`, to set on the response (allowed or refused).
    pub(crate) fn headers(&self) -> [(HeaderName, HeaderValue); 2] {
        [
            (RATELIMIT_POLICY, self.policy.clone()),
            (RATELIMIT, self.limit.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(by: &str) -> Quota {
        let cfg = QuotaConfig {
            requests: 10,
            per_seconds: 60,
            by: crate::config::value::Str(by.into()),
        };
        Quota::compile(&cfg, "events", "routes[0].quota").unwrap()
    }

    #[test]
    fn headers_follow_the_draft_syntax() {
        let q = quota("credential");
        let rl = q.state(3, Duration::from_millis(29_001));
        let h = rl.headers();
        assert_eq!(h[0].1, r#""events";q=10;w=60"#);
        assert_eq!(h[1].1, r#""events";r=7;t=30"#);
        assert!(!rl.over);
        let over = q.state(11, Duration::from_secs(5));
        assert_eq!(over.headers()[1].1, r#""events";r=0;t=5"#);
        assert!(over.over && over.reset == 5);
        assert_eq!(q.state(1, Duration::ZERO).reset, 1, "never 0 seconds");
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn by_parses_and_keys_fall_back_to_the_client_address() {
        for bad in ["", "claim:", "users", "claims.tenant"] {
            assert!(By::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            By::parse("claim:tenant").unwrap(),
            By::Claim("tenant".into())
        );
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let mut alice = Identity::app("jwt".into(), "doka/k1".into());
        alice.user_id = Some("alice".into());
        alice.claims.push(("tenant".into(), "t1".into()));
        let user = quota("user");
        assert_eq!(
            user.key(Some(&alice), Some(ip)),
            user.key(Some(&alice), None)
        );
        let app = Identity::app("api_key".into(), "doka/k1".into());
        assert_eq!(
            user.key(Some(&app), Some(ip)),
            user.key(None, Some(ip)),
            "no user id: counted by address"
        );
        assert_eq!(user.key(None, None), None);
        let claim = quota("claim:tenant");
        assert_ne!(claim.key(Some(&alice), Some(ip)), claim.key(None, Some(ip)));
        let cred = quota("credential");
        assert_eq!(cred.key(Some(&alice), None), cred.key(Some(&app), None));
        assert_ne!(cred.key(Some(&alice), None), user.key(Some(&alice), None));
        for (requests, per_seconds, field) in [(0, 1, "requests"), (1, 0, "per_seconds")] {
            let cfg = QuotaConfig {
                requests,
                per_seconds,
                by: crate::config::value::Str("user".into()),
            };
            let e = Quota::compile(&cfg, "r", "routes[0].quota").unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
    }
}
