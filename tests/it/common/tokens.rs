//! Tokens signed with the committed fixture keys, and the test secrets.

use serde_json::{json, Map, Value};

use super::read_fixture;

pub(crate) fn now() -> u64 {
    keygate::token::now()
}

/// Signs `claims` with the fixture private key `key` (e.g. `rsa.key`).
pub(crate) fn sign(key: &str, alg: &str, kid: Option<&str>, claims: Value) -> String {
    let (k, _) = keygate::token::signing_key(&read_fixture(key)).unwrap();
    let map: Map<String, Value> = serde_json::from_value(claims).unwrap();
    keygate::token::sign(&k, alg.parse().unwrap(), kid, &map).unwrap()
}

/// Signs with an HMAC secret.
pub(crate) fn sign_hs(secret: &[u8], alg: &str, kid: Option<&str>, claims: Value) -> String {
    let k = jsonwebtoken::EncodingKey::from_secret(secret);
    let map: Map<String, Value> = serde_json::from_value(claims).unwrap();
    keygate::token::sign(&k, alg.parse().unwrap(), kid, &map).unwrap()
}

pub(crate) fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A token built by hand: any header, any payload, any signature.
pub(crate) fn raw_token(header: Value, payload: Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        sig
    )
}

/// A valid Knock-style user token for `sub` (RS256, no kid).
pub(crate) fn user_token(sub: &str) -> String {
    let t = now();
    sign("rsa.key", "RS256", None, json!({"sub": sub, "iat": t, "exp": t + 600}))
}

/// The Notifizz-style user token for `user` under the test secret (hmac_sha256 scheme).
pub(crate) fn hmac_token(user: &str) -> String {
    hex::encode(keygate::auth::hmac_token::compute(
        keygate::config::HmacScheme::HmacSha256,
        HMAC_SECRET.as_bytes(),
        user.as_bytes(),
    ))
}

pub(crate) const DOKA_KID: &str = "a89c4bdd-60d9-4803-ac2d-c7a06c56074e";
pub(crate) const HMAC_SECRET: &str = "notifizz-test-secret-0c1d";
pub(crate) const HS_SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

/// DokaAI customer claims, valid for 15 minutes.
pub(crate) fn customer_claims(sub: &str, ws: &str) -> Value {
    let t = now();
    json!({"sub": sub, "type": "customer", "workspace_id": ws, "iat": t, "exp": t + 900})
}
