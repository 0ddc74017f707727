//! Keeps this replica current with Redis: one subscription to the `events` channel, and after
//! each (re)subscription the revocations and blocks in force loaded again, so nothing published
//! while the connection was down is missed. A published block is mirrored at once; a
//! `revocations` notice reloads the whole list (one `HGETALL`), which reaches
//! `on_revocations` within milliseconds of `keygate revoke`.
//!
//! Redis is "healthy" from the moment the subscription is up and the state loaded, until the
//! subscription ends or a ping (every second) goes unanswered for a second; then this loop
//! reconnects every 200 ms to 1 s, so sharing resumes within about a second of Redis coming
//! back.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::redis::Redis;
use super::{Op, Unavailable};
use crate::revocation::Revocation;

/// Receives every new list of shared revocations.
pub(super) type OnRevocations = Box<dyn Fn(Vec<Revocation>) + Send + Sync>;

/// How long a connection attempt, a subscription or a ping may take.
const DEADLINE: Duration = Duration::from_secs(1);
/// Between reconnection attempts: from this, doubling, ...
const MIN_DELAY: Duration = Duration::from_millis(200);
/// ... up to this.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// Runs for the life of the process.
pub(super) async fn run(r: Arc<Redis>, on_revocations: OnRevocations) {
    let mut delay = MIN_DELAY;
    let mut logged_down = false;
    loop {
        let started = std::time::Instant::now();
        let Err(why) = session(&r, &on_revocations).await;
        let was_up = r.set_healthy(false);
        crate::metrics::metrics()
            .shared_state_errors
            .with_label_values(&[Op::Connect.as_str()])
            .inc();
        // One line per outage (and one if it never came up), not one per attempt.
        if was_up || !logged_down {
            tracing::warn!(url = %r.settings.redacted, error = %why, "shared state: Redis unavailable; retrying every second");
            logged_down = true;
        }
        if was_up || started.elapsed() > MAX_DELAY {
            delay = MIN_DELAY;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// One subscription, from connecting until it ends; why it ended.
async fn session(r: &Redis, on_revocations: &OnRevocations) -> Result<Infallible, Unavailable> {
    let pubsub = within(r, "connect", r.client()?.get_async_pubsub()).await?;
    let (mut sink, mut stream) = pubsub.split();
    within(r, "subscribe", sink.subscribe(r.channel())).await?;
    // Loaded after subscribing, so no change falls between the load and the subscription.
    on_revocations(r.revocations().await?);
    let blocks = r.load_blocks().await?;
    if !r.set_healthy(true) {
        tracing::info!(url = %r.settings.redacted, blocks, "shared state: connected to Redis");
    }
    let mut ping = tokio::time::interval(DEADLINE);
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err(Unavailable("the subscription connection closed".into()));
                };
                let payload: String = msg.get_payload().unwrap_or_default();
                handle(r, on_revocations, &payload).await?;
            }
            _ = ping.tick() => {
                within(r, "ping", sink.ping::<redis::Value>()).await?;
            }
        }
    }
}

/// `fut` within [`DEADLINE`]; `what` names it in the error.
async fn within<T>(
    r: &Redis,
    what: &str,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Unavailable> {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(r.error(&e)),
        Err(_) => Err(Unavailable(format!("{what}: no answer within 1 s"))),
    }
}

/// One message of the `events` channel.
async fn handle(
    r: &Redis,
    on_revocations: &OnRevocations,
    payload: &str,
) -> Result<(), Unavailable> {
    let mut words = payload.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some("revocations"), None, None) => {
            let entries = r.revocations().await.inspect_err(|_| {
                crate::metrics::metrics()
                    .shared_state_errors
                    .with_label_values(&[Op::Revocations.as_str()])
                    .inc();
            })?;
            on_revocations(entries);
        }
        (Some("block"), Some(ip), Some(ms)) => {
            if let (Ok(ip), Ok(ms)) = (ip.parse(), ms.parse::<u64>()) {
                r.mirror_block(ip, Duration::from_millis(ms));
            }
        }
        _ => tracing::debug!("shared state: unknown event ignored"),
    }
    Ok(())
}
