//! The fetch loop of one JWK-set provider: the only writer of its [`FetchState`]. It fetches at
//! start, then every refresh period, when kicked (an unknown `kid`, no usable keys) if
//! `min_refresh_interval_seconds` has passed since the last attempt, and at the end of that
//! interval when a kid was refused inside it. While fetches fail it backs off exponentially from
//! the interval, capped at the refresh period (at most 300 s), with 20% jitter so replicas that
//! lost their provider together do not retry in step.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{FetchState, JwksProvider};
use crate::metrics::metrics;

/// Runs the fetch loop of `provider`; returns when the provider is dropped (config reload).
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
            if p.deferred.load(Ordering::Acquire) {
                // Fetch as soon as the interval allows, not at the next refresh.
                let at = p
                    .state
                    .load()
                    .last_attempt
                    .map_or(Instant::now(), |t| t + p.min_interval());
                next_due = next_due.min(tokio::time::Instant::from_std(at));
            }
            continue;
        }
        p.deferred.store(false, Ordering::Release);
        let delay = fetch_once(&p, &mut failures).await;
        p.generation.send_modify(|g| *g += 1);
        // Open sessions are re-authorized with the keys fetched (a key removed ends them).
        crate::sessions::signal::poke();
        next_due = tokio::time::Instant::now() + delay;
    }
}

/// Fetches once, now, outside the loop (`keygate explain`); the error when it failed.
pub async fn fetch_now(p: &Arc<JwksProvider>) -> Result<(), String> {
    fetch_once(p, &mut 0).await;
    match p.last_error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One fetch: stores the outcome and returns how long until the next one.
async fn fetch_once(p: &Arc<JwksProvider>, failures: &mut u32) -> Duration {
    let started = Instant::now();
    let before = p.state.load_full();
    p.state.store(Arc::new(FetchState {
        keys: before.keys.clone(),
        failing_since: before.failing_since,
        last_attempt: Some(started),
        last_error: before.last_error.clone(),
        fetching: true,
    }));
    let m = metrics();
    let name = p.name.as_str();
    let cfg = &p.cfg;
    match p.fetcher.fetch().await {
        Ok(f) => {
            *failures = 0;
            m.jwks_fetches.with_label_values(&[name, "ok"]).inc();
            m.jwks_keys
                .with_label_values(&[name])
                .set(f.set.len() as i64);
            m.jwks_skipped
                .with_label_values(&[name])
                .set(f.skipped as i64);
            m.jwks_last_success
                .with_label_values(&[name])
                .set(crate::metrics::unix_now());
            if f.skipped > 0 {
                tracing::warn!(
                    authenticator = name,
                    skipped = f.skipped,
                    "JWK set has keys keygate cannot use; they are ignored"
                );
            }
            tracing::info!(
                authenticator = name,
                keys = f.set.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "JWK set fetched"
            );
            p.state.store(Arc::new(FetchState {
                keys: Some(Arc::new(f.set)),
                failing_since: None,
                last_attempt: Some(started),
                last_error: None,
                fetching: false,
            }));
            f.max_age
                .map_or(cfg.refresh, Duration::from_secs)
                .min(cfg.refresh)
                .max(cfg.min_refresh_interval)
                .max(Duration::from_secs(1))
        }
        Err(e) => {
            *failures = failures.saturating_add(1);
            m.jwks_fetches.with_label_values(&[name, e.result]).inc();
            tracing::warn!(authenticator = name, result = e.result, error = %e.detail, "JWK set fetch failed");
            p.state.store(Arc::new(FetchState {
                keys: before.keys.clone(),
                failing_since: before.failing_since.or(Some(started)),
                last_attempt: Some(started),
                last_error: Some(format!("{}: {}", e.result, e.detail)),
                fetching: false,
            }));
            backoff(
                *failures,
                cfg.min_refresh_interval.as_secs(),
                cfg.refresh.as_secs(),
                random_fraction(),
            )
        }
    }
}

/// The wait after the `failures`-th failure in a row: the interval doubled each time, capped at
/// the refresh period (and 300 s), less up to 20% (`jitter` in 0..1).
fn backoff(failures: u32, min_interval: u64, refresh: u64, jitter: f64) -> Duration {
    let base = min_interval.max(1);
    let cap = refresh.clamp(base, 300);
    let full = base
        .saturating_mul(1 << failures.clamp(1, 17).saturating_sub(1))
        .min(cap);
    Duration::from_secs_f64((full as f64 * (1.0 - 0.2 * jitter.clamp(0.0, 1.0))).max(1.0))
}

fn random_fraction() -> f64 {
    let mut b = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u32::from_le_bytes(b) as f64 / u32::MAX as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_interval_up_to_the_cap_with_jitter() {
        let secs = |f, j| backoff(f, 10, 3600, j).as_secs_f64();
        assert_eq!(secs(1, 0.0), 10.0);
        assert_eq!(secs(2, 0.0), 20.0);
        assert_eq!(secs(5, 0.0), 160.0);
        assert_eq!(secs(9, 0.0), 300.0, "capped at 300 s");
        assert_eq!(secs(40, 0.0), 300.0, "no overflow");
        assert_eq!(secs(1, 1.0), 8.0, "at most 20% earlier");
        assert_eq!(
            backoff(3, 10, 15, 0.0).as_secs(),
            15,
            "never beyond the refresh period"
        );
        assert_eq!(backoff(1, 0, 0, 0.0).as_secs(), 1, "at least a second");
    }
}
