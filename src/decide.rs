//! The decision for one request, before anything is forwarded: path hygiene, route, CORS,
//! method, Socket.IO upgrade rules, credentials. Writes nothing; the proxy carries it out.
//!
//! Order: the path is checked (`malformed_path`); the route is looked up (`no_route` /
//! `unmatched: anonymous`, `method_not_allowed`); a CORS preflight is answered (with a `cors`
//! block) or forwarded stripped (`cors_preflight: forward`); a method override naming a method
//! the route does not allow is refused; on a `socketio: true` route Engine.IO long-polling is
//! refused and only a real RFC 6455 upgrade may defer authentication to the stream; then the
//! route's alternatives decide.

use http::header::HeaderName;
use http::Method;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::auth::{Identity, RequestParts};
use crate::config::{CorsPreflight, Unmatched};
use crate::cors;
use crate::policy::{self, Observer};
use crate::reason::Reason;
use crate::revocation::Revocations;
use crate::routes::{Lookup, Match};
use crate::ruleset::Ruleset;
use crate::socketio::gate::Authorized;

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
pub(crate) enum Outcome {
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

fn deny(route: Option<usize>, reason: Reason) -> Outcome {
    Outcome::Deny {
        route,
        reason,
        allow: None,
    }
}

/// Headers through which frameworks let a client override the method (Express's
/// `method-override`, Rails, Symfony, Google APIs).
const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Decides `req` under `rules` and the `revocations` in force; `observer` sees each
/// authenticator run. `body` is the request body when the caller read it (the proxy does on
/// routes that read bodies, `crate::body`); a route that reads bodies without one is refused
/// (`no_route`: the forward-auth listener never has the body).
pub(crate) async fn decide(
    rules: &Ruleset,
    req: &RequestHeader,
    body: Option<&crate::body::Body>,
    revocations: &Revocations,
    observer: &mut dyn Observer,
) -> Outcome {
    let path = match crate::path::check(req.uri.path()) {
        Ok(p) => p,
        Err(r) => return deny(None, r),
    };
    let find = |method: &Method| rules.routes.find(&path, method);
    if let Some(pf) = cors::preflight(req) {
        if let Some(c) = &rules.cors {
            return match find(&pf.method) {
                Lookup::Matched(m) => match c.answer(&pf, true) {
                    Ok(response) => Outcome::Answer {
                        route: m.route,
                        response,
                    },
                    Err(r) => deny(Some(m.route), r),
                },
                Lookup::MethodNotAllowed { route, .. } => deny(Some(route), Reason::CorsNotAllowed),
                Lookup::NotFound => unmatched(rules),
            };
        }
        if rules.cors_preflight == CorsPreflight::Forward && cors::forwardable(req) {
            if let Lookup::Matched(m) = find(&pf.method) {
                return Outcome::Forward {
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
            return Outcome::Deny {
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
/// authorization failures are; the shape of the request (path, method, CORS, throttling) is
/// not.
pub(crate) fn observed(rules: &Ruleset, r: usize, reason: Reason) -> bool {
    rules.routes.routes[r].observe && reason.observable()
}

/// The route `req` matches (for a metric label), without deciding anything.
pub(crate) fn route_of(rules: &Ruleset, req: &RequestHeader) -> Option<usize> {
    let path = crate::path::check(req.uri.path()).ok()?;
    match rules.routes.find(&path, &req.method) {
        Lookup::Matched(m) => Some(m.route),
        Lookup::MethodNotAllowed { route, .. } => Some(route),
        Lookup::NotFound => None,
    }
}

fn unmatched(rules: &Ruleset) -> Outcome {
    match rules.unmatched {
        Unmatched::Deny => deny(None, Reason::NoRoute),
        Unmatched::Anonymous => Outcome::Forward {
            route: None,
            identity: None,
            how: Forwarding::Plain,
        },
    }
}

/// The matched route's rules: method overrides, Socket.IO transports, then credentials.
async fn authorize(
    rules: &Ruleset,
    req: &RequestHeader,
    m: Match,
    body: Option<&crate::body::Body>,
    revocations: &Revocations,
    observer: &mut dyn Observer,
) -> Outcome {
    let route = &rules.routes.routes[m.route];
    // issue 19: a route that reads bodies is decided only with its body (src/body.rs).
    if route.reads_body && body.is_none() {
        return deny(Some(m.route), Reason::NoRoute);
    }
    for name in &METHOD_OVERRIDES {
        for v in req.headers.get_all(name) {
            let asked =
                Method::from_bytes(v.as_bytes().trim_ascii().to_ascii_uppercase().as_slice());
            if !asked.is_ok_and(|a| route.allows(&a)) {
                let allow = rules.routes.allow_of(m.route);
                return Outcome::Deny {
                    route: Some(m.route),
                    reason: Reason::MethodNotAllowed,
                    allow: Some(allow),
                };
            }
        }
    }
    let upgrade = route.socketio && crate::websocket::is_upgrade(req);
    if route.socketio && !upgrade && is_engineio(req) {
        return deny(Some(m.route), Reason::WebsocketRequired);
    }
    let parts = RequestParts {
        headers: &req.headers,
        query: req.uri.query(),
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
        Ok(identity) => Outcome::Forward {
            route: Some(m.route),
            identity,
            how,
        },
        Err(Reason::MissingCredentials) if upgrade => Outcome::Forward {
            route: Some(m.route),
            identity: None,
            how: Forwarding::Socketio(Authorized::InStream),
        },
        Err(r) => deny(Some(m.route), r),
    }
}

/// An Engine.IO request (its query names the protocol version `EIO`, however encoded).
fn is_engineio(req: &RequestHeader) -> bool {
    req.uri
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "EIO"))
}
