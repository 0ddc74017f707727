//! What the request path observes along the way: the time each authenticator took (through
//! [`crate::policy::Observer`], into `keygate_auth_duration_seconds` and the request's trace),
//! and pingora's own answer to a failure to proxy. A finished request's report is
//! `crate::enforce::Record`.

use pingora::proxy::Session;

use crate::policy::{Observer, Step};
use crate::ruleset::Ruleset;
use crate::telemetry::RequestTrace;

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
