//! `identity.assertion`: a signed statement of the identity per allowed request (as Pomerium's
//! `X-Pomerium-Jwt-Assertion` and Kong's jwt-signer), for a backend that cannot trust the network
//! between it and keygate (`docs/config.md`, "Signed identity assertion").
//!
//! A compact JWS (RFC 7515) JWT (RFC 7519), header `{alg, kid, typ: "JWT"}`, claims `iss`, `aud`,
//! `sub` (the user id, absent for an application identity), `iat`, `exp` (= `iat` +
//! `ttl_seconds`), `jti` (128 random bits) and `keygate: {method, credential, route, claims}`.
//! Signed with keygate's own key, ES256 (P-256, RFC 7518 §3.4) or EdDSA (Ed25519, RFC 8037),
//! afresh for every request: nothing is cached, so no assertion outlives the request that
//! carries it by more than its `ttl_seconds`. The key is loaded with jsonwebtoken's PEM reader
//! (`crate::token::signing_key`) and the header is jsonwebtoken's `Header`, but the signature is
//! made with an aws-lc-rs key pair parsed once at load (jsonwebtoken's own backend):
//! `jsonwebtoken::encode` parses the PKCS#8 key again on every call (bench/assertion.rs on the
//! shared 2-core box: ES256 37 µs and EdDSA 29 µs through `encode`; 21-22 µs and 13-16 µs with
//! the key pair kept). The public halves, plus those of
//! `previous_keys` during a rotation, form the JWK set (RFC 7517 §5) that the admin port serves
//! at `GET /.well-known/jwks.json`.

use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::HeaderName;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::auth::Identity;
use crate::config::{AssertionConfig, FieldError};

/// A compiled `identity.assertion`.
pub(crate) struct Assertion {
    /// The request header it travels in (lower case).
    pub(crate) header: HeaderName,
    key: Signer,
    /// The JWS header (`alg`, `kid`, `typ`), base64url-encoded once.
    encoded_header: String,
    kid: String,
    issuer: String,
    audience: String,
    ttl: u64,
    /// The JWK set, rendered once (`application/json`).
    jwks: Vec<u8>,
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertion")
            .field("header", &self.header)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// keygate's signing key, parsed once.
enum Signer {
    /// ES256: ECDSA P-256 with SHA-256, the fixed-size `r || s` signature JWS uses.
    Es256(EcdsaKeyPair),
    /// EdDSA over Ed25519.
    Ed25519(Ed25519KeyPair),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Signer::Es256(k) => k
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_string()),
            Signer::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// The claims of one assertion.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    iat: u64,
    exp: u64,
    jti: String,
    keygate: Keygate<'a>,
}

/// The `keygate` claim: how the request was authenticated.
#[derive(Serialize)]
struct Keygate<'a> {
    method: &'a str,
    credential: &'a str,
    route: &'a str,
    claims: Map<String, Value>,
}

/// A public key of the JWK set.
enum Public {
    /// P-256: the uncompressed point's coordinates (32 bytes each).
    P256 { x: Vec<u8>, y: Vec<u8> },
    /// Ed25519: the 32-byte public key.
    Ed25519 { x: Vec<u8> },
}

impl Public {
    /// From an uncompressed P-256 point (`04 || X || Y`) or a 32-byte Ed25519 key.
    fn from_raw(ed: bool, raw: &[u8]) -> Result<Public, String> {
        match (ed, raw.len(), raw.first()) {
            (true, 32, _) => Ok(Public::Ed25519 { x: raw.to_vec() }),
            (false, 65, Some(4)) => Ok(Public::P256 {
                x: raw[1..33].to_vec(),
                y: raw[33..].to_vec(),
            }),
            _ => Err("unexpected public key encoding".into()),
        }
    }

    /// The JWK members that RFC 7638 hashes, in its lexicographic order.
    fn required(&self) -> Value {
        let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        match self {
            Public::P256 { x, y } => json!({"crv": "P-256", "kty": "EC", "x": b(x), "y": b(y)}),
            Public::Ed25519 { x } => json!({"crv": "Ed25519", "kty": "OKP", "x": b(x)}),
        }
    }

    /// RFC 7638 thumbprint (SHA-256, base64url): the default `kid`.
    fn thumbprint(&self) -> String {
        // serde_json's `Map` is ordered by key (no `preserve_order` feature): RFC 7638 §3.3.
        let canonical = self.required().to_string();
        URL_SAFE_NO_PAD.encode(crate::secret::sha256(canonical.as_bytes()))
    }

    /// The public JWK (RFC 7517 §4; RFC 7518 §6.2 / RFC 8037 §2).
    fn jwk(&self, kid: &str) -> Value {
        let mut v = self.required();
        let alg = match self {
            Public::P256 { .. } => "ES256",
            Public::Ed25519 { .. } => "EdDSA",
        };
        if let Value::Object(m) = &mut v {
            m.insert("use".into(), "sig".into());
            m.insert("alg".into(), alg.into());
            m.insert("kid".into(), kid.into());
        }
        v
    }
}

/// The signing key of a private key PEM (PKCS#8, or SEC1 for P-256), its algorithm and its
/// public half.
fn private_key(pem_text: &str) -> Result<(Signer, Algorithm, Public), String> {
    let (key, alg) = crate::token::signing_key(pem_text)?;
    let pkcs8 = key.as_bytes();
    Ok(match alg {
        Algorithm::ES256 => {
            let pair = EcdsaKeyPair::from_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8,
            )
            .map_err(|e| format!("bad P-256 key: {e}"))?;
            let public = Public::from_raw(false, pair.public_key().as_ref())?;
            (Signer::Es256(pair), alg, public)
        }
        Algorithm::EdDSA => {
            let pair =
                Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| format!("bad Ed25519 key: {e}"))?;
            let public = Public::from_raw(true, pair.public_key().as_ref())?;
            (Signer::Ed25519(pair), alg, public)
        }
        other => {
            return Err(format!(
                "a {other:?} key: the assertion key must be EC P-256 (ES256) or Ed25519 (EdDSA)"
            ))
        }
    })
}

/// The public half of a previous key's PEM: a private key as `key_file`, or a `PUBLIC KEY`.
fn public_key(pem_text: &str) -> Result<Public, String> {
    use crate::auth::jwt::keys::{key_type, KeyType};
    if !pem_text.contains("-----BEGIN PUBLIC KEY-----") {
        return private_key(pem_text).map(|(_, _, p)| p);
    }
    let block = pem::parse(pem_text.trim()).map_err(|e| format!("bad PEM: {e}"))?;
    let info = spki::SubjectPublicKeyInfoRef::try_from(block.contents())
        .map_err(|e| format!("bad PEM: not a SubjectPublicKeyInfo ({e})"))?;
    let raw = info.subject_public_key.raw_bytes();
    match key_type(&info.algorithm)? {
        KeyType::EcP256 => Public::from_raw(false, raw),
        KeyType::Ed25519 => Public::from_raw(true, raw),
        _ => Err("a previous key must be EC P-256 or Ed25519".into()),
    }
}

/// Reads a key file for `field` (errors name the file, never its content).
fn read(file: &str, field: &str) -> Result<String, FieldError> {
    std::fs::read_to_string(file)
        .map_err(|e| FieldError::new(field, format!("cannot read {file}: {e}")))
}

impl Assertion {
    /// Compiles `identity.assertion`: reads and checks the keys, renders the JWK set, and signs
    /// one probe so that a key jsonwebtoken cannot use fails at load, not per request.
    pub(crate) fn compile(cfg: &AssertionConfig) -> Result<Assertion, FieldError> {
        const P: &str = "identity.assertion";
        let header = HeaderName::from_bytes(cfg.header.to_ascii_lowercase().as_bytes())
            .map_err(|_| FieldError::new(format!("{P}.header"), "invalid header name"))?;
        if cfg.key_file.is_empty() {
            return Err(FieldError::new(format!("{P}.key_file"), "required"));
        }
        let audience = cfg
            .audience
            .as_ref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                FieldError::new(
                    format!("{P}.audience"),
                    "required: who the assertion is for",
                )
            })?;
        if cfg.ttl_seconds == 0 || cfg.ttl_seconds > 3600 {
            return Err(FieldError::new(
                format!("{P}.ttl_seconds"),
                "must be 1 to 3600",
            ));
        }
        let field = format!("{P}.key_file");
        let (key, alg, public) = private_key(&read(&cfg.key_file, &field)?)
            .map_err(|m| FieldError::new(&field, format!("{}: {m}", cfg.key_file.0)))?;
        let kid = cfg
            .kid
            .as_ref()
            .map_or_else(|| public.thumbprint(), |k| k.0.clone());
        let mut keys = vec![public.jwk(&kid)];
        for (i, prev) in cfg.previous_keys.iter().enumerate() {
            let field = format!("{P}.previous_keys[{i}]");
            let p = public_key(&read(&prev.key_file, &format!("{field}.key_file"))?)
                .map_err(|m| FieldError::new(&field, format!("{}: {m}", prev.key_file.0)))?;
            let kid = prev
                .kid
                .as_ref()
                .map_or_else(|| p.thumbprint(), |k| k.0.clone());
            if keys.iter().any(|k| k["kid"] == kid.as_str()) {
                return Err(FieldError::new(field, format!("kid `{kid}` is used twice")));
            }
            keys.push(p.jwk(&kid));
        }
        let mut jws_header = Header::new(alg);
        jws_header.kid = Some(kid.clone());
        jws_header.typ = Some("JWT".into());
        let header_json = serde_json::to_vec(&jws_header)
            .map_err(|e| FieldError::new(P, format!("cannot encode the JWS header: {e}")))?;
        let a = Assertion {
            header,
            key,
            encoded_header: URL_SAFE_NO_PAD.encode(header_json),
            kid,
            issuer: cfg.issuer.0.clone(),
            audience: audience.0.clone(),
            ttl: cfg.ttl_seconds,
            jwks: json!({ "keys": keys }).to_string().into_bytes(),
        };
        let probe = Identity::app("probe".into(), "probe".into());
        a.sign(&probe, "probe", 0)
            .map_err(|m| FieldError::new(field, m))?;
        Ok(a)
    }

    /// The JWK set document (`{"keys": [...]}`): the signing key first, then `previous_keys`.
    pub(crate) fn jwks(&self) -> &[u8] {
        &self.jwks
    }

    /// Signs the assertion of `id` on route `route` issued at `now` (Unix seconds). Errors
    /// (a signing failure) never carry key material.
    pub(crate) fn sign(&self, id: &Identity, route: &str, now: u64) -> Result<String, String> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| "no randomness".to_string())?;
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: id.user_id.as_deref(),
            iat: now,
            exp: now + self.ttl,
            jti: URL_SAFE_NO_PAD.encode(jti),
            keygate: Keygate {
                method: &id.method,
                credential: &id.credential,
                route,
                claims: id
                    .claims
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::from(v.as_str())))
                    .collect(),
            },
        };
        // RFC 7515 §7.1: BASE64URL(header) . BASE64URL(payload) . BASE64URL(signature).
        let payload = serde_json::to_vec(&claims).map_err(|e| format!("cannot encode: {e}"))?;
        let mut jws =
            String::with_capacity(self.encoded_header.len() + payload.len() * 4 / 3 + 100);
        jws.push_str(&self.encoded_header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut jws);
        let signature = self
            .key
            .sign(jws.as_bytes())
            .map_err(|e| format!("cannot sign the identity assertion: {e}"))?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }
}

#[cfg(test)]
#[path = "assertion_tests.rs"]
mod tests;
