//! Compiling `routes:` (the steps of [`super::RouteTable::compile`]): templates into case-folded
//! matchit patterns, methods, `auth` alternatives, `bind`, and the checks that tie a route to its
//! authenticators' sources.

use std::collections::HashMap;

use http::Method;

use super::{BindTarget, RouteAuth};
use crate::auth::Authenticator;
use crate::config::{AuthItem, AuthSpec, FieldError, RouteConfig};

pub(super) fn methods_overlap(a: &Option<Vec<Method>>, b: &Option<Vec<Method>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
        _ => true,
    }
}

/// `methods:` upper-cased; `HEAD` joins `GET` (RFC 9110 §9.3.2: HEAD is GET without a body).
pub(super) fn compile_methods(
    cfg: Option<&[crate::config::value::Str]>,
    p: &str,
) -> Result<Option<Vec<Method>>, FieldError> {
    let Some(ms) = cfg else { return Ok(None) };
    let mut out = Vec::new();
    for m in ms {
        let m = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| FieldError::new(format!("{p}.methods"), "invalid method"))?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.contains(&Method::GET) && !out.contains(&Method::HEAD) {
        out.push(Method::HEAD);
    }
    Ok(Some(out))
}

pub(super) fn compile_bind(
    rc: &RouteConfig,
    template: &Template,
    auth: &RouteAuth,
    p: &str,
) -> Result<Vec<(BindTarget, String)>, FieldError> {
    let mut bind = Vec::new();
    for (k, v) in &rc.bind {
        let target = match k.strip_prefix("claims.") {
            _ if k == "user_id" => BindTarget::UserId,
            Some(c) if !c.is_empty() => BindTarget::Claim(c.to_string()),
            _ => {
                return Err(FieldError::new(
                    format!("{p}.bind.{k}"),
                    "bind keys are user_id or claims.<name>",
                ))
            }
        };
        let param = v
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|s| template.params.iter().any(|x| x == s))
            .ok_or_else(|| {
                FieldError::new(
                    format!("{p}.bind.{k}"),
                    format!("`{}` is not a {{param}} of the path", v.0),
                )
            })?;
        bind.push((target, param.to_string()));
    }
    if matches!(auth, RouteAuth::Anonymous) && !bind.is_empty() {
        return Err(FieldError::new(
            format!("{p}.bind"),
            "an anonymous route cannot bind",
        ));
    }
    Ok(bind)
}

/// Checks the sources the route's authenticators read against the route (path parameters it
/// lacks, Socket.IO sources on a route without `socketio: true` are only a warning) and returns
/// whether some alternative reads a Bearer header.
pub(super) fn check_sources(
    auth: &RouteAuth,
    auths: &[Authenticator],
    template: &Template,
    rc: &RouteConfig,
    p: &str,
) -> Result<bool, FieldError> {
    let RouteAuth::Alternatives(alts) = auth else {
        if rc.socketio {
            return Err(FieldError::new(
                format!("{p}.socketio"),
                "an anonymous route has nothing to authenticate in the stream",
            ));
        }
        return Ok(false);
    };
    let mut bearer = false;
    for &a in alts.iter().flatten() {
        let sources = auths[a].sources();
        bearer |= sources.iter().any(|s| s.has_bearer());
        for pp in sources.iter().flat_map(|s| s.path_params()) {
            if !template.params.iter().any(|t| t == pp) {
                return Err(FieldError::new(
                    format!("{p}.auth"),
                    format!(
                        "authenticator {} reads path_param `{pp}`, which {} lacks",
                        auths[a].name(),
                        rc.path.0
                    ),
                ));
            }
        }
    }
    Ok(bearer)
}

/// `allow_if` and `bind_json` of a route, and whether it reads the request body (`bind_json`,
/// or an authenticator with a `json_body` source). Neither is allowed on an anonymous route:
/// there is no identity to condition on or bind to.
pub(super) fn compile_body(
    rc: &RouteConfig,
    auth: &RouteAuth,
    auths: &[Authenticator],
    p: &str,
) -> Result<
    (
        Option<crate::condition::Condition>,
        Vec<crate::json_body::Pointer>,
        bool,
    ),
    FieldError,
> {
    let anonymous = matches!(auth, RouteAuth::Anonymous);
    let condition = match &rc.allow_if {
        Some(_) if anonymous => {
            return Err(FieldError::new(
                format!("{p}.allow_if"),
                "an anonymous route has no identity to condition on",
            ))
        }
        Some(e) => Some(
            crate::condition::Condition::compile(e)
                .map_err(|m| FieldError::new(format!("{p}.allow_if"), m))?,
        ),
        None => None,
    };
    if anonymous && !rc.bind_json.is_empty() {
        return Err(FieldError::new(
            format!("{p}.bind_json"),
            "an anonymous route cannot bind",
        ));
    }
    let mut bind_json = Vec::new();
    for (i, ptr) in rc.bind_json.iter().enumerate() {
        let at = format!("{p}.bind_json[{i}]");
        let pointer = crate::json_body::Pointer::parse(ptr).map_err(|m| FieldError::new(&at, m))?;
        if pointer.tokens().is_empty() {
            return Err(FieldError::new(at, "name a member, e.g. /user_ids/*"));
        }
        bind_json.push(pointer);
    }
    let json_sources = match auth {
        RouteAuth::Alternatives(alts) => alts
            .iter()
            .flatten()
            .any(|&a| auths[a].sources().iter().any(|s| s.has_json_body())),
        RouteAuth::Anonymous => false,
    };
    if rc.socketio && (json_sources || !bind_json.is_empty()) {
        return Err(FieldError::new(
            format!("{p}.socketio"),
            "a socketio route has no request body to read (bind_json, json_body)",
        ));
    }
    let reads_body = json_sources || !bind_json.is_empty();
    Ok((condition, bind_json, reads_body))
}

pub(super) struct Template {
    /// matchit patterns: one, or two for a trailing `{*rest}` (which also matches empty).
    pub(super) patterns: Vec<String>,
    /// Parameter names in order.
    pub(super) params: Vec<String>,
    /// The name of a trailing `{*name}`, if any.
    pub(super) rest: Option<String>,
    /// The template with parameter names erased, to detect equal templates.
    pub(super) shape: String,
}

/// Parses a template into case-folded matchit patterns (trailing `/` trimmed, as keys are).
pub(super) fn parse_template(path: &str) -> Result<Template, String> {
    if !path.starts_with('/') {
        return Err("path must start with /".into());
    }
    let trimmed = match path.strip_suffix('/') {
        Some(t) if !t.is_empty() => t,
        _ => path,
    };
    let mut params = Vec::new();
    let mut rest = None;
    let mut shape = String::new();
    let mut pattern = String::new();
    let segs: Vec<&str> = trimmed.split('/').skip(1).collect();
    for (i, seg) in segs.iter().enumerate() {
        if segs.len() > 1 || !seg.is_empty() {
            shape.push('/');
            pattern.push('/');
        }
        if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (catch_all, name) = match inner.strip_prefix('*') {
                Some(n) => (true, n),
                None => (false, inner),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid parameter `{seg}`"));
            }
            if catch_all && i != segs.len() - 1 {
                return Err("{*name} must be the last segment".into());
            }
            if params.iter().any(|p| p == name) {
                return Err(format!("parameter `{name}` appears twice"));
            }
            params.push(name.to_string());
            if catch_all {
                rest = Some(name.to_string());
            }
            shape.push_str(if catch_all { "{*}" } else { "{}" });
            pattern.push_str(seg);
        } else if seg.contains(['{', '}']) {
            return Err(format!(
                "segment `{seg}`: a parameter must be a whole segment"
            ));
        } else if seg.is_empty() && segs.len() > 1 {
            return Err("empty segment (`//`)".into());
        } else if crate::path::check(&format!("/{seg}")).is_err() || seg.contains('%') {
            return Err(format!("segment `{seg}` is not a plain path segment"));
        } else {
            let folded = seg.to_ascii_lowercase();
            shape.push_str(&folded);
            pattern.push_str(&folded);
        }
    }
    if pattern.is_empty() {
        pattern.push('/');
        shape.push('/');
    }
    let mut patterns = vec![pattern.clone()];
    if let Some((prefix, _)) = pattern.rsplit_once("/{*") {
        // `{*rest}` also matches an empty rest: `/p`, `/p/` (trimmed to `/p`), or `/` at the root.
        patterns.push(if prefix.is_empty() {
            "/".into()
        } else {
            prefix.to_string()
        });
    }
    Ok(Template {
        patterns,
        params,
        rest,
        shape,
    })
}

pub(super) fn compile_auth(
    spec: &AuthSpec,
    index: &HashMap<&str, usize>,
    p: &str,
) -> Result<RouteAuth, FieldError> {
    let lookup = |n: &str, at: String| {
        index
            .get(n)
            .copied()
            .ok_or_else(|| FieldError::new(at, format!("unknown authenticator `{n}`")))
    };
    match spec {
        AuthSpec::Word(w) if w == "anonymous" => Ok(RouteAuth::Anonymous),
        AuthSpec::Word(w) => Ok(RouteAuth::Alternatives(vec![vec![lookup(
            w,
            p.to_string(),
        )?]])),
        AuthSpec::Alternatives(items) if items.is_empty() => Err(FieldError::new(
            p,
            "auth needs at least one alternative (or `anonymous`)",
        )),
        AuthSpec::Alternatives(items) => {
            let mut alts = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{p}[{i}]");
                alts.push(match item {
                    AuthItem::One(n) => vec![lookup(n, at)?],
                    AuthItem::All(ns) if ns.is_empty() => {
                        return Err(FieldError::new(at, "empty all-of list"))
                    }
                    AuthItem::All(ns) => ns
                        .iter()
                        .map(|n| lookup(n, at.clone()))
                        .collect::<Result<_, _>>()?,
                });
            }
            Ok(RouteAuth::Alternatives(alts))
        }
    }
}
