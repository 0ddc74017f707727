//! `type: jwt`: JSON Web Tokens (RFC 7519) verified with jsonwebtoken 11 (aws-lc-rs backend).
//!
//! Static keys (`pem`, `pem_file`, `jwk`, `jwks_file`, `secret`) are decoded once at load and
//! selected by `kid` (RFC 7515 §4.1.4); a token without `kid` is tried against every key whose
//! type fits its `alg`, in order. `algorithms` is an allowlist; `none` is never accepted and a
//! key only verifies the algorithms its type allows, which defeats RS/HS confusion. `jku`,
//! `x5u` and `jwk` headers are never used. `exp`/`nbf` are checked with `leeway_seconds`;
//! `iss`/`aud` against `issuers`/`audiences`; `require`, `claims`, `max_lifetime_seconds` and
//! `user_id_claim` as in `../shared/spec/config-v1.md` ("JWT").

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{Authenticator, Extracted, Identity, RequestParts, Sources, Verdict};
use crate::config::{FieldError, JwtConfig, JwtKeyConfig};
use crate::reason::Reason;
use crate::secret::resolve;

/// The kind of a verification key, which fixes the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

impl KeyType {
    /// Algorithms a key of this type can verify (RFC 7518 §3.1, RFC 8037).
    pub fn algorithms(self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            KeyType::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
            KeyType::EcP256 => &[ES256],
            KeyType::EcP384 => &[ES384],
            KeyType::Ed25519 => &[EdDSA],
            KeyType::Hmac => &[HS256, HS384, HS512],
        }
    }
}

/// One decoded static key.
struct StaticKey {
    kid: Option<String>,
    key: DecodingKey,
    /// `algorithms` of the authenticator that this key's type (and JWK `alg`) allows.
    algs: Vec<Algorithm>,
    credential: Arc<str>,
}

/// A compiled `jwt` authenticator.
pub struct Jwt {
    name: String,
    from: Sources,
    algorithms: Vec<Algorithm>,
    keys: Vec<StaticKey>,
    by_kid: HashMap<String, Vec<usize>>,
    /// `0..keys.len()`: the candidates for a token without `kid`, in config order.
    all_keys: Vec<usize>,
    /// One `Validation` per allowed algorithm (jsonwebtoken's takes the algorithm list).
    validations: Vec<(Algorithm, Validation)>,
    /// `require` entries jsonwebtoken does not check itself (`iat`, custom claims).
    require_other: Vec<String>,
    max_lifetime: Option<u64>,
    claims: Vec<(String, Vec<String>)>,
    user_id_claim: String,
    forward: Arc<[Arc<str>]>,
    /// Set for `jwks_url` / `openid_configuration_url` providers (key source not yet held).
    provider: Option<String>,
    method: Arc<str>,
    credential: Arc<str>,
}

const SPEC_CLAIMS: [&str; 5] = ["exp", "nbf", "sub", "iss", "aud"];

impl Jwt {
    /// Compiles `authenticators.<name>`. `forward` lists the claim names to capture into the
    /// identity (mapped identity headers and route `bind`s).
    pub fn compile(
        name: &str,
        cfg: &JwtConfig,
        forward: Arc<[Arc<str>]>,
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
        let remote = cfg
            .jwks_url
            .as_ref()
            .or(cfg.openid_configuration_url.as_ref());
        if cfg.jwks_url.is_some() && cfg.openid_configuration_url.is_some() {
            return Err(FieldError::new(
                path,
                "give jwks_url or openid_configuration_url, not both",
            ));
        }
        if let Some(u) = remote {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(FieldError::new(path, "JWK set URLs must be http(s)"));
            }
        }
        if remote.is_none() && cfg.keys.is_empty() {
            return Err(FieldError::new(
                format!("{path}.keys"),
                "keys, jwks_url or openid_configuration_url is required",
            ));
        }
        let mut keys = Vec::new();
        for (i, k) in cfg.keys.iter().enumerate() {
            let p = format!("{path}.keys[{i}]");
            for (kid, key, ty, jwk_alg) in load_key(k, &p)? {
                let algs: Vec<Algorithm> = algorithms
                    .iter()
                    .copied()
                    .filter(|a| ty.algorithms().contains(a) && jwk_alg.is_none_or(|j| j == *a))
                    .collect();
                if algs.is_empty() {
                    return Err(FieldError::new(
                        p,
                        format!("this {ty:?} key cannot verify any of the allowed algorithms"),
                    ));
                }
                let credential = match &kid {
                    Some(k) => format!("{name}/{k}").into(),
                    None => name.into(),
                };
                keys.push(StaticKey {
                    kid,
                    key,
                    algs,
                    credential,
                });
            }
        }
        let mut by_kid: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some(kid) = &k.kid {
                by_kid.entry(kid.clone()).or_default().push(i);
            }
        }
        let issuers: Vec<String> = cfg.issuers.iter().map(|s| s.0.clone()).collect();
        let audiences: Vec<String> = cfg.audiences.iter().map(|s| s.0.clone()).collect();
        let require: Vec<String> = cfg.require.iter().map(|s| s.0.clone()).collect();
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
            algorithms,
            all_keys: (0..keys.len()).collect(),
            keys,
            by_kid,
            validations,
            require_other: require
                .into_iter()
                .filter(|c| !SPEC_CLAIMS.contains(&c.as_str()))
                .collect(),
            max_lifetime: cfg.max_lifetime_seconds,
            claims,
            user_id_claim: cfg.user_id_claim.0.clone(),
            forward,
            provider: remote.map(|u| u.0.clone()),
            method: "jwt".into(),
            credential: name.into(),
        })
    }

    /// Verifies `token`; pure CPU work with static keys.
    pub fn verify_token(&self, token: &str) -> Result<Identity, Reason> {
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
        let candidates: &[usize] = match &header.kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(c) => c,
                None if self.provider.is_some() => return Err(Reason::KeySourceUnavailable),
                None => return Err(Reason::UnknownKey),
            },
            None if self.keys.is_empty() && self.provider.is_some() => {
                return Err(Reason::KeySourceUnavailable)
            }
            None => &[],
        };
        let candidates = if header.kid.is_none() {
            &self.all_keys[..]
        } else {
            candidates
        };
        let mut fitting = candidates
            .iter()
            .map(|&i| &self.keys[i])
            .filter(|k| k.algs.contains(&alg))
            .peekable();
        if fitting.peek().is_none() {
            return Err(Reason::AlgorithmNotAllowed);
        }
        for key in fitting {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => return self.check_claims(&data.claims, key),
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
        key: &StaticKey,
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
            credential: if key.kid.is_some() {
                key.credential.clone()
            } else {
                self.credential.clone()
            },
            claims: forwarded,
        })
    }
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

type Loaded = (Option<String>, DecodingKey, KeyType, Option<Algorithm>);

/// Decodes one `keys[]` entry (a `jwks_file` may yield several keys).
fn load_key(k: &JwtKeyConfig, p: &str) -> Result<Vec<Loaded>, FieldError> {
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
        let (key, ty) =
            decode_pem(pem.expose()).map_err(|m| FieldError::new(format!("{p}.{field}"), m))?;
        return Ok(vec![(kid, key, ty, None)]);
    }
    if let Some(s) = secret {
        if s.expose().len() < 32 {
            return Err(FieldError::new(
                format!("{p}.secret"),
                "HMAC secrets must be at least 32 bytes (RFC 7518 §3.2)",
            ));
        }
        return Ok(vec![(
            kid,
            DecodingKey::from_secret(s.expose().as_bytes()),
            KeyType::Hmac,
            None,
        )]);
    }
    if let Some(v) = &k.jwk {
        let jwk: Jwk = serde_json::from_value(v.clone()).map_err(|e| {
            FieldError::new(
                format!("{p}.jwk"),
                format!("invalid JWK: {}", redact_json_err(&e)),
            )
        })?;
        let (jkid, key, ty, alg) =
            decode_jwk(&jwk).map_err(|m| FieldError::new(format!("{p}.jwk"), m))?;
        return Ok(vec![(kid.or(jkid), key, ty, alg)]);
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
        let (jkid, key, ty, alg) = decode_jwk(jwk).map_err(|m| {
            FieldError::new(format!("{p}.jwks_file"), format!("{file}: keys[{i}]: {m}"))
        })?;
        out.push((jkid, key, ty, alg));
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

const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Decodes a public key PEM (`PUBLIC KEY` SPKI or `RSA PUBLIC KEY` PKCS#1) and tells its type
/// from the SPKI algorithm OID (RFC 5480, RFC 8410).
pub fn decode_pem(text: &str) -> Result<(DecodingKey, KeyType), String> {
    let block = pem::parse(text.trim()).map_err(|e| format!("bad PEM: {e}"))?;
    let der = block.contents();
    let ty = match block.tag() {
        "RSA PUBLIC KEY" => KeyType::Rsa,
        "PUBLIC KEY" if contains(der, OID_RSA) => KeyType::Rsa,
        "PUBLIC KEY" if contains(der, OID_EC) && contains(der, OID_P256) => KeyType::EcP256,
        "PUBLIC KEY" if contains(der, OID_EC) && contains(der, OID_P384) => KeyType::EcP384,
        "PUBLIC KEY" if contains(der, OID_ED25519) => KeyType::Ed25519,
        "PUBLIC KEY" => return Err("bad PEM: unsupported public key type".into()),
        other => {
            return Err(format!(
                "bad PEM: expected a PUBLIC KEY block, found {other}"
            ))
        }
    };
    let bytes = text.trim().as_bytes();
    let key = match ty {
        KeyType::Rsa => DecodingKey::from_rsa_pem(bytes),
        KeyType::EcP256 | KeyType::EcP384 => DecodingKey::from_ec_pem(bytes),
        KeyType::Ed25519 => DecodingKey::from_ed_pem(bytes),
        KeyType::Hmac => unreachable!("PEM is never an HMAC key"),
    }
    .map_err(|e| format!("bad PEM: {e}"))?;
    Ok((key, ty))
}

/// Decodes a public JWK (RFC 7517) and tells its type; `alg`, when present, restricts it.
pub fn decode_jwk(
    jwk: &Jwk,
) -> Result<(Option<String>, DecodingKey, KeyType, Option<Algorithm>), String> {
    if jwk.common.public_key_use == Some(jsonwebtoken::jwk::PublicKeyUse::Encryption) {
        return Err("key is for encryption (use: enc)".into());
    }
    let ty = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyType::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyType::EcP256,
            EllipticCurve::P384 => KeyType::EcP384,
            _ => return Err("unsupported EC curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            KeyType::Ed25519
        }
        AlgorithmParameters::OctetKey(_) => KeyType::Hmac,
        _ => return Err("unsupported key type".into()),
    };
    let alg = match &jwk.common.key_algorithm {
        Some(a) => Some(
            a.to_string()
                .parse::<Algorithm>()
                .map_err(|_| format!("unsupported alg {a}"))?,
        ),
        None => None,
    };
    if alg.is_some_and(|a| !ty.algorithms().contains(&a)) {
        return Err("alg does not fit the key type".into());
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("bad key parameters: {e}"))?;
    Ok((jwk.common.key_id.clone(), key, ty, alg))
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
        self.provider.is_none()
    }
    async fn verify(&self, req: &RequestParts<'_>) -> Verdict {
        match self.from.extract(req) {
            Extracted::Absent => Verdict::Absent,
            Extracted::Malformed => Verdict::Fail(Reason::MalformedCredentials),
            Extracted::Present(token) => match self.verify_token(&token) {
                Ok(id) => Verdict::Pass(id),
                Err(r) => Verdict::Fail(r),
            },
        }
    }
}

impl Jwt {
    /// The algorithms this authenticator accepts.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}
