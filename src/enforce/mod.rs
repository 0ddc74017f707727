//! The enforcement core: the one place where a decision becomes what a door does (issue 16;
//! `SECURITY.md`, "The canonical request"). Every door takes the same steps:
//!
//! ```text
//!  1. derive        the request the backend will act on (crate::canonical), or refuse it
//!  2. refuse_client a client `throttle` blocked (on any replica), or shared state it needs down
//!  3. decide        crate::decide over the canonical request
//!  4. settle        the outcome, once: `enforce: observe`, the route's quota, the throttle's
//!                   failure count -> one Verdict
//!  5. render        in the door's medium; a denial's status, headers and body come from render
//!  6. record        keygate_requests_total, the duration, the access-log line, the spans' end
//! ```
//!
//! The doors are the proxy listener (`crate::proxy`), the forward-auth listener
//! (`crate::forward_auth`), the Socket.IO gate (`crate::socketio::gate`, one CONNECT at a time),
//! the connection guard (`crate::conn`, heads refused before they are parsed) and the session
//! registry (`crate::sessions`, connections closed when their credential ends). None of them
//! builds a denial, counts a request or writes an access-log line itself (`tests/it/layout.rs`
//! checks).

mod record;
pub(crate) mod render;

use std::net::IpAddr;

use pingora::http::ResponseHeader;

pub(crate) use record::{refused_head, session_closed, upstream_error_kind, Record, Stream};

use crate::auth::Identity;
use crate::decide::{Decision, Forwarding};
use crate::metrics::Outcome;
use crate::reason::Reason;
use crate::ruleset::Ruleset;
use crate::shared::{RateLimit, Refusal};
use crate::state::State;

/// A request's settled decision: what its door does with it.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Forward it (with identity, or anonymously).
    Forward {
        /// The matched route (`None`: unmatched, forwarded anonymously).
        route: Option<usize>,
        /// The verified identity (`None`: anonymous, or deferred to the Socket.IO stream).
        identity: Option<Identity>,
        /// How.
        how: Forwarding,
        /// The route's quota, for its answer's `RateLimit` fields.
        ratelimit: Option<RateLimit>,
    },
    /// `enforce: observe`: forward it without identity; it would have been refused.
    Observe {
        /// The matched route.
        route: usize,
        /// Why it would have been refused.
        reason: Reason,
        /// The route's quota, for its answer's `RateLimit` fields.
        ratelimit: Option<RateLimit>,
    },
    /// Answer a CORS preflight with this 204.
    Answer {
        /// The matched route.
        route: usize,
        /// The answer.
        response: Box<ResponseHeader>,
    },
    /// Refuse it.
    Deny(Denial),
}

/// A refusal, before it is rendered ([`render::denial`]).
#[derive(Debug)]
pub(crate) struct Denial {
    /// The matched route, if any (its challenge; its metric label).
    pub(crate) route: Option<usize>,
    /// Why.
    pub(crate) reason: Reason,
    /// For `method_not_allowed`: the `Allow` value.
    pub(crate) allow: Option<String>,
    /// For 429 and some 503s: `Retry-After`, seconds.
    pub(crate) retry_after: Option<u64>,
    /// For a quota route: its `RateLimit-Policy` and `RateLimit` fields.
    pub(crate) ratelimit: Option<RateLimit>,
}

impl Denial {
    /// A refusal of a request on `route` for `reason`.
    pub(crate) fn new(route: Option<usize>, reason: Reason) -> Denial {
        Denial {
            route,
            reason,
            allow: None,
            retry_after: None,
            ratelimit: None,
        }
    }

    fn refused(route: Option<usize>, r: Refusal) -> Denial {
        Denial {
            route,
            reason: r.reason,
            retry_after: r.retry_after,
            ratelimit: r.ratelimit,
            allow: None,
        }
    }
}

impl Verdict {
    /// The matched route, if any.
    pub(crate) fn route(&self) -> Option<usize> {
        match self {
            Verdict::Forward { route, .. } => *route,
            Verdict::Observe { route, .. } | Verdict::Answer { route, .. } => Some(*route),
            Verdict::Deny(d) => d.route,
        }
    }

    /// How it counts in `keygate_requests_total` and the access log.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Verdict::Forward { .. } | Verdict::Answer { .. } => Outcome::Allowed,
            Verdict::Observe { reason, .. } => Outcome::Observed(*reason),
            Verdict::Deny(d) => Outcome::Denied(d.reason),
        }
    }

    /// The identity it is forwarded with.
    pub(crate) fn identity(&self) -> Option<&Identity> {
        match self {
            Verdict::Forward { identity, .. } => identity.as_ref(),
            _ => None,
        }
    }

    /// The route's quota fields, for the answer.
    pub(crate) fn ratelimit(&self) -> Option<&RateLimit> {
        match self {
            Verdict::Forward { ratelimit, .. } | Verdict::Observe { ratelimit, .. } => {
                ratelimit.as_ref()
            }
            Verdict::Deny(d) => d.ratelimit.as_ref(),
            Verdict::Answer { .. } => None,
        }
    }
}

/// Step 2: why the request's client may not go on before its credential is even read:
/// `throttle` blocked it (on any replica, with `shared_state`), or shared state it needs is
/// down (`on_unavailable: deny`). Counts `keygate_throttled_requests_total{route}`.
pub(crate) fn refuse_client(
    state: &State,
    rules: &Ruleset,
    client: Option<IpAddr>,
    req: &crate::canonical::Canonical<'_>,
) -> Option<Denial> {
    let refusal = state
        .shared
        .refuse_blocked(rules.throttle.as_ref(), client)?;
    let route = crate::decide::route_of(rules, req);
    if refusal.reason == Reason::TooManyFailures {
        record::throttled(route.map(|r| &*rules.routes.routes[r].name));
    }
    Some(Denial::refused(route, refusal))
}

/// Step 4: settles a decision once, the same way on every door: an observed route's
/// credential and authorization failures are forwarded without identity; an allowed or observed
/// request counts against its route's quota (and, with `on_unavailable: deny` and Redis down, an
/// authenticated one is refused); a credential failure counts against its client's `throttle`.
pub(crate) async fn settle(
    state: &State,
    rules: &Ruleset,
    decision: Decision,
    client: Option<IpAddr>,
) -> Verdict {
    let quota = |r: Option<usize>| r.and_then(|r| rules.routes.routes[r].quota.as_ref());
    match decision {
        Decision::Forward {
            route,
            identity,
            how,
        } => match state
            .shared
            .admit(quota(route), identity.as_ref(), client)
            .await
        {
            Ok(ratelimit) => Verdict::Forward {
                route,
                identity,
                how,
                ratelimit,
            },
            Err(r) => Verdict::Deny(Denial::refused(route, r)),
        },
        Decision::Answer { route, response } => Verdict::Answer {
            route,
            response: Box::new(response),
        },
        Decision::Deny {
            route: Some(r),
            reason,
            ..
        } if crate::decide::observed(rules, r, reason) => {
            match state.shared.admit(quota(Some(r)), None, client).await {
                Ok(ratelimit) => Verdict::Observe {
                    route: r,
                    reason,
                    ratelimit,
                },
                Err(q) => Verdict::Deny(Denial::refused(Some(r), q)),
            }
        }
        Decision::Deny {
            route,
            reason,
            allow,
        } => {
            count_failure(state, rules, client, reason).await;
            Verdict::Deny(Denial {
                allow,
                ..Denial::new(route, reason)
            })
        }
    }
}

/// Settles one Socket.IO CONNECT the gate authorized (on route `route`, `None` when its path
/// matches no route any more): counted in `keygate_requests_total`, a credential failure
/// counted against the client's `throttle`. The gate renders it (`40` forwarded, or `44` and a
/// close frame).
pub(crate) async fn settle_connect(
    state: &State,
    rules: &Ruleset,
    route: Option<usize>,
    decision: Result<Identity, Reason>,
    client: Option<IpAddr>,
) -> Result<Identity, Reason> {
    let counters = route.map(|r| &*rules.routes.routes[r].counters);
    match &decision {
        Ok(_) => record::connect(counters, Outcome::Allowed),
        Err(r) => {
            record::connect(counters, Outcome::Denied(*r));
            count_failure(state, rules, client, *r).await;
        }
    }
    decision
}

/// Counts a refusal against its client's `throttle` (a credential failure only), on every
/// replica's behalf with `shared_state`; logs the block it causes.
pub(crate) async fn count_failure(
    state: &State,
    rules: &Ruleset,
    client: Option<IpAddr>,
    reason: Reason,
) {
    let throttle = rules.throttle.as_ref();
    if state.shared.count_failure(throttle, client, reason).await {
        if let Some(ip) = client {
            tracing::warn!(client = %ip, "too many credential failures: address blocked");
        }
    }
}
