//! The Redis [`Store`] (`shared_state`), on the `redis` crate's tokio connection manager (one
//! multiplexed connection that reconnects by itself) with `timeout_ms` on every request-path
//! call.
//!
//! Keys, all under `key_prefix`:
//! - `throttle:fail:<ip>`: failures in the current window (expires with it);
//! - `throttle:block:<ip>`: a block (expires when it ends);
//! - `quota:<32 hex>`: one quota counter (expires with its window);
//! - `revocations`: a hash, `Revocation::id()` -> the entry as JSON (`expires_at` inside);
//! - channel `events`: `block <ip> <ms>` when an address is blocked, `revocations` when the
//!   revocations changed.
//!
//! Each counter update is one Lua script (atomic on the server, one round trip).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{Quota, Settings, Store, Unavailable};
use crate::revocation::Revocation;
use crate::throttle::ThrottlePolicy;

/// A failure: count it in the window; over `max_failures`, block (and publish the block).
/// KEYS: fail, block; ARGV: window ms, max failures, block ms, channel, ip. Returns the block's
/// milliseconds when this call set it, else 0.
const FAILED: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[4], 'block ' .. ARGV[5] .. ' ' .. ARGV[3])
  return tonumber(ARGV[3])
end
return 0
";

/// A quota hit: a fixed window from the key's first request. KEYS: counter; ARGV: window ms.
/// Returns {requests in the window, ms left in it}.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// Most mirrored blocks held at once.
const BLOCKS: u64 = 65_536;

/// Redis, as this process sees it.
pub(crate) struct Redis {
    /// `shared_state`.
    pub(crate) settings: Settings,
    client: Option<redis::Client>,
    conn: OnceLock<ConnectionManager>,
    /// Connected and subscribed (set by `super::sync` only).
    healthy: AtomicBool,
    /// Blocks set by any replica, as published: address -> end.
    blocks: moka::sync::Cache<IpAddr, Instant>,
    failed: Script,
    hit: Script,
}

impl Redis {
    /// Not connected yet: see `super::sync`.
    pub(crate) fn new(settings: &Settings) -> Redis {
        Redis {
            client: redis::Client::open(settings.url.expose()).ok(),
            settings: settings.clone(),
            conn: OnceLock::new(),
            healthy: AtomicBool::new(false),
            blocks: moka::sync::Cache::builder().max_capacity(BLOCKS).build(),
            failed: Script::new(FAILED),
            hit: Script::new(HIT),
        }
    }

    /// The client (`None` only if the URL, checked at load, was refused after all).
    pub(crate) fn client(&self) -> Result<&redis::Client, Unavailable> {
        self.client
            .as_ref()
            .ok_or_else(|| Unavailable("the Redis URL is not usable".into()))
    }

    /// The command connection, created (lazily connecting) on first use; call it on a runtime
    /// that lives as long as the process (its driver task runs there).
    pub(crate) fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1));
        let c = ConnectionManager::new_lazy_with_config(self.client()?.clone(), config)
            .map_err(|e| self.error(&e))?;
        Ok(self.conn.get_or_init(|| c).clone())
    }

    /// `e` as an [`Unavailable`] whose text has no password in it.
    pub(crate) fn error(&self, e: &dyn std::fmt::Display) -> Unavailable {
        Unavailable(self.settings.scrub(&e.to_string()))
    }

    /// A key under the prefix.
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.settings.prefix)
    }

    /// The pub/sub channel of change notifications.
    pub(crate) fn channel(&self) -> String {
        self.key("events")
    }

    /// Whether Redis is connected and this replica subscribed to its changes.
    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Set by `super::sync` when the subscription is up (and the state loaded) or lost.
    pub(crate) fn set_healthy(&self, up: bool) -> bool {
        self.healthy.swap(up, Ordering::AcqRel)
    }

    /// Mirrors a block published (or found at start) for `ip`, ending in `left`.
    pub(crate) fn mirror_block(&self, ip: IpAddr, left: Duration) {
        self.blocks.insert(ip, Instant::now() + left);
    }

    /// `fut` (a call on the command connection), within `limit`.
    async fn within<T>(
        &self,
        limit: Duration,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(&e)),
            Err(_) => Err(Unavailable(format!(
                "no answer within {} ms",
                limit.as_millis()
            ))),
        }
    }

    /// The deadline of background loads: `timeout_ms`, at least a second.
    fn load_limit(&self) -> Duration {
        self.settings.timeout.max(Duration::from_secs(1))
    }

    /// The shared revocations.
    pub(crate) async fn revocations(&self) -> Result<Vec<Revocation>, Unavailable> {
        let mut c = self.connection()?;
        let prefix = &self.settings.prefix;
        let all = self
            .within(self.load_limit(), load_revocations(&mut c, prefix))
            .await?;
        Ok(all.into_iter().map(|(_, e)| e).collect())
    }

    /// Mirrors every block in force (at start and after a reconnect); how many.
    pub(crate) async fn load_blocks(&self) -> Result<usize, Unavailable> {
        let mut c = self.connection()?;
        let prefix = self.key("throttle:block:");
        let found = self
            .within(self.load_limit(), scan_ttls(&mut c, &prefix))
            .await?;
        let mut n = 0;
        for (k, ms) in found {
            let ip = k.strip_prefix(&prefix).and_then(|ip| ip.parse().ok());
            if let (Some(ip), true) = (ip, ms > 0) {
                self.mirror_block(ip, Duration::from_millis(ms as u64));
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Every key starting with `prefix` and its time to live, milliseconds (SCAN, then one
/// pipelined PTTL per batch).
async fn scan_ttls(
    c: &mut ConnectionManager,
    prefix: &str,
) -> redis::RedisResult<Vec<(String, i64)>> {
    let pattern = format!("{prefix}*");
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(c)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            keys.iter().for_each(|k| {
                pipe.pttl(k);
            });
            let ttls: Vec<i64> = pipe.query_async(c).await?;
            out.extend(keys.into_iter().zip(ttls));
        }
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

#[async_trait::async_trait]
impl Store for Redis {
    async fn failed(
        &self,
        ip: IpAddr,
        cfg: &ThrottlePolicy,
    ) -> Result<Option<Duration>, Unavailable> {
        let (fail, block) = (
            self.key(&format!("throttle:fail:{ip}")),
            self.key(&format!("throttle:block:{ip}")),
        );
        let channel = self.channel();
        let block_ms = (cfg.block.as_millis() as u64).max(1);
        let mut c = self.connection()?;
        let mut call = self.failed.key(&fail);
        call.key(&block)
            .arg((cfg.window.as_millis() as u64).max(1))
            .arg(cfg.max_failures)
            .arg(block_ms)
            .arg(&channel)
            .arg(ip.to_string());
        let set: u64 = self
            .within(self.settings.timeout, call.invoke_async(&mut c))
            .await?;
        let blocked = (set > 0).then(|| Duration::from_millis(set));
        if let Some(d) = blocked {
            self.mirror_block(ip, d); // at once here; the other replicas by pub/sub
        }
        Ok(blocked)
    }

    async fn hit(&self, key: [u8; 16], quota: &Quota) -> Result<(u64, Duration), Unavailable> {
        let k = self.key(&format!("quota:{}", hex::encode(key)));
        let window = quota.window.as_millis().max(1) as u64;
        let mut c = self.connection()?;
        let mut call = self.hit.key(&k);
        call.arg(window);
        let (n, ttl): (u64, i64) = self
            .within(self.settings.timeout, call.invoke_async(&mut c))
            .await?;
        Ok((n, Duration::from_millis(ttl.max(0) as u64)))
    }

    fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let left = self
            .blocks
            .get(&ip)?
            .saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    fn blocked_addresses(&self) -> usize {
        let now = Instant::now();
        self.blocks.iter().filter(|(_, end)| *end > now).count()
    }
}

/// The hash of shared revocations under `prefix`.
fn revocations_key(prefix: &str) -> String {
    format!("{prefix}revocations")
}

/// Every valid entry of the shared revocations (entries that do not parse or validate are
/// skipped with a warning, so one bad entry never hides the others).
pub(crate) async fn load_revocations(
    c: &mut impl ConnectionLike,
    prefix: &str,
) -> redis::RedisResult<Vec<(String, Revocation)>> {
    let all: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(revocations_key(prefix))
        .query_async(c)
        .await?;
    let mut out = Vec::with_capacity(all.len());
    for (id, json) in all {
        match serde_json::from_str::<Revocation>(&json) {
            Ok(e) if e.validate().is_ok() => out.push((id, e)),
            _ => tracing::warn!(id = %id, "shared revocation skipped: not a valid entry"),
        }
    }
    Ok(out)
}

/// Stores `entry` under its id and tells every replica; its id.
pub(crate) async fn add_revocation(
    c: &mut impl ConnectionLike,
    prefix: &str,
    entry: &Revocation,
) -> redis::RedisResult<String> {
    let id = entry.id();
    let json = serde_json::to_string(entry).unwrap_or_default();
    redis::pipe()
        .atomic()
        .hset(revocations_key(prefix), &id, json)
        .publish(format!("{prefix}events"), "revocations")
        .query_async::<()>(c)
        .await?;
    Ok(id)
}

/// Removes the entry `id` and tells every replica; whether it existed.
pub(crate) async fn delete_revocation(
    c: &mut impl ConnectionLike,
    prefix: &str,
    id: &str,
) -> redis::RedisResult<bool> {
    let (removed, _): (u64, u64) = redis::pipe()
        .atomic()
        .hdel(revocations_key(prefix), id)
        .publish(format!("{prefix}events"), "revocations")
        .query_async(c)
        .await?;
    Ok(removed > 0)
}
