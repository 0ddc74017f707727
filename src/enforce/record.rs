//! Reporting a settled request, in one place for every door: `keygate_requests_total` and
//! `keygate_request_duration_seconds` per route, `keygate_upstream_errors_total`,
//! `keygate_throttled_requests_total`, the access-log line (`crate::access_log`) and the end
//! of its spans, all with the same outcome and reason.

use std::time::Instant;

use crate::auth::Identity;
use crate::metrics::{metrics, Outcome, RouteCounters, NO_ROUTE};
use crate::reason::Reason;
use crate::telemetry::{Finished, RequestTrace};

/// What a finished request (or refused head, or Socket.IO CONNECT) leaves for the metrics and
/// the access log.
pub(crate) struct Record<'a> {
    /// `forward_auth` on the forward-auth listener; `None` on the proxy listener.
    pub(crate) listener: Option<&'static str>,
    /// The matched route's counters (`None`: `(none)`).
    pub(crate) route: Option<&'a RouteCounters>,
    /// The settled outcome (`crate::enforce::Verdict::outcome`); for a websocket on a Socket.IO
    /// route, see `stream`.
    pub(crate) outcome: Outcome,
    /// What its Socket.IO gate saw, for a websocket on a `socketio: true` route.
    pub(crate) stream: Option<Stream<'a>>,
    /// The identity it was forwarded with.
    pub(crate) identity: Option<&'a Identity>,
    /// The request method ("" for a head refused before it was parsed).
    pub(crate) method: &'a str,
    /// The status sent to the client (0: none was sent).
    pub(crate) status: u16,
    /// The backend's status (0: not forwarded).
    pub(crate) upstream_status: u16,
    /// The `kind` of a failure to talk to the backend, if one ended it.
    pub(crate) upstream_error: Option<&'static str>,
    /// When keygate started deciding it.
    pub(crate) started: Instant,
    /// Whether and how often to write its access-log line.
    pub(crate) access_log: crate::access_log::Policy,
}

/// What the Socket.IO gate of a websocket saw.
pub(crate) struct Stream<'a> {
    /// CONNECTs it authorized (each already counted, by [`connect`]).
    pub(crate) connects: u32,
    /// CONNECTs it accepted.
    pub(crate) accepted: u32,
    /// Why it refused or closed the connection.
    pub(crate) refused: Option<Reason>,
    /// The identity of the last accepted CONNECT.
    pub(crate) identity: Option<&'a Identity>,
}

impl Record<'_> {
    /// Counts it, writes its access-log line and ends `trace`'s spans.
    pub(crate) fn write(&self, trace: Option<Box<RequestTrace>>) {
        let counters = self.route.unwrap_or_else(|| RouteCounters::unmatched());
        // A websocket whose gate accepted no CONNECT was refused, whatever its upgrade was.
        let outcome = match (&self.stream, self.outcome) {
            (Some(g), Outcome::Allowed) if g.accepted == 0 => {
                Outcome::Denied(g.refused.unwrap_or(Reason::MissingCredentials))
            }
            (_, o) => o,
        };
        // A gate counts each CONNECT it authorizes itself.
        if self.stream.as_ref().is_none_or(|g| g.connects == 0) {
            counters.count(outcome);
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        counters.observe_duration(elapsed);
        if let Some(kind) = self.upstream_error {
            metrics().upstream_errors.with_label_values(&[kind]).inc();
        }
        let (label, reason) = outcome.labels();
        let identity = self
            .identity
            .or(self.stream.as_ref().and_then(|g| g.identity));
        let line = crate::access_log::Line {
            listener: self.listener,
            route: &counters.name,
            method: self.method,
            status: self.status,
            outcome: label,
            reason,
            authenticator: identity.map_or("", |i| &*i.credential),
            user_id: identity.and_then(|i| i.user_id.as_deref()).unwrap_or(""),
            upstream_status: self.upstream_status,
            duration_ms: elapsed * 1000.0,
        };
        crate::access_log::write(self.access_log, &line);
        if let Some(trace) = trace {
            trace.finish(&Finished {
                status: self.status,
                outcome: label,
                reason,
                credential: identity.map(|i| &*i.credential),
                upstream_status: self.upstream_status,
                upstream_error: self.upstream_error,
            });
        }
    }
}

/// Counts one Socket.IO CONNECT the gate authorized (its websocket's access-log line is written
/// when the connection ends).
pub(crate) fn connect(route: Option<&RouteCounters>, outcome: Outcome) {
    route
        .unwrap_or_else(|| RouteCounters::unmatched())
        .count(outcome);
}

/// Counts and logs a request head the connection guard refused before it was parsed (`status`
/// sent, the connection closed).
pub(crate) fn refused_head(policy: crate::access_log::Policy, reason: Reason) {
    RouteCounters::unmatched().count(Outcome::Denied(reason));
    let line = crate::access_log::Line {
        route: NO_ROUTE,
        status: reason.status(),
        outcome: "denied",
        reason: reason.as_str(),
        ..Default::default()
    };
    crate::access_log::write(policy, &line);
}

/// Logs a session (an upgraded connection on `route`) closed for `reason` after `opened`; its
/// metrics are the registry's (`keygate_sessions_closed_total`).
pub(crate) fn session_closed(
    policy: crate::access_log::Policy,
    route: &str,
    reason: &'static str,
    identity: Option<&Identity>,
    opened: Instant,
) {
    let line = crate::access_log::Line {
        listener: None,
        route,
        method: "GET",
        status: 101,
        outcome: "closed",
        reason,
        authenticator: identity.map_or("", |i| &*i.credential),
        user_id: identity.and_then(|i| i.user_id.as_deref()).unwrap_or(""),
        upstream_status: 101,
        duration_ms: opened.elapsed().as_secs_f64() * 1000.0,
    };
    crate::access_log::write(policy, &line);
}

/// Counts a request refused by `throttle` (`keygate_throttled_requests_total{route}`).
pub(crate) fn throttled(route: Option<&str>) {
    metrics()
        .throttled
        .with_label_values(&[route.unwrap_or(NO_ROUTE)])
        .inc();
}

/// The `kind` label of `keygate_upstream_errors_total` for a proxy error, if it is one.
pub(crate) fn upstream_error_kind(e: &pingora::Error) -> Option<&'static str> {
    use pingora::{ErrorSource, ErrorType};
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            Some("timeout")
        }
        ErrorType::ConnectRefused | ErrorType::ConnectError | ErrorType::ConnectNoRoute => {
            Some("connect")
        }
        ErrorType::ConnectionClosed => Some("reset"),
        _ if e.esource() == &ErrorSource::Upstream => Some("other"),
        _ => None,
    }
}
