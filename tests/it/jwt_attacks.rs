//! Attack tokens against real keygate: each is refused with its reason and never reaches the
//! upstream; `jku`/`x5u`/`jwk` header URLs are never fetched.

use crate::common::*;
use serde_json::json;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A real HTTP server counting every connection (a would-be key URL).
fn counting_server() -> (String, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", l.local_addr().unwrap());
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (url, n)
}

#[test]
fn attack_tokens_are_refused_with_their_reason() {
    let (up, kg) = full("production");
    let t = now();
    let good = customer_claims("cust-1", "ONAVZK8J");
    let valid = sign("rsa.key", "RS256", Some(DOKA_KID), good.clone());
    let (h, p, s) = {
        let v: Vec<&str> = valid.split('.').collect();
        (v[0].to_string(), v[1].to_string(), v[2].to_string())
    };
    let rsa_pub_pem = read_fixture("rsa.pub");
    let (key_url, fetches) = counting_server();
    let attacker_jwk = {
        let mut j: serde_json::Value =
            serde_json::from_str(&read_fixture("rsa_other.jwk.json")).unwrap();
        j["kid"] = json!(DOKA_KID);
        j
    };
    let with_header = |extra: serde_json::Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(DOKA_KID.into());
        let mut hv = serde_json::to_value(&header).unwrap();
        for (k, v) in extra.as_object().unwrap() {
            hv[k] = v.clone();
        }
        // Signed by the attacker's key, advertised through the header.
        let (k, _) = keygate::token::signing_key(&read_fixture("rsa_other.key")).unwrap();
        let msg =
            format!("{}.{}", b64(hv.to_string().as_bytes()), b64(good.to_string().as_bytes()));
        let sig =
            jsonwebtoken::crypto::sign(msg.as_bytes(), &k, jsonwebtoken::Algorithm::RS256).unwrap();
        format!("{msg}.{sig}")
    };
    let mut tampered: serde_json::Value = good.clone();
    tampered["sub"] = json!("admin");
    let mut exp_str = good.clone();
    exp_str["exp"] = json!((t + 600).to_string());
    let mut no_sub = good.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut crlf = good.clone();
    crlf["sub"] = json!("victim\r\nX-Auth-User-Id: admin");
    let mut wrong_type = good.clone();
    wrong_type["type"] = json!("admin");
    let mut nbf = good.clone();
    nbf["nbf"] = json!(t + 3600);
    let mut expired = good.clone();
    expired["iat"] = json!(t - 2000);
    expired["exp"] = json!(t - 1200);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            raw_token(json!({"alg": "none", "typ": "JWT"}), good.clone(), ""),
            "algorithm_not_allowed",
        ),
        (
            "alg None",
            raw_token(json!({"alg": "None", "kid": DOKA_KID}), good.clone(), ""),
            "algorithm_not_allowed",
        ),
        (
            "HS256 signed with the RSA public key",
            sign_hs(rsa_pub_pem.as_bytes(), "HS256", Some(DOKA_KID), good.clone()),
            "algorithm_not_allowed",
        ),
        (
            "kid path traversal",
            sign("rsa.key", "RS256", Some("../../../../../dev/null"), good.clone()),
            "unknown_key",
        ),
        ("jku header", with_header(json!({"jku": key_url})), "invalid_signature"),
        ("x5u header", with_header(json!({"x5u": key_url})), "invalid_signature"),
        ("embedded jwk header", with_header(json!({"jwk": attacker_jwk})), "invalid_signature"),
        ("signature stripped", format!("{h}.{p}."), "invalid_signature"),
        (
            "signature of another token",
            format!("{h}.{}.{s}", b64(tampered.to_string().as_bytes())),
            "invalid_signature",
        ),
        (
            "payload tampered",
            sign("rsa.key", "RS256", Some(DOKA_KID), good.clone()).replacen(
                &p,
                &b64(tampered.to_string().as_bytes()),
                1,
            ),
            "invalid_signature",
        ),
        (
            "exp as a string",
            sign("rsa.key", "RS256", Some(DOKA_KID), exp_str),
            "malformed_credentials",
        ),
        ("expired", sign("rsa.key", "RS256", Some(DOKA_KID), expired), "token_expired"),
        ("nbf in the future", sign("rsa.key", "RS256", Some(DOKA_KID), nbf), "token_not_yet_valid"),
        ("type mismatch", sign("rsa.key", "RS256", Some(DOKA_KID), wrong_type), "claim_mismatch"),
        (
            "workspace not allowed",
            sign("rsa.key", "RS256", Some(DOKA_KID), customer_claims("c", "OTHER999")),
            "claim_mismatch",
        ),
        ("missing sub", sign("rsa.key", "RS256", Some(DOKA_KID), no_sub), "missing_claim"),
        ("CRLF in sub", sign("rsa.key", "RS256", Some(DOKA_KID), crlf), "malformed_credentials"),
        (
            // Over max_token_bytes (8 KiB) but under max_request_header_bytes (32 KiB); a
            // 64 KiB head is refused before parsing (431, tests/it/limits.rs).
            "16 KiB token",
            format!("{h}.{}.{s}", "A".repeat(16 * 1024)),
            "malformed_credentials",
        ),
        ("non-base64 garbage", "%%%not a token at all%%%".to_string(), "malformed_credentials"),
        ("two segments", format!("{h}.{p}"), "malformed_credentials"),
        ("header not JSON", format!("{}.{p}.{s}", b64(b"not json")), "malformed_credentials"),
        ("crit header", with_header(json!({"crit": ["exp"]})), "malformed_credentials"),
    ];
    let before = up.hits();
    for (what, token, reason) in &cases {
        let r = kg.get("/api/v1/notifications", &[("Authorization", &format!("Bearer {token}"))]);
        assert_eq!((r.status, r.reason().as_str()), (401, *reason), "{what}: {}", r.text());
        assert!(!r.text().contains(token.as_str()), "{what}: token echoed");
    }
    assert_eq!(up.hits(), before, "an attack token reached the upstream");
    assert_eq!(fetches.load(Ordering::SeqCst), 0, "a jku/x5u URL was fetched");

    // RS/HS confusion where HS256 *is* allowed: the kid names an RSA key, which never verifies HS256.
    let multi = sign_hs(
        rsa_pub_pem.as_bytes(),
        "HS256",
        Some("rsa"),
        json!({"sub": "m", "iss": "issuer.test", "aud": "aud-1", "exp": t + 60}),
    );
    kg.get("/multi/x", &[("X-Multi-Token", &multi)]).assert_denied(401, "algorithm_not_allowed");
    // RFC 7519 §4.1.1: `iss` is one string; jsonwebtoken would accept an array holding one
    // configured issuer beside another (the fourth review).
    let iss = |iss: serde_json::Value| {
        let claims = json!({"sub": "m", "iss": iss, "aud": "aud-1", "exp": t + 60});
        sign("rsa.key", "RS256", Some("rsa"), claims)
    };
    let arrayed = iss(json!(["https://evil.test", "https://issuer.test"]));
    kg.get("/multi/x", &[("X-Multi-Token", &arrayed)]).assert_denied(401, "malformed_credentials");
    let single = iss(json!("https://issuer.test"));
    assert_eq!(kg.get("/multi/x", &[("X-Multi-Token", &single)]).status, 200);
    // The untampered token still works afterwards.
    let r = kg.get("/api/v1/notifications", &[("Authorization", &format!("Bearer {valid}"))]);
    assert_eq!(r.status, 200);
    // Nothing of a token appears in the logs.
    let logs = kg.logs();
    assert!(!logs.contains(&s[..40]), "a token signature appears in the logs");
}

#[test]
fn a_token_without_exp_needs_an_explicit_require() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let body = |require: &str| {
        format!(
            "authenticators:\n  j:\n    type: jwt\n    from: {{ header: authorization, scheme: Bearer }}\n    algorithms: [RS256]\n    keys: [{{ pem_file: \"{}\" }}]\n{require}routes: [{{ name: r, path: \"/{{*rest}}\", auth: [j] }}]\n",
            fixture("rsa.pub")
        )
    };
    let no_exp = sign("rsa.key", "RS256", None, json!({"sub": "u1"}));
    let bearer = format!("Bearer {no_exp}");
    let strict = Keygate::builder().config(body("")).upstream(up.addr).start();
    strict.get("/x", &[("Authorization", &bearer)]).assert_denied(401, "missing_claim");
    let lax = Keygate::builder().config(body("    require: [sub]\n")).upstream(up.addr).start();
    assert_eq!(lax.get("/x", &[("Authorization", &bearer)]).status, 200);
}
