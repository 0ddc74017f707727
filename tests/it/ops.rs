//! Operating keygate: hot reload under continuous load (file rewrite, ConfigMap symlink swap,
//! SIGHUP), SIGTERM draining, the metric table after real traffic, and logs that never hold a
//! secret.

use crate::common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Config A: `/public` is anonymous. Config B: `/public` needs the API key.
fn body(public_needs_key: bool) -> String {
    let auth = if public_needs_key { "[ingest]" } else { "anonymous" };
    format!(
        r#"authenticators:
  ingest:
    type: api_key
    from: {{ header: x-api-key }}
    keys: [{{ name: k, value: "key-{public_needs_key}" }}]
routes:
  - {{ name: public, path: "/public/{{*rest}}", auth: {auth} }}
  - {{ name: api, path: "/api/{{*rest}}", auth: [ingest] }}
"#
    )
}

/// Writes `text` to `path` atomically (write + rename), as editors and tools do.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits until `f` holds; panics after `secs`.
fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    eventually(what, Duration::from_secs(secs), || f().then_some(()));
}

#[test]
fn reload_under_continuous_load_never_fails_a_request() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder().config(body(false)).upstream(up.addr).start();
    let cfg = kg.config_path();
    let text = |b: bool| kg.config_text(&body(b));

    // Clients on keep-alive connections, without pause, recording every answer.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<u16>::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, seen, addr) = (stop.clone(), seen.clone(), kg.addr);
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                while !stop.load(Ordering::Relaxed) {
                    let r = c.request("GET", "/public/x", &[], b"");
                    seen.lock().unwrap().push(r.status);
                }
            })
        })
        .collect();
    let status_now = || kg.get("/public/x", &[]).status;

    replace(&cfg, &text(true)); // valid: /public now needs a key
    wait_for("config B", 10, || status_now() == 401);
    replace(&cfg, "version: 1\nroutes: [\n"); // invalid
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(status_now(), 401, "the invalid file changed nothing");
    assert_eq!(kg.get("/public/x", &[("X-Api-Key", "key-true")]).status, 200);
    replace(&cfg, &text(false)); // valid again
    wait_for("config A", 10, || status_now() == 200);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a client connection failed during reloads");
    }
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 100, "only {} requests", seen.len());
    assert!(
        seen.iter().all(|s| *s == 200 || *s == 401),
        "unexpected answers: {:?}",
        seen.iter().filter(|s| **s != 200 && **s != 401).collect::<Vec<_>>()
    );
    assert!(seen.contains(&401) && seen.contains(&200));
    kg.metrics_with(&[
        r#"keygate_config_reloads_total{result="ok"} 2"#,
        r#"keygate_config_reloads_total{result="error"} 1"#,
    ]);
    let logs = kg.logs();
    assert!(
        logs.contains("config reload failed")
            && logs.contains("config.yaml:2:9: routes: unclosed bracket"),
        "reload error logged with file:line: {logs}"
    );
}

#[test]
fn a_configmap_symlink_swap_and_sighup_reload() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let builder = Keygate::builder().upstream(up.addr);
    let text = |b: bool| builder.clone().config(body(b)).text();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The layout the kubelet writes for a ConfigMap volume.
    std::fs::create_dir(d.join("..2026_11_25_a")).unwrap();
    std::fs::write(d.join("..2026_11_25_a/config.yaml"), text(false)).unwrap();
    std::os::unix::fs::symlink("..2026_11_25_a", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.yaml", d.join("config.yaml")).unwrap();
    let cfg = d.join("config.yaml");
    let kg = builder.clone().config_file(&cfg).start();
    assert_eq!(kg.get("/public/x", &[]).status, 200);

    // The update: a new timestamped directory, then an atomic swap of `..data`.
    std::fs::create_dir(d.join("..2026_11_25_b")).unwrap();
    std::fs::write(d.join("..2026_11_25_b/config.yaml"), text(true)).unwrap();
    std::os::unix::fs::symlink("..2026_11_25_b", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    std::fs::remove_dir_all(d.join("..2026_11_25_a")).unwrap();
    wait_for("the swapped ConfigMap", 10, || kg.get("/public/x", &[]).status == 401);

    // SIGHUP reloads even an unchanged file.
    let ok_before = kg.metric(r#"keygate_config_reloads_total{result="ok"}"#).unwrap();
    kg.signal("HUP");
    wait_for("the SIGHUP reload", 10, || {
        kg.metric(r#"keygate_config_reloads_total{result="ok"}"#).unwrap() == ok_before + 1.0
    });
    assert_eq!(kg.get("/public/x", &[]).status, 401);
    assert_eq!(kg.admin_get("/healthz").status, 200, "SIGHUP did not stop the process");
}

#[test]
fn a_listen_change_is_reported_as_needing_a_restart() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder().config(body(false)).upstream(up.addr).start();
    let path = kg.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(&kg.addr.to_string(), "127.0.0.1:1");
    replace(&path, &text);
    wait_for("the reload", 10, || kg.logs().contains("needs a restart"));
    assert_eq!(kg.get("/public/x", &[]).status, 200, "still serving on the old address");
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_0() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let mut kg = Keygate::builder()
        .config(format!("shutdown_grace_seconds: 6\n{}", body(false)))
        .upstream(up.addr)
        .start();
    let addr = kg.addr;
    let slow = std::thread::spawn(move || {
        let started = Instant::now();
        let r = request(
            addr,
            "POST",
            "/public/upload",
            &[("X-Echo-Delay-Ms", "2000")],
            &[7u8; 100_000],
        );
        (r.status, started.elapsed(), r.json()["body_len"].as_u64())
    });
    std::thread::sleep(Duration::from_millis(400));
    let signalled = Instant::now();
    kg.signal("TERM");
    // /readyz turns 503 at once while the admin port keeps answering.
    wait_for("/readyz 503", 2, || kg.admin_get("/readyz").status == 503);
    assert!(signalled.elapsed() < Duration::from_secs(2));
    assert_eq!(kg.admin_get("/readyz").json()["draining"], json!(true));
    // New connections are no longer accepted.
    wait_for("the listener to close", 3, || std::net::TcpStream::connect(addr).is_err());
    // The in-flight request completes.
    let (status, took, body_len) = slow.join().unwrap();
    assert_eq!((status, body_len), (200, Some(100_000)));
    assert!(took >= Duration::from_millis(1900));
    // Then the process exits 0, well within the grace period.
    let code = kg.wait_exit(Duration::from_secs(6));
    assert!(code.success(), "exit status {code:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5), "took {:?}", signalled.elapsed());

    // Nothing in flight: exits at once.
    let mut idle = Keygate::builder()
        .config(format!("shutdown_grace_seconds: 6\n{}", body(false)))
        .upstream(up.addr)
        .start();
    let t = Instant::now();
    idle.signal("TERM");
    let code = idle.wait_exit(Duration::from_secs(3));
    assert!(code.success());
    assert!(t.elapsed() < Duration::from_secs(3), "an idle keygate waited for the grace period");
}

#[test]
fn metrics_after_real_traffic() {
    use crate::common::jwks_server::{jwk, JwksServer};
    let jwks = JwksServer::start(vec![jwk("rsa.jwk.json", Some("j1"), json!({}))]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let body = format!(
        r#"authenticators:
  idp:
    type: jwt
    from: {{ header: authorization, scheme: Bearer }}
    jwks_url: "{}"
    algorithms: [RS256]
routes:
  - {{ name: app, path: "/app/{{*rest}}", auth: [idp] }}
  - {{ name: open, path: "/open", auth: anonymous }}
"#,
        jwks.url()
    );
    let kg = Keygate::builder().config(&body).upstream(up.addr).start();
    kg.wait_readyz(200, 10);
    let t = now();
    let tok = sign("rsa.key", "RS256", Some("j1"), json!({"sub": "u", "exp": t + 60}));
    for _ in 0..3 {
        assert_eq!(kg.get("/app/x", &[("Authorization", &format!("Bearer {tok}"))]).status, 200);
    }
    kg.get("/app/x", &[]).assert_denied(401, "missing_credentials");
    kg.get("/nowhere", &[]).assert_denied(403, "no_route");
    assert_eq!(kg.get("/open", &[]).status, 200);
    // Upstream errors: the same keygate pointed at a dead upstream after a reload.
    let path = kg.config_path();
    let text =
        std::fs::read_to_string(&path).unwrap().replace(&up.addr.to_string(), &dead.to_string());
    replace(&path, &text);
    wait_for("the reload", 10, || kg.get("/open", &[]).status == 502);

    let m = kg.metrics_with(&[
        r#"keygate_requests_total{outcome="allowed",reason="none",route="app"} 3"#,
        r#"keygate_requests_total{outcome="denied",reason="missing_credentials",route="app"} 1"#,
        r#"keygate_requests_total{outcome="denied",reason="no_route",route="(none)"} 1"#,
        r#"keygate_request_duration_seconds_count{route="app"} 4"#,
        r#"keygate_auth_duration_seconds_count{authenticator="idp"} 4"#,
        r#"keygate_upstream_errors_total{kind="connect"}"#,
        r#"keygate_jwks_fetches_total{authenticator="idp",result="ok"}"#,
        r#"keygate_jwks_keys{authenticator="idp"} 1"#,
        r#"keygate_jwks_last_success_timestamp_seconds{authenticator="idp"}"#,
        "keygate_token_cache_hits_total 2",
        "keygate_token_cache_misses_total 1",
        r#"keygate_config_reloads_total{result="ok"} 1"#,
        r#"keygate_config_reloads_total{result="error"} 0"#,
        r#"keygate_revocations{source="file"} 0"#,
        r#"keygate_revocations{source="shared"} 0"#,
        "keygate_config_last_reload_success_timestamp_seconds",
        "keygate_build_info{version=",
        "# TYPE keygate_request_duration_seconds histogram",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ]);
    // Label values only from config names and fixed enums: no paths or user ids.
    for l in m.lines().filter(|l| l.starts_with("keygate_")) {
        assert!(
            !l.contains("/app/x") && !l.contains("nowhere") && !l.contains("\"u\""),
            "request data in a label: {l}"
        );
    }
}

#[test]
fn logs_never_contain_a_token_secret_or_key() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder()
        .config(full_config("production"))
        .upstream(up.addr)
        .env("KG_TEST_HMAC_SECRET", HMAC_SECRET)
        .log_level("debug")
        .start();
    let tok = user_token("user-1");
    let expired = {
        let t = now();
        sign("rsa.key", "RS256", None, json!({"sub": "user-1", "iat": t - 900, "exp": t - 600}))
    };
    let mac = hmac_token("u1");
    type Sent<'a> = (&'a str, String, Vec<(&'a str, String)>);
    let sent: Vec<Sent> = vec![
        (
            "GET",
            "/v1/users/user-1/feeds/f".into(),
            vec![("Authorization", "Bearer pk_test_1".into()), ("X-Knock-User-Token", tok.clone())],
        ),
        (
            "GET",
            "/v1/users/user-1/feeds/f".into(),
            vec![
                ("Authorization", "Bearer pk_test_1".into()),
                ("X-Knock-User-Token", expired.clone()),
            ],
        ),
        ("GET", format!("/v1/users/user-1/feeds/f?user_token={tok}&api_key=pk_test_1"), vec![]),
        ("GET", format!("/v1/users/user-2/feeds/f?user_token={expired}&api_key=pk_test_1"), vec![]),
        (
            "POST",
            "/v1/events/x".into(),
            vec![
                ("X-Client-Key", "ck_live_7f3a".into()),
                ("X-Client-Secret", "billing-secret-value".into()),
            ],
        ),
        (
            "POST",
            "/v1/events/x".into(),
            vec![
                ("X-Client-Key", "ck_live_91b2".into()),
                ("X-Client-Secret", "crm-secret-WRONG".into()),
            ],
        ),
        ("POST", "/v1/events/x".into(), vec![("Authorization", "Bearer ek_ingest_1".into())]),
        (
            "GET",
            "/widget/x".into(),
            vec![("X-User-Id", "u1".into()), ("X-User-Token", mac.clone())],
        ),
        (
            "GET",
            "/widget/x".into(),
            vec![("X-User-Id", "u2".into()), ("X-User-Token", mac.clone())],
        ),
    ];
    for (method, path, headers) in &sent {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(kg.addr, method, path, &h, if *method == "POST" { b"{}" } else { b"" });
    }
    std::thread::sleep(Duration::from_millis(300));
    let logs = kg.logs();
    assert!(logs.lines().filter(|l| l.contains("keygate::access")).count() >= sent.len(), "{logs}");
    let access = logs
        .lines()
        .find(|l| l.contains("keygate::access") && l.contains("\"status\":200"))
        .unwrap();
    for field in [
        "route",
        "method",
        "status",
        "outcome",
        "reason",
        "authenticator",
        "user_id",
        "upstream_status",
        "duration_ms",
    ] {
        assert!(access.contains(&format!("\"{field}\"")), "access log lacks {field}: {access}");
    }
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_string();
    for secret in [
        signature(&tok),
        signature(&expired),
        tok[..60].to_string(),
        "pk_test_1".into(),
        "billing-secret-value".into(),
        "crm-secret".into(),
        "ek_ingest_1".into(),
        mac.clone(),
        HMAC_SECRET.into(),
        "concat-secret-from-a-mounted-file".into(),
    ] {
        let leak = logs.lines().find(|l| l.contains(&secret));
        assert!(
            leak.is_none(),
            "a secret appears in the logs: {secret}\nin: {}",
            leak.unwrap_or_default()
        );
    }
    for l in logs.lines() {
        let lower = l.to_ascii_lowercase();
        assert!(!lower.contains("bearer "), "an Authorization value in the logs: {l}");
    }
}

#[test]
fn an_open_websocket_keeps_working_during_the_drain() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let mut kg = Keygate::builder()
        .config(format!("shutdown_grace_seconds: 6\n{}", body(false)))
        .upstream(up.addr)
        .start();
    let mut ws =
        ws_connect(kg.addr, "/public/live", &[]).unwrap_or_else(|r| panic!("{}", r.text()));
    ws.read_text().unwrap(); // the echo's description of the upgrade
    ws.send_text("before");
    assert_eq!(ws.read_text().as_deref(), Some("before"));
    kg.signal("TERM");
    wait_for("/readyz 503", 2, || kg.admin_get("/readyz").status == 503);
    std::thread::sleep(Duration::from_millis(500));
    ws.send_text("during the drain");
    assert_eq!(ws.read_text().as_deref(), Some("during the drain"));
    assert!(kg.child.try_wait().unwrap().is_none(), "exited with a websocket open");
    let closed = Instant::now();
    drop(ws);
    let code = kg.wait_exit(Duration::from_secs(3));
    assert!(code.success());
    assert!(closed.elapsed() < Duration::from_secs(3), "did not exit once the websocket closed");
}

#[test]
fn a_reload_starts_a_clean_token_cache() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let body = format!(
        "authenticators:\n  user:\n    type: jwt\n    from: {{ header: x-token }}\n    algorithms: [RS256]\n    keys: [{{ pem_file: \"{}\" }}]\nroutes:\n  - {{ name: app, path: \"/app\", auth: [user] }}\n",
        fixture("rsa.pub")
    );
    let kg = Keygate::builder().config(&body).upstream(up.addr).start();
    let tok = user_token("u1");
    for _ in 0..2 {
        assert_eq!(kg.get("/app", &[("X-Token", &tok)]).status, 200);
    }
    kg.metrics_with(&["keygate_token_cache_misses_total 1", "keygate_token_cache_hits_total 1"]);
    let path = kg.config_path();
    let text = std::fs::read_to_string(&path).unwrap()
        + "  - { name: extra, path: /extra, auth: anonymous }\n";
    replace(&path, &text);
    wait_for("the reload", 10, || kg.get("/extra", &[]).status == 200);
    assert_eq!(kg.get("/app", &[("X-Token", &tok)]).status, 200);
    kg.metrics_with(&["keygate_token_cache_misses_total 2", "keygate_token_cache_hits_total 1"]);
}
