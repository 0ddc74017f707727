//! Shared state (`docs/config.md`, "Shared state (Redis)"): `throttle` failure counts and
//! blocks, route `quota` counters and revocations, behind one [`Store`] interface with two
//! implementations: [`local::InProcess`] (the default, and the fallback of
//! `on_unavailable: local`) and [`redis::Redis`] (`shared_state`).
//!
//! Round trips: at most one per request, and none on requests that need no counter. A throttle
//! block and the revocations are kept in memory on every replica and kept current by pub/sub
//! (`sync`), so checking them costs a lookup; a failure is counted in Redis only when it
//! happens (one script call, which publishes the block when it sets one); a quota route makes
//! one script call per request.
//!
//! Redis unreachable: with `on_unavailable: local` every operation falls back to this
//! replica's own state and the revocations last seen, counted in
//! `keygate_shared_state_errors_total{op}` and logged at most once a minute; with `deny`,
//! requests that need shared state get 503 `shared_state_unavailable` (a revocation already
//! seen still refuses its credential with 401). Sharing resumes by itself once Redis answers.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Identity;
use crate::config::OnUnavailable;
use crate::reason::Reason;
use crate::revocation::Revocation;
use crate::throttle::ThrottlePolicy;

pub(crate) mod local;
pub(crate) mod quota;
pub(crate) mod redis;
mod settings;
mod sync;

pub(crate) use quota::{Quota, RateLimit};
pub(crate) use settings::Settings;

/// Why a shared-state operation could not be done (its text is already redacted).
#[derive(Debug, Clone)]
pub(crate) struct Unavailable(pub(crate) String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The operations of shared state, as counted in `keygate_shared_state_errors_total{op}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Connecting, subscribing, or the connection lost.
    Connect,
    /// Counting a throttle failure, or checking blocks while Redis is down.
    Throttle,
    /// A quota counter.
    Quota,
    /// Loading the revocations, or checking them while Redis is down.
    Revocations,
}

impl Op {
    /// The `op` label value.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Op::Connect => "connect",
            Op::Throttle => "throttle",
            Op::Quota => "quota",
            Op::Revocations => "revocations",
        }
    }
}

/// One implementation of shared state: counters that every replica using it sees.
#[async_trait::async_trait]
pub(crate) trait Store: Send + Sync {
    /// Counts one credential failure of `ip` under `cfg`; the block's length when this
    /// failure blocked the address (more than `max_failures` within `window_seconds`).
    async fn failed(
        &self,
        ip: IpAddr,
        cfg: &ThrottlePolicy,
    ) -> Result<Option<Duration>, Unavailable>;

    /// Counts one request against the counter `key` of `quota`; how many requests its window
    /// holds now (this one included) and how long until the window ends.
    async fn hit(&self, key: [u8; 16], quota: &Quota) -> Result<(u64, Duration), Unavailable>;

    /// How long `ip` stays blocked, if it is (memory only: no I/O).
    fn blocked(&self, ip: IpAddr) -> Option<Duration>;

    /// Addresses blocked now.
    fn blocked_addresses(&self) -> usize;
}

/// What shared state refuses a request with: the reason, `Retry-After` seconds, and for a
/// quota the `RateLimit` fields.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    /// `too_many_failures`, `quota_exceeded` or `shared_state_unavailable`.
    pub(crate) reason: Reason,
    /// `Retry-After`, seconds.
    pub(crate) retry_after: Option<u64>,
    /// The quota's `RateLimit-Policy` and `RateLimit`, for `quota_exceeded`.
    pub(crate) ratelimit: Option<RateLimit>,
}

impl Refusal {
    fn unavailable() -> Refusal {
        Refusal {
            reason: Reason::SharedStateUnavailable,
            retry_after: Some(1),
            ratelimit: None,
        }
    }
}

/// The shared state of this process: the in-process store, and Redis when `shared_state` is
/// set. Kept in `State` for the process's life (reloads keep it).
pub(crate) struct Shared {
    local: local::InProcess,
    redis: Option<Arc<redis::Redis>>,
    on_unavailable: OnUnavailable,
    /// Unix seconds of the last "shared state unavailable" log line (one a minute at most).
    last_logged: AtomicU64,
}

impl Shared {
    /// In-process only without `settings`; else Redis, connected by [`Shared::start`].
    pub(crate) fn new(settings: Option<&Settings>) -> Shared {
        if settings.is_some() {
            let m = crate::metrics::metrics();
            for op in [Op::Connect, Op::Throttle, Op::Quota, Op::Revocations] {
                m.shared_state_errors.with_label_values(&[op.as_str()]);
            }
        }
        Shared {
            local: local::InProcess::default(),
            redis: settings.map(|s| Arc::new(redis::Redis::new(s))),
            on_unavailable: settings.map_or(OnUnavailable::Local, |s| s.on_unavailable),
            last_logged: AtomicU64::new(0),
        }
    }

    /// Starts keeping this replica current with Redis (on the calling tokio runtime, which must
    /// live as long as the process): connects, subscribes, loads blocks and revocations, and
    /// reconnects whenever the connection is lost. `on_revocations` receives every new list of
    /// shared revocations. Nothing happens without `shared_state`.
    pub(crate) fn start(&self, on_revocations: impl Fn(Vec<Revocation>) + Send + Sync + 'static) {
        if let Some(r) = &self.redis {
            tokio::spawn(sync::run(r.clone(), Box::new(on_revocations)));
        }
    }

    /// The store to use for `op`: Redis when it is configured and connected; else the local
    /// one (`on_unavailable: local`, counted and logged) or a refusal (`deny`).
    fn store(&self, op: Op) -> Result<&dyn Store, Refusal> {
        match &self.redis {
            None => Ok(&self.local),
            Some(r) if r.healthy() => Ok(&**r),
            Some(_) => self.fallback(op, "Redis is unreachable"),
        }
    }

    /// Counts and logs an operation that could not use Redis; the local store, or the 503.
    fn fallback(&self, op: Op, why: &str) -> Result<&dyn Store, Refusal> {
        crate::metrics::metrics()
            .shared_state_errors
            .with_label_values(&[op.as_str()])
            .inc();
        let now = crate::metrics::unix_now() as u64;
        let last = self.last_logged.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let mode = match self.on_unavailable {
                OnUnavailable::Local => "falling back to this replica's own state",
                OnUnavailable::Deny => "refusing requests that need it (503)",
            };
            tracing::warn!(op = op.as_str(), error = %why, "shared state unavailable: {mode} (logged once a minute)");
        }
        match self.on_unavailable {
            OnUnavailable::Local => Ok(&self.local),
            OnUnavailable::Deny => Err(Refusal::unavailable()),
        }
    }

    /// The refusal of a request from a blocked `client` (429 `too_many_failures` with
    /// `Retry-After`), decided before any credential is read; with `deny` and Redis down, 503.
    /// Memory only. `None` without `throttle` or a client address.
    pub(crate) fn refuse_blocked(
        &self,
        throttle: Option<&ThrottlePolicy>,
        client: Option<IpAddr>,
    ) -> Option<Refusal> {
        throttle?;
        let ip = client?;
        if let Some(r) = &self.redis {
            if !r.healthy() && self.on_unavailable == OnUnavailable::Deny {
                return self.fallback(Op::Throttle, "Redis is unreachable").err();
            }
        }
        // Blocks already known stay in force while Redis is down (they expire by themselves).
        let known = self.local.blocked(ip);
        let shared = self.redis.as_ref().and_then(|r| r.blocked(ip));
        let left = known.max(shared)?;
        Some(Refusal {
            reason: Reason::TooManyFailures,
            retry_after: Some(left.as_secs_f64().ceil() as u64),
            ratelimit: None,
        })
    }

    /// Counts `reason` against `client` for `throttle` when it is a credential failure; `true`
    /// when this failure blocked the address (every replica refuses it within a second).
    pub(crate) async fn count_failure(
        &self,
        throttle: Option<&ThrottlePolicy>,
        client: Option<IpAddr>,
        reason: Reason,
    ) -> bool {
        let (Some(cfg), Some(ip)) = (throttle, client) else {
            return false;
        };
        if !reason.credential_failure() {
            return false;
        }
        let Ok(store) = self.store(Op::Throttle) else {
            return false; // `deny`: this request is refused anyway
        };
        let counted = match store.failed(ip, cfg).await {
            Err(e) => match self.fallback(Op::Throttle, &e.0) {
                Ok(local) => local.failed(ip, cfg).await,
                Err(_) => return false,
            },
            done => done,
        };
        matches!(counted, Ok(Some(_)))
    }

    /// After authentication, before forwarding: the route's `quota` (one counter per request)
    /// and, with `deny` and Redis down, 503 for an authenticated request (its revocations
    /// cannot be known current). `Ok` carries the `RateLimit` fields of a quota route for the
    /// answer.
    pub(crate) async fn admit(
        &self,
        quota: Option<&Quota>,
        identity: Option<&Identity>,
        client: Option<IpAddr>,
    ) -> Result<Option<RateLimit>, Refusal> {
        if let (Some(_), Some(r)) = (identity, &self.redis) {
            if !r.healthy() && self.on_unavailable == OnUnavailable::Deny {
                self.fallback(Op::Revocations, "Redis is unreachable")?;
            }
        }
        let Some(q) = quota else { return Ok(None) };
        let Some(key) = q.key(identity, client) else {
            return Ok(None);
        };
        let store = self.store(Op::Quota)?;
        let (count, reset) = match store.hit(key, q).await {
            Ok(w) => w,
            Err(e) => self
                .fallback(Op::Quota, &e.0)?
                .hit(key, q)
                .await
                .map_err(|_| Refusal::unavailable())?,
        };
        let state = q.state(count, reset);
        if !state.over {
            return Ok(Some(state));
        }
        q.count_exceeded();
        Err(Refusal {
            reason: Reason::QuotaExceeded,
            retry_after: Some(state.reset),
            ratelimit: Some(state),
        })
    }

    /// Addresses blocked now, on this replica and (mirrored) cluster-wide.
    pub(crate) fn blocked_addresses(&self) -> usize {
        self.local.blocked_addresses() + self.redis.as_ref().map_or(0, |r| r.blocked_addresses())
    }
}
