//! Table-driven, in-process tests of every branch of `authorize` that allows or denies:
//! anonymous routes, alternatives in order, all-of members and their user ids, development
//! mode's public-key shortcut, `bind` (user id and claims), unforwardable identities,
//! revocations, and which reason wins when every alternative fails.

use super::*;
use crate::revocation::Revocation;
use crate::ruleset::Ruleset;
use http::HeaderMap;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn rules(mode: &str) -> Ruleset {
    let yaml = format!(
        r#"version: 1
mode: {mode}
listen: "127.0.0.1:1"
admin_listen: "127.0.0.1:2"
upstream: {{ url: "http://127.0.0.1:3" }}
identity: {{ claims: {{ org: x-auth-org }} }}
authenticators:
  pk:
    type: public_key
    from: {{ header: authorization, scheme: Bearer }}
    keys: [{{ name: web, value: pk_1 }}]
    user_id_from: {{ header: x-user }}
  user:
    type: jwt
    from: {{ header: x-user-token }}
    algorithms: [RS256]
    keys: [{{ kid: k1, pem_file: "{rsa}" }}]
  key:
    type: api_key
    from: {{ header: x-api-key }}
    keys: [{{ name: ingest, value: key_1 }}]
  other:
    type: jwt
    from: {{ header: x-other-token }}
    algorithms: [RS256]
    keys: [{{ kid: k1, pem_file: "{rsa}" }}]
routes:
  - {{ name: open, path: /open, auth: anonymous }}
  - {{ name: pair, path: "/u/{{user}}", auth: [[pk, user]], bind: {{ user_id: "{{user}}" }} }}
  - {{ name: either, path: /either, auth: [key, user] }}
  - {{ name: org, path: "/org/{{org}}", auth: [user], bind: {{ claims.org: "{{org}}" }} }}
  - {{ name: two_jwts, path: /two, auth: [[user, other]] }}
"#,
        rsa = fixture("rsa.pub")
    );
    crate::ruleset::load_str(&yaml, "test.yaml").unwrap().rules
}

fn token(claims: serde_json::Value) -> String {
    let pem = std::fs::read_to_string(fixture("rsa.key")).unwrap();
    let (k, alg) = crate::token::signing_key(&pem).unwrap();
    let now = crate::token::now();
    let mut c = serde_json::json!({"iat": now, "exp": now + 600});
    c.as_object_mut()
        .unwrap()
        .extend(claims.as_object().unwrap().clone());
    crate::token::sign(&k, alg, Some("k1"), c.as_object().unwrap()).unwrap()
}

/// Authorizes a request on route `route` with `headers` and path parameters `params`:
/// `allow <user|->` or `deny <reason>`.
fn run(
    rules: &Ruleset,
    route: &str,
    params: &[(&str, &str)],
    headers: &[(&str, String)],
    revoked: &[Revocation],
) -> String {
    let route = rules
        .routes
        .routes
        .iter()
        .find(|r| &*r.name == route)
        .unwrap();
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let parts = RequestParts {
        headers: &h,
        query: None,
        params: &params,
        socketio_auth: None,
        max_token_bytes: 8192,
        method: &http::Method::GET,
        body: None,
    };
    let revocations = Revocations::new(revoked.to_vec(), vec![]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(authorize(
        route,
        &rules.authenticators,
        rules.mode,
        &parts,
        &revocations,
        &mut (),
    ));
    match got {
        Ok(Some(id)) => format!("allow {}", id.user_id.as_deref().unwrap_or("-")),
        Ok(None) => "allow anonymous".into(),
        Err(r) => format!("deny {r}"),
    }
}

#[test]
fn every_branch_of_authorize() {
    let prod = rules("production");
    let dev = rules("development");
    let u1 = token(serde_json::json!({"sub": "u1", "org": "acme"}));
    let u2 = token(serde_json::json!({"sub": "u2"}));
    let nul = token(serde_json::json!({"sub": "u1\u{0}x"}));
    let expired = {
        let pem = std::fs::read_to_string(fixture("rsa.key")).unwrap();
        let (k, alg) = crate::token::signing_key(&pem).unwrap();
        let c = serde_json::json!({"sub": "u1", "exp": 1000});
        crate::token::sign(&k, alg, Some("k1"), c.as_object().unwrap()).unwrap()
    };
    let s = |v: &str| v.to_string();
    let by_sub = |sub: &str| Revocation {
        sub: Some(sub.into()),
        ..Revocation::default()
    };
    type Row<'a> = (
        &'a Ruleset,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<(&'a str, String)>,
        Vec<Revocation>,
        &'a str,
    );
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        // Anonymous.
        (&prod, "open", vec![], vec![], vec![], "allow anonymous"),
        // All-of: both present and agreeing, bound to the path.
        (&prod, "pair", vec![("user", "u1")], vec![("authorization", s("Bearer pk_1")), ("x-user", s("u1")), ("x-user-token", u1.clone())], vec![], "allow u1"),
        // In production the public key names no user (x-user is not read)...
        (&prod, "pair", vec![("user", "u1")], vec![("authorization", s("Bearer pk_1")), ("x-user", s("u2")), ("x-user-token", u1.clone())], vec![], "allow u1"),
        // ...in development it does, and all-of members must agree on it.
        (&dev, "pair", vec![("user", "u1")], vec![("authorization", s("Bearer pk_1")), ("x-user", s("u2")), ("x-user-token", u1.clone())], vec![], "deny identity_mismatch"),
        // bind: the token's user is not the path's.
        (&prod, "pair", vec![("user", "u2")], vec![("authorization", s("Bearer pk_1")), ("x-user-token", u1.clone())], vec![], "deny identity_mismatch"),
        // A member absent in production: missing credentials.
        (&prod, "pair", vec![("user", "u1")], vec![("authorization", s("Bearer pk_1")), ("x-user", s("u1"))], vec![], "deny missing_credentials"),
        // Development: a public key alone authenticates the claimed user...
        (&dev, "pair", vec![("user", "u1")], vec![("authorization", s("Bearer pk_1")), ("x-user", s("u1"))], vec![], "allow u1"),
        // ...but present credentials are still verified, and bind still holds.
        (&dev, "pair", vec![("user", "u1")], vec![("authorization", s("Bearer pk_1")), ("x-user", s("u1")), ("x-user-token", s("garbage"))], vec![], "deny malformed_credentials"),
        (&dev, "pair", vec![("user", "u2")], vec![("authorization", s("Bearer pk_1")), ("x-user", s("u1"))], vec![], "deny identity_mismatch"),
        // Development without a passing public key: no shortcut.
        (&dev, "pair", vec![("user", "u1")], vec![("x-user-token", u1.clone())], vec![], "deny missing_credentials"),
        (&dev, "pair", vec![("user", "u1")], vec![("authorization", s("Bearer pk_2")), ("x-user", s("u1"))], vec![], "deny invalid_api_key"),
        // Alternatives in order: the first that passes wins; a failing one is skipped.
        (&prod, "either", vec![], vec![("x-api-key", s("key_1"))], vec![], "allow -"),
        (&prod, "either", vec![], vec![("x-api-key", s("nope")), ("x-user-token", u2.clone())], vec![], "allow u2"),
        // All fail: the most specific reason (an expired token over an unknown key).
        (&prod, "either", vec![], vec![("x-api-key", s("nope")), ("x-user-token", expired.clone())], vec![], "deny token_expired"),
        (&prod, "either", vec![], vec![], vec![], "deny missing_credentials"),
        // bind on a claim.
        (&prod, "org", vec![("org", "acme")], vec![("x-user-token", u1.clone())], vec![], "allow u1"),
        (&prod, "org", vec![("org", "other")], vec![("x-user-token", u1.clone())], vec![], "deny identity_mismatch"),
        (&prod, "org", vec![("org", "acme")], vec![("x-user-token", u2.clone())], vec![], "deny identity_mismatch"),
        // An identity that cannot be forwarded verbatim.
        (&prod, "either", vec![], vec![("x-user-token", nul.clone())], vec![], "deny malformed_credentials"),
        // Revoked: refused, and the next alternative may still pass.
        (&prod, "either", vec![], vec![("x-user-token", u1.clone())], vec![by_sub("u1")], "deny credential_revoked"),
        (&prod, "either", vec![], vec![("x-api-key", s("key_1")), ("x-user-token", u1.clone())], vec![by_sub("u1")], "allow -"),
        (&prod, "either", vec![], vec![("x-user-token", u2.clone())], vec![by_sub("u1")], "allow u2"),
        // Two JWTs of one all-of must name the same user.
        (&prod, "two_jwts", vec![], vec![("x-user-token", u1.clone()), ("x-other-token", u1.clone())], vec![], "allow u1"),
        (&prod, "two_jwts", vec![], vec![("x-user-token", u1.clone()), ("x-other-token", u2.clone())], vec![], "deny identity_mismatch"),
    ];
    let mut failures = Vec::new();
    for (i, (rules, route, params, headers, revoked, want)) in table.iter().enumerate() {
        let got = run(rules, route, params, headers, revoked);
        if got != *want {
            failures.push(format!("row {i} ({route}): got `{got}`, want `{want}`"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
