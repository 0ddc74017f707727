//! The decision for one request, before anything is forwarded: path hygiene, route, CORS,
//! method, Socket.IO upgrade rules, credentials. Writes nothing; the proxy carries it out.
//!
//! It decides about the [`Canonical`] request (what the backend will act on), never about what
//! a door's HTTP parser made of it. Order: the path is checked (`malformed_path`); the route is
//! looked up (`no_route` / `unmatched: anonymous`, `method_not_allowed`); a CORS preflight is
//! answered (with a `cors` block) or forwarded stripped (`cors_preflight: forward`); a method
//! override naming a method the route does not allow is refused; a `socketio: true` route takes
//! only an Engine.IO v4 websocket (RFC 6455 upgrade, `EIO=4`, `transport=websocket`), which may
//! defer authentication to the stream at the route's own path; then the route's alternatives
//! decide.

use http::Method;
use pingora::http::ResponseHeader;

use crate::auth::{Identity, RequestParts};
use crate::body::Need;
use crate::canonical::Canonical;
use crate::config::{CorsPreflight, Unmatched};
use crate::cors;
use crate::policy::{self, Observer};
use crate::reason::Reason;
use crate::revocation::Revocations;
use crate::routes::{Lookup, Match};
use crate::ruleset::Ruleset;
use crate::socketio::Authorized;

/// How an allowed request is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forwarding {
    /// As it came (with identity and forwarding headers).
    Plain,
    /// A CORS preflight stripped to `cors::PREFLIGHT_HEADERS`, without identity.
    Preflight,
    /// A websocket whose Socket.IO CONNECTs the gate reads.
    Socketio(Authorized),
}

/// What to do with a request.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Forward it.
    Forward {
        /// Index of the matched route (`None`: unmatched, forwarded anonymously).
        route: Option<usize>,
        /// The verified identity (`None`: anonymous, or deferred to the Socket.IO stream).
        identity: Option<Identity>,
        /// How.
        how: Forwarding,
    },
    /// Answer a CORS preflight with this 204.
    Answer {
        /// Index of the matched route.
        route: usize,
        /// The response.
        response: ResponseHeader,
    },
    /// Refuse it.
    Deny {
        /// Index of the matched route, if any.
        route: Option<usize>,
        /// Why.
        reason: Reason,
        /// For `method_not_allowed`: the `Allow` value.
        allow: Option<String>,
    },
}

fn deny(route: Option<usize>, reason: Reason) -> Decision {
    Decision::Deny {
        route,
        reason,
        allow: None,
    }
}

/// Decides `req` under `rules` and the `revocations` in force; `observer` sees each
/// authenticator run. `body` is the request body when the caller read it (the proxy does on
/// routes that read bodies, `crate::body`); a route that reads bodies without one is refused
/// (`no_route`: the forward-auth listener never has the body).
pub(crate) async fn decide(
    rules: &Ruleset,
    req: &Canonical<'_>,
    body: Option<&crate::body::Body>,
    revocations: &Revocations,
    observer: &mut dyn Observer,
) -> Decision {
    let path = match crate::path::check(&req.path) {
        Ok(p) => p,
        Err(r) => return deny(None, r),
    };
    let find = |method: &Method| rules.routes.find(&path, method);
    if let Some(pf) = cors::preflight(&req.method, req.headers) {
        if let Some(c) = &rules.cors {
            return match find(&pf.method) {
                Lookup::Matched(m) => match c.answer(&pf, true) {
                    Ok(response) => Decision::Answer {
                        route: m.route,
                        response,
                    },
                    Err(r) => deny(Some(m.route), r),
                },
                Lookup::MethodNotAllowed { route, .. } => deny(Some(route), Reason::CorsNotAllowed),
                Lookup::NotFound => unmatched(rules),
            };
        }
        // A preflight naming another method (`?_method=`) is no preflight a browser sends: it
        // is decided as the request it is.
        let plain = req.overridden.is_none();
        if rules.cors_preflight == CorsPreflight::Forward && plain && cors::forwardable(req.headers)
        {
            if let Lookup::Matched(m) = find(&pf.method) {
                return Decision::Forward {
                    route: Some(m.route),
                    identity: None,
                    how: Forwarding::Preflight,
                };
            }
        }
    }
    let m = match find(&req.method) {
        Lookup::Matched(m) => m,
        Lookup::MethodNotAllowed { route, allow } => {
            return Decision::Deny {
                route: Some(route),
                reason: Reason::MethodNotAllowed,
                allow: Some(allow),
            }
        }
        Lookup::NotFound => return unmatched(rules),
    };
    authorize(rules, req, m, body, revocations, observer).await
}

/// Whether a denial on route `r` is only observed (`enforce: observe`): credential and
/// authorization failures are ([`Reason::observable`]); the request's shape and limits are not.
pub(crate) fn observed(rules: &Ruleset, r: usize, reason: Reason) -> bool {
    rules.routes.routes[r].observe && reason.observable()
}

/// The route `req` matches (for a metric label), without deciding anything.
pub(crate) fn route_of(rules: &Ruleset, req: &Canonical<'_>) -> Option<usize> {
    let path = crate::path::check(&req.path).ok()?;
    match rules.routes.find(&path, &req.method) {
        Lookup::Matched(m) => Some(m.route),
        Lookup::MethodNotAllowed { route, .. } => Some(route),
        Lookup::NotFound => None,
    }
}

fn unmatched(rules: &Ruleset) -> Decision {
    match rules.unmatched {
        Unmatched::Deny => deny(None, Reason::NoRoute),
        Unmatched::Anonymous => Decision::Forward {
            route: None,
            identity: None,
            how: Forwarding::Plain,
        },
    }
}

/// The matched route's rules: the method an override names, Socket.IO transports, then
/// credentials.
async fn authorize(
    rules: &Ruleset,
    req: &Canonical<'_>,
    m: Match,
    body: Option<&crate::body::Body>,
    revocations: &Revocations,
    observer: &mut dyn Observer,
) -> Decision {
    let route = &rules.routes.routes[m.route];
    // A route that reads bodies (issue 19) is decided only with its body (src/body.rs);
    // forward-auth never has it. A form to scan is the door's to scan (`body::Need::Scan`).
    match crate::body::needed(route, req) {
        Ok(Some(Need::Json)) if body.is_none() => return deny(Some(m.route), Reason::NoRoute),
        Ok(_) => {}
        Err(reason) => return deny(Some(m.route), reason),
    }
    let overridden = crate::canonical::Overrides(req.overridden.clone())
        .merge(body.and_then(|b| b.overridden.as_ref()));
    let overridden = match overridden {
        Ok(o) => o,
        Err(reason) => return deny(Some(m.route), reason),
    };
    if overridden.as_ref().is_some_and(|o| !route.allows(o)) {
        return Decision::Deny {
            route: Some(m.route),
            reason: Reason::MethodNotAllowed,
            allow: Some(rules.routes.allow_of(m.route)),
        };
    }
    let upgrade = route.socketio && req.is_upgrade();
    if route.socketio && !(upgrade && speaks_engineio_v4(req)) {
        return deny(Some(m.route), Reason::WebsocketRequired);
    }
    let query = req.query.as_deref();
    let parts = RequestParts {
        headers: req.headers,
        query,
        params: &m.params,
        socketio_auth: None,
        max_token_bytes: rules.max_token_bytes,
        method: &req.method,
        body: body.and_then(|b| b.json.as_ref()),
    };
    let how = if upgrade {
        Forwarding::Socketio(Authorized::ByUpgrade)
    } else {
        Forwarding::Plain
    };
    let auths = &rules.authenticators;
    match policy::authorize(route, auths, rules.mode, &parts, revocations, observer).await {
        Ok(identity) => Decision::Forward {
            route: Some(m.route),
            identity,
            how,
        },
        // Authentication deferred to the stream only at the Engine.IO endpoint itself: a path
        // beyond it (`/socket.io/admin/purge`) is a request a backend that ignores `Upgrade`
        // would serve, so it needs its credential up front.
        Err(Reason::MissingCredentials) if upgrade && at_endpoint(route, &m) => Decision::Forward {
            route: Some(m.route),
            identity: None,
            how: Forwarding::Socketio(Authorized::InStream),
        },
        Err(r) => deny(Some(m.route), r),
    }
}

/// Engine.IO v4 over a websocket, the only Engine.IO keygate gates: exactly one `EIO=4` and
/// one `transport=websocket`. Engine.IO v3 (`EIO=3`, or no `EIO`, which socket.io's
/// `allowEIO3` reads as 3) needs no CONNECT and reads `auth` from the namespace query, so the
/// gate could not stand between the client and the backend.
fn speaks_engineio_v4(req: &Canonical<'_>) -> bool {
    let Some(q) = req.query.as_deref() else {
        return false;
    };
    let (mut eio, mut transport) = (Vec::new(), Vec::new());
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        if k.eq_ignore_ascii_case("eio") {
            eio.push(v);
        } else if k.eq_ignore_ascii_case("transport") {
            transport.push(v);
        }
    }
    eio.len() == 1 && eio[0] == "4" && transport.len() == 1 && transport[0] == "websocket"
}

/// Whether the request is at the route's own path (its trailing `{*rest}`, if any, is empty).
fn at_endpoint(route: &crate::routes::Route, m: &Match) -> bool {
    route
        .rest
        .as_ref()
        .is_none_or(|rest| m.params.iter().all(|(k, v)| k != rest || v.is_empty()))
}

#[cfg(test)]
mod tests;
