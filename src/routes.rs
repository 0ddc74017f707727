//! The route table: path templates (matchit), methods, and what each route requires, compiled
//! once at load (`docs/config.md`, "Routes" and "Route matching"). Matching knows nothing of
//! authorization: [`RouteTable::find`] names a route (or says why none), and `crate::policy`
//! decides who may pass.
//!
//! Keys are the case-folded, trailing-`/`-trimmed paths of [`crate::path::CheckedPath::key`];
//! templates are folded the same way at load. The most specific template wins (static beats
//! `{param}` beats `{*rest}`); a request whose template matches but whose method the route does
//! not allow is `method_not_allowed`, never another route's. `HEAD` is allowed wherever `GET` is.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::Method;

use crate::auth::Authenticator;
use crate::config::{AuthItem, AuthSpec, FieldError, RouteConfig};
use crate::path::CheckedPath;

/// What a route requires.
#[derive(Debug, Clone)]
pub(crate) enum RouteAuth {
    /// Forwarded without identity (identity headers still stripped).
    Anonymous,
    /// Any one alternative; each is a list of authenticator indexes that must all pass.
    Alternatives(Vec<Vec<usize>>),
}

/// What a `bind` compares with a path parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindTarget {
    /// The authenticated user id.
    UserId,
    /// A captured claim, by name.
    Claim(String),
}

/// A compiled route.
pub(crate) struct Route {
    /// The configured name (also the metric label).
    pub(crate) name: Arc<str>,
    /// Its pre-resolved request counters.
    pub(crate) counters: Arc<crate::metrics::RouteCounters>,
    /// The path template as configured (for `keygate explain`).
    pub(crate) template: String,
    /// Allowed methods (`HEAD` added where `GET` is); `None` allows every method.
    methods: Option<Vec<Method>>,
    /// Who may pass.
    pub(crate) auth: RouteAuth,
    /// `bind`: (what, path parameter) pairs that must be equal.
    pub(crate) bind: Vec<(BindTarget, String)>,
    /// A 401 carries `WWW-Authenticate: Bearer` (some alternative reads a Bearer header).
    pub(crate) bearer: bool,
    /// `socketio: true`: websocket upgrades may be authenticated by Socket.IO CONNECT packets
    /// inside the stream, and every CONNECT on such a route is stamped with keygate's identity.
    pub(crate) socketio: bool,
    /// `enforce: observe`: a denial is recorded and the request forwarded without identity.
    pub(crate) observe: bool,
}

impl Route {
    /// Whether `method` may use this route.
    pub(crate) fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|ms| ms.contains(method))
    }
}

/// The outcome of a lookup.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The most specific template matched and its route allows the method.
    Matched(Match),
    /// The template matched but no route of it allows the method: 405 with this `Allow` value.
    MethodNotAllowed {
        /// Index into `RouteTable::routes` (for the metric label).
        route: usize,
        /// `Allow` header value, e.g. `GET, HEAD`.
        allow: String,
    },
    /// No template matches.
    NotFound,
}

/// The matched route and its decoded path parameters.
#[derive(Debug)]
pub(crate) struct Match {
    /// Index into `RouteTable::routes`.
    pub(crate) route: usize,
    /// Path parameters, percent-decoded and with their case, in template order.
    pub(crate) params: Vec<(String, String)>,
}

/// All routes, compiled.
pub(crate) struct RouteTable {
    router: matchit::Router<usize>,
    /// Routes sharing one template, told apart by method.
    groups: Vec<Vec<usize>>,
    /// The group of each route.
    group_of: Vec<usize>,
    /// Every route, in config order.
    pub(crate) routes: Vec<Route>,
}

impl RouteTable {
    /// Compiles `routes`, resolving authenticator names through `index`.
    pub(crate) fn compile(
        cfg: &[RouteConfig],
        index: &HashMap<&str, usize>,
        auths: &[Authenticator],
    ) -> Result<RouteTable, FieldError> {
        let mut table = RouteTable {
            router: matchit::Router::new(),
            groups: Vec::new(),
            group_of: Vec::with_capacity(cfg.len()),
            routes: Vec::with_capacity(cfg.len()),
        };
        let mut names = HashSet::new();
        let mut by_shape: HashMap<String, usize> = HashMap::new();
        for (i, rc) in cfg.iter().enumerate() {
            let p = format!("routes[{i}]");
            if rc.name.is_empty() || !names.insert(rc.name.0.clone()) {
                return Err(FieldError::new(
                    format!("{p}.name"),
                    "route names must be non-empty and unique",
                ));
            }
            let template =
                parse_template(&rc.path).map_err(|m| FieldError::new(format!("{p}.path"), m))?;
            let auth = compile_auth(&rc.auth, index, &format!("{p}.auth"))?;
            if rc.socketio && rc.enforce == crate::config::Enforce::Observe {
                return Err(FieldError::new(
                    format!("{p}.enforce"),
                    "observe is not available on a socketio route (a CONNECT is refused or forwarded, never observed)",
                ));
            }
            let route = Route {
                name: rc.name.0.as_str().into(),
                counters: Arc::new(crate::metrics::RouteCounters::new(&rc.name)),
                template: rc.path.0.clone(),
                methods: compile_methods(rc.methods.as_deref(), &p)?,
                bind: compile_bind(rc, &template, &auth, &p)?,
                bearer: check_sources(&auth, auths, &template, rc, &p)?,
                socketio: rc.socketio,
                observe: rc.enforce == crate::config::Enforce::Observe,
                auth,
            };
            table.insert(route, &template, &mut by_shape, &p, &rc.path)?;
        }
        Ok(table)
    }

    /// Adds `route` under its template's group; two routes of one template must not share a
    /// method, and templates matchit finds ambiguous are refused.
    fn insert(
        &mut self,
        route: Route,
        template: &Template,
        by_shape: &mut HashMap<String, usize>,
        p: &str,
        path: &str,
    ) -> Result<(), FieldError> {
        let group = match by_shape.get(&template.shape) {
            Some(&g) => g,
            None => {
                let g = self.groups.len();
                for pattern in &template.patterns {
                    self.router.insert(pattern.clone(), g).map_err(|e| {
                        FieldError::new(
                            format!("{p}.path"),
                            format!(
                                "overlaps another route (case and one trailing `/` are ignored, and a {{*rest}} also matches its bare prefix): {e}"
                            ),
                        )
                    })?;
                }
                by_shape.insert(template.shape.clone(), g);
                self.groups.push(Vec::new());
                g
            }
        };
        if let Some(&other) = self.groups[group]
            .iter()
            .find(|&&o| methods_overlap(&self.routes[o].methods, &route.methods))
        {
            return Err(FieldError::new(
                format!("{p}.path"),
                format!(
                    "overlaps route `{}`: both match {path} with a common method",
                    self.routes[other].name
                ),
            ));
        }
        self.groups[group].push(self.routes.len());
        self.group_of.push(group);
        self.routes.push(route);
        Ok(())
    }

    /// Looks up a checked path and method.
    pub(crate) fn find(&self, path: &CheckedPath<'_>, method: &Method) -> Lookup {
        let key = path.key();
        let Ok(m) = self.router.at(&key) else {
            return Lookup::NotFound;
        };
        let group = &self.groups[*m.value];
        let Some(&route) = group.iter().find(|&&r| self.routes[r].allows(method)) else {
            return Lookup::MethodNotAllowed {
                route: group[0],
                allow: self.allow(group),
            };
        };
        // Parameter values come from the unfolded path at the same byte offsets (ASCII
        // lowercasing keeps every byte where it was).
        let original = path.trimmed();
        let base = key.as_ptr() as usize;
        let params = m
            .params
            .iter()
            .map(|(k, v)| {
                let at = v.as_ptr() as usize - base;
                (k.to_string(), original[at..at + v.len()].to_string())
            })
            .collect();
        Lookup::Matched(Match { route, params })
    }

    /// The `Allow` value of the template `route` belongs to (every method its routes allow).
    pub(crate) fn allow_of(&self, route: usize) -> String {
        self.allow(&self.groups[self.group_of[route]])
    }

    fn allow(&self, group: &[usize]) -> String {
        let mut all: Vec<&str> = Vec::new();
        for &r in group {
            for m in self.routes[r].methods.iter().flatten() {
                if !all.contains(&m.as_str()) {
                    all.push(m.as_str());
                }
            }
        }
        all.join(", ")
    }
}

fn methods_overlap(a: &Option<Vec<Method>>, b: &Option<Vec<Method>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
        _ => true,
    }
}

/// `methods:` upper-cased; `HEAD` joins `GET` (RFC 9110 §9.3.2: HEAD is GET without a body).
fn compile_methods(
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

fn compile_bind(
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
fn check_sources(
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

struct Template {
    /// matchit patterns: one, or two for a trailing `{*rest}` (which also matches empty).
    patterns: Vec<String>,
    /// Parameter names in order.
    params: Vec<String>,
    /// The template with parameter names erased, to detect equal templates.
    shape: String,
}

/// Parses a template into case-folded matchit patterns (trailing `/` trimmed, as keys are).
fn parse_template(path: &str) -> Result<Template, String> {
    if !path.starts_with('/') {
        return Err("path must start with /".into());
    }
    let trimmed = match path.strip_suffix('/') {
        Some(t) if !t.is_empty() => t,
        _ => path,
    };
    let mut params = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::check;

    fn table(yaml: &str) -> RouteTable {
        let cfg: Vec<RouteConfig> = serde_yaml::from_str(yaml).unwrap();
        RouteTable::compile(&cfg, &HashMap::new(), &[]).unwrap()
    }

    fn name(t: &RouteTable, method: &str, p: &str) -> String {
        let path = check(p).unwrap();
        match t.find(&path, &Method::from_bytes(method.as_bytes()).unwrap()) {
            Lookup::Matched(m) => t.routes[m.route].name.to_string(),
            Lookup::MethodNotAllowed { allow, .. } => format!("405 {allow}"),
            Lookup::NotFound => "none".into(),
        }
    }

    #[test]
    fn specific_wins_case_and_trailing_slash_fold() {
        let t = table(
            "- {name: sio, path: '/s/{*rest}', auth: anonymous}\n- {name: u, path: '/u/{id}', auth: anonymous}\n- {name: me, path: '/U/Me/', auth: anonymous}\n- {name: root, path: '/', auth: anonymous}\n",
        );
        for (p, want) in [
            ("/s/", "sio"),
            ("/s", "sio"),
            ("/S/x/y", "sio"),
            ("/u/me", "me"),
            ("/u/ME/", "me"),
            ("/u/42", "u"),
            ("/u/42/", "u"),
            ("/", "root"),
            ("/u", "none"),
        ] {
            assert_eq!(name(&t, "GET", p), want, "{p}");
        }
        let path = check("/U/AbC/").unwrap();
        let Lookup::Matched(m) = t.find(&path, &Method::GET) else {
            panic!()
        };
        assert_eq!(
            m.params,
            vec![("id".to_string(), "AbC".to_string())],
            "case kept"
        );
    }

    #[test]
    fn wrong_method_is_405_never_another_route() {
        let t = table(
            "- {name: get, path: '/a/{x}', methods: [GET], auth: anonymous}\n- {name: post, path: '/a/{y}', methods: [post], auth: anonymous}\n- {name: any, path: '/{*rest}', auth: anonymous}\n",
        );
        assert_eq!(name(&t, "GET", "/a/1"), "get");
        assert_eq!(name(&t, "HEAD", "/A/1"), "get", "HEAD is GET");
        assert_eq!(name(&t, "POST", "/a/1"), "post");
        assert_eq!(name(&t, "DELETE", "/a/1"), "405 GET, HEAD, POST");
        assert_eq!(
            name(&t, "get", "/a/1"),
            "405 GET, HEAD, POST",
            "methods are case-sensitive"
        );
        assert_eq!(name(&t, "DELETE", "/b"), "any");
    }

    #[test]
    fn overlapping_routes_are_refused() {
        let refused = |yaml: &str| {
            let cfg: Vec<RouteConfig> = serde_yaml::from_str(yaml).unwrap();
            RouteTable::compile(&cfg, &HashMap::new(), &[])
                .err()
                .unwrap()
        };
        let e = refused(
            "- {name: a, path: '/u/{id}', auth: anonymous}\n- {name: b, path: '/u/{other}', methods: [GET], auth: anonymous}\n",
        );
        assert_eq!(e.path, "routes[1].path");
        assert!(e.message.contains("overlaps route `a`"), "{}", e.message);
        // Case and a trailing slash do not make two templates different.
        let e = refused(
            "- {name: a, path: '/Admin', auth: anonymous}\n- {name: b, path: '/admin/', auth: anonymous}\n",
        );
        assert!(e.message.contains("overlaps"), "{}", e.message);
        let e = refused(
            "- {name: a, path: '/v1/events', auth: anonymous}\n- {name: b, path: '/v1/events/{*rest}', auth: anonymous}\n",
        );
        assert!(e.message.contains("overlaps"), "{}", e.message);
        table(
            "- {name: a, path: '/u/{id}', methods: [POST], auth: anonymous}\n- {name: b, path: '/u/{other}', methods: [GET], auth: anonymous}\n",
        );
    }
}
