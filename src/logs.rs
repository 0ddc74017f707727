//! Process logs (tracing): JSON or text on stderr, level from `KEYGATE_LOG` (env-filter syntax).
//!
//! Two rules on top of the filter: dependencies whose debug logs print whole request headers
//! (tokens included) are capped at `info` whatever `KEYGATE_LOG` asks; and pingora-core's
//! `ERROR failed to acquire reusable stream`, which is no error, is counted in
//! `keygate_upstream_pool_races_total` instead of logged. (pingora's pooled-connection watcher
//! runs on any of its per-thread runtimes and releases the connection's lock before it drops
//! its reference; a request on another thread that takes the connection in between finds it
//! still shared, drops it and connects anew. The request is unaffected; the cost is one extra
//! upstream connect, which grows with CPU contention.)

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Dependencies whose debug/trace logs print request or response headers.
const LEAKY_LOG_TARGETS: [&str; 10] = [
    "pingora",
    "pingora_core",
    "pingora_proxy",
    "pingora_http",
    "pingora_pool",
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
];

/// Installs the process logger: `format` `json` (default when stderr is not a terminal) or
/// `text`.
pub fn init(format: Option<&str>) {
    use std::io::IsTerminal;
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("KEYGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for noisy in LEAKY_LOG_TARGETS {
        if let Ok(d) = format!("{noisy}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    let json = format.map_or(!std::io::stderr().is_terminal(), |f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().finish().with(PoolRace).init();
    } else {
        builder.finish().with(PoolRace).init();
    }
}

/// Turns pingora-core 0.9.1's `failed to acquire reusable stream` (`connectors/mod.rs`,
/// `reused_stream`) into a metric (see the module docs).
struct PoolRace;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PoolRace {
    fn event_enabled(&self, event: &tracing::Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        // pingora logs through the `log` crate: its records arrive with target "log".
        if *meta.level() != tracing::Level::ERROR || meta.target() != "log" {
            return true;
        }
        let mut seen = Seen::default();
        event.record(&mut seen);
        if seen.message && seen.target {
            crate::metrics::metrics().upstream_pool_races.inc();
            return false;
        }
        true
    }
}

#[derive(Default)]
struct Seen {
    message: bool,
    target: bool,
}

impl Visit for Seen {
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "log.target" {
            self.target = v == "pingora_core::connectors";
        }
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.message = format!("{v:?}") == "failed to acquire reusable stream";
        }
    }
}
