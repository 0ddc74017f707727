//! Unit tests of `assertion`: real keys from `tests/fixtures`, verified with jsonwebtoken against
//! the JWK set the admin port would serve.

use super::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn cfg(key: &str) -> AssertionConfig {
    AssertionConfig {
        key_file: crate::config::value::Str(fixture(key)),
        audience: Some(crate::config::value::Str("backend".into())),
        ..AssertionConfig::default()
    }
}

fn verify(a: &Assertion, token: &str) -> Value {
    let set: JwkSet = serde_json::from_slice(a.jwks()).unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = set.find(&kid).expect("the kid is in the JWK set");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let alg = jsonwebtoken::decode_header(token).unwrap().alg;
    let mut v = Validation::new(alg);
    v.set_audience(&["backend"]);
    v.set_issuer(&["keygate"]);
    v.validate_exp = false; // signed "at" a fixed instant below
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

#[test]
fn es256_and_eddsa_assertions_verify_with_the_published_jwks() {
    for (key, alg) in [("ec256.key", "ES256"), ("ed25519.key", "EdDSA")] {
        let a = Assertion::compile(&cfg(key)).unwrap();
        let id = Identity {
            user_id: Some("user-1".into()),
            claims: vec![("tenant".into(), "acme".into())],
            ..Identity::app("jwt".into(), "knock_user/key-0".into())
        };
        let t = a.sign(&id, "feed", 1_700_000_000).unwrap();
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(format!("{:?}", h.alg), alg);
        assert_eq!(h.typ.as_deref(), Some("JWT"));
        let c = verify(&a, &t);
        assert_eq!(c["sub"], "user-1");
        assert_eq!(c["iat"], 1_700_000_000u64);
        assert_eq!(c["exp"], 1_700_000_060u64);
        assert_eq!(c["keygate"]["route"], "feed");
        assert_eq!(c["keygate"]["credential"], "knock_user/key-0");
        assert_eq!(c["keygate"]["claims"]["tenant"], "acme");
        assert_eq!(c["jti"].as_str().unwrap().len(), 22);
        let again = verify(&a, &a.sign(&id, "feed", 1_700_000_000).unwrap());
        assert_ne!(again["jti"], c["jti"], "a fresh jti per assertion");
    }
}

#[test]
fn app_identities_have_no_sub_and_kid_defaults_to_the_thumbprint() {
    let a = Assertion::compile(&cfg("ec256.key")).unwrap();
    let t = a
        .sign(
            &Identity::app("api_key".into(), "keys/ci".into()),
            "events",
            5,
        )
        .unwrap();
    let c = verify(&a, &t);
    assert!(c.get("sub").is_none());
    let kid = jsonwebtoken::decode_header(&t).unwrap().kid.unwrap();
    assert_eq!(kid.len(), 43, "base64url SHA-256");
}

#[test]
fn previous_keys_are_published_and_bad_keys_fail_at_load() {
    let mut c = cfg("ed25519.key");
    c.kid = Some(crate::config::value::Str("k2".into()));
    c.previous_keys = vec![
        crate::config::PreviousKeyConfig {
            kid: Some(crate::config::value::Str("k1".into())),
            key_file: crate::config::value::Str(fixture("ec256.pub")),
        },
        crate::config::PreviousKeyConfig {
            kid: None,
            key_file: crate::config::value::Str(fixture("ed25519.pub")),
        },
    ];
    let a = Assertion::compile(&c).unwrap();
    let set: Value = serde_json::from_slice(a.jwks()).unwrap();
    let kids: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids[..2], ["k2", "k1"]);
    assert_eq!(kids.len(), 3);
    assert!(
        !a.jwks().windows(3).any(|w| w == b"\"d\""),
        "no private member"
    );
    for (key, want) in [
        ("rsa.key", "ES256"),
        ("ec384.key", "ES256"),
        ("nope.key", "cannot read"),
    ] {
        let e = Assertion::compile(&cfg(key)).err().unwrap();
        assert!(e.message.contains(want), "{key}: {}", e.message);
    }
    let mut no_aud = cfg("ec256.key");
    no_aud.audience = None;
    assert!(Assertion::compile(&no_aud).is_err());
}
