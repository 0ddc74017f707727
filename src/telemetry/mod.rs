//! OpenTelemetry traces (`telemetry:` in `docs/config.md`): one SERVER span per proxied request
//! with an INTERNAL child for authentication and a CLIENT child for the upstream call
//! ([`request::RequestTrace`]), continued from the client's W3C `traceparent` / `tracestate`
//! ([`propagation`]) and exported over OTLP/HTTP protobuf to `<otlp_endpoint>/v1/traces`.
//!
//! Sampling is `ParentBased(TraceIdRatioBased(sample_ratio))`: a client's sampled flag is
//! honoured, `sample_ratio` decides for the traces keygate starts. Export runs on the SDK's
//! batch processor thread (queue of `OTEL_BSP_MAX_QUEUE_SIZE` = 2048 spans, a batch every
//! `OTEL_BSP_SCHEDULE_DELAY` = 5000 ms, each request bounded by `OTEL_EXPORTER_OTLP_TIMEOUT` =
//! 10 s; the standard OTel environment variables, also `OTEL_EXPORTER_OTLP_HEADERS` for
//! collector credentials): a slow or unreachable collector costs spans (dropped when the queue is
//! full, or with a failed export), never request latency. Failed exports are counted in
//! `keygate_trace_export_failures_total` and logged at most once a minute.
//!
//! Without `otlp_endpoint` nothing of this runs: no span, context or header is created, and a
//! client's `traceparent` / `tracestate` reach the backend unchanged, as through any proxy.
//!
//! `telemetry` is a restart-only setting (`crate::settings::ServerSettings::FIELDS`): the
//! exporter owns a thread and a connection pool, and a reload logs a change as needing a restart.

pub(crate) mod propagation;
pub(crate) mod request;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use crate::config::{FieldError, TelemetryConfig};

pub(crate) use request::{AuthAttributes, Finished, RequestTrace};

/// The OTLP/HTTP path of traces, appended to `otlp_endpoint` (OTLP exporter spec, "Endpoint
/// URLs for OTLP/HTTP", as for `OTEL_EXPORTER_OTLP_ENDPOINT`).
pub(crate) const TRACES_PATH: &str = "/v1/traces";

/// The checked `telemetry` block (only when it has an `otlp_endpoint`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// Where batches are POSTed: `otlp_endpoint` + [`TRACES_PATH`].
    pub(crate) traces_url: String,
    /// `sample_ratio`, 0.0 to 1.0.
    pub(crate) sample_ratio: f64,
    /// `service_name`.
    pub(crate) service_name: String,
}

impl Settings {
    /// Checks `telemetry` (`None`: absent, or without `otlp_endpoint`, so traces are off).
    pub(crate) fn from_config(
        cfg: Option<&TelemetryConfig>,
    ) -> Result<Option<Settings>, FieldError> {
        let Some(cfg) = cfg else { return Ok(None) };
        if !(0.0..=1.0).contains(&cfg.sample_ratio) {
            return Err(FieldError::new(
                "telemetry.sample_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        if cfg.service_name.trim().is_empty() {
            return Err(FieldError::new(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        let Some(endpoint) = &cfg.otlp_endpoint else {
            return Ok(None);
        };
        Ok(Some(Settings {
            traces_url: traces_url(endpoint)?,
            sample_ratio: cfg.sample_ratio,
            service_name: cfg.service_name.0.clone(),
        }))
    }
}

/// `otlp_endpoint` + [`TRACES_PATH`]. The endpoint must be an http(s) URL with a host, without
/// user info or query; the value is never echoed in an error (it could hold a password).
fn traces_url(endpoint: &str) -> Result<String, FieldError> {
    let err = |m: &str| FieldError::new("telemetry.otlp_endpoint", m);
    let url: http::Uri = endpoint
        .parse()
        .map_err(|_| err("must be an http or https URL, e.g. http://otel-collector:4318"))?;
    let scheme = match url.scheme_str() {
        Some(s @ ("http" | "https")) => s,
        Some(_) => return Err(err("scheme must be http or https")),
        None => {
            return Err(err(
                "must be an http or https URL, e.g. http://otel-collector:4318",
            ))
        }
    };
    let authority = url.authority().ok_or_else(|| err("missing host"))?;
    if authority.host().is_empty() {
        return Err(err("missing host"));
    }
    if authority.as_str().contains('@') {
        return Err(err(
            "must not contain user info (collector credentials go in OTEL_EXPORTER_OTLP_HEADERS)",
        ));
    }
    if url.query().is_some() {
        return Err(err("must not have a query"));
    }
    let path = url.path().trim_end_matches('/');
    Ok(format!("{scheme}://{authority}{path}{TRACES_PATH}"))
}

/// The running tracer and its provider (which owns the batch exporter thread).
pub(crate) struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Telemetry {
    /// Builds the exporter and the provider (starting the batch processor thread); no
    /// connection is made until the first batch.
    pub(crate) fn start(s: &Settings) -> Result<Telemetry, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(s.traces_url.clone())
            .build()
            .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
        let resource = Resource::builder()
            .with_service_name(s.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(CountingExporter(exporter))
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                s.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        let scope = InstrumentationScope::builder("keygate")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Ok(Telemetry {
            tracer: provider.tracer_with_scope(scope),
            provider,
        })
    }

    /// Exports what is queued and stops the exporter, waiting at most `timeout` (SIGTERM).
    pub(crate) fn shutdown(&self, timeout: Duration) {
        if let Err(e) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!(error = %e, "trace exporter shutdown");
        }
    }
}

/// The OTLP exporter, counting and (at most once a minute) logging its failures.
#[derive(Debug)]
struct CountingExporter<E>(E);

/// Unix second of the last failure logged.
static LAST_FAILURE_LOG: AtomicU64 = AtomicU64::new(0);

/// How often a failing exporter is logged, seconds.
const FAILURE_LOG_INTERVAL: u64 = 60;

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.0.export(batch).await;
        if let Err(e) = &result {
            let m = crate::metrics::metrics();
            m.trace_export_failures.inc();
            let now = crate::metrics::unix_now() as u64;
            let last = LAST_FAILURE_LOG.load(Ordering::Relaxed);
            if now >= last + FAILURE_LOG_INTERVAL
                && LAST_FAILURE_LOG
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    error = %e,
                    spans,
                    failures_total = m.trace_export_failures.get(),
                    "trace export failed; its spans are dropped (logged at most once a minute)"
                );
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.0.shutdown()
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}
