//! Prometheus metrics (names per `../shared/spec/config-v1.md`, "Admin port"). Label values
//! come only from the config (route and authenticator names) and fixed enums.

use std::sync::OnceLock;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The process-wide metrics (one keygate per process; a reload keeps counting).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Unix time now, seconds (for `_timestamp_seconds` gauges).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Route label for requests that matched no route (or were refused before matching).
pub const NO_ROUTE: &str = "(none)";

/// Buckets from 50 µs (auth) to 30 s (slow upstreams), in seconds.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

/// keygate's metric families, registered in one registry with the `process_*` collector.
pub struct Metrics {
    /// The registry `/metrics` renders (with the `process_*` collector).
    pub registry: Registry,
    /// `keygate_requests_total{route,outcome,reason}`; `reason="none"` when allowed.
    pub requests: IntCounterVec,
    /// `keygate_request_duration_seconds{route}`: whole request, upstream included.
    pub request_duration: HistogramVec,
    /// `keygate_auth_duration_seconds{authenticator}`: one observation per authenticator run.
    pub auth_duration: HistogramVec,
    /// `keygate_upstream_errors_total{kind}`: connect, timeout, other.
    pub upstream_errors: IntCounterVec,
    /// `keygate_build_info{version}` = 1.
    pub build_info: IntGaugeVec,
    /// `keygate_jwks_fetches_total{authenticator,result}`; result: ok, error, timeout,
    /// http_error, invalid, issuer_mismatch.
    pub jwks_fetches: IntCounterVec,
    /// `keygate_jwks_keys{authenticator}`: usable keys in the last fetched set.
    pub jwks_keys: IntGaugeVec,
    /// `keygate_jwks_skipped_keys{authenticator}`: keys of the last fetched set keygate cannot use.
    pub jwks_skipped: IntGaugeVec,
    /// `keygate_jwks_last_success_timestamp_seconds{authenticator}`: Unix time of the last good fetch.
    pub jwks_last_success: GaugeVec,
    /// `keygate_token_cache_hits_total`.
    pub token_cache_hits: IntCounter,
    /// `keygate_token_cache_misses_total`.
    pub token_cache_misses: IntCounter,
    /// `keygate_config_reloads_total{result}`: ok, error.
    pub config_reloads: IntCounterVec,
    /// `keygate_config_last_reload_success_timestamp_seconds`: Unix time the config in force
    /// was loaded (start-up included).
    pub config_last_reload_success: prometheus::Gauge,
    /// `keygate_connections_refused_total`: client connections closed at once because
    /// `limits.max_connections` were open.
    pub connections_refused: IntCounter,
    /// `keygate_upstream_pool_races_total`: pooled upstream connections pingora discarded in a
    /// harmless race between its per-thread runtimes (each cost one extra upstream connect).
    pub upstream_pool_races: IntCounter,
}

impl Metrics {
    /// Creates and registers every family.
    fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "keygate_requests_total",
                "Requests by route, outcome (allowed/denied) and reason.",
            ),
            &["route", "outcome", "reason"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "keygate_request_duration_seconds",
                "Whole request duration, upstream included.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let auth_duration = HistogramVec::new(
            HistogramOpts::new(
                "keygate_auth_duration_seconds",
                "Credential verification duration.",
            )
            .buckets(BUCKETS.to_vec()),
            &["authenticator"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "keygate_upstream_errors_total",
                "Failures talking to the upstream, by kind.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new("keygate_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let jwks_fetches = IntCounterVec::new(
            Opts::new(
                "keygate_jwks_fetches_total",
                "JWK set fetches by authenticator and result.",
            ),
            &["authenticator", "result"],
        )
        .expect("valid metric");
        let jwks_keys = IntGaugeVec::new(
            Opts::new(
                "keygate_jwks_keys",
                "Usable keys in the last fetched JWK set.",
            ),
            &["authenticator"],
        )
        .expect("valid metric");
        let jwks_skipped = IntGaugeVec::new(
            Opts::new(
                "keygate_jwks_skipped_keys",
                "Keys of the last fetched JWK set that keygate cannot use.",
            ),
            &["authenticator"],
        )
        .expect("valid metric");
        let jwks_last_success = GaugeVec::new(
            Opts::new(
                "keygate_jwks_last_success_timestamp_seconds",
                "Unix time of the last successful JWK set fetch.",
            ),
            &["authenticator"],
        )
        .expect("valid metric");
        let token_cache_hits = IntCounter::new(
            "keygate_token_cache_hits_total",
            "Verified-token cache hits.",
        )
        .expect("valid metric");
        let token_cache_misses = IntCounter::new(
            "keygate_token_cache_misses_total",
            "Verified-token cache misses.",
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "keygate_config_reloads_total",
                "Config reloads by result (ok, error).",
            ),
            &["result"],
        )
        .expect("valid metric");
        for r in ["ok", "error"] {
            config_reloads.with_label_values(&[r]);
        }
        let config_last_reload_success = prometheus::Gauge::new(
            "keygate_config_last_reload_success_timestamp_seconds",
            "Unix time the config in force was loaded.",
        )
        .expect("valid metric");
        let connections_refused = IntCounter::new(
            "keygate_connections_refused_total",
            "Client connections refused because limits.max_connections were open.",
        )
        .expect("valid metric");
        let upstream_pool_races = IntCounter::new(
            "keygate_upstream_pool_races_total",
            "Pooled upstream connections pingora discarded in a harmless cross-thread race (one extra connect each).",
        )
        .expect("valid metric");
        for c in [
            Box::new(connections_refused.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(upstream_pool_races.clone()),
            Box::new(requests.clone()),
            Box::new(request_duration.clone()),
            Box::new(auth_duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(build_info.clone()),
            Box::new(jwks_fetches.clone()),
            Box::new(jwks_keys.clone()),
            Box::new(jwks_skipped.clone()),
            Box::new(jwks_last_success.clone()),
            Box::new(token_cache_hits.clone()),
            Box::new(token_cache_misses.clone()),
            Box::new(config_reloads.clone()),
            Box::new(config_last_reload_success.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            request_duration,
            auth_duration,
            upstream_errors,
            build_info,
            jwks_fetches,
            jwks_keys,
            jwks_skipped,
            jwks_last_success,
            token_cache_hits,
            token_cache_misses,
            config_reloads,
            config_last_reload_success,
            connections_refused,
            upstream_pool_races,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
