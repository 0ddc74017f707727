//! The per-request state of the proxy ([`Ctx`]) and the steps [`Keygate`]'s phases delegate to:
//! carrying out a decision, throttling, the Socket.IO gate, writing a denial.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

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
    /// sessions (issue 17): the session of an upgraded connection, from its 101 on.
    pub(super) session: Option<crate::sessions::Handle>,
    /// Its spans, when `telemetry` is on (`None` otherwise: nothing allocated).
    pub(super) trace: Option<Box<RequestTrace>>,
    /// Shared state (issue 18): a quota route's `RateLimit` fields, set on the answer
    /// (allowed or refused).
    pub(super) ratelimit: Option<crate::shared::RateLimit>,
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
        path: String,
    ) -> Result<bool> {
        let counters = |r: usize| (rules.routes.routes[r].counters.clone(), r);
        match outcome {
            Outcome::Forward {
                route,
                identity,
                how,
            } => {
                ctx.route = route.map(counters);
                // Shared state (issue 18): quota and shared-state availability, after
                // authentication, before forwarding.
                if let Some(sent) = self.admit(session, ctx, rules, identity.as_ref()).await {
                    return sent;
                }
                ctx.identity = identity;
                ctx.how = how;
                ctx.gate = self.gate(session.req_header(), path, how, rules, ctx.client);
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
                // Shared state (issue 18): an observed request still counts against a quota.
                if let Some(sent) = self.admit(session, ctx, rules, None).await {
                    return sent;
                }
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
        let deadline = limits.request_header_timeout;
        match crate::body::read(session, limits.max_inspected_body_bytes, deadline).await {
            Ok(body) => Ok(body),
            Err(reason) => {
                ctx.route = Some((rules.routes.routes[r].counters.clone(), r));
                ctx.trace_route(rules);
                Err(self.deny(session, ctx, rules, reason, None, None).await)
            }
        }
    }

    /// Why the request's client may not go on before its credential is even read: `throttle`
    /// blocked it (on any replica, with `shared_state`), or shared state it needs is down
    /// (`on_unavailable: deny`).
    pub(super) fn blocked(&self, ctx: &Ctx, rules: &Ruleset) -> Option<crate::shared::Refusal> {
        self.state
            .shared
            .refuse_blocked(rules.throttle.as_ref(), ctx.client)
    }

    /// Refuses the request for `refusal` (counted per route, `ctx.route`).
    pub(super) async fn refuse_blocked(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Ruleset,
        refusal: crate::shared::Refusal,
    ) -> Result<bool> {
        if refusal.reason == Reason::TooManyFailures {
            crate::metrics::throttled(ctx.route.as_ref().map(|(c, _)| &*c.name));
        }
        let (reason, retry_after) = (refusal.reason, refusal.retry_after);
        self.deny(session, ctx, rules, reason, None, retry_after)
            .await
    }

    /// Shared state (issue 18): the matched route's `quota` for this request (and, with
    /// `on_unavailable: deny` and Redis down, 503 for an authenticated one). `None` when it
    /// may go on (its `RateLimit` fields kept for the answer), else the refusal sent.
    async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rules: &Ruleset,
        identity: Option<&Identity>,
    ) -> Option<Result<bool>> {
        let quota = ctx
            .route
            .as_ref()
            .and_then(|(_, r)| rules.routes.routes[*r].quota.as_ref());
        match self.state.shared.admit(quota, identity, ctx.client).await {
            Ok(ratelimit) => {
                ctx.ratelimit = ratelimit;
                None
            }
            Err(refusal) => {
                ctx.ratelimit = refusal.ratelimit;
                let (reason, retry_after) = (refusal.reason, refusal.retry_after);
                Some(
                    self.deny(session, ctx, rules, reason, None, retry_after)
                        .await,
                )
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
        // Shared state (issue 18): counted on every replica's behalf when `shared_state` is set.
        let throttle = rules.throttle.as_ref();
        if self
            .state
            .shared
            .count_failure(throttle, ctx.client, reason)
            .await
        {
            if let Some(ip) = ctx.client {
                tracing::warn!(client = %ip, "too many credential failures: address blocked");
            }
        }
        let bearer = ctx
            .route
            .as_ref()
            .is_some_and(|(_, r)| rules.routes.routes[*r].bearer);
        let cors = rules.cors.as_ref().map(|c| (c, ctx.origin.clone()));
        respond::deny(
            session,
            reason,
            Denial {
                bearer,
                allow,
                cors,
                retry_after,
                ratelimit: ctx.ratelimit.as_ref(),
            },
        )
        .await
    }
}
