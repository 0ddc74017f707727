//! Benchmark (not a test): the per-request cost of issue 19's features on their own, without
//! the proxy around them: signing one identity assertion (ES256 and EdDSA, through jsonwebtoken
//! with the aws-lc-rs backend, a fresh `jti` each time) and evaluating one `allow_if` (Knock's
//! grants condition, with the `claims`, `path` maps built per request).
//!
//! Run: `cargo bench --bench assertion` (release profile). Prints µs per operation.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method};
use keygate::auth::{Identity, RequestParts};

fn rules(key: &str) -> keygate::ruleset::Ruleset {
    let text = format!(
        r#"version: 1
listen: "127.0.0.1:1"
admin_listen: "127.0.0.1:2"
upstream: {{ url: "http://127.0.0.1:3" }}
identity:
  assertion: {{ key_file: "{dir}/tests/fixtures/{key}", audience: backend }}
authenticators:
  user:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{{ pem_file: "{dir}/tests/fixtures/rsa.pub" }}]
routes:
  - name: feed
    path: "/v1/users/{{user_id}}/feeds/{{feed_id}}"
    auth: [user]
    allow_if: 'has(claims.grants) && ("https://api.knock.app/v1/users/" + path.user_id) in claims.grants'
"#,
        dir = env!("CARGO_MANIFEST_DIR")
    );
    keygate::ruleset::load_str(&text, "bench")
        .expect("bench config")
        .rules
}

fn time(label: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!("{label:<44} {us:>8.2} µs");
}

fn main() {
    let claims = serde_json::json!({
        "sub": "user-1", "iat": 1, "exp": 2,
        "grants": {"https://api.knock.app/v1/users/user-1": {"user/feed_read": []}}
    });
    let id = Identity {
        user_id: Some("user-1".into()),
        claims: vec![("workspace_id".into(), "w1".into())],
        full_claims: claims.as_object().cloned().map(Arc::new),
        ..Identity::app(
            "public_key+jwt".into(),
            "knock_public/web,knock_user/k1".into(),
        )
    };
    for (key, alg) in [("ec256.key", "ES256"), ("ed25519.key", "EdDSA")] {
        let rt = rules(key);
        time(&format!("sign an assertion ({alg})"), 20_000, || {
            black_box(rt.sign_assertion(black_box(&id), "feed").unwrap());
        });
    }
    let rt = rules("ec256.key");
    let headers = HeaderMap::new();
    let params = vec![
        ("user_id".to_string(), "user-1".to_string()),
        ("feed_id".into(), "f".into()),
    ];
    let parts = RequestParts {
        headers: &headers,
        query: Some("page_size=50"),
        params: &params,
        socketio_auth: None,
        max_token_bytes: 8192,
        method: &Method::GET,
        body: None,
    };
    time("evaluate allow_if (Knock grants)", 200_000, || {
        assert_eq!(
            rt.evaluate_condition("feed", black_box(&id), &parts),
            Some(Ok(true))
        );
    });
}
