//! The forward-auth listener (`forward_auth.listen`): keygate as the auth service of another
//! proxy, with the same config, routes and reasons (`docs/config.md`, "Forward-auth";
//! `SECURITY.md`, "Forward-auth trust model").
//!
//! The request being decided is described by the one proxy named in `forward_auth.front`, and
//! only by its header family (`crate::canonical::Canonical::forwarded`): nginx's
//! `X-Original-Method` + `X-Original-URI`, Traefik's `X-Forwarded-Method` + `X-Forwarded-Uri`,
//! or, for Envoy, the request's own method and path. Its headers are those of the original
//! request. An allowed request is answered 200 with the identity headers (for
//! `auth_request_set`, `authResponseHeaders`, `allowed_upstream_headers`); a denial with its
//! status, JSON body and `WWW-Authenticate`.
//!
//! What this door cannot do, it refuses, because the front proxy forwards the original request
//! itself on any 2xx:
//! - a client identity header in any spelling: keygate cannot remove it from what the backend
//!   receives (400 `spoofed_identity`);
//! - a CORS preflight keygate would answer or forward stripped (403 `cors_not_allowed`): the
//!   front proxy would forward the whole `OPTIONS` to the backend;
//! - any request on a `socketio: true` route (403 `no_route`): keygate must read that stream.
//!
//! The client address (for `throttle`) is the rightmost `X-Forwarded-For` hop that is not a
//! trusted proxy: the front proxy itself is trusted by definition, and the documented snippets
//! append the address it saw.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use http::header::{HeaderValue, VARY};
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::canonical::Canonical;
use crate::decide::{Forwarding, Outcome};
use crate::metrics::{Outcome as Counted, RouteCounters};
use crate::observe::Timings;
use crate::reason::Reason;
use crate::ruleset::Ruleset;
use crate::state::State;

/// The forward-auth application (a pingora `ServeHttp`).
pub(crate) struct ForwardAuth {
    pub(crate) state: Arc<State>,
}

/// What the door answers, before it is rendered.
struct Answer {
    route: Option<usize>,
    counted: Counted,
    response: Response<Vec<u8>>,
}

impl Answer {
    /// With a quota route's `RateLimit` fields (and a refusal's `Retry-After`).
    fn with_ratelimit(
        mut self,
        ratelimit: Option<crate::shared::RateLimit>,
        retry: Option<u64>,
    ) -> Answer {
        crate::shared::decorate(self.response.headers_mut(), ratelimit.as_ref(), retry);
        self
    }
}

#[async_trait]
impl ServeHttp for ForwardAuth {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let started = Instant::now();
        let rules = self.state.rules.load_full();
        // The next bytes on this connection are a new request head, under the head limits.
        if crate::respond::discard_body_of(session).await {
            crate::conn::next_head(session.stream());
        } else {
            session.set_keepalive(None);
        }
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let a = self.answer(&rules, session.req_header(), peer).await;
        let counters: &RouteCounters = match a.route {
            Some(r) => &rules.routes.routes[r].counters,
            None => RouteCounters::unmatched(),
        };
        counters.count(a.counted);
        counters.observe_duration(started.elapsed().as_secs_f64());
        let (outcome, reason) = a.counted.labels();
        let line = crate::access_log::Line {
            listener: Some("forward_auth"),
            route: &counters.name,
            method: session.req_header().method.as_str(),
            status: a.response.status().as_u16(),
            outcome,
            reason,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            ..Default::default()
        };
        crate::access_log::write(rules.access_log, &line);
        a.response
    }
}

impl ForwardAuth {
    /// Decides the request a forward-auth request stands for.
    async fn answer(
        &self,
        rules: &Ruleset,
        own: &pingora::http::RequestHeader,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let origin = rules
            .cors
            .as_ref()
            .and_then(|c| c.allowed_origin(&own.headers));
        let deny = |route, reason, allow: Option<String>, retry_after| Answer {
            route,
            counted: Counted::Denied(reason),
            response: denial(
                rules,
                route,
                reason,
                allow.as_deref(),
                retry_after,
                origin.as_ref(),
            ),
        };
        if rules.identity.any_in(&own.headers) {
            return deny(None, Reason::SpoofedIdentity, None, None);
        }
        let Some(front) = rules.forward_auth_front else {
            return deny(None, Reason::NoRoute, None, None);
        };
        let req = match Canonical::forwarded(front, own) {
            Ok(r) => r,
            Err(reason) => return deny(None, reason, None, None),
        };
        let client = peer.map(|p| rules.trusted_proxies.client_behind(p, own));
        // Blocked on any replica (`shared_state`), or shared state down with `deny`.
        let shared = &self.state.shared;
        if let Some(refusal) = shared.refuse_blocked(rules.throttle.as_ref(), client) {
            let route = crate::decide::route_of(rules, &req);
            if refusal.reason == Reason::TooManyFailures {
                crate::metrics::throttled(route.map(|r| &*rules.routes.routes[r].name));
            }
            return deny(route, refusal.reason, None, refusal.retry_after);
        }
        let revocations = self.state.revocations.load();
        let mut timings = Timings(rules, None);
        // No body: routes that read bodies are refused here (no_route), see `decide`.
        let outcome = crate::decide::decide(rules, &req, None, &revocations, &mut timings).await;
        let route = match &outcome {
            Outcome::Forward { route, .. } => *route,
            Outcome::Answer { route, .. } => Some(*route),
            Outcome::Deny { route, .. } => *route,
        };
        if route.is_some_and(|r| rules.routes.routes[r].socketio) {
            return deny(route, Reason::NoRoute, None, None);
        }
        match outcome {
            Outcome::Forward {
                how: Forwarding::Preflight,
                route,
                ..
            } => deny(route, Reason::CorsNotAllowed, None, None),
            Outcome::Answer { route, .. } => deny(Some(route), Reason::CorsNotAllowed, None, None),
            Outcome::Forward {
                route, identity, ..
            } => {
                // The route's quota (and shared state's availability), after authentication.
                let quota = route.and_then(|r| rules.routes.routes[r].quota.as_ref());
                let name = route.map_or("", |r| &*rules.routes.routes[r].name);
                let response = match allowed(rules, identity.as_ref(), name) {
                    Ok(r) => r,
                    // No signed assertion, no identity the backend can check: refused.
                    Err(()) => return deny(route, Reason::KeySourceUnavailable, None, None),
                };
                match shared.admit(quota, identity.as_ref(), client).await {
                    Ok(ratelimit) => Answer {
                        route,
                        counted: Counted::Allowed,
                        response,
                    }
                    .with_ratelimit(ratelimit, None),
                    Err(r) => {
                        deny(route, r.reason, None, r.retry_after).with_ratelimit(r.ratelimit, None)
                    }
                }
            }
            Outcome::Deny {
                route: Some(r),
                reason,
                ..
            } if crate::decide::observed(rules, r, reason) => {
                // An observed request still counts against the route's quota.
                let quota = rules.routes.routes[r].quota.as_ref();
                match shared.admit(quota, None, client).await {
                    Ok(ratelimit) => Answer {
                        route: Some(r),
                        counted: Counted::Observed(reason),
                        response: allowed(rules, None, "").unwrap_or_default(),
                    }
                    .with_ratelimit(ratelimit, None),
                    Err(q) => deny(Some(r), q.reason, None, q.retry_after)
                        .with_ratelimit(q.ratelimit, None),
                }
            }
            Outcome::Deny {
                route,
                reason,
                allow,
            } => {
                if shared
                    .count_failure(rules.throttle.as_ref(), client, reason)
                    .await
                {
                    if let Some(ip) = client {
                        tracing::warn!(client = %ip, "too many credential failures: address blocked");
                    }
                }
                deny(route, reason, allow, None)
            }
        }
    }
}

/// 200 with the identity headers of `id` (none for an anonymous or observed request), its
/// signed assertion included (`identity.assertion`, for route `route`); `Err` when the
/// assertion could not be signed.
fn allowed(
    rules: &Ruleset,
    id: Option<&crate::auth::Identity>,
    route: &str,
) -> Result<Response<Vec<u8>>, ()> {
    let mut b = Response::builder()
        .status(200)
        .header("cache-control", "no-store");
    for (name, value) in id.into_iter().flat_map(|id| rules.identity.headers(id)) {
        b = b.header(name, value);
    }
    if let (Some(id), Some(a)) = (id, &rules.identity.assertion) {
        let jws = rules.identity.assertion(id, route).map_err(|m| {
            tracing::error!(error = %m, "identity assertion not signed: request refused");
        })?;
        if let Some(jws) = jws {
            b = b.header(&a.header, jws);
        }
    }
    Ok(b.header("content-length", "0")
        .body(Vec::new())
        .expect("a valid response"))
}

/// The denial for `reason`, as the proxy would answer it (CORS headers for an allowed origin).
fn denial(
    rules: &Ruleset,
    route: Option<usize>,
    reason: Reason,
    allow: Option<&str>,
    retry_after: Option<u64>,
    origin: Option<&HeaderValue>,
) -> Response<Vec<u8>> {
    let body = reason.body().into_bytes();
    let mut b = Response::builder()
        .status(reason.status())
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("content-length", body.len());
    let bearer = route.is_some_and(|r| rules.routes.routes[r].bearer);
    if let Some(v) = reason.challenge(bearer) {
        b = b.header("www-authenticate", v);
    }
    if let Some(a) = allow {
        b = b.header("allow", a);
    }
    if let Some(s) = retry_after {
        b = b.header("retry-after", s);
    }
    let mut resp = b.body(body).expect("a valid response");
    if let Some(cors) = &rules.cors {
        let mut h =
            pingora::http::ResponseHeader::build(reason.status(), None).expect("a valid status");
        match origin {
            Some(o) => cors.decorate(o, &mut h),
            None => {
                let _ = h.insert_header(VARY, "Origin");
            }
        }
        resp.headers_mut().extend(h.headers.clone());
    }
    resp
}
