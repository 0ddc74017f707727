//! `keygate explain --config FILE [-X METHOD] [-H 'Name: value']... PATH`: how keygate would
//! decide one request, without sending anything anywhere (`docs/config.md`, `keygate explain`).
//!
//! It prints the route matched (or why none), each alternative and authenticator tried with its
//! result and reason, the final status and reason, and the identity headers the backend would
//! receive, and for `credential_revoked` the `revocations.file` entry that matched. JWK sets are
//! fetched once, as keygate would at start. Credentials are never echoed: header values and
//! query values are not printed, only their names. A route's `allow_if` is printed with its
//! value for each alternative that reached it; `-d BODY` gives the body for routes that read it
//! (`bind_json`, `json_body` sources).

use std::fmt::Write as _;

use pingora::http::RequestHeader;

use crate::canonical::Canonical;
use crate::decide::{decide, Decision, Forwarding};
use crate::policy::{Observer, Step};
use crate::reason::Reason;
use crate::revocation::{Revocations, Source};
use crate::ruleset::Ruleset;

/// Records every authenticator run and every `allow_if` evaluation.
#[derive(Default)]
struct Steps(Vec<Step>, Vec<(usize, Result<bool, String>)>);

impl Observer for Steps {
    fn step(&mut self, step: Step) {
        self.0.push(step);
    }

    fn condition(&mut self, alternative: usize, value: &Result<bool, String>) {
        self.1.push((alternative, value.clone()));
    }
}

/// Builds the request `explain` decides: `method` and `target` (path and query), `headers` as
/// `Name: value` lines.
///
/// Errors name the argument (`-H #2`), never its text: a mistyped header or target can hold a
/// credential.
pub fn request(method: &str, target: &str, headers: &[String]) -> Result<RequestHeader, String> {
    let mut req = RequestHeader::build(method, target.as_bytes(), Some(headers.len() + 1))
        .map_err(|_| {
            "invalid method or request target (not shown: it may hold a credential)".to_string()
        })?;
    for (n, h) in headers.iter().enumerate() {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("-H #{}: expected `Name: value` (not shown)", n + 1))?;
        req.append_header(name.trim().to_string(), value.trim())
            .map_err(|_| {
                format!(
                    "-H #{}: not a valid header name and value (not shown)",
                    n + 1
                )
            })?;
    }
    if !req.headers.contains_key(http::header::HOST) {
        let _ = req.insert_header(http::header::HOST, "keygate.explain");
    }
    Ok(req)
}

/// Decides `req` (with `body`, if given) under `rules` and the `revocations` in force
/// (`revocations.file`) and writes the report; `true` when the request would be forwarded (or a
/// CORS preflight answered).
pub async fn explain(
    rules: &Ruleset,
    revocations: &Revocations,
    mut req: RequestHeader,
    body: Option<&[u8]>,
    out: &mut String,
) -> bool {
    for p in rules.providers() {
        if let Err(e) = crate::auth::jwks::refresh::fetch_now(&p).await {
            let _ = writeln!(out, "JWK set of {}: {e}", p.name());
        }
    }
    let spoofed: Vec<String> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
    rules.identity.strip(&mut req);
    for name in spoofed
        .iter()
        .filter(|n| !req.headers.contains_key(n.as_str()))
    {
        let _ = writeln!(out, "  removed client-sent identity header {name}");
    }
    let mut steps = Steps::default();
    let body = match body.map(crate::body::Body::parse).transpose() {
        Ok(b) => b,
        Err(r) => {
            let _ = writeln!(out, "body: not JSON");
            let _ = writeln!(out, "result: {} {r} (denied; never forwarded)", r.status());
            return false;
        }
    };
    let outcome = match Canonical::proxied(&req) {
        Ok(c) => decide(rules, &c, body.as_ref(), revocations, &mut steps).await,
        Err(reason) => Decision::Deny {
            route: None,
            reason,
            allow: None,
        },
    };
    let route = match &outcome {
        Decision::Forward { route, .. } | Decision::Deny { route, .. } => *route,
        Decision::Answer { route, .. } => Some(*route),
    };
    let _ = writeln!(
        out,
        "request: {} {}",
        req.method,
        describe_target(rules, route, &req)
    );
    describe_route(rules, route, out);
    if body.is_none() && route.is_some_and(|r| rules.routes.routes[r].reads_body) {
        let _ = writeln!(out, "  this route reads the JSON body: give it with -d");
    }
    describe_steps(rules, route, &steps.0, out);
    describe_condition(rules, route, &steps.1, out);
    match outcome {
        Decision::Forward { identity, how, .. } => {
            let _ = writeln!(
                out,
                "result: forwarded{}",
                match how {
                    Forwarding::Preflight => " (a CORS preflight, stripped, without identity)",
                    Forwarding::Socketio(_) =>
                        " (a websocket: each Socket.IO CONNECT is authenticated in the stream)",
                    Forwarding::Plain => "",
                }
            );
            let mut up = RequestHeader::build("GET", b"/", None).expect("a valid request");
            match identity {
                Some(id) => {
                    let name = route.map_or("", |r| &*rules.routes.routes[r].name);
                    let _ = rules.identity.apply(&mut up, &id, name);
                    let _ = writeln!(out, "identity headers the backend receives:");
                    let signed = rules.identity.assertion.as_ref().map(|a| &a.header);
                    for (k, v) in up.headers.iter() {
                        let v = match signed {
                            // A credential minted by keygate: never printed.
                            Some(h) if h == k => "<signed assertion>".into(),
                            _ => String::from_utf8_lossy(v.as_bytes()),
                        };
                        let _ = writeln!(out, "  {k}: {v}");
                    }
                }
                None => {
                    let _ = writeln!(
                        out,
                        "identity headers the backend receives: none (anonymous)"
                    );
                }
            }
            true
        }
        Decision::Answer { response, .. } => {
            let _ = writeln!(
                out,
                "result: {} answered by keygate (CORS preflight), never forwarded",
                response.status.as_u16()
            );
            true
        }
        Decision::Deny { reason, .. } => {
            if reason == Reason::CredentialRevoked {
                describe_revocation(rules, revocations, &req, body.as_ref(), out).await;
            }
            let _ = writeln!(
                out,
                "result: {} {} (denied; never forwarded)",
                reason.status(),
                reason
            );
            false
        }
    }
}

/// Which revocation refused `req`: the identity it verified as, matched against `revocations`
/// (an entry names a user, a `jti` or a credential name, never a secret).
async fn describe_revocation(
    rules: &Ruleset,
    revocations: &Revocations,
    req: &RequestHeader,
    body: Option<&crate::body::Body>,
    out: &mut String,
) {
    let none = Revocations::default();
    let Ok(canonical) = Canonical::proxied(req) else {
        return;
    };
    let Decision::Forward {
        identity: Some(id), ..
    } = decide(rules, &canonical, body, &none, &mut ()).await
    else {
        return;
    };
    let now = crate::metrics::unix_now() as i64;
    if let Some(entry) = revocations.matching(&id, now) {
        let n = revocations
            .entries(Source::File)
            .iter()
            .position(|e| e == entry);
        let source = match n {
            Some(n) => format!("revocations.file entry {}", n + 1),
            None => "shared revocation".to_string(),
        };
        let json = serde_json::to_string(entry).unwrap_or_default();
        let _ = writeln!(out, "revoked by {source}: {json} (id {})", entry.id());
    }
}

/// The path (with `…` for a path parameter the route reads a credential from), and the query's
/// parameter names only (values can be credentials).
fn describe_target(rules: &Ruleset, route: Option<usize>, req: &RequestHeader) -> String {
    let Some((path, query)) = crate::canonical::split_target(req.raw_path()) else {
        return "(a target keygate refuses; not shown)".into();
    };
    let secret_params: Vec<&str> = match route.map(|r| &rules.routes.routes[r].auth) {
        Some(crate::routes::RouteAuth::Alternatives(alts)) => alts
            .iter()
            .flatten()
            .flat_map(|&a| rules.authenticators[a].sources())
            .flat_map(|s| s.path_params())
            .collect(),
        _ => Vec::new(),
    };
    let path = match (route, secret_params.is_empty()) {
        (Some(r), false) => redact_params(&rules.routes.routes[r].template, path, &secret_params),
        _ => path.to_string(),
    };
    match query {
        Some(q) if !q.is_empty() => {
            let names: Vec<String> = form_urlencoded::parse(q.as_bytes())
                .map(|(k, _)| format!("{k}=…"))
                .collect();
            format!("{path}?{}", names.join("&"))
        }
        _ => path,
    }
}

/// `path` with the segments that `template`'s `{name}` (for `name` in `secret`) matched shown
/// as `…` (a `{*name}` hides the rest of the path).
fn redact_params(template: &str, path: &str, secret: &[&str]) -> String {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, seg) in path.split('/').enumerate() {
        let param = t
            .get(i)
            .and_then(|s| s.strip_prefix('{'))
            .and_then(|s| s.strip_suffix('}'));
        match param {
            Some(p) if p.starts_with('*') && secret.contains(&&p[1..]) => {
                out.push("…");
                break;
            }
            Some(p) if secret.contains(&p) => out.push("…"),
            _ => out.push(seg),
        }
    }
    out.join("/")
}

fn describe_route(rules: &Ruleset, route: Option<usize>, out: &mut String) {
    match route {
        Some(r) => {
            let route = &rules.routes.routes[r];
            let allow = rules.routes.allow_of(r);
            let methods = if allow.is_empty() {
                "any method".to_string()
            } else {
                allow
            };
            let _ = writeln!(out, "route: {} ({}, {methods})", route.name, route.template);
        }
        None => {
            let _ = writeln!(
                out,
                "route: none matches (unmatched: {:?})",
                rules.unmatched
            );
        }
    }
}

/// The route's `allow_if` and its value for each alternative that reached it.
fn describe_condition(
    rules: &Ruleset,
    route: Option<usize>,
    values: &[(usize, Result<bool, String>)],
    out: &mut String,
) {
    let Some(c) = route.and_then(|r| rules.routes.routes[r].condition.as_ref()) else {
        return;
    };
    let _ = writeln!(out, "allow_if: {}", c.source);
    if values.is_empty() {
        let _ = writeln!(out, "  not evaluated (no alternative authenticated)");
    }
    for (n, v) in values {
        let shown = match v {
            Ok(b) => b.to_string(),
            Err(e) => format!("error: {e} (refused)"),
        };
        let _ = writeln!(out, "  alternative {}: {shown}", n + 1);
    }
}

fn describe_steps(rules: &Ruleset, route: Option<usize>, steps: &[Step], out: &mut String) {
    let Some(r) = route else { return };
    let crate::routes::RouteAuth::Alternatives(alts) = &rules.routes.routes[r].auth else {
        let _ = writeln!(out, "auth: anonymous");
        return;
    };
    for (n, alt) in alts.iter().enumerate() {
        let names: Vec<&str> = alt
            .iter()
            .map(|&a| rules.authenticators[a].name())
            .collect();
        let _ = writeln!(
            out,
            "alternative {} of {}: {}",
            n + 1,
            alts.len(),
            names.join(" + ")
        );
        for &a in alt {
            let auth = &rules.authenticators[a];
            let what = match steps
                .iter()
                .find(|s| s.alternative == n && s.authenticator == a)
            {
                None => "not tried".to_string(),
                Some(Step { failed: None, .. }) => "passed".to_string(),
                Some(Step {
                    failed: Some(Reason::MissingCredentials),
                    ..
                }) => "no credential".to_string(),
                Some(Step {
                    failed: Some(r), ..
                }) => format!("failed: {r}"),
            };
            let _ = writeln!(out, "  {} ({}): {what}", auth.name(), auth.kind().as_str());
        }
    }
}
