//! A reload that fails, at whichever step (YAML, restart-only settings, an authenticator, the
//! routes, or a check after the routes), leaves `/metrics` exactly as it was, but for the
//! `process_*` series, the timestamp gauges and the reload error counter, which goes up by one.
//! Each broken config adds an authenticator and routes of new names first, so a compile step
//! that registered series (or started fetch loops) as it went would show here.

use crate::common::*;
use std::time::Duration;

/// The config in force: an anonymous route and one behind an API key.
const GOOD: &str = r#"authenticators:
  keyed:
    type: api_key
    from: { header: x-api-key }
    keys: [{ name: k, value: "key-1" }]
"#;
const GOOD_ROUTES: &str = r#"routes:
  - { name: open, path: "/open/{*rest}", auth: anonymous }
  - { name: api, path: "/api/{*rest}", auth: [keyed] }
"#;

/// A valid new authenticator, compiled before any broken one.
const NEW_AUTH: &str = r#"  phantom_key:
    type: api_key
    from: { header: x-phantom }
    keys: [{ name: p, value: "phantom-1" }]
"#;

/// Valid new routes, using the new authenticator.
const NEW_ROUTES: &str = r#"  - { name: phantom_a, path: "/phantom/a", auth: [phantom_key] }
  - { name: phantom_b, path: "/phantom/b/{*rest}", auth: anonymous }
"#;

/// The config text with `auth` added to the authenticators, `routes` to the routes, and `tail`
/// at the top level.
fn body(auth: &str, routes: &str, tail: &str) -> String {
    format!("{GOOD}{NEW_AUTH}{auth}{GOOD_ROUTES}{NEW_ROUTES}{routes}{tail}")
}

/// Broken configs, one per failing step: (what, config body, a word of the logged error).
fn broken() -> Vec<(&'static str, String, &'static str)> {
    let bad_pem = r#"  phantom_jwt:
    type: jwt
    from: { header: x-jwt }
    algorithms: [RS256]
    keys: [{ kid: k1, pem: "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----" }]
"#;
    let bad_jwks = r#"  phantom_remote:
    type: jwt
    from: { header: x-jwt }
    algorithms: [RS256]
    jwks_url: "http://127.0.0.1:9/jwks"
    jwks: { refresh_seconds: 5, min_refresh_interval_seconds: 10 }
"#;
    vec![
        ("YAML syntax", format!("{GOOD}routes: [\n"), "unclosed bracket"),
        ("unknown field", body("", "", "acces_log: false\n"), "unknown field"),
        (
            "restart-only settings",
            body("", "", "forward_auth: { listen: \"not-an-address\", front: nginx }\n"),
            "forward_auth.listen",
        ),
        ("bad PEM", body(bad_pem, "", ""), "bad PEM"),
        ("JWK-set timing", body(bad_jwks, "", ""), "min_refresh_interval_seconds"),
        (
            "unknown authenticator",
            body("", "  - { name: phantom_c, path: /phantom/c, auth: [nope] }\n", ""),
            "unknown authenticator",
        ),
        (
            "overlapping routes",
            body("", "  - { name: phantom_d, path: \"/phantom/c/{x}\", auth: anonymous }\n  - { name: phantom_e, path: \"/phantom/c/{y}\", auth: anonymous }\n", ""),
            "overlaps route",
        ),
        (
            "bad CIDR, after the routes",
            body("", "", "trusted_proxies: [\"10.0.0.0/33\"]\n"),
            "trusted_proxies[0]",
        ),
        (
            "bad CORS, after the routes",
            body("", "", "cors: { allowed_origins: [\"*\"], allow_credentials: true }\n"),
            "allow_credentials",
        ),
        (
            "bad sample ratio, after the routes",
            body("", "", "access_log_sample_ratio: 2.0\n"),
            "access_log_sample_ratio",
        ),
    ]
}

/// `/metrics` without what changes by itself or must change: `process_*`, timestamp gauges and
/// the reload error counter.
fn stable(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| {
            !(l.starts_with("process_")
                || l.starts_with("# HELP process_")
                || l.starts_with("# TYPE process_")
                || l.contains("_timestamp_seconds")
                || l.starts_with(r#"keygate_config_reloads_total{result="error"}"#))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes `text` to `path` atomically (write + rename), as editors and tools do.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

const ERRORS: &str = r#"keygate_config_reloads_total{result="error"}"#;
const OKS: &str = r#"keygate_config_reloads_total{result="ok"}"#;

#[test]
fn a_reload_failing_at_any_step_leaves_metrics_as_they_were() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder().config(format!("{GOOD}{GOOD_ROUTES}")).upstream(up.addr).start();
    let cfg = kg.config_path();
    // Traffic, so request, duration and authenticator series exist.
    assert_eq!(kg.get("/open/x", &[]).status, 200);
    assert_eq!(kg.get("/api/x", &[("x-api-key", "key-1")]).status, 200);
    assert_eq!(kg.get("/api/x", &[("x-api-key", "wrong")]).status, 401);
    let before = stable(&kg.metrics_with(&[
        r#"keygate_requests_total{outcome="denied",reason="invalid_api_key",route="api"} 1"#,
        r#"keygate_auth_duration_seconds_count{authenticator="keyed"} 2"#,
    ]));
    for (n, (what, text, logged)) in broken().into_iter().enumerate() {
        replace(&cfg, &kg.config_text(&text));
        let want = n as f64 + 1.0;
        let errors =
            try_eventually(Duration::from_secs(10), || kg.metric(ERRORS).filter(|e| *e >= want));
        assert_eq!(errors, Some(want), "{what}: the failed reload was not counted once");
        let logs = kg.logs();
        assert!(logs.contains(logged), "{what}: no `{logged}` in the logs:\n{logs}");
        let after = kg.admin_get("/metrics").text();
        assert!(!after.contains("phantom"), "{what}: series of the broken config:\n{after}");
        assert_eq!(stable(&after), before, "{what}: /metrics changed");
    }
    assert_eq!(kg.metric(OKS), Some(0.0));
    // The same additions in a config that loads do show: the comparison above can fail.
    replace(&cfg, &kg.config_text(&body("", "", "")));
    let now = kg.metrics_with(&[&format!("{OKS} 1")]);
    assert!(
        now.contains(r#"route="phantom_a""#) && now.contains(r#"authenticator="phantom_key""#),
        "{now}"
    );
    assert_ne!(stable(&now), before);
    assert_eq!(kg.get("/phantom/a", &[("x-phantom", "phantom-1")]).status, 200);
}
