//! The in-process [`Store`]: this replica's own throttle counters (`crate::throttle`) and quota
//! counters in a bounded moka cache. The default without `shared_state`, and the fallback of
//! `on_unavailable: local`. Same window semantics as Redis: a fixed window from a key's first
//! request (see `super::quota`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Quota, Store, Unavailable};
use crate::throttle::Throttle;
use crate::throttle::ThrottlePolicy;

/// Most quota counters held at once; beyond it the least recently used are forgotten.
const COUNTERS: u64 = 65_536;

/// One quota counter: when its window started, and the requests in it.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u64,
}

/// This replica's own counters.
pub(crate) struct InProcess {
    throttle: Throttle,
    quotas: moka::sync::Cache<[u8; 16], Window>,
}

impl Default for InProcess {
    fn default() -> Self {
        InProcess {
            throttle: Throttle::default(),
            quotas: moka::sync::Cache::builder()
                .max_capacity(COUNTERS)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }
}

impl InProcess {
    /// Counts one request against `key`, a window of `window`; (requests in the window, time
    /// left in it).
    fn count(&self, key: [u8; 16], window: Duration) -> (u64, Duration) {
        let now = Instant::now();
        // One atomic update per key (moka's upsert), no lock held by keygate.
        let w = self
            .quotas
            .entry(key)
            .and_upsert_with(|old| match old.map(|o| o.into_value()) {
                Some(w) if now.duration_since(w.started) < window => Window {
                    count: w.count.saturating_add(1),
                    ..w
                },
                _ => Window {
                    started: now,
                    count: 1,
                },
            })
            .into_value();
        let left = window.saturating_sub(now.duration_since(w.started));
        (w.count, left)
    }
}

#[async_trait::async_trait]
impl Store for InProcess {
    async fn failed(
        &self,
        ip: IpAddr,
        cfg: &ThrottlePolicy,
    ) -> Result<Option<Duration>, Unavailable> {
        let blocked = self.throttle.failed(ip, cfg);
        Ok(blocked.then_some(cfg.block))
    }

    async fn hit(&self, key: [u8; 16], quota: &Quota) -> Result<(u64, Duration), Unavailable> {
        Ok(self.count(key, quota.window))
    }

    fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        self.throttle.blocked(ip)
    }

    fn blocked_addresses(&self) -> usize {
        self.throttle.blocked_addresses()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_from_its_first_request_and_resets_after_it() {
        let s = InProcess::default();
        let w = Duration::from_millis(300);
        let (a, b) = ([1u8; 16], [2u8; 16]);
        for n in 1..=5 {
            let (count, left) = s.count(a, w);
            assert_eq!(count, n);
            assert!(left <= w && !left.is_zero());
        }
        assert_eq!(s.count(b, w).0, 1, "keys are independent");
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(s.count(a, w).0, 1, "a new window");
    }
}
