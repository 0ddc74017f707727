//! The access log: one JSON line per request on stdout, sampled for allowed requests only,
//! switched off and on by a reload, never holding a credential.

use crate::common::*;
use std::time::Duration;

const BODY: &str = r#"authenticators:
  key:
    type: api_key
    from: { header: x-api-key }
    keys: [{ name: k, value: "the-api-key-value" }]
routes:
  - { name: open, path: "/open", auth: anonymous }
  - { name: api, path: "/api", auth: [key] }
"#;

/// The access-log lines keygate wrote so far, parsed (a last line still being written, with no
/// newline yet, is left for the next read).
fn access_lines(kg: &Keygate) -> Vec<serde_json::Value> {
    let text = kg.logs();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .filter(|l| l.contains("\"target\":\"keygate::access\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits for `n` lines; then checks no more come.
fn exactly(kg: &Keygate, n: usize) -> Vec<serde_json::Value> {
    eventually(&format!("{n} access-log lines"), Duration::from_secs(10), || {
        let lines = access_lines(kg);
        (lines.len() >= n).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let lines = access_lines(kg);
    assert_eq!(lines.len(), n, "{lines:#?}");
    lines
}

#[test]
fn one_line_per_request_with_its_decision() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder().config(BODY).upstream(up.addr).start();
    assert_eq!(kg.get("/open?token=query-secret", &[]).status, 200);
    assert_eq!(kg.get("/api", &[("X-Api-Key", "the-api-key-value")]).status, 200);
    kg.get("/api", &[("X-Api-Key", "a-wrong-key-value")]).assert_denied(401, "invalid_api_key");
    // A line is written when its request's logging phase runs, which may come after the client
    // has its answer and sent the next request: the lines are found by content, not position.
    let lines = exactly(&kg, 3);
    let find = |route: &str, outcome: &str| {
        lines
            .iter()
            .find(|l| l["route"] == route && l["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} {route} line in {lines:#?}"))
    };
    let (open, ok, denied) =
        (find("open", "allowed"), find("api", "allowed"), find("api", "denied"));
    assert_eq!((open["route"].as_str(), open["status"].as_u64()), (Some("open"), Some(200)));
    assert_eq!(open["outcome"], "allowed");
    assert_eq!(open["upstream_status"], 200);
    assert_eq!(ok["authenticator"], "key/k");
    assert_eq!(
        (denied["outcome"].as_str(), denied["reason"].as_str()),
        (Some("denied"), Some("invalid_api_key"))
    );
    assert_eq!(denied["upstream_status"], 0);
    assert!(open["duration_ms"].as_f64().is_some() && open["timestamp"].is_string());
    let text = kg.logs();
    for secret in ["query-secret", "the-api-key-value", "a-wrong-key-value"] {
        assert!(!text.contains(secret), "{secret} in the logs:\n{text}");
    }
}

#[test]
fn sampling_keeps_every_denial_and_a_reload_switches_the_log_off() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let sampled = format!("access_log_sample_ratio: 0.0\n{BODY}");
    let kg = Keygate::builder().config(&sampled).upstream(up.addr).start();
    for _ in 0..20 {
        assert_eq!(kg.get("/open", &[]).status, 200);
    }
    kg.get("/api", &[]).assert_denied(401, "missing_credentials");
    let lines = exactly(&kg, 1);
    assert_eq!(lines[0]["reason"], "missing_credentials");

    std::fs::write(kg.config_path(), kg.config_text(&format!("access_log: false\n{BODY}")))
        .unwrap();
    eventually("the reload", Duration::from_secs(10), || {
        kg.metric(r#"keygate_config_reloads_total{result="ok"}"#).filter(|n| *n >= 1.0)
    });
    kg.get("/api", &[]).assert_denied(401, "missing_credentials");
    assert_eq!(kg.get("/open", &[]).status, 200);
    exactly(&kg, 1);
    kg.metrics_with(&["keygate_access_log_dropped_total 0"]);
}

#[test]
fn a_sample_ratio_outside_zero_to_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.yaml");
    let cfg = Keygate::builder().config(format!("access_log_sample_ratio: 1.5\n{BODY}")).text();
    std::fs::write(&path, cfg).unwrap();
    let out =
        std::process::Command::new(bin()).args(["check", "--config"]).arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("access_log_sample_ratio: must be between 0.0 and 1.0"), "{err}");
}
