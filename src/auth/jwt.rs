//! `type: jwt`: JSON Web Tokens (RFC 7519) verified with jsonwebtoken 11 (aws-lc-rs backend).
//!
//! Keys come from the config (`pem`, `pem_file`, `jwk`, `jwks_file`, `secret`) or from a JWK-set
//! provider (`jwks_url`, `openid_configuration_url`; see [`super::jwks`]) and are selected by
//! `kid` (RFC 7515 §4.1.4); a token without `kid` is tried against every key whose type fits its
//! `alg`, in order. `algorithms` is an allowlist; `none` is never accepted and a key only
//! verifies the algorithms its type allows, which defeats RS/HS confusion. `jku`, `x5u` and
//! `jwk` headers are never used; `crit` is refused. `exp`/`nbf` are checked with
//! `leeway_seconds`; `iss`/`aud` against `issuers`/`audiences`; `require`, `claims`,
//! `max_lifetime_seconds` and `user_id_claim` as in `../shared/spec/config-v1.md` ("JWT").
//! Successful verifications are remembered in the shared [`TokenCache`].

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::{Endpoint, JwksProvider};
use super::keys::{decode_jwk, decode_pem, decode_secret, Decoded, KeySet, VerifyKey};
use super::{Authenticator, Extracted, Identity, RequestParts, Sources, Verdict};
use crate::config::files::resolve;
use crate::config::{FieldError, JwtConfig, JwtKeyConfig};
use crate::reason::Reason;
use crate::token_cache::TokenCache;

/// Where an authenticator's keys come from.
pub enum KeySource {
    /// Decoded once at load.
    Static(Arc<KeySet>),
    /// Fetched and rotated by a provider.
    Remote(Arc<JwksProvider>),
}

/// A compiled `jwt` authenticator.
pub struct Jwt {
    name: String,
    from: Sources,
    keys: KeySource,
    /// One `Validation` per allowed algorithm (jsonwebtoken's takes the algorithm list).
    validations: Vec<(Algorithm, Validation)>,
    /// `require` entries jsonwebtoken does not check itself (`iat`, custom claims).
    require_other: Vec<String>,
    max_lifetime: Option<u64>,
    claims: Vec<(String, Vec<String>)>,
    user_id_claim: String,
    forward: Arc<[Arc<str>]>,
    cache: Option<Arc<TokenCache>>,
    method: Arc<str>,
}

const SPEC_CLAIMS: [&str; 5] = ["exp", "nbf", "sub", "iss", "aud"];

/// Longest `kid` looked up: longer ones are `unknown_key` at once, so a flood of random kids
/// cannot make the unknown-kid memory hold large strings.
const MAX_KID_BYTES: usize = 256;

impl Jwt {
    /// Compiles `authenticators.<name>`. `forward` lists the claim names to capture into the
    /// identity (mapped identity headers and route `bind`s); `cache` is the config's shared
    /// verified-token cache.
    pub fn compile(
        name: &str,
        cfg: &JwtConfig,
        forward: Arc<[Arc<str>]>,
        cache: Option<Arc<TokenCache>>,
        path: &str,
    ) -> Result<Self, FieldError> {
        let from = Sources::compile(&cfg.from.0, &format!("{path}.from"))?;
        if cfg.algorithms.is_empty() {
            return Err(FieldError::new(
                format!("{path}.algorithms"),
                "at least one algorithm is required",
            ));
        }
        let mut algorithms = Vec::new();
        for (i, a) in cfg.algorithms.iter().enumerate() {
            let alg: Algorithm = a.parse().map_err(|_| {
                FieldError::new(
                    format!("{path}.algorithms[{i}]"),
                    format!("unsupported algorithm `{}` (none is never accepted)", a.0),
                )
            })?;
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        let issuers: Vec<String> = cfg.issuers.iter().map(|s| s.0.clone()).collect();
        let audiences: Vec<String> = cfg.audiences.iter().map(|s| s.0.clone()).collect();
        let endpoint = match (&cfg.jwks_url, &cfg.openid_configuration_url) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    path,
                    "give jwks_url or openid_configuration_url, not both",
                ))
            }
            (Some(u), None) => Some(Endpoint::Jwks(u.0.clone())),
            (None, Some(u)) => Some(Endpoint::Discovery(u.0.clone())),
            (None, None) => None,
        };
        let keys = match endpoint {
            Some(endpoint) => {
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
                let j = &cfg.jwks;
                if j.min_refresh_interval_seconds > j.refresh_seconds || j.timeout_ms == 0 {
                    return Err(FieldError::new(
                        format!("{path}.jwks"),
                        "need min_refresh_interval_seconds <= refresh_seconds and timeout_ms > 0",
                    ));
                }
                let p = JwksProvider::new(
                    name,
                    endpoint,
                    issuers.clone(),
                    algorithms.clone(),
                    j.clone(),
                )
                .map_err(|m| FieldError::new(path, m))?;
                KeySource::Remote(Arc::new(p))
            }
            None => KeySource::Static(Arc::new(static_keys(name, cfg, &algorithms, path)?)),
        };
        // `require` defaults to `[exp]`: a token that never expires must be asked for explicitly.
        let require: Vec<String> = match &cfg.require {
            Some(r) => r.iter().map(|s| s.0.clone()).collect(),
            None => vec!["exp".to_string()],
        };
        let validations = algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = cfg.leeway_seconds;
                v.validate_exp = true;
                v.validate_nbf = true;
                v.required_spec_claims = require
                    .iter()
                    .filter(|c| SPEC_CLAIMS.contains(&c.as_str()))
                    .cloned()
                    .collect();
                if !issuers.is_empty() {
                    v.set_issuer(&issuers);
                    v.required_spec_claims.insert("iss".into());
                }
                if audiences.is_empty() {
                    v.validate_aud = false;
                } else {
                    v.set_audience(&audiences);
                    v.required_spec_claims.insert("aud".into());
                }
                (alg, v)
            })
            .collect();
        let claims = cfg
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), v.0.iter().map(|s| s.0.clone()).collect()))
            .collect();
        Ok(Jwt {
            name: name.to_string(),
            from,
            keys,
            validations,
            require_other: require
                .into_iter()
                .filter(|c| !SPEC_CLAIMS.contains(&c.as_str()))
                .collect(),
            max_lifetime: cfg.max_lifetime_seconds,
            claims,
            user_id_claim: cfg.user_id_claim.0.clone(),
            forward,
            cache,
            method: "jwt".into(),
        })
    }

    /// Config problems that do not stop loading (printed by `keygate check`, logged on load).
    pub fn warnings(&self) -> Vec<String> {
        match &self.keys {
            KeySource::Remote(_) if self.validations.iter().all(|(_, v)| !v.validate_aud) => vec![format!(
                "authenticators.{}: a JWK-set authenticator without `audiences` accepts a token the issuer signed for any client (set audiences)",
                self.name
            )],
            _ => Vec::new(),
        }
    }

    /// The JWK-set provider, if this authenticator uses one.
    pub fn provider(&self) -> Option<&Arc<JwksProvider>> {
        match &self.keys {
            KeySource::Remote(p) => Some(p),
            KeySource::Static(_) => None,
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
                let still_valid = match &self.keys {
                    KeySource::Static(_) => true,
                    KeySource::Remote(p) => {
                        p.current()?.contains(hit.kid.as_deref(), &hit.fingerprint)
                    }
                };
                if still_valid {
                    return Ok(hit.identity.clone());
                }
                cache.invalidate(key);
            }
        }
        if !looks_like_jws(token) {
            return Err(Reason::MalformedCredentials);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| header_failure(token))?;
        if header.crit.is_some() {
            return Err(Reason::MalformedCredentials); // RFC 7515 §4.1.11: no extensions understood
        }
        let alg = header.alg;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == alg) else {
            return Err(Reason::AlgorithmNotAllowed);
        };
        let kid = header.kid.as_deref();
        if kid.is_some_and(|k| k.len() > MAX_KID_BYTES) {
            // No provider publishes such kids; never fetch for (or remember) one.
            return Err(Reason::UnknownKey);
        }
        let set = match &self.keys {
            KeySource::Static(s) => s.clone(),
            KeySource::Remote(p) => {
                let set = p.current()?;
                match kid {
                    Some(k) if set.candidates(Some(k)).is_none() => p.refresh_for(k).await?,
                    _ => set,
                }
            }
        };
        let Some(candidates) = set.candidates(kid) else {
            return Err(Reason::UnknownKey);
        };
        let mut fitting = candidates.filter(|k| k.algs.contains(&alg)).peekable();
        if fitting.peek().is_none() {
            return Err(Reason::AlgorithmNotAllowed);
        }
        for key in fitting {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => {
                    let identity = self.check_claims(&data.claims, key)?;
                    if let (Some(cache), Some(k)) = (&self.cache, cache_key) {
                        let exp = data.claims.get("exp").and_then(Value::as_f64);
                        cache.insert(k, identity.clone(), key.kid.clone(), key.fingerprint, exp);
                    }
                    return Ok(identity);
                }
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                // The signature verified; a required claim of the wrong type (`"exp": "..."`)
                // is malformed rather than missing.
                Err(e) => match e.kind() {
                    ErrorKind::MissingRequiredClaim(c) if claim_present(token, c) => {
                        return Err(Reason::MalformedCredentials)
                    }
                    kind => return Err(map_error(kind)),
                },
            }
        }
        Err(Reason::InvalidSignature)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        key: &VerifyKey,
    ) -> Result<Identity, Reason> {
        for c in &self.require_other {
            if claims.get(c).is_none_or(Value::is_null) {
                return Err(Reason::MissingClaim);
            }
        }
        if let Some(max) = self.max_lifetime {
            let iat = claims.get("iat").ok_or(Reason::MissingClaim)?;
            let exp = claims.get("exp").ok_or(Reason::MissingClaim)?;
            let (Some(iat), Some(exp)) = (iat.as_f64(), exp.as_f64()) else {
                return Err(Reason::MalformedCredentials);
            };
            if exp - iat > max as f64 {
                return Err(Reason::ClaimMismatch);
            }
        }
        for (name, allowed) in &self.claims {
            let v = claims.get(name).ok_or(Reason::MissingClaim)?;
            let v = scalar(v).ok_or(Reason::ClaimMismatch)?;
            if !allowed.contains(&v) {
                return Err(Reason::ClaimMismatch);
            }
        }
        let user_id = claims
            .get(&self.user_id_claim)
            .and_then(scalar)
            .filter(|u| !u.is_empty())
            .ok_or(Reason::MissingClaim)?;
        let mut forwarded = Vec::new();
        for name in self.forward.iter() {
            if let Some(v) = claims.get(&**name).filter(|v| !v.is_null()) {
                let s = scalar(v).unwrap_or_else(|| v.to_string());
                if !s.is_empty() {
                    forwarded.push((name.clone(), s));
                }
            }
        }
        Ok(Identity {
            user_id: Some(user_id),
            method: self.method.clone(),
            credential: key.credential.clone(),
            claims: forwarded,
        })
    }
}

/// Decodes the static `keys` of an authenticator, restricted to its algorithms.
fn static_keys(
    name: &str,
    cfg: &JwtConfig,
    algorithms: &[Algorithm],
    path: &str,
) -> Result<KeySet, FieldError> {
    if cfg.keys.is_empty() {
        return Err(FieldError::new(
            format!("{path}.keys"),
            "keys, jwks_url or openid_configuration_url is required",
        ));
    }
    let mut keys = Vec::new();
    for (i, k) in cfg.keys.iter().enumerate() {
        let p = format!("{path}.keys[{i}]");
        for decoded in load_key(k, &p)? {
            let ty = decoded.ty;
            let key = decoded.restrict(algorithms, name).ok_or_else(|| {
                FieldError::new(
                    &p,
                    format!("this {ty:?} key cannot verify any of the allowed algorithms"),
                )
            })?;
            keys.push(key);
        }
    }
    Ok(KeySet::new(keys))
}

/// Decodes one `keys[]` entry (a `jwks_file` may yield several keys).
fn load_key(k: &JwtKeyConfig, p: &str) -> Result<Vec<Decoded>, FieldError> {
    let kid = k.kid.as_ref().map(|s| s.0.clone());
    let pem = resolve(
        k.pem.as_ref().map(|s| &s.0),
        k.pem_file.as_deref(),
        p,
        "pem",
    )?;
    let secret = resolve(
        k.secret.as_ref().map(|s| &s.0),
        k.secret_file.as_deref(),
        p,
        "secret",
    )?;
    let given = [
        pem.is_some(),
        secret.is_some(),
        k.jwk.is_some(),
        k.jwks_file.is_some(),
    ];
    if given.iter().filter(|x| **x).count() != 1 {
        return Err(FieldError::new(
            p,
            "exactly one of pem, pem_file, jwk, jwks_file, secret, secret_file is required",
        ));
    }
    if let Some(pem) = pem {
        let field = if k.pem.is_some() { "pem" } else { "pem_file" };
        let d = decode_pem(pem.expose(), kid)
            .map_err(|m| FieldError::new(format!("{p}.{field}"), m))?;
        return Ok(vec![d]);
    }
    if let Some(s) = secret {
        if s.expose().len() < 32 {
            return Err(FieldError::new(
                format!("{p}.secret"),
                "HMAC secrets must be at least 32 bytes (RFC 7518 §3.2)",
            ));
        }
        return Ok(vec![decode_secret(s.expose().as_bytes(), kid)]);
    }
    if let Some(v) = &k.jwk {
        let jwk: Jwk = serde_json::from_value(v.clone()).map_err(|e| {
            FieldError::new(
                format!("{p}.jwk"),
                format!("invalid JWK: {}", redact_json_err(&e)),
            )
        })?;
        let mut d = decode_jwk(&jwk).map_err(|m| FieldError::new(format!("{p}.jwk"), m))?;
        d.kid = kid.or(d.kid);
        return Ok(vec![d]);
    }
    let file = k.jwks_file.as_deref().unwrap_or_default();
    let text = std::fs::read_to_string(file).map_err(|e| {
        FieldError::new(format!("{p}.jwks_file"), format!("cannot read {file}: {e}"))
    })?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
        FieldError::new(
            format!("{p}.jwks_file"),
            format!("{file}: invalid JWK set: {}", redact_json_err(&e)),
        )
    })?;
    let mut out = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let d = decode_jwk(jwk).map_err(|m| {
            FieldError::new(format!("{p}.jwks_file"), format!("{file}: keys[{i}]: {m}"))
        })?;
        out.push(d);
    }
    if out.is_empty() {
        return Err(FieldError::new(
            format!("{p}.jwks_file"),
            format!("{file}: no keys"),
        ));
    }
    Ok(out)
}

/// serde_json errors may quote input; keep only the category and position.
fn redact_json_err(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// A string claim as is; numbers and booleans in their JSON spelling; others `None`.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Compact JWS shape: three base64url segments (the signature may be empty: it then fails
/// verification rather than parsing).
fn looks_like_jws(t: &str) -> bool {
    let b64 = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    let mut parts = t.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => {
            !h.is_empty() && !p.is_empty() && b64(h) && b64(p) && b64(s)
        }
        _ => false,
    }
}

/// Whether the payload of `token` has claim `name` with a non-null value.
fn claim_present(token: &str, name: &str) -> bool {
    let seg = token.split('.').nth(1).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg)
        .ok()
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .is_some_and(|m| m.get(name).is_some_and(|v| !v.is_null()))
}

/// Why a header jsonwebtoken refused: an `alg` it does not know (`none`, `HS1`) is
/// `algorithm_not_allowed`; anything else is malformed.
fn header_failure(token: &str) -> Reason {
    let seg = token.split('.').next().unwrap_or_default();
    let parsed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg)
        .ok()
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok());
    match parsed.as_ref().and_then(|h| h.get("alg")) {
        Some(Value::String(_)) => Reason::AlgorithmNotAllowed,
        _ => Reason::MalformedCredentials,
    }
}

fn map_error(kind: &ErrorKind) -> Reason {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Provider(_) => Reason::InvalidSignature,
        ErrorKind::ExpiredSignature => Reason::TokenExpired,
        ErrorKind::ImmatureSignature => Reason::TokenNotYetValid,
        ErrorKind::InvalidAudience => Reason::InvalidAudience,
        ErrorKind::InvalidIssuer => Reason::InvalidIssuer,
        ErrorKind::MissingRequiredClaim(_) => Reason::MissingClaim,
        ErrorKind::InvalidSubject => Reason::ClaimMismatch,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => Reason::AlgorithmNotAllowed,
        _ => Reason::MalformedCredentials,
    }
}

#[async_trait]
impl Authenticator for Jwt {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "jwt"
    }
    fn uses_bearer(&self) -> bool {
        self.from.has_bearer()
    }
    fn uses_socketio(&self) -> bool {
        self.from.has_socketio()
    }
    fn path_params(&self) -> Vec<String> {
        self.from.path_params().map(str::to_string).collect()
    }
    fn ready(&self) -> bool {
        self.provider().is_none_or(|p| p.ready())
    }
    fn provider(&self) -> Option<Arc<JwksProvider>> {
        Jwt::provider(self).cloned()
    }
    fn warnings(&self) -> Vec<String> {
        Jwt::warnings(self)
    }
    async fn verify(&self, req: &RequestParts<'_>) -> Verdict {
        match self.from.extract(req) {
            Extracted::Absent => Verdict::Absent,
            Extracted::Malformed => Verdict::Fail(Reason::MalformedCredentials),
            Extracted::Present(token) => match self.verify_token(&token).await {
                Ok(id) => Verdict::Pass(id),
                Err(r) => Verdict::Fail(r),
            },
        }
    }
}
