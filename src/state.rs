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
    /// Bumped (a generation count) each time the shared revocations are swapped in, so open
    /// sessions can recheck at once: `revocations_changed.subscribe()`, then `changed().await`.
    pub(crate) revocations_changed: tokio::sync::watch::Sender<u64>,
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
        State {
            rules: ArcSwap::from_pointee(loaded.rules),
            settings: loaded.settings,
            draining: AtomicBool::new(false),
            inflight: Arc::new(AtomicUsize::new(0)),
            connections: Arc::new(AtomicUsize::new(0)),
            shared,
            revocations: ArcSwap::from_pointee(crate::revocation::Revocations::default()),
            revocations_changed: tokio::sync::watch::Sender::new(0),
            config_path,
            source_digest: loaded.source_digest,
            telemetry,
        }
    }

    /// Puts `entries` in force as the shared revocations (`Source::Shared`; the file's entries
    /// stay) and tells [`State::revocations_changed`]'s subscribers.
    pub(crate) fn set_shared_revocations(&self, entries: Vec<crate::revocation::Revocation>) {
        use crate::revocation::Source;
        let same = self.revocations.load().entries(Source::Shared) == entries.as_slice();
        if !same {
            self.revocations
                .rcu(|r| r.with(Source::Shared, entries.clone()));
            self.revocations_changed.send_modify(|g| *g += 1);
        }
    }
}

/// Counts one unit (a request, a connection) for as long as it lives.
pub(crate) struct Counted(Arc<AtomicUsize>);

impl Counted {
    /// Increments `counter` until the returned guard drops.
    pub(crate) fn new(counter: &Arc<AtomicUsize>) -> Counted {
        counter.fetch_add(1, Ordering::AcqRel);
        Counted(counter.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
