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
use crate::config::{FieldError, RouteConfig};
use crate::path::CheckedPath;

mod compile;
use compile::{
    check_sources, compile_auth, compile_bind, compile_body, compile_methods, methods_overlap,
    parse_template, Template,
};

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
    /// The name of the template's trailing `{*name}`, if any.
    pub(crate) rest: Option<String>,
    /// `quota`: checked after authentication by `crate::shared` (one counter per request).
    pub(crate) quota: Option<crate::shared::Quota>,
    /// `allow_if`, compiled.
    pub(crate) condition: Option<crate::condition::Condition>,
    /// `bind_json`: pointers whose every value must be the user id.
    pub(crate) bind_json: Vec<crate::json_body::Pointer>,
    /// keygate reads this route's request body (`bind_json`, or a `json_body` source of one of
    /// its authenticators); other routes' bodies stream through untouched.
    pub(crate) reads_body: bool,
}

impl Route {
    /// Whether `method` may use this route.
    pub(crate) fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|ms| ms.contains(method))
    }

    /// Whether some method may not use this route (a method override could matter).
    pub(crate) fn restricts_methods(&self) -> bool {
        self.methods.is_some()
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
    /// Some route reads request bodies (`Route::reads_body`): only then does the proxy look
    /// the route up before deciding.
    pub(crate) reads_bodies: bool,
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
            reads_bodies: false,
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
            let (condition, bind_json, reads_body) = compile_body(rc, &auth, auths, &p)?;
            let route = Route {
                name: rc.name.0.as_str().into(),
                counters: Arc::new(crate::metrics::RouteCounters::new(&rc.name)),
                template: rc.path.0.clone(),
                methods: compile_methods(rc.methods.as_deref(), &p)?,
                bind: compile_bind(rc, &template, &auth, &p)?,
                bearer: check_sources(&auth, auths, &template, rc, &p)?,
                socketio: rc.socketio,
                observe: rc.enforce == crate::config::Enforce::Observe,
                rest: template.rest.clone(),
                quota: rc
                    .quota
                    .as_ref()
                    .map(|q| crate::shared::Quota::compile(q, &rc.name, &format!("{p}.quota")))
                    .transpose()?,
                condition,
                bind_json,
                reads_body,
                auth,
            };
            table.reads_bodies |= route.reads_body;
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

#[cfg(test)]
mod tests;
