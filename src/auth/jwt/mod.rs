//! `type: jwt`: JSON Web Tokens (RFC 7519) verified with jsonwebtoken 11 (aws-lc-rs backend).
//!
//! Keys come from the config (`static_keys`) or from a JWK-set provider ([`super::jwks`]),
//! both behind [`KeySource`]; a token's `kid` (RFC 7515 §4.1.4) selects them, and a token without
//! one is tried against every key whose type fits its `alg`, in order. Verification itself is
//! pure ([`verify`]); successful ones are remembered in the shared verified-token [`cache`].

pub mod cache;
pub mod keys;
mod static_keys;
pub mod verify;

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation};

use super::jwks::{Endpoint, JwksProvider, JwksTiming};
use super::{Attempt, Extracted, Identity, RequestParts, Sources};
use crate::config::{FieldError, JwtConfig};
use crate::reason::Reason;
use cache::TokenCache;
use keys::KeySet;
use verify::Rules;

/// Claims jsonwebtoken checks itself when listed in `required_spec_claims`.
const SPEC_CLAIMS: [&str; 5] = ["exp", "nbf", "sub", "iss", "aud"];

/// Longest `kid` looked up: longer ones are `unknown_key` at once, so a flood of random kids
/// cannot make the unknown-kid memory hold large strings.
const MAX_KID_BYTES: usize = 256;

/// Where an authenticator's keys come from.
pub enum KeySource {
    /// Decoded once at load.
    Static(Arc<KeySet>),
    /// Fetched and rotated by a provider.
    Remote(Arc<JwksProvider>),
}

impl KeySource {
    /// The keys in force (`key_source_unavailable` while a provider has none usable).
    pub fn current(&self) -> Result<Arc<KeySet>, Reason> {
        match self {
            KeySource::Static(s) => Ok(s.clone()),
            KeySource::Remote(p) => p.current(),
        }
    }

    /// The keys to verify a token with `kid`: for a provider that lacks it, after the one shared
    /// refresh the rate limit allows (`unknown_key` if it is still absent).
    pub async fn for_kid(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Reason> {
        match (self, kid) {
            (KeySource::Remote(p), Some(k)) => {
                let set = p.current()?;
                if set.candidates(Some(k)).is_some() {
                    Ok(set)
                } else {
                    p.refresh_for(k).await
                }
            }
            _ => self.current(),
        }
    }
}

/// A compiled `jwt` authenticator.
pub struct Jwt {
    pub(super) name: String,
    from: Sources,
    keys: KeySource,
    rules: Rules,
    cache: Option<Arc<TokenCache>>,
}

impl Jwt {
    /// Compiles `authenticators.<name>`. `forward` lists the claim names to capture into the
    /// identity (mapped identity headers and route `bind`s); `full_claims` keeps every verified
    /// claim in it (for `allow_if`); `cache` is the config's shared verified-token cache.
    pub fn compile(
        name: &str,
        cfg: &JwtConfig,
        forward: Arc<[Arc<str>]>,
        full_claims: bool,
        cache: Option<Arc<TokenCache>>,
        path: &str,
    ) -> Result<Self, FieldError> {
        let from = Sources::compile(&cfg.from.0, &format!("{path}.from"))?;
        let algorithms = algorithms(cfg, path)?;
        let issuers: Vec<String> = cfg.issuers.iter().map(|s| s.0.clone()).collect();
        let keys = match endpoint(cfg, path)? {
            Some(endpoint) => {
                let timing = JwksTiming::compile(&cfg.jwks, &format!("{path}.jwks"))?;
                let p =
                    JwksProvider::new(name, endpoint, issuers.clone(), algorithms.clone(), timing);
                KeySource::Remote(Arc::new(p))
            }
            None => KeySource::Static(Arc::new(static_keys::static_keys(
                name,
                cfg,
                &algorithms,
                path,
            )?)),
        };
        // `require` defaults to `[exp]`: a token that never expires must be asked for explicitly.
        let require: Vec<String> = match &cfg.require {
            Some(r) => r.iter().map(|s| s.0.clone()).collect(),
            None => vec!["exp".to_string()],
        };
        let audiences: Vec<String> = cfg.audiences.iter().map(|s| s.0.clone()).collect();
        let validations = algorithms
            .iter()
            .map(|&alg| {
                (
                    alg,
                    validation(alg, cfg.leeway_seconds, &require, &issuers, &audiences),
                )
            })
            .collect();
        let claims = cfg
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), v.0.iter().map(|s| s.0.clone()).collect()))
            .collect();
        let rules = Rules {
            validations,
            require_other: require
                .into_iter()
                .filter(|c| !SPEC_CLAIMS.contains(&c.as_str()))
                .collect(),
            max_lifetime: cfg.max_lifetime_seconds,
            claims,
            user_id_claim: cfg.user_id_claim.0.clone(),
            forward,
            full_claims,
            method: super::Kind::Jwt.as_str().into(),
            leeway: cfg.leeway_seconds,
        };
        Ok(Jwt {
            name: name.to_string(),
            from,
            keys,
            rules,
            cache,
        })
    }

    /// Where its token is read.
    pub(super) fn sources(&self) -> Vec<&Sources> {
        vec![&self.from]
    }

    /// The JWK-set provider, if this authenticator uses one.
    pub fn provider(&self) -> Option<&Arc<JwksProvider>> {
        match &self.keys {
            KeySource::Remote(p) => Some(p),
            KeySource::Static(_) => None,
        }
    }

    /// Config problems that do not stop loading (printed by `keygate check`, logged on load).
    pub(super) fn warnings(&self) -> Vec<String> {
        match &self.keys {
            KeySource::Remote(_) if self.rules.validations.iter().all(|(_, v)| !v.validate_aud) => vec![format!(
                "authenticators.{}: a JWK-set authenticator without `audiences` accepts a token the issuer signed for any client (set audiences)",
                self.name
            )],
            _ => Vec::new(),
        }
    }

    /// Verifies the request's token.
    pub(super) async fn verify(&self, req: &RequestParts<'_>) -> Attempt {
        match self.from.extract(req) {
            Extracted::Absent => Attempt::Absent,
            Extracted::Malformed => Attempt::Fail(Reason::MalformedCredentials),
            Extracted::Present(token) => match self.verify_token(&token).await {
                Ok(id) => Attempt::Pass(id),
                Err(r) => Attempt::Fail(r),
            },
        }
    }

    /// Verifies `token`: the cache first, then signature and claims. Awaits only when a
    /// JWK-set provider must be asked about an unknown `kid`.
    pub async fn verify_token(&self, token: &str) -> Result<Identity, Reason> {
        let cache_key = self
            .cache
            .as_ref()
            .map(|_| TokenCache::key(&self.name, token));
        if let (Some(cache), Some(key)) = (&self.cache, &cache_key) {
            if let Some(hit) = cache.get(key) {
                // A hit counts only while the key that verified it is still in its set.
                if self
                    .keys
                    .current()?
                    .contains(hit.kid.as_deref(), &hit.fingerprint)
                {
                    return Ok(hit.identity.clone());
                }
                cache.invalidate(key);
            }
        }
        let header = verify::header(token)?;
        verify::allowed(&header, &self.rules)?;
        let kid = header.kid.as_deref();
        if kid.is_some_and(|k| k.len() > MAX_KID_BYTES) {
            return Err(Reason::UnknownKey); // never fetch for (or remember) such a kid
        }
        let set = self.keys.for_kid(kid).await?;
        let (identity, key, exp) = verify::verify(&set, &header, token, &self.rules)?;
        if let (Some(cache), Some(k)) = (&self.cache, cache_key) {
            cache.insert(k, identity.clone(), key.kid.clone(), key.fingerprint, exp);
        }
        Ok(identity)
    }
}

/// `algorithms:` parsed, deduplicated; required.
fn algorithms(cfg: &JwtConfig, path: &str) -> Result<Vec<Algorithm>, FieldError> {
    if cfg.algorithms.is_empty() {
        return Err(FieldError::new(
            format!("{path}.algorithms"),
            "at least one algorithm is required",
        ));
    }
    let mut out = Vec::new();
    for (i, a) in cfg.algorithms.iter().enumerate() {
        let alg: Algorithm = a.parse().map_err(|_| {
            FieldError::new(
                format!("{path}.algorithms[{i}]"),
                format!("unsupported algorithm `{}` (none is never accepted)", a.0),
            )
        })?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

/// `jwks_url` / `openid_configuration_url`, if given (not both, not with static `keys`).
fn endpoint(cfg: &JwtConfig, path: &str) -> Result<Option<Endpoint>, FieldError> {
    let endpoint = match (&cfg.jwks_url, &cfg.openid_configuration_url) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                path,
                "give jwks_url or openid_configuration_url, not both",
            ))
        }
        (Some(u), None) => Endpoint::Jwks(u.0.clone()),
        (None, Some(u)) => Endpoint::Discovery(u.0.clone()),
        (None, None) => return Ok(None),
    };
    let (Endpoint::Jwks(u) | Endpoint::Discovery(u)) = &endpoint;
    if !(u.starts_with("https://") || u.starts_with("http://")) {
        return Err(FieldError::new(path, "JWK set URLs must be http(s)"));
    }
    if !cfg.keys.is_empty() {
        return Err(FieldError::new(
            format!("{path}.keys"),
            "give keys or a JWK set URL, not both",
        ));
    }
    Ok(Some(endpoint))
}

/// jsonwebtoken's `Validation` for `alg`, every default set explicitly: `exp` and `nbf`
/// checked with `leeway`, `iss`/`aud` required and checked when configured.
fn validation(
    alg: Algorithm,
    leeway: u64,
    require: &[String],
    issuers: &[String],
    audiences: &[String],
) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = leeway;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.required_spec_claims = require
        .iter()
        .filter(|c| SPEC_CLAIMS.contains(&c.as_str()))
        .cloned()
        .collect();
    if !issuers.is_empty() {
        v.set_issuer(issuers);
        v.required_spec_claims.insert("iss".into());
    }
    if audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(audiences);
        v.required_spec_claims.insert("aud".into());
    }
    v
}
