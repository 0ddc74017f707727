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
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

use crate::canonical::Canonical;
use crate::decide::Forwarding;
use crate::enforce::{render, Denial, Record, Verdict};
use crate::observe::Timings;
use crate::reason::Reason;
use crate::ruleset::Ruleset;
use crate::state::State;

/// The forward-auth application (a pingora `ServeHttp`).
pub(crate) struct ForwardAuth {
    pub(crate) state: Arc<State>,
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
        let own = session.req_header();
        let verdict = self.verdict(&rules, own, peer).await;
        let origin = rules
            .cors
            .as_ref()
            .and_then(|c| c.allowed_origin(&own.headers));
        let (verdict, response) = render_verdict(&rules, verdict, origin.as_ref());
        let counters = verdict.route().map(|r| &*rules.routes.routes[r].counters);
        let record = Record {
            listener: Some("forward_auth"),
            route: counters,
            outcome: verdict.outcome(),
            stream: None,
            identity: verdict.identity(),
            method: own.method.as_str(),
            status: response.status().as_u16(),
            upstream_status: 0,
            upstream_error: None,
            started,
            access_log: rules.access_log,
        };
        record.write(None);
        response
    }
}

impl ForwardAuth {
    /// Settles the request a forward-auth request stands for, the way every door does
    /// (`crate::enforce`), with this door's own refusals.
    async fn verdict(
        &self,
        rules: &Ruleset,
        own: &pingora::http::RequestHeader,
        peer: Option<std::net::IpAddr>,
    ) -> Verdict {
        let deny = |route, reason| Verdict::Deny(Denial::new(route, reason));
        if rules.identity.any_in(&own.headers) {
            return deny(None, Reason::SpoofedIdentity);
        }
        let Some(front) = rules.forward_auth_front else {
            return deny(None, Reason::NoRoute);
        };
        let req = match Canonical::forwarded(front, own) {
            Ok(r) => r,
            Err(reason) => return deny(None, reason),
        };
        let client = peer.map(|p| rules.trusted_proxies.client_behind(p, own));
        if let Some(d) = crate::enforce::refuse_client(&self.state, rules, client, &req) {
            return Verdict::Deny(d);
        }
        let revocations = self.state.revocations.load();
        let mut timings = Timings(rules, None);
        // No body: routes that read bodies are refused here (no_route), see `decide`.
        let decision = crate::decide::decide(rules, &req, None, &revocations, &mut timings).await;
        let verdict = crate::enforce::settle(&self.state, rules, decision, client).await;
        match verdict {
            // keygate must read that stream itself.
            v if v.route().is_some_and(|r| rules.routes.routes[r].socketio) => {
                deny(v.route(), Reason::NoRoute)
            }
            // This door never has the body: a form (or a body a framework could read as one)
            // that could name a method is not decided. JSON and untyped bodies pass (see
            // docs/config.md: the front hides whether a POST without a type has a body).
            v @ (Verdict::Forward { .. } | Verdict::Observe { .. })
                if v.route().is_some_and(|r| {
                    let scan = crate::body::scanner(&rules.routes.routes[r], &req);
                    scan.is_some_and(|(_, kind)| kind >= crate::form::Kind::Unclean)
                }) =>
            {
                deny(v.route(), Reason::NoRoute)
            }
            // The front would forward the whole OPTIONS to the backend.
            Verdict::Answer { route, .. } => deny(Some(route), Reason::CorsNotAllowed),
            Verdict::Forward {
                how: Forwarding::Preflight,
                route,
                ..
            } => deny(route, Reason::CorsNotAllowed),
            v => v,
        }
    }
}

/// The answer for `verdict` in this door's medium: 200 with the identity headers (and the
/// signed assertion) for a request to forward, the denial as `crate::enforce::render` builds it
/// otherwise. An assertion that cannot be signed turns the verdict into a 503
/// `key_source_unavailable` (no identity the backend can check).
fn render_verdict(
    rules: &Ruleset,
    verdict: Verdict,
    origin: Option<&http::HeaderValue>,
) -> (Verdict, Response<Vec<u8>>) {
    let route = verdict.route();
    let name = route.map_or("", |r| &*rules.routes.routes[r].name);
    let verdict = match allowed(rules, &verdict, name) {
        Ok(resp) => return (verdict, resp),
        Err(()) => match verdict {
            Verdict::Deny(d) => Verdict::Deny(d),
            _ => Verdict::Deny(Denial::new(route, Reason::KeySourceUnavailable)),
        },
    };
    let Verdict::Deny(d) = &verdict else {
        unreachable!("refused above")
    };
    let (head, body) = render::denial(Some(rules), d, origin);
    let resp = render::to_http(&head, body.to_vec());
    (verdict, resp)
}

/// 200 for a verdict that forwards: the identity headers of its identity (none for an
/// anonymous or observed request), its signed assertion (`identity.assertion`, for route
/// `route`) and its quota's `RateLimit` fields. `Err` for a denial, or when the assertion could
/// not be signed.
fn allowed(rules: &Ruleset, verdict: &Verdict, route: &str) -> Result<Response<Vec<u8>>, ()> {
    if matches!(verdict, Verdict::Deny(_) | Verdict::Answer { .. }) {
        return Err(());
    }
    let mut head = ResponseHeader::build(200, Some(8)).expect("a valid status");
    let _ = head.insert_header(http::header::CACHE_CONTROL, "no-store");
    let _ = head.insert_header(http::header::CONTENT_LENGTH, "0");
    let id = verdict.identity();
    for (name, value) in id.into_iter().flat_map(|id| rules.identity.headers(id)) {
        let _ = head.append_header(name.clone(), value);
    }
    if let (Some(id), Some(a)) = (id, &rules.identity.assertion) {
        let jws = rules.identity.assertion(id, route).map_err(|m| {
            tracing::error!(error = %m, "identity assertion not signed: request refused");
        })?;
        if let Some(jws) = jws {
            let _ = head.insert_header(a.header.clone(), jws);
        }
    }
    render::ratelimit(&mut head, verdict.ratelimit());
    Ok(render::to_http(&head, Vec::new()))
}
