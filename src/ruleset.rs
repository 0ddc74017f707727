//! The compile step: a loaded [`Config`] becomes the restart-only `ServerSettings` and an
//! immutable [`Ruleset`] (decoded keys, route table, header names, digests, durations), so the
//! request path parses nothing that could be precomputed. A `Ruleset` is swapped whole
//! (arc-swap) on reload.
//!
//! Compiling has no effect on the process: it reads the files the config names (keys, secrets,
//! CA certificates) and nothing else; it registers no metric series, builds no HTTP client and
//! spawns nothing, so a config that fails half-way, or is only checked, leaves no trace.
//! `Ruleset::activate` (`ruleset/activate.rs`) then puts a compiled ruleset to work.

mod activate;
mod limits;

pub(crate) use limits::Limits;

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
    /// `keygate_auth_duration_seconds` of each authenticator, in the same order (resolved by
    /// activation).
    pub(crate) auth_timers: crate::metrics::AuthTimers,
    /// The compiled routes.
    pub(crate) routes: RouteTable,
    /// What happens to requests no route matches.
    pub(crate) unmatched: Unmatched,
    /// `limits.max_token_bytes` (also in `limits`).
    pub(crate) max_token_bytes: usize,
    /// `identity.socketio_key`: where the identity goes in a Socket.IO CONNECT auth object.
    pub(crate) socketio_key: String,
    /// `limits.socketio_connect_timeout_seconds` (also in `limits`).
    pub(crate) socketio_connect_timeout: Duration,
    /// `cors`: keygate answers preflights itself when set.
    pub(crate) cors: Option<crate::cors::Cors>,
    /// `cors_preflight` (without `cors`).
    pub(crate) cors_preflight: crate::config::CorsPreflight,
    /// `trusted_proxies`.
    pub(crate) trusted_proxies: crate::forwarding::TrustedProxies,
    /// `limits`.
    pub(crate) limits: Limits,
    /// `throttle`, when set.
    pub(crate) throttle: Option<crate::throttle::ThrottlePolicy>,
    /// `access_log` and `access_log_sample_ratio`.
    pub(crate) access_log: crate::access_log::Policy,
    /// `forward_auth.front`: whose headers describe the original request on the forward-auth
    /// listener.
    pub(crate) forward_auth_front: Option<crate::config::Front>,
    /// `sessions`.
    pub(crate) sessions: SessionRules,
}

/// `sessions`, compiled (`docs/config.md`, "Sessions and revocation").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionRules {
    /// `end_at_expiry`: close a session when its credential expires.
    pub(crate) end_at_expiry: bool,
    /// `recheck_seconds`: how often open sessions are re-authorized.
    pub(crate) recheck: Duration,
    /// `max_lifetime_seconds` (`None` for 0): the cap on any upgraded connection.
    pub(crate) max_lifetime: Option<Duration>,
}

impl SessionRules {
    fn compile(cfg: &config::SessionsConfig) -> Result<SessionRules, FieldError> {
        if cfg.recheck_seconds == 0 {
            return Err(FieldError::new(
                "sessions.recheck_seconds",
                "must be at least 1",
            ));
        }
        Ok(SessionRules {
            end_at_expiry: cfg.end_at_expiry,
            recheck: Duration::from_secs(cfg.recheck_seconds),
            max_lifetime: (cfg.max_lifetime_seconds > 0)
                .then(|| Duration::from_secs(cfg.max_lifetime_seconds)),
        })
    }
}

/// A compiled config: what needs a restart, the rules, and what they were compiled from.
pub struct Loaded {
    /// Restart-only settings.
    pub(crate) settings: ServerSettings,
    /// The reloadable rules (not yet activated).
    pub rules: Ruleset,
    /// SHA-256 of the text the config was read from (a reload compares the file with it).
    pub(crate) source_digest: [u8; 32],
    /// The entries of `revocations.file` (empty without one).
    pub revocations: Vec<crate::revocation::Revocation>,
    /// The files the config names (keys, secrets, CA and TLS files), watched for reloads.
    pub(crate) files: Vec<std::path::PathBuf>,
}

/// Loads, parses and compiles `path`, with no effect on the process (see the module docs).
/// Errors carry `file:line` and the field path.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let (mut cfg, text) = config::load_file(path)?;
    let files = config::referenced_files(&mut cfg);
    let loaded = compiled(&cfg, &text, &path.display().to_string())?;
    Ok(Loaded { files, ..loaded })
}

/// Parses and compiles YAML text (`name` is used in errors); as [`load`], without a file. Needs
/// no runtime: in-process tests build a `Ruleset` with it.
pub fn load_str(text: &str, name: &str) -> Result<Loaded, ConfigError> {
    let cfg = config::parse_str(text, name)?;
    compiled(&cfg, text, name)
}

fn compiled(cfg: &Config, text: &str, file: &str) -> Result<Loaded, ConfigError> {
    let locate = |e| config::locate_error(text, file, e);
    let settings = ServerSettings::from_config(cfg).map_err(locate)?;
    let rules = compile(cfg).map_err(locate)?;
    let revocations = match &settings.revocations_file {
        Some(f) => crate::revocation_file::load(f)
            .map_err(|m| locate(FieldError::new("revocations.file", m)))?,
        None => Vec::new(),
    };
    Ok(Loaded {
        settings,
        rules,
        source_digest: crate::secret::sha256(text.as_bytes()),
        revocations,
        files: Vec::new(),
    })
}

/// Compiles the rules of a parsed config: checks every field and converts it to its typed form
/// (durations as `Duration`, keys decoded, routes indexed). Reads the key, secret and CA files
/// the config names; registers no metric series, builds no client, spawns nothing.
pub fn compile(cfg: &Config) -> Result<Ruleset, FieldError> {
    match cfg.version {
        Some(1) => {}
        None => return Err(FieldError::new("version", "required (`version: 1`)")),
        Some(_) => return Err(FieldError::new("version", "only version 1 is supported")),
    }
    let identity = IdentityHeaders::compile(&cfg.identity)?;
    // Claims captured from tokens: mapped identity headers, route binds and quotas `by: claim:`.
    let mut forward: Vec<Arc<str>> = identity.claim_names().map(Arc::from).collect();
    for r in &cfg.routes {
        let quota = r.quota.as_ref().and_then(|q| q.by.strip_prefix("claim:"));
        let binds = r.bind.keys().filter_map(|k| k.strip_prefix("claims."));
        for c in binds.chain(quota).filter(|c| !c.is_empty()) {
            if !forward.iter().any(|f| &**f == c) {
                forward.push(c.into());
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
        auth_timers: crate::metrics::AuthTimers::new(
            authenticators.iter().map(|a| Arc::from(a.name())),
        ),
        authenticators,
        routes,
        unmatched: cfg.unmatched,
        max_token_bytes: cfg.limits.max_token_bytes,
        cors: cfg
            .cors
            .as_ref()
            .map(crate::cors::Cors::compile)
            .transpose()?,
        cors_preflight: cfg.cors_preflight,
        trusted_proxies: crate::forwarding::TrustedProxies::compile(&cfg.trusted_proxies)?,
        limits: Limits::compile(&cfg.limits),
        throttle: cfg
            .throttle
            .as_ref()
            .map(crate::throttle::ThrottlePolicy::compile),
        access_log: crate::access_log::Policy {
            enabled: cfg.access_log,
            sample_ratio: cfg.access_log_sample_ratio,
        },
        forward_auth_front: cfg.forward_auth.as_ref().map(|f| f.front),
        sessions: SessionRules::compile(&cfg.sessions)?,
        socketio_key: cfg.identity.socketio_key.0.clone(),
        socketio_connect_timeout: Limits::compile(&cfg.limits).socketio_connect_timeout,
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
