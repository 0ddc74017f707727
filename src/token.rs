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

/// Loads a private key PEM and picks the default algorithm for its type
/// (RSA -> RS256, P-256 -> ES256, P-384 -> ES384, Ed25519 -> EdDSA).
pub fn signing_key(pem_text: &str) -> Result<(EncodingKey, Algorithm), String> {
    let block = pem::parse(pem_text.trim()).map_err(|e| format!("bad PEM: {e}"))?;
    let der = block.contents();
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    let b = pem_text.trim().as_bytes();
    let err = |e: jsonwebtoken::errors::Error| format!("bad private key: {e}");
    match block.tag() {
        "RSA PRIVATE KEY" => Ok((EncodingKey::from_rsa_pem(b).map_err(err)?, Algorithm::RS256)),
        "EC PRIVATE KEY" | "PRIVATE KEY" if has(&[0x2b, 0x81, 0x04, 0x00, 0x22]) => {
            Ok((EncodingKey::from_ec_pem(b).map_err(err)?, Algorithm::ES384))
        }
        "EC PRIVATE KEY" | "PRIVATE KEY"
            if has(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]) =>
        {
            Ok((EncodingKey::from_ec_pem(b).map_err(err)?, Algorithm::ES256))
        }
        "PRIVATE KEY" if has(&[0x06, 0x03, 0x2b, 0x65, 0x70]) => {
            Ok((EncodingKey::from_ed_pem(b).map_err(err)?, Algorithm::EdDSA))
        }
        "PRIVATE KEY" => Ok((EncodingKey::from_rsa_pem(b).map_err(err)?, Algorithm::RS256)),
        other => Err(format!("expected a private key PEM, found {other}")),
    }
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
