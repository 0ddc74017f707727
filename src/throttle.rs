//! Failed-authentication throttling (`docs/config.md`, `throttle`): per client address (the
//! peer, or the first untrusted `X-Forwarded-For` hop behind `trusted_proxies`), more than
//! `max_failures` credential failures within `window_seconds` block that address for
//! `block_seconds`. A blocked address gets 429 `too_many_failures` with `Retry-After`, decided
//! before any credential is parsed or any key looked up.
//!
//! A credential failure is a 401 with a credential present (every 401 reason but
//! `missing_credentials`: a browser calling before it logged in is not an attack). Counters live
//! in a bounded moka cache, per replica: behind a load balancer each replica counts what it sees,
//! and without `trusted_proxies` every client behind one proxy shares one address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::ThrottleConfig;

/// The compiled `throttle:` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThrottlePolicy {
    /// `max_failures`: credential failures allowed per window.
    pub(crate) max_failures: u32,
    /// `window_seconds`.
    pub(crate) window: Duration,
    /// `block_seconds`: how long an address stays blocked.
    pub(crate) block: Duration,
}

impl ThrottlePolicy {
    /// Converts `throttle:` (every value is valid).
    pub(crate) fn compile(cfg: &ThrottleConfig) -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: cfg.max_failures,
            window: Duration::from_secs(cfg.window_seconds),
            block: Duration::from_secs(cfg.block_seconds),
        }
    }
}

/// Most addresses tracked at once; beyond it the least recently used are forgotten.
const TRACKED: u64 = 65_536;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

/// Failure counters of every tracked address (process-wide: reloads keep them).
pub(crate) struct Throttle {
    entries: moka::sync::Cache<IpAddr, Entry>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            entries: moka::sync::Cache::builder()
                .max_capacity(TRACKED)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }
}

impl Throttle {
    /// How long `ip` stays blocked, if it is. Looks up; never inserts.
    pub(crate) fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let left = self
            .entries
            .get(&ip)?
            .blocked_until?
            .saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Records a credential failure of `ip`; `true` when it blocked the address.
    pub(crate) fn failed(&self, ip: IpAddr, cfg: &ThrottlePolicy) -> bool {
        let now = Instant::now();
        let window = cfg.window;
        let mut blocked = false;
        // One atomic update per address (moka's upsert), no lock held by keygate.
        self.entries.entry(ip).and_upsert_with(|old| {
            let mut e = match old.map(|o| o.into_value()) {
                Some(e) if now.duration_since(e.window_start) <= window => e,
                Some(e) => Entry {
                    window_start: now,
                    failures: 0,
                    ..e
                },
                None => Entry {
                    window_start: now,
                    failures: 0,
                    blocked_until: None,
                },
            };
            e.failures = e.failures.saturating_add(1);
            if e.failures > cfg.max_failures && e.blocked_until.is_none_or(|b| b <= now) {
                e.blocked_until = Some(now + cfg.block);
                e.failures = 0;
                e.window_start = now;
                blocked = true;
            }
            e
        });
        blocked
    }

    /// Addresses blocked now (for `keygate_throttle_blocked_addresses`).
    pub(crate) fn blocked_addresses(&self) -> usize {
        let now = Instant::now();
        self.entries
            .iter()
            .filter(|(_, e)| e.blocked_until.is_some_and(|b| b > now))
            .count()
    }

    /// Addresses tracked now (approximate).
    #[cfg(test)]
    fn tracked(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: u32, window: u64, block: u64) -> ThrottlePolicy {
        ThrottlePolicy::compile(&ThrottleConfig {
            max_failures: max,
            window_seconds: window,
            block_seconds: block,
        })
    }

    #[test]
    fn more_than_max_failures_in_a_window_blocks_for_block_seconds() {
        let t = Throttle::default();
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let c = cfg(3, 60, 1);
        for _ in 0..3 {
            assert!(!t.failed(ip, &c));
        }
        assert!(t.blocked(ip).is_none());
        assert!(t.failed(ip, &c), "the fourth failure blocks");
        assert!(t.blocked(ip).is_some_and(|d| d <= Duration::from_secs(1)));
        assert!(
            t.blocked("198.51.100.2".parse().unwrap()).is_none(),
            "others are unaffected"
        );
        assert_eq!(t.blocked_addresses(), 1);
        std::thread::sleep(Duration::from_millis(1050));
        assert!(t.blocked(ip).is_none(), "unblocked after block_seconds");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up_and_memory_is_bounded() {
        let t = Throttle::default();
        let ip: IpAddr = "198.51.100.3".parse().unwrap();
        let c = cfg(2, 1, 60);
        assert!(!t.failed(ip, &c));
        assert!(!t.failed(ip, &c));
        std::thread::sleep(Duration::from_millis(1100));
        assert!(!t.failed(ip, &c), "a new window");
        for i in 0..200_000u32 {
            t.failed(IpAddr::from(i.to_be_bytes()), &c);
        }
        assert!(
            t.tracked() <= TRACKED + TRACKED / 10,
            "{} tracked",
            t.tracked()
        );
    }
}
