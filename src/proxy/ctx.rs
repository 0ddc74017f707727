//! The per-request state of the proxy ([`Ctx`]) and the steps [`Keygate`]'s phases delegate to:
//! carrying out a decision, throttling, the Socket.IO gate, writing a denial.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::Keygate;
use crate::auth::Identity;
use crate::decide::{Forwarding, Outcome};
use crate::metrics::RouteCounters;
use crate::reason::Reason;
use crate::respond::{self, Denial};
use crate::ruleset::Ruleset;
use crate::socketio::gate::{Authorized, Gate};
use crate::state::Counted;
use crate::telemetry::{RequestTrace, Verdict};

/// Per-request state.
pub(crate) struct Ctx {
    /// The rules this request is decided by; dropped once a websocket is upgraded, so an open
    /// socket does not keep an old config generation (and its caches and fetch loops) alive.
    pub(super) rules: Option<Arc<Ruleset>>,
    pub(super) started: Instant,
    /// Matched route: its counters and its index into `rules.routes`.
    pub(super) route: Option<(Arc<RouteCounters>, usize)>,
    /// `None` while undecided or allowed.
    pub(super) denied: Option<Reason>,
    /// `enforce: observe`: why the request would have been refused.
    pub(super) observed: Option<Reason>,
    pub(super) identity: Option<Identity>,
    pub(super) how: Forwarding,
    pub(super) gate: Option<Box<Gate>>,
    /// The request's `Origin`, when the `cors` block allows it.
    pub(super) origin: Option<HeaderValue>,
    /// The client address (the peer, or behind `trusted_proxies` the first untrusted hop).
    pub(super) client: Option<IpAddr>,
    /// The peer address.
    pub(super) peer: Option<IpAddr>,
    /// The backend did not answer an unverified upgrade with 101: keygate answers instead.
    pub(super) refused_upgrade: bool,
    pub(super) upstream_status: u16,
    /// Its spans, when `telemetry` is on (`None` otherwise: nothing allocated).
    pub(super) trace: Option<Box<RequestTrace>>,
    pub(super) _inflight: Counted,
}

impl Ctx {
    pub(super) fn rules(&self) -> Option<Arc<Ruleset>> {
        self.rules.clone()
    }

    /// What [`crate::observe::request_done`] records of this request.
    pub(super) fn done(&self, access_log: crate::access_log::Policy) -> crate::observe::Done<'_> {
        crate::observe::Done {
            route: self.route.as_ref().map(|(c, _)| &**c),
            denied: self.denied,
            observed: self.observed,
            identity: self.identity.as_ref(),
            stream: self.gate.as_deref().map(|g| crate::observe::Stream {
                connects: g.connects,
                accepted: g.accepted,
                refused: g.refused,
                identity: g.identity.as_ref(),
            }),
            upstream_status: self.upstream_status,
            started: self.started,
            access_log,
        }
    }

    /// Names the server span after the matched route, if any.
    pub(super) fn trace_route(&self, rules: &Ruleset) {
        if let (Some(t), Some((_, r))) = (&self.trace, &self.route) {
            let route = &rules.routes.routes[*r];
            t.route(&route.name, &route.template);
        }
    }

    /// Starts the authenticate span, when the request is traced.
    pub(super) fn trace_auth(&mut self) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.start_auth();
        }
    }

    /// Ends the authenticate span at `decided` with what [`Keygate::carry_out`] made of the
    /// decision, and names the server span after the route.
    pub(super) fn trace_decided(&mut self, rules: &Ruleset, decided: Option<SystemTime>) {
        self.trace_route(rules);
        let (Some(t), Some(at)) = (self.trace.as_deref_mut(), decided) else {
            return;
        };
        let (outcome, reason) = match (self.denied, self.observed, self.how) {
            (Some(r), _, _) => ("denied", Some(r)),
            (None, Some(r), _) => ("observed", Some(r)),
            (None, None, Forwarding::Socketio(Authorized::InStream)) => ("deferred", None),
            _ => ("allowed", None),
        };
        let credential = self.identity.as_ref().map(|i| &*i.credential);
        t.auth_done(
            &Verdict {
                outcome,
                reason,
                credential,
            },
            at,
        );
    }
}

impl Keygate {
    /// Carries out a decision: forward (with identity and a Socket.IO gate), answer a
    /// preflight, or deny.
    pub(super) async fn carry_out(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Ruleset,
        outcome: Outcome,
    ) -> Result<bool> {
        let counters = |r: usize| (rules.routes.routes[r].counters.clone(), r);
        match outcome {
            Outcome::Forward {
                route,
                identity,
                how,
            } => {
                ctx.route = route.map(counters);
                ctx.identity = identity;
                ctx.how = how;
                ctx.gate = self.gate(session.req_header(), how, rules, ctx.client);
                Ok(false)
            }
            Outcome::Answer { route, response } => {
                ctx.route = Some(counters(route));
                respond::preflight(session, response).await
            }
            Outcome::Deny {
                route: Some(r),
                reason,
                ..
            } if crate::decide::observed(rules, r, reason) => {
                ctx.route = Some(counters(r));
                ctx.observed = Some(reason); // forwarded anyway, without identity
                Ok(false)
            }
            Outcome::Deny {
                route,
                reason,
                allow,
            } => {
                ctx.route = route.map(counters);
                self.deny(session, ctx, rules, reason, allow.as_deref(), None)
                    .await
            }
        }
    }

    /// issue 19: reads the body of a route that reads bodies (`crate::body`); `Ok(None)` for
    /// every other route, which pays one flag check per route (or one lookup when some route
    /// reads bodies). `Err` carries what `request_filter` returns after a 413/400 denial.
    pub(super) async fn read_body(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Ruleset,
    ) -> Result<Option<crate::body::Body>, Result<bool>> {
        let Some(r) = crate::body::route_reading(rules, session.req_header()) else {
            return Ok(None);
        };
        let limits = &rules.limits;
        let deadline = Duration::from_secs(limits.request_header_timeout_seconds.max(1));
        match crate::body::read(session, limits.max_inspected_body_bytes, deadline).await {
            Ok(body) => Ok(Some(body)),
            Err(reason) => {
                ctx.route = Some((rules.routes.routes[r].counters.clone(), r));
                ctx.trace_route(rules);
                Err(self.deny(session, ctx, rules, reason, None, None).await)
            }
        }
    }

    /// Refuses the request with 429 when `throttle` has blocked its client (counted per
    /// route); `None` when it may go on.
    pub(super) async fn refuse_if_blocked(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Ruleset,
    ) -> Option<Result<bool>> {
        rules.throttle.as_ref()?;
        let left = self.state.throttle.blocked(ctx.client?)?;
        let retry_after = left.as_secs_f64().ceil() as u64;
        ctx.route = crate::decide::route_of(rules, session.req_header())
            .map(|r| (rules.routes.routes[r].counters.clone(), r));
        crate::metrics::throttled(ctx.route.as_ref().map(|(c, _)| &*c.name));
        let reason = Reason::TooManyFailures;
        Some(
            self.deny(session, ctx, rules, reason, None, Some(retry_after))
                .await,
        )
    }

    /// The Socket.IO gate for a forwarded websocket, if the route reads its CONNECTs.
    fn gate(
        &self,
        req: &RequestHeader,
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
            authorized,
            limit,
            rules.socketio_connect_timeout,
            client,
        )))
    }

    /// Writes the denial for `reason` (with the route's challenge and the CORS headers), and
    /// counts a credential failure against the client for `throttle`.
    pub(super) async fn deny(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Ruleset,
        reason: Reason,
        allow: Option<&str>,
        retry_after: Option<u64>,
    ) -> Result<bool> {
        ctx.denied = Some(reason);
        if let (Some(cfg), Some(ip)) = (&rules.throttle, ctx.client) {
            if reason.credential_failure() && self.state.throttle.failed(ip, cfg) {
                tracing::warn!(client = %ip, "too many credential failures: address blocked");
            }
        }
        let bearer = ctx
            .route
            .as_ref()
            .is_some_and(|(_, r)| rules.routes.routes[*r].bearer);
        let cors = rules.cors.as_ref().zip(ctx.origin.clone());
        respond::deny(
            session,
            reason,
            Denial {
                bearer,
                allow,
                cors,
                retry_after,
            },
        )
        .await
    }
}
