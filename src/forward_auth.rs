//! The forward-auth listener (`forward_auth.listen`): keygate as the auth service of another
//! proxy, with the same config, routes and reasons (`docs/config.md`, `forward_auth`).
//!
//! The request being decided is taken from `X-Forwarded-Method` + `X-Forwarded-Uri` (Traefik
//! ForwardAuth), else `X-Original-Method` + `X-Original-URI` (nginx `auth_request` with
//! `proxy_set_header`), else the request's own method and target (Envoy `ext_authz` HTTP
//! service); its headers are those of the original request. An allowed request is answered 200
//! with the identity headers (for `auth_request_set`, `authResponseHeaders`,
//! `allowed_upstream_headers`); a denial with its status, JSON body and `WWW-Authenticate`.
//!
//! What this listener cannot do, it refuses: on a `socketio: true` route keygate must read the
//! websocket stream itself, so upgrades there are refused (403 `no_route`). An answered CORS
//! preflight is allowed without identity (200, with keygate's CORS headers for proxies that pass
//! them on), since the fronting proxy forwards on any 2xx.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use http::{HeaderName, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;

use crate::decide::{Forwarding, Outcome};
use crate::metrics::{Outcome as Counted, RouteCounters};
use crate::observe::Timings;
use crate::reason::Reason;
use crate::ruleset::Ruleset;
use crate::state::State;

const METHOD_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-forwarded-method"),
    HeaderName::from_static("x-original-method"),
];
const URI_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-original-uri"),
];

/// The forward-auth application (a pingora `ServeHttp`).
pub(crate) struct ForwardAuth {
    pub(crate) state: Arc<State>,
}

/// The original request a forward-auth request stands for.
fn original(own: &RequestHeader) -> Result<RequestHeader, Reason> {
    let pick = |names: &[HeaderName; 2], i: usize| own.headers.get(&names[i]).map(|v| v.as_bytes());
    let (method, target) = match (0..2).find(|&i| pick(&URI_HEADERS, i).is_some()) {
        Some(i) => (
            pick(&METHOD_HEADERS, i).unwrap_or(own.method.as_str().as_bytes()),
            pick(&URI_HEADERS, i).unwrap_or_default(),
        ),
        None => (own.method.as_str().as_bytes(), own.raw_path()),
    };
    let method = std::str::from_utf8(method).map_err(|_| Reason::MalformedPath)?;
    let mut req = RequestHeader::build(method, target, Some(own.headers.len()))
        .map_err(|_| Reason::MalformedPath)?;
    for (k, v) in own.headers.iter() {
        let _ = req.append_header(k.clone(), v.clone());
    }
    Ok(req)
}

#[async_trait]
impl ServeHttp for ForwardAuth {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let started = Instant::now();
        let rules = self.state.rules.load_full();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let mut req = match original(session.req_header()) {
            Ok(r) => r,
            Err(reason) => return denial(&rules, None, reason, None, None),
        };
        rules.identity.strip(&mut req);
        let client = peer.map(|p| rules.trusted_proxies.client_ip(p, &req));
        if let Some(left) = rules
            .throttle
            .as_ref()
            .and(client)
            .and_then(|ip| self.state.throttle.blocked(ip))
        {
            let route = crate::decide::route_of(&rules, &req);
            crate::metrics::throttled(route.map(|r| &*rules.routes.routes[r].name));
            return denial(
                &rules,
                route,
                Reason::TooManyFailures,
                None,
                Some(left.as_secs_f64().ceil() as u64),
            );
        }
        let revocations = self.state.revocations.load();
        let mut timings = Timings(&rules, None);
        // No body: routes that read bodies are refused here (no_route), see `decide`.
        let outcome = crate::decide::decide(&rules, &req, None, &revocations, &mut timings).await;
        let (route, resp, counted) = self.answer(&rules, &req, outcome, client);
        let counters: &RouteCounters = match route {
            Some(r) => &rules.routes.routes[r].counters,
            None => RouteCounters::unmatched(),
        };
        counters.count(counted);
        counters.observe_duration(started.elapsed().as_secs_f64());
        let (outcome, reason) = counted.labels();
        let line = crate::access_log::Line {
            listener: Some("forward_auth"),
            route: &counters.name,
            method: req.method.as_str(),
            status: resp.status().as_u16(),
            outcome,
            reason,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            ..Default::default()
        };
        crate::access_log::write(rules.access_log, &line);
        resp
    }
}

impl ForwardAuth {
    /// The answer for a decision; the route, the response and how to count it.
    fn answer(
        &self,
        rules: &Ruleset,
        req: &RequestHeader,
        outcome: Outcome,
        client: Option<std::net::IpAddr>,
    ) -> (Option<usize>, Response<Vec<u8>>, Counted) {
        match outcome {
            Outcome::Forward {
                how: Forwarding::Socketio(_),
                route,
                ..
            } => {
                let r = Reason::NoRoute;
                (
                    route,
                    denial(rules, route, r, None, None),
                    Counted::Denied(r),
                )
            }
            Outcome::Forward {
                route, identity, ..
            } => {
                let mut up = RequestHeader::build("GET", b"/", None).expect("a valid request");
                if let Some(id) = &identity {
                    // issue 19: the answer carries the signed assertion too.
                    let name = route.map_or("", |r| &*rules.routes.routes[r].name);
                    if rules.identity.apply(&mut up, id, name).is_err() {
                        let r = Reason::KeySourceUnavailable;
                        return (
                            route,
                            denial(rules, route, r, None, None),
                            Counted::Denied(r),
                        );
                    }
                }
                (route, allowed(&up, None), Counted::Allowed)
            }
            Outcome::Answer { route, response } => {
                let up = RequestHeader::build("GET", b"/", None).expect("a valid request");
                (Some(route), allowed(&up, Some(&response)), Counted::Allowed)
            }
            Outcome::Deny {
                route: Some(r),
                reason,
                ..
            } if crate::decide::observed(rules, r, reason) => {
                let up = RequestHeader::build("GET", b"/", None).expect("a valid request");
                (Some(r), allowed(&up, None), Counted::Observed(reason))
            }
            Outcome::Deny {
                route,
                reason,
                allow,
            } => {
                if let (Some(cfg), Some(ip)) = (&rules.throttle, client) {
                    if reason.credential_failure() {
                        self.state.throttle.failed(ip, cfg);
                    }
                }
                let origin = rules.cors.as_ref().and_then(|c| c.allowed_origin(req));
                let mut resp = denial(rules, route, reason, allow.as_deref(), None);
                if let (Some(c), Some(o)) = (&rules.cors, origin) {
                    let mut h = pingora::http::ResponseHeader::build(reason.status(), None)
                        .expect("a valid status");
                    c.decorate(&o, &mut h);
                    resp.headers_mut().extend(h.headers.clone());
                }
                (route, resp, Counted::Denied(reason))
            }
        }
    }
}

/// 200 with the identity headers set on `up` (and, for an answered preflight, its CORS headers).
fn allowed(
    up: &RequestHeader,
    preflight: Option<&pingora::http::ResponseHeader>,
) -> Response<Vec<u8>> {
    let mut b = Response::builder()
        .status(200)
        .header("cache-control", "no-store");
    for (k, v) in up.headers.iter() {
        b = b.header(k, v);
    }
    if let Some(p) = preflight {
        for (k, v) in p
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("access-control-") || *k == http::header::VARY)
        {
            b = b.header(k, v);
        }
    }
    b.header("content-length", "0")
        .body(Vec::new())
        .expect("a valid response")
}

/// The denial for `reason`, as the proxy would answer it.
fn denial(
    rules: &Ruleset,
    route: Option<usize>,
    reason: Reason,
    allow: Option<&str>,
    retry_after: Option<u64>,
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
    b.body(body).expect("a valid response")
}
