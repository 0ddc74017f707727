//! JWK-set providers against a real HTTP JWK-set server the test controls: rotation, outage,
//! floods of random kids, slow providers, unusable keys, start-up, issuer/audience styles,
//! discovery, and the verified-token cache.

use crate::common::jwks_server::{jwk, JwksServer};
use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn rsa_jwk(kid: &str) -> serde_json::Value {
    jwk("rsa.jwk.json", Some(kid), json!({"alg": "RS256", "use": "sig"}))
}

fn other_jwk(kid: &str) -> serde_json::Value {
    jwk("rsa_other.jwk.json", Some(kid), json!({}))
}

fn claims(sub: &str) -> serde_json::Value {
    let t = now();
    json!({"sub": sub, "iss": "https://issuer.test", "iat": t, "exp": t + 600})
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// keygate with authenticator `idp` reading `url` (a `jwks_url:` or `openid_configuration_url:`
/// line) with `jwks` settings, on `/idp/{*rest}`, plus a static-key route on `/static/{*rest}`.
fn start(url_line: &str, jwks: &str) -> (Echo, Keygate) {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let body = format!(
        r#"authenticators:
  idp:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    {url_line}
    issuers: ["https://issuer.test"]
    algorithms: [RS256]
    jwks: {jwks}
  fixed:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{{ kid: s1, pem_file: "{}" }}]
routes:
  - {{ name: idp, path: "/idp/{{*rest}}", auth: [idp] }}
  - {{ name: fixed, path: "/static/{{*rest}}", auth: [fixed] }}
"#,
        fixture("rsa.pub")
    );
    let kg = Keygate::builder().config(&body).upstream(up.addr).start();
    (up, kg)
}

#[test]
fn a_new_kid_passes_after_exactly_one_fetch_even_with_100_concurrent_requests() {
    let srv = JwksServer::start(vec![rsa_jwk("k1")]);
    let (_up, kg) =
        start(&format!("jwks_url: \"{}\"", srv.url()), "{ min_refresh_interval_seconds: 1 }");
    kg.wait_readyz(200, 10);
    assert_eq!(srv.fetches(), 1);
    let t1 = sign("rsa.key", "RS256", Some("k1"), claims("u1"));
    let r = kg.get("/idp/x", &[("Authorization", &bearer(&t1))]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-credential").as_deref(), Some("idp/k1"));

    srv.set(|b| b.keys.push(other_jwk("k2")));
    std::thread::sleep(Duration::from_millis(1100)); // past min_refresh_interval_seconds
    let t2 = sign("rsa_other.key", "RS256", Some("k2"), claims("u2"));
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let (addr, t2) = (kg.addr, t2.clone());
            std::thread::spawn(move || {
                request(addr, "GET", "/idp/x", &[("Authorization", &bearer(&t2))], b"").status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(srv.fetches(), 2, "exactly one fetch for the new kid");
    assert_eq!(
        kg.metric("keygate_jwks_fetches_total{authenticator=\"idp\",result=\"ok\"}"),
        Some(2.0)
    );
    assert_eq!(kg.metric("keygate_jwks_keys{authenticator=\"idp\"}"), Some(2.0));
}

#[test]
fn a_removed_kid_fails_after_the_next_refresh_cached_verifications_included() {
    let srv = JwksServer::start(vec![rsa_jwk("k1"), other_jwk("k2")]);
    srv.set(|b| b.cache_control = Some("public, max-age=1".into())); // shortens refresh_seconds
    let (_up, kg) = start(
        &format!("jwks_url: \"{}\"", srv.url()),
        "{ refresh_seconds: 3600, min_refresh_interval_seconds: 1 }",
    );
    kg.wait_readyz(200, 10);
    let t1 = sign("rsa.key", "RS256", Some("k1"), claims("u1"));
    for _ in 0..3 {
        assert_eq!(kg.get("/idp/x", &[("Authorization", &bearer(&t1))]).status, 200);
    }
    assert!(
        kg.metric("keygate_token_cache_hits_total").unwrap() >= 2.0,
        "repeated token served from the cache"
    );
    srv.set(|b| b.keys.retain(|k| k["kid"] != "k1"));
    let before = srv.fetches();
    let r = eventually("the removed key refused", Duration::from_secs(8), || {
        let r = kg.get("/idp/x", &[("Authorization", &bearer(&t1))]);
        (r.status == 401).then_some(r)
    });
    assert_eq!(r.reason(), "unknown_key");
    assert!(srv.fetches() > before, "a refresh (max-age=1) removed the key");
    // The remaining key still works.
    let t2 = sign("rsa_other.key", "RS256", Some("k2"), claims("u2"));
    assert_eq!(kg.get("/idp/x", &[("Authorization", &bearer(&t2))]).status, 200);
}

#[test]
fn outage_serves_stale_keys_then_503_then_recovers() {
    let srv = JwksServer::start(vec![rsa_jwk("k1")]);
    srv.set(|b| b.cache_control = Some("max-age=1".into()));
    let (_up, kg) = start(
        &format!("jwks_url: \"{}\"", srv.url()),
        "{ refresh_seconds: 3600, min_refresh_interval_seconds: 1, stale_if_error_seconds: 3, timeout_ms: 300 }",
    );
    kg.wait_readyz(200, 10);
    let t1 = sign("rsa.key", "RS256", Some("k1"), claims("u1"));
    srv.set(|b| b.down = true);
    let went_down = Instant::now();
    // Within the stale window every request passes on the last good keys.
    while went_down.elapsed() < Duration::from_millis(2500) {
        let r = kg.get("/idp/x", &[("Authorization", &bearer(&t1))]);
        assert_eq!(r.status, 200, "{:?} after the outage began: {}", went_down.elapsed(), r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Then 503 key_source_unavailable, cached verifications included; /readyz says why.
    let r = eventually("stale keys to expire", Duration::from_secs(6), || {
        let r = kg.get("/idp/x", &[("Authorization", &bearer(&t1))]);
        (r.status == 503).then_some(r)
    });
    r.assert_denied(503, "key_source_unavailable");
    let ready = kg.admin_get("/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["missing_keys"], json!(["idp"]));
    assert!(
        ready.json()["errors"]["idp"].as_str().unwrap().starts_with("error"),
        "{}",
        ready.text()
    );
    assert!(
        kg.metric("keygate_jwks_fetches_total{authenticator=\"idp\",result=\"error\"}").unwrap()
            >= 1.0
    );
    // The provider comes back: recovery without restart.
    srv.set(|b| b.down = false);
    eventually("recovery", Duration::from_secs(10), || {
        (kg.get("/idp/x", &[("Authorization", &bearer(&t1))]).status == 200).then_some(())
    });
    kg.wait_readyz(200, 5);
}

#[test]
fn a_flood_of_random_kids_fetches_at_most_once_per_interval() {
    let srv = JwksServer::start(vec![rsa_jwk("k1")]);
    let (_up, kg) =
        start(&format!("jwks_url: \"{}\"", srv.url()), "{ min_refresh_interval_seconds: 2 }");
    kg.wait_readyz(200, 10);
    std::thread::sleep(Duration::from_millis(2100)); // a fetch is allowed again
    let before = srv.fetches();
    let started = Instant::now();
    // 20 waves of 20 concurrent requests, each with a kid never seen: every request waits for
    // the next scheduled fetch at most, and fetches stay one per interval.
    let mut results: Vec<(u16, String)> = Vec::new();
    for wave in 0..20 {
        let threads: Vec<_> = (0..20)
            .map(|i| {
                let addr = kg.addr;
                std::thread::spawn(move || {
                    let kid = format!("random-{wave}-{i}");
                    let tok = sign("rsa.key", "RS256", Some(&kid), claims("u"));
                    let r =
                        request(addr, "GET", "/idp/x", &[("Authorization", &bearer(&tok))], b"");
                    (r.status, r.reason())
                })
            })
            .collect();
        results.extend(threads.into_iter().map(|h| h.join().unwrap()));
        if started.elapsed() > Duration::from_secs(12) {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(results.len() >= 100, "{} requests in {elapsed}s", results.len());
    assert!(results.iter().all(|(s, r)| *s == 401 && r == "unknown_key"), "{:?}", &results[..5]);
    let fetched = srv.fetches() - before;
    assert!(
        fetched >= 1 && fetched as f64 <= 1.0 + elapsed / 2.0,
        "{fetched} fetches in {elapsed}s"
    );
}

#[test]
fn a_slow_provider_answers_503_within_the_timeout_and_other_routes_are_unaffected() {
    let srv = JwksServer::start(vec![rsa_jwk("k1")]);
    srv.set(|b| b.delay = Duration::from_secs(3));
    let (_up, kg) = start(
        &format!("jwks_url: \"{}\"", srv.url()),
        "{ timeout_ms: 500, min_refresh_interval_seconds: 1 }",
    );
    let t1 = sign("rsa.key", "RS256", Some("k1"), claims("u1"));
    let fixed = sign("rsa.key", "RS256", Some("s1"), claims("u1"));
    for _ in 0..5 {
        let started = Instant::now();
        let r = kg.get("/idp/x", &[("Authorization", &bearer(&t1))]);
        r.assert_denied(503, "key_source_unavailable");
        // Within the 500 ms fetch timeout (plus slack for a loaded machine), never the
        // provider's 3 s.
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
        let started = Instant::now();
        let r = kg.get("/static/x", &[("Authorization", &bearer(&fixed))]);
        assert_eq!(r.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "static route waited for the provider: {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        kg.metric("keygate_jwks_fetches_total{authenticator=\"idp\",result=\"timeout\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    // Once it is fast again, keys arrive.
    srv.set(|b| b.delay = Duration::ZERO);
    kg.wait_readyz(200, 10);
    assert_eq!(kg.get("/idp/x", &[("Authorization", &bearer(&t1))]).status, 200);
}

#[test]
fn unusable_keys_are_skipped_and_the_usable_ones_work() {
    let srv = JwksServer::start(vec![
        jwk("rsa_other.jwk.json", Some("enc1"), json!({"use": "enc"})),
        json!({"kty": "oct", "kid": "oct1", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}),
        jwk("rsa_other.jwk.json", None, json!({})), // no kid in a set of several
        json!({"kty": "EC", "kid": "bad-ec", "crv": "P-256", "x": "AAAA", "y": "AAAA"}),
        json!({"kty": "RSA", "kid": "ps-only", "alg": "PS256", "n": "AQAB", "e": "AQAB"}),
        rsa_jwk("good"),
    ]);
    let (_up, kg) = start(&format!("jwks_url: \"{}\"", srv.url()), "{}");
    kg.wait_readyz(200, 10);
    let ok = sign("rsa.key", "RS256", Some("good"), claims("u"));
    assert_eq!(kg.get("/idp/x", &[("Authorization", &bearer(&ok))]).status, 200);
    let enc = sign("rsa_other.key", "RS256", Some("enc1"), claims("u"));
    kg.get("/idp/x", &[("Authorization", &bearer(&enc))]).assert_denied(401, "unknown_key");
    let hs = sign_hs(b"secret-secret-secret-secret-secret", "HS256", Some("oct1"), claims("u"));
    kg.get("/idp/x", &[("Authorization", &bearer(&hs))])
        .assert_denied(401, "algorithm_not_allowed");
    assert_eq!(kg.metric("keygate_jwks_keys{authenticator=\"idp\"}"), Some(1.0));
    assert_eq!(kg.metric("keygate_jwks_skipped_keys{authenticator=\"idp\"}"), Some(5.0));
}

#[test]
fn start_up_with_the_provider_down_then_up() {
    let srv = JwksServer::start(vec![rsa_jwk("k1")]);
    srv.set(|b| b.down = true);
    let (_up, kg) = start(
        &format!("jwks_url: \"{}\"", srv.url()),
        "{ min_refresh_interval_seconds: 1, timeout_ms: 300 }",
    );
    // keygate serves at once; the provider's routes answer 503 and /readyz says which.
    let t1 = sign("rsa.key", "RS256", Some("k1"), claims("u1"));
    kg.get("/idp/x", &[("Authorization", &bearer(&t1))])
        .assert_denied(503, "key_source_unavailable");
    let fixed = sign("rsa.key", "RS256", Some("s1"), claims("u1"));
    assert_eq!(kg.get("/static/x", &[("Authorization", &bearer(&fixed))]).status, 200);
    let r = kg.admin_get("/readyz");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["missing_keys"], json!(["idp"]));
    srv.set(|b| b.down = false);
    kg.wait_readyz(200, 15);
    assert_eq!(kg.get("/idp/x", &[("Authorization", &bearer(&t1))]).status, 200);
}

#[test]
fn google_and_firebase_issuer_and_audience_styles() {
    let srv = JwksServer::start(vec![rsa_jwk("g1")]);
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let body = format!(
        r#"authenticators:
  google:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    jwks_url: "{url}"
    issuers: ["https://accounts.google.com", "accounts.google.com"]
    audiences: ["1234.apps.googleusercontent.com"]
    algorithms: [RS256]
  firebase:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    jwks_url: "{url}"
    issuers: ["https://securetoken.google.com/my-project"]
    audiences: ["my-project"]
    algorithms: [RS256]
routes:
  - {{ name: google, path: "/g/{{*rest}}", auth: [google] }}
  - {{ name: firebase, path: "/f/{{*rest}}", auth: [firebase] }}
"#,
        url = srv.url()
    );
    let kg = Keygate::builder().config(&body).upstream(up.addr).start();
    kg.wait_readyz(200, 10);
    let t = now();
    let tok = |iss: &str, aud: serde_json::Value| {
        sign(
            "rsa.key",
            "RS256",
            Some("g1"),
            json!({"sub": "s", "iss": iss, "aud": aud, "iat": t, "exp": t + 300}),
        )
    };
    let get = |p: &str, tk: String| kg.get(p, &[("Authorization", &bearer(&tk))]);
    assert_eq!(
        get("/g/x", tok("https://accounts.google.com", json!("1234.apps.googleusercontent.com")))
            .status,
        200
    );
    assert_eq!(
        get("/g/x", tok("accounts.google.com", json!("1234.apps.googleusercontent.com"))).status,
        200
    );
    assert_eq!(
        get(
            "/g/x",
            tok("accounts.google.com", json!(["other", "1234.apps.googleusercontent.com"]))
        )
        .status,
        200
    );
    get("/g/x", tok("https://evil.example", json!("1234.apps.googleusercontent.com")))
        .assert_denied(401, "invalid_issuer");
    get("/g/x", tok("accounts.google.com", json!("5678.apps.googleusercontent.com")))
        .assert_denied(401, "invalid_audience");
    assert_eq!(
        get("/f/x", tok("https://securetoken.google.com/my-project", json!("my-project"))).status,
        200
    );
    get("/f/x", tok("https://securetoken.google.com/other", json!("my-project")))
        .assert_denied(401, "invalid_issuer");
    get("/f/x", tok("https://securetoken.google.com/my-project", json!("other")))
        .assert_denied(401, "invalid_audience");
    // A Google token is not a Firebase token.
    get("/f/x", tok("https://accounts.google.com", json!("1234.apps.googleusercontent.com")))
        .assert_denied(401, "invalid_issuer");
}

#[test]
fn openid_configuration_discovery_and_issuer_mismatch() {
    let srv = JwksServer::start(vec![rsa_jwk("d1")]);
    let (_up, kg) = start(
        &format!("openid_configuration_url: \"{}\"", srv.discovery_url()),
        "{ min_refresh_interval_seconds: 1 }",
    );
    kg.wait_readyz(200, 10);
    let t1 = sign("rsa.key", "RS256", Some("d1"), claims("u1"));
    assert_eq!(kg.get("/idp/x", &[("Authorization", &bearer(&t1))]).status, 200);

    let bad = JwksServer::start(vec![rsa_jwk("d1")]);
    bad.set(|b| b.issuer = "https://impostor.test".into());
    let (_up2, kg2) = start(
        &format!("openid_configuration_url: \"{}\"", bad.discovery_url()),
        "{ min_refresh_interval_seconds: 1 }",
    );
    eventually("an issuer_mismatch fetch", Duration::from_secs(10), || {
        kg2.metric("keygate_jwks_fetches_total{authenticator=\"idp\",result=\"issuer_mismatch\"}")
    });
    let r = kg2.admin_get("/readyz");
    assert_eq!(r.status, 503);
    assert!(
        r.json()["errors"]["idp"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", r.text()))
            .starts_with("issuer_mismatch"),
        "{}",
        r.text()
    );
    assert_eq!(bad.fetches(), 0, "the JWK set of a mismatched issuer is never fetched");
    kg2.get("/idp/x", &[("Authorization", &bearer(&t1))])
        .assert_denied(503, "key_source_unavailable");
}

#[test]
fn reloads_do_not_multiply_fetch_loops() {
    let srv = JwksServer::start(vec![rsa_jwk("k1")]);
    srv.set(|b| b.cache_control = Some("max-age=1".into()));
    let (_up, kg) =
        start(&format!("jwks_url: \"{}\"", srv.url()), "{ min_refresh_interval_seconds: 1 }");
    kg.wait_readyz(200, 10);
    let path = kg.config_path();
    for i in 0..4 {
        let text = std::fs::read_to_string(&path).unwrap() + &format!("# reload {i}\n");
        std::fs::write(&path, text).unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(
        kg.metric(r#"keygate_config_reloads_total{result="ok"}"#).unwrap() >= 2.0,
        "the reloads happened"
    );
    let t1 = sign("rsa.key", "RS256", Some("k1"), claims("u1"));
    assert_eq!(
        kg.get("/idp/x", &[("Authorization", &bearer(&t1))]).status,
        200,
        "keys carried over the reloads"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let before = srv.fetches();
    std::thread::sleep(Duration::from_secs(4));
    let fetched = srv.fetches() - before;
    // One live provider refreshing every ~1 s (max-age=1): about 4 fetches, not one per reload.
    assert!(fetched <= 6, "{fetched} fetches in 4 s after 4 reloads: old providers still fetching");
    assert!(fetched >= 2, "the live provider stopped refreshing");
}

#[test]
fn an_over_long_kid_is_unknown_without_a_fetch() {
    let srv = JwksServer::start(vec![rsa_jwk("k1")]);
    let (_up, kg) =
        start(&format!("jwks_url: \"{}\"", srv.url()), "{ min_refresh_interval_seconds: 1 }");
    kg.wait_readyz(200, 10);
    std::thread::sleep(Duration::from_millis(1100)); // a fetch is allowed again
    let before = srv.fetches();
    let long = "k".repeat(1000);
    let tok = sign("rsa.key", "RS256", Some(&long), claims("u"));
    kg.get("/idp/x", &[("Authorization", &bearer(&tok))]).assert_denied(401, "unknown_key");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(srv.fetches(), before, "a 1000-byte kid made keygate fetch");
    // A kid of ordinary length still triggers the one allowed fetch.
    let tok = sign("rsa.key", "RS256", Some("k2"), claims("u"));
    kg.get("/idp/x", &[("Authorization", &bearer(&tok))]).assert_denied(401, "unknown_key");
    assert_eq!(srv.fetches(), before + 1);
}

#[test]
fn a_kid_published_right_after_a_fetch_verifies_for_50_concurrent_requests_after_one_fetch() {
    let srv = JwksServer::start(vec![rsa_jwk("k1")]);
    let (_up, kg) =
        start(&format!("jwks_url: \"{}\"", srv.url()), "{ min_refresh_interval_seconds: 2 }");
    kg.wait_readyz(200, 10);
    let fetched_at = Instant::now();
    assert_eq!(srv.fetches(), 1);
    // The provider rotates in a new key just after keygate fetched; 50 clients use it at once,
    // inside the rate-limit interval. They wait for the one fetch scheduled at its end.
    srv.set(|b| b.keys.push(other_jwk("k2")));
    let t2 = sign("rsa_other.key", "RS256", Some("k2"), claims("u2"));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (addr, t2) = (kg.addr, t2.clone());
            std::thread::spawn(move || {
                let r = request(addr, "GET", "/idp/x", &[("Authorization", &bearer(&t2))], b"");
                (r.status, r.reason())
            })
        })
        .collect();
    let results: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert!(fetched_at.elapsed() >= Duration::from_millis(1900), "waited for the interval");
    assert_eq!(srv.fetches(), 2, "exactly one further fetch");
    let auth = [("Authorization", bearer(&t2))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(kg.get("/idp/x", &auth).status, 200);
    assert_eq!(srv.fetches(), 2, "at most one fetch per interval");
}
