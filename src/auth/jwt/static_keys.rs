//! Static JWT keys from the config: `pem` / `pem_file` (SPKI or PKCS#1), `jwk`, `jwks_file`, and
//! HMAC `secret` / `secret_file` (at least 32 bytes, RFC 7518 §3.2), each restricted to the
//! authenticator's `algorithms`. Errors name the field, never the key material.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::Algorithm;

use super::keys::{decode_jwk, decode_pem, decode_secret, Decoded, KeySet};
use crate::config::files::resolve;
use crate::config::{FieldError, JwtConfig, JwtKeyConfig};

/// Decodes the static `keys` of an authenticator, restricted to its algorithms.
pub(super) fn static_keys(
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
                    format!("this {ty} key cannot verify any of the allowed algorithms"),
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
pub(super) fn redact_json_err(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}
