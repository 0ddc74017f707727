//! Pure JWT verification (RFC 7519, RFC 7515): a token, its parsed header, an immutable key set
//! and the authenticator's rules in; an identity or a reason out. No I/O, no locks, no cache:
//! `super::Jwt` adds those around it.
//!
//! `algorithms` is an allowlist and each key verifies only the algorithms its type allows, which
//! defeats `alg: none` and RS/HS confusion; `crit` is refused (RFC 7515 §4.1.11: no extension is
//! understood); `jku`, `x5u` and `jwk` headers are never read. `exp`/`nbf` are checked with
//! `leeway_seconds`; `iss`/`aud` against `issuers`/`audiences`; then `require`, `claims`,
//! `max_lifetime_seconds` and `user_id_claim` (`docs/config.md`, "JWT").

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::{Map, Value};

use super::keys::{KeySet, VerifyKey};
use crate::auth::Identity;
use crate::reason::Reason;

/// What a verified token must satisfy besides its signature.
pub struct Rules {
    /// One `Validation` per allowed algorithm (jsonwebtoken's takes the algorithm list).
    pub validations: Vec<(Algorithm, Validation)>,
    /// `require` entries jsonwebtoken does not check itself (`iat`, custom claims).
    pub require_other: Vec<String>,
    /// `max_lifetime_seconds`: `exp - iat` at most this, seconds.
    pub max_lifetime: Option<u64>,
    /// `claims`: claim name -> allowed values.
    pub claims: Vec<(String, Vec<String>)>,
    /// `user_id_claim`.
    pub user_id_claim: String,
    /// Claim names to capture into the identity (mapped headers, `bind`).
    pub forward: Arc<[Arc<str>]>,
    /// Keep every verified claim in the identity (`allow_if` reads `claims`).
    pub full_claims: bool,
    /// The identity's method (`jwt`).
    pub method: Arc<str>,
    /// `leeway_seconds`: added to `exp` for the identity's `valid_until`.
    pub leeway: u64,
}

/// Parses the JOSE header of a compact JWS. `malformed_credentials` for anything that is not
/// one; `algorithm_not_allowed` for an `alg` jsonwebtoken does not know (`none`, `HS1`).
pub fn header(token: &str) -> Result<Header, Reason> {
    if !looks_like_jws(token) {
        return Err(Reason::MalformedCredentials);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| header_failure(token))?;
    if header.crit.is_some() {
        return Err(Reason::MalformedCredentials);
    }
    Ok(header)
}

/// `algorithm_not_allowed` unless the header's `alg` is in the allowlist (checked before any
/// key is looked up, so a disallowed token never makes a provider fetch).
pub fn allowed(header: &Header, rules: &Rules) -> Result<(), Reason> {
    if rules.validations.iter().any(|(a, _)| *a == header.alg) {
        Ok(())
    } else {
        Err(Reason::AlgorithmNotAllowed)
    }
}

/// Verifies `token` (whose parsed header is `header`) against `keys` and `rules`; the identity
/// and the key that verified it. `keys` must already be the set to use for the header's `kid`.
pub fn verify<'k>(
    keys: &'k KeySet,
    header: &Header,
    token: &str,
    rules: &Rules,
) -> Result<(Identity, &'k VerifyKey, Option<f64>), Reason> {
    let alg = header.alg;
    let Some((_, validation)) = rules.validations.iter().find(|(a, _)| *a == alg) else {
        return Err(Reason::AlgorithmNotAllowed);
    };
    let candidates = keys
        .candidates(header.kid.as_deref())
        .ok_or(Reason::UnknownKey)?;
    let mut fitting = candidates.filter(|k| k.algs.contains(&alg)).peekable();
    if fitting.peek().is_none() {
        return Err(Reason::AlgorithmNotAllowed);
    }
    for key in fitting {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
            Ok(data) => {
                let identity = check_claims(&data.claims, key, rules)?;
                // RFC 7519 §4.1.4: valid only *before* `exp` (+ leeway). jsonwebtoken compares
                // whole seconds with `<` and so accepts the second of `exp + leeway` itself,
                // the instant open sessions are closed at (`docs/config.md`, "Sessions and
                // revocation"): a reconnect then must not pass with the same token.
                if identity
                    .valid_until
                    .is_some_and(|v| v as f64 <= crate::metrics::unix_now())
                {
                    return Err(Reason::TokenExpired);
                }
                let exp = data.claims.get("exp").and_then(Value::as_f64);
                return Ok((identity, key, exp));
            }
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
            // The signature verified; a required claim of the wrong type (`"exp": "..."`) is
            // malformed rather than missing (CVE-2026-25537 made such claims look absent).
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
    claims: &Map<String, Value>,
    key: &VerifyKey,
    rules: &Rules,
) -> Result<Identity, Reason> {
    // RFC 7519 §4.1.1: `iss` is one StringOrURI. jsonwebtoken accepts an array if any member
    // matches; a backend reading the claims would see another issuer.
    if claims.get("iss").is_some_and(|v| !v.is_string()) {
        return Err(Reason::MalformedCredentials);
    }
    for c in &rules.require_other {
        if claims.get(c).is_none_or(Value::is_null) {
            return Err(Reason::MissingClaim);
        }
    }
    if let Some(max) = rules.max_lifetime {
        let iat = claims.get("iat").ok_or(Reason::MissingClaim)?;
        let exp = claims.get("exp").ok_or(Reason::MissingClaim)?;
        let (Some(iat), Some(exp)) = (iat.as_f64(), exp.as_f64()) else {
            return Err(Reason::MalformedCredentials);
        };
        if exp - iat > max as f64 {
            return Err(Reason::ClaimMismatch);
        }
    }
    for (name, allowed) in &rules.claims {
        let v = claims.get(name).ok_or(Reason::MissingClaim)?;
        let v = scalar(v).ok_or(Reason::ClaimMismatch)?;
        if !allowed.contains(&v) {
            return Err(Reason::ClaimMismatch);
        }
    }
    // `user_id_claim: ""`: the token names no user (Courier's tokens carry the user only in
    // their `scope` string); the identity then has no user id.
    let user_id = match rules.user_id_claim.as_str() {
        "" => None,
        c => Some(
            claims
                .get(c)
                .and_then(scalar)
                .filter(|u| !u.is_empty())
                .ok_or(Reason::MissingClaim)?,
        ),
    };
    let mut forwarded = Vec::new();
    for name in rules.forward.iter() {
        if let Some(v) = claims.get(&**name).filter(|v| !v.is_null()) {
            let s = scalar(v).unwrap_or_else(|| v.to_string());
            if !s.is_empty() {
                forwarded.push((name.clone(), s));
            }
        }
    }
    // Numeric dates (RFC 7519 §2); jsonwebtoken has already checked `exp`'s type when present.
    let seconds = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| v as u64)
    };
    Ok(Identity {
        user_id,
        method: rules.method.clone(),
        credential: key.credential.clone(),
        claims: forwarded,
        valid_until: seconds("exp").map(|e| e.saturating_add(rules.leeway)),
        issued_at: seconds("iat"),
        jti: claims.get("jti").and_then(scalar).map(Arc::from),
        full_claims: rules.full_claims.then(|| Arc::new(claims.clone())),
    })
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

fn segment_json(token: &str, n: usize) -> Option<Map<String, Value>> {
    let seg = token.split('.').nth(n)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seg)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether the payload of `token` has claim `name` with a non-null value.
fn claim_present(token: &str, name: &str) -> bool {
    segment_json(token, 1).is_some_and(|m| m.get(name).is_some_and(|v| !v.is_null()))
}

/// Why a header jsonwebtoken refused: an `alg` it does not know is `algorithm_not_allowed`;
/// anything else is malformed.
fn header_failure(token: &str) -> Reason {
    match segment_json(token, 0).as_ref().and_then(|h| h.get("alg")) {
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

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
