//! The per-request state of the proxy ([`Ctx`]), holding the settled decision as one value
//! (`crate::enforce::Verdict`), and the steps [`Keygate`]'s phases delegate to: acting on the
//! verdict in this door's medium (forward with a Socket.IO gate, answer a preflight, write a
//! denial) and reporting the finished request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::Keygate;
use crate::decide::Forwarding;
use crate::enforce::{Denial, Record, Stream, Verdict};
use crate::metrics::RouteCounters;
use crate::ruleset::Ruleset;
use crate::socketio::gate::{Authorized, Gate};
use crate::state::CountGuard;
use crate::telemetry::RequestTrace;

/// Per-request state.
pub(crate) struct Ctx {
    /// The rules this request is decided by; dropped once a websocket is upgraded, so an open
    /// socket does not keep an old config generation (and its caches and fetch loops) alive.
    pub(super) rules: Option<Arc<Ruleset>>,
    pub(super) started: Instant,
    /// The settled decision (`None` until `request_filter` settles it).
    pub(super) verdict: Option<Verdict>,
    /// The matched route's counters (kept past an upgrade, when `rules` is dropped).
    pub(super) counters: Option<Arc<RouteCounters>>,
    pub(super) gate: Option<Box<Gate>>,
    /// The request's `Origin`, when the `cors` block allows it.
    pub(super) origin: Option<HeaderValue>,
    /// The client address (the peer, or behind `trusted_proxies` the first untrusted hop).
    pub(super) client: Option<IpAddr>,
    /// The peer address.
    pub(super) peer: Option<IpAddr>,
    /// The backend did not answer an unverified upgrade with 101: keygate answers instead.
    pub(super) refused_upgrade: bool,
    /// The scan of a form body that could name a method (`crate::form`), while it streams.
    pub(super) scan: Option<crate::form::Scanner>,
    /// The scan cut the body off: keygate answers 400 `malformed_body` instead.
    pub(super) refused_body: bool,
    pub(super) upstream_status: u16,
    /// The session of an upgraded connection, from its 101 on (`crate::sessions`).
    pub(super) session: Option<crate::sessions::Handle>,
    /// Its spans, when `telemetry` is on (`None` otherwise: nothing allocated).
    pub(super) trace: Option<Box<RequestTrace>>,
    pub(super) _inflight: CountGuard,
}

impl Ctx {
    pub(super) fn rules(&self) -> Option<Arc<Ruleset>> {
        self.rules.clone()
    }

    /// How the request is forwarded (`Plain` until decided).
    pub(super) fn how(&self) -> Forwarding {
        match &self.verdict {
            Some(Verdict::Forward { how, .. }) => *how,
            _ => Forwarding::Plain,
        }
    }

    /// The report of this request, once it ended with `status` (0: none sent).
    pub(super) fn record<'a>(
        &'a self,
        session: &'a Session,
        error: Option<&pingora::Error>,
        access_log: crate::access_log::Policy,
    ) -> Record<'a> {
        let outcome = self
            .verdict
            .as_ref()
            .map_or(crate::metrics::Outcome::Allowed, Verdict::outcome);
        let denied = matches!(self.verdict, Some(Verdict::Deny(_)));
        Record {
            listener: None,
            route: self.counters.as_deref(),
            outcome,
            stream: self.gate.as_deref().map(|g| Stream {
                connects: g.connects,
                accepted: g.accepted,
                refused: g.refused,
                identity: g.identity.as_ref(),
            }),
            identity: self.verdict.as_ref().and_then(Verdict::identity),
            method: session.req_header().method.as_str(),
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            upstream_status: self.upstream_status,
            upstream_error: error
                .filter(|_| !denied)
                .and_then(crate::enforce::upstream_error_kind),
            started: self.started,
            access_log,
        }
    }

    /// Names the server span after the matched route, if any.
    pub(super) fn trace_route(&self, rules: &Ruleset) {
        let route = self.verdict.as_ref().and_then(Verdict::route);
        if let (Some(t), Some(r)) = (&self.trace, route) {
            let route = &rules.routes.routes[r];
            t.route(&route.name, &route.template);
        }
    }

    /// Starts the authenticate span, when the request is traced.
    pub(super) fn trace_auth(&mut self) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.start_auth();
        }
    }

    /// Ends the authenticate span at `decided` with the verdict, and names the server span
    /// after the route.
    pub(super) fn trace_decided(&mut self, rules: &Ruleset, decided: Option<SystemTime>) {
        self.trace_route(rules);
        let (Some(t), Some(at), Some(v)) = (self.trace.as_deref_mut(), decided, &self.verdict)
        else {
            return;
        };
        let (outcome, reason) = match v {
            Verdict::Deny(d) => ("denied", Some(d.reason)),
            Verdict::Observe { reason, .. } => ("observed", Some(*reason)),
            Verdict::Forward {
                how: Forwarding::Socketio(Authorized::InStream),
                ..
            } => ("deferred", None),
            _ => ("allowed", None),
        };
        let credential = v.identity().map(|i| &*i.credential);
        t.auth_done(
            &crate::telemetry::AuthAttributes {
                outcome,
                reason,
                credential,
            },
            at,
        );
    }
}

impl Keygate {
    /// Acts on a verdict in this door's medium: forward (with identity and a Socket.IO gate),
    /// answer a preflight, or write the denial. `path` is the canonical request's path.
    pub(super) async fn act(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Ruleset,
        verdict: Verdict,
        path: String,
    ) -> Result<bool> {
        ctx.counters = verdict
            .route()
            .map(|r| rules.routes.routes[r].counters.clone());
        match &verdict {
            Verdict::Forward { how, .. } => {
                ctx.gate = self.gate(session.req_header(), path, *how, rules, ctx.client);
                ctx.verdict = Some(verdict);
                Ok(false)
            }
            Verdict::Observe { .. } => {
                ctx.verdict = Some(verdict);
                Ok(false)
            }
            Verdict::Answer { response, .. } => {
                let response = (**response).clone();
                ctx.verdict = Some(verdict);
                crate::respond::preflight(session, response).await
            }
            Verdict::Deny(_) => {
                ctx.verdict = Some(verdict);
                self.write_denial(session, ctx, rules).await
            }
        }
    }

    /// Refuses the request with `denial`, before or without a decision.
    pub(super) async fn deny(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Ruleset,
        denial: Denial,
    ) -> Result<bool> {
        self.act(session, ctx, rules, Verdict::Deny(denial), String::new())
            .await
    }

    /// Writes the denial `ctx.verdict` holds, as `crate::enforce::render` builds it.
    async fn write_denial(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        rules: &Ruleset,
    ) -> Result<bool> {
        let Some(Verdict::Deny(d)) = &ctx.verdict else {
            return Ok(false);
        };
        let (head, body) = crate::enforce::render::denial(Some(rules), d, ctx.origin.as_ref());
        crate::respond::deny(session, d.reason, head, body).await
    }

    /// Reads the body of a request on route `r`, which reads bodies (`crate::body`). `Err`
    /// carries what `request_filter` returns after a 413/400 denial.
    pub(super) async fn read_body(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Ruleset,
        r: usize,
    ) -> Result<crate::body::Body, Result<bool>> {
        let limits = &rules.limits;
        let (limit, deadline) = (
            limits.max_inspected_body_bytes,
            limits.request_header_timeout,
        );
        match crate::body::read(session, limit, deadline).await {
            Ok(body) => Ok(body),
            Err(reason) => {
                let denial = Denial::new(Some(r), reason);
                let sent = self.deny(session, ctx, rules, denial).await;
                ctx.trace_route(rules);
                Err(sent)
            }
        }
    }

    /// The Socket.IO gate for a forwarded websocket, if the route reads its CONNECTs.
    fn gate(
        &self,
        req: &RequestHeader,
        path: String,
        how: Forwarding,
        rules: &Ruleset,
        client: Option<IpAddr>,
    ) -> Option<Box<Gate>> {
        let Forwarding::Socketio(authorized) = how else {
            return None;
        };
        let limit = rules.max_token_bytes * 2 + 1024;
        Some(Box::new(Gate::new(
            req,
            path,
            authorized,
            limit,
            rules.socketio_connect_timeout,
            client,
        )))
    }
}
