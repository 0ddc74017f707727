//! Benchmark (not a test): what the verified-token cache saves. Verifies one RS256 token through
//! a real `jwt` authenticator with the cache disabled (full signature + claims check every time)
//! and enabled (SHA-256 of the token + one moka lookup after the first call).
//!
//! Run: `cargo bench --bench token_cache` (release profile). Prints ns per verification.

use std::hint::black_box;
use std::time::Instant;

use http::HeaderMap;
use keygate::auth::{Attempt, RequestParts};

fn config(cache_entries: u64) -> String {
    format!(
        r#"version: 1
listen: "127.0.0.1:1"
admin_listen: "127.0.0.1:2"
upstream: {{ url: "http://127.0.0.1:3" }}
token_cache: {{ max_entries: {cache_entries}, max_ttl_seconds: 300 }}
authenticators:
  user:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    algorithms: [RS256]
    keys: [{{ kid: k1, pem_file: "{dir}/tests/fixtures/rsa.pub" }}]
    require: [sub, exp]
routes: []
"#,
        dir = env!("CARGO_MANIFEST_DIR")
    )
}

fn run(label: &str, cache_entries: u64, headers: &HeaderMap, iterations: u32) -> f64 {
    let rt = keygate::ruleset::load_str(&config(cache_entries), "bench")
        .expect("bench config")
        .rules;
    let auth = rt.authenticator("user").expect("the bench authenticator");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tokio.block_on(async {
        let parts = RequestParts {
            headers,
            query: None,
            params: &[],
            socketio_auth: None,
            max_token_bytes: 8192,
            method: &http::Method::GET,
            body: None,
        };
        for _ in 0..100 {
            assert!(matches!(auth.verify(&parts).await, Attempt::Pass(_)));
        }
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(auth.verify(black_box(&parts)).await);
        }
        let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
        println!("{label:<38} {ns:>10.0} ns/verification");
        ns
    })
}

fn main() {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa.key"
    ))
    .unwrap();
    let (key, alg) = keygate::token::signing_key(&pem).unwrap();
    let now = keygate::token::now();
    let claims = serde_json::json!({"sub": "user-1", "iat": now, "exp": now + 3600});
    let token = keygate::token::sign(&key, alg, Some("k1"), claims.as_object().unwrap()).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());

    let cold = run("RS256 verify (cache disabled)", 0, &headers, 20_000);
    let hit = run(
        "token cache hit (cache enabled)",
        100_000,
        &headers,
        200_000,
    );
    println!(
        "cache hit is {:.0}x cheaper than an RS256 verification",
        cold / hit
    );
}
