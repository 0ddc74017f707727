//! JWK-set providers (`jwks_url`, `openid_configuration_url`): keys an identity provider
//! publishes and rotates (RFC 7517 §5; OpenID Connect Discovery 1.0 §3).
//!
//! - The request path reads the provider's [`State`] lock-free (one `ArcSwap`) and never fetches.
//! - One background task per provider ([`refresh::run`]) does every fetch ([`fetch`]): every
//!   `refresh_seconds` (shortened by a smaller `Cache-Control: max-age`, never below
//!   `min_refresh_interval_seconds`), with jittered exponential backoff while failing, and when
//!   a request meets an unknown `kid`. Concurrent requests for unknown kids share one fetch,
//!   at most one per `min_refresh_interval_seconds`; a kid met inside the interval schedules one
//!   fetch for the end of it and its requests wait for that fetch (bounded), so a key published
//!   right after a fetch works at once for every request, after one further fetch. Unknown kids
//!   are remembered until the next fetch, so random `kid`s cannot force fetches
//!   (lua-resty-openidc #468).
//! - A failing fetch keeps the last good keys for `stale_if_error_seconds` from the first
//!   failure; then requests fail `key_source_unavailable` until a fetch succeeds again.

pub mod fetch;
pub mod refresh;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;
use tokio::sync::{watch, Notify};

use crate::auth::jwt::keys::KeySet;
use crate::config::JwksConfig;
use crate::reason::Reason;

/// Where the JWK set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `jwks_url`: the set itself.
    Jwks(String),
    /// `openid_configuration_url`: a discovery document whose `jwks_uri` names the set.
    Discovery(String),
}

/// What the fetch loop last learned; replaced whole after every attempt.
#[derive(Default)]
pub struct State {
    /// The last good keys.
    pub keys: Option<Arc<KeySet>>,
    /// When fetches started failing (since the last success).
    pub failing_since: Option<Instant>,
    /// When the last fetch started.
    pub last_attempt: Option<Instant>,
    /// The last failure, for `/readyz`.
    pub last_error: Option<String>,
    /// A fetch is running.
    pub fetching: bool,
}

/// A JWK-set provider of one `jwt` authenticator.
pub struct JwksProvider {
    name: String,
    cfg: JwksConfig,
    fetcher: fetch::Fetcher,
    state: ArcSwap<State>,
    /// Bumped after every fetch attempt, success or not.
    generation: watch::Sender<u64>,
    /// Wakes the fetch loop (unknown `kid`, no usable keys). Shared with the loop, which holds
    /// only a weak reference to the provider while it waits.
    kick: Arc<Notify>,
    /// A kid was refused because the interval had not passed: fetch when it has.
    deferred: AtomicBool,
    /// Unknown kids, with the generation at which they were found unknown.
    unknown: moka::sync::Cache<String, u64>,
}

impl JwksProvider {
    /// A provider for authenticator `name`. Builds its HTTP client; fetches nothing.
    pub fn new(
        name: &str,
        endpoint: Endpoint,
        issuers: Vec<String>,
        allowed: Vec<Algorithm>,
        cfg: JwksConfig,
    ) -> Result<JwksProvider, String> {
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let (generation, _) = watch::channel(0);
        Ok(JwksProvider {
            name: name.to_string(),
            fetcher: fetch::Fetcher::new(name, endpoint, issuers, allowed, timeout)?,
            cfg,
            state: ArcSwap::from_pointee(State::default()),
            generation,
            kick: Arc::new(Notify::new()),
            deferred: AtomicBool::new(false),
            unknown: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        })
    }

    /// The authenticator name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes over the keys of `old` (the same authenticator before a reload) when it fetches
    /// the same endpoint for the same rules; the new provider then refreshes at once.
    pub fn adopt(&self, old: &JwksProvider) {
        if self.fetcher.same_source(&old.fetcher) {
            if let Ok(keys) = old.current() {
                self.state.store(Arc::new(State {
                    keys: Some(keys),
                    ..State::default()
                }));
            }
        }
    }

    /// The current keys, unless none were ever fetched or they went stale
    /// (`key_source_unavailable`; a fetch is then nudged, rate-limited, never awaited).
    pub fn current(&self) -> Result<Arc<KeySet>, Reason> {
        self.usable().ok_or_else(|| {
            if !self.state.load().fetching && self.may_fetch_now() {
                self.kick.notify_one();
            }
            Reason::KeySourceUnavailable
        })
    }

    fn usable(&self) -> Option<Arc<KeySet>> {
        let s = self.state.load();
        let keys = s.keys.as_ref()?;
        let stale = Duration::from_secs(self.cfg.stale_if_error_seconds);
        if s.failing_since.is_some_and(|f| f.elapsed() > stale) {
            return None;
        }
        Some(keys.clone())
    }

    /// Whether usable keys are held (`/readyz`).
    pub fn ready(&self) -> bool {
        self.usable().is_some()
    }

    /// Why the provider is not ready, if a fetch failed (for `/readyz`).
    pub fn last_error(&self) -> Option<String> {
        self.state.load().last_error.clone()
    }

    fn min_interval(&self) -> Duration {
        Duration::from_secs(self.cfg.min_refresh_interval_seconds)
    }

    fn may_fetch_now(&self) -> bool {
        self.interval_left().is_none()
    }

    /// What is left of the rate-limit interval since the last fetch attempt, if any.
    fn interval_left(&self) -> Option<Duration> {
        let since = self.state.load().last_attempt?.elapsed();
        self.min_interval()
            .checked_sub(since)
            .filter(|d| !d.is_zero())
    }

    /// Called when a token's `kid` is not in the current set: waits for one shared fetch (started
    /// now, or, inside `min_refresh_interval_seconds` of the last one, the fetch scheduled at the
    /// interval's end), then looks again. The wait is bounded by what is left of the interval
    /// plus twice `timeout_ms`. `unknown_key` if the kid is still absent (and at once for a kid
    /// already found unknown by the latest fetch); `key_source_unavailable` if no usable keys
    /// remain.
    pub async fn refresh_for(&self, kid: &str) -> Result<Arc<KeySet>, Reason> {
        let mut rx = self.generation.subscribe();
        let seen = *rx.borrow_and_update();
        let set = self.current()?;
        if set.candidates(Some(kid)).is_some() {
            return Ok(set); // a fetch landed since the caller looked
        }
        if self.unknown.get(kid) == Some(seen) {
            return Err(Reason::UnknownKey);
        }
        // How long this request may wait for the fetch that answers it: the fetch itself, plus,
        // inside the rate-limit interval, what is left of it (the loop fetches at its end).
        let mut wait = Duration::from_millis(self.cfg.timeout_ms * 2 + 100);
        if !self.state.load().fetching {
            if let Some(left) = self.interval_left() {
                // A kid published right after the last fetch (a rotation): wait for the one
                // fetch scheduled at the end of the interval rather than fail. Concurrent
                // requests share it; a kid still unknown after it fails fast until the next.
                self.deferred.store(true, Ordering::Release);
                wait += left;
            }
            self.kick.notify_one();
        }
        let _ = tokio::time::timeout(wait, rx.wait_for(|g| *g > seen)).await;
        let set = self.current()?;
        if set.candidates(Some(kid)).is_some() {
            return Ok(set);
        }
        self.unknown
            .insert(kid.to_string(), *self.generation.borrow());
        Err(Reason::UnknownKey)
    }
}
