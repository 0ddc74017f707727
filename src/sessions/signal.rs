//! "What open sessions were authorized under may have changed": poked by whatever changes it (a
//! config reload, a JWK-set fetch, a change to the revocations from `revocations.file` or from
//! shared state), awaited by the session registry, which then re-authorizes every open session
//! at once instead of at its next `sessions.recheck_seconds` round. A leaf, so that any layer
//! may poke it.
//!
//! Pokes coalesce: any number of them while a round is being prepared make one more round.

use tokio::sync::Notify;

/// The one signal of the process (one registry per process).
static CHANGED: Notify = Notify::const_new();

/// Says that the rules, keys or revocations in force changed.
pub(crate) fn poke() {
    CHANGED.notify_one();
}

/// Resolves after the next [`poke`] (or at once if one came since the last call).
pub(crate) async fn changed() {
    CHANGED.notified().await;
}
