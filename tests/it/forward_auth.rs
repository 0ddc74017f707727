//! The forward-auth listener behind the fronts docs/config.md documents, with the snippets it
//! documents: a real nginx (`auth_request`) and a real Traefik (ForwardAuth), and Envoy's
//! `ext_authz` HTTP conventions (its binary is not packaged for this machine: the request's own
//! method and path). Each finding of the security review that went through this door has its
//! test here: the client choosing the request decided (`X-Forwarded-Uri`), client identity
//! headers reaching the backend, fake preflights, throttling, and limits on every head.

use crate::common::attack::*;
use crate::common::nginx::Nginx;
use crate::common::traefik::Traefik;
use crate::common::*;
use std::net::SocketAddr;

/// The block fenced with `info` in docs/config.md's "Forward-auth" section.
fn docs_snippet(info: &str) -> String {
    let md =
        std::fs::read_to_string(format!("{}/docs/config.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let section = md.split("\n## Forward-auth\n").nth(1).unwrap().split("\n## ").next().unwrap();
    let start = section
        .find(&format!("```{info}\n"))
        .unwrap_or_else(|| panic!("no ```{info} block in docs/config.md's Forward-auth"));
    let body = &section[start + info.len() + 4..];
    body[..body.find("```").unwrap()].to_string()
}

fn forward_auth_keygate(up: SocketAddr, front: &str, extra: &str) -> (Keygate, SocketAddr) {
    let port = free_port();
    let kg = Keygate::builder()
        .config(format!(
            "forward_auth: {{ listen: \"127.0.0.1:{port}\", front: {front} }}\n{extra}{}",
            attack_config()
        ))
        .upstream(up)
        .start();
    (kg, format!("127.0.0.1:{port}").parse().unwrap())
}

/// nginx configured with the documented snippet, keygate's listener and `up` filled in.
pub(crate) fn nginx_front(fa: SocketAddr, up: SocketAddr) -> Nginx {
    let snippet = docs_snippet("nginx")
        .replace("http://127.0.0.1:8081", &format!("http://{fa}"))
        .replace("http://backend", &format!("http://{up}"));
    Nginx::start(&snippet)
}

fn traefik_front(fa: SocketAddr, up: SocketAddr) -> Traefik {
    let snippet =
        docs_snippet("yaml traefik").replace("http://127.0.0.1:8081", &format!("http://{fa}"));
    Traefik::start(&snippet, up, "/healthz")
}

fn bearer(sub: &str) -> String {
    format!("Bearer {}", customer_token(sub))
}

#[test]
fn nginx_front_decides_about_the_request_nginx_forwards() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let (kg, fa) = forward_auth_keygate(up.addr, "nginx", "");
    let nginx = nginx_front(fa, up.addr);
    let alice = bearer("alice");
    let lies = [
        ("Authorization", alice.as_str()),
        ("X-Real-IP", "10.9.9.9"),
        ("X-Forwarded-Host", "evil.test"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=10.9.9.9"),
    ];
    let r = request(nginx.addr, "GET", "/api/v1/me?x=1", &lies, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // The forwarding headers are the snippet's own, as keygate's listener would set them.
    assert_eq!(r.upstream_header("x-real-ip"), None);
    assert_eq!(r.upstream_header("forwarded"), None);
    assert_eq!(r.upstream_header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(r.upstream_header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_ne!(r.upstream_header("x-forwarded-host").as_deref(), Some("evil.test"));
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("alice"));
    assert_eq!(r.upstream_header("x-auth-method").as_deref(), Some("jwt"));
    assert_eq!(
        r.upstream_header("x-auth-credential").as_deref(),
        Some(format!("doka_customer/{DOKA_KID}").as_str())
    );
    assert_eq!(r.json()["target"], "/api/v1/me?x=1");
    let hits = up.hits();
    // Finding 1: a client-sent X-Forwarded-Uri (Traefik's family) names an anonymous or an
    // observed route; nginx forwards `DELETE /admin/users/42`. keygate decides about that.
    for lie in ["/healthz", "/observed/x"] {
        let h = [("X-Forwarded-Uri", lie), ("X-Forwarded-Method", "GET")];
        // nginx passes 401 and 403 on, and answers 500 for any other denial (here 405).
        let r = request(nginx.addr, "DELETE", "/admin/users/42", &h, b"");
        assert_eq!(r.status, 500, "{lie}: {}", r.text());
        let r = request(nginx.addr, "GET", "/admin/users/42", &h, b"");
        assert_eq!(r.status, 401, "{lie}: {}", r.text());
    }
    // ... and cannot bypass `bind`: alice's token on bob's feed, claiming alice's path.
    let knock = [
        ("Authorization", "Bearer pk_test_1".to_string()),
        ("X-Knock-User-Token", user_token("alice")),
        ("X-Forwarded-Uri", "/v1/users/alice/feeds/f".to_string()),
        ("X-Original-URI-Spoof", "/v1/users/alice/feeds/f".to_string()),
    ];
    let knock: Vec<(&str, &str)> = knock.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(request(nginx.addr, "GET", "/v1/users/bob/feeds/f", &knock, b"").status, 403);
    assert_eq!(request(nginx.addr, "GET", "/v1/users/alice/feeds/f", &knock, b"").status, 200);
    assert_eq!(up.hits(), hits + 1, "a denied request reached the backend");
    kg.metrics_with(&[
        r#"keygate_requests_total{outcome="denied",reason="identity_mismatch",route="knock_feed"} 1"#,
    ]);
}

#[test]
fn client_identity_headers_are_refused_at_every_front() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let (kg, fa) = forward_auth_keygate(up.addr, "nginx", "");
    let nginx = nginx_front(fa, up.addr);
    let alice = bearer("alice");
    // Finding 3: nginx would forward the client's X-Auth-Workspace-Id (and every spelling of
    // any identity header) beside keygate's user id: keygate refuses the request instead.
    let spoofs = [
        ("X-Auth-Workspace-Id", "victim"),
        ("X-Auth-User-Id", "victim"),
        ("x_auth_credential", "victim"),
        ("X.Auth.User.Id", "admin"),
        ("X-AUTH-ANYTHING", "victim"),
    ];
    for (name, value) in spoofs {
        for (path, auth) in [("/api/v1/me", alice.as_str()), ("/healthz", "")] {
            let mut h = vec![(name, value)];
            if !auth.is_empty() {
                h.push(("Authorization", auth));
            }
            let r = request(nginx.addr, "GET", path, &h, b"");
            // nginx drops names with `_` or `.` itself (`ignore_invalid_headers`), to keygate
            // and to the backend alike; every other spelling reaches keygate and is refused.
            if !name.contains(['_', '.']) {
                assert_eq!(r.status, 500, "nginx answers 500 for keygate's 400 ({name} on {path})");
            }
            let direct = [("X-Original-URI", path), ("X-Original-Method", "GET")];
            let h: Vec<(&str, &str)> = h.iter().copied().chain(direct).collect();
            request(fa, "GET", "/auth", &h, b"").assert_denied(400, "spoofed_identity");
        }
    }
    for record in up.take_received() {
        assert!(
            !record.to_string().contains("victim"),
            "a spoofed header reached the backend: {record}"
        );
        assert!(
            !record.to_string().contains("admin\""),
            "a spoofed header reached the backend: {record}"
        );
    }
    kg.metrics_with(&[
        r#"keygate_requests_total{outcome="denied",reason="spoofed_identity",route="(none)"}"#,
    ]);
    // Traefik forwards the client's headers too, and passes keygate's denial on as it is.
    let (_kg2, fa2) = forward_auth_keygate(up.addr, "traefik", "");
    let traefik = traefik_front(fa2, up.addr);
    let hits = up.hits();
    let r = request(traefik.addr, "GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id"), None);
    for (name, value) in spoofs {
        let h = [(name, value), ("Authorization", alice.as_str())];
        request(traefik.addr, "GET", "/api/v1/me", &h, b"").assert_denied(400, "spoofed_identity");
    }
    let r = request(traefik.addr, "GET", "/api/v1/me", &[("Authorization", &alice)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header("x-auth-user-id").as_deref(), Some("alice"));
    assert_eq!(r.upstream_header("x-auth-workspace-id").as_deref(), Some("ONAVZK8J"));
    assert_eq!(up.hits(), hits + 2);
}

#[test]
fn traefik_front_reads_only_traefiks_headers() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let (_kg, fa) = forward_auth_keygate(up.addr, "traefik", "");
    let traefik = traefik_front(fa, up.addr);
    let hits = up.hits(); // the readiness probe's /healthz
                          // Traefik sets X-Forwarded-Uri/-Method itself; a client's copies and nginx's family are
                          // never believed.
    let lies = [
        ("X-Forwarded-Uri", "/healthz"),
        ("X-Forwarded-Method", "GET"),
        ("X-Original-URI", "/healthz"),
        ("X-Original-Method", "GET"),
    ];
    request(traefik.addr, "GET", "/admin/users/42", &lies, b"")
        .assert_denied(401, "missing_credentials");
    request(traefik.addr, "DELETE", "/admin/users/42", &lies, b"")
        .assert_denied(405, "method_not_allowed");
    request(traefik.addr, "POST", "/items/7?_method=DELETE", &[], b"")
        .assert_denied(405, "method_not_allowed");
    // This door never has the body: a form that could name another method is not decided.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    request(traefik.addr, "POST", "/items/7", &form, b"_method=DELETE")
        .assert_denied(403, "no_route");
    assert_eq!(up.hits(), hits);
    // Finding 4: a fake preflight would be forwarded whole: refused at this door.
    let pf = [("Origin", "https://app.test"), ("Access-Control-Request-Method", "GET")];
    request(traefik.addr, "OPTIONS", "/api/v1/me", &pf, b"").assert_denied(403, "cors_not_allowed");
    assert_eq!(up.hits(), hits);
    // Directly, without Traefik's headers: malformed, never guessed.
    request(fa, "GET", "/api/v1/me", &[], b"").assert_denied(400, "malformed_request");
}

#[test]
fn envoy_front_decides_about_the_request_itself() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let (_kg, fa) = forward_auth_keygate(up.addr, "envoy", "");
    let alice = bearer("alice");
    let lies = [("X-Forwarded-Uri", "/healthz"), ("X-Original-URI", "/healthz")];
    let r = request(fa, "GET", "/api/v1/me", &[("Authorization", &alice)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-auth-user-id"), Some("alice"));
    request(fa, "GET", "/admin/x", &lies, b"").assert_denied(401, "missing_credentials");
    request(fa, "POST", "/v1/events/x", &[], b"").assert_denied(401, "missing_credentials");
    let spoof = [("Authorization", alice.as_str()), ("X_Auth_User_Id", "victim")];
    request(fa, "GET", "/api/v1/me", &spoof, b"").assert_denied(400, "spoofed_identity");
    // Finding 6: a Socket.IO route is never served through this door, upgrade or not.
    let ws = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Authorization", alice.as_str()),
    ];
    for target in ["/?EIO=4&transport=websocket", "/?EIO=3&transport=websocket", "/"] {
        request(fa, "GET", &format!("{SIO}{target}"), &ws, b"").assert_denied(403, "no_route");
        let plain = [("Authorization", alice.as_str())];
        request(fa, "GET", &format!("{SIO}{target}"), &plain, b"").assert_denied(403, "no_route");
    }
    assert_eq!(up.hits(), 0, "forward-auth never proxies");
}

#[test]
fn throttling_behind_nginx_counts_the_address_nginx_saw_and_logs_its_429s() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let throttle = "throttle: { max_failures: 2, window_seconds: 60, block_seconds: 60 }\n";
    let (kg, fa) = forward_auth_keygate(up.addr, "nginx", throttle);
    let nginx = nginx_front(fa, up.addr);
    // Finding 8: rotating a client X-Forwarded-For does not dodge the block (nginx appends the
    // address it saw, and that is the one keygate counts).
    for i in 0..3 {
        let xff = format!("198.51.100.{i}");
        let h = [("Authorization", "Bearer not.a.token"), ("X-Forwarded-For", xff.as_str())];
        assert_eq!(request(nginx.addr, "GET", "/api/v1/me", &h, b"").status, 401);
    }
    let alice = bearer("alice");
    let h = [("Authorization", alice.as_str()), ("X-Forwarded-For", "203.0.113.77")];
    let r = request(nginx.addr, "GET", "/api/v1/me", &h, b"");
    assert_eq!(r.status, 500, "nginx answers 500 for keygate's 429: {}", r.text());
    assert_eq!(up.hits(), 0);
    kg.metrics_with(&[
        r#"keygate_throttled_requests_total{route="customer_api"} 1"#,
        r#"keygate_requests_total{outcome="denied",reason="too_many_failures",route="customer_api"} 1"#,
    ]);
    kg.wait_for_log(r#""reason":"too_many_failures""#);
    // Another address, through the listener directly, is not blocked.
    let direct = [
        ("X-Original-URI", "/api/v1/me"),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-For", "192.0.2.1"),
        ("Authorization", alice.as_str()),
    ];
    assert_eq!(request(fa, "GET", "/auth", &direct, b"").status, 200);
}

#[test]
fn every_head_on_the_forward_auth_listener_is_limited() {
    let up = echo::spawn("127.0.0.1:0").unwrap();
    let (_kg, fa) = forward_auth_keygate(up.addr, "envoy", "");
    // Finding 9: the second head on a connection is bounded like the first (16 KiB here).
    let mut c = Conn::open(fa);
    assert_eq!(c.request("GET", "/healthz", &[], b"").status, 200);
    let big = "a".repeat(20_000);
    let r = c.request("GET", "/healthz", &[("X-Big", &big)], b"");
    assert_eq!(r.status, 431, "{}", r.text());
    // A body on a forward-auth request is read and dropped; the next head is still limited.
    let mut c = Conn::open(fa);
    assert_eq!(c.request("POST", "/healthz", &[], b"hello").status, 200);
    assert_eq!(c.request("GET", "/healthz", &[("X-Big", &big)], b"").status, 431);
}
