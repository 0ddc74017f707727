//! The spans of one proxied request. Names and attributes follow the OpenTelemetry HTTP
//! semantic conventions (`semconv` 1.x, "HTTP spans"): the server span is
//! `{http.request.method} {http.route}` (the route's template, never the raw path), or the method
//! alone when no route matched; `_OTHER` / `HTTP` stand for a method outside RFC 9110 + PATCH.
//!
//! ```text
//!  SERVER "GET /v1/users/{user_id}/feeds/{feed_id}"   request_filter .. logging
//!  ├─ INTERNAL "authenticate"                          decide() (an event per authenticator run)
//!  └─ CLIENT "GET"                                     upstream_peer .. logging (not for a denial)
//! ```
//!
//! Attributes: `http.request.method`, `url.scheme`, `http.route`, `http.response.status_code`,
//! `error.type` (5xx from keygate, 4xx/5xx or a connect/timeout failure upstream),
//! `server.address` / `server.port` (the upstream), and keygate's own `keygate.route` (route
//! name), `keygate.outcome` (`allowed`, `denied`, `observed`; `deferred` on the authenticate span
//! of a Socket.IO upgrade authenticated in the stream), `keygate.reason` (`none` or the denial
//! reason) and `keygate.authenticator` (the credential that passed, `name/key` as in
//! `X-Auth-Credential`; for a denial, the authenticator whose failure is the reason). Never a
//! credential, a token, a path or a query string: only values from the config and fixed enums.
//! Attributes are written only to sampled (recording) spans, and an unsampled request gets no
//! child spans: its server span's id is the upstream's parent (W3C `traceparent`, flags `00`).

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, Span};
use pingora::http::RequestHeader;

use super::{propagation, Telemetry};
use crate::reason::Reason;

const METHOD: &str = "http.request.method";
const STATUS: &str = "http.response.status_code";
const ROUTE: &str = "http.route";
const SCHEME: &str = "url.scheme";
const ERROR_TYPE: &str = "error.type";
const SERVER_ADDRESS: &str = "server.address";
const SERVER_PORT: &str = "server.port";
const KG_ROUTE: &str = "keygate.route";
const KG_OUTCOME: &str = "keygate.outcome";
const KG_REASON: &str = "keygate.reason";
const KG_AUTHENTICATOR: &str = "keygate.authenticator";
const KG_RESULT: &str = "keygate.result";

/// The spans of one request, kept in the proxy's per-request state.
pub(crate) struct RequestTrace {
    tracer: SdkTracer,
    /// A context whose span is the server span (the parent of the others).
    server: Context,
    /// `http.request.method`: the method, or `_OTHER`.
    method: &'static str,
    /// The server span is sampled (so are its children: parent-based).
    recording: bool,
    auth: Option<Span>,
    upstream: Option<Span>,
    /// Authenticators that ran and why each failed (recording traces only).
    steps: Vec<(String, Option<Reason>)>,
    /// `keygate.authenticator` as decided by authentication.
    authenticator: Option<String>,
}

/// What authentication decided, for the authenticate span.
pub(crate) struct AuthAttributes<'a> {
    /// `allowed`, `denied`, `observed` or `deferred`.
    pub(crate) outcome: &'static str,
    /// Why it was (or would have been) denied.
    pub(crate) reason: Option<Reason>,
    /// The credential that passed (`X-Auth-Credential`).
    pub(crate) credential: Option<&'a str>,
}

/// How a request ended, for the server and upstream spans.
pub(crate) struct Finished<'a> {
    /// The status sent to the client (0: none).
    pub(crate) status: u16,
    /// `allowed`, `denied` or `observed` (as `keygate_requests_total`).
    pub(crate) outcome: &'static str,
    /// `none` or the reason (as `keygate_requests_total`).
    pub(crate) reason: &'static str,
    /// The credential the request (or its last Socket.IO CONNECT) was forwarded with.
    pub(crate) credential: Option<&'a str>,
    /// The backend's status (0: none).
    pub(crate) upstream_status: u16,
    /// `connect`, `timeout`, `reset` or `other` when talking to the backend failed.
    pub(crate) upstream_error: Option<&'static str>,
}

impl Telemetry {
    /// Starts the server span of `req`, continuing the client's trace when it sent a valid
    /// `traceparent`.
    pub(crate) fn request(&self, req: &RequestHeader, tls: bool) -> Box<RequestTrace> {
        let parent = propagation::parent(req);
        let method = method(req.method.as_str());
        let mut span = self
            .tracer
            .span_builder(name_of(method))
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, &parent);
        let recording = span.is_recording();
        if recording {
            span.set_attribute(KeyValue::new(METHOD, method));
            span.set_attribute(KeyValue::new(SCHEME, if tls { "https" } else { "http" }));
        }
        Box::new(RequestTrace {
            tracer: self.tracer.clone(),
            server: parent.with_span(span),
            method,
            recording,
            auth: None,
            upstream: None,
            steps: Vec::new(),
            authenticator: None,
        })
    }
}

impl RequestTrace {
    /// Names the server span after the matched route (`name`, path `template`).
    pub(crate) fn route(&self, name: &str, template: &str) {
        if self.recording {
            let span = self.server.span();
            span.update_name(format!("{} {template}", name_of(self.method)));
            span.set_attribute(KeyValue::new(ROUTE, template.to_string()));
            span.set_attribute(KeyValue::new(KG_ROUTE, name.to_string()));
        }
    }

    /// Starts the authenticate span (of a sampled request).
    pub(crate) fn start_auth(&mut self) {
        if !self.recording {
            return;
        }
        let span = self
            .tracer
            .span_builder("authenticate")
            .with_kind(SpanKind::Internal)
            .start_with_context(&self.tracer, &self.server);
        self.auth = Some(span);
    }

    /// Records one authenticator run (`failed`: why it failed; absent = missing_credentials).
    pub(crate) fn auth_step(&mut self, authenticator: &str, failed: Option<Reason>) {
        let Some(auth) = self.auth.as_mut().filter(|s| s.is_recording()) else {
            return;
        };
        auth.add_event(
            "authenticator",
            vec![
                KeyValue::new(KG_AUTHENTICATOR, authenticator.to_string()),
                KeyValue::new(KG_RESULT, failed.map_or("passed", Reason::as_str)),
            ],
        );
        self.steps.push((authenticator.to_string(), failed));
    }

    /// Ends the authenticate span at `at` (when the decision was made) with its verdict.
    pub(crate) fn auth_done(&mut self, v: &AuthAttributes<'_>, at: SystemTime) {
        let Some(mut auth) = self.auth.take() else {
            return;
        };
        if auth.is_recording() {
            self.authenticator = match v.credential {
                Some(c) => Some(c.to_string()),
                None => v.reason.and_then(|r| {
                    let step = self.steps.iter().find(|(_, f)| *f == Some(r));
                    step.map(|(name, _)| name.clone())
                }),
            };
            auth.set_attribute(KeyValue::new(KG_OUTCOME, v.outcome));
            let reason = v.reason.map_or("none", Reason::as_str);
            auth.set_attribute(KeyValue::new(KG_REASON, reason));
            if let Some(a) = &self.authenticator {
                auth.set_attribute(KeyValue::new(KG_AUTHENTICATOR, a.clone()));
            }
        }
        auth.end_with_timestamp(at);
    }

    /// Starts the upstream span (once, of a sampled request), towards `host:port`.
    pub(crate) fn start_upstream(&mut self, host: &str, port: u16) {
        if !self.recording || self.upstream.is_some() {
            return;
        }
        let mut span = self
            .tracer
            .span_builder(name_of(self.method))
            .with_kind(SpanKind::Client)
            .start_with_context(&self.tracer, &self.server);
        span.set_attribute(KeyValue::new(METHOD, self.method));
        span.set_attribute(KeyValue::new(SERVER_ADDRESS, host.to_string()));
        span.set_attribute(KeyValue::new(SERVER_PORT, i64::from(port)));
        self.upstream = Some(span);
    }

    /// Sets `traceparent` / `tracestate` on the upstream request: keygate's upstream span (or
    /// server span) as the parent, the client's trace id and `tracestate`.
    pub(crate) fn inject(&self, up: &mut RequestHeader) {
        let cx = match &self.upstream {
            Some(s) => Context::new().with_remote_span_context(s.span_context().clone()),
            None => self.server.clone(),
        };
        propagation::inject(&cx, up);
    }

    /// Ends every span with how the request ended.
    pub(crate) fn finish(mut self, f: &Finished<'_>) {
        drop(self.auth.take()); // ended already unless the request failed inside decide
        if let Some(mut up) = self.upstream.take() {
            if up.is_recording() {
                if f.upstream_status > 0 {
                    up.set_attribute(KeyValue::new(STATUS, i64::from(f.upstream_status)));
                }
                let error: Option<Cow<'static, str>> = match f.upstream_error {
                    Some(kind) => Some(kind.into()),
                    None => {
                        (f.upstream_status >= 400).then(|| f.upstream_status.to_string().into())
                    }
                };
                if let Some(e) = error {
                    up.set_attribute(KeyValue::new(ERROR_TYPE, e.clone()));
                    up.set_status(Status::error(e));
                }
            }
            up.end();
        }
        let span = self.server.span();
        if span.is_recording() {
            if f.status > 0 {
                span.set_attribute(KeyValue::new(STATUS, i64::from(f.status)));
            }
            span.set_attribute(KeyValue::new(KG_OUTCOME, f.outcome));
            span.set_attribute(KeyValue::new(KG_REASON, f.reason));
            let authenticator = f
                .credential
                .map(str::to_string)
                .or(self.authenticator.take());
            if let Some(a) = authenticator {
                span.set_attribute(KeyValue::new(KG_AUTHENTICATOR, a));
            }
            // Server spans: only 5xx is an error (semconv, "Status"); a lost client too.
            let error: Option<Cow<'static, str>> = if f.status >= 500 {
                Some(f.status.to_string().into())
            } else {
                f.upstream_error
                    .filter(|_| f.status == 0)
                    .map(Cow::Borrowed)
            };
            if let Some(e) = error {
                span.set_attribute(KeyValue::new(ERROR_TYPE, e.clone()));
                span.set_status(Status::error(e));
            }
        }
        span.end();
    }
}

/// `http.request.method`: the RFC 9110 methods and PATCH (RFC 5789) as they are, anything else
/// `_OTHER` (semconv: no client-chosen strings as attribute values).
pub(crate) fn method(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "_OTHER",
    }
}

/// The method part of a span name: `HTTP` for `_OTHER` (semconv, "Name").
fn name_of(method: &'static str) -> &'static str {
    if method == "_OTHER" {
        "HTTP"
    } else {
        method
    }
}
