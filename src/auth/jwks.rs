//! JWK-set providers (`jwks_url`, `openid_configuration_url`): keys an identity provider publishes
//! and rotates (RFC 7517 §5; OpenID Connect Discovery 1.0 §3 for `jwks_uri` and `issuer`).
//!
//! - The request path reads the current [`KeySet`] lock-free (arc-swap) and never fetches.
//! - One background task per provider (on keygate's background runtime) fetches: every
//!   `refresh_seconds` (shortened by a smaller `Cache-Control: max-age`, never below
//!   `min_refresh_interval_seconds`), with backoff while failing, and when a request meets an
//!   unknown `kid`. Concurrent requests for unknown kids share one fetch (single flight), at most
//!   one per `min_refresh_interval_seconds`; unknown kids are remembered until the next fetch,
//!   so random `kid`s cannot force fetches (lua-resty-openidc #468).
//! - A failing fetch keeps the last good keys for `stale_if_error_seconds` from the first
//!   failure; then requests fail `key_source_unavailable` until a fetch succeeds again.
//! - A key keygate cannot use (unsupported `kty`/curve, `use: enc`, no `kid` in a set of several,
//!   an `alg` outside `algorithms`, bad parameters) is skipped and counted, never fatal.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use tokio::sync::{watch, Notify};

use super::keys::{decode_jwk, KeySet};
use crate::config::JwksConfig;
use crate::metrics::metrics;
use crate::reason::Reason;

/// Where the JWK set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `jwks_url`: the set itself.
    Jwks(String),
    /// `openid_configuration_url`: a discovery document whose `jwks_uri` names the set.
    Discovery(String),
}

struct Loaded {
    set: Arc<KeySet>,
}

/// A JWK-set provider of one `jwt` authenticator.
pub struct JwksProvider {
    name: String,
    endpoint: Endpoint,
    issuers: Vec<String>,
    allowed: Vec<Algorithm>,
    cfg: JwksConfig,
    client: reqwest::Client,
    keys: ArcSwapOption<Loaded>,
    /// Milliseconds since `epoch` of the first failed fetch since the last success (0: none).
    failing_since_ms: AtomicU64,
    /// Milliseconds since `epoch` of the last fetch attempt (0: none yet).
    last_attempt_ms: AtomicU64,
    epoch: Instant,
    in_flight: AtomicBool,
    /// Bumped after every fetch attempt, success or not.
    generation: watch::Sender<u64>,
    /// Wakes the fetch loop (unknown `kid`, unusable keys). Shared with the loop, which holds
    /// only a weak reference to the provider while it waits.
    kick: Arc<Notify>,
    /// Unknown kids, with the generation at which they were found unknown.
    unknown: moka::sync::Cache<String, u64>,
    last_error: Mutex<Option<String>>,
}

/// Why a fetch failed; the `result` label of `keygate_jwks_fetches_total`.
#[derive(Debug)]
struct FetchError {
    result: &'static str,
    detail: String,
}

fn fetch_err(result: &'static str, detail: impl Into<String>) -> FetchError {
    FetchError {
        result,
        detail: detail.into(),
    }
}

impl JwksProvider {
    /// A provider for authenticator `name`. Builds its HTTP client (rustls); fetches nothing.
    pub fn new(
        name: &str,
        endpoint: Endpoint,
        issuers: Vec<String>,
        allowed: Vec<Algorithm>,
        cfg: JwksConfig,
    ) -> Result<JwksProvider, String> {
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let (generation, _) = watch::channel(0);
        Ok(JwksProvider {
            name: name.to_string(),
            endpoint,
            issuers,
            allowed,
            cfg,
            client,
            keys: ArcSwapOption::empty(),
            failing_since_ms: AtomicU64::new(0),
            last_attempt_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            in_flight: AtomicBool::new(false),
            generation,
            kick: Arc::new(Notify::new()),
            unknown: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            last_error: Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Takes over the keys of `old` (the same authenticator before a reload) when it fetches
    /// from the same endpoint for the same algorithms; the new provider then refreshes at once.
    pub fn adopt(&self, old: &JwksProvider) {
        if old.endpoint == self.endpoint
            && old.allowed == self.allowed
            && old.issuers == self.issuers
        {
            if let Ok(set) = old.current() {
                self.keys.store(Some(Arc::new(Loaded { set })));
            }
        }
    }

    /// The authenticator name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current keys, unless none were ever fetched or they went stale
    /// (`key_source_unavailable`).
    pub fn current(&self) -> Result<Arc<KeySet>, Reason> {
        self.usable().ok_or_else(|| {
            // Nudge a fetch (rate-limited, never awaited) so recovery does not wait for backoff.
            if !self.in_flight.load(Ordering::Acquire) && self.may_fetch_now() {
                self.kick.notify_one();
            }
            Reason::KeySourceUnavailable
        })
    }

    fn usable(&self) -> Option<Arc<KeySet>> {
        let loaded = self.keys.load();
        let loaded = loaded.as_ref()?;
        let since = self.failing_since_ms.load(Ordering::Acquire);
        let stale_ms = self.cfg.stale_if_error_seconds * 1000;
        if since != 0 && self.now_ms().saturating_sub(since) > stale_ms {
            return None;
        }
        Some(loaded.set.clone())
    }

    /// Whether usable keys are held (`/readyz`).
    pub fn ready(&self) -> bool {
        self.usable().is_some()
    }

    /// Why the provider is not ready, if a fetch failed (for `/readyz`).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn may_fetch_now(&self) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Acquire);
        last == 0
            || self.now_ms().saturating_sub(last) >= self.cfg.min_refresh_interval_seconds * 1000
    }

    /// Called when a token's `kid` is not in the current set: waits for (or starts) one shared
    /// fetch if the rate limit allows, then looks again. `unknown_key` if the kid is still
    /// absent; `key_source_unavailable` if no usable keys remain.
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
        if !self.in_flight.load(Ordering::Acquire) {
            if !self.may_fetch_now() {
                self.unknown.insert(kid.to_string(), seen);
                return Err(Reason::UnknownKey);
            }
            self.kick.notify_one();
        }
        let wait = Duration::from_millis(self.cfg.timeout_ms * 2 + 100);
        let _ = tokio::time::timeout(wait, rx.wait_for(|g| *g > seen)).await;
        let set = self.current()?;
        if set.candidates(Some(kid)).is_some() {
            return Ok(set);
        }
        self.unknown
            .insert(kid.to_string(), *self.generation.borrow());
        Err(Reason::UnknownKey)
    }

    /// The provider's fetch loop; returns when the provider is dropped (config reload).
    pub async fn run(provider: Weak<JwksProvider>) {
        let mut failures: u32 = 0;
        let mut next_due = tokio::time::Instant::now(); // fetch at once on start
        let Some(kick) = provider.upgrade().map(|p| p.kick.clone()) else {
            return;
        };
        loop {
            // No strong reference while waiting: a provider replaced by a reload is dropped at
            // once, and this loop ends when it next wakes.
            let kicked = tokio::select! {
                _ = tokio::time::sleep_until(next_due) => false,
                _ = kick.notified() => true,
            };
            let Some(p) = provider.upgrade() else { return };
            if kicked && !p.may_fetch_now() {
                continue;
            }
            p.in_flight.store(true, Ordering::Release);
            p.last_attempt_ms.store(p.now_ms(), Ordering::Release);
            let started = Instant::now();
            let result = p.fetch().await;
            let m = metrics();
            let delay = match result {
                Ok((set, max_age)) => {
                    failures = 0;
                    m.jwks_fetches.with_label_values(&[&p.name, "ok"]).inc();
                    m.jwks_keys
                        .with_label_values(&[&p.name])
                        .set(set.len() as i64);
                    m.jwks_last_success
                        .with_label_values(&[&p.name])
                        .set(unix_now());
                    tracing::info!(authenticator = %p.name, keys = set.len(), elapsed_ms = started.elapsed().as_millis() as u64, "JWK set fetched");
                    p.keys.store(Some(Arc::new(Loaded { set: Arc::new(set) })));
                    p.failing_since_ms.store(0, Ordering::Release);
                    *p.last_error.lock().expect("not poisoned") = None;
                    let refresh = max_age
                        .unwrap_or(p.cfg.refresh_seconds)
                        .min(p.cfg.refresh_seconds);
                    Duration::from_secs(refresh.max(p.cfg.min_refresh_interval_seconds).max(1))
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    m.jwks_fetches.with_label_values(&[&p.name, e.result]).inc();
                    tracing::warn!(authenticator = %p.name, result = e.result, error = %e.detail, "JWK set fetch failed");
                    let _ = p.failing_since_ms.compare_exchange(
                        0,
                        p.now_ms(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    *p.last_error.lock().expect("not poisoned") =
                        Some(format!("{}: {}", e.result, e.detail));
                    // Backoff from min_refresh_interval, doubling, capped by refresh_seconds.
                    let base = p.cfg.min_refresh_interval_seconds.max(1);
                    let cap = p.cfg.refresh_seconds.clamp(base, 300);
                    Duration::from_secs(
                        base.saturating_mul(1 << failures.min(16).saturating_sub(1))
                            .min(cap),
                    )
                }
            };
            p.in_flight.store(false, Ordering::Release);
            p.generation.send_modify(|g| *g += 1);
            next_due = tokio::time::Instant::now() + delay;
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Option<u64>), FetchError> {
        let url = match &self.endpoint {
            Endpoint::Jwks(u) => u.clone(),
            Endpoint::Discovery(u) => {
                let (doc, _) = self.get_json(u).await?;
                if let Some(iss) = doc.get("issuer").and_then(Value::as_str) {
                    if !self.issuers.is_empty() && !self.issuers.iter().any(|i| i == iss) {
                        return Err(fetch_err(
                            "issuer_mismatch",
                            format!("discovery issuer {iss} is not in issuers"),
                        ));
                    }
                }
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| fetch_err("invalid", "discovery document has no jwks_uri"))?
                    .to_string()
            }
        };
        let (doc, max_age) = self.get_json(&url).await?;
        let set = self.parse_set(&doc)?;
        Ok((set, max_age))
    }

    async fn get_json(&self, url: &str) -> Result<(Value, Option<u64>), FetchError> {
        let resp = self.client.get(url).send().await.map_err(|e| {
            if e.is_timeout() {
                fetch_err("timeout", "timed out")
            } else {
                fetch_err("error", e.without_url().to_string())
            }
        })?;
        if !resp.status().is_success() {
            return Err(fetch_err(
                "http_error",
                format!("HTTP {}", resp.status().as_u16()),
            ));
        }
        let max_age = resp
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|d| {
                d.trim()
                    .strip_prefix("max-age=")
                    .and_then(|n| n.trim().parse::<u64>().ok())
            });
        let bytes = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                fetch_err("timeout", "timed out")
            } else {
                fetch_err("error", e.without_url().to_string())
            }
        })?;
        if bytes.len() > 1 << 20 {
            return Err(fetch_err("invalid", "document over 1 MiB"));
        }
        let doc = serde_json::from_slice(&bytes)
            .map_err(|e| fetch_err("invalid", format!("not JSON ({:?})", e.classify())))?;
        Ok((doc, max_age))
    }

    fn parse_set(&self, doc: &Value) -> Result<KeySet, FetchError> {
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| fetch_err("invalid", "no `keys` array"))?;
        let several = entries.len() > 1;
        let mut keys = Vec::new();
        let mut skipped = 0usize;
        for entry in entries {
            let usable = serde_json::from_value::<Jwk>(entry.clone())
                .ok()
                .and_then(|jwk| decode_jwk(&jwk).ok())
                .filter(|d| !(several && d.kid.is_none()))
                .and_then(|d| d.restrict(&self.allowed, &self.name));
            match usable {
                Some(k) => keys.push(k),
                None => skipped += 1,
            }
        }
        metrics()
            .jwks_skipped
            .with_label_values(&[&self.name])
            .set(skipped as i64);
        if keys.is_empty() {
            return Err(fetch_err(
                "invalid",
                format!("no usable keys ({skipped} skipped)"),
            ));
        }
        if skipped > 0 {
            tracing::warn!(authenticator = %self.name, skipped, "JWK set has keys keygate cannot use; they are ignored");
        }
        Ok(KeySet::new(keys))
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
