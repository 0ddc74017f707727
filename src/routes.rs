//! The route table: path templates (matchit), methods, `auth` alternatives and `bind`.
//! Spec: "Routes" in `../shared/spec/config-v1.md`.
//!
//! Paths are checked before matching: dot-segments, encoded `/` `\` or NUL, literal `\` or `;`,
//! control characters and invalid UTF-8 are refused (`malformed_path`): keygate never guesses
//! how the backend would normalise them. Matching runs on the percent-decoded path, so
//! parameters are compared decoded; the request is forwarded with its original bytes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::Method;
use percent_encoding::percent_decode_str;

use crate::auth::{Authenticator, Identity, RequestParts, Verdict};
use crate::config::{AuthItem, AuthSpec, FieldError, Mode, RouteConfig};
use crate::reason::Reason;

/// What a route requires.
#[derive(Debug, Clone)]
pub enum RouteAuth {
    /// Forwarded without identity (identity headers still stripped).
    Anonymous,
    /// Any one alternative; each is a list of authenticator indexes that must all pass.
    Alternatives(Vec<Vec<usize>>),
}

/// What a `bind` compares with a path parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindTarget {
    /// The authenticated user id.
    UserId,
    /// A captured claim, by name.
    Claim(String),
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// The configured name (also the metric label).
    pub name: Arc<str>,
    methods: Option<Vec<Method>>,
    /// Who may pass.
    pub auth: RouteAuth,
    bind: Vec<(BindTarget, String)>,
    /// A 401 carries `WWW-Authenticate: Bearer` (some alternative reads a Bearer header).
    pub bearer: bool,
    /// Some alternative reads a Socket.IO CONNECT packet (`socketio_auth` source): websocket
    /// upgrades without another valid credential are authenticated inside the stream.
    pub socketio: bool,
}

/// The matched route and its decoded path parameters.
#[derive(Debug)]
pub struct Match {
    /// Index into `RouteTable::routes`.
    pub route: usize,
    /// Path parameters, percent-decoded, in template order.
    pub params: Vec<(String, String)>,
}

/// All routes, compiled.
pub struct RouteTable {
    router: matchit::Router<usize>,
    /// Routes sharing one template, told apart by method.
    groups: Vec<Vec<usize>>,
    /// Every route, in config order.
    pub routes: Vec<Route>,
}

/// Checks a raw request path and returns it percent-decoded.
pub fn check_path(raw: &str) -> Result<Cow<'_, str>, Reason> {
    if !raw.starts_with('/') || raw.contains(['\\', ';']) {
        return Err(Reason::MalformedPath);
    }
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b'/' | b'\\' | 0) | None => return Err(Reason::MalformedPath),
                Some(_) => i += 3,
            }
        } else {
            i += 1;
        }
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Reason::MalformedPath)?;
    if decoded.bytes().any(|c| c < 0x20 || c == 0x7f)
        || decoded.split('/').any(|s| s == "." || s == "..")
    {
        return Err(Reason::MalformedPath);
    }
    Ok(decoded)
}

impl RouteTable {
    /// Compiles `routes`, resolving authenticator names through `index`.
    pub fn compile(
        cfg: &[RouteConfig],
        index: &HashMap<&str, usize>,
        auths: &[Arc<dyn Authenticator>],
    ) -> Result<RouteTable, FieldError> {
        let mut router = matchit::Router::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_shape: HashMap<String, usize> = HashMap::new();
        let mut routes = Vec::with_capacity(cfg.len());
        let mut names = std::collections::HashSet::new();
        for (ri, rc) in cfg.iter().enumerate() {
            let p = format!("routes[{ri}]");
            if rc.name.is_empty() || !names.insert(rc.name.0.clone()) {
                return Err(FieldError::new(
                    format!("{p}.name"),
                    "route names must be non-empty and unique",
                ));
            }
            let template =
                parse_template(&rc.path).map_err(|m| FieldError::new(format!("{p}.path"), m))?;
            let methods = match &rc.methods {
                None => None,
                Some(ms) => Some(
                    ms.iter()
                        .map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| FieldError::new(format!("{p}.methods"), "invalid method"))?,
                ),
            };
            let auth = compile_auth(&rc.auth, index, &format!("{p}.auth"))?;
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
            let (mut bearer, mut socketio) = (false, false);
            if let RouteAuth::Alternatives(alts) = &auth {
                for &a in alts.iter().flatten() {
                    bearer |= auths[a].uses_bearer();
                    socketio |= auths[a].uses_socketio();
                    for pp in auths[a].path_params() {
                        if !template.params.contains(&pp) {
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
            }
            let route = Route {
                name: rc.name.0.as_str().into(),
                methods,
                auth,
                bind,
                bearer,
                socketio,
            };
            // Group by template shape; two routes of one shape must not share a method.
            let gi = match by_shape.get(&template.shape) {
                Some(&gi) => gi,
                None => {
                    let gi = groups.len();
                    for pattern in &template.patterns {
                        router.insert(pattern.clone(), gi).map_err(|e| {
                            FieldError::new(
                                format!("{p}.path"),
                                format!("overlaps another route: {e}"),
                            )
                        })?;
                    }
                    by_shape.insert(template.shape.clone(), gi);
                    groups.push(Vec::new());
                    gi
                }
            };
            for &other in &groups[gi] {
                let o: &Route = &routes[other];
                if methods_overlap(&o.methods, &route.methods) {
                    return Err(FieldError::new(
                        format!("{p}.path"),
                        format!(
                            "overlaps route `{}`: both match {} with a common method",
                            o.name, rc.path.0
                        ),
                    ));
                }
            }
            groups[gi].push(ri);
            routes.push(route);
        }
        Ok(RouteTable {
            router,
            groups,
            routes,
        })
    }

    /// The most specific route matching a decoded path and method (static beats `{param}`
    /// beats `{*rest}`); `None` if the path matches nothing or its template has no route for
    /// this method.
    pub fn find(&self, path: &str, method: &Method) -> Option<Match> {
        let m = self.router.at(path).ok()?;
        let route = *self.groups[*m.value].iter().find(|&&r| {
            self.routes[r]
                .methods
                .as_ref()
                .is_none_or(|ms| ms.contains(method))
        })?;
        let params = m
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(Match { route, params })
    }
}

fn methods_overlap(a: &Option<Vec<Method>>, b: &Option<Vec<Method>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
        _ => true,
    }
}

struct Template {
    /// matchit patterns: one, or two for a trailing `{*rest}` (which also matches empty).
    patterns: Vec<String>,
    /// Parameter names in order.
    params: Vec<String>,
    /// The template with parameter names erased, to detect equal templates.
    shape: String,
}

fn parse_template(path: &str) -> Result<Template, String> {
    if !path.starts_with('/') {
        return Err("path must start with /".into());
    }
    let mut params = Vec::new();
    let mut shape = String::new();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segs.iter().enumerate() {
        shape.push('/');
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
            shape.push_str(if catch_all { "{*}" } else { "{}" });
        } else if seg.contains(['{', '}']) {
            return Err(format!(
                "segment `{seg}`: a parameter must be a whole segment"
            ));
        } else if check_path(&format!("/{seg}")).is_err() || seg.contains('%') {
            return Err(format!("segment `{seg}` is not a plain path segment"));
        } else {
            shape.push_str(seg);
        }
    }
    let mut patterns = vec![path.to_string()];
    if let Some(prefix) = path.rsplit_once("/{*").map(|(p, _)| p) {
        patterns.push(format!("{prefix}/")); // `{*rest}` also matches an empty rest
    }
    Ok(Template {
        patterns,
        params,
        shape,
    })
}

fn compile_auth(
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

/// Runs a route's alternatives in order; the first that passes (and satisfies `bind`) wins.
/// Returns `Ok(None)` for anonymous routes. When all fail, the most specific reason is
/// returned (see `Reason::rank`).
pub async fn authorize(
    route: &Route,
    auths: &[Arc<dyn Authenticator>],
    mode: Mode,
    req: &RequestParts<'_>,
    timings: Option<&prometheus::HistogramVec>,
) -> Result<Option<Identity>, Reason> {
    let alts = match &route.auth {
        RouteAuth::Anonymous => return Ok(None),
        RouteAuth::Alternatives(a) => a,
    };
    let mut worst: Option<Reason> = None;
    for alt in alts {
        let outcome = match all_of(alt, auths, mode, req, timings).await {
            Ok(id) => id
                .check_forwardable()
                .and_then(|()| route.check_bind(&id, req).map(|()| id)),
            Err(r) => Err(r),
        };
        match outcome {
            Ok(id) => return Ok(Some(id)),
            Err(r) if worst.is_none_or(|w| r.rank() > w.rank()) => worst = Some(r),
            Err(_) => {}
        }
    }
    Err(worst.unwrap_or(Reason::MissingCredentials))
}

/// One all-of alternative. In development mode, if a `public_key` member passes, members whose
/// credential is absent are skipped (present credentials are still verified).
async fn all_of(
    alt: &[usize],
    auths: &[Arc<dyn Authenticator>],
    mode: Mode,
    req: &RequestParts<'_>,
    timings: Option<&prometheus::HistogramVec>,
) -> Result<Identity, Reason> {
    let mut passed: Vec<Identity> = Vec::with_capacity(alt.len());
    let mut absent = false;
    let mut public_key_passed = false;
    for &i in alt {
        let started = std::time::Instant::now();
        let verdict = auths[i].verify(req).await;
        if let Some(t) = timings {
            t.with_label_values(&[auths[i].name()])
                .observe(started.elapsed().as_secs_f64());
        }
        match verdict {
            Verdict::Fail(r) => return Err(r),
            Verdict::Absent => absent = true,
            Verdict::Pass(id) => {
                public_key_passed |= auths[i].kind() == "public_key";
                passed.push(id);
            }
        }
    }
    if absent && !(mode == Mode::Development && public_key_passed) {
        return Err(Reason::MissingCredentials);
    }
    let mut it = passed.into_iter();
    let first = it.next().ok_or(Reason::MissingCredentials)?;
    it.try_fold(first, Identity::merge)
}

impl Route {
    fn check_bind(&self, id: &Identity, req: &RequestParts<'_>) -> Result<(), Reason> {
        for (target, param) in &self.bind {
            let want = req.param(param).ok_or(Reason::IdentityMismatch)?;
            let have = match target {
                BindTarget::UserId => id.user_id.as_deref(),
                BindTarget::Claim(c) => id.claim(c),
            };
            if have != Some(want) {
                return Err(Reason::IdentityMismatch);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_checks() {
        assert_eq!(check_path("/a/b%20c").unwrap(), "/a/b c");
        for bad in [
            "/a/../b",
            "/a/%2e%2E/b",
            "/a/.",
            "/a%2Fb",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/a;b",
            "/a%00",
            "/a%0d%0a",
            "a",
            "/%ff",
            "/a%zz",
        ] {
            assert_eq!(check_path(bad), Err(Reason::MalformedPath), "{bad}");
        }
        assert!(check_path("/a//b/").is_ok());
    }

    #[test]
    fn catch_all_matches_empty_rest_and_specific_wins() {
        let cfg: Vec<RouteConfig> = serde_yaml::from_str(
            "- {name: sio, path: '/s/{*rest}', auth: anonymous}\n- {name: u, path: '/u/{id}', auth: anonymous}\n- {name: me, path: '/u/me', auth: anonymous}\n",
        )
        .unwrap();
        let t = RouteTable::compile(&cfg, &HashMap::new(), &[]).unwrap();
        let name = |p: &str| {
            t.find(p, &Method::GET)
                .map(|m| t.routes[m.route].name.to_string())
        };
        assert_eq!(name("/s/").as_deref(), Some("sio"));
        assert_eq!(name("/s/x/y").as_deref(), Some("sio"));
        assert_eq!(name("/s"), None);
        assert_eq!(name("/u/me").as_deref(), Some("me"));
        assert_eq!(name("/u/42").as_deref(), Some("u"));
        assert_eq!(name("/u/42/"), None);
        assert_eq!(name("/u//"), None);
    }

    #[test]
    fn overlapping_routes_are_refused() {
        let cfg: Vec<RouteConfig> = serde_yaml::from_str(
            "- {name: a, path: '/u/{id}', auth: anonymous}\n- {name: b, path: '/u/{other}', methods: [GET], auth: anonymous}\n",
        )
        .unwrap();
        let e = RouteTable::compile(&cfg, &HashMap::new(), &[])
            .err()
            .unwrap();
        assert_eq!(e.path, "routes[1].path");
        assert!(e.message.contains("overlaps route `a`"), "{}", e.message);
        let ok: Vec<RouteConfig> = serde_yaml::from_str(
            "- {name: a, path: '/u/{id}', methods: [POST], auth: anonymous}\n- {name: b, path: '/u/{other}', methods: [GET], auth: anonymous}\n",
        )
        .unwrap();
        assert!(RouteTable::compile(&ok, &HashMap::new(), &[]).is_ok());
    }
}
