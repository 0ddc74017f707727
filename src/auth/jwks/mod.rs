//! JWK-set providers (`jwks_url`, `openid_configuration_url`): keys an identity provider
//! publishes and rotates (RFC 7517 §5; OpenID Connect Discovery 1.0 §3).
//!
//! - The request path reads the provider's [`FetchState`] lock-free (one `ArcSwap`) and never fetches.
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
use crate::config::{FieldError, JwksConfig};
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
pub struct FetchState {
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

/// The compiled `jwks:` settings of a provider (`docs/config.md`, `type: jwt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksTiming {
    /// `refresh_seconds`: the background refresh period.
    pub refresh: Duration,
    /// `min_refresh_interval_seconds`: at most one fetch per this long.
    pub min_refresh_interval: Duration,
    /// `stale_if_error_seconds`: how long the last good keys are served while fetches fail.
    pub stale_if_error: Duration,
    /// `timeout_ms`: connect and whole-request timeout of one fetch (never zero).
    pub timeout: Duration,
}

impl JwksTiming {
    /// Checks and converts `jwks:` (at `path`). Errors unless
    /// `min_refresh_interval_seconds <= refresh_seconds` and `timeout_ms > 0`.
    pub fn compile(cfg: &JwksConfig, path: &str) -> Result<JwksTiming, FieldError> {
        if cfg.min_refresh_interval_seconds > cfg.refresh_seconds || cfg.timeout_ms == 0 {
            return Err(FieldError::new(
                path,
                "need min_refresh_interval_seconds <= refresh_seconds and timeout_ms > 0",
            ));
        }
        Ok(JwksTiming {
            refresh: Duration::from_secs(cfg.refresh_seconds),
            min_refresh_interval: Duration::from_secs(cfg.min_refresh_interval_seconds),
            stale_if_error: Duration::from_secs(cfg.stale_if_error_seconds),
            timeout: Duration::from_millis(cfg.timeout_ms),
        })
    }
}

/// A JWK-set provider of one `jwt` authenticator.
pub struct JwksProvider {
    name: String,
    cfg: JwksTiming,
    fetcher: fetch::Fetcher,
    state: ArcSwap<FetchState>,
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
    /// A provider for authenticator `name`: pure, it neither builds its HTTP client nor
    /// fetches (see [`JwksProvider::activate`]).
    pub fn new(
        name: &str,
        endpoint: Endpoint,
        issuers: Vec<String>,
        allowed: Vec<Algorithm>,
        cfg: JwksTiming,
    ) -> JwksProvider {
        let (generation, _) = watch::channel(0);
        JwksProvider {
            name: name.to_string(),
            fetcher: fetch::Fetcher::new(name, endpoint, issuers, allowed, cfg.timeout),
            cfg,
            state: ArcSwap::from_pointee(FetchState::default()),
            generation,
            kick: Arc::new(Notify::new()),
            deferred: AtomicBool::new(false),
            unknown: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// Puts the provider to work (the ruleset's activation; needs a tokio runtime): takes over
    /// the keys of `old` (its predecessor of the same name before a reload) when it fetches the
    /// same endpoint for the same rules, builds its HTTP client, and spawns its fetch loop
    /// ([`refresh::run`]), which ends when the provider is dropped.
    pub fn activate(self: &Arc<Self>, old: Option<&JwksProvider>) {
        if let Some(old) = old {
            self.adopt(old);
        }
        if let Err(e) = self.fetcher.client() {
            tracing::error!(authenticator = %self.name, error = %e.detail, "JWK set provider");
        }
        tokio::spawn(refresh::run(Arc::downgrade(self)));
    }

    /// The authenticator name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes over the keys of `old` (the same authenticator before a reload) when it fetches
    /// the same endpoint for the same rules; the new provider then refreshes at once.
    fn adopt(&self, old: &JwksProvider) {
        if self.fetcher.same_source(&old.fetcher) {
            if let Ok(keys) = old.current() {
                self.state.store(Arc::new(FetchState {
                    keys: Some(keys),
                    ..FetchState::default()
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
        if s.failing_since
            .is_some_and(|f| f.elapsed() > self.cfg.stale_if_error)
        {
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
        self.cfg.min_refresh_interval
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
        let mut wait = self.cfg.timeout * 2 + Duration::from_millis(100);
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
