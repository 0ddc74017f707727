//! Prometheus metrics (`docs/config.md`, "Admin port"), declared once in `families!`: name,
//! help, labels. Label values come only from the config (route and authenticator names) and
//! fixed enums. The request path uses handles resolved in advance ([`RouteCounters`], one per
//! route and per authenticator), so counting a request hashes no label set.

use std::sync::{Arc, OnceLock};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::reason::Reason;
use strum::EnumCount;

/// The process-wide metrics (one keygate per process; a reload keeps counting).
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Unix time now, seconds (for `_timestamp_seconds` gauges).
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Route label for requests that matched no route (or were refused before matching).
pub(crate) const NO_ROUTE: &str = "(none)";

/// Buckets from 50 µs (auth) to 30 s (slow upstreams), in seconds.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

/// How one family is built from its name, help and labels.
trait Family: Collector + Clone + 'static {
    fn build(name: &str, help: &str, labels: &[&str]) -> Self;
}

macro_rules! family {
    ($t:ty, plain, $new:expr) => {
        impl Family for $t {
            fn build(name: &str, help: &str, _: &[&str]) -> Self {
                $new(name, help).expect("a valid metric")
            }
        }
    };
    ($t:ty, vec) => {
        impl Family for $t {
            fn build(name: &str, help: &str, labels: &[&str]) -> Self {
                <$t>::new(Opts::new(name, help), labels).expect("a valid metric")
            }
        }
    };
}
family!(IntCounter, plain, IntCounter::new);
family!(Gauge, plain, Gauge::new);
family!(IntGauge, plain, IntGauge::new);
family!(IntCounterVec, vec);
family!(IntGaugeVec, vec);
family!(GaugeVec, vec);

impl Family for HistogramVec {
    fn build(name: &str, help: &str, labels: &[&str]) -> Self {
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
            labels,
        )
        .expect("a valid metric")
    }
}

/// Declares every family: `field: Type = ("name", "help", [labels])`.
macro_rules! families {
    ($($(#[$doc:meta])* $field:ident: $t:ty = ($name:literal, $help:literal, [$($label:literal),*]);)*) => {
        /// keygate's metric families, registered in one registry with the `process_*` collector.
        pub(crate) struct Metrics {
            /// The registry `/metrics` renders.
            pub(crate) registry: Registry,
            $($(#[$doc])* pub(crate) $field: $t,)*
        }

        impl Metrics {
            fn new() -> Metrics {
                let registry = Registry::new();
                $(
                    let $field = <$t as Family>::build($name, $help, &[$($label),*]);
                    registry.register(Box::new($field.clone())).expect("registered once");
                )*
                registry
                    .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
                    .expect("registered once");
                Metrics { registry, $($field,)* }
            }
        }
    };
}

families! {
    /// `reason="none"` when allowed; `outcome` is allowed, denied or observed.
    requests: IntCounterVec = ("keygate_requests_total", "Requests by route, outcome (allowed/denied/observed) and reason.", ["route", "outcome", "reason"]);
    /// Whole request, upstream included.
    request_duration: HistogramVec = ("keygate_request_duration_seconds", "Whole request duration, upstream included.", ["route"]);
    /// One observation per authenticator run.
    auth_duration: HistogramVec = ("keygate_auth_duration_seconds", "Credential verification duration.", ["authenticator"]);
    /// `kind`: connect, timeout, reset, other.
    upstream_errors: IntCounterVec = ("keygate_upstream_errors_total", "Failures talking to the upstream, by kind.", ["kind"]);
    /// Always 1, labelled with the version.
    build_info: IntGaugeVec = ("keygate_build_info", "Build information; always 1.", ["version"]);
    /// `result`: ok, error, timeout, http_error, invalid, issuer_mismatch.
    jwks_fetches: IntCounterVec = ("keygate_jwks_fetches_total", "JWK set fetches by authenticator and result.", ["authenticator", "result"]);
    /// Usable keys in the last fetched set.
    jwks_keys: IntGaugeVec = ("keygate_jwks_keys", "Usable keys in the last fetched JWK set.", ["authenticator"]);
    /// Keys of the last fetched set keygate cannot use.
    jwks_skipped: IntGaugeVec = ("keygate_jwks_skipped_keys", "Keys of the last fetched JWK set that keygate cannot use.", ["authenticator"]);
    /// Unix time of the last good fetch, seconds.
    jwks_last_success: GaugeVec = ("keygate_jwks_last_success_timestamp_seconds", "Unix time of the last successful JWK set fetch.", ["authenticator"]);
    /// Verified-token cache hits.
    token_cache_hits: IntCounter = ("keygate_token_cache_hits_total", "Verified-token cache hits.", []);
    /// Verified-token cache misses.
    token_cache_misses: IntCounter = ("keygate_token_cache_misses_total", "Verified-token cache misses.", []);
    /// `result`: ok, error.
    config_reloads: IntCounterVec = ("keygate_config_reloads_total", "Config reloads by result (ok, error).", ["result"]);
    /// Unix time the config in force was loaded (start-up included), seconds.
    config_last_reload_success: Gauge = ("keygate_config_last_reload_success_timestamp_seconds", "Unix time the config in force was loaded.", []);
    /// Client connections closed at once because `limits.max_connections` were open.
    connections_refused: IntCounter = ("keygate_connections_refused_total", "Client connections refused because limits.max_connections were open.", []);
    /// Requests refused because their client address is blocked (`throttle`).
    throttled: IntCounterVec = ("keygate_throttled_requests_total", "Requests refused with 429 too_many_failures, by route.", ["route"]);
    /// Client addresses blocked now (set at each scrape).
    throttle_blocked: IntGauge = ("keygate_throttle_blocked_addresses", "Client addresses blocked by failed-authentication throttling now.", []);
    /// Access-log lines dropped because stdout fell behind (brought up to date at each scrape).
    access_log_dropped: IntCounter = ("keygate_access_log_dropped_total", "Access-log lines dropped because stdout could not keep up.", []);
    /// Pooled upstream connections pingora discarded in a harmless race between its per-thread
    /// runtimes (each cost one extra upstream connect; see `crate::logs`).
    upstream_pool_races: IntCounter = ("keygate_upstream_pool_races_total", "Pooled upstream connections pingora discarded in a harmless cross-thread race (one extra connect each).", []);
    /// Upgraded connections (websockets) open now, by route (`crate::sessions`).
    sessions_open: IntGaugeVec = ("keygate_sessions_open", "Upgraded connections (websockets, Socket.IO) open now, by route.", ["route"]);
    /// Sessions keygate closed, by route and reason (`token_expired`, `credential_revoked`,
    /// `unknown_key`, ..., `max_lifetime`).
    sessions_closed: IntCounterVec = ("keygate_sessions_closed_total", "Sessions (upgraded connections) keygate closed, by route and reason.", ["route", "reason"]);
    /// Revocation entries in force, by source (`file`, `shared`).
    revocations: IntGaugeVec = ("keygate_revocations", "Revocation entries in force, by source (file, shared).", ["source"]);
    /// OTLP trace exports that failed (their spans are dropped); see `crate::telemetry`.
    trace_export_failures: IntCounter = ("keygate_trace_export_failures_total", "Trace exports to telemetry.otlp_endpoint that failed; the spans of each are dropped.", []);
    /// Operations that needed Redis (`shared_state`) and could not use it (failed, timed out, or
    /// skipped while Redis is unreachable); `op`: connect, throttle, quota, revocations.
    shared_state_errors: IntCounterVec = ("keygate_shared_state_errors_total", "Operations that needed shared state (Redis) and could not use it, by op (connect, throttle, quota, revocations).", ["op"]);
    /// Requests refused with 429 `quota_exceeded`, by route.
    quota_exceeded: IntCounterVec = ("keygate_quota_exceeded_total", "Requests refused with 429 quota_exceeded, by route.", ["route"]);
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    /// Sets the series that must exist before the first event (`build_info`, reload results).
    pub(crate) fn init(&self) {
        self.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for r in ["ok", "error"] {
            self.config_reloads.with_label_values(&[r]);
        }
        for s in ["file", "shared"] {
            self.revocations.with_label_values(&[s]);
        }
    }
}

/// How a request ended, for `keygate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Forwarded (with identity, or to an anonymous route).
    Allowed,
    /// Refused (`reason`).
    Denied(Reason),
    /// `enforce: observe`: would have been refused (`reason`) but was forwarded.
    Observed(Reason),
}

impl Outcome {
    /// The `outcome` and `reason` label values (`allowed`/`none`, `denied`/reason,
    /// `observed`/reason), as in `keygate_requests_total` and the access log.
    pub(crate) fn labels(self) -> (&'static str, &'static str) {
        match self {
            Outcome::Allowed => ("allowed", "none"),
            Outcome::Denied(r) => ("denied", r.as_str()),
            Outcome::Observed(r) => ("observed", r.as_str()),
        }
    }
}

/// Counters of one route (or of [`NO_ROUTE`]): a request is counted here, once. Made by the
/// compile step without touching the registry; [`RouteCounters::bind`] (the ruleset's
/// activation) creates the series that must exist before the first request, and the others
/// appear on first use, so a config that fails to load or is only checked leaves no series.
pub(crate) struct RouteCounters {
    /// The route's name (its label value).
    pub(crate) name: Arc<str>,
    allowed: OnceLock<IntCounter>,
    denied: [OnceLock<IntCounter>; Reason::COUNT],
    observed: [OnceLock<IntCounter>; Reason::COUNT],
    duration: OnceLock<Histogram>,
}

impl RouteCounters {
    /// The handles of route `name`, none resolved yet (no series is created).
    pub(crate) fn new(name: &str) -> RouteCounters {
        RouteCounters {
            name: name.into(),
            allowed: OnceLock::new(),
            denied: std::array::from_fn(|_| OnceLock::new()),
            observed: std::array::from_fn(|_| OnceLock::new()),
            duration: OnceLock::new(),
        }
    }

    /// Resolves the handles counted on every request: the `allowed` series appears (at 0) and
    /// the duration histogram is ready. Idempotent.
    pub(crate) fn bind(&self) {
        self.allowed();
        self.duration();
    }

    fn allowed(&self) -> &IntCounter {
        self.allowed.get_or_init(|| {
            metrics()
                .requests
                .with_label_values(&[&self.name, "allowed", "none"])
        })
    }

    fn duration(&self) -> &Histogram {
        self.duration
            .get_or_init(|| metrics().request_duration.with_label_values(&[&self.name]))
    }

    /// The counters of requests no route matched.
    pub(crate) fn unmatched() -> &'static RouteCounters {
        static NONE: OnceLock<RouteCounters> = OnceLock::new();
        NONE.get_or_init(|| RouteCounters::new(NO_ROUTE))
    }

    /// Counts one request (or Socket.IO CONNECT) with its outcome.
    pub(crate) fn count(&self, outcome: Outcome) {
        let (cell, r) = match outcome {
            Outcome::Allowed => return self.allowed().inc(),
            Outcome::Denied(r) => (&self.denied, r),
            Outcome::Observed(r) => (&self.observed, r),
        };
        cell[r as usize]
            .get_or_init(|| {
                let (label, reason) = outcome.labels();
                metrics()
                    .requests
                    .with_label_values(&[&self.name, label, reason])
            })
            .inc();
    }

    /// Observes a finished request's duration, seconds.
    pub(crate) fn observe_duration(&self, seconds: f64) {
        self.duration().observe(seconds);
    }
}

/// `keygate_auth_duration_seconds` of each authenticator of a ruleset, indexed like its
/// authenticators (`timers[i].observe(seconds)`). Made by the compile step without touching the
/// registry; resolved by [`AuthTimers::bind`] (activation), or on first use.
pub(crate) struct AuthTimers {
    names: Vec<Arc<str>>,
    handles: OnceLock<Vec<Histogram>>,
}

impl AuthTimers {
    /// The timers of authenticators `names`, in order, none resolved yet.
    pub(crate) fn new(names: impl IntoIterator<Item = Arc<str>>) -> AuthTimers {
        AuthTimers {
            names: names.into_iter().collect(),
            handles: OnceLock::new(),
        }
    }

    /// Resolves every timer (each authenticator's series is created when first observed).
    pub(crate) fn bind(&self) -> &[Histogram] {
        self.handles.get_or_init(|| {
            let family = &metrics().auth_duration;
            self.names
                .iter()
                .map(|n| family.with_label_values(&[n]))
                .collect()
        })
    }
}

impl std::ops::Index<usize> for AuthTimers {
    type Output = Histogram;

    /// The timer of the authenticator at `index`; panics past the last one.
    fn index(&self, index: usize) -> &Histogram {
        &self.bind()[index]
    }
}
