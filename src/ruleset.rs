//! The compile step: a loaded [`Config`] becomes the restart-only `ServerSettings` and an
//! immutable [`Ruleset`] (decoded keys, route table, header names, digests), so the request path
//! parses nothing that could be precomputed. A `Ruleset` is swapped whole (arc-swap) on reload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{self, Authenticator};
use crate::config::{self, Config, ConfigError, FieldError, Mode, Unmatched};
use crate::identity::IdentityHeaders;
use crate::routes::RouteTable;
use crate::settings::ServerSettings;
use crate::upstream::Upstream;

/// The most `limits.max_inspected_body_bytes` may be: a body keygate reads is forwarded from
/// pingora's retry buffer, whose capacity is 64 KiB (pingora-core `BODY_BUF_LIMIT`).
pub const MAX_INSPECTED_BODY_BYTES: usize = 64 * 1024;

/// The reloadable part of the compiled config: everything a request is decided by.
pub struct Ruleset {
    /// `production` or `development`.
    pub mode: Mode,
    /// The backend (resolved by its own background task).
    pub(crate) upstream: Arc<Upstream>,
    /// What is stripped and set on every request.
    pub(crate) identity: IdentityHeaders,
    /// Every authenticator, in config order (routes refer to them by index).
    pub(crate) authenticators: Vec<Authenticator>,
    /// `keygate_auth_duration_seconds` of each authenticator, in the same order.
    pub(crate) auth_timers: Vec<prometheus::Histogram>,
    /// The compiled routes.
    pub(crate) routes: RouteTable,
    /// What happens to requests no route matches.
    pub(crate) unmatched: Unmatched,
    /// `limits.max_token_bytes`.
    pub(crate) max_token_bytes: usize,
    /// `identity.socketio_key`: where the identity goes in a Socket.IO CONNECT auth object.
    pub(crate) socketio_key: String,
    /// `limits.socketio_connect_timeout_seconds`.
    pub(crate) socketio_connect_timeout: Duration,
    /// SHA-256 of the file text this config was loaded from (reload compares against it).
    pub(crate) source_digest: [u8; 32],
    /// `cors`: keygate answers preflights itself when set.
    pub(crate) cors: Option<crate::cors::Cors>,
    /// `cors_preflight` (without `cors`).
    pub(crate) cors_preflight: crate::config::CorsPreflight,
    /// `trusted_proxies`.
    pub(crate) trusted_proxies: crate::forwarding::TrustedProxies,
    /// `limits`.
    pub(crate) limits: crate::config::LimitsConfig,
    /// `throttle`, when set.
    pub(crate) throttle: Option<crate::config::ThrottleConfig>,
    /// `access_log` and `access_log_sample_ratio`.
    pub(crate) access_log: crate::access_log::Policy,
}

/// A compiled config: what needs a restart, and the rules.
pub struct Loaded {
    /// Restart-only settings.
    pub(crate) settings: ServerSettings,
    /// The reloadable rules.
    pub rules: Ruleset,
}

/// Loads, parses and compiles `path`. Errors carry `file:line` and the field path.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let (cfg, text) = config::load_file(path)?;
    compiled(&cfg, &text, &path.display().to_string())
}

/// Parses and compiles YAML text (`name` is used in errors).
pub fn load_str(text: &str, name: &str) -> Result<Loaded, ConfigError> {
    let cfg = config::parse_str(text, name)?;
    compiled(&cfg, text, name)
}

fn compiled(cfg: &Config, text: &str, file: &str) -> Result<Loaded, ConfigError> {
    let locate = |e| config::locate_error(text, file, e);
    let settings = ServerSettings::from_config(cfg).map_err(locate)?;
    let mut rules = compile(cfg).map_err(locate)?;
    rules.source_digest = crate::secret::sha256(text.as_bytes());
    Ok(Loaded { settings, rules })
}

/// Compiles the rules of a parsed config.
pub fn compile(cfg: &Config) -> Result<Ruleset, FieldError> {
    match cfg.version {
        Some(1) => {}
        None => return Err(FieldError::new("version", "required (`version: 1`)")),
        Some(_) => return Err(FieldError::new("version", "only version 1 is supported")),
    }
    let identity = IdentityHeaders::compile(&cfg.identity)?;
    // Claims captured from tokens: mapped identity headers and route binds.
    let mut forward: Vec<Arc<str>> = identity.claim_names().map(Arc::from).collect();
    for r in &cfg.routes {
        for k in r.bind.keys() {
            if let Some(c) = k.strip_prefix("claims.") {
                if !forward.iter().any(|f| &**f == c) {
                    forward.push(c.into());
                }
            }
        }
    }
    let cache =
        (cfg.token_cache.max_entries > 0 && cfg.token_cache.max_ttl_seconds > 0).then(|| {
            Arc::new(auth::jwt::cache::TokenCache::new(
                cfg.token_cache.max_entries,
                cfg.token_cache.max_ttl_seconds,
            ))
        });
    // issue 19: identities keep every verified claim only when some `allow_if` reads them.
    let full_claims = cfg.routes.iter().any(|r| {
        r.allow_if.as_deref().is_some_and(|e| {
            crate::condition::Condition::compile(e).is_ok_and(|c| c.needs_claims())
        })
    });
    let max_body = cfg.limits.max_inspected_body_bytes;
    if max_body == 0 || max_body > MAX_INSPECTED_BODY_BYTES {
        return Err(FieldError::new(
            "limits.max_inspected_body_bytes",
            format!("must be 1 to {MAX_INSPECTED_BODY_BYTES} (keygate holds a read body in pingora's 64 KiB retry buffer to forward it)"),
        ));
    }
    let shared = auth::Shared {
        mode: cfg.mode,
        forward: forward.into(),
        full_claims,
        cache,
    };
    let mut authenticators = Vec::with_capacity(cfg.authenticators.len());
    let mut index = HashMap::new();
    for (name, a) in &cfg.authenticators {
        let p = format!("authenticators.{name}");
        if name == "anonymous" {
            return Err(FieldError::new(p, "`anonymous` is reserved"));
        }
        index.insert(name.as_str(), authenticators.len());
        authenticators.push(Authenticator::compile(name, a, &shared, &p)?);
    }
    let routes = RouteTable::compile(&cfg.routes, &index, &authenticators)?;
    if !(0.0..=1.0).contains(&cfg.access_log_sample_ratio) {
        return Err(FieldError::new(
            "access_log_sample_ratio",
            "must be between 0.0 and 1.0",
        ));
    }
    Ok(Ruleset {
        mode: cfg.mode,
        upstream: Arc::new(Upstream::compile(&cfg.upstream)?),
        identity,
        auth_timers: authenticators
            .iter()
            .map(|a| crate::metrics::auth_timer(a.name()))
            .collect(),
        authenticators,
        routes,
        unmatched: cfg.unmatched,
        max_token_bytes: cfg.limits.max_token_bytes,
        source_digest: [0; 32],
        cors: cfg
            .cors
            .as_ref()
            .map(crate::cors::Cors::compile)
            .transpose()?,
        cors_preflight: cfg.cors_preflight,
        trusted_proxies: crate::forwarding::TrustedProxies::compile(&cfg.trusted_proxies)?,
        limits: cfg.limits.clone(),
        throttle: cfg.throttle.clone(),
        access_log: crate::access_log::Policy {
            enabled: cfg.access_log,
            sample_ratio: cfg.access_log_sample_ratio,
        },
        socketio_key: cfg.identity.socketio_key.0.clone(),
        socketio_connect_timeout: Duration::from_secs(
            cfg.limits.socketio_connect_timeout_seconds.max(1),
        ),
    })
}

impl Ruleset {
    /// The authenticator named `name` (benchmarks and tools drive one directly).
    pub fn authenticator(&self, name: &str) -> Option<&Authenticator> {
        self.authenticators.iter().find(|a| a.name() == name)
    }

    /// Signs the identity assertion of `id` on route `route` as a request would
    /// (`identity.assertion`); `Ok(None)` without one (benchmarks and tools).
    pub fn sign_assertion(
        &self,
        id: &auth::Identity,
        route: &str,
    ) -> Result<Option<String>, String> {
        self.identity.assertion(id, route)
    }

    /// Evaluates the `allow_if` of route `route` for `id` on `req` as a request would; `None`
    /// when the route has none (benchmarks and tools).
    pub fn evaluate_condition(
        &self,
        route: &str,
        id: &auth::Identity,
        req: &auth::RequestParts<'_>,
    ) -> Option<Result<bool, String>> {
        let r = self.routes.routes.iter().find(|r| &*r.name == route)?;
        r.condition.as_ref().map(|c| c.evaluate(id, req))
    }

    /// One line for `keygate check`: mode, authenticators, routes, upstream.
    pub fn summary(&self) -> String {
        format!(
            "{:?} mode, {} authenticators, {} routes, upstream {}",
            self.mode,
            self.authenticators.len(),
            self.routes.routes.len(),
            self.upstream.url
        )
    }

    /// Authenticators whose keys are not available (`/readyz`).
    pub fn not_ready(&self) -> Vec<&str> {
        self.authenticators
            .iter()
            .filter(|a| !a.ready())
            .map(|a| a.name())
            .collect()
    }

    /// Config problems that do not stop loading (printed by `keygate check`, logged on load).
    pub fn warnings(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .authenticators
            .iter()
            .flat_map(|a| a.warnings())
            .collect();
        if self.mode == Mode::Development {
            w.push("development mode: a public key alone authenticates any claimed user".into());
        }
        w
    }

    /// The JWK-set providers whose fetch loops must run.
    pub fn providers(&self) -> Vec<Arc<auth::jwks::JwksProvider>> {
        self.authenticators
            .iter()
            .filter_map(|a| a.provider().cloned())
            .collect()
    }
}
