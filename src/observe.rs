//! What the request path records: the time each authenticator took (observed through
//! [`crate::policy::Observer`], and in the request's trace), and, when a request ends, its
//! metrics, access-log line and the end of its spans.

use std::time::Instant;

use pingora::proxy::Session;

use crate::auth::Identity;
use crate::metrics::{metrics, Outcome, RouteCounters};
use crate::policy::{Observer, Step};
use crate::reason::Reason;
use crate::ruleset::Ruleset;
use crate::telemetry::{Finished, RequestTrace};

/// Records each authenticator run of one authorization in `keygate_auth_duration_seconds`,
/// and in the request's authenticate span when it is traced.
pub(crate) struct Timings<'a>(
    pub(crate) &'a Ruleset,
    pub(crate) Option<&'a mut RequestTrace>,
);

impl Observer for Timings<'_> {
    fn step(&mut self, step: Step) {
        self.0.auth_timers[step.authenticator].observe(step.seconds);
        if let Some(trace) = self.1.as_mut() {
            trace.auth_step(
                self.0.authenticators[step.authenticator].name(),
                step.failed,
            );
        }
    }
}

/// What a finished request leaves for the metrics and the access log.
pub(crate) struct Done<'a> {
    /// The matched route's counters.
    pub(crate) route: Option<&'a RouteCounters>,
    /// Why keygate refused it, if it did.
    pub(crate) denied: Option<Reason>,
    /// Why keygate would have refused it (`enforce: observe`), if it would have.
    pub(crate) observed: Option<Reason>,
    /// The identity it was forwarded with.
    pub(crate) identity: Option<&'a Identity>,
    /// What its Socket.IO gate saw, for a websocket on a `socketio: true` route.
    pub(crate) stream: Option<Stream<'a>>,
    /// The backend's status (0: not forwarded).
    pub(crate) upstream_status: u16,
    /// When keygate started deciding it.
    pub(crate) started: Instant,
    /// Whether and how often to write its access-log line.
    pub(crate) access_log: crate::access_log::Policy,
}

/// What the Socket.IO gate of a websocket saw.
pub(crate) struct Stream<'a> {
    /// CONNECTs it authorized (each already counted by the gate).
    pub(crate) connects: u32,
    /// CONNECTs it accepted.
    pub(crate) accepted: u32,
    /// Why it refused or closed the connection.
    pub(crate) refused: Option<Reason>,
    /// The identity of the last accepted CONNECT.
    pub(crate) identity: Option<&'a Identity>,
}

/// Counts a finished request (`keygate_requests_total`, `keygate_request_duration_seconds`,
/// `keygate_upstream_errors_total`), writes its access-log line ([`crate::access_log`]) and
/// ends its spans with the same outcome.
pub(crate) fn request_done(
    session: &Session,
    error: Option<&pingora::Error>,
    d: &Done<'_>,
    trace: Option<Box<RequestTrace>>,
) {
    let counters = d.route.unwrap_or_else(|| RouteCounters::unmatched());
    let outcome = match (d.denied, d.observed, &d.stream) {
        (Some(r), _, _) => Outcome::Denied(r),
        (None, Some(r), _) => Outcome::Observed(r),
        (None, None, Some(g)) if g.accepted == 0 => {
            Outcome::Denied(g.refused.unwrap_or(Reason::MissingCredentials))
        }
        _ => Outcome::Allowed,
    };
    // A gate counts each CONNECT it authorizes itself.
    if d.stream.as_ref().is_none_or(|g| g.connects == 0) {
        counters.count(outcome);
    }
    let elapsed = d.started.elapsed().as_secs_f64();
    counters.observe_duration(elapsed);
    let upstream_error = error
        .filter(|_| d.denied.is_none())
        .and_then(upstream_error_kind);
    if let Some(kind) = upstream_error {
        metrics().upstream_errors.with_label_values(&[kind]).inc();
    }
    let (outcome, reason) = outcome.labels();
    let identity = d.identity.or(d.stream.as_ref().and_then(|g| g.identity));
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let line = crate::access_log::Line {
        listener: None,
        route: &counters.name,
        method: session.req_header().method.as_str(),
        status,
        outcome,
        reason,
        authenticator: identity.map_or("", |i| &*i.credential),
        user_id: identity.and_then(|i| i.user_id.as_deref()).unwrap_or(""),
        upstream_status: d.upstream_status,
        duration_ms: elapsed * 1000.0,
    };
    crate::access_log::write(d.access_log, &line);
    if let Some(trace) = trace {
        trace.finish(&Finished {
            status,
            outcome,
            reason,
            credential: identity.map(|i| &*i.credential),
            upstream_status: d.upstream_status,
            upstream_error,
        });
    }
}

/// The `kind` label of `keygate_upstream_errors_total` for a proxy error, if it is one.
fn upstream_error_kind(e: &pingora::Error) -> Option<&'static str> {
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

/// pingora's own `fail_to_proxy` (`ProxyHttp::fail_to_proxy`'s default body, which an
/// overriding impl cannot call): an error status when the client can still be answered (502 for
/// upstream failures, 400 for bad requests, 500 otherwise), with one difference: nothing is
/// written once a response head went out (an upstream failing mid-body, a refused websocket),
/// where pingora's default would write a second response onto the same connection.
pub(crate) async fn default_failure(
    session: &mut Session,
    e: &pingora::Error,
) -> pingora::proxy::FailToProxy {
    use pingora::{ErrorSource, ErrorType};
    let code = match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    };
    if code > 0 && session.response_written().is_none() {
        if let Err(e) = session.respond_error(code).await {
            tracing::debug!(error = %e, "failed to send an error response");
        }
    }
    pingora::proxy::FailToProxy {
        error_code: code,
        can_reuse_downstream: false,
    }
}
