//! Unit tests of `condition`: load-time errors and evaluation over real request parts.

use super::*;
use http::{HeaderMap, Method};
use serde_json::json;

fn parts<'a>(
    h: &'a HeaderMap,
    q: Option<&'a str>,
    params: &'a [(String, String)],
) -> RequestParts<'a> {
    RequestParts {
        headers: h,
        query: q,
        params,
        socketio_auth: None,
        max_token_bytes: 4096,
        method: &Method::GET,
        body: None,
    }
}

fn user(claims: serde_json::Value) -> Identity {
    let serde_json::Value::Object(m) = claims else {
        panic!()
    };
    Identity {
        user_id: Some("user-1".into()),
        full_claims: Some(Arc::new(m)),
        ..Identity::app(
            "public_key+jwt".into(),
            "knock_public/web,knock_user/key-0".into(),
        )
    }
}

fn eval(expr: &str, id: &Identity, path: &[(&str, &str)]) -> Result<bool, String> {
    let params: Vec<(String, String)> = path
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut h = HeaderMap::new();
    h.insert("x-knock-client", "js/1.0".parse().unwrap());
    h.append("accept", "a".parse().unwrap());
    h.append("accept", "b".parse().unwrap());
    Condition::compile(expr)
        .unwrap()
        .evaluate(id, &parts(&h, Some("page=2&page=3&x=%20y"), &params))
}

const KNOCK: &str =
    r#"has(claims.grants) && ("https://api.knock.app/v1/users/" + path.user_id) in claims.grants"#;

#[test]
fn knock_grants_name_the_paths_user() {
    let id = user(
        json!({"sub": "user-1", "grants": {"https://api.knock.app/v1/users/user-1": {"users/feed": ["read"]}}}),
    );
    assert_eq!(eval(KNOCK, &id, &[("user_id", "user-1")]), Ok(true));
    assert_eq!(eval(KNOCK, &id, &[("user_id", "user-2")]), Ok(false));
    assert_eq!(
        eval(
            KNOCK,
            &user(json!({"sub": "user-1"})),
            &[("user_id", "user-1")]
        ),
        Ok(false)
    );
}

#[test]
fn every_variable_is_provided() {
    let id = user(json!({"scope": {"tenant_id": "t1"}, "n": 5, "big": 18446744073709551615u64}));
    let ok = |e: &str| assert_eq!(eval(e, &id, &[("tenant", "t1")]), Ok(true), "{e}");
    ok(r#"claims.scope.tenant_id == path.tenant"#);
    ok(r#"claims.n > 4 && claims.n == 5"#);
    ok(r#"identity.user_id == "user-1" && identity.method == "public_key+jwt""#);
    ok(r#"identity.credential.startsWith("knock_public/")"#);
    ok(r#"method == "GET""#);
    ok(r#"query.page == "2" && query.x == " y""#);
    ok(r#"headers["x-knock-client"].startsWith("js/") && headers.accept == "a, b""#);
    ok(r#"!("authorization" in headers)"#);
    ok(r#"size(path) == 1 && path.tenant.matches("^t[0-9]$")"#);
    ok(r#"[1, 2].exists(x, x == 2) && ["a"].all(s, s.size() == 1)"#);
}

#[test]
fn evaluation_errors_refuse_and_name_no_values() {
    let id = user(json!({"secretish": "tok_123"}));
    let e = eval(r#"claims.tenant == "x""#, &id, &[]).unwrap_err();
    assert!(e.contains("tenant"), "{e}");
    let e = eval(r#"claims.secretish + 1 == 2"#, &id, &[]).unwrap_err();
    assert!(!e.contains("tok_123"), "{e}");
    // No JWT: claims is an empty map.
    let app = Identity::app("api_key".into(), "keys/ci".into());
    assert!(eval(r#"claims.sub == "x""#, &app, &[]).is_err());
    assert_eq!(
        eval(r#"!has(claims.sub) && !has(identity.user_id)"#, &app, &[]),
        Ok(true)
    );
}

#[test]
fn load_time_errors_name_the_problem() {
    let err = |e: &str| Condition::compile(e).unwrap_err();
    assert!(err("claims.grants &&").contains("syntax error at line 1"));
    assert!(err("claim.sub == 'x'").contains("unknown variable `claim`"));
    assert!(err("identity.email == 'x'").contains("identity has no field `email`"));
    assert!(err("'a' + 1 == 'a1'").contains("no `+` for (string, int)"));
    assert!(err("path.user_id").contains("not a bool"));
    assert!(err("frobnicate(method)").contains("unknown function `frobnicate`"));
    assert!(err("method.x == 'y'").contains("on a string"));
    assert!(err("!path").contains("no `!`"));
    assert!(err("'${NOT_A_SECRET' +").starts_with("CEL syntax error"));
    assert!(!Condition::compile("claims.a == 1").unwrap().needs[2]);
    assert!(Condition::compile("claims.a == 1").unwrap().needs_claims());
    assert!(!Condition::compile("path.a == 'x'").unwrap().needs_claims());
}
