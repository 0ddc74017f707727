//! Forwarding: method, target and headers byte for byte, X-Forwarded-*, streamed bodies,
//! identity headers stripped in every spelling, upstream failures, TLS termination.

use crate::common::*;
use std::io::Write;
use std::net::TcpStream;

#[test]
fn forwards_requests_byte_for_byte_with_forwarded_headers() {
    let (_up, kg) = full("production");
    let mut c = Conn::open(kg.addr);
    let raw = "PATCH /public/a%20b/c.json?q=1&x=%2F&&y= HTTP/1.1\r\nHost: app.example\r\nX-Custom-Thing: Value  With   Spaces\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nForwarded: for=203.0.113.9\r\nX-Real-IP: 203.0.113.9\r\nx_forwarded_for: 7.7.7.7\r\nX_Forwarded_Proto: gopher\r\nx_forwarded_host: evil.example\r\nx_real_ip: 7.7.7.7\r\nAccept: */*\r\nContent-Length: 5\r\n\r\nhello";
    let r = c.raw(raw.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["method"], "PATCH");
    assert_eq!(j["target"], "/public/a%20b/c.json?q=1&x=%2F&&y=");
    assert_eq!(j["body_len"], 5);
    let h = r.upstream_headers();
    assert!(h.contains(&("X-Custom-Thing".into(), "Value  With   Spaces".into())), "{h:?}");
    assert!(h.contains(&("Host".into(), "app.example".into())), "{h:?}");
    // The peer is not a trusted proxy: its X-Forwarded-For, Forwarded and X-Real-IP are not
    // believed (replaced or removed).
    assert_eq!(r.upstream_header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(r.upstream_header("forwarded"), None);
    assert_eq!(r.upstream_header("x-real-ip"), None);
    assert_eq!(r.upstream_header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(r.upstream_header("x-forwarded-host").as_deref(), Some("app.example"));
    // Nor their underscore spellings, which a CGI-style backend reads as the same headers.
    for (name, _) in &h {
        assert!(!name.contains('_'), "{name} reached upstream: {h:?}");
    }
}

#[test]
fn spoofed_identity_headers_never_reach_upstream() {
    let (_up, kg) = full("production");
    let spoofs = [
        ("X-Auth-User-Id", "admin"),
        ("x-auth-user-id", "admin"),
        ("X_Auth_User_Id", "admin"),
        ("x_auth_user_id", "admin"),
        ("X-AUTH-METHOD", "jwt"),
        ("x-auth-credential", "doka_server/billing"),
        ("X-Auth-Workspace-Id", "ONAVZK8J"),
        ("x_auth_user_email", "ceo@example.com"),
        ("X-Auth-Anything-Else", "x"),
    ];
    let check = |r: &Resp, expected_user: Option<&str>| {
        assert_eq!(r.status, 200, "{}", r.text());
        for (name, _) in r.upstream_headers() {
            let n = name.to_ascii_lowercase().replace('_', "-");
            if n.starts_with("x-auth-") {
                assert!(
                    ["x-auth-user-id", "x-auth-method", "x-auth-credential"].contains(&n.as_str()),
                    "spoofed header {name} reached upstream"
                );
            }
        }
        assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), expected_user);
        assert!(!r.text().contains("admin"), "a spoofed value reached upstream: {}", r.text());
    };
    // A hop-by-hop listing cannot make a later hop drop the identity keygate sets.
    let mac = hmac_token("user-9");
    let r = kg.get(
        "/widget/x",
        &[
            ("X-User-Id", "user-9"),
            ("X-User-Token", &mac),
            ("Connection", "keep-alive, X-Auth-User-Id"),
        ],
    );
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("user-9"));
    let conn = r.upstream_header("connection").unwrap_or_default().to_ascii_lowercase();
    assert!(!conn.contains("x-auth"), "identity header listed in Connection upstream: {conn}");

    // Anonymous route, authenticated route, and unmatched-but-forwarded are all stripped.
    let mut headers: Vec<(&str, &str)> = spoofs.to_vec();
    check(&kg.get("/public/x", &headers), None);
    let mac = hmac_token("user-9");
    headers.push(("X-User-Id", "user-9"));
    headers.push(("X-User-Token", &mac));
    check(&kg.get("/widget/x", &headers), Some("user-9"));

    let up = echo::spawn("127.0.0.1:0").unwrap();
    let open =
        Keygate::builder().config("routes: []\nunmatched: anonymous\n").upstream(up.addr).start();
    check(&open.get("/anything", &spoofs), None);
}

#[test]
fn denied_requests_never_reach_upstream_and_keep_the_connection() {
    let (up, kg) = full("production");
    let before = up.hits();
    let mut c = Conn::open(kg.addr);
    for _ in 0..3 {
        let r =
            c.request("POST", "/v1/events/x", &[("Authorization", "Bearer nope")], &[b'x'; 1000]);
        r.assert_denied(401, "invalid_api_key");
        let r = c.request("GET", "/api/v1/x", &[], b"");
        r.assert_denied(401, "missing_credentials");
    }
    assert_eq!(up.hits(), before);
    // The same connection then carries an allowed request.
    let r = c.request("POST", "/v1/events/x", &[("Authorization", "Bearer ek_ingest_1")], b"{}");
    assert_eq!(r.status, 200);
    assert_eq!(up.hits(), before + 1);
}

#[test]
fn streams_large_bodies_both_ways() {
    let (_up, kg) = full("production");
    let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut s = TcpStream::connect(kg.addr).unwrap();
    let head = "POST /v1/events/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ek_ingest_1\r\nTransfer-Encoding: chunked\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(1 << 20) {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).unwrap();
        s.write_all(chunk).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let r = Conn::from_stream(s).read_response();
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["body_len"], body.len());
    assert_eq!(v["body_sha256"], keygate::token::hash_hex(&body));

    // Response direction: 16 MiB from the upstream (64 KiB pattern repeated, as the echo sends it).
    let n = 16 * 1024 * 1024;
    let r = kg.get("/public/big", &[("X-Echo-Response-Bytes", &n.to_string())]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), n);
    assert!(r.body.iter().enumerate().all(|(i, b)| *b == ((i % 65536) % 251) as u8));
}

#[test]
fn upstream_failure_is_502_and_keygate_keeps_serving() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let kg = Keygate::builder()
        .config("routes: [{ name: open, path: '/{*rest}', auth: anonymous }]\n")
        .upstream(dead)
        .start();
    for _ in 0..3 {
        let r = kg.get("/x", &[]);
        assert_eq!(r.status, 502);
    }
    assert_eq!(kg.admin_get("/healthz").status, 200);
    kg.metrics_with(&["keygate_upstream_errors_total{kind=\"connect\"} 3"]);
}

#[test]
fn terminates_tls() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let body = format!(
        "tls: {{ cert_file: \"{}\", key_file: \"{}\" }}\nroutes: [{{ name: open, path: '/{{*rest}}', auth: anonymous }}]\n",
        fixture("tls.crt"),
        fixture("tls.key")
    );
    let kg = Keygate::builder().config(&body).upstream(up.addr).start();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            &fixture("tls.crt"),
            &format!("https://127.0.0.1:{}/x", kg.addr.port()),
        ])
        .output()
        .expect("curl is installed (.ci/run installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let headers: Vec<(String, String)> = serde_json::from_value(v["headers"].clone()).unwrap();
    assert!(headers.contains(&("x-forwarded-proto".into(), "https".into())), "{headers:?}");
}

#[test]
fn admin_port_serves_health_readiness_and_metrics() {
    let (_up, kg) = full("production");
    kg.get("/api/v1/x", &[]);
    kg.get("/public/x", &[]);
    assert_eq!(kg.admin_get("/healthz").status, 200);
    // The `google` authenticator uses a JWK-set URL: not ready, and /readyz says which.
    let r = kg.admin_get("/readyz");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["missing_keys"], serde_json::json!(["google"]));
    kg.metrics_with(&[
        "keygate_requests_total{outcome=\"denied\",reason=\"missing_credentials\",route=\"customer_api\"} 1",
        "keygate_requests_total{outcome=\"allowed\",reason=\"none\",route=\"open\"} 1",
        "keygate_build_info{version=\"",
        "keygate_request_duration_seconds_bucket{route=\"open\"",
        "keygate_auth_duration_seconds_bucket{authenticator=\"doka_customer\"",
        "process_resident_memory_bytes",
        "process_open_fds",
    ]);
    // The admin port is never proxied.
    assert_eq!(kg.admin_get("/api/v1/x").status, 404);

    let up = echo::spawn("127.0.0.1:0").unwrap();
    let ready = Keygate::builder().config("routes: []\n").upstream(up.addr).start();
    assert_eq!(ready.admin_get("/readyz").status, 200);
}

#[test]
fn a_hostname_upstream_is_resolved_lazily() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder()
        .config("routes: [{ name: open, path: '/{*rest}', auth: anonymous }]\n")
        .upstream_map(&format!("url: \"http://localhost:{}\"", up.addr.port()))
        .start();
    let r = kg.get("/x", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.hits(), 1);
}

#[test]
fn an_upstream_name_that_never_resolves_is_a_502() {
    let kg = Keygate::builder()
        .config("routes: [{ name: open, path: '/{*rest}', auth: anonymous }]\n")
        .upstream_map("url: \"http://no-such-backend.invalid:3000\"")
        .start();
    let r = kg.get("/x", &[]);
    assert_eq!(r.status, 502, "{}", r.text());
    kg.metrics_with(&[r#"keygate_upstream_errors_total{kind="connect"} 1"#]);
}

#[test]
fn forwards_to_an_https_upstream() {
    const OPEN: &str = "routes: [{ name: open, path: '/{*rest}', auth: anonymous }]\n";
    // The https upstream: a keygate terminating TLS (certificate from a test CA) before an echo.
    let echo_up = echo::spawn("127.0.0.1:0").unwrap();
    let tls = format!(
        "tls: {{ cert_file: \"{}\", key_file: \"{}\" }}\n{OPEN}",
        fixture("upstream.crt"),
        fixture("upstream.key")
    );
    let https_upstream = Keygate::builder().config(&tls).upstream(echo_up.addr).start();
    let url = format!("url: \"https://localhost:{}\"", https_upstream.addr.port());
    // keygate in front of it, over https, trusting the test CA.
    let kg = Keygate::builder()
        .config(OPEN)
        .upstream_map(&format!("{url}, ca_file: \"{}\"", fixture("ca.crt")))
        .start();
    let r = kg.get("/over/tls", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["target"], "/over/tls");
    assert_eq!(
        r.upstream_header("x-forwarded-proto").as_deref(),
        Some("https"),
        "the inner hop was TLS"
    );
    assert_eq!(echo_up.hits(), 1);

    // Without the CA the upstream certificate is not trusted: 502, never forwarded in clear.
    let untrusting = Keygate::builder().config(OPEN).upstream_map(&url).start();
    assert_eq!(untrusting.get("/x", &[]).status, 502);
    assert_eq!(echo_up.hits(), 1);
}

#[test]
fn a_content_length_list_is_forwarded_as_one_value() {
    let (_up, kg) = full("production");
    let r = Conn::open(kg.addr)
        .raw(b"POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("content-length").as_deref(), Some("3"));
    assert_eq!(r.json()["body_len"], 3);
}

#[test]
fn a_trusted_proxy_chain_is_extended_not_replaced() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let kg = Keygate::builder().config("trusted_proxies: [127.0.0.0/8]\nroutes: [{ name: open, path: \"/{*rest}\", auth: anonymous }]\n").upstream(up.addr).start();
    let r = kg.get(
        "/x",
        &[
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-Proto", "https"),
            ("Forwarded", "for=198.51.100.7"),
        ],
    );
    assert_eq!(r.upstream_header("x-forwarded-for").as_deref(), Some("198.51.100.7, 127.0.0.1"));
    assert_eq!(r.upstream_header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(r.upstream_header("forwarded").as_deref(), Some("for=198.51.100.7"));
}
