//! Helpers behind `keygate token hmac`, `keygate token jwt` and `keygate hash-secret`: mint
//! credentials the way a customer's backend would, for testing a config.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses a duration: `900`, `900s`, `15m`, `2h`, `1d` -> seconds.
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("invalid duration `{s}` (use e.g. 900s, 15m, 2h)"))
}

/// Lowercase hex SHA-256 of `data` (`keygate hash-secret`).
pub fn hash_hex(data: &[u8]) -> String {
    hex::encode(crate::secret::sha256(data))
}

/// Loads a private key PEM (PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`, PKCS#8
/// `PRIVATE KEY`, parsed with the `sec1` and `pkcs8` crates) and picks the default algorithm for
/// its type (RSA -> RS256, P-256 -> ES256, P-384 -> ES384, Ed25519 -> EdDSA).
pub fn signing_key(pem_text: &str) -> Result<(EncodingKey, Algorithm), String> {
    use crate::auth::jwt::keys::{key_type, KeyType, P256, P384};
    let block = pem::parse(pem_text.trim()).map_err(|e| format!("bad PEM: {e}"))?;
    let der = block.contents();
    let ty = match block.tag() {
        "RSA PRIVATE KEY" => KeyType::Rsa,
        "EC PRIVATE KEY" => {
            let key = sec1::EcPrivateKey::try_from(der).map_err(|e| format!("bad EC key: {e}"))?;
            match key.parameters.and_then(|p| p.named_curve()) {
                Some(P256) => KeyType::EcP256,
                Some(P384) => KeyType::EcP384,
                _ => return Err("unsupported EC curve (P-256 and P-384 are)".into()),
            }
        }
        "PRIVATE KEY" => {
            let info =
                pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| format!("bad PKCS#8 key: {e}"))?;
            key_type(&info.algorithm)?
        }
        other => return Err(format!("expected a private key PEM, found {other}")),
    };
    let b = pem_text.trim().as_bytes();
    let err = |e: jsonwebtoken::errors::Error| format!("bad private key: {e}");
    let ec = |alg| -> Result<(EncodingKey, Algorithm), String> {
        if block.tag() == "EC PRIVATE KEY" {
            // jsonwebtoken takes EC keys as PKCS#8 only: wrap the SEC1 key (RFC 5915 in 5958).
            Ok((EncodingKey::from_ec_der(&sec1_to_pkcs8(der, ty)?), alg))
        } else {
            Ok((EncodingKey::from_ec_pem(b).map_err(err)?, alg))
        }
    };
    Ok(match ty {
        KeyType::Rsa => (EncodingKey::from_rsa_pem(b).map_err(err)?, Algorithm::RS256),
        KeyType::EcP256 => ec(Algorithm::ES256)?,
        KeyType::EcP384 => ec(Algorithm::ES384)?,
        KeyType::Ed25519 => (EncodingKey::from_ed_pem(b).map_err(err)?, Algorithm::EdDSA),
        KeyType::Hmac => return Err("not an asymmetric private key".into()),
    })
}

/// A SEC1 `ECPrivateKey` (RFC 5915) as the PKCS#8 `PrivateKeyInfo` (RFC 5958) that carries it.
fn sec1_to_pkcs8(der: &[u8], ty: crate::auth::jwt::keys::KeyType) -> Result<Vec<u8>, String> {
    use crate::auth::jwt::keys::{KeyType, EC_PUBLIC_KEY, P256, P384};
    use pkcs8::der::Encode;
    let curve = if ty == KeyType::EcP384 { P384 } else { P256 };
    let info = pkcs8::PrivateKeyInfo {
        algorithm: spki::AlgorithmIdentifierRef {
            oid: EC_PUBLIC_KEY,
            parameters: Some((&curve).into()),
        },
        private_key: der,
        public_key: None,
    };
    info.to_der().map_err(|e| format!("bad EC key: {e}"))
}

/// Signs `claims` with `key` as a compact JWS, with `kid` in the header when given.
pub fn sign(
    key: &EncodingKey,
    alg: Algorithm,
    kid: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<String, String> {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).map_err(|e| format!("cannot sign: {e}"))
}

/// `k=v` -> (k, v) where v is JSON if it parses as JSON (numbers, booleans, arrays), else a string.
pub fn parse_claim(kv: &str) -> Result<(String, Value), String> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got `{kv}`"))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("15m").unwrap(), 900);
        assert_eq!(parse_ttl("900").unwrap(), 900);
        assert_eq!(parse_ttl("2h").unwrap(), 7200);
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn claims_parse_as_json_or_string() {
        assert_eq!(parse_claim("n=5").unwrap().1, Value::from(5));
        assert_eq!(
            parse_claim("type=customer").unwrap().1,
            Value::from("customer")
        );
        assert!(parse_claim("novalue").is_err());
    }
}
