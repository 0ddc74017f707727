//! Process state shared by the proxy, the admin port and the background tasks: the rules in
//! force (swapped whole on reload), the drain flag, and what is in flight.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::ruleset::Ruleset;
use crate::settings::ServerSettings;

/// State shared by the proxy, admin and background services.
pub(crate) struct State {
    /// The rules in force; a request keeps the ones it started with, a websocket only until
    /// its upgrade is answered (later Socket.IO CONNECTs use the rules in force then).
    pub(crate) rules: ArcSwap<Ruleset>,
    /// The restart-only settings keygate started with.
    pub(crate) settings: ServerSettings,
    /// SIGTERM received: `/readyz` answers 503 while in-flight requests drain.
    pub(crate) draining: AtomicBool,
    /// Requests (and websockets) in flight.
    pub(crate) inflight: Arc<AtomicUsize>,
    /// Client connections open.
    pub(crate) connections: Arc<AtomicUsize>,
    /// Throttle counters and blocks, quota counters and shared revocations: in-process, or
    /// shared through Redis with `shared_state` (kept across reloads; `crate::shared`).
    pub(crate) shared: crate::shared::Shared,
    /// The revocations in force (`revocations.file` and shared entries), swapped whole when
    /// either source changes; kept across config reloads.
    pub(crate) revocations: ArcSwap<crate::revocation::Revocations>,
    /// The open sessions (upgraded connections) and their registry's inbox.
    pub(crate) sessions: crate::sessions::Sessions,
    /// The files the config in force names, watched for reloads (`crate::reload`).
    pub(crate) referenced_files: ArcSwap<Vec<std::path::PathBuf>>,
    /// The config file, watched for reloads (`None` for the built-in demo config).
    pub(crate) config_path: Option<std::path::PathBuf>,
    /// SHA-256 of the config text keygate started with (the watcher reloads at once if the
    /// file changed before it started watching).
    pub(crate) source_digest: [u8; 32],
    /// The tracer, when `telemetry.otlp_endpoint` is set (restart-only).
    pub(crate) telemetry: Option<crate::telemetry::Telemetry>,
}

impl State {
    /// State for a freshly loaded config.
    pub(crate) fn new(
        loaded: crate::ruleset::Loaded,
        config_path: Option<std::path::PathBuf>,
        telemetry: Option<crate::telemetry::Telemetry>,
    ) -> State {
        let shared = crate::shared::Shared::new(loaded.settings.shared_state.as_ref());
        crate::metrics::metrics()
            .revocations
            .with_label_values(&[crate::revocation::Source::File.as_str()])
            .set(loaded.revocations.len() as i64);
        State {
            rules: ArcSwap::from_pointee(loaded.rules),
            settings: loaded.settings,
            draining: AtomicBool::new(false),
            inflight: Arc::new(AtomicUsize::new(0)),
            connections: Arc::new(AtomicUsize::new(0)),
            shared,
            revocations: ArcSwap::from_pointee(crate::revocation::Revocations::new(
                loaded.revocations,
                Vec::new(),
            )),
            sessions: crate::sessions::Sessions::default(),
            referenced_files: ArcSwap::from_pointee(loaded.files),
            config_path,
            source_digest: loaded.source_digest,
            telemetry,
        }
    }

    /// Puts `entries` in force as `source`'s revocations (the other source's stay), sets
    /// `keygate_revocations{source}` and has open sessions re-authorized at once. Every updater
    /// of the revocations (the file, shared state) goes through here; an unchanged list changes
    /// nothing.
    pub(crate) fn apply_revocations(
        &self,
        source: crate::revocation::Source,
        entries: Vec<crate::revocation::Revocation>,
    ) {
        if self.revocations.load().entries(source) == entries.as_slice() {
            return;
        }
        let n = entries.len();
        self.revocations.rcu(|r| r.with(source, entries.clone()));
        crate::metrics::metrics()
            .revocations
            .with_label_values(&[source.as_str()])
            .set(n as i64);
        crate::sessions::signal::poke();
    }
}

/// Counts one unit (a request, a connection) for as long as it lives.
pub(crate) struct CountGuard(Arc<AtomicUsize>);

impl CountGuard {
    /// Increments `counter` until the returned guard drops.
    pub(crate) fn new(counter: &Arc<AtomicUsize>) -> CountGuard {
        counter.fetch_add(1, Ordering::AcqRel);
        CountGuard(counter.clone())
    }

    /// Increments `counter` if fewer than `max` are counted, in one atomic step (two units
    /// arriving together never both see the other and are both refused); `None` at `max`.
    pub(crate) fn within(counter: &Arc<AtomicUsize>, max: usize) -> Option<CountGuard> {
        let before = counter.fetch_add(1, Ordering::AcqRel);
        let guard = CountGuard(counter.clone()); // dropped (decrements) when refused
        (before < max).then_some(guard)
    }
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_admits_exactly_max_even_when_all_arrive_at_once() {
        let counter = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(std::sync::Barrier::new(16));
        let hold = Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (c, start, hold) = (counter.clone(), start.clone(), hold.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let g = CountGuard::within(&c, 8);
                    hold.wait(); // every attempt made before any guard drops
                    g.is_some()
                })
            })
            .collect();
        let admitted = threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .filter(|ok| *ok)
            .count();
        assert_eq!(admitted, 8);
        assert_eq!(counter.load(Ordering::Acquire), 0, "every guard released");
        let held: Vec<_> = (0..2)
            .filter_map(|_| CountGuard::within(&counter, 2))
            .collect();
        assert_eq!(held.len(), 2);
        assert!(CountGuard::within(&counter, 2).is_none());
        drop(held);
        assert!(CountGuard::within(&counter, 2).is_some());
    }
}
