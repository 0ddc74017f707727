//! The verified-token cache (moka), shared by every `jwt` authenticator of one loaded config.
//!
//! Key: SHA-256 over the authenticator name and the token (never the raw token). Value: the
//! verified identity, the `kid` and fingerprint of the key that verified it, and the token's
//! `exp`. An entry is never served past `exp` nor `token_cache.max_ttl_seconds`; the cache holds
//! at most `max_entries`. moka expires every entry at `max_ttl_seconds` (one timer for all); an
//! earlier `exp` is checked on each hit, which saves moka's per-entry timer node (~50 bytes an
//! entry, BENCHMARKS.md "Memory"). A hit is only used while the verifying key is still in its set (a key
//! rotated out of a JWK set invalidates what it verified); a config reload builds a new cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::auth::Identity;
use crate::metrics::metrics;

/// What a successful verification left behind.
pub struct Verified {
    /// The verified identity.
    pub identity: Identity,
    /// `kid` of the key that verified the token (shared with the key).
    pub kid: Option<Arc<str>>,
    /// Fingerprint of that key (see `KeySet::contains`).
    pub fingerprint: [u8; 32],
    /// When the entry stops being served: now + min(exp - now, max_ttl).
    expires: Instant,
}

/// The cache.
pub struct TokenCache {
    cache: moka::sync::Cache<[u8; 32], Arc<Verified>>,
    max_ttl: Duration,
}

impl TokenCache {
    /// A cache of at most `max_entries` entries living at most `max_ttl_seconds`.
    pub fn new(max_entries: u64, max_ttl_seconds: u64) -> TokenCache {
        TokenCache {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(Duration::from_secs(max_ttl_seconds.max(1)))
                .build(),
            max_ttl: Duration::from_secs(max_ttl_seconds),
        }
    }

    /// The cache key of `token` for authenticator `name`.
    pub fn key(name: &str, token: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update(token.as_bytes());
        h.finalize().into()
    }

    /// A cached verification, counting the hit or miss.
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Verified>> {
        let mut got = self.cache.get(key);
        if got.as_ref().is_some_and(|v| Instant::now() >= v.expires) {
            self.cache.invalidate(key);
            got = None;
        }
        let m = metrics();
        if got.is_some() {
            &m.token_cache_hits
        } else {
            &m.token_cache_misses
        }
        .inc();
        got
    }

    /// Drops an entry whose key left its set.
    pub fn invalidate(&self, key: &[u8; 32]) {
        self.cache.invalidate(key);
    }

    /// Remembers a verification; `exp` is the token's `exp` (Unix seconds) if it has one.
    /// Nothing is stored if the token expires within a second.
    pub fn insert(
        &self,
        key: [u8; 32],
        identity: Identity,
        kid: Option<Arc<str>>,
        fingerprint: [u8; 32],
        exp: Option<f64>,
    ) {
        let now = crate::metrics::unix_now();
        let left = exp.map_or(self.max_ttl, |e| {
            Duration::from_secs_f64((e - now).max(0.0))
        });
        let ttl = left.min(self.max_ttl);
        if ttl < Duration::from_secs(1) {
            return;
        }
        self.cache.insert(
            key,
            Arc::new(Verified {
                identity,
                kid,
                fingerprint,
                expires: Instant::now() + ttl,
            }),
        );
    }

    /// Entries currently held (approximate; for tests and metrics).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            user_id: Some("u".into()),
            ..Identity::app("jwt".into(), "a".into())
        }
    }

    #[test]
    fn keys_hash_the_token_per_authenticator() {
        let k = TokenCache::key("a", "tok");
        assert_ne!(k, TokenCache::key("b", "tok"));
        assert_ne!(k, TokenCache::key("a", "tok2"));
        assert!(!k.windows(3).any(|w| w == b"tok"));
    }

    #[test]
    fn entries_never_outlive_exp_nor_max_ttl() {
        let c = TokenCache::new(100, 1);
        let now = crate::token::now() as f64;
        c.insert(
            TokenCache::key("a", "far"),
            id(),
            None,
            [0; 32],
            Some(now + 3600.0),
        ); // max_ttl 1 s
        let c2 = TokenCache::new(100, 300);
        c2.insert(
            TokenCache::key("a", "soon"),
            id(),
            None,
            [0; 32],
            Some(now + 2.0),
        ); // exp in 2 s
        c2.insert(
            TokenCache::key("a", "expired"),
            id(),
            None,
            [0; 32],
            Some(now - 5.0),
        );
        assert!(c.get(&TokenCache::key("a", "far")).is_some());
        assert!(c2.get(&TokenCache::key("a", "soon")).is_some());
        assert!(c2.get(&TokenCache::key("a", "expired")).is_none());
        std::thread::sleep(Duration::from_millis(2100));
        assert!(
            c.get(&TokenCache::key("a", "far")).is_none(),
            "outlived max_ttl_seconds"
        );
        assert!(
            c2.get(&TokenCache::key("a", "soon")).is_none(),
            "outlived exp"
        );
    }

    #[test]
    fn bounded_by_max_entries() {
        let c = TokenCache::new(10, 300);
        for i in 0..100 {
            c.insert(
                TokenCache::key("a", &i.to_string()),
                id(),
                None,
                [0; 32],
                None,
            );
        }
        assert!(c.len() <= 10, "{} entries", c.len());
    }
}
